//! Splits a stream of beanstalk replies into whole replies, without
//! knowing what was asked: RESERVED, FOUND and OK carry their body length.

/// One whole reply: its line (without CRLF) and body (without CRLF).
pub struct Reply<'a> {
    pub line: &'a [u8],
    pub body: Option<&'a [u8]>,
}

impl Reply<'_> {
    pub fn word(&self) -> &[u8] {
        self.line.split(|&b| b == b' ').next().unwrap_or(b"")
    }

    /// The `n`th space-separated number on the line (0 is the word).
    pub fn number(&self, n: usize) -> Option<u64> {
        let w = self.line.split(|&b| b == b' ').nth(n)?;
        std::str::from_utf8(w).ok()?.parse().ok()
    }
}

/// The first reply in `buf` and the bytes it takes, if it is all there.
pub fn parse(buf: &[u8]) -> Option<(Reply<'_>, usize)> {
    let eol = memchr::memmem::find(buf, b"\r\n")?;
    let line = &buf[..eol];
    let probe = Reply { line, body: None };
    let len_at = match probe.word() {
        b"RESERVED" | b"FOUND" => 2,
        b"OK" => 1,
        _ => return Some((probe, eol + 2)),
    };
    let n = probe.number(len_at)? as usize;
    let end = eol + 2 + n + 2;
    if buf.len() < end {
        return None;
    }
    Some((
        Reply {
            line,
            body: Some(&buf[eol + 2..eol + 2 + n]),
        },
        end,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_replies() {
        let buf = b"INSERTED 5\r\nRESERVED 5 3\r\na\r\n\r\nDELETED\r\nOK 2";
        let (r, n) = parse(buf).unwrap();
        assert_eq!((r.word(), r.number(1), n), (&b"INSERTED"[..], Some(5), 12));
        let (r, m) = parse(&buf[n..]).unwrap();
        assert_eq!((r.body, m), (Some(&b"a\r\n"[..]), 19));
        let (r, k) = parse(&buf[n + m..]).unwrap();
        assert_eq!((r.word(), k), (&b"DELETED"[..], 9));
        assert!(parse(&buf[n + m + k..]).is_none());
    }
}
