//! No acknowledgement without durability: the real binary with fsync made
//! to fail by an LD_PRELOAD shim (tests/shim/failing_fsync.c, built here
//! with cc). Once its flag file exists, the next fsync or fdatasync takes
//! the flag and fails with EIO, and what was written since the
//! descriptor's last good sync is lost (zeroed), as pages whose writeback
//! failed are.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Server, TempDir, build_shim, put, sprout_bin};

/// The shim, built into a directory of its own, and its flag file.
struct Shim {
    dir: TempDir,
}

impl Shim {
    fn build() -> Shim {
        let dir = TempDir::new("shim");
        build_shim("failing_fsync", &dir);
        Shim { dir }
    }

    fn flag(&self) -> PathBuf {
        self.dir.0.join("fail-now")
    }

    /// Starts sprout with the shim preloaded and its log kept.
    fn start(&self, args: &[&str]) -> Server {
        let log = std::fs::File::create(self.dir.0.join("log")).unwrap();
        Server::start_with(sprout_bin(), args, |cmd| {
            cmd.env("LD_PRELOAD", self.dir.0.join("failing_fsync.so"))
                .env("FAILING_FSYNC_FLAG", self.flag())
                .stderr(log.try_clone().unwrap());
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("log")).unwrap_or_default()
    }
}

#[test]
fn with_f0_a_failed_fsync_is_never_acknowledged() {
    let shim = Shim::build();
    let dir = TempDir::new("fsyncfail");
    let mut s = shim.start(&["-b", dir.arg(), "-f", "0"]);
    let mut c = s.connect();
    // Acknowledged while the disk works.
    let kept = put(&mut c, 0, 0, 60, b"kept");
    let gone = put(&mut c, 0, 0, 60, b"gone");
    c.expect(format!("delete {gone}\r\n"), "DELETED\r\n");
    let mut other = s.connect();
    c.expect(
        format!("reserve-job {kept}\r\n"),
        format!("RESERVED {kept} 4\r\nkept\r\n"),
    );
    c.expect(format!("bury {kept} 7\r\n"), "BURIED\r\n");

    // The disk fails: a put is written, its fsync fails, and no reply
    // comes; the server stops rather than acknowledge it, and the other
    // connection is closed too.
    std::fs::write(shim.flag(), b"").unwrap();
    c.send("put 0 0 60 4\r\nlost\r\n");
    c.expect_closed();
    other.expect_closed();
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("sprout stopped");
    assert_eq!(status.code(), Some(75), "{}", shim.log());
    let log = shim.log();
    assert!(
        log.contains("fsync of the current binlog file failed")
            && log.contains("the replies that waited for it are not sent")
            && log.contains("check the disk"),
        "{log}"
    );

    // A restart (the disk works again) shows every acknowledged change.
    assert!(!shim.flag().exists(), "the shim failed an fsync");
    let s = Server::start(&["-b", dir.arg()]);
    let mut c = s.connect();
    let job = c.yaml(&format!("stats-job {kept}"));
    assert_eq!(
        (job["state"].as_str(), job["pri"].as_str()),
        ("buried", "7")
    );
    c.expect(format!("peek {gone}\r\n"), "NOT_FOUND\r\n");
    // The put that was never acknowledged was lost with its page.
    c.expect(format!("peek {}\r\n", gone + 1), "NOT_FOUND\r\n");
    assert_eq!(c.stat("stats", "current-jobs-buried"), "1");
}

#[test]
fn a_failed_final_fsync_sends_no_held_reply() {
    // SIGTERM syncs before the last replies go; if that sync fails, the
    // replies that waited for it stay unsent.
    let shim = Shim::build();
    let dir = TempDir::new("fsyncfinal");
    let mut s = shim.start(&["-b", dir.arg(), "-f", "0"]);
    let mut c = s.connect();
    let kept = put(&mut c, 0, 0, 60, b"kept");
    std::fs::write(shim.flag(), b"").unwrap();
    c.send("put 0 0 60 4\r\nlost\r\n");
    s.signal(libc::SIGTERM);
    c.expect_closed();
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("sprout stopped");
    assert_eq!(status.code(), Some(75), "{}", shim.log());
    assert!(!shim.flag().exists(), "the shim failed an fsync");
    let s = Server::start(&["-b", dir.arg()]);
    let mut c = s.connect();
    c.expect(
        format!("peek {kept}\r\n"),
        format!("FOUND {kept} 4\r\nkept\r\n"),
    );
    c.expect(format!("peek {}\r\n", kept + 1), "NOT_FOUND\r\n");
}

#[test]
fn with_f_ms_a_failed_fsync_is_written_again_fresh() {
    // With -f 50 replies go out before the fsync; when it fails, what they
    // promised is written again to a fresh file and synced there, and the
    // old files go only once that is durable.
    let shim = Shim::build();
    let dir = TempDir::new("fsyncagain");
    let mut s = shim.start(&["-b", dir.arg(), "-f", "50"]);
    let mut c = s.connect();
    let a = put(&mut c, 3, 0, 60, b"before");
    let d = put(&mut c, 0, 0, 60, b"deleted");
    c.expect(format!("delete {d}\r\n"), "DELETED\r\n");
    std::fs::write(shim.flag(), b"").unwrap();
    // Written after the flag: its fsync fails and loses it on disk.
    let b = put(&mut c, 5, 0, 60, b"during");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while shim.flag().exists() {
        assert!(std::time::Instant::now() < deadline, "no fsync failed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let after = put(&mut c, 7, 0, 60, b"after");
    // A clean stop: its final fsync succeeds.
    s.signal(libc::SIGTERM);
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("sprout stopped");
    assert_eq!(status.code(), Some(0), "{}", shim.log());
    let log = shim.log();
    assert!(
        log.contains("fsync of the current binlog file failed")
            && log.contains("(1 so far); every live job was written again to a fresh file"),
        "{log}"
    );

    // Every acknowledged job once, with its body and priority; the deleted
    // one stays deleted.
    let s = Server::start(&["-b", dir.arg()]);
    let mut c = s.connect();
    for (id, pri, body) in [
        (a, "3", "before"),
        (b, "5", "during"),
        (after, "7", "after"),
    ] {
        c.expect(
            format!("peek {id}\r\n"),
            format!("FOUND {id} {}\r\n{body}\r\n", body.len()),
        );
        assert_eq!(c.stat(&format!("stats-job {id}"), "pri"), pri);
    }
    c.expect(format!("peek {d}\r\n"), "NOT_FOUND\r\n");
    assert_eq!(c.stat("stats", "current-jobs-ready"), "3");
}
