//! `work` over two servers, one killed with kill -9 mid-run under
//! `-b -f0` and started again on its directory: nothing acknowledged is
//! lost, the worker drains the survivor meanwhile, and it goes back to the
//! other once it returns.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::common::{Server, TempDir, listens_on, put, sprout_bin};
use super::work::Worker;

/// sprout on `port` exactly (a restart must come back where the worker
/// looks), with a binlog in `dir`.
fn sprout_on(port: u16, dir: &TempDir) -> Server {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let mut child = Command::new(sprout_bin())
            .args([
                "-l",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-b",
                dir.arg(),
                "-f0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sprout starts");
        let up = Instant::now() + Duration::from_secs(5);
        while Instant::now() < up {
            if let Ok(Some(_)) = child.try_wait() {
                break; // the port is not free yet: try again
            }
            if listens_on(child.id(), port) {
                return Server { child, port };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("sprout did not come back on port {port}");
}

/// How many times each body was run, from the worker's record.
fn runs(path: &std::path::Path) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for l in std::fs::read_to_string(path).unwrap_or_default().lines() {
        *m.entry(l.to_string()).or_insert(0) += 1;
    }
    m
}

#[test]
fn a_server_killed_mid_run_loses_nothing_and_is_worked_again_when_back() {
    const JOBS: usize = 60;
    let (dir_a, dir_b) = (TempDir::new("ctl-two-a"), TempDir::new("ctl-two-b"));
    let a = Server::start(&["-b", dir_a.arg(), "-f0"]);
    let b = Server::start(&["-b", dir_b.arg(), "-f0"]);
    let port_a = a.port;
    // Every INSERTED received is a job that must run.
    for (s, tag) in [(&a, "a"), (&b, "b")] {
        let mut c = s.connect();
        c.expect("use two\r\n", "USING two\r\n");
        for i in 0..JOBS {
            put(&mut c, 0, 0, 30, format!("{tag}-{i}").as_bytes());
        }
    }
    let w = Worker::start_on(
        &[a.port, b.port],
        &[
            "--tube",
            "two",
            "--concurrency",
            "2",
            "--",
            "sh",
            "-c",
            // One write per job: two slots append at once.
            "sleep 0.05; printf '%s\\n' \"$(cat)\" >> \"$WORK_DIR/runs\"",
        ],
    );
    let record = w.dir().join("runs");
    let count = |tag: &str| runs(&record).keys().filter(|k| k.starts_with(tag)).count();
    let wait = |what: &str, f: &dyn Fn() -> bool, within: u64| {
        let deadline = Instant::now() + Duration::from_secs(within);
        while Instant::now() < deadline {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("not within {within} s: {what}; runs: {:?}", runs(&record));
    };
    wait("some of a's jobs run", &|| count("a-") >= 5, 20);
    super::common::crash(a);
    let a_done_at_kill = count("a-");
    assert!(
        a_done_at_kill < JOBS,
        "the kill came too late to test anything"
    );
    // The survivor is drained while the other is down.
    wait("all of b's jobs run", &|| count("b-") == JOBS, 30);
    let a = sprout_on(port_a, &dir_a);
    wait(
        "all of a's jobs run after its restart",
        &|| count("a-") == JOBS,
        60,
    );
    let m = runs(&record);
    // At least once; twice only for a job running when its server died
    // (its delete never arrived), one per slot at most.
    let twice: Vec<_> = m.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.len() <= 2, "{twice:?}");
    assert!(twice.iter().all(|(k, _)| k.starts_with("a-")), "{twice:?}");
    for s in [&a, &b] {
        let mut c = s.connect();
        let st = c.yaml("stats-tube two");
        for k in [
            "current-jobs-ready",
            "current-jobs-reserved",
            "current-jobs-buried",
        ] {
            assert_eq!(st[k], "0", "{k} on port {}", s.port);
        }
    }
    assert!(
        w.log().contains("reconnecting") || w.log().contains("retrying"),
        "{}",
        w.log()
    );
}
