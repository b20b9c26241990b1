//! /metrics in gzip, as Prometheus asks for it: the same text as without,
//! whether its pieces were compressed at an earlier scrape, are sent
//! stored for want of budget, or changed since.

use std::io::Read;

use super::common::{Server, put};
use super::{parse_response, promtool_check, raw};

fn get_metrics(port: u16, accept: Option<&str>) -> super::Response {
    let accept = accept.map_or(String::new(), |a| format!("Accept-Encoding: {a}\r\n"));
    let req = format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n");
    let out = raw(port, req.as_bytes());
    parse_response(&out, false)
        .expect("a whole response to /metrics")
        .0
}

fn gunzip(body: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut text)
        .expect("one valid gzip member");
    text
}

/// The lines that do not move while no client acts: without the
/// server's clock, CPU, loop turns and its own HTTP counts.
fn still(text: &str) -> Vec<&str> {
    const MOVING: [&str; 5] = [
        "sprout_uptime_seconds",
        "sprout_cpu_seconds_total",
        "sprout_loop_turn_duration_seconds",
        "sprout_http_requests_total",
        "sprout_http_connections",
    ];
    (text.lines())
        .filter(|l| !MOVING.iter().any(|m| l.contains(m)))
        .collect()
}

#[test]
fn gzip_metrics_are_the_text() {
    let (s, h) = Server::start_http(&[], |_| {});
    let mut c = s.connect();
    // 2,000 tubes: 32 pieces in each of 12 families, more than one scrape
    // compresses, so the first gzip scrape sends some stored.
    let mut batch = String::new();
    for i in 0..2000 {
        batch.push_str(&format!("use t{i}\r\nput 0 600 60 1\r\nx\r\n"));
    }
    c.send(batch.as_bytes());
    for i in 0..2000 {
        assert_eq!(c.line(), format!("USING t{i}\r\n"));
        assert!(c.line().starts_with("INSERTED "));
    }
    let mut sizes = Vec::new();
    for step in 0..4 {
        if step == 2 {
            // A change in the middle: that piece is compressed afresh.
            // (Delayed: a ready job's age would move between the reads.)
            c.expect("use t1000\r\n", "USING t1000\r\n");
            put(&mut c, 5, 600, 60, b"later");
        }
        let plain = get_metrics(h, None);
        let zipped = get_metrics(h, Some("deflate, gzip;q=0.9, br"));
        assert_eq!(plain.status, 200);
        assert_eq!(plain.headers.get("content-encoding"), None);
        assert_eq!(plain.headers["vary"], "Accept-Encoding");
        assert_eq!(zipped.status, 200);
        assert_eq!(zipped.headers["content-encoding"], "gzip", "step {step}");
        assert_eq!(zipped.headers["vary"], "Accept-Encoding");
        let text = gunzip(&zipped.body);
        let (a, b) = (still(&text), plain.text());
        let b = still(&b);
        let differ: Vec<_> = a.iter().zip(&b).filter(|(x, y)| x != y).take(5).collect();
        assert!(
            a.len() == b.len() && differ.is_empty(),
            "step {step}: {} and {} lines; {differ:?}",
            a.len(),
            b.len()
        );
        sizes.push((zipped.body.len(), plain.body.len()));
        if step == 3 {
            promtool_check(&text);
            assert!(
                text.contains("sprout_tube_jobs{tube=\"t1000\",state=\"delayed\"} 2\n"),
                "the change is in the compressed text"
            );
        }
    }
    // Stored pieces at first, all compressed by the second scrape.
    let (first, raw_len) = sizes[0];
    let (second, _) = sizes[1];
    assert!(second < first, "{sizes:?}");
    assert!(second * 5 < raw_len, "{sizes:?}");
    // q=0 refuses gzip: the text as it is.
    let refused = get_metrics(h, Some("gzip;q=0, identity"));
    assert_eq!(refused.headers.get("content-encoding"), None);
    assert!(refused.text().starts_with("# HELP "));
}
