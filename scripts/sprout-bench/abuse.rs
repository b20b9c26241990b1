//! Misbehaving clients, for the abuse benchmark: while one of these runs,
//! scripts/bench measures another client's put-reserve-delete latency and
//! the server's memory, and compares both with a quiet server.
//!
//! Plain blocking sockets and threads: these clients are meant to be
//! unpleasant, not efficient. Each prints `key=value` figures of what it
//! managed to do, and checks the replies it reads.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `put` declaring 4294967295 bytes, then the bytes, as fast as they go.
    HugePut,
    /// `count` connections each sending one command a byte at a time,
    /// spread over the whole run.
    Trickle,
    /// `count` connections that ask for 64 KB bodies and never read.
    NeverReads,
    /// One connection watching `count` new tubes, then closing.
    Tubes,
    /// `count` jobs put with an hour's delay, then exit.
    Delayed,
    /// Random bytes and overlong lines as fast as the server takes them.
    Garbage,
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "huge-put" => Kind::HugePut,
            "trickle" => Kind::Trickle,
            "never-reads" => Kind::NeverReads,
            "tubes" => Kind::Tubes,
            "delayed" => Kind::Delayed,
            "garbage" => Kind::Garbage,
            _ => return Err(format!("unknown abuse {s}")),
        })
    }
}

pub struct Config {
    pub port: u16,
    pub kind: Kind,
    pub secs: f64,
    pub count: u64,
}

/// Runs the abuse; returns its figures as `key=value` pairs.
pub fn run(cfg: &Config) -> io::Result<String> {
    let until = Instant::now() + Duration::from_secs_f64(cfg.secs);
    match cfg.kind {
        Kind::HugePut => huge_put(cfg.port, until),
        Kind::Trickle => trickle(cfg.port, cfg.count.max(1), cfg.secs),
        Kind::NeverReads => never_reads(cfg.port, cfg.count.max(1), until),
        Kind::Tubes => tubes(cfg.port, cfg.count, until),
        Kind::Delayed => delayed(cfg.port, cfg.count),
        Kind::Garbage => garbage(cfg.port, until),
    }
}

fn connect(port: u16) -> io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn bad(what: String) -> io::Error {
    io::Error::other(what)
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(bad("the server closed the connection".into()));
    }
    Ok(line)
}

/// The whole 4 GiB body goes, then its CRLF, then the JOB_TOO_BIG is
/// read; again until time is up (the last put is left unfinished).
fn huge_put(port: u16, until: Instant) -> io::Result<String> {
    let s = connect(port)?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut w = s;
    let chunk = vec![b'x'; 1 << 20];
    let (mut sent, mut refused) = (0u64, 0u64);
    'puts: while Instant::now() < until {
        w.write_all(b"put 0 0 10 4294967295\r\n")?;
        let mut left = u32::MAX as u64;
        while left > 0 {
            if Instant::now() >= until {
                break 'puts;
            }
            let n = left.min(chunk.len() as u64) as usize;
            w.write_all(&chunk[..n])?;
            left -= n as u64;
            sent += n as u64;
        }
        w.write_all(b"\r\n")?;
        let line = read_line(&mut r)?;
        if line != "JOB_TOO_BIG\r\n" {
            return Err(bad(format!("a 4294967295-byte put got {line:?}")));
        }
        refused += 1;
    }
    Ok(format!("body_bytes_sent={sent} job_too_big={refused}"))
}

/// Every connection's command advances by one byte per tick; the replies
/// are read at the end.
fn trickle(port: u16, conns: u64, secs: f64) -> io::Result<String> {
    const CMD: &[u8] = b"list-tube-used\r\n";
    let mut socks: Vec<TcpStream> = (0..conns)
        .map(|_| connect(port))
        .collect::<Result<_, _>>()?;
    let gap = Duration::from_secs_f64(secs / CMD.len() as f64);
    for i in 0..CMD.len() {
        for s in socks.iter_mut() {
            s.write_all(&CMD[i..i + 1])?;
        }
        std::thread::sleep(gap);
    }
    let mut ok = 0;
    for s in socks {
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let line = read_line(&mut BufReader::new(s))?;
        if line != "USING default\r\n" {
            return Err(bad(format!("a trickled list-tube-used got {line:?}")));
        }
        ok += 1;
    }
    Ok(format!(
        "conns={conns} bytes_each={} replies_ok={ok}",
        CMD.len()
    ))
}

