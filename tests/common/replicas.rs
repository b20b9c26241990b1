//! Helpers for tests of replicas: what a server holds, job by job, and
//! bounded waits for a replica to follow and catch up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{Client, Server, TempDir};

/// Each job as both servers can be asked about it: (tube, state, pri,
/// body). A job reserved on the primary is ready on a replica, as after a
/// restart: reserves are not replicated.
pub fn jobs(c: &mut Client, upto: u64) -> BTreeMap<u64, (String, String, String, String)> {
    let mut out = BTreeMap::new();
    for id in 1..=upto {
        // One ask: a replica may drop the job between two.
        let reply = String::from_utf8(c.ask(format!("stats-job {id}\r\n"))).unwrap();
        if reply == "NOT_FOUND\r\n" {
            continue;
        }
        assert!(reply.starts_with("OK "), "stats-job {id}: {reply}");
        let s: std::collections::HashMap<String, String> = (reply.lines())
            .skip(2)
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        let body = String::from_utf8(c.ask(format!("peek {id}\r\n"))).unwrap();
        let state = match s["state"].as_str() {
            "reserved" => "ready".to_string(),
            other => other.to_string(),
        };
        out.insert(id, (s["tube"].clone(), state, s["pri"].clone(), body));
    }
    out
}

/// Waits (bounded) until the replica holds what the primary holds.
pub fn until_in_step(primary: &mut Client, replica: &mut Client, upto: u64) {
    let want = jobs(primary, upto);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = jobs(replica, upto);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never caught up:\nprimary {want:?}\nreplica {got:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until a replica says it follows its primary.
pub fn until_following(rc: &mut Client) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while rc.stat("stats", "replica-following") != "true" {
        assert!(Instant::now() < deadline, "never following");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn replica_of(port: u16, dir: &TempDir) -> Server {
    let primary = format!("127.0.0.1:{port}");
    Server::start(&["-b", dir.arg(), "--replica-of", &primary])
}

/// Puts one job on a --sync-replicas primary once its replicas are in
/// step: refused until then, and each refusal stores nothing, so trying
/// again is safe.
pub fn put_once_in_step(c: &mut Client) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match super::try_put(c, 0, 0, 60, b"first").as_str() {
            "OUT_OF_MEMORY\r\n" => {}
            r if r.starts_with("INSERTED ") => return,
            other => panic!("put: {other}"),
        }
        assert!(Instant::now() < deadline, "the replica never came in step");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Tells `c`'s server to follow `primary` at `epoch`, and waits (bounded)
/// until it does.
pub fn follow(c: &mut Client, primary: &Server, epoch: u64) {
    c.expect(
        format!("sprout-follow 127.0.0.1:{} {epoch}\r\n", primary.port),
        format!("FOLLOWING {epoch}\r\n"),
    );
    until_following(c);
}
