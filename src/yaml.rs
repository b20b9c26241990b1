//! String values in the stats documents: bare where every YAML parser
//! reads the bare text as that very string, double-quoted otherwise.
//!
//! beanstalkd 1.12 writes names bare, which strict parsers (PyYAML, Psych,
//! js-yaml, yaml.v2) misread as numbers, booleans, nulls or dates; 1.13
//! quotes them always, which clients that read `key: value` lines as raw
//! text (cl-beanstalk, pheanstalk 4) hand back with the quotes. The rule
//! here gives both kinds of client the plain name whenever that is safe.
//! It errs on the side of quoting: a needless quote costs a raw-text
//! client two characters, a missing one a strict parser its type.

/// Writes `value` as a YAML scalar: bare when safe, else quoted.
pub fn push_str(out: &mut Vec<u8>, value: &str) {
    if needs_quotes(value) {
        push_quoted(out, value);
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

/// Writes `value` in double quotes, escaping what YAML's double-quoted
/// style requires: `"`, `\`, and characters that are not printable.
pub fn push_quoted(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    for ch in value.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            // C0 and C1 controls and DEL are not printable in YAML.
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {
                out.extend_from_slice(format!("\\x{:02x}", c as u32).as_bytes())
            }
            // Line and paragraph separators, and a byte-order mark, would
            // be read as breaks or dropped.
            '\u{2028}' | '\u{2029}' | '\u{feff}' => {
                out.extend_from_slice(format!("\\u{:04x}", ch as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Whether some YAML 1.1 or 1.2 parser would read the bare `value` as
/// anything but this string (or refuse it).
pub fn needs_quotes(value: &str) -> bool {
    let b = value.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return true; // empty: null
    };
    first_is_indicator(first)
        || last == b' '
        || last == b':'
        || value.contains(": ")
        || value.contains(" #")
        || !b.iter().all(|&c| (0x20..0x7f).contains(&c))
        || is_reserved_word(value)
        || is_number(b)
        || looks_like_timestamp(b)
}

/// Characters that start something other than a plain scalar.
fn first_is_indicator(c: u8) -> bool {
    b"-?:,[]{}#&*!|>'\"%@` ".contains(&c)
}

/// null, booleans in every spelling of the YAML 1.1 type repository, and
/// 1.1's merge key and value indicator.
fn is_reserved_word(v: &str) -> bool {
    const WORDS: &[&str] = &[
        "~", "null", "Null", "NULL", //
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", //
        "true", "True", "TRUE", "false", "False", "FALSE", //
        "on", "On", "ON", "off", "Off", "OFF", //
        "<<", "=",
    ];
    WORDS.contains(&v)
}

/// Integers and floats in any schema a common parser uses: decimal with
/// leading zeros, `_` or (Psych) `,` separators and a sign; `0b`, `0o`,
/// `0x`; 1.1's sexagesimal `1:30`; floats `1.5`, `.5`, `1.`, `1e3`,
/// `1.5E-3`; `.inf` and `.nan` in their spellings. A superset of each
/// resolver: it quotes a few strings no parser would misread (`1.2.3`).
fn is_number(b: &[u8]) -> bool {
    let body = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    if matches!(
        body,
        b".inf" | b".Inf" | b".INF" | b".nan" | b".NaN" | b".NAN"
    ) {
        return true;
    }
    if let [b'0', b'b' | b'B' | b'o' | b'O' | b'x' | b'X', rest @ ..] = body {
        // No hexadecimal name can hide here: a letter after 0x is a digit.
        return !rest.is_empty()
            && rest
                .iter()
                .all(|c| c.is_ascii_hexdigit() || *c == b'_' || *c == b',');
    }
    // An exponent, if any, is the last `e` followed by a signed integer.
    let mantissa = match body.iter().rposition(|c| matches!(c, b'e' | b'E')) {
        Some(i) => {
            let exp = match body.get(i + 1) {
                Some(b'+' | b'-') => &body[i + 2..],
                _ => &body[i + 1..],
            };
            if exp.is_empty() || !exp.iter().all(u8::is_ascii_digit) {
                return false;
            }
            &body[..i]
        }
        None => body,
    };
    mantissa.iter().any(u8::is_ascii_digit)
        && mantissa
            .iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'_' | b',' | b':' | b'.'))
}

/// `2024-01-01`, and every longer form (`2024-1-1`, `2024-01-01T10:00:00Z`,
/// with a space, a fraction or a zone), which all start with four digits,
/// a dash and a digit.
fn looks_like_timestamp(b: &[u8]) -> bool {
    b.len() >= 6 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[5].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(v: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_names_stay_bare() {
        for v in [
            "default",
            "emails",
            "jobs.high",
            "a;b$c_(d)/e.f+g-",
            "A-Za-z0-9+/;.$_()",
            "x-",
            "worker_1",
            "v1.2",
            "ab12",
            "cafe",
            "e1",
            "E5",
            "inf",
            "nan",
            "nulls",
            "yesterday",
            "Off-peak",
            "truey",
            "on.call",
            ".hidden",
            "$HOME",
            "(x)",
            "2fast",
            "1st",
            "12ab",
            "0xg",
            "1e",
            "1e+",
            "2024-",
            "2024-x",
            "_",
            ".",
            "a:b",
            "a#b",
            "a,b",
            "a 'b' \"c\"",
            "ip-10-0-0-1",
            "x86_64",
            "aarch64",
            "host.example.org",
        ] {
            assert_eq!(shown(v), v, "{v:?} should be bare");
        }
    }

    #[test]
    fn what_a_parser_would_misread_is_quoted() {
        for v in [
            // null and booleans, every spelling
            "",
            "~",
            "null",
            "Null",
            "NULL",
            "y",
            "Y",
            "yes",
            "Yes",
            "YES",
            "n",
            "N",
            "no",
            "No",
            "NO",
            "true",
            "True",
            "TRUE",
            "false",
            "False",
            "FALSE",
            "on",
            "On",
            "ON",
            "off",
            "Off",
            "OFF",
            "<<",
            "=",
            // integers
            "0",
            "123",
            "007",
            "-1",
            "+1",
            "1_000",
            "1,000",
            "0b1010",
            "0B1",
            "-0b1",
            "0o17",
            "0O7",
            "0x1F",
            "0xff_ff",
            "-0xA",
            "017",
            "1:30",
            "190:20:30",
            // floats
            "1.5",
            ".5",
            "-.5",
            "+.5",
            "1.",
            "1e3",
            "1E3",
            "1e+3",
            "1.5e-3",
            "-1.5E3",
            "1_0.5",
            "6.8523015e+5",
            "685.230_15e+03",
            "190:20:30.15",
            ".inf",
            ".Inf",
            ".INF",
            "-.inf",
            "+.INF",
            ".nan",
            ".NaN",
            ".NAN",
            "1.2.3",
            // timestamps
            "2024-01-01",
            "2024-1-1",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14 21:59:43.10 -5",
            "2002-12-14",
            "2024-01-01-backup",
            // indicators and comments
            "-x",
            "?x",
            ":x",
            ",x",
            "[x",
            "]x",
            "{x",
            "}x",
            "#x",
            "&x",
            "*x",
            "!x",
            "|x",
            ">x",
            "'x",
            "\"x",
            "%x",
            "@x",
            "`x",
            " x",
            "x ",
            "x:",
            "a: b",
            "a #b",
            // not printable ASCII
            "tab\there",
            "new\nline",
            "caf\u{e9}",
            "\u{7f}",
        ] {
            let out = shown(v);
            assert!(
                out.starts_with('"') && out.ends_with('"') && out.len() >= 2,
                "{v:?} should be quoted, got {out:?}"
            );
        }
    }

    #[test]
    fn quotes_escape_what_double_quotes_require() {
        let q = |v: &str| {
            let mut out = Vec::new();
            push_quoted(&mut out, v);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(q("1.13.0"), "\"1.13.0\"");
        assert_eq!(q("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(q("t\tn\nr\r"), "\"t\\tn\\nr\\r\"");
        assert_eq!(q("\u{1}\u{7f}\u{85}"), "\"\\x01\\x7f\\x85\"");
        assert_eq!(q("\u{2028}\u{feff}"), "\"\\u2028\\ufeff\"");
        assert_eq!(q("café"), "\"café\"");
        assert_eq!(
            shown("#1 SMP PREEMPT_DYNAMIC Debian 6.1.0"),
            "\"#1 SMP PREEMPT_DYNAMIC Debian 6.1.0\""
        );
    }
}
