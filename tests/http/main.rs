//! The HTTP port (`--http`) against the built binary: every endpoint and
//! status, the limits, /metrics (checked by promtool, parsed by
//! prometheus_client, the same in gzip, scraped by a real Prometheus) and /status.json equal to what the queue port's
//! stats say at the same moment, and /readyz through recovery and drain.

mod browser;
#[path = "../common/mod.rs"]
mod common;
mod gzip;
mod limits;
mod prometheus;
mod status;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, TempDir, put};

/// A response: status, headers (lower-cased names), body.
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parses one response from the front of `raw`; returns it and its length.
pub fn parse_response(raw: &[u8], head_only: bool) -> Option<(Response, usize)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    let len: usize = if head_only {
        0
    } else {
        headers.get("content-length")?.parse().ok()?
    };
    if raw.len() < end + len {
        return None;
    }
    let body = raw[end..end + len].to_vec();
    Some((
        Response {
            status,
            headers,
            body,
        },
        end + len,
    ))
}

/// Sends `request` bytes as they are and reads until the server closes.
pub fn raw(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP port");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

pub fn get(port: u16, path: &str) -> Response {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let out = raw(port, req.as_bytes());
    parse_response(&out, false)
        .unwrap_or_else(|| panic!("no response to {path}: {:?}", String::from_utf8_lossy(&out)))
        .0
}

#[test]
fn endpoints_and_statuses() {
    let (s, h) = Server::start_http(&[], |_| {});
    let ok = get(h, "/healthz");
    assert_eq!((ok.status, ok.text().as_str()), (200, "ok\n"));
    assert_eq!(get(h, "/readyz").status, 200);
    let page = get(h, "/");
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert!(page.text().contains("<script src=\"/status.js\">"));
    assert_eq!(
        get(h, "/status.js").headers["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(get(h, "/status.css").status, 200);
    assert_eq!(
        get(h, "/status.json").headers["content-type"],
        "application/json"
    );
    let metrics = get(h, "/metrics");
    assert_eq!(
        metrics.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(get(h, "/no/such/page").status, 404);
    // Other methods: 405 naming the allowed ones, and a close.
    let out = raw(h, b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    let (r, _) = parse_response(&out, false).expect("a response");
    assert_eq!((r.status, r.headers["allow"].as_str()), (405, "GET, HEAD"));
    assert_eq!(r.headers["connection"], "close");
    // HEAD: the length of the body, without the body.
    let out = raw(h, b"HEAD /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
    let (r, used) = parse_response(&out, true).expect("a response");
    assert_eq!((r.status, r.headers["content-length"].as_str()), (200, "3"));
    assert_eq!(used, out.len(), "HEAD sent a body");
    // Malformed: 400 and closed.
    let out = raw(h, b"\x16\x03\x01 not http\r\n\r\n");
    assert!(
        out.starts_with(b"HTTP/1.1 400 "),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    // The queue port is untouched by all this.
    let mut c = s.connect();
    assert_eq!(c.stat("stats", "total-connections"), "1");
}

#[test]
fn keep_alive_and_pipelining_answer_in_order() {
    let (_s, h) = Server::start_http(&[], |_| {});
    let mut req = Vec::new();
    for path in ["/healthz", "/nope", "/readyz", "/metrics"] {
        req.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    req.extend_from_slice(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
    let out = raw(h, &req);
    let mut at = 0;
    let mut statuses = Vec::new();
    while let Some((r, used)) = parse_response(&out[at..], false) {
        statuses.push(r.status);
        at += used;
    }
    assert_eq!(statuses, [200, 404, 200, 200, 200]);
    assert_eq!(at, out.len());
}

/// Runs a tool with `input` on its stdin; its output, or a panic that
/// says what to install.
fn run_with_input(cmd: &mut Command, input: &str, what: &str) -> std::process::Output {
    let mut child = (cmd.stdin(Stdio::piped()).stdout(Stdio::piped()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs promtool on the text; panics with its complaint.
fn promtool_check(text: &str) {
    run_with_input(
        Command::new("promtool").args(["check", "metrics"]),
        text,
        "promtool check metrics (Debian's prometheus package; scripts/test installs it)",
    );
}

/// The samples as prometheus_client reads them: (name, labels) -> value.
fn parse_metrics(text: &str) -> HashMap<(String, String), f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http/parse_metrics.py");
    let out = run_with_input(
        Command::new("python3").arg(script),
        text,
        "prometheus_client parsing /metrics (pip install prometheus_client; scripts/test does)",
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                (f[0].to_string(), f[1].to_string()),
                f[2].parse().expect("a number"),
            )
        })
        .collect()
}

/// Tube names with characters that need care somewhere.
const TUBES: [&str; 3] = ["default", "a+b", "x(y)$;-_.z/"];

/// Jobs in every state in several tubes, a paused tube, a waiting worker.
fn workload(s: &Server) -> (common::Client, common::Client) {
    let mut p = s.connect();
    let mut w = s.connect();
    for (i, t) in TUBES.iter().enumerate() {
        p.expect(format!("use {t}\r\n"), format!("USING {t}\r\n"));
        for j in 0..=i {
            put(&mut p, 10 + j as u32, 0, 600, b"body");
            put(&mut p, 2000, 900, 600, b"later");
        }
        w.expect(format!("watch {t}\r\n"), format!("WATCHING {}\r\n", i + 1));
    }
    // Reserve two and bury one.
    let r = String::from_utf8(w.ask("reserve\r\n")).unwrap();
    let id: u64 = r.split(' ').nth(1).unwrap().parse().unwrap();
    w.ask("reserve\r\n");
    w.expect(format!("bury {id} 5\r\n"), "BURIED\r\n");
    p.expect("pause-tube a+b 600\r\n", "PAUSED\r\n");
    (p, w)
}

#[test]
fn metrics_equal_stats_and_pass_promtool() {
    let dir = TempDir::new("http-metrics");
    let (s, h) = Server::start_http(&["-b", dir.arg(), "-f0"], |_| {});
    let (mut p, _w) = workload(&s);
    // Nothing moves between the two reads: no deadline is near, and no
    // client but this one acts.
    let stats = p.yaml("stats");
    let tubes: Vec<HashMap<String, String>> = TUBES
        .iter()
        .map(|t| p.yaml(&format!("stats-tube {t}")))
        .collect();
    let text = get(h, "/metrics").text();
    promtool_check(&text);
    let m = parse_metrics(&text);
    let val = |name: &str, labels: &str| {
        *m.get(&(name.to_string(), labels.to_string()))
            .unwrap_or_else(|| panic!("no sample {name}{{{labels}}}"))
    };
    let stat = |k: &str| stats[k].parse::<f64>().unwrap();
    for state in ["ready", "reserved", "delayed", "buried"] {
        assert_eq!(
            val("sprout_jobs", &format!("state={state}")),
            stat(&format!("current-jobs-{state}"))
        );
    }
    assert_eq!(val("sprout_urgent_jobs", ""), stat("current-jobs-urgent"));
    assert_eq!(val("sprout_jobs_created_total", ""), stat("total-jobs"));
    assert_eq!(val("sprout_job_timeouts_total", ""), stat("job-timeouts"));
    for (k, v) in &stats {
        if let Some(cmd) = k.strip_prefix("cmd-") {
            // Three stats-tube commands came after the stats.
            let later = if cmd == "stats-tube" { TUBES.len() } else { 0 };
            let want = v.parse::<f64>().unwrap() + later as f64;
            assert_eq!(
                val("sprout_commands_total", &format!("command={cmd}")),
                want,
                "{k}"
            );
        }
    }
    assert_eq!(val("sprout_max_job_size_bytes", ""), stat("max-job-size"));
    assert_eq!(val("sprout_tubes", ""), stat("current-tubes"));
    assert_eq!(val("sprout_connections", ""), stat("current-connections"));
    assert_eq!(val("sprout_producers", ""), stat("current-producers"));
    assert_eq!(val("sprout_workers", ""), stat("current-workers"));
    assert_eq!(val("sprout_waiting_workers", ""), stat("current-waiting"));
    assert_eq!(
        val("sprout_connections_total", ""),
        stat("total-connections")
    );
    assert_eq!(val("sprout_draining", ""), 0.0);
    for (name, k) in [
        ("sprout_binlog_oldest_index", "binlog-oldest-index"),
        ("sprout_binlog_current_index", "binlog-current-index"),
        (
            "sprout_binlog_records_written_total",
            "binlog-records-written",
        ),
        (
            "sprout_binlog_records_migrated_total",
            "binlog-records-migrated",
        ),
        ("sprout_binlog_max_file_size_bytes", "binlog-max-size"),
    ] {
        assert_eq!(val(name, ""), stat(k), "{name}");
    }
    // Uptime: the metric is read after stats, within the same second or
    // the next.
    let up = val("sprout_uptime_seconds", "").floor();
    assert!(
        up == stat("uptime") || up == stat("uptime") + 1.0,
        "{up} vs {}",
        stat("uptime")
    );
    assert!(val("sprout_binlog_files", "") >= 1.0);
    assert!(val("sprout_binlog_fsyncs_total", "") >= 1.0);
    assert_eq!(val("sprout_binlog_fsync_failures_total", ""), 0.0);
    assert!(val("sprout_loop_turn_duration_seconds_count", "") > 0.0);
    for (t, st) in TUBES.iter().zip(&tubes) {
        let tube = |k: &str| st[k].parse::<f64>().unwrap();
        for state in ["ready", "reserved", "delayed", "buried"] {
            assert_eq!(
                val("sprout_tube_jobs", &format!("state={state},tube={t}")),
                tube(&format!("current-jobs-{state}")),
                "{t} {state}"
            );
        }
        let l = format!("tube={t}");
        assert_eq!(
            val("sprout_tube_urgent_jobs", &l),
            tube("current-jobs-urgent")
        );
        assert_eq!(
            val("sprout_tube_jobs_created_total", &l),
            tube("total-jobs")
        );
        assert_eq!(val("sprout_tube_deletes_total", &l), tube("cmd-delete"));
        // No command counts reservations per tube; in this workload every
        // job reserved is still reserved or was buried, once each.
        assert_eq!(
            val("sprout_tube_reserves_total", &l),
            tube("current-jobs-reserved") + tube("current-jobs-buried"),
            "{t}"
        );
        assert_eq!(val("sprout_tube_pauses_total", &l), tube("cmd-pause-tube"));
        assert_eq!(
            val("sprout_tube_using_connections", &l),
            tube("current-using")
        );
        assert_eq!(
            val("sprout_tube_watching_connections", &l),
            tube("current-watching")
        );
        assert_eq!(
            val("sprout_tube_waiting_workers", &l),
            tube("current-waiting")
        );
        assert_eq!(val("sprout_tube_pause_seconds", &l), tube("pause"));
        let left = val("sprout_tube_pause_remaining_seconds", &l).floor();
        assert!(
            left == tube("pause-time-left") || left + 1.0 == tube("pause-time-left"),
            "{t}"
        );
    }
}

#[test]
fn status_json_shows_who_holds_what() {
    let (s, h) = Server::start_http(&[], |_| {});
    let (mut p, w) = workload(&s);
    let json = get(h, "/status.json").text();
    let stats = p.yaml("stats");
    let v: serde_json::Value = serde_json::from_str(&json).expect("status.json is JSON");
    assert_eq!(
        v["server"]["jobs"]["reserved"]
            .as_u64()
            .unwrap()
            .to_string(),
        stats["current-jobs-reserved"]
    );
    let held = v["reserved"].as_array().expect("reserved list");
    assert_eq!(held.len(), 1, "{json}");
    let job = &held[0];
    let id = job["id"].as_u64().unwrap();
    let sj = p.yaml(&format!("stats-job {id}"));
    assert_eq!(sj["state"], "reserved");
    assert_eq!(job["tube"].as_str().unwrap(), sj["tube"]);
    // The worker is the connection that reserved it, with its address.
    let conns = v["connections"].as_array().unwrap();
    let worker = conns
        .iter()
        .find(|c| c["id"] == job["worker"])
        .expect("the worker is listed");
    assert_eq!(worker["reserved"], 1);
    assert_eq!(worker["role"], "worker");
    assert_eq!(worker["watching"].as_array().unwrap().len(), TUBES.len());
    let addr = w.s.local_addr().unwrap().to_string();
    assert_eq!(worker["addr"].as_str().unwrap(), addr, "{json}");
    // stats-job's time-left is whole seconds, read after the JSON.
    let left = job["ttr_left"].as_f64().unwrap();
    let sj_left: f64 = sj["time-left"].parse().unwrap();
    assert!(
        left.floor() == sj_left || left.floor() == sj_left + 1.0,
        "{left} {sj_left}"
    );
    // Bodies never appear.
    assert!(
        !json.contains("body\"") && !json.contains("later"),
        "{json}"
    );
    // The filter keeps one tube's rows.
    let one = get(h, "/status.json?tube=a%2Bb").text();
    let v: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!(v["tubes"].as_array().unwrap().len(), 1);
    assert_eq!(v["tubes"][0]["name"], "a+b");
    assert_eq!(v["tubes"][0]["paused"], true);
}

#[test]
fn readyz_through_recovery_and_drain() {
    let dir = TempDir::new("http-ready");
    let shim = TempDir::new("http-ready-shim");
    let so = common::build_shim("held_recovery", &shim);
    {
        let s = Server::start(&["-b", dir.arg()]);
        let mut c = s.connect();
        put(&mut c, 1, 0, 60, b"kept");
        common::stop(s);
    }
    let flag = shim.0.join("hold");
    std::fs::write(&flag, b"").unwrap();
    // Both ports are bound before recovery; a port another test took
    // makes sprout exit, and a new pair is tried.
    let (mut child, port, hport) = (0..5)
        .find_map(|_| {
            let (port, hport) = (common::free_port(), common::free_port());
            let addr = format!("127.0.0.1:{hport}");
            let mut child = Command::new(common::sprout_bin())
                .args(["-l", "127.0.0.1", "-p", &port.to_string(), "--http", &addr])
                .args(["-b", dir.arg()])
                .env("LD_PRELOAD", &so)
                .env("HELD_RECOVERY_FLAG", &flag)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("start sprout");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if common::listens_on(child.id(), hport) {
                    return Some((child, port, hport));
                }
                if let Ok(Some(_)) = child.try_wait() {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
            None
        })
        .expect("sprout did not open its HTTP port");
    let _guard = Kill(&mut child);
    // Recovery is held: not ready, but alive.
    let r = get(hport, "/readyz");
    assert_eq!(
        (r.status, r.text().as_str()),
        (503, "recovering the binlog; try again shortly\n")
    );
    assert_eq!(get(hport, "/healthz").status, 200);
    assert_eq!(get(hport, "/metrics").status, 503);
    std::fs::remove_file(&flag).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(hport, "/readyz");
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(Instant::now() < deadline, "never ready after recovery");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Ready means the queue port serves, with the recovered job.
    let mut c = common::Client::connect(port);
    assert_eq!(c.stat("stats", "current-jobs-ready"), "1");
    // Drain mode: not ready, so a load balancer stops sending.
    unsafe { libc::kill(_guard.pid() as i32, libc::SIGUSR1) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(hport, "/readyz").status != 503 {
        assert!(Instant::now() < deadline, "still ready while draining");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(get(hport, "/readyz").text(), "draining\n");
    assert_eq!(get(hport, "/healthz").status, 200);
}

struct Kill<'a>(&'a mut std::process::Child);

impl Kill<'_> {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Kill<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn long_lists_are_cut_nearest_deadline_first_with_a_count() {
    let (s, h) = Server::start_http(&[], |_| {});
    let mut p = s.connect();
    let mut w = s.connect();
    let mut ids = Vec::new();
    for i in 0..150 {
        // Each reserved later than the one before, with 2 s less TTR: the
        // last reserved is the nearest its deadline.
        ids.push(put(&mut p, 0, 0, 900 - 2 * i, b"x"));
        let r = String::from_utf8(w.ask("reserve\r\n")).unwrap();
        assert!(r.starts_with("RESERVED "), "{r}");
    }
    let v: serde_json::Value = serde_json::from_str(&get(h, "/status.json").text()).unwrap();
    assert_eq!(v["reserved_total"], 150);
    let shown: Vec<u64> = (v["reserved"].as_array().unwrap().iter())
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    let nearest: Vec<u64> = ids.iter().rev().take(100).copied().collect();
    assert_eq!(shown, nearest);
    let html = get(h, "/").text();
    assert_eq!(html.matches("<td class=\"job\">").count(), 100);
    assert!(html.contains("and 50 more reserved jobs"), "{html}");
}

#[test]
fn tube_rates_count_puts_and_reserves_per_second() {
    let started = Instant::now();
    let (s, h) = Server::start_http(&[], |_| {});
    let mut p = s.connect();
    p.expect("use busy\r\n", "USING busy\r\n");
    // Answered, so the turn that took the connection (and the snapshot
    // at its end) is over.
    let answered = Instant::now();
    for _ in 0..10 {
        put(&mut p, 0, 0, 60, b"x");
    }
    let mut w = s.connect();
    w.expect("watch busy\r\n", "WATCHING 2\r\n");
    for _ in 0..4 {
        assert!(w.ask("reserve\r\n").starts_with(b"RESERVED "));
    }
    std::thread::sleep(Duration::from_millis(1200));
    let before = Instant::now();
    let v: serde_json::Value = serde_json::from_str(&get(h, "/status.json").text()).unwrap();
    let after = Instant::now();
    let tube = |name: &str| {
        (v["tubes"].as_array().unwrap().iter())
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no tube {name}"))
            .clone()
    };
    // The window starts at the server's first turn: after it started, and
    // before `use` was answered.
    let rate = tube("busy")["put_rate"].as_f64().unwrap();
    let (low, high) = (
        10.0 / (after - started).as_secs_f64(),
        10.0 / (before - answered).as_secs_f64(),
    );
    assert!(
        rate >= low - 0.001 && rate <= high + 0.001,
        "{rate} not in {low}..{high}"
    );
    let reserves = tube("busy")["reserve_rate"].as_f64().unwrap();
    assert!(
        reserves >= 0.4 * low - 0.001 && reserves <= 0.4 * high + 0.001,
        "{reserves} not in {}..{}",
        0.4 * low,
        0.4 * high
    );
    assert_eq!(tube("default")["put_rate"], 0.0);
    assert_eq!(tube("busy")["delete_rate"], 0.0);
}
