//! `sproutctl top` in a real terminal (tmux.rs).

use std::time::{Duration, Instant};

use super::common::{Server, put};
use super::ctl_bin;
use super::tmux::Tmux;

/// The cells of the row for `tube`, if on screen.
fn row(screen: &str, tube: &str) -> Option<Vec<String>> {
    (screen.lines())
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .find(|cells| cells.first().is_some_and(|c| c == tube))
}

#[test]
fn top_shows_tubes_and_their_changing_counts_and_quits_on_q() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    for tube in ["alpha", "beta"] {
        c.expect(format!("use {tube}\r\n"), format!("USING {tube}\r\n"));
        put(&mut c, 0, 0, 60, b"x");
    }
    let tmux = Tmux::start(&format!("{} --server 127.0.0.1:{} top", ctl_bin(), s.port));
    let first = tmux.until("the tubes", |sc| row(sc, "beta").is_some());
    let head: Vec<&str> = (first.lines())
        .find(|l| l.starts_with("tube"))
        .expect("a header")
        .split_whitespace()
        .collect();
    assert_eq!(
        head,
        [
            "tube", "READY", "reserved", "delayed", "buried", "waiting", "put/s", "delete/s",
            "paused"
        ]
    );
    assert_eq!(row(&first, "alpha").unwrap()[..2], ["alpha", "1"]);
    assert!(
        first
            .lines()
            .any(|l| l.starts_with("put/s ") && l.contains(" reserve/s ")),
        "{first}"
    );
    assert!(first.lines().all(|l| l.chars().count() <= 80));
    // Three more in beta: the count changes and beta sorts first.
    for _ in 0..3 {
        put(&mut c, 0, 0, 60, b"x");
    }
    let later = tmux.until("beta at 4", |sc| {
        row(sc, "beta").is_some_and(|r| r[1] == "4")
    });
    let tubes: Vec<&str> = (later.lines())
        .skip_while(|l| !l.starts_with("tube"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(tubes[..2], ["beta", "alpha"], "{later}");
    tmux.keys("s");
    tmux.until("sorting by reserved", |sc| sc.contains(" RESERVED "));
    tmux.keys("q");
    let deadline = Instant::now() + Duration::from_secs(5);
    while tmux.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!tmux.alive(), "top did not quit on q");
}
