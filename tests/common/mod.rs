//! Shared helpers: start a real sprout (or beanstalkd) process on a free
//! 127.0.0.1 port and talk raw bytes to it. Every wait is bounded.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod etcd;
pub mod replicas;

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("sprout-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// The `binlog.N` files in it, with their sizes.
    pub fn files(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .filter(|(n, _)| n.starts_with("binlog."))
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

/// (name, quoted) for each tube name in tests/clients/tube_names.txt: the
/// names every client reads back, and whether sprout writes them quoted.
pub fn tube_names() -> Vec<(&'static str, bool)> {
    include_str!("../clients/tube_names.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, how)| (name, how == "quoted"))
        .collect()
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// Whether process `pid` holds the socket listening on 127.0.0.1:`port`
/// (read from /proc, so the server sees no extra command). A connection
/// that succeeds proves only that *some* process listens there: parallel
/// tests may pick the same free port, so wait for this too.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    // Columns: sl local_address rem_address st ... inode (the tenth).
    let sockets: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (_, p) = f.get(1)?.split_once(':')?;
            let listening = u16::from_str_radix(p, 16).ok()? == port && *f.get(3)? == "0A";
            let inode = f.get(9)?;
            listening.then(|| format!("socket:[{inode}]"))
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| sockets.iter().any(|s| target.as_os_str() == s.as_str()))
    })
}

/// Waits (bounded) for `child` to exit and returns its status.
pub fn wait_child(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

pub fn sprout_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sprout")
}

impl Server {
    /// Starts sprout on a free port with extra flags.
    pub fn start(extra: &[&str]) -> Server {
        Self::start_bin(sprout_bin(), extra)
    }

    /// Starts `bin` (sprout or beanstalkd) with `-l 127.0.0.1 -p PORT`.
    pub fn start_bin(bin: &str, extra: &[&str]) -> Server {
        Self::start_with(bin, extra, |_| {})
    }

    /// As start_bin, letting `configure` adjust the command first (limits,
    /// environment).
    pub fn start_with(bin: &str, extra: &[&str], configure: impl Fn(&mut Command)) -> Server {
        Self::try_start_with(bin, extra, configure)
            .unwrap_or_else(|| panic!("{bin} did not start listening"))
    }

