//! The ceiling server: parses each command just enough to answer it with a
//! fixed reply of the right shape, and keeps no queue. Whatever rate it
//! reaches is what the machine, the kernel and the load generator allow;
//! every server's figure is reported as a fraction of it.
//!
//! Like a good server it reads all a socket has (stopping at a short read,
//! as sprout does), answers every complete command, and sends the answers
//! with one write.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::interest::arm;

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Body size of the last put, given back by reserve.
    body: usize,
    /// Registered for writable events (only while output is waiting, so
    /// that acknowledgements do not wake the loop).
    armed: bool,
}

/// Serves on 127.0.0.1:`port` until killed.
pub fn serve(port: u16) -> io::Result<()> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut listener = TcpListener::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events {
            if ev.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    let _ = stream.set_nodelay(true);
                    let entry = conns.vacant_entry();
                    poll.registry().register(
                        &mut stream,
                        Token(entry.key()),
                        Interest::READABLE,
                    )?;
                    entry.insert(Conn {
                        stream,
                        input: Vec::new(),
                        output: Vec::new(),
                        body: 0,
                        armed: false,
                    });
                }
                continue;
            }
            let key = ev.token().0;
            let Some(c) = conns.get_mut(key) else {
                continue;
            };
            let mut closed = false;
            let hung_up = ev.is_read_closed() || ev.is_error();
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        c.input.extend_from_slice(&buf[..n]);
                        // A short read emptied the socket; as in sprout, the
                        // next data or hang-up brings a new event.
                        if n < buf.len() && !hung_up {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            answer(c);
            while !c.output.is_empty() {
                match c.stream.write(&c.output) {
                    Ok(n) => {
                        c.output.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            if closed {
                let mut c = conns.remove(key);
                let _ = poll.registry().deregister(&mut c.stream);
                continue;
            }
            let want = !c.output.is_empty();
            arm(
                poll.registry(),
                &mut c.stream,
                Token(key),
                &mut c.armed,
                want,
            )?;
        }
    }
}

/// Answers every complete command in `c.input`.
fn answer(c: &mut Conn) {
    let mut at = 0;
    while let Some(eol) = memchr::memmem::find(&c.input[at..], b"\r\n") {
        let line = &c.input[at..at + eol];
        let word = line.split(|&b| b == b' ').next().unwrap_or(b"");
        let mut end = at + eol + 2;
        match word {
            b"put" => {
                let n: usize =
                    std::str::from_utf8(line.rsplit(|&b| b == b' ').next().unwrap_or(b""))
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                if c.input.len() < end + n + 2 {
                    break; // the body is not all here yet
                }
                end += n + 2;
                c.body = n;
                c.output.extend_from_slice(b"INSERTED 1\r\n");
            }
            b"reserve" | b"reserve-with-timeout" => {
                let _ = write!(c.output, "RESERVED 1 {}\r\n", c.body);
                c.output.resize(c.output.len() + c.body, b'x');
                c.output.extend_from_slice(b"\r\n");
            }
            b"delete" => c.output.extend_from_slice(b"DELETED\r\n"),
            b"use" => {
                c.output.extend_from_slice(b"USING ");
                c.output.extend_from_slice(&line[4.min(line.len())..]);
                c.output.extend_from_slice(b"\r\n");
            }
            b"watch" | b"ignore" => c.output.extend_from_slice(b"WATCHING 1\r\n"),
            _ => c.output.extend_from_slice(b"UNKNOWN_COMMAND\r\n"),
        }
        at = end;
    }
    c.input.drain(..at);
}
