//! Persistence with -b: restarts, crashes, damaged files, the directory
//! lock, and the binlog format shared with the real beanstalkd both ways.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Client, Server, TempDir, put, sprout_bin, try_put};

fn stop(mut s: Server) {
    s.signal(libc::SIGTERM);
    assert!(
        s.wait_exit(Duration::from_secs(5)).is_some(),
        "server did not stop"
    );
}

fn crash(mut s: Server) {
    s.signal(libc::SIGKILL);
    assert!(s.wait_exit(Duration::from_secs(5)).is_some());
}

/// A history touching every logged transition. Returns the body of the
/// binary job.
fn build_history(c: &mut Client) -> Vec<u8> {
    c.expect("use work\r\n", "USING work\r\n");
    c.expect("watch work\r\n", "WATCHING 2\r\n");
    c.expect("ignore default\r\n", "WATCHING 1\r\n");
    let binary: Vec<u8> = (0..=255u8).chain(*b"\r\n\r\n").collect();
    assert_eq!(put(c, 5, 0, 60, &binary), 1); // stays ready
    assert_eq!(put(c, 1, 100, 60, b"later"), 2); // stays delayed
    assert_eq!(put(c, 2, 0, 60, b"b1"), 3); // buried second
    assert_eq!(put(c, 3, 0, 60, b"gone"), 4); // deleted
    assert_eq!(put(c, 4, 0, 60, b"b2"), 5); // buried first
    assert_eq!(put(c, 9, 0, 60, b"r"), 6); // released with a new pri
    c.expect("delete 4\r\n", "DELETED\r\n");
    c.expect("reserve-job 5\r\n", "RESERVED 5 2\r\nb2\r\n");
    c.expect("bury 5 40\r\n", "BURIED\r\n");
    c.expect("reserve-job 3\r\n", "RESERVED 3 2\r\nb1\r\n");
    c.expect("bury 3 30\r\n", "BURIED\r\n");
    c.expect("reserve-job 6\r\n", "RESERVED 6 1\r\nr\r\n");
    c.expect("release 6 77 0\r\n", "RELEASED\r\n");
    binary
}

fn check_history(c: &mut Client, binary: &[u8]) {
    c.expect("use work\r\n", "USING work\r\n");
    let mut found = b"FOUND 1 260\r\n".to_vec();
    found.extend_from_slice(binary);
    found.extend_from_slice(b"\r\n");
    c.expect("peek 1\r\n", &found);
    assert_eq!(c.stat("stats-job 1", "state"), "ready");
    let j2 = c.yaml("stats-job 2");
    assert_eq!(j2["state"], "delayed");
    let left: u64 = j2["time-left"].parse().unwrap();
    assert!((90..=100).contains(&left), "time-left {left}");
    c.expect("peek 4\r\n", "NOT_FOUND\r\n");
    // Bury order, not first-record order; bury counts not inflated.
    c.expect("peek-buried\r\n", "FOUND 5 2\r\nb2\r\n");
    let j5 = c.yaml("stats-job 5");
    assert_eq!((j5["pri"].as_str(), j5["buries"].as_str()), ("40", "1"));
    c.expect("kick 1\r\n", "KICKED 1\r\n");
    c.expect("peek-buried\r\n", "FOUND 3 2\r\nb1\r\n");
    assert_eq!(c.stat("stats-job 6", "pri"), "77");
    // Ids go on above every id ever used.
    assert_eq!(put(c, 0, 0, 60, b"new"), 7);
}

#[test]
fn restart_keeps_every_job() {
    let dir = TempDir::new("restart");
    let s = Server::start(&["-b", dir.arg()]);
    let binary = build_history(&mut s.connect());
    stop(s);
    let s = Server::start(&["-b", dir.arg()]);
    let mut c = s.connect();
    check_history(&mut c, &binary);
    let st = c.yaml("stats");
    assert_eq!(st["current-jobs-buried"], "1");
    assert_eq!(st["binlog-current-index"], "2");
    assert_eq!(st["binlog-oldest-index"], "1");
    stop(s);
}

#[test]
fn jobs_survive_a_crash() {
    // kill -9 right after the replies: with the default -f every INSERTED
    // job was written before its reply, and survives a process crash.
    for flags in [&[][..], &["-f0"][..], &["-F"][..]] {
        let dir = TempDir::new("crash");
        let mut args = vec!["-b", dir.arg()];
        args.extend_from_slice(flags);
        let s = Server::start(&args);
        let mut c = s.connect();
        for i in 0..50 {
            put(&mut c, i, 0, 60, format!("job {i}").as_bytes());
        }
        c.expect("delete 50\r\n", "DELETED\r\n");
        crash(s);
        let s = Server::start(&args);
        let mut c = s.connect();
        assert_eq!(c.stat("stats", "current-jobs-ready"), "49", "{flags:?}");
        c.expect("peek 49\r\n", "FOUND 49 6\r\njob 48\r\n");
        c.expect("peek 50\r\n", "NOT_FOUND\r\n");
        assert_eq!(put(&mut c, 0, 0, 60, b"x"), 51);
    }
}

