//! Escaping for the three formats the HTTP side writes.

/// A Prometheus label value: backslash, double quote and line feed are
/// escaped, as the text exposition format requires.
pub fn push_label(out: &mut String, v: &str) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A number in decimal, without `core::fmt` (thousands per status
/// request).
pub fn push_num(out: &mut String, n: u64) {
    // Only ASCII digits: always UTF-8.
    if let Ok(s) = std::str::from_utf8(crate::reply::decimal(n, &mut [0; 20])) {
        out.push_str(s);
    }
}

/// A JSON string, quotes included.
pub fn push_json(out: &mut String, v: &str) {
    out.push('"');
    if !v.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(v);
        out.push('"');
        return;
    }
    for ch in v.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Text in HTML, in an element or a quoted attribute.
pub fn push_html(out: &mut String, v: &str) {
    for ch in v.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// A query-string value, %-encoded but for what needs no encoding.
pub fn push_query_value(out: &mut String, v: &str) {
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = std::fmt::Write::write_fmt(out, format_args!("%{b:02X}"));
            }
        }
    }
}

/// The value of `name` in a query string (`a=1&tube=x`), %-decoded, with
/// `+` as a space.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' => {
                match (
                    b.get(i + 1).and_then(|&c| hex(c)),
                    b.get(i + 2).and_then(|&c| hex(c)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut s = String::new();
        push_label(&mut s, "a\\b\"c\nd");
        assert_eq!(s, r#"a\\b\"c\nd"#);
        let mut s = String::new();
        push_json(&mut s, "q\"\\\u{1}");
        assert_eq!(s, r#""q\"\\\u0001""#);
        // Nothing to escape (the quick way) and one escape at the end.
        let mut s = String::new();
        push_json(&mut s, "tube-é");
        push_json(&mut s, "tube-é\n");
        assert_eq!(s, r#""tube-é""tube-é\u000a""#);
        let mut s = String::new();
        for n in [0, 7, 10, 99, 1000, u64::MAX] {
            push_num(&mut s, n);
            s.push(' ');
        }
        assert_eq!(s, "0 7 10 99 1000 18446744073709551615 ");
        let mut s = String::new();
        push_html(&mut s, "<a href='x'>&\"");
        assert_eq!(s, "&lt;a href=&#39;x&#39;&gt;&amp;&quot;");
    }

    #[test]
    fn query_params() {
        assert_eq!(
            query_param("a=1&tube=my%2Btube", "tube").as_deref(),
            Some("my+tube")
        );
        assert_eq!(query_param("tube=a+b", "tube").as_deref(), Some("a b"));
        assert_eq!(query_param("tube=%zz%", "tube").as_deref(), Some("%zz%"));
        assert_eq!(query_param("tube", "tube").as_deref(), Some(""));
        assert_eq!(query_param("x=1", "tube"), None);
        let mut q = String::new();
        push_query_value(&mut q, "a+b c/$(x)");
        assert_eq!(q, "a%2Bb%20c%2F%24%28x%29");
        assert_eq!(
            query_param(&format!("tube={q}"), "tube").as_deref(),
            Some("a+b c/$(x)")
        );
    }
}
