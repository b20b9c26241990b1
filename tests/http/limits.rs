//! Bad input on the HTTP port: each limit answers with its status or a
//! close, memory stays bounded, and the queue port is served throughout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::common::{Client, Server};
use super::{get, parse_response, raw};

/// The server's resident memory, from /proc.
fn rss_kib(s: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A put, reserve and delete on the queue port.
fn cycle(c: &mut Client) {
    let put = String::from_utf8(c.ask("put 0 0 10 2\r\nhi\r\n")).unwrap();
    assert!(put.starts_with("INSERTED "), "{put}");
    let r = String::from_utf8(c.ask("reserve-with-timeout 5\r\n")).unwrap();
    let id = r.split(' ').nth(1).expect("RESERVED id").to_string();
    c.expect(format!("delete {id}\r\n"), "DELETED\r\n");
}

#[test]
fn a_megabyte_request_line_is_414_and_closed() {
    let (s, h) = Server::start_http(&[], |_| {});
    let mut line = b"GET /".to_vec();
    line.resize(1 << 20, b'a');
    let mut sock = TcpStream::connect(("127.0.0.1", h)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server answers and closes after 8 KiB; the rest may be refused.
    let _ = sock.write_all(&line);
    let mut out = Vec::new();
    let _ = sock.read_to_end(&mut out);
    assert!(
        out.starts_with(b"HTTP/1.1 414 "),
        "{:?}",
        String::from_utf8_lossy(&out[..out.len().min(200)])
    );
    let mut c = s.connect();
    cycle(&mut c);
    // Headers past 8 KiB: 431.
    let req = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(9000));
    assert!(raw(h, req.as_bytes()).starts_with(b"HTTP/1.1 431 "));
    let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
    let req = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert!(raw(h, req.as_bytes()).starts_with(b"HTTP/1.1 431 "));
}

#[test]
fn headers_trickled_a_byte_at_a_time_get_408_at_ten_seconds() {
    let (s, h) = Server::start_http(&[], |_| {});
    let mut sock = TcpStream::connect(("127.0.0.1", h)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let started = Instant::now();
    let mut c = s.connect();
    let mut out = Vec::new();
    let req = b"GET /metrics HTTP/1.1\r\nX-Slow: ".to_vec();
    let mut i = 0;
    // One byte every 50 ms, never finishing, until the server answers.
    while started.elapsed() < Duration::from_secs(20) {
        if sock
            .write_all(&[if i < req.len() { req[i] } else { b'a' }])
            .is_err()
        {
            break;
        }
        i += 1;
        let mut buf = [0u8; 4096];
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if i % 20 == 0 {
            // Job traffic goes on meanwhile.
            cycle(&mut c);
        }
    }
    let took = started.elapsed();
    assert!(
        out.starts_with(b"HTTP/1.1 408 "),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    // The limit counts from the first byte: 10 s, answered on that turn.
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

#[test]
fn a_client_that_never_reads_is_bounded() {
    let (s, h) = Server::start_http(&[], |_| {});
    let before = rss_kib(&s);
    let mut sock = TcpStream::connect(("127.0.0.1", h)).unwrap();
    sock.set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
    // Pipelined requests until the server stops reading (the write times
    // out) or 200 MB went: their responses are never read.
    let mut sent = 0usize;
    while sent < 200 << 20 {
        match sock.write(&req) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(
        sent < 200 << 20,
        "the server read everything sent: {sent} bytes"
    );
    let grown = rss_kib(&s).saturating_sub(before);
    // Responses wait up to 256 KiB, requests up to 8 KiB and a read.
    assert!(grown < 4096, "RSS grew {grown} KiB");
    let mut c = s.connect();
    cycle(&mut c);
    assert_eq!(get(h, "/healthz").status, 200);
}

#[test]
fn connections_past_the_ceiling_get_503() {
    let (s, h) = Server::start_http(&[], |_| {});
    let held: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(("127.0.0.1", h)).unwrap())
        .collect();
    // Every held connection is accepted before the next: one request each.
    for mut sock in held.iter() {
        sock.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
        let mut buf = [0u8; 512];
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = sock.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));
    }
    let out = raw(h, b"GET /healthz HTTP/1.1\r\n\r\n");
    let (r, _) = parse_response(&out, false).expect("a response");
    assert_eq!(r.status, 503);
    let mut c = s.connect();
    cycle(&mut c);
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while get_status(h) != 200 {
        assert!(
            Instant::now() < deadline,
            "still refused after the others closed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn get_status(h: u16) -> u16 {
    parse_response(
        &raw(h, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"),
        false,
    )
    .map_or(0, |(r, _)| r.status)
}