#[test]
fn ids_are_not_reused_after_everything_is_deleted() {
    let dir = TempDir::new("ids");
    let s = Server::start(&["-b", dir.arg(), "-s", "4096"]);
    let mut c = s.connect();
    for _ in 0..100 {
        let id = put(&mut c, 0, 0, 60, &[b'x'; 100]);
        c.expect(format!("delete {id}\r\n"), "DELETED\r\n");
    }
    stop(s);
    for round in 0..2 {
        let s = Server::start(&["-b", dir.arg(), "-s", "4096"]);
        let mut c = s.connect();
        assert_eq!(put(&mut c, 0, 0, 60, b"x"), 101 + round);
        c.expect(format!("delete {}\r\n", 101 + round), "DELETED\r\n");
        stop(s);
    }
    // Old files went away as their jobs did.
    assert!(dir.files().len() <= 3, "{:?}", dir.files());
}

#[test]
fn damaged_tail_is_dropped_and_the_rest_recovered() {
    let dir = TempDir::new("torn");
    let s = Server::start(&["-b", dir.arg()]);
    let mut c = s.connect();
    for i in 0..10 {
        put(&mut c, 0, 0, 60, format!("j{i}").as_bytes());
    }
    stop(s);
    let path = dir.0.join("binlog.1");
    let bytes = std::fs::read(&path).unwrap();
    // Cut the last record in half, then add garbage after it.
    let full = 4 + 7 + 80 + 4;
    let mut damaged = bytes[..bytes.len() - full / 2].to_vec();
    damaged.extend_from_slice(b"\x07\x00\x00\x00garbage that is not a record");
    set_contents(&path, &damaged);
    // A file of pure garbage too, and an empty one.
    set_contents(&dir.0.join("binlog.3"), &[0xAB; 1000]);
    set_contents(&dir.0.join("binlog.4"), b"");
    let log = dir.0.join("stderr");
    let s = Server::start_with(sprout_bin(), &["-b", dir.arg()], |cmd| {
        cmd.stderr(std::fs::File::create(&log).unwrap());
    });
    let mut c = s.connect();
    assert_eq!(c.stat("stats", "current-jobs-ready"), "9");
    // The log says what was dropped, and where.
    let said = std::fs::read_to_string(&log).unwrap();
    let torn_at = bytes.len() - full;
    assert!(
        said.contains("binlog.1: ") && said.contains(&format!("at byte {torn_at}")),
        "{said}"
    );
    assert!(said.contains("binlog.3 has format version"), "{said}");
    c.expect("peek 9\r\n", "FOUND 9 2\r\nj8\r\n");
    c.expect("peek 10\r\n", "NOT_FOUND\r\n");
    // The torn record's id could not be read, so it is given out again: the
    // put it belonged to never completed.
    assert_eq!(put(&mut c, 0, 0, 60, b"x"), 10);
    stop(s);
}

fn set_contents(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let dir = TempDir::new("lock");
    let s = Server::start(&["-b", dir.arg()]);
    let out = std::process::Command::new(sprout_bin())
        .args(["-b", dir.arg(), "-l", "127.0.0.1", "-p"])
        .arg(common::free_port().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10));
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked"));
    stop(s);
}

fn beanstalkd() -> String {
    let b = std::env::var("SPROUT_REFERENCE_BEANSTALKD").unwrap_or_else(|_| "beanstalkd".into());
    assert!(
        std::process::Command::new(&b).arg("-v").output().is_ok(),
        "the reference beanstalkd ({b}) is not installed; scripts/test installs it"
    );
    b
}

/// What both servers agree a restored job looks like.
fn job_summary(c: &mut Client, id: u64) -> Vec<String> {
    let y = c.yaml(&format!("stats-job {id}"));
    ["tube", "state", "pri", "delay", "ttr"]
        .iter()
        .map(|k| y[*k].trim_matches('"').to_string())
        .collect()
}

