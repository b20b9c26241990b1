//! Persistence with -b at the disk's edges: a full disk, a file size
//! limit, and when fsync runs (watched with strace).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Client, Server, TempDir, put, sprout_bin, stop, try_put};

/// A tmpfs of `kib` KiB on a fresh directory, unmounted when dropped.
/// The tests run as root (README); mounting is how they fill a disk.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(kib: u64) -> Tmpfs {
        let dir = TempDir::new("tmpfs");
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.arg())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {}: the tests must run as root",
            dir.arg()
        );
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.arg())
            .status();
    }
}

/// Puts until the disk is full; returns the ids inserted and the refusal.
fn fill(c: &mut Client, body: &[u8], ids: &mut Vec<u64>) -> String {
    for _ in 0..5000 {
        let reply = try_put(c, 0, 0, 60, body);
        match reply.strip_prefix("INSERTED ") {
            Some(id) => ids.push(id.trim_end().parse().unwrap()),
            None => return reply,
        }
    }
    panic!("the disk never filled");
}

#[test]
fn a_full_disk_refuses_changes_but_never_deletes() {
    let fs = Tmpfs::mount(256);
    let args = ["-b", fs.dir.arg(), "-s", "16384"];
    let s = Server::start(&args);
    let mut c = s.connect();
    let mut ids = Vec::new();
    assert_eq!(fill(&mut c, &[b'j'; 1000], &mut ids), "OUT_OF_MEMORY\r\n");
    assert!(ids.len() > 20, "only {} puts fit", ids.len());
    // The refused put left no job behind; its id is used up.
    let refused = ids.last().unwrap() + 1;
    c.expect(format!("peek {refused}\r\n"), "NOT_FOUND\r\n");
    // Smaller puts fit in what is left, until nothing does.
    assert_eq!(fill(&mut c, b"s", &mut ids), "OUT_OF_MEMORY\r\n");
    let st = c.yaml("stats");
    assert_eq!(st["current-jobs-ready"], ids.len().to_string());
    assert_eq!(st["total-jobs"], ids.len().to_string());

    // Each bury and kick-job writes a record: go on until one is refused,
    // and check that the refused command changed nothing.
    let x = ids[0];
    let mut refusals = 0;
    for _ in 0..5000 {
        c.expect(
            format!("reserve-job {x}\r\n"),
            format!("RESERVED {x} 1000\r\n{}\r\n", "j".repeat(1000)),
        );
        let bury = c.ask(format!("bury {x} 7\r\n"));
        if bury == b"INTERNAL_ERROR\r\n" {
            // beanstalkd's reply; unlike beanstalkd, the job stays with its worker.
            assert_eq!(c.stat(&format!("stats-job {x}"), "state"), "reserved");
            c.expect(format!("release {x} 0 5\r\n"), "OUT_OF_MEMORY\r\n");
            assert_eq!(c.stat(&format!("stats-job {x}"), "state"), "reserved");
            refusals += 1;
            break;
        }
        assert_eq!(bury, b"BURIED\r\n");
        let kick = c.ask(format!("kick-job {x}\r\n"));
        if kick == b"OUT_OF_MEMORY\r\n" {
            assert_eq!(c.stat(&format!("stats-job {x}"), "state"), "buried");
            refusals += 1;
            // Taking it out of buried is never refused (beanstalkd does not
            // log it); the bury after that is.
            continue;
        }
        assert_eq!(kick, b"KICKED\r\n");
    }
    assert!(refusals > 0, "no bury or kick-job was refused");
    // A release without delay is not refused either, as in beanstalkd.
    c.expect(format!("release {x} 0 0\r\n"), "RELEASED\r\n");

    // Every delete succeeds on the full disk, and frees it.
    for id in &ids {
        c.expect(format!("delete {id}\r\n"), "DELETED\r\n");
    }
    assert_eq!(c.stat("stats", "current-jobs-ready"), "0");
    let last = put(&mut c, 0, 0, 60, &[b'n'; 1000]);
    assert!(last > refused);
    stop(s);
    // On disk: exactly the one job put after the deletes.
    let s = Server::start(&args);
    let mut c = s.connect();
    assert_eq!(c.stat("stats", "current-jobs-ready"), "1");
    assert_eq!(c.stat(&format!("stats-job {last}"), "state"), "ready");
    assert_eq!(put(&mut c, 0, 0, 60, b"z"), last + 1);
    stop(s);
}

