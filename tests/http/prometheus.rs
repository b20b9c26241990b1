//! A real Prometheus (Debian's `prometheus`) scrapes sprout, asking for
//! gzip as it always does, and its query API returns what `stats-tube`
//! says.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::{Server, TempDir, free_port, listens_on};
use super::raw;

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The body of a GET, de-chunked if need be.
fn get_body(port: u16, path: &str) -> Option<String> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let out = String::from_utf8(raw(port, req.as_bytes())).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Some(body.to_string());
    }
    let (mut rest, mut whole) = (body, String::new());
    loop {
        let (size, tail) = rest.split_once("\r\n")?;
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            return Some(whole);
        }
        whole.push_str(tail.get(..n)?);
        rest = tail.get(n + 2..)?;
    }
}

/// The value of an instant query's one sample, once Prometheus has it.
fn query(port: u16, q: &str) -> Option<f64> {
    let encoded: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = get_body(port, &format!("/api/v1/query?query={encoded}"))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let value = &v["data"]["result"][0]["value"][1];
    value.as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_gzip_metrics() {
    let (s, h) = Server::start_http(&[], |_| {});
    let mut c = s.connect();
    // 300 tubes: several gzip pieces per family.
    let mut batch = String::new();
    for i in 0..300 {
        batch.push_str(&format!("use t{i}\r\n"));
        for _ in 0..i % 4 {
            batch.push_str("put 0 600 60 1\r\nx\r\n");
        }
    }
    c.send(batch.as_bytes());
    for i in 0..300 {
        assert_eq!(c.line(), format!("USING t{i}\r\n"));
        for _ in 0..i % 4 {
            assert!(c.line().starts_with("INSERTED "));
        }
    }
    let dir = TempDir::new("prometheus");
    let config = dir.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sprout\n    \
             static_configs:\n      - targets: ['127.0.0.1:{h}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's prometheus package; scripts/test installs it)");
    let prom = Prometheus(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !listens_on(prom.0.id(), port) {
        assert!(Instant::now() < deadline, "prometheus did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let want: Vec<(&str, f64)> = (["t7", "t150", "t299"].into_iter())
        .map(|t| {
            let v = c.stat(&format!("stats-tube {t}"), "current-jobs-delayed");
            (t, v.parse().expect("a count"))
        })
        .collect();
    // Until the first scrape lands (a second apart), within the deadline.
    loop {
        let got: Vec<Option<f64>> = (want.iter())
            .map(|(t, _)| {
                query(
                    port,
                    &format!("sprout_tube_jobs{{tube=\"{t}\",state=\"delayed\"}}"),
                )
            })
            .collect();
        if got.iter().all(Option::is_some) {
            for ((t, v), g) in want.iter().zip(got) {
                assert_eq!(g, Some(*v), "{t}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "no scrape reached prometheus");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(query(port, "up{job=\"sprout\"}"), Some(1.0));
    // Every per-tube line arrived: 15 for each tube (those left without
    // jobs are gone), and the server's own.
    let tubes: f64 = c.stat("stats", "current-tubes").parse().unwrap();
    let identity = super::get(h, "/metrics").text();
    let lines = identity.lines().filter(|l| !l.starts_with('#')).count();
    let samples = query(port, "scrape_samples_scraped{job=\"sprout\"}").unwrap();
    assert!(
        tubes > 200.0 && samples > tubes * 15.0,
        "{samples} for {tubes} tubes"
    );
    assert_eq!(samples, lines as f64);
}
