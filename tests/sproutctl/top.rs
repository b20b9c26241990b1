//! `sproutctl top` in a real terminal: tmux runs it on an 80x24 pane;
//! capture-pane reads the screen, send-keys types.

use std::process::Command;
use std::time::{Duration, Instant};

use super::common::{Server, put};
use super::{ctl_bin, text};

/// A tmux server of the test's own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let socket = format!("sproutctl-top-{}-{}", std::process::id(), common_port());
        let t = Tmux { socket };
        let st = t
            .cmd(&[
                "new-session",
                "-d",
                "-s",
                "top",
                "-x",
                "80",
                "-y",
                "24",
                command,
            ])
            .status()
            .expect("tmux (Debian's tmux package; scripts/test installs it)");
        assert!(st.success());
        t
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]).args(args);
        c
    }

    fn screen(&self) -> String {
        text(
            &self
                .cmd(&["capture-pane", "-p", "-t", "top"])
                .output()
                .unwrap()
                .stdout,
        )
    }

    fn keys(&self, keys: &str) {
        assert!(
            self.cmd(&["send-keys", "-t", "top", keys])
                .status()
                .unwrap()
                .success()
        );
    }

    fn alive(&self) -> bool {
        (self.cmd(&["has-session", "-t", "top"]).output()).is_ok_and(|o| o.status.success())
    }

    /// Waits (bounded) for a screen that `f` accepts; returns it.
    fn until(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = String::new();
        while Instant::now() < deadline {
            last = self.screen();
            if f(&last) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no screen with {what} within 10 s; last:\n{last}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).output();
    }
}

fn common_port() -> u16 {
    super::common::free_port()
}

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