#[test]
fn beanstalkd_reads_what_sprout_writes_and_back() {
    let bean = beanstalkd();
    let dir = TempDir::new("compat");
    // sprout writes, beanstalkd reads.
    let s = Server::start(&["-b", dir.arg()]);
    let binary = build_history(&mut s.connect());
    let mut c = s.connect();
    let ours: Vec<Vec<String>> = (1..=6)
        .filter(|&id| id != 4)
        .map(|id| job_summary(&mut c, id))
        .collect();
    stop(s);
    let log = dir.0.join("stderr");
    let b = Server::start_with(&bean, &["-b", dir.arg()], |cmd| {
        cmd.stderr(std::fs::File::create(&log).unwrap());
    });
    let mut c = b.connect();
    let theirs: Vec<Vec<String>> = (1..=6)
        .filter(|&id| id != 4)
        .map(|id| job_summary(&mut c, id))
        .collect();
    assert_eq!(ours, theirs);
    let mut found = b"FOUND 1 260\r\n".to_vec();
    found.extend_from_slice(&binary);
    found.extend_from_slice(b"\r\n");
    c.expect("peek 1\r\n", &found);
    c.expect("peek 4\r\n", "NOT_FOUND\r\n");
    // beanstalkd changes some jobs, and writes its own records.
    c.expect("use work\r\n", "USING work\r\n");
    c.expect("kick-job 5\r\n", "KICKED\r\n");
    c.expect("delete 1\r\n", "DELETED\r\n");
    assert_eq!(put(&mut c, 8, 0, 30, b"from beanstalkd"), 7);
    c.expect("reserve-job 6\r\n", "RESERVED 6 1\r\nr\r\n");
    c.expect("bury 6 66\r\n", "BURIED\r\n");
    assert_eq!(put(&mut c, 2, 50, 20, b"delayed"), 8);
    let theirs: Vec<Vec<String>> = [2, 3, 5, 6, 7, 8]
        .iter()
        .map(|&id| job_summary(&mut c, id))
        .collect();
    drop(c);
    drop(b); // beanstalkd has no clean stop: it is killed, as in production
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.is_empty(), "beanstalkd complained: {said}");
    std::fs::remove_file(&log).unwrap();
    // sprout reads beanstalkd's files.
    let s = Server::start(&["-b", dir.arg()]);
    let mut c = s.connect();
    let ours: Vec<Vec<String>> = [2, 3, 5, 6, 7, 8]
        .iter()
        .map(|&id| job_summary(&mut c, id))
        .collect();
    assert_eq!(ours, theirs);
    c.expect("peek 1\r\n", "NOT_FOUND\r\n");
    c.expect("peek 7\r\n", "FOUND 7 15\r\nfrom beanstalkd\r\n");
    // Buried by sprout (a rank on disk), then by beanstalkd (none): in that
    // order, now and after sprout has logged a rank for job 6.
    c.expect("use work\r\n", "USING work\r\n");
    c.expect("peek-buried\r\n", "FOUND 3 2\r\nb1\r\n");
    assert_eq!(put(&mut c, 0, 0, 60, b"x"), 9);
    stop(s);
    let s = Server::start(&["-b", dir.arg()]);
    let mut c = s.connect();
    c.expect("use work\r\n", "USING work\r\n");
    c.expect("kick 1\r\n", "KICKED 1\r\n");
    c.expect("peek-buried\r\n", "FOUND 6 1\r\nr\r\n");
    stop(s);
}

/// The bound README promises: the directory holds at most
/// 3 × (bytes of the live jobs' records) + 4 × -s, besides old files that
/// wait for the fsync which makes their jobs' new records durable. With
/// -f0 none waits once a reply has arrived, so the bound is exact here.
#[test]
fn compaction_keeps_the_directory_small_under_churn() {
    const SIZE: u64 = 16384;
    let dir = TempDir::new("churn");
    let args = ["-b", dir.arg(), "-s", "16384", "-f0"];
    let s = Server::start(&args);
    let mut c = s.connect();
    // Old jobs that pin the first file: one buried, one delayed for long.
    put(&mut c, 0, 0, 60, b"old");
    c.expect("reserve\r\n", "RESERVED 1 3\r\nold\r\n");
    c.expect("bury 1 5\r\n", "BURIED\r\n");
    put(&mut c, 0, 100_000, 60, b"del");
    let live_bytes = 2 * (4 + 7 + 80 + 5);
    let bound = 3 * live_bytes + 4 * SIZE;
    let mut worst = 0;
    for i in 0..5000 {
        let id = put(&mut c, 0, 0, 60, &[b'x'; 200]);
        c.expect(format!("delete {id}\r\n"), "DELETED\r\n");
        if i % 100 == 0 {
            worst = worst.max(dir.files().iter().map(|f| f.1).sum::<u64>());
        }
    }
    assert!(
        worst <= bound,
        "directory reached {worst} bytes, bound {bound}"
    );
    let migrated: u64 = c.stat("stats", "binlog-records-migrated").parse().unwrap();
    assert!(migrated > 0);
    stop(s);
    let s = Server::start(&args);
    let mut c = s.connect();
    c.expect("peek-buried\r\n", "FOUND 1 3\r\nold\r\n");
    assert_eq!(c.stat("stats-job 1", "pri"), "5");
    assert_eq!(c.stat("stats-job 2", "state"), "delayed");
    assert_eq!(c.stat("stats", "current-jobs-ready"), "0");
    stop(s);
}

