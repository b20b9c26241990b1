//! A small put/reserve/delete load generator for comparing servers.
//!
//! `cargo run --release --example load -- PORT CONNECTIONS SECONDS BODY_BYTES`
//! prints `ops_per_sec` (one op = one put, reserve and delete cycle).
//! scripts/compare runs it against sprout and beanstalkd side by side.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn cycle(port: u16, secs: f64, body: usize, tube: String) -> u64 {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut ask = |w: &mut TcpStream, r: &mut BufReader<TcpStream>, cmd: &[u8]| -> String {
        w.write_all(cmd).unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        line.clone()
    };
    ask(&mut w, &mut r, format!("use {tube}\r\n").as_bytes());
    ask(&mut w, &mut r, format!("watch {tube}\r\n").as_bytes());
    let mut put = format!("put 0 0 60 {body}\r\n").into_bytes();
    put.extend(std::iter::repeat_n(b'x', body));
    put.extend_from_slice(b"\r\n");
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut ops = 0;
    let mut buf = vec![0u8; body + 2];
    while Instant::now() < end {
        let ins = ask(&mut w, &mut r, &put);
        assert!(ins.starts_with("INSERTED"), "{ins}");
        let res = ask(&mut w, &mut r, b"reserve\r\n");
        let id = res.split(' ').nth(1).expect("RESERVED id").to_string();
        r.read_exact(&mut buf).unwrap();
        let del = ask(&mut w, &mut r, format!("delete {id}\r\n").as_bytes());
        assert!(del.starts_with("DELETED"), "{del}");
        ops += 1;
    }
    ops
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let port: u16 = arg(1, "11300").parse().expect("port");
    let conns: usize = arg(2, "10").parse().expect("connections");
    let secs: f64 = arg(3, "3").parse().expect("seconds");
    let body: usize = arg(4, "100").parse().expect("body bytes");
    let start = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|i| std::thread::spawn(move || cycle(port, secs, body, format!("load{i}"))))
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().expect("worker")).sum();
    println!(
        "ops_per_sec {:.0}",
        total as f64 / start.elapsed().as_secs_f64()
    );
}
