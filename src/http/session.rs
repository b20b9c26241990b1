//! One HTTP connection's requests and responses, without the socket: the
//! event loop pushes bytes in, asks for the deadline, and writes `out`.
//!
//! HTTP/1.1 and 1.0, GET and HEAD only, no request bodies. Requests are
//! framed by `httparse`; pipelined requests are answered in order, and a
//! connection stops taking input while [`OUTPUT_LIMIT`] of responses wait
//! for a client that does not read. Every error answers with its status
//! and closes the connection, since what follows it cannot be framed.

use std::rc::Rc;
use std::time::Duration;

use crate::job::Nanos;

use super::output::Output;
use super::{IDLE_TIMEOUT, MAX_HEAD, MAX_HEADERS, OUTPUT_LIMIT, REQUEST_TIMEOUT, WRITE_TIMEOUT};

/// What a site answers to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Written after `body`, shared with the cache that keeps them.
    pub shared: Vec<Rc<Vec<u8>>>,
    pub encoding: Encoding,
}

/// How the body is encoded, and whether the path has another encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The path has one representation.
    Only,
    /// Not compressed, though the path compresses for clients that ask.
    Identity,
    Gzip,
}

/// What a client asked for.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// The target without the query.
    pub path: &'a str,
    /// Without the `?` (empty if none).
    pub query: &'a str,
    /// `Accept-Encoding` admits gzip.
    pub gzip: bool,
}

impl Reply {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            shared: Vec::new(),
            encoding: Encoding::Only,
        }
    }

    /// A short plain-text reply: the reason, for a person or a probe.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply::new(status, "text/plain; charset=utf-8", format!("{body}\n"))
    }
}

/// Whatever answers requests by path.
pub trait Site {
    fn serve(&mut self, asked: Asked) -> Reply;
}

