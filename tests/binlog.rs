//! Persistence with -b: restarts, crashes, damaged files, the directory
//! lock, and the binlog format shared with the real beanstalkd both ways.

mod common;

use std::path::Path;

use common::{Client, Server, TempDir, crash, put, sprout_bin, stop};

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
