//! Epochs and roles against the built binary: `--standby`, `sprout-promote`
//! and `sprout-follow` (what a supervisor sends once etcd has elected a
//! node), the epoch kept on disk across a restart, an old primary that
//! stops taking changes the moment it meets a newer epoch, a demoted
//! primary that never sends a reply it was holding, and ids that keep
//! rising across a promotion.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::replicas::{follow, jobs, put_once_in_step, until_following, until_in_step};
use common::{Server, TempDir, put};

fn standby(dir: &TempDir, extra: &[&str]) -> Server {
    let mut args = vec!["-b", dir.arg(), "--standby"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn addr(s: &Server) -> String {
    format!("127.0.0.1:{}", s.port)
}

#[test]
fn role_commands_check_epochs_and_the_epoch_survives_a_restart() {
    let dir = TempDir::new("fo-roles");
    let s = standby(&dir, &[]);
    let mut c = s.connect();
    // A standby takes no changes, and says what it is.
    assert_eq!(common::try_put(&mut c, 0, 0, 60, b"x"), "DRAINING\r\n");
    assert_eq!(c.stat("stats", "role"), "standby");
    assert_eq!(c.stat("stats", "epoch"), "0");
    // Malformed role commands are BAD_FORMAT; one without its argument,
    // as beanstalkd's `peek`, and unknown sprout- ones, UNKNOWN_COMMAND.
    c.expect("sprout-promote\r\n", "UNKNOWN_COMMAND\r\n");
    for bad in [
        "sprout-promote x\r\n",
        "sprout-promote 5 6\r\n",
        "sprout-follow 127.0.0.1:11300\r\n",
        "sprout-follow nohost 3\r\n",
        "sprout-follow host:0 3\r\n",
        "sprout-follow host:99999 3\r\n",
        "sprout-follow ho/st:1 3\r\n",
    ] {
        c.expect(bad, "BAD_FORMAT\r\n");
    }
    c.expect("sprout-unheard-of\r\n", "UNKNOWN_COMMAND\r\n");
    c.expect("sprout-promote 5\r\n", "PROMOTED 5\r\n");
    // Promoting twice at the same epoch is answered the same.
    c.expect("sprout-promote 5\r\n", "PROMOTED 5\r\n");
    c.expect("sprout-promote 4\r\n", "STALE_EPOCH 5\r\n");
    assert_eq!(c.stat("stats", "role"), "primary");
    assert_eq!(
        put(&mut c, 1, 0, 60, b"kept"),
        2,
        "the refused put used id 1"
    );
    c.expect("sprout-follow 127.0.0.1:1 4\r\n", "STALE_EPOCH 5\r\n");
    assert_eq!(c.stat("stats", "role"), "primary");
    // Demoted: no changes, no primary, the epoch kept.
    c.expect("sprout-demote\r\n", "DEMOTED 5\r\n");
    c.expect("sprout-demote x\r\n", "UNKNOWN_COMMAND\r\n");
    assert_eq!(common::try_put(&mut c, 0, 0, 60, b"x"), "DRAINING\r\n");
    assert_eq!(c.stat("stats", "role"), "standby");
    c.expect("sprout-promote 5\r\n", "STALE_EPOCH 5\r\n");
    common::stop(s);
    assert_eq!(
        std::fs::read_to_string(dir.0.join("sprout.epoch")).unwrap(),
        "epoch 5\n"
    );

    // Restarted: the epoch is the one it had; a standby again, it cannot
    // be promoted at that epoch (another node may hold it by now).
    let s = standby(&dir, &[]);
    let mut c = s.connect();
    assert_eq!(c.stat("stats", "epoch"), "5");
    c.expect("sprout-promote 5\r\n", "STALE_EPOCH 5\r\n");
    c.expect("sprout-promote 6\r\n", "PROMOTED 6\r\n");
    assert_eq!(c.ask("peek 2\r\n"), b"FOUND 2 4\r\nkept\r\n");
    common::stop(s);

    // Without -b there is no epoch to keep: refused.
    let s = Server::start(&[]);
    s.connect().expect("sprout-promote 1\r\n", "NO_BINLOG\r\n");
    s.connect()
        .expect("sprout-follow 127.0.0.1:1 1\r\n", "NO_BINLOG\r\n");
    common::stop(s);
    let out = std::process::Command::new(common::sprout_bin())
        .arg("--standby")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--standby needs -b DIR"));
}

#[test]
fn an_old_primary_that_meets_a_newer_epoch_stops_taking_changes() {
    let (ad, bd, cd) = (
        TempDir::new("fo-old-a"),
        TempDir::new("fo-old-b"),
        TempDir::new("fo-old-c"),
    );
    let (a, b, cn) = (standby(&ad, &[]), standby(&bd, &[]), standby(&cd, &[]));
    let (mut ac, mut bc, mut cc) = (a.connect(), b.connect(), cn.connect());
    ac.expect("sprout-promote 3\r\n", "PROMOTED 3\r\n");
    for i in 0..5 {
        put(&mut ac, i, 0, 60, format!("job{i}").as_bytes());
    }
    follow(&mut bc, &a, 3);
    until_in_step(&mut ac, &mut bc, 5);
    // B is elected (epoch 7) while A, cut off, still thinks it is primary
    // and, asynchronous, takes a put that B never hears of.
    bc.expect("sprout-promote 7\r\n", "PROMOTED 7\r\n");
    let lost = put(&mut ac, 0, 0, 60, b"lost");
    assert_eq!(lost, 6);
    // C, told of epoch 7, follows A by mistake: A hears of the newer epoch
    // in C's greeting and stops taking changes at once.
    cc.expect(
        format!("sprout-follow {} 7\r\n", addr(&a)),
        "FOLLOWING 7\r\n",
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while ac.stat("stats", "role") != "standby" {
        assert!(Instant::now() < deadline, "A never stepped down");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ac.stat("stats", "epoch"), "7");
    assert_eq!(common::try_put(&mut ac, 0, 0, 60, b"no"), "DRAINING\r\n");
    assert_eq!(cc.stat("stats", "replica-following"), "false");
    // A and C follow B: A's lone put is gone from A (it was never on B;
    // asynchronous replication loses it, and B gives its id out again:
    // doc/ha.md), and ids go on from B's.
    for c in [&mut ac, &mut cc] {
        follow(c, &b, 7);
    }
    let next = put(&mut bc, 9, 0, 60, b"after");
    assert!(next > 5, "id {next} after B's 5");
    until_in_step(&mut bc, &mut ac, next + 2);
    until_in_step(&mut bc, &mut cc, next + 2);
    let held = jobs(&mut ac, next + 2);
    assert_eq!(held.len(), 6);
    assert!(
        held.values().all(|j| j.3 != "FOUND 6 4\r\nlost\r\n"),
        "{held:?}"
    );
    assert_eq!(
        ac.ask(format!("peek {next}\r\n")),
        format!("FOUND {next} 5\r\nafter\r\n").as_bytes()
    );
    for s in [a, b, cn] {
        common::stop(s);
    }
}

#[test]
fn a_demoted_primary_never_sends_a_reply_it_held_for_a_replica() {
    let (pd, rd) = (TempDir::new("fo-held-p"), TempDir::new("fo-held-r"));
    let p = standby(&pd, &["--sync-replicas", "1", "--sync-timeout", "60000"]);
    let r = standby(&rd, &[]);
    let mut pc = p.connect();
    pc.expect("sprout-promote 2\r\n", "PROMOTED 2\r\n");
    let mut rc = r.connect();
    follow(&mut rc, &p, 2);
    // In step once a put goes through.
    put_once_in_step(&mut pc);
    // The replica stops reading; a put's reply waits for it.
    r.signal(libc::SIGSTOP);
    let mut waiting = p.connect();
    waiting.send(b"put 0 0 60 4\r\nheld\r\n");
    waiting.expect_silence(Duration::from_millis(300));
    // Demoted: the held reply is never sent, its connection closes.
    pc.expect("sprout-follow 127.0.0.1:1 3\r\n", "FOLLOWING 3\r\n");
    waiting.expect_closed();
    assert_eq!(pc.stat("stats", "role"), "replica");
    assert_eq!(pc.stat("stats", "replicas"), "0");
    r.signal(libc::SIGCONT);
    common::stop(r);
    common::stop(p);
}

#[test]
fn ids_keep_rising_across_a_promotion() {
    let (pd, rd) = (TempDir::new("fo-ids-p"), TempDir::new("fo-ids-r"));
    let p = Server::start(&["-b", pd.arg()]);
    let r = standby(&rd, &[]);
    let mut pc = p.connect();
    for _ in 0..5 {
        put(&mut pc, 0, 0, 60, b"x");
    }
    // The newest ids are deleted: only the stream told the replica of
    // them.
    pc.expect("delete 5\r\n", "DELETED\r\n");
    pc.expect("delete 4\r\n", "DELETED\r\n");
    let mut rc = r.connect();
    follow(&mut rc, &p, 0);
    until_in_step(&mut pc, &mut rc, 5);
    common::crash(p);
    rc.expect("sprout-promote 1\r\n", "PROMOTED 1\r\n");
    assert_eq!(put(&mut rc, 0, 0, 60, b"y"), 6);
    assert_eq!(rc.stat("stats", "role"), "primary");
    common::stop(r);
}

/// A primary whose epoch is older than the replica's is not followed: its
/// records are never applied, and the replica tries again later.
#[test]
fn a_replica_applies_nothing_from_a_primary_of_an_older_epoch() {
    let dir = TempDir::new("fo-stale");
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = fake.local_addr().unwrap().port();
    let r = standby(&dir, &[]);
    let mut rc = r.connect();
    rc.expect(
        format!("sprout-follow 127.0.0.1:{port} 5\r\n"),
        "FOLLOWING 5\r\n",
    );
    fake.set_nonblocking(false).unwrap();
    for attempt in 0..2 {
        let (mut s, _) = fake.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut hello = [0u8; 20];
        s.read_exact(&mut hello).unwrap();
        assert_eq!(&hello, b"sprout-replicate 5\r\n", "attempt {attempt}");
        // Epoch 4, then a snapshot holding one job.
        let mut out = b"REPLICATING fake 4\r\n".to_vec();
        out.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, 0]);
        s.write_all(&out).unwrap();
        // The replica hangs up rather than read on.
        let mut b = [0u8; 16];
        let n = s.read(&mut b).unwrap_or(0);
        assert_eq!(n, 0, "it sent {:?}", &b[..n]);
    }
    assert_eq!(rc.stat("stats", "epoch"), "5");
    assert_eq!(rc.stat("stats", "replica-following"), "false");
    common::stop(r);
}

/// Two replicas of one primary count its records alike (what a supervisor
/// compares to promote the furthest): equal once both are in step, and
/// each record the primary writes moves both on by one.
#[test]
fn replicas_of_one_primary_report_comparable_positions() {
    let (pd, ad, bd) = (
        TempDir::new("fo-pos-p"),
        TempDir::new("fo-pos-a"),
        TempDir::new("fo-pos-b"),
    );
    let p = Server::start(&["-b", pd.arg()]);
    let mut pc = p.connect();
    for _ in 0..3 {
        put(&mut pc, 0, 0, 60, b"x");
    }
    let a = common::replicas::replica_of(p.port, &ad);
    let mut ac = a.connect();
    until_following(&mut ac);
    until_in_step(&mut pc, &mut ac, 3);
    // A moves on while B is not yet there.
    put(&mut pc, 0, 0, 60, b"y");
    pc.expect("delete 1\r\n", "DELETED\r\n");
    let b = common::replicas::replica_of(p.port, &bd);
    let mut bc = b.connect();
    until_following(&mut bc);
    until_in_step(&mut pc, &mut ac, 4);
    until_in_step(&mut pc, &mut bc, 4);
    let position =
        |c: &mut common::Client| -> i64 { c.stat("stats", "replica-position").parse().unwrap() };
    let deadline = Instant::now() + Duration::from_secs(15);
    let settled = loop {
        let (x, y) = (position(&mut ac), position(&mut bc));
        if x == y && x > 0 {
            break x;
        }
        assert!(Instant::now() < deadline, "positions {x} and {y}");
        std::thread::sleep(Duration::from_millis(20));
    };
    // One put: one record.
    put(&mut pc, 0, 0, 60, b"z");
    let deadline = Instant::now() + Duration::from_secs(15);
    while (position(&mut ac), position(&mut bc)) != (settled + 1, settled + 1) {
        assert!(Instant::now() < deadline, "never moved on by one");
        std::thread::sleep(Duration::from_millis(20));
    }
    for s in [a, b, p] {
        common::stop(s);
    }
}
