//! The status page in a real browser: headless Chromium loads `/` while a
//! worker holds a reservation, and the page shows the job's id, the
//! worker's address and a TTR left that counts down as the script
//! refreshes it. The screenshot is kept in target/status-page.png.

use std::process::Command;

use super::common::{Server, put};
use super::get;

#[test]
fn status_page_in_chromium_counts_down_a_reservation() {
    let (s, h) = Server::start_http(&[], |_| {});
    let mut p = s.connect();
    p.expect("use emails\r\n", "USING emails\r\n");
    let id = put(&mut p, 5, 0, 50, b"secret body");
    let mut w = s.connect();
    w.expect("watch emails\r\n", "WATCHING 2\r\n");
    let r = String::from_utf8(w.ask("reserve\r\n")).unwrap();
    assert!(r.starts_with(&format!("RESERVED {id} ")), "{r}");
    let worker_addr = w.s.local_addr().unwrap().to_string();
    // Without JavaScript the page already shows the reservation.
    let html = get(h, "/").text();
    assert!(
        html.contains(&format!("<td class=\"job\">{id}</td>")),
        "{html}"
    );
    assert!(!html.contains("secret"), "a body on the page");

    let shot = concat!(env!("CARGO_MANIFEST_DIR"), "/target/status-page.png");
    let v = in_chromium("browser.js", &format!("http://127.0.0.1:{h}/"), shot);
    assert_eq!(
        v["errors"],
        serde_json::json!([]),
        "script errors on the page"
    );
    assert_eq!(v["stale"], false);
    for when in ["before", "after"] {
        assert_eq!(v[when]["job"], id.to_string().as_str());
        let worker = v[when]["worker"].as_str().unwrap();
        assert!(
            worker.ends_with(&worker_addr),
            "{worker} is not {worker_addr}"
        );
    }
    // "47 s": TTR left in whole seconds, under 50, and lower after 2.5 s.
    let secs = |when: &str| -> u64 {
        let t = v[when]["ttr"].as_str().unwrap();
        t.strip_suffix(" s")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{t}"))
    };
    let (before, after) = (secs("before"), secs("after"));
    assert!(
        before < 50 && after < before,
        "TTR left {before} then {after}"
    );
    assert!(std::path::Path::new(shot).exists());
}

/// Runs a script of tests/http in headless Chromium on `url`; its JSON.
fn in_chromium(script: &str, url: &str, shot: &str) -> serde_json::Value {
    let script = format!("{}/tests/http/{script}", env!("CARGO_MANIFEST_DIR"));
    let modules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/client-libs/node/node_modules"
    );
    let out = Command::new("node")
        .arg(script)
        .arg(url)
        .arg(shot)
        .env("NODE_PATH", modules)
        .output()
        .expect("node (scripts/test installs nodejs, playwright-core and chromium)");
    assert!(
        out.status.success(),
        "browser: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script's JSON")
}

/// The chart's frame, as status.js draws it: a 480 by 150 viewBox, the
/// plot inside margins of 44 (left), 6, 8 (top) and 20.
const FRAME: (f64, f64, f64, f64, f64, f64) = (480.0, 150.0, 44.0, 6.0, 8.0, 20.0);

/// Where status.js puts (t, v) in a chart drawn from t0 to t1 with `top`
/// at the top of its axis.
fn drawn_at(t: f64, v: f64, t0: f64, t1: f64, top: f64) -> (f64, f64) {
    let (w, h, l, r, tp, b) = FRAME;
    (
        l + (t - t0) / (t1 - t0) * (w - l - r),
        tp + (1.0 - v / top) * (h - tp - b),
    )
}