    /// Starts sprout with `--http` on a free port as well, and waits for
    /// both ports; returns the server and the HTTP port.
    pub fn start_http(extra: &[&str], configure: impl Fn(&mut Command)) -> (Server, u16) {
        for _ in 0..5 {
            let hport = free_port();
            let addr = format!("127.0.0.1:{hport}");
            let mut args = vec!["--http", &addr];
            args.extend_from_slice(extra);
            let Some(s) = Self::try_start_with(sprout_bin(), &args, &configure) else {
                continue; // the HTTP port was taken: sprout exited
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if listens_on(s.child.id(), hport) {
                    return (s, hport);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("sprout did not start listening for HTTP");
    }

    fn try_start_with(
        bin: &str,
        extra: &[&str],
        configure: impl Fn(&mut Command),
    ) -> Option<Server> {
        for _ in 0..5 {
            // None: lost a port race; try another port.
            if let Some(s) = Self::spawn_on(bin, free_port(), extra, &configure) {
                return Some(s);
            }
        }
        None
    }

    /// Starts sprout on `port` (one this test had before: a node coming
    /// back where its peers know it); None if it does not listen there.
    pub fn start_on(port: u16, extra: &[&str]) -> Option<Server> {
        Self::spawn_on(sprout_bin(), port, extra, |_| {})
    }

    fn spawn_on(
        bin: &str,
        port: u16,
        extra: &[&str],
        configure: impl Fn(&mut Command),
    ) -> Option<Server> {
        let mut cmd = Command::new(bin);
        cmd.args(["-l", "127.0.0.1", "-p", &port.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        configure(&mut cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return None;
            }
            // Another test's server may have taken the port between
            // free_port and our bind: only our own process will do.
            // No probe connection, so stats count only the test's own.
            if listens_on(child.id(), port) {
                return Some(Server { child, port });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// CPU time (user + system) the process has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/PID/stat");
        // Fields after the parenthesised command name; utime and stime are
        // fields 14 and 15 of the whole line.
        let rest = &stat[stat.rfind(')').expect("comm field") + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// Waits (bounded) for the process to exit and returns its status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        wait_child(&mut self.child, within)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Client {
    pub s: TcpStream,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        Client { s }
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.s.write_all(bytes.as_ref()).expect("send");
    }

    pub fn recv_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.s
            .read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
        buf
    }

    /// Reads up to and including the next CRLF.
    pub fn line(&mut self) -> String {
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        while !out.ends_with(b"\r\n") {
            match self.s.read(&mut b) {
                Ok(0) => panic!(
                    "connection closed after {:?}",
                    String::from_utf8_lossy(&out)
                ),
                Ok(_) => out.push(b[0]),
                // A stop and continue (SIGSTOP, a ptrace attach) makes a
                // read with SO_RCVTIMEO fail with EINTR: read again.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!(
                    "reading a line after {:?}: {e}",
                    String::from_utf8_lossy(&out)
                ),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Reads one whole reply, with its body or YAML if it has one.
    pub fn reply(&mut self) -> Vec<u8> {
        let line = self.line();
        let mut out = line.clone().into_bytes();
        let words: Vec<&str> = line.trim_end().split(' ').collect();
        let body = match words[0] {
            "OK" => words.get(1),
            "FOUND" | "RESERVED" => words.get(2),
            _ => None,
        };
        if let Some(n) = body {
            let n: usize = n.parse().expect("length");
            out.extend(self.recv_exact(n + 2));
        }
        out
    }

    /// Sends `cmd` and asserts the exact reply.
    pub fn expect(&mut self, cmd: impl AsRef<[u8]>, reply: impl AsRef<[u8]>) {
        let cmd = cmd.as_ref();
        self.send(cmd);
        let got = self.reply();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(reply.as_ref()),
            "reply to {:?}",
            String::from_utf8_lossy(cmd)
        );
    }

    pub fn ask(&mut self, cmd: impl AsRef<[u8]>) -> Vec<u8> {
        self.send(cmd);
        self.reply()
    }

    /// Sends a stats-style command and returns its YAML as a map.
    pub fn yaml(&mut self, cmd: &str) -> HashMap<String, String> {
        let reply = self.ask(format!("{cmd}\r\n"));
        let text = String::from_utf8(reply).expect("utf8");
        assert!(text.starts_with("OK "), "{cmd}: {text}");
        text.lines()
            .skip(2)
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect()
    }

    pub fn stat(&mut self, cmd: &str, key: &str) -> String {
        self.yaml(cmd)
            .remove(key)
            .unwrap_or_else(|| panic!("{cmd} has no {key}"))
    }

    /// Asserts that nothing arrives within `d`.
    pub fn expect_silence(&mut self, d: Duration) {
        let until = Instant::now() + d;
        let mut b = [0u8; 64];
        // Until `d` has passed: an EINTR (see `line`) ends no wait early.
        while let Some(left) = until
            .checked_duration_since(Instant::now())
            .filter(|l| !l.is_zero())
        {
            self.s.set_read_timeout(Some(left)).unwrap();
            match self.s.read(&mut b) {
                Ok(0) => panic!("connection closed"),
                Ok(n) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&b[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    }

    /// Asserts that the server closes the connection (bounded).
    pub fn expect_closed(&mut self) {
        let mut b = [0u8; 64];
        loop {
            match self.s.read(&mut b) {
                Ok(0) => return,
                Ok(n) => panic!("expected close, got {:?}", String::from_utf8_lossy(&b[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("expected close, got {e}"),
            }
        }
    }
}

/// Sends a put and returns the reply line, whatever it is.
pub fn try_put(c: &mut Client, pri: u32, delay: u32, ttr: u32, body: &[u8]) -> String {
    let mut cmd = format!("put {pri} {delay} {ttr} {}\r\n", body.len()).into_bytes();
    cmd.extend_from_slice(body);
    cmd.extend_from_slice(b"\r\n");
    String::from_utf8(c.ask(cmd)).unwrap()
}

/// Puts a job and returns its id; panics on any reply but INSERTED.
pub fn put(c: &mut Client, pri: u32, delay: u32, ttr: u32, body: &[u8]) -> u64 {
    let reply = try_put(c, pri, delay, ttr, body);
    reply
        .strip_prefix("INSERTED ")
        .and_then(|r| r.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("put: {reply}"))
}

/// Stops a server with SIGTERM and waits (bounded) for it to exit.
pub fn stop(mut s: Server) {
    s.signal(libc::SIGTERM);
    assert!(
        s.wait_exit(Duration::from_secs(5)).is_some(),
        "server did not stop"
    );
}

/// Kills a server with SIGKILL and waits (bounded) for it to go.
pub fn crash(mut s: Server) {
    s.signal(libc::SIGKILL);
    assert!(s.wait_exit(Duration::from_secs(5)).is_some());
}

/// Builds `tests/shim/NAME.c` into `dir/NAME.so`, an LD_PRELOAD shim with
/// which a test makes the real binary meet a failing or slow disk.
pub fn build_shim(name: &str, dir: &TempDir) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/shim/{name}.c"));
    let so = dir.0.join(format!("{name}.so"));
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .output()
        .expect("cc (needed to build Rust) builds the shim");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    so
}
