//! sproutctl, the built binary, against a real sprout (and beanstalkd 1.12
//! where the server is not the point): every subcommand's output, --json
//! parsed, exit statuses and errors here; `work` and `call` in work.rs.

#[path = "../common/mod.rs"]
mod common;
mod servers;
mod tmux;
mod top;
mod typed;
mod work;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, put};

pub fn ctl_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sproutctl")
}

/// Runs sproutctl against `ports` with `args` and `stdin`; bounded in
/// time (a hung sproutctl is killed and the test fails).
pub fn ctl(ports: &[u16], args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(ctl_bin());
    for p in ports {
        cmd.arg("--server").arg(format!("127.0.0.1:{p}"));
    }
    let mut child = cmd
        .args(args)
        .env_remove("SPROUT_SERVERS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sproutctl runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return false;
            }
        }
        // SAFETY: our own child, not yet reaped (wait_with_output runs).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        true
    });
    let out = child.wait_with_output().unwrap();
    drop(watchdog);
    out
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

fn beanstalkd() -> Server {
    let b = std::env::var("SPROUT_REFERENCE_BEANSTALKD").unwrap_or_else(|_| "beanstalkd".into());
    Server::start_bin(&b, &[])
}

#[test]
fn put_peek_stats_tubes_and_their_json_on_sprout() {
    put_peek_stats_tubes(&Server::start(&[]));
}

#[test]
fn put_peek_stats_tubes_and_their_json_on_beanstalkd() {
    put_peek_stats_tubes(&beanstalkd());
}

fn put_peek_stats_tubes(s: &Server) {
    let p = [s.port];
    let out = ctl(&p, &["put", "--tube", "mail", "--pri", "5", "hello"], b"");
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "1\n".into())
    );
    // The body from stdin, bytes as they are.
    let out = ctl(&p, &["put", "--tube", "mail", "-"], b"\x00\xffbin\r\n");
    assert_eq!(text(&out.stdout), "2\n");
    let out = ctl(
        &p,
        &["--json", "put", "--tube", "mail", "--delay", "600", "later"],
        b"",
    );
    let v = json(&out);
    assert_eq!(v["id"], 3);
    assert_eq!(v["server"], format!("127.0.0.1:{}", s.port));
    // One job per line.
    let out = ctl(
        &p,
        &["put", "--lines", "--tube", "lines"],
        b"a\nbb\r\nccc\n",
    );
    assert_eq!(text(&out.stdout), "4\n5\n6\n");
    let mut c = s.connect();
    assert_eq!(c.stat("stats-tube lines", "current-jobs-ready"), "3");
    c.expect("use lines\r\n", "USING lines\r\n");
    assert_eq!(c.ask("peek-ready\r\n"), b"FOUND 4 1\r\na\r\n");

    // Piped: the body alone on stdout, its stats on stderr.
    let out = ctl(&p, &["peek", "2"], b"");
    assert_eq!(out.stdout, b"\x00\xffbin\r\n");
    let err = text(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.split_whitespace().eq(["tube", "mail"])),
        "{err}"
    );
    let out = ctl(&p, &["peek", "--ready", "--tube", "mail"], b"");
    assert_eq!(
        (out.status.code(), out.stdout),
        (Some(0), b"hello".to_vec())
    );
    let v = json(&ctl(
        &p,
        &["--json", "peek", "--delayed", "--tube", "mail"],
        b"",
    ));
    assert_eq!(
        (v["id"].as_u64(), v["body"].as_str()),
        (Some(3), Some("later"))
    );
    assert_eq!(v["stats"]["state"], "delayed");
    assert_eq!(v["stats"]["pri"], 1024);
    let v = json(&ctl(&p, &["--json", "peek", "2"], b""));
    assert_eq!(v["body_base64"], "AP9iaW4NCg==");

    let out = ctl(&p, &["tubes"], b"");
    let t = text(&out.stdout);
    let mut lines = t.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        [
            "tube",
            "ready",
            "reserved",
            "delayed",
            "buried",
            "urgent",
            "waiting",
            "watching",
            "pause-left"
        ]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert!(
        rows.contains(&vec!["mail", "2", "0", "1", "0", "1", "0", "0", "0"]),
        "{t}"
    );
    assert!(
        rows.contains(&vec!["lines", "3", "0", "0", "0", "0", "0", "0", "0"]),
        "{t}"
    );
    let v = json(&ctl(&p, &["--json", "tubes"], b""));
    let mail = (v.as_array().unwrap().iter())
        .find(|t| t["name"] == "mail")
        .unwrap();
    assert_eq!(mail["current-jobs-ready"], 2);
    assert_eq!(mail["total-jobs"], 3);

    let v = json(&ctl(&p, &["--json", "stats"], b""));
    assert_eq!(v["current-jobs-ready"], 5);
    assert_eq!(v["current-jobs-delayed"], 1);
    let v = json(&ctl(&p, &["--json", "stats", "mail"], b""));
    assert_eq!(v["name"], "mail");
    let v = json(&ctl(&p, &["--json", "stats", "--job", "1"], b""));
    assert_eq!(
        (v["pri"].as_u64(), v["tube"].as_str()),
        (Some(5), Some("mail"))
    );
    let out = ctl(&p, &["stats", "--job", "1"], b"");
    let doc = text(&out.stdout);
    assert!(
        doc.lines()
            .any(|l| l.split_whitespace().eq(["state", "ready"])),
        "{doc}"
    );
}

