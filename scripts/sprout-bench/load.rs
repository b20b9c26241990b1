//! The load generator: N connections driven from one thread by one mio
//! loop, so that it costs little per command and a second core is enough
//! for it. Each connection runs one role of a workload; every reply is
//! matched to the command it answers and its latency recorded.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::hist::Hist;
use crate::interest::arm;
use crate::reply::{self, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// put only, one outstanding per connection.
    Put,
    /// put, reserve, delete, one outstanding per connection.
    Cycle,
    /// batches of `depth` puts, then `depth` reserves, then `depth`
    /// deletes, each batch in one write.
    Pipeline,
    /// half the connections put (the body carries the send time), half
    /// reserve and delete; latency is end to end.
    ProduceConsume,
    /// put `jobs` jobs and stop; then delete them all.
    Fill,
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "put" => Workload::Put,
            "cycle" => Workload::Cycle,
            "pipeline" => Workload::Pipeline,
            "produce-consume" => Workload::ProduceConsume,
            "fill" => Workload::Fill,
            _ => return Err(format!("unknown workload {s}")),
        })
    }
}

pub struct Config {
    pub port: u16,
    pub workload: Workload,
    pub conns: usize,
    pub secs: f64,
    pub body: usize,
    pub depth: usize,
    pub jobs: u64,
    /// Distinct tubes the connections use (0: one each).
    pub tubes: usize,
    /// Extra, empty tubes every connection also watches.
    pub watch_extra: usize,
    /// Connections opened first and left idle.
    pub idle: usize,
    /// Tubes created first, each holding one long-delayed job.
    pub extra_tubes: usize,
    /// The server's pid, to read its memory (fill).
    pub server_pid: Option<u32>,
    /// Fill only: leave the jobs in the server.
    pub keep: bool,
}

#[derive(Default)]
pub struct Report {
    pub commands: u64,
    pub elapsed: f64,
    pub latency: Hist,
    pub end_to_end: Hist,
    pub errors: u64,
    /// RSS in KiB before the fill, after it, and after deleting every job.
    pub rss_kib: Option<(u64, u64, u64)>,
    pub fill_secs: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Setup,
    Put,
    Reserve,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Put,
    Cycle,
    Pipeline,
    Producer,
    Consumer,
    Fill,
}

struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    input: Vec<u8>,
    pending: VecDeque<(Cmd, Instant)>,
    role: Role,
    /// Ids of a pipeline batch, or of every job a fill put.
    ids: Vec<u64>,
    tube: String,
    /// Registered for writable events: only while output waits, so that
    /// acknowledgements do not wake the loop.
    armed: bool,
}

/// Everything the roles share.
struct Shared {
    cfg_body: usize,
    depth: usize,
    put_cmd: Vec<u8>,
    start: Instant,
    measure_from: Instant,
    stop_at: Instant,
    fill_left: u64,
    backlog: u64,
    backlog_limit: u64,
    parked: Vec<usize>,
    report: Report,
}