/// Compaction rewrites an old buried job after jobs buried later; a restart
/// must still kick them in the order they were buried.
#[test]
fn bury_order_survives_compaction() {
    let dir = TempDir::new("buryorder");
    let args = ["-b", dir.arg(), "-s", "8192"];
    let s = Server::start(&args);
    let mut c = s.connect();
    let file_of = |c: &mut Client, id: u64| -> u64 {
        c.stat(&format!("stats-job {id}"), "file").parse().unwrap()
    };
    let churn = |c: &mut Client| {
        let id = put(c, 0, 0, 60, &[b'x'; 300]);
        c.expect(format!("delete {id}\r\n"), "DELETED\r\n");
    };
    assert_eq!(put(&mut c, 0, 0, 60, b"first"), 1);
    c.expect("reserve-job 1\r\n", "RESERVED 1 5\r\nfirst\r\n");
    c.expect("bury 1 0\r\n", "BURIED\r\n");
    let a_home = file_of(&mut c, 1);
    // Into the next file, not yet far enough for compaction to start.
    for _ in 0..20 {
        churn(&mut c);
    }
    assert_eq!(file_of(&mut c, 1), a_home, "moved too early for this test");
    let b = put(&mut c, 0, 0, 60, b"second");
    c.expect(
        format!("reserve-job {b}\r\n"),
        format!("RESERVED {b} 6\r\nsecond\r\n"),
    );
    c.expect(format!("bury {b} 0\r\n"), "BURIED\r\n");
    let b_home = file_of(&mut c, b);
    assert!(b_home > a_home, "the second job must live in a later file");
    let mut moved = false;
    for _ in 0..2000 {
        churn(&mut c);
        if file_of(&mut c, 1) != a_home {
            moved = true;
            break;
        }
    }
    assert!(moved, "compaction never moved the first buried job");
    assert_eq!(
        file_of(&mut c, b),
        b_home,
        "the second job must not have moved"
    );
    stop(s);
    let s = Server::start(&args);
    let mut c = s.connect();
    c.expect("peek-buried\r\n", "FOUND 1 5\r\nfirst\r\n");
    c.expect("kick 1\r\n", "KICKED 1\r\n");
    c.expect("peek-buried\r\n", format!("FOUND {b} 6\r\nsecond\r\n"));
    stop(s);
}

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

/// The binlog fields of stats and stats-job agree with beanstalkd's for the
/// same commands (ones both servers log the same way).
#[test]
fn binlog_stats_match_beanstalkd() {
    let bean = beanstalkd();
    let mut seen = Vec::new();
    for bin in [sprout_bin(), bean.as_str()] {
        let dir = TempDir::new("bstats");
        let s = Server::start_bin(bin, &["-b", dir.arg(), "-s", "100000"]);
        let mut c = s.connect();
        for i in 0..3 {
            put(&mut c, i, 0, 60, b"job");
        }
        c.expect("reserve\r\n", "RESERVED 1 3\r\njob\r\n");
        c.expect("bury 1 9\r\n", "BURIED\r\n");
        c.expect("kick 1\r\n", "KICKED 1\r\n");
        c.expect("reserve\r\n", "RESERVED 2 3\r\njob\r\n");
        c.expect("release 2 4 5\r\n", "RELEASED\r\n");
        c.expect("delete 3\r\n", "DELETED\r\n");
        let st = c.yaml("stats");
        let mut fields: Vec<String> = [
            "binlog-oldest-index",
            "binlog-current-index",
            "binlog-records-migrated",
            "binlog-records-written",
            "binlog-max-size",
        ]
        .iter()
        .map(|k| format!("{k}: {}", st[*k]))
        .collect();
        fields.push(format!("file of 1: {}", c.stat("stats-job 1", "file")));
        fields.push(format!("file of 2: {}", c.stat("stats-job 2", "file")));
        seen.push(fields);
    }
    assert_eq!(seen[0], seen[1], "sprout, then beanstalkd");
    assert!(seen[0].contains(&"binlog-records-written: 7".to_string()));
}
