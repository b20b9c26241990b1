//! `sproutctl work` with real commands, and `call` through it: the
//! gearman example, retries and burial, touching, --timeout, SIGTERM and
//! kill -9 of the worker, concurrency, binary bodies; against sprout and
//! beanstalkd 1.12.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::{Client, Server, TempDir, put};
use super::{ctl, ctl_bin, text};

/// A running `sproutctl work`, its stderr kept in a file; killed when
/// dropped.
pub struct Worker {
    child: Child,
    log: std::path::PathBuf,
    _dir: TempDir,
}

impl Worker {
    pub fn start(port: u16, args: &[&str]) -> Worker {
        Self::start_on(&[port], args)
    }

    pub fn start_on(ports: &[u16], args: &[&str]) -> Worker {
        let dir = TempDir::new("sproutctl-work");
        let log = dir.0.join("stderr");
        let mut cmd = Command::new(ctl_bin());
        for p in ports {
            cmd.arg("--server").arg(format!("127.0.0.1:{p}"));
        }
        let child = cmd
            .arg("work")
            .args(args)
            .env("WORK_DIR", &dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("sproutctl work runs");
        Worker {
            child,
            log,
            _dir: dir,
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.log.parent().unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Its exit status, waiting at most `within`.
    fn wait(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        super::common::wait_child(&mut self.child, within)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 20 ms until it holds, for at most `within`.
pub fn eventually(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("not within {within:?}: {what}");
}

fn state(c: &mut Client, id: u64) -> String {
    let r = c.ask(format!("stats-job {id}\r\n"));
    if r == b"NOT_FOUND\r\n" {
        return "gone".into();
    }
    let doc = text(&r);
    (doc.lines())
        .find_map(|l| l.strip_prefix("state: "))
        .unwrap_or("?")
        .to_string()
}

fn job_stat(c: &mut Client, id: u64, key: &str) -> String {
    c.stat(&format!("stats-job {id}"), key)
}

fn gearman_example(s: &Server) {
    let _w = Worker::start(s.port, &["--tube", "count_lines", "--", "wc", "-l"]);
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let lines = passwd.iter().filter(|&&b| b == b'\n').count();
    let out = ctl(
        &[s.port],
        &["call", "--tube", "count_lines", "--timeout", "20"],
        &passwd,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), lines.to_string());
    // A plain job reaches the command as it is: its line count is logged.
    let mut c = s.connect();
    c.expect("use count_lines\r\n", "USING count_lines\r\n");
    let id = put(&mut c, 0, 0, 60, b"1\n2\n3\n");
    eventually(Duration::from_secs(10), "the plain job is done", || {
        state(&mut c, id) == "gone"
    });
    assert!(
        _w.log().contains(&format!("[job {id}] 3\n")),
        "{}",
        _w.log()
    );
}

#[test]
fn gearman_example_on_sprout() {
    gearman_example(&Server::start(&[]));
}

#[test]
fn gearman_example_on_beanstalkd() {
    gearman_example(&super::beanstalkd());
}

fn binary_and_status_through_call(s: &Server) {
    let _w = Worker::start(
        s.port,
        &[
            "--tube",
            "bin",
            "--attempts",
            "1",
            "--",
            "sh",
            "-c",
            "cat; exit 7",
        ],
    );
    let body: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let out = ctl(
        &[s.port],
        &["call", "--tube", "bin", "--timeout", "20"],
        &body,
    );
    assert_eq!(out.stdout, body, "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn binary_bodies_and_exit_status_through_call_on_sprout() {
    binary_and_status_through_call(&Server::start(&[]));
}

#[test]
fn binary_bodies_and_exit_status_through_call_on_beanstalkd() {
    binary_and_status_through_call(&super::beanstalkd());
}

#[test]
fn a_failing_command_is_retried_later_each_time_then_buried() {
    let s = Server::start(&[]);
    let w = Worker::start(
        s.port,
        &[
            "--tube",
            "f",
            "--attempts",
            "3",
            "--backoff",
            "1",
            "--",
            "sh",
            "-c",
            "echo try $SPROUT_ATTEMPT of $SPROUT_JOB_ID in $SPROUT_TUBE; exit 3",
        ],
    );
    let mut c = s.connect();
    c.expect("use f\r\n", "USING f\r\n");
    let started = Instant::now();
    let id = put(&mut c, 9, 0, 60, b"x");
    eventually(Duration::from_secs(20), "the job is buried", || {
        state(&mut c, id) == "buried"
    });
    // Released with 1 s, then 2 s of delay, which the server holds to.
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(job_stat(&mut c, id, "reserves"), "3");
    assert_eq!(job_stat(&mut c, id, "releases"), "2");
    assert_eq!(job_stat(&mut c, id, "pri"), "9");
    let log = w.log();
    for want in [
        format!("[job {id}] try 1 of {id} in f\n"),
        format!("[job {id}] exited with 3; attempt 1 of 3: released, again in 1 s\n"),
        format!("[job {id}] exited with 3; attempt 2 of 3: released, again in 2 s\n"),
        format!("[job {id}] try 3 of {id} in f\n"),
        format!("[job {id}] exited with 3; attempt 3 of 3: buried\n"),
    ] {
        assert!(log.contains(&want), "{want:?} not in {log}");
    }
}

#[test]
fn a_command_running_three_times_its_ttr_is_touched_not_timed_out() {
    let s = Server::start(&[]);
    // TTR 2 s, touched each second: a second of slack for a busy machine.
    let w = Worker::start(s.port, &["--tube", "slow", "--", "sleep", "6.5"]);
    let mut c = s.connect();
    c.expect("use slow\r\n", "USING slow\r\n");
    let id = put(&mut c, 0, 0, 2, b"x");
    eventually(Duration::from_secs(20), "the slow job is done", || {
        state(&mut c, id) == "gone"
    });
    assert_eq!(c.stat("stats", "job-timeouts"), "0");
    assert!(!w.log().contains("no longer ours"), "{}", w.log());
}

#[test]
fn timeout_stops_the_command_and_the_job_is_tried_again() {
    let s = Server::start(&[]);
    let w = Worker::start(
        s.port,
        &[
            "--tube",
            "hang",
            "--timeout",
            "1",
            "--grace",
            "1",
            "--attempts",
            "1",
            "--",
            "sleep",
            "60",
        ],
    );
    let mut c = s.connect();
    c.expect("use hang\r\n", "USING hang\r\n");
    let started = Instant::now();
    let id = put(&mut c, 0, 0, 60, b"x");
    eventually(Duration::from_secs(10), "the hung job is buried", || {
        state(&mut c, id) == "buried"
    });
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(w.log().contains("ran past --timeout"), "{}", w.log());
}

/// A worker with `--grace` running `sleep SLEEP` gets SIGTERM mid-job:
/// it exits 0, the command ran once, and the job ends in `want`.
fn sigterm_mid_job(grace: &str, sleep: &str, want: &str) {
    let s = Server::start(&[]);
    let script = format!("echo run >> \"$WORK_DIR/runs\"; sleep {sleep}");
    let mut w = Worker::start(
        s.port,
        &["--tube", "t", "--grace", grace, "--", "sh", "-c", &script],
    );
    let runs = w.dir().join("runs");
    let mut c = s.connect();
    c.expect("use t\r\n", "USING t\r\n");
    let id = put(&mut c, 0, 0, 60, b"x");
    eventually(Duration::from_secs(10), "the command runs", || {
        runs.exists()
    });
    w.signal(libc::SIGTERM);
    let st = w.wait(Duration::from_secs(15)).expect("the worker exits");
    assert_eq!(st.code(), Some(0));
    assert_eq!(state(&mut c, id), want);
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "run\n");
}

#[test]
fn sigterm_lets_the_running_command_finish_once() {
    // Finished within the grace, and deleted.
    sigterm_mid_job("10", "1.5", "gone");
}

#[test]
fn sigterm_past_the_grace_releases_the_job() {
    // Stopped after the grace: released, not lost.
    sigterm_mid_job("1", "60", "ready");
}

#[test]
fn kill_9_of_the_worker_gives_the_job_back_and_stops_its_command() {
    let s = Server::start(&[]);
    let mut w = Worker::start(
        s.port,
        &[
            "--tube",
            "t",
            "--",
            "sh",
            "-c",
            "echo $$ > \"$WORK_DIR/pid\"; exec sleep 60",
        ],
    );
    let pidfile = w.dir().join("pid");
    let mut c = s.connect();
    c.expect("use t\r\n", "USING t\r\n");
    let id = put(&mut c, 0, 0, 5, b"x");
    let mut pid = String::new();
    eventually(Duration::from_secs(10), "the command runs", || {
        pid = std::fs::read_to_string(&pidfile).unwrap_or_default();
        pid.ends_with('\n')
    });
    w.signal(libc::SIGKILL);
    w.wait(Duration::from_secs(5)).expect("killed");
    // The connection closed: the server gives the job back (at the TTR
    // at the latest).
    eventually(Duration::from_secs(7), "the job is ready again", || {
        state(&mut c, id) == "ready"
    });
    let proc_dir = format!("/proc/{}", pid.trim());
    eventually(
        Duration::from_secs(5),
        "the command died with its worker",
        || !std::path::Path::new(&proc_dir).exists(),
    );
}

#[test]
fn concurrency_8_runs_8_commands_at_once() {
    let s = Server::start(&[]);
    let _w = Worker::start(
        s.port,
        &["--tube", "c", "--concurrency", "8", "--", "sleep", "3"],
    );
    let mut c = s.connect();
    c.expect("use c\r\n", "USING c\r\n");
    for _ in 0..8 {
        put(&mut c, 0, 0, 60, b"x");
    }
    eventually(Duration::from_secs(5), "8 jobs reserved at once", || {
        c.stat("stats-tube c", "current-jobs-reserved") == "8"
    });
}

#[test]
fn count_stops_the_worker() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.expect("use n\r\n", "USING n\r\n");
    for _ in 0..3 {
        put(&mut c, 0, 0, 60, b"x");
    }
    let mut w = Worker::start(s.port, &["--tube", "n", "--count", "2", "--", "true"]);
    let st = w.wait(Duration::from_secs(10)).expect("stops after 2");
    assert_eq!(st.code(), Some(0));
    assert_eq!(c.stat("stats-tube n", "current-jobs-ready"), "1");
}