fn put_command(body: usize) -> Vec<u8> {
    let mut put = format!("put 0 0 120 {body}\r\n").into_bytes();
    put.resize(put.len() + body, b'x');
    put.extend_from_slice(b"\r\n");
    put
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn connect(port: u16) -> io::Result<TcpStream> {
    let s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    Ok(TcpStream::from_std(s))
}

impl Conn {
    fn send(&mut self, cmd: Cmd, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        self.pending.push_back((cmd, Instant::now()));
    }
}

/// Runs the workload and returns what was measured.
pub fn run(cfg: &Config) -> io::Result<Report> {
    raise_fd_limit();
    let mut idle = Vec::with_capacity(cfg.idle);
    for _ in 0..cfg.idle {
        idle.push(connect(cfg.port)?);
    }
    if cfg.extra_tubes > 0 {
        make_tubes(cfg.port, cfg.extra_tubes)?;
    }
    let mut poll = Poll::new()?;
    let mut conns = Vec::with_capacity(cfg.conns);
    for i in 0..cfg.conns {
        let mut stream = connect(cfg.port)?;
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)?;
        let role = match cfg.workload {
            Workload::Put => Role::Put,
            Workload::Cycle => Role::Cycle,
            Workload::Pipeline => Role::Pipeline,
            Workload::ProduceConsume if i % 2 == 0 => Role::Producer,
            Workload::ProduceConsume => Role::Consumer,
            Workload::Fill => Role::Fill,
        };
        let tube = match (cfg.workload, cfg.tubes) {
            (Workload::ProduceConsume, 0) => "bench".to_string(),
            (_, 0) => format!("bench-{i}"),
            (_, t) => format!("bench-{}", i % t),
        };
        let mut c = Conn {
            stream,
            out: Vec::new(),
            input: Vec::new(),
            pending: VecDeque::new(),
            role,
            ids: Vec::new(),
            tube,
            armed: false,
        };
        let setup = format!("use {0}\r\nwatch {0}\r\nignore default\r\n", c.tube);
        c.out.extend_from_slice(setup.as_bytes());
        for _ in 0..3 {
            c.pending.push_back((Cmd::Setup, Instant::now()));
        }
        for k in 0..cfg.watch_extra {
            c.send(Cmd::Setup, format!("watch idle-{k}\r\n").as_bytes());
        }
        conns.push(c);
    }
    let now = Instant::now();
    let run_for = Duration::from_secs_f64(cfg.secs);
    let mut sh = Shared {
        cfg_body: cfg.body,
        depth: cfg.depth.max(1),
        put_cmd: put_command(cfg.body),
        start: now,
        measure_from: now + run_for / 10,
        stop_at: now + run_for,
        fill_left: cfg.jobs,
        backlog: 0,
        backlog_limit: 4 * cfg.conns as u64,
        parked: Vec::new(),
        report: Report::default(),
    };
    let rss_before = cfg.server_pid.map(rss_kib);
    if cfg.workload == Workload::Fill {
        sh.stop_at = now + Duration::from_secs(3600);
        sh.measure_from = now;
    }
    drive(&mut poll, &mut conns, &mut sh)?;
    let mut report = std::mem::take(&mut sh.report);
    report.elapsed = sh
        .stop_at
        .min(Instant::now())
        .duration_since(sh.measure_from)
        .as_secs_f64();
    if cfg.workload == Workload::Fill && !cfg.keep {
        report.fill_secs = sh.start.elapsed().as_secs_f64();
        report.elapsed = report.fill_secs;
        let filled = cfg.server_pid.map(rss_kib);
        // Delete every job, 64 commands per write.
        for c in &mut conns {
            c.role = Role::Fill;
        }
        sh.stop_at = Instant::now() + Duration::from_secs(3600);
        drain(&mut poll, &mut conns, &mut sh)?;
        std::thread::sleep(Duration::from_millis(500));
        let drained = cfg.server_pid.map(rss_kib);
        if let (Some(a), Some(b), Some(c)) = (rss_before, filled, drained) {
            report.rss_kib = Some((a, b, c));
        }
    }
    drop(idle);
    Ok(report)
}

/// Creates `n` tubes, each kept alive by one job delayed for an hour.
fn make_tubes(port: u16, n: usize) -> io::Result<()> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    let mut cmds = Vec::new();
    for k in 0..n {
        cmds.extend_from_slice(format!("use other-{k}\r\nput 0 3600 10 1\r\nx\r\n").as_bytes());
    }
    // Write from a thread while reading here: the replies would fill the
    // socket buffers and stall a single writer.
    let mut w = s.try_clone()?;
    let writer = std::thread::spawn(move || w.write_all(&cmds));
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut seen = 0;
    while seen < 2 * n {
        let got = s.read(&mut buf)?;
        if got == 0 {
            return Err(io::Error::other(
                "the server closed the tube-making connection",
            ));
        }
        replies.extend_from_slice(&buf[..got]);
        let mut at = 0;
        while let Some((r, used)) = reply::parse(&replies[at..]) {
            if !matches!(r.word(), b"USING" | b"INSERTED") {
                return Err(io::Error::other("making tubes: unexpected reply"));
            }
            seen += 1;
            at += used;
        }
        replies.drain(..at);
    }
    writer
        .join()
        .map_err(|_| io::Error::other("writer panicked"))??;
    Ok(())
}

fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on our own process.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// What a connection does once its setup is answered, or when it may go on.
fn start(c: &mut Conn, i: usize, sh: &mut Shared) {
    if Instant::now() >= sh.stop_at {
        return;
    }
    match c.role {
        Role::Put | Role::Cycle => c.send(Cmd::Put, &sh.put_cmd),
        Role::Pipeline => {
            for _ in 0..sh.depth {
                c.send(Cmd::Put, &sh.put_cmd);
            }
        }
        Role::Producer => {
            if sh.backlog >= sh.backlog_limit {
                sh.parked.push(i);
                return;
            }
            sh.backlog += 1;
            let mut body = format!("{:020}", sh.start.elapsed().as_nanos()).into_bytes();
            body.resize(sh.cfg_body.max(20), b'x');
            let mut cmd = format!("put 0 0 120 {}\r\n", body.len()).into_bytes();
            cmd.extend_from_slice(&body);
            cmd.extend_from_slice(b"\r\n");
            c.send(Cmd::Put, &cmd);
        }
        Role::Consumer => c.send(Cmd::Reserve, b"reserve-with-timeout 1\r\n"),
        Role::Fill => {
            if sh.fill_left > 0 {
                sh.fill_left -= 1;
                c.send(Cmd::Put, &sh.put_cmd);
            }
        }
    }
}

/// Handles one reply to `cmd`, sent at `at`.
fn on_reply(c: &mut Conn, i: usize, cmd: Cmd, at: Instant, r: &Reply, sh: &mut Shared) {
    let now = Instant::now();
    if cmd == Cmd::Setup {
        if c.pending.is_empty() {
            start(c, i, sh);
        }
        return;
    }
    if now >= sh.measure_from && now < sh.stop_at {
        sh.report.commands += 1;
        sh.report
            .latency
            .record(now.duration_since(at).as_nanos() as u64);
    }
    let ok = matches!(
        (cmd, r.word()),
        (Cmd::Put, b"INSERTED")
            | (Cmd::Reserve, b"RESERVED" | b"TIMED_OUT")
            | (Cmd::Delete, b"DELETED")
    );
    if !ok {
        sh.report.errors += 1;
    }
    match (c.role, cmd) {
        (Role::Put, _) | (Role::Cycle, Cmd::Delete) => start(c, i, sh),
        (Role::Cycle, Cmd::Put) => c.send(Cmd::Reserve, b"reserve-with-timeout 0\r\n"),
        (Role::Cycle, Cmd::Reserve) => match r.number(1) {
            Some(id) => c.send(Cmd::Delete, format!("delete {id}\r\n").as_bytes()),
            None => start(c, i, sh),
        },
        (Role::Pipeline, _) => {
            if let (Cmd::Reserve, Some(id)) = (cmd, r.number(1)) {
                c.ids.push(id);
            }
            if !c.pending.is_empty() {
                return;
            }
            match cmd {
                Cmd::Put => {
                    for _ in 0..sh.depth {
                        c.send(Cmd::Reserve, b"reserve-with-timeout 0\r\n");
                    }
                }
                Cmd::Reserve => {
                    let ids = std::mem::take(&mut c.ids);
                    for id in ids {
                        c.send(Cmd::Delete, format!("delete {id}\r\n").as_bytes());
                    }
                    if c.pending.is_empty() {
                        start(c, i, sh);
                    }
                }
                _ => start(c, i, sh),
            }
        }
        (Role::Producer, _) => start(c, i, sh),
        (Role::Consumer, Cmd::Reserve) => match (r.number(1), r.body) {
            (Some(id), Some(body)) => {
                if let Some(sent) = std::str::from_utf8(&body[..20.min(body.len())])
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    let e2e = (sh.start.elapsed().as_nanos() as u64).saturating_sub(sent);
                    if now >= sh.measure_from && now < sh.stop_at {
                        sh.report.end_to_end.record(e2e);
                    }
                }
                c.send(Cmd::Delete, format!("delete {id}\r\n").as_bytes());
            }
            _ => start(c, i, sh),
        },
        (Role::Consumer, _) => {
            sh.backlog = sh.backlog.saturating_sub(1);
            start(c, i, sh);
        }
        (Role::Fill, Cmd::Put) => {
            if let Some(id) = r.number(1) {
                c.ids.push(id);
            }
            start(c, i, sh);
        }
        _ => {}
    }
}