/// Each connection puts one large job and then asks for it again and
/// again without reading a reply, until its socket takes no more.
fn never_reads(port: u16, conns: u64, until: Instant) -> io::Result<String> {
    let body = vec![b'b'; 65000];
    let mut socks = Vec::new();
    for i in 0..conns {
        let s = connect(port)?;
        let mut w = s.try_clone()?;
        write!(w, "use never-reads-{i}\r\nput 0 0 60 {}\r\n", body.len())?;
        w.write_all(&body)?;
        w.write_all(b"\r\n")?;
        let mut r = BufReader::new(s.try_clone()?);
        read_line(&mut r)?;
        let line = read_line(&mut r)?;
        let id = (line.strip_prefix("INSERTED "))
            .and_then(|v| v.trim_end().parse::<u64>().ok())
            .ok_or_else(|| bad(format!("put got {line:?}")))?;
        s.set_write_timeout(Some(Duration::from_millis(50)))?;
        socks.push((s, format!("peek {id}\r\n").into_bytes(), false));
    }
    let mut sent = 0u64;
    while Instant::now() < until {
        let mut all_full = true;
        for (s, cmd, full) in socks.iter_mut() {
            if *full {
                continue;
            }
            match s.write(cmd) {
                Ok(n) if n == cmd.len() => {
                    sent += 1;
                    all_full = false;
                }
                // A partial write or a timeout: the socket is full.
                Ok(_) | Err(_) => *full = true,
            }
        }
        if all_full {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let full = socks.iter().filter(|s| s.2).count();
    Ok(format!("conns={conns} peeks_sent={sent} conns_full={full}"))
}

/// Watches new tubes in batches of 1,000 (sending a batch, then reading
/// its replies), then closes the connection, which drops them all. sprout
/// refuses a watch past its bound on one connection (OUT_OF_MEMORY); the
/// abuser then stops, and says how many it made and how many were refused.
fn tubes(port: u16, count: u64, until: Instant) -> io::Result<String> {
    let s = connect(port)?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut w = io::BufWriter::new(s);
    let (mut made, mut refused) = (0u64, 0u64);
    while made + refused < count && refused == 0 && Instant::now() < until {
        let sent = made + refused;
        let batch = (count - sent).min(1000);
        for i in sent..sent + batch {
            write!(w, "watch abuse-tube-{i}\r\n")?;
        }
        w.flush()?;
        for _ in 0..batch {
            let line = read_line(&mut r)?;
            if line == "OUT_OF_MEMORY\r\n" {
                refused += 1;
            } else if line == format!("WATCHING {}\r\n", made + 2) {
                made += 1;
            } else {
                return Err(bad(format!("watch got {line:?}")));
            }
        }
    }
    Ok(format!("tubes_made={made} refused={refused}"))
}

/// Puts `count` jobs with an hour's delay, pipelined in batches.
fn delayed(port: u16, count: u64) -> io::Result<String> {
    let start = Instant::now();
    let s = connect(port)?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut w = io::BufWriter::new(s);
    writeln!(w, "use delayed\r")?;
    w.flush()?;
    read_line(&mut r)?;
    let body = [b'd'; 100];
    let mut done = 0u64;
    while done < count {
        let batch = (count - done).min(1000);
        for _ in 0..batch {
            w.write_all(b"put 0 3600 60 100\r\n")?;
            w.write_all(&body)?;
            w.write_all(b"\r\n")?;
        }
        w.flush()?;
        for _ in 0..batch {
            let line = read_line(&mut r)?;
            if !line.starts_with("INSERTED ") {
                return Err(bad(format!("put got {line:?}")));
            }
        }
        done += batch;
    }
    Ok(format!(
        "delayed_jobs={done} fill_secs={:.2}",
        start.elapsed().as_secs_f64()
    ))
}

/// A writer sends garbage lines (and now and then an overlong line or a
/// lone LF) as fast as it can; a reader drains the replies. No line
/// starts with a lowercase letter, so none is a command.
fn garbage(port: u16, until: Instant) -> io::Result<String> {
    let s = connect(port)?;
    let mut reader = s.try_clone()?;
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let mut w = s;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut sent = 0u64;
    let mut batch = Vec::with_capacity(1 << 16);
    while Instant::now() < until {
        batch.clear();
        while batch.len() < 60_000 {
            let len = (rand() % 60) as usize + 1;
            let start = batch.len();
            batch.extend((0..len).map(|_| (rand() % 94) as u8 + 33));
            // Commands go by prefix: a line starting `quit` would close the
            // connection, one starting `reserve` would block it.
            if batch[start].is_ascii_lowercase() {
                batch[start] = b'#';
            }
            match rand() % 50 {
                0 => batch.extend(std::iter::repeat_n(b'g', 300)),
                1 => batch.push(b'\n'),
                _ => {}
            }
            batch.extend_from_slice(b"\r\n");
        }
        w.write_all(&batch)?;
        sent += batch.len() as u64;
    }
    w.shutdown(std::net::Shutdown::Write)?;
    let replies = drain.join().unwrap_or(0);
    Ok(format!("garbage_bytes_sent={sent} reply_bytes={replies}"))
}
