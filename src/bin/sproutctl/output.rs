//! How sproutctl prints: aligned tables and escaped bodies for a person,
//! JSON for a script, colour only on a terminal.

use std::io::{IsTerminal, Write};

pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Columns padded to their widest cell; numbers right-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..header.len())
        .map(|i| {
            !rows.is_empty()
                && (rows.iter()).all(|r| r.get(i).is_some_and(|c| c.parse::<f64>().is_ok()))
        })
        .collect();
    let line = |cells: Vec<&str>, bold: bool| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = width[i].saturating_sub(c.chars().count());
            if i > 0 {
                s.push_str("  ");
            }
            if numeric[i] {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                if i + 1 < cells.len() {
                    s.push_str(&" ".repeat(pad));
                }
            }
        }
        if bold && stdout_is_terminal() {
            s = format!("\x1b[1m{s}\x1b[0m");
        }
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec(), true);
    for r in rows {
        out.push_str(&line(r.iter().map(|c| c.as_str()).collect(), false));
    }
    out
}

/// `key: value` lines, keys aligned.
pub fn pairs(pairs: &[(String, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    (pairs.iter())
        .map(|(k, v)| format!("{k:<w$}  {v}\n"))
        .collect()
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A stats document as a JSON object: numbers as numbers.
pub fn json_map(pairs: &[(String, String)]) -> String {
    let fields: Vec<String> = (pairs.iter())
        .map(|(k, v)| {
            let value = if v.parse::<i64>().is_ok() || v.parse::<f64>().is_ok_and(f64::is_finite) {
                v.clone()
            } else {
                json_str(v)
            };
            format!("{}:{value}", json_str(k))
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// A body for a terminal: printable ASCII as it is, the rest escaped
/// (`\n`, `\xNN`), so that a binary body cannot drive the terminal.
pub fn escaped(body: &[u8]) -> String {
    let mut s = String::with_capacity(body.len());
    for &b in body {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n\n"),
            b'\t' => s.push_str("\\t"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// A body as JSON: a string when it is UTF-8, else base64 under another
/// key, so that no byte is lost either way.
pub fn json_body(body: &[u8]) -> String {
    match std::str::from_utf8(body) {
        Ok(s) => format!("\"body\":{}", json_str(s)),
        Err(_) => format!("\"body_base64\":\"{}\"", crate::base64::encode(body)),
    }
}

/// Writes to stdout, ignoring a closed pipe (`sproutctl tubes | head`).
pub fn print(s: &str) {
    let _ = std::io::stdout().write_all(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(
            &["tube", "ready"],
            &[
                vec!["default".into(), "3".into()],
                vec!["a".into(), "12".into()],
            ],
        );
        assert_eq!(t, "tube     ready\ndefault      3\na           12\n");
    }

    #[test]
    fn bodies_for_a_terminal_are_escaped() {
        assert_eq!(escaped(b"a\x1b[2Jb\x00"), "a\\x1b[2Jb\\x00");
    }
}