/// Reads, answers and writes until every connection is idle past the stop
/// time.
fn drive(poll: &mut Poll, conns: &mut [Conn], sh: &mut Shared) -> io::Result<()> {
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 1 << 16];
    let mut dirty: Vec<usize> = (0..conns.len()).collect();
    loop {
        for &i in &dirty {
            flush(poll, &mut conns[i], i)?;
        }
        dirty.clear();
        let idle = conns
            .iter()
            .all(|c| c.pending.is_empty() && c.out.is_empty());
        let finished = Instant::now() >= sh.stop_at || sh.fill_left == 0;
        if idle && (finished && sh.parked.is_empty() || Instant::now() >= sh.stop_at) {
            return Ok(());
        }
        if Instant::now() > sh.stop_at + Duration::from_secs(30) {
            return Err(io::Error::other("replies stopped coming"));
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in &events {
            let i = ev.token().0;
            let c = &mut conns[i];
            read_all(c, &mut buf)?;
            let input = std::mem::take(&mut c.input);
            let mut at = 0;
            while let Some((r, n)) = reply::parse(&input[at..]) {
                let (cmd, sent) = c
                    .pending
                    .pop_front()
                    .ok_or_else(|| io::Error::other("a reply nobody asked for"))?;
                on_reply(c, i, cmd, sent, &r, sh);
                at += n;
            }
            c.input = input;
            c.input.drain(..at);
            dirty.push(i);
            // A consumer freed room: parked producers go on.
            while sh.backlog < sh.backlog_limit
                && let Some(p) = sh.parked.pop()
            {
                start(&mut conns[p], p, sh);
                dirty.push(p);
            }
        }
    }
}

/// Deletes every id the fill put, 64 per write.
fn drain(poll: &mut Poll, conns: &mut [Conn], sh: &mut Shared) -> io::Result<()> {
    for c in conns.iter_mut() {
        c.role = Role::Put;
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 1 << 16];
    let refill = |c: &mut Conn| {
        for _ in 0..64 {
            let Some(id) = c.ids.pop() else { break };
            c.send(Cmd::Delete, format!("delete {id}\r\n").as_bytes());
        }
    };
    for (i, c) in conns.iter_mut().enumerate() {
        refill(c);
        flush(poll, c, i)?;
    }
    while conns.iter().any(|c| !c.pending.is_empty()) {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in &events {
            let i = ev.token().0;
            let c = &mut conns[i];
            read_all(c, &mut buf)?;
            let mut at = 0;
            while let Some((r, n)) = reply::parse(&c.input[at..]) {
                if r.word() != b"DELETED" {
                    sh.report.errors += 1;
                }
                c.pending.pop_front();
                at += n;
            }
            c.input.drain(..at);
            if c.pending.is_empty() {
                refill(c);
            }
            flush(poll, c, i)?;
        }
    }
    Ok(())
}

/// Reads everything the socket has into the connection's input.
fn read_all(c: &mut Conn, buf: &mut [u8]) -> io::Result<()> {
    loop {
        match c.stream.read(buf) {
            Ok(0) => return Err(io::Error::other("the server closed a connection")),
            Ok(n) => c.input.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes what it can, and asks for a writable event only if some is left.
fn flush(poll: &Poll, c: &mut Conn, i: usize) -> io::Result<()> {
    let mut sent = 0;
    while sent < c.out.len() {
        match c.stream.write(&c.out[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    c.out.drain(..sent);
    let want = !c.out.is_empty();
    arm(poll.registry(), &mut c.stream, Token(i), &mut c.armed, want)
}
