//! Streaming replication against the built binary: a replica
//! (`--replica-of`) started after some jobs (its snapshot) and fed the rest
//! as they happen (the stream) holds what its primary holds, serves reads,
//! refuses changes with DRAINING, resyncs after its connection is cut
//! (dropping what was deleted meanwhile), and leaves a directory that
//! beanstalkd 1.12 starts on with the same jobs.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::replicas::{jobs, put_once_in_step, replica_of, until_following, until_in_step};
use common::{Client, Server, TempDir, put};

#[test]
fn a_replica_holds_what_its_primary_holds_and_refuses_changes() {
    let (pd, rd) = (TempDir::new("repl-primary"), TempDir::new("repl-replica"));
    let p = Server::start(&["-b", pd.arg()]);
    let mut c = p.connect();
    c.expect("use mail\r\n", "USING mail\r\n");
    c.expect("watch mail\r\n", "WATCHING 2\r\n");
    // Before the replica: these reach it in its snapshot.
    for i in 0..20 {
        put(&mut c, i, 0, 60, format!("before {i}").as_bytes());
    }
    c.expect("delete 3\r\n", "DELETED\r\n");
    let r = replica_of(p.port, &rd);
    let mut rc = r.connect();
    until_in_step(&mut c, &mut rc, 40);
    // After: through the stream, each kind of change.
    for i in 0..10 {
        put(&mut c, 100 + i, 0, 60, format!("after {i}").as_bytes());
    }
    put(&mut c, 1, 3600, 60, b"delayed");
    let reserved = String::from_utf8(c.ask("reserve\r\n")).unwrap();
    let id: u64 = reserved.split(' ').nth(1).unwrap().parse().unwrap();
    c.expect(format!("bury {id} 7\r\n"), "BURIED\r\n");
    c.expect("delete 5\r\n", "DELETED\r\n");
    c.expect("kick 1\r\n", "KICKED 1\r\n");
    let held = String::from_utf8(c.ask("reserve\r\n")).unwrap();
    assert!(held.starts_with("RESERVED "), "{held}");
    c.expect("release 2 9 0\r\n", "RELEASED\r\n");
    until_in_step(&mut c, &mut rc, 40);
    // Reads are served; every change is refused, the connection in step.
    let s = rc.yaml("stats");
    assert_eq!(s["role"], "replica");
    assert_eq!(s["primary"], format!("127.0.0.1:{}", p.port));
    assert_eq!(s["replica-following"], "true");
    assert_eq!(c.stat("stats", "replicas"), "1");
    for cmd in [
        "put 0 0 10 1\r\nx\r\n",
        "delete 1\r\n",
        "reserve-with-timeout 0\r\n",
        "kick 10\r\n",
        "pause-tube mail 10\r\n",
    ] {
        assert_eq!(rc.ask(cmd), b"DRAINING\r\n", "{cmd}");
    }
    rc.expect("use mail\r\n", "USING mail\r\n");
    assert!(rc.ask("peek-ready\r\n").starts_with(b"FOUND "));
    assert_eq!(
        rc.stat("stats-tube mail", "current-jobs-buried"),
        c.stat("stats-tube mail", "current-jobs-buried")
    );
    // A new job on the replica, once promoted, could not take an id the
    // primary gave: ids only rise (checked in the engine's tests; here, the
    // replica has heard of the newest).
    common::stop(r);
    common::stop(p);
}

/// A TCP proxy the test can cut: what the replica reaches the primary
/// through.
struct Proxy {
    port: u16,
    links: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn to(target: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let links: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let kept = links.clone();
        std::thread::spawn(move || {
            for client in l.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut held = kept.lock().unwrap();
                held.push(client.try_clone().unwrap());
                held.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 65536];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, links }
    }

