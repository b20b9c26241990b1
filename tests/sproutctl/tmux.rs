//! A real terminal for sproutctl: tmux runs a command on an 80x24 pane
//! of a tmux server of the test's own; capture-pane reads the screen,
//! send-keys types.

use std::process::Command;
use std::time::{Duration, Instant};

use super::text;

/// A tmux server of the test's own (its own socket), killed when dropped.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(command: &str) -> Tmux {
        let socket = format!(
            "sproutctl-{}-{}",
            std::process::id(),
            super::common::free_port()
        );
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

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]).args(args);
        c
    }

    pub fn screen(&self) -> String {
        text(
            &self
                .cmd(&["capture-pane", "-p", "-t", "top"])
                .output()
                .unwrap()
                .stdout,
        )
    }

    pub fn keys(&self, keys: &str) {
        assert!(
            self.cmd(&["send-keys", "-t", "top", keys])
                .status()
                .unwrap()
                .success()
        );
    }

    pub fn alive(&self) -> bool {
        (self.cmd(&["has-session", "-t", "top"]).output()).is_ok_and(|o| o.status.success())
    }

    /// Waits (bounded) for a screen that `f` accepts; returns it.
    pub fn until(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
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