/// A record bigger than the process may write (RLIMIT_FSIZE): the put is
/// refused with OUT_OF_MEMORY, and nothing of it reaches the disk.
#[test]
fn a_file_size_limit_refuses_the_put_that_exceeds_it() {
    let dir = TempDir::new("fsize");
    let args = ["-b", dir.arg(), "-s", "16384", "-z", "300000"];
    let limited = Server::start_with(sprout_bin(), &args, |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 65536,
                    rlim_max: 65536,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let mut c = limited.connect();
    let small = put(&mut c, 0, 0, 60, b"small");
    assert_eq!(
        try_put(&mut c, 0, 0, 60, &vec![b'b'; 100_000]),
        "OUT_OF_MEMORY\r\n"
    );
    c.expect(format!("peek {}\r\n", small + 1), "NOT_FOUND\r\n");
    let after = put(&mut c, 0, 0, 60, b"after");
    assert_eq!(after, small + 2);
    stop(limited);
    let s = Server::start(&args);
    let mut c = s.connect();
    assert_eq!(c.stat("stats", "current-jobs-ready"), "2");
    c.expect(
        format!("peek {after}\r\n"),
        format!("FOUND {after} 5\r\nafter\r\n"),
    );
    stop(s);
}

/// strace attached to a running server, tracing the calls that write
/// records, sync them, and send replies.
struct Trace {
    child: std::process::Child,
    out: PathBuf,
    _dir: TempDir,
}

impl Trace {
    fn attach(pid: i32) -> Trace {
        let dir = TempDir::new("strace");
        let out = dir.0.join("trace");
        let log = dir.0.join("log");
        let mut child = std::process::Command::new("strace")
            .args(["-f", "-tt", "-s", "256", "-o"])
            .arg(&out)
            .args([
                "-e",
                "trace=pwrite64,fdatasync,fsync,write,sendto,sendmsg,writev",
            ])
            .args(["-p", &pid.to_string()])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("strace is installed by scripts/test");
        // strace says on stderr when it has attached (bounded wait).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("attached")) {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("strace did not attach");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        Trace {
            child,
            out,
            _dir: dir,
        }
    }

    /// The calls traced so far, one per line.
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits (at most 10 s) until the calls traced so far satisfy `done`;
    /// strace writes a call's line only once the call has returned, which
    /// may be after the client has seen its effect.
    fn wait_until(&self, done: impl Fn(&[String]) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done(&self.lines()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Detaches and returns the calls traced, one per line.
    fn finish(mut self) -> Vec<String> {
        self.detach();
        std::fs::read_to_string(&self.out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn detach(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: signalling our own child; SIGINT makes strace detach.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
            let _ = self.child.wait();
        }
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        self.detach();
    }
}

/// Index of the first line after `from` that contains every word of `all`.
fn find(lines: &[String], from: usize, all: &[&str]) -> Option<usize> {
    (from..lines.len()).find(|&i| all.iter().all(|w| lines[i].contains(w)))
}

/// Index of the first completed fdatasync after line `from` (strace shows
/// a call another thread interrupts as "unfinished" then "resumed").
fn synced_after(lines: &[String], from: usize) -> Option<usize> {
    (from..lines.len()).find(|&i| {
        let l = &lines[i];
        l.contains("fdatasync") && l.contains("= 0") && !l.contains("unfinished")
    })
}

#[test]
fn a_write_is_synced_within_the_interval_without_more_traffic() {
    let dir = TempDir::new("fsynctimer");
    let s = Server::start(&["-b", dir.arg(), "-f", "200"]);
    let mut c = s.connect();
    let trace = Trace::attach(s.pid());
    put(&mut c, 0, 0, 60, b"durable");
    // No further command: only the timer can sync it. (How soon is for
    // the benchmarks; that it happens at all without traffic is the point.)
    let synced = |lines: &[String]| {
        find(lines, 0, &["pwrite64", "durable"]).is_some_and(|r| synced_after(lines, r).is_some())
    };
    trace.wait_until(synced);
    let lines = trace.finish();
    find(&lines, 0, &["pwrite64", "durable"]).expect("the record was written");
    assert!(
        synced(&lines),
        "no fdatasync after the record within 10 s:\n{}",
        lines.join("\n")
    );
    stop(s);
}

#[test]
fn with_f0_the_reply_waits_for_the_sync() {
    for (flag, held) in [("0", true), ("10000", false)] {
        let dir = TempDir::new("fsync0");
        let s = Server::start(&["-b", dir.arg(), "-f", flag]);
        let mut c = s.connect();
        let trace = Trace::attach(s.pid());
        let id = put(&mut c, 0, 0, 60, b"held");
        let inserted = format!("INSERTED {id}");
        trace.wait_until(|lines| {
            find(lines, 0, &["pwrite64", "held"])
                .is_some_and(|r| find(lines, r, &[&inserted]).is_some())
        });
        let lines = trace.finish();
        let rec = find(&lines, 0, &["pwrite64", "held"]).expect("the record was written");
        let reply = find(&lines, rec, &[&inserted]).expect("the reply was sent");
        let sync = synced_after(&lines, rec);
        if held {
            assert!(
                sync.is_some_and(|s| s < reply),
                "-f0: the reply went out before the fdatasync completed:\n{}",
                lines.join("\n")
            );
        } else {
            // The control: with a long interval the reply does not wait.
            assert!(
                sync.is_none_or(|s| s > reply),
                "-f {flag}:\n{}",
                lines.join("\n")
            );
        }
        stop(s);
    }
}
