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

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http/browser.js");
    let modules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/client-libs/node/node_modules"
    );
    let shot = concat!(env!("CARGO_MANIFEST_DIR"), "/target/status-page.png");
    let out = Command::new("node")
        .arg(script)
        .arg(format!("http://127.0.0.1:{h}/"))
        .arg(shot)
        .env("NODE_PATH", modules)
        .output()
        .expect("node (scripts/test installs nodejs, playwright-core and chromium)");
    assert!(
        out.status.success(),
        "browser: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the script's JSON");
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