#[test]
fn delete_kick_pause_and_flush_on_sprout() {
    delete_kick_pause_and_flush(&Server::start(&[]));
}

#[test]
fn delete_kick_pause_and_flush_on_beanstalkd() {
    delete_kick_pause_and_flush(&beanstalkd());
}

fn delete_kick_pause_and_flush(s: &Server) {
    let p = [s.port];
    let mut c = s.connect();
    c.expect("use t\r\n", "USING t\r\n");
    c.expect("watch t\r\n", "WATCHING 2\r\n");
    for _ in 0..4 {
        put(&mut c, 0, 0, 60, b"x");
    }
    for id in 1..=3 {
        assert!(c.ask("reserve\r\n").starts_with(b"RESERVED "));
        c.expect(format!("bury {id} 0\r\n"), "BURIED\r\n");
    }
    let out = ctl(&p, &["kick", "--tube", "t", "2"], b"");
    assert_eq!(text(&out.stdout), "kicked 2\n");
    let out = ctl(&p, &["kick-job", "3"], b"");
    assert_eq!(text(&out.stdout), "kicked 3\n");
    // Job 3 is ready now: not kicked again, and the status says so.
    let out = ctl(&p, &["kick-job", "3"], b"");
    assert_eq!(out.status.code(), Some(3));
    let out = ctl(&p, &["pause", "t", "60"], b"");
    assert_eq!(text(&out.stdout), "paused 1\n");
    assert_eq!(c.stat("stats-tube t", "pause"), "60");
    assert_eq!(
        ctl(&p, &["pause", "nosuch", "1"], b"").status.code(),
        Some(3)
    );
    let out = ctl(&p, &["delete", "1", "2", "99"], b"");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "deleted 1\ndeleted 2\n");
    assert!(
        text(&out.stderr).contains("no job 99"),
        "{}",
        text(&out.stderr)
    );

    put(&mut c, 0, 600, 60, b"delayed");
    assert!(
        c.ask("reserve-with-timeout 0\r\n")
            .starts_with(b"TIMED_OUT")
    ); // paused
    c.expect("pause-tube t 0\r\n", "PAUSED\r\n");
    assert!(c.ask("reserve\r\n").starts_with(b"RESERVED 3 "));
    // Without --yes nothing goes; with it, all but the reserved job.
    let out = ctl(&p, &["flush", "t"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("add --yes"));
    assert_eq!(c.stat("stats-tube t", "current-jobs-delayed"), "1");
    let out = ctl(&p, &["flush", "t", "--state", "delayed", "--yes"], b"");
    assert_eq!(text(&out.stdout), "deleted 1\n");
    let out = ctl(&p, &["flush", "t", "--yes"], b"");
    assert_eq!(text(&out.stdout), "deleted 1\n");
    let st = c.yaml("stats-tube t");
    assert_eq!(
        (
            st["current-jobs-ready"].as_str(),
            st["current-jobs-reserved"].as_str()
        ),
        ("0", "1")
    );
}

#[test]
fn errors_say_what_happened_with_distinct_statuses() {
    let s = Server::start(&[]);
    let gone = common::free_port();
    let out = ctl(&[gone], &["stats"], b"");
    assert_eq!(out.status.code(), Some(69));
    assert_eq!(
        text(&out.stderr),
        format!(
            "sproutctl: cannot reach 127.0.0.1:{gone}: connection refused (is sprout running? see --server)\n"
        )
    );
    let out = ctl(&[s.port], &["peek", "42"], b"");
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("no job 42"));
    let out = ctl(&[s.port], &["put", "--tube", "no spaces", "x"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not a tube name"));
    let out = ctl(&[s.port], &["stats", "-bad"], b"");
    assert_eq!(out.status.code(), Some(2));
    // Ids are per server: with two, an id names no one job.
    let out = ctl(&[s.port, gone], &["delete", "1"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("give one --server"));
    let out = ctl(&[s.port], &["nonsense"], b"");
    assert_eq!(out.status.code(), Some(2));
    let out = ctl(&[s.port], &["--help"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("work"));
}

#[test]
fn put_fails_over_to_the_next_server_and_spreads_lines() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let gone = common::free_port();
    // Whichever server comes first, the unreachable one is skipped.
    for _ in 0..4 {
        let out = ctl(&[gone, a.port], &["put", "x"], b"");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    assert_eq!(a.connect().stat("stats", "current-jobs-ready"), "4");
    let out = ctl(&[a.port, b.port], &["put", "--lines"], b"1\n2\n3\n4\n");
    assert_eq!(out.status.code(), Some(0));
    let ready = |s: &Server| s.connect().stat("stats", "current-jobs-ready");
    assert_eq!((ready(&a), ready(&b)), ("6".into(), "2".into()));
}