    /// Cuts every connection through it (new ones still go through).
    fn cut(&self) {
        for s in self.links.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn a_cut_replica_resyncs_and_drops_what_was_deleted_meanwhile() {
    let (pd, rd) = (TempDir::new("repl-cut-p"), TempDir::new("repl-cut-r"));
    let p = Server::start(&["-b", pd.arg()]);
    let proxy = Proxy::to(p.port);
    let mut c = p.connect();
    for i in 0..30 {
        put(&mut c, 0, 0, 60, format!("job {i}").as_bytes());
    }
    let r = replica_of(proxy.port, &rd);
    let mut rc = r.connect();
    until_in_step(&mut c, &mut rc, 60);
    let before = rc.stat("stats", "replica-records-applied");
    proxy.cut();
    // While it is away: deletes it cannot hear of, and new jobs. Some
    // may reach it before the cut is seen; whatever it missed, the
    // resync brings.
    for id in 1..=10 {
        c.expect(format!("delete {id}\r\n"), "DELETED\r\n");
    }
    for i in 0..5 {
        put(&mut c, 0, 0, 60, format!("new {i}").as_bytes());
    }
    until_in_step(&mut c, &mut rc, 60);
    let s = rc.yaml("stats");
    assert_eq!(s["replica-following"], "true");
    assert!(
        s["replica-records-applied"].parse::<u64>().unwrap() > before.parse::<u64>().unwrap(),
        "{s:?}"
    );
    common::stop(r);
    common::stop(p);
}

#[test]
fn a_replicas_directory_starts_beanstalkd_with_the_same_jobs() {
    let Some(bs) = std::env::var_os("SPROUT_REFERENCE_BEANSTALKD") else {
        panic!(
            "SPROUT_REFERENCE_BEANSTALKD is not set (scripts/test sets it to Debian's beanstalkd)"
        );
    };
    let (pd, rd) = (TempDir::new("repl-bs-p"), TempDir::new("repl-bs-r"));
    let p = Server::start(&["-b", pd.arg()]);
    let mut c = p.connect();
    c.expect("use t\r\n", "USING t\r\n");
    c.expect("watch t\r\n", "WATCHING 2\r\n");
    for i in 0..8 {
        put(&mut c, i, 0, 60, format!("body {i}").as_bytes());
    }
    put(&mut c, 5, 3600, 60, b"later");
    let r = String::from_utf8(c.ask("reserve\r\n")).unwrap();
    let id: u64 = r.split(' ').nth(1).unwrap().parse().unwrap();
    c.expect(format!("bury {id} 1\r\n"), "BURIED\r\n");
    c.expect("delete 2\r\n", "DELETED\r\n");
    let rep = replica_of(p.port, &rd);
    let mut rc = rep.connect();
    until_in_step(&mut c, &mut rc, 20);
    let want = jobs(&mut c, 20);
    common::stop(rep);
    let b = Server::start_bin(bs.to_str().unwrap(), &["-b", rd.arg()]);
    let mut bc = b.connect();
    assert_eq!(jobs(&mut bc, 20), want);
    common::stop(b);
    common::stop(p);
}

#[test]
fn replicate_is_refused_without_a_binlog_and_unknown_to_beanstalkd() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    assert_eq!(c.ask("sprout-replicate\r\n"), b"NO_BINLOG\r\n");
    c.expect_closed();
    // A replica needs a directory of its own.
    let out = std::process::Command::new(common::sprout_bin())
        .args(["--replica-of", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--replica-of needs -b DIR"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // At most 8 replicas at once: a 9th is told OUT_OF_MEMORY and closed,
    // so streams cannot hold more than 8 times their bound.
    let dir = TempDir::new("repl-many");
    let p = Server::start(&["-b", dir.arg()]);
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut c = p.connect();
        c.send(b"sprout-replicate\r\n");
        assert!(c.line().starts_with("REPLICATING "));
        held.push(c);
    }
    let mut ninth = p.connect();
    assert_eq!(ninth.ask("sprout-replicate\r\n"), b"OUT_OF_MEMORY\r\n");
    ninth.expect_closed();
    drop(held);
    common::stop(p);
    if let Some(bs) = std::env::var_os("SPROUT_REFERENCE_BEANSTALKD") {
        let b = Server::start_bin(bs.to_str().unwrap(), &[]);
        assert_eq!(
            b.connect().ask("sprout-replicate\r\n"),
            b"UNKNOWN_COMMAND\r\n"
        );
        common::stop(b);
    }
    common::stop(s);
}

/// A primary that waits for one replica, and that replica, in step.
fn synced_pair(timeout_ms: u64, pd: &TempDir, rd: &TempDir) -> (Server, Server, Client) {
    let p = Server::start(&[
        "-b",
        pd.arg(),
        "--sync-replicas",
        "1",
        "--sync-timeout",
        &timeout_ms.to_string(),
    ]);
    let mut c = p.connect();
    // With no replica in step a put is refused, and nothing is stored.
    assert_eq!(
        common::try_put(&mut c, 0, 0, 60, b"early"),
        "OUT_OF_MEMORY\r\n"
    );
    assert_eq!(c.ask("delete 1\r\n"), b"INTERNAL_ERROR\r\n");
    assert_eq!(c.stat("stats", "current-jobs-ready"), "0");
    let r = replica_of(p.port, rd);
    put_once_in_step(&mut c);
    (p, r, c)
}

#[test]
fn with_sync_replicas_a_reply_means_the_replica_has_the_change() {
    let (pd, rd) = (TempDir::new("repl-sync-p"), TempDir::new("repl-sync-r"));
    let (p, r, mut c) = synced_pair(5000, &pd, &rd);
    let mut rc = r.connect();
    c.expect("watch default\r\n", "WATCHING 1\r\n");
    for i in 0..50 {
        let id = put(&mut c, i, 0, 60, format!("job {i}").as_bytes());
        // At once, no waiting: the reply came after the replica had it.
        let peek = String::from_utf8(rc.ask(format!("peek {id}\r\n"))).unwrap();
        assert_eq!(
            peek,
            format!("FOUND {id} {}\r\njob {i}\r\n", format!("job {i}").len())
        );
        if i % 5 == 0 {
            c.expect(format!("delete {id}\r\n"), "DELETED\r\n");
            assert_eq!(rc.ask(format!("peek {id}\r\n")), b"NOT_FOUND\r\n");
        }
    }
    let got = String::from_utf8(c.ask("reserve\r\n")).unwrap();
    let id: u64 = got.split(' ').nth(1).unwrap().parse().unwrap();
    c.expect(format!("bury {id} 3\r\n"), "BURIED\r\n");
    assert_eq!(rc.stat(&format!("stats-job {id}"), "state"), "buried");
    common::stop(r);
    common::stop(p);
}

#[test]
fn a_held_reply_waits_for_a_stopped_replica_and_is_never_sent_late() {
    let (pd, rd) = (TempDir::new("repl-hold-p"), TempDir::new("repl-hold-r"));
    let (p, r, mut c) = synced_pair(5000, &pd, &rd);
    r.signal(libc::SIGSTOP);
    c.send(b"put 0 0 60 4\r\nheld\r\n");
    // No reply while the replica cannot have the job.
    c.expect_silence(Duration::from_millis(300));
    r.signal(libc::SIGCONT);
    let reply = c.line();
    assert!(reply.starts_with("INSERTED "), "{reply}");
    common::stop(r);
    common::stop(p);
    // Past --sync-timeout the reply is never sent: the connection closes.
    let (pd, rd) = (TempDir::new("repl-late-p"), TempDir::new("repl-late-r"));
    let (p, r, mut c) = synced_pair(300, &pd, &rd);
    r.signal(libc::SIGSTOP);
    c.send(b"put 0 0 60 4\r\nlate\r\n");
    c.expect_closed();
    r.signal(libc::SIGCONT);
    common::stop(r);
    common::stop(p);
    // So too when the replica is gone altogether (no ACK will come to
    // wake the check).
    let (pd, rd) = (TempDir::new("repl-gone-p"), TempDir::new("repl-gone-r"));
    let (p, r, mut c) = synced_pair(300, &pd, &rd);
    r.signal(libc::SIGSTOP);
    c.send(b"put 0 0 60 4\r\ngone\r\n");
    common::crash(r);
    c.expect_closed();
    common::stop(p);
}

/// GET `path` from the HTTP port: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn a_replica_says_so_in_readyz_metrics_and_the_page() {
    let (pd, rd) = (TempDir::new("repl-web-p"), TempDir::new("repl-web-r"));
    let p = Server::start(&["-b", pd.arg()]);
    let primary = format!("127.0.0.1:{}", p.port);
    let (r, h) = Server::start_http(&["-b", rd.arg(), "--replica-of", &primary], |_| {});
    let mut rc = r.connect();
    until_following(&mut rc);
    assert_eq!(http_get(h, "/readyz"), (503, "replica\n".to_string()));
    let (_, metrics) = http_get(h, "/metrics");
    for line in [
        "sprout_replica 1",
        "sprout_replica_following 1",
        "sprout_replicas 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in /metrics");
    }
    let (_, json) = http_get(h, "/status.json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["server"]["role"], "replica");
    assert_eq!(v["server"]["primary"], primary.as_str());
    assert_eq!(v["server"]["following"], true);
    let (_, page) = http_get(h, "/");
    assert!(page.contains(&format!("replica of {primary}")), "{page}");
    // The primary counts its replica.
    let mut c = p.connect();
    assert_eq!(c.stat("stats", "replicas"), "1");
    common::stop(r);
    common::stop(p);
}

#[test]
fn a_replica_under_f0_acknowledges_only_what_it_has_fsynced() {
    let (pd, rd) = (TempDir::new("repl-f0-p"), TempDir::new("repl-f0-r"));
    let shim = TempDir::new("repl-f0-shim");
    let so = common::build_shim("held_fsync", &shim);
    let flag = shim.0.join("hold");
    let p = Server::start(&["-b", pd.arg(), "--sync-replicas", "1"]);
    let primary = format!("127.0.0.1:{}", p.port);
    let r = Server::start_with(
        common::sprout_bin(),
        &["-b", rd.arg(), "-f0", "--replica-of", &primary],
        |cmd| {
            cmd.env("LD_PRELOAD", &so).env("HELD_FSYNC_FLAG", &flag);
        },
    );
    let mut c = p.connect();
    put_once_in_step(&mut c);
    // The replica's disk holds its fsync: the primary's reply waits.
    std::fs::write(&flag, b"").unwrap();
    c.send(b"put 0 0 60 4\r\nheld\r\n");
    c.expect_silence(Duration::from_millis(300));
    std::fs::remove_file(&flag).unwrap();
    let reply = c.line();
    assert!(reply.starts_with("INSERTED "), "{reply}");
    common::stop(r);
    common::stop(p);
}

#[test]
fn sproutctl_puts_on_the_primary_whichever_server_it_tries_first() {
    let (pd, rd) = (TempDir::new("repl-ctl-p"), TempDir::new("repl-ctl-r"));
    let p = Server::start(&["-b", pd.arg()]);
    let r = replica_of(p.port, &rd);
    let mut rc = r.connect();
    until_following(&mut rc);
    let (primary, replica) = (
        format!("127.0.0.1:{}", p.port),
        format!("127.0.0.1:{}", r.port),
    );
    // Both orders: sproutctl starts at a server its pid picks, so each
    // list is run several times.
    for list in [
        format!("{replica},{primary}"),
        format!("{primary},{replica}"),
    ] {
        for _ in 0..3 {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_sproutctl"))
                .args(["put", "--tube", "ctl", "hello"])
                .env("SPROUT_SERVERS", &list)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let mut c = p.connect();
    assert_eq!(c.stat("stats-tube ctl", "current-jobs-ready"), "6");
    // Only the replica: refused, nothing stored, exit 69 (unavailable).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sproutctl"))
        .args(["--server", &replica, "put", "--tube", "ctl", "hello"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("takes no changes now"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.stat("stats-tube ctl", "current-jobs-ready"), "6");
    common::stop(r);
    common::stop(p);
}

/// What producers and workers were told before the primary died.
#[derive(Default)]
struct Told {
    /// Puts answered INSERTED: id and body.
    inserted: Vec<(u64, String)>,
    /// Deletes answered DELETED.
    deleted: Vec<u64>,
}

/// One line of reply, or None once the connection is gone.
fn reply_line(r: &mut std::io::BufReader<TcpStream>) -> Option<String> {
    use std::io::BufRead;
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(n) if n > 0 && line.ends_with("\r\n") => Some(line.trim_end().to_string()),
        _ => None,
    }
}

#[test]
fn with_sync_replicas_kill_9_of_the_primary_loses_no_acknowledged_change() {
    let (pd, rd) = (TempDir::new("repl-kill-p"), TempDir::new("repl-kill-r"));
    let (mut p, r, _c) = synced_pair(5000, &pd, &rd);
    let told = Arc::new(Mutex::new(Told::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in 0..3 {
        let (told, stop, port) = (told.clone(), stop.clone(), p.port);
        threads.push(std::thread::spawn(move || {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut w = s.try_clone().unwrap();
            let mut rd = std::io::BufReader::new(s);
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = format!("p{t}-{n}");
                n += 1;
                if write!(w, "put 0 0 60 {}\r\n{body}\r\n", body.len()).is_err() {
                    return;
                }
                match reply_line(&mut rd) {
                    Some(l) if l.starts_with("INSERTED ") => {
                        let id = l[9..].parse().unwrap();
                        told.lock().unwrap().inserted.push((id, body));
                    }
                    Some(l) => panic!("put: {l}"),
                    None => return,
                }
            }
        }));
    }
    for _ in 0..2 {
        let (told, stop, port) = (told.clone(), stop.clone(), p.port);
        threads.push(std::thread::spawn(move || {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut w = s.try_clone().unwrap();
            let mut rd = std::io::BufReader::new(s);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if w.write_all(b"reserve-with-timeout 1\r\n").is_err() {
                    return;
                }
                let Some(l) = reply_line(&mut rd) else { return };
                if l == "TIMED_OUT" {
                    continue;
                }
                let id: u64 = l.split(' ').nth(1).unwrap().parse().unwrap();
                if reply_line(&mut rd).is_none() || write!(w, "delete {id}\r\n").is_err() {
                    return;
                }
                match reply_line(&mut rd) {
                    Some(l) if l == "DELETED" => told.lock().unwrap().deleted.push(id),
                    Some(l) => panic!("delete: {l}"),
                    None => return,
                }
            }
        }));
    }
    // Mid-load, with changes in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    while told.lock().unwrap().inserted.len() < 300 {
        assert!(Instant::now() < deadline, "the load never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    p.signal(libc::SIGKILL);
    assert!(p.wait_exit(Duration::from_secs(5)).is_some());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().expect("a load thread failed");
    }
    let told = told.lock().unwrap();
    let deleted: std::collections::HashSet<u64> = told.deleted.iter().copied().collect();
    let upto = told.inserted.iter().map(|(id, _)| *id).max().unwrap_or(0) + 10;
    let mut rc = r.connect();
    let held = jobs(&mut rc, upto);
    let mut lost = 0;
    for (id, body) in &told.inserted {
        if deleted.contains(id) {
            continue;
        }
        match held.get(id) {
            Some((_, _, _, peek)) if peek.ends_with(&format!("\r\n{body}\r\n")) => {}
            _ => lost += 1,
        }
    }
    let back = deleted.iter().filter(|id| held.contains_key(id)).count();
    println!(
        "acknowledged puts {}, deletes {}; on the replica: {} jobs; lost {lost}; deleted but back {back}",
        told.inserted.len(),
        told.deleted.len(),
        held.len()
    );
    assert_eq!((lost, back), (0, 0));
    common::stop(r);
}