#[derive(Debug, Default)]
pub struct Session {
    input: Vec<u8>,
    /// Responses not yet written.
    pub out: Output,
    /// When the first byte of the request being read arrived.
    request_started: Option<Nanos>,
    /// The last time a request finished or output was taken.
    last_progress: Nanos,
    /// Close once `out` is written: no more requests are read.
    pub closing: bool,
    /// Requests answered.
    pub served: u64,
    /// Answer one request only, then close (`Connection: close`).
    pub one_only: bool,
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// A whole response: status line, headers and (unless `head`) the body.
pub fn write_response(out: &mut Output, reply: Reply, head: bool, close: bool) {
    use std::io::Write;
    let mut h = Vec::with_capacity(256);
    let _ = write!(
        h,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len() + reply.shared.iter().map(|p| p.len()).sum::<usize>()
    );
    if reply.content_type.starts_with("text/html") {
        // Nothing but sprout's own script and style, nothing framed.
        h.extend_from_slice(
            b"Content-Security-Policy: default-src 'self'; frame-ancestors 'none'\r\n",
        );
    }
    if reply.status == 405 {
        h.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    match reply.encoding {
        Encoding::Only => {}
        Encoding::Identity => h.extend_from_slice(b"Vary: Accept-Encoding\r\n"),
        Encoding::Gzip => {
            h.extend_from_slice(b"Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n")
        }
    }
    if close {
        h.extend_from_slice(b"Connection: close\r\n");
    }
    h.extend_from_slice(b"\r\n");
    out.push(&h);
    if !head {
        out.push_body(reply.body);
        for part in reply.shared {
            out.push_shared(part);
        }
    }
}

fn nanos(d: Duration) -> Nanos {
    d.as_nanos() as Nanos
}

impl Session {
    pub fn new(now: Nanos) -> Session {
        Session {
            last_progress: now,
            ..Session::default()
        }
    }

    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// Whether to read from the socket now: not while closing, nor while
    /// responses pile up unread, nor with a full request head buffered.
    pub fn wants_input(&self) -> bool {
        !self.closing && self.pending_output() < OUTPUT_LIMIT && self.input.len() <= MAX_HEAD
    }

    /// Bytes of buffers held, for bounds and tests.
    pub fn buffered(&self) -> usize {
        self.input.len() + self.out.len()
    }

    /// The client took `n` bytes of output.
    pub fn wrote(&mut self, n: usize, now: Nanos) {
        self.out.wrote(n);
        if n > 0 {
            self.last_progress = now;
        }
    }

    /// Takes bytes read from the socket and answers what they complete.
    pub fn receive(&mut self, bytes: &[u8], now: Nanos, site: &mut dyn Site) {
        if self.closing {
            return;
        }
        if !bytes.is_empty() && self.input.is_empty() && self.request_started.is_none() {
            self.request_started = Some(now);
        }
        self.input.extend_from_slice(bytes);
        self.answer(now, site);
    }

    /// Answers buffered requests until one is incomplete, the output is
    /// full, or the connection must close.
    pub fn answer(&mut self, now: Nanos, site: &mut dyn Site) {
        let mut input = std::mem::take(&mut self.input);
        let mut start = 0;
        while !self.closing && self.pending_output() < OUTPUT_LIMIT && start < input.len() {
            match self.one(&input[start..], site) {
                Some(used) => {
                    start += used;
                    self.served += 1;
                    self.last_progress = now;
                    self.request_started = (start < input.len()).then_some(now);
                }
                None => break,
            }
        }
        if !self.closing {
            input.drain(..start);
            self.input = input;
        }
    }

    /// Answers the request at the head of `buf`, returning its length, or
    /// None while it is incomplete.
    fn one(&mut self, buf: &[u8], site: &mut dyn Site) -> Option<usize> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let used = match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                self.too_big(buf);
                return None;
            }
            Ok(httparse::Status::Partial) => return None,
            Err(httparse::Error::TooManyHeaders) => {
                self.fail(431, "a request may have at most 32 headers");
                return None;
            }
            Err(_) => {
                self.fail(400, "malformed request");
                return None;
            }
        };
        if used > MAX_HEAD {
            self.too_big(buf);
            return None;
        }
        let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version)
        else {
            self.fail(400, "malformed request");
            return None;
        };
        let head = match method {
            "GET" => false,
            "HEAD" => true,
            _ => {
                // A body may follow that this server does not frame.
                self.fail(405, "only GET and HEAD are served");
                return None;
            }
        };
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        let has_body = header("transfer-encoding").is_some()
            || header("content-length").is_some_and(|v| v.trim_ascii() != b"0");
        if has_body {
            self.fail(400, "requests with a body are not served");
            return None;
        }
        let connection = header("connection").unwrap_or(b"");
        let has = |token: &str| {
            connection
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        };
        let keep_alive = !self.one_only
            && match version {
                1 => !has("close"),
                _ => has("keep-alive"),
            };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if !path.starts_with('/') {
            self.fail(400, "the request target must be a path");
            return None;
        }
        let gzip = header("accept-encoding").is_some_and(super::gzip::accepts_gzip);
        let reply = site.serve(Asked { path, query, gzip });
        write_response(&mut self.out, reply, head, !keep_alive);
        self.closing = !keep_alive;
        Some(used)
    }

    /// A request head past MAX_HEAD: 414 when the request line alone is,
    /// 431 when the headers made it so.
    fn too_big(&mut self, buf: &[u8]) {
        let line = memchr::memchr(b'\n', buf).unwrap_or(buf.len());
        let status = if line > MAX_HEAD { 414 } else { 431 };
        self.fail(status, "the request line and headers are limited to 8 KiB");
    }

    fn fail(&mut self, status: u16, why: &str) {
        write_response(&mut self.out, Reply::text(status, why), false, true);
        self.closing = true;
    }

    /// When [`expire`](Self::expire) next has something to do.
    pub fn deadline(&self) -> Nanos {
        // A client that reads nothing is the one to blame first: requests
        // it sent behind unread responses wait for it.
        if self.pending_output() > 0 {
            return self.last_progress + nanos(WRITE_TIMEOUT);
        }
        if let Some(started) = self.request_started
            && !self.closing
        {
            return started + nanos(REQUEST_TIMEOUT);
        }
        self.last_progress + nanos(IDLE_TIMEOUT)
    }

    /// Applies the time limits at `now`. Returns true when the connection
    /// should close at once (idle, or a client that reads nothing); a
    /// request that took too long is answered 408 first.
    pub fn expire(&mut self, now: Nanos) -> bool {
        if now < self.deadline() {
            return false;
        }
        if self.request_started.is_some() && !self.closing && self.pending_output() == 0 {
            self.fail(408, "the request took too long to arrive");
            self.request_started = None;
            self.last_progress = now;
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Site for Echo {
        fn serve(&mut self, asked: Asked) -> Reply {
            match asked.path {
                "/" => Reply::text(200, &format!("q={}", asked.query)),
                _ => Reply::text(404, "no such page"),
            }
        }
    }

    fn run(input: &[u8]) -> (String, bool) {
        let mut s = Session::new(0);
        s.receive(input, 0, &mut Echo);
        (
            String::from_utf8_lossy(&s.out.to_vec()).into_owned(),
            s.closing,
        )
    }

    #[test]
    fn pipelined_requests_in_order_and_keep_alive() {
        let (out, closing) =
            run(b"GET /?a=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\n\r\n");
        let first = out.find("200 OK").expect("first answered");
        let second = out.find("404 Not Found").expect("second answered");
        assert!(first < second, "{out}");
        assert!(out.contains("q=a=1"), "{out}");
        assert!(!closing);
    }

    #[test]
    fn head_has_length_but_no_body() {
        let (out, _) = run(b"HEAD / HTTP/1.1\r\n\r\n");
        assert!(out.contains("Content-Length: 3\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\n"), "{out}");
    }

    #[test]
    fn errors_answer_and_close() {
        for (input, status) in [
            (&b"POST / HTTP/1.1\r\n\r\n"[..], "405"),
            (b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", "400"),
            (b"\x00\x01garbage\r\n\r\n", "400"),
            (b"GET http://x/ HTTP/1.1\r\n\r\n", "400"),
        ] {
            let (out, closing) = run(input);
            assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{out}");
            assert!(out.contains("Connection: close"), "{out}");
            assert!(closing);
        }
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(run(long.as_bytes()).0.starts_with("HTTP/1.1 414 "));
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        let req = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(run(req.as_bytes()).0.starts_with("HTTP/1.1 431 "));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "b".repeat(MAX_HEAD));
        assert!(run(big.as_bytes()).0.starts_with("HTTP/1.1 431 "));
    }

    #[test]
    fn http10_closes_unless_asked_and_11_closes_when_asked() {
        assert!(run(b"GET / HTTP/1.0\r\n\r\n").1);
        assert!(!run(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").1);
        assert!(run(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").1);
    }

    #[test]
    fn trickled_request_times_out_with_408() {
        let mut s = Session::new(0);
        for (i, b) in b"GET / HT".iter().enumerate() {
            s.receive(&[*b], i as Nanos * 1_000_000_000, &mut Echo);
        }
        assert!(s.out.is_empty());
        let limit = nanos(REQUEST_TIMEOUT);
        assert!(!s.expire(limit - 1));
        assert!(!s.expire(limit));
        assert!(String::from_utf8_lossy(&s.out.to_vec()).starts_with("HTTP/1.1 408 "));
        assert!(s.closing);
    }

    #[test]
    fn unread_output_stops_reading_and_times_out() {
        let mut s = Session::new(0);
        let one = b"GET / HTTP/1.1\r\n\r\n";
        s.receive(one, 0, &mut Echo);
        assert!(s.wants_input());
        for _ in 0..OUTPUT_LIMIT {
            if s.pending_output() >= OUTPUT_LIMIT {
                break;
            }
            s.receive(one, 0, &mut Echo);
        }
        assert!(!s.closing);
        assert!(!s.wants_input());
        // Requests that come now wait, unanswered, within the input limit.
        let answered = s.served;
        s.receive(one, 0, &mut Echo);
        assert_eq!(s.served, answered);
        assert!(!s.expire(nanos(WRITE_TIMEOUT) - 1));
        assert!(s.expire(nanos(WRITE_TIMEOUT)));
    }

    #[test]
    fn idle_connection_closes() {
        let mut s = Session::new(0);
        s.receive(b"GET / HTTP/1.1\r\n\r\n", 5, &mut Echo);
        let n = s.pending_output();
        s.wrote(n, 5);
        assert!(!s.expire(5 + nanos(IDLE_TIMEOUT) - 1));
        assert!(s.expire(5 + nanos(IDLE_TIMEOUT)));
    }
}