#[test]
fn status_page_charts_the_figures_served_and_sorts_by_a_click() {
    let (s, h) = Server::start_http(&[], |_| {});
    let mut p = s.connect();
    p.expect("use emails\r\n", "USING emails\r\n");
    for _ in 0..4 {
        put(&mut p, 0, 0, 300, b"job");
    }
    p.expect("use other\r\n", "USING other\r\n");
    for _ in 0..3 {
        put(&mut p, 0, 0, 300, b"job");
    }
    let mut w = s.connect();
    w.expect("watch emails\r\n", "WATCHING 2\r\n");
    w.expect("ignore default\r\n", "WATCHING 1\r\n");
    for _ in 0..2 {
        assert!(w.ask("reserve\r\n").starts_with(b"RESERVED "));
    }
    let r = String::from_utf8(w.ask("reserve-with-timeout 0\r\n")).unwrap();
    assert!(r.starts_with("RESERVED "), "{r}");
    let id = r.split(' ').nth(1).unwrap().to_string();
    w.expect(format!("bury {id} 0\r\n"), "BURIED\r\n");
    // Held now: 4 ready (1 in emails, 3 in other), 2 reserved, 1 buried.
    let held = [("ready", 4.0), ("reserved", 2.0), ("buried", 1.0)];
    // A point is taken every 10 s: wait (bounded) for one after all this.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let v: serde_json::Value = serde_json::from_str(&get(h, "/status.json").text()).unwrap();
        let pts = v["history"]["points"].as_array().unwrap().clone();
        let last = pts.last().unwrap();
        if pts.len() >= 2 && held.iter().all(|(k, n)| last[*k].as_f64() == Some(*n)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no point with the jobs held in 30 s: {pts:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let shot = concat!(env!("CARGO_MANIFEST_DIR"), "/target/status-chart.png");
    let v = in_chromium("chart.js", &format!("http://127.0.0.1:{h}/"), shot);
    assert_eq!(v["errors"], serde_json::json!([]), "script errors");
    let served = &v["served"]["history"];
    for chart in v["charts"].as_array().unwrap() {
        let (t0, t1, top) = (
            chart["t0"].as_f64().unwrap(),
            chart["t1"].as_f64().unwrap(),
            chart["top"].as_f64().unwrap(),
        );
        assert!((t1 - t0 - 900.0).abs() < 1e-6, "{chart}");
        // The points the page had: those served before the page's now (a
        // point taken since is later).
        let ring: Vec<&serde_json::Value> = (served["points"].as_array().unwrap().iter())
            .filter(|p| p["t"].as_f64().unwrap() < t1)
            .collect();
        for line in chart["lines"].as_array().unwrap() {
            let key = line["key"].as_str().unwrap();
            let drawn: Vec<(f64, f64)> = (line["points"].as_array().unwrap().iter())
                .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
                .collect();
            let mut want: Vec<(f64, f64)> = (ring.iter())
                .filter(|p| !p[key].is_null())
                .map(|p| {
                    drawn_at(
                        p["t"].as_f64().unwrap(),
                        p[key].as_f64().unwrap(),
                        t0,
                        t1,
                        top,
                    )
                })
                .collect();
            // The last point is now: the jobs held, and nothing moved since
            // the point waited for.
            let now = match held.iter().find(|(k, _)| *k == key) {
                Some((_, n)) => *n,
                None => 0.0,
            };
            want.push(drawn_at(t1, now, t0, t1, top));
            assert_eq!(drawn.len(), want.len(), "{key}: {drawn:?} vs {want:?}");
            for (d, w) in drawn.iter().zip(&want) {
                // Drawn to a tenth of a unit.
                assert!(
                    (d.0 - w.0).abs() <= 0.05 + 1e-9 && (d.1 - w.1).abs() <= 0.05 + 1e-9,
                    "{key}: drawn {d:?}, served {w:?}"
                );
            }
        }
        // The axis reaches the largest figure drawn.
        assert!(top >= 4.0 || chart["id"] == "chart-rates", "{chart}");
    }
    // Busiest first, then by ready after a click on its heading.
    let busiest: Vec<&str> = (v["served"]["tubes"].as_array().unwrap().iter())
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(busiest, ["emails", "other", "default"]);
    let sorted = &v["sorted"];
    assert_eq!(sorted["search"], "?sort=ready&order=desc");
    assert_eq!(sorted["marked"], "ready ▼");
    assert_eq!(
        sorted["tubes"],
        serde_json::json!(["other", "emails", "default"])
    );
}
