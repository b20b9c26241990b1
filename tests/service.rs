//! Running as a service: unix sockets, systemd socket activation and
//! readiness, signals, and the command line.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Server, free_port, sprout_bin};

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sprout-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn unix_socket_serves_and_is_removed_on_sigterm() {
    let dir = temp_dir("unix");
    let path = dir.join("sprout.sock");
    let mut child = Command::new(sprout_bin())
        .arg("-l")
        .arg(format!("unix:{}", path.display()))
        .stdin(Stdio::null())
        .spawn()
        .expect("start sprout");
    wait_for("the unix socket", || UnixStream::connect(&path).is_ok());
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"put 0 0 10 2\r\nhi\r\nlist-tube-used\r\n")
        .unwrap();
    let want = b"INSERTED 1\r\nUSING default\r\n";
    let mut got = vec![0; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, want);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "sprout did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success());
    assert!(!path.exists(), "the socket file is removed at exit");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_in_the_way_of_the_unix_socket_is_refused() {
    let dir = temp_dir("unix-taken");
    let path = dir.join("not-a-socket");
    std::fs::write(&path, b"data").unwrap();
    let out = Command::new(sprout_bin())
        .arg("-l")
        .arg(format!("unix:{}", path.display()))
        .output()
        .expect("run sprout");
    assert_eq!(out.status.code(), Some(111));
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn systemd_socket_activation_and_readiness() {
    let dir = temp_dir("systemd");
    let notify_path = dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = free_port();
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-E")
        .arg(format!("NOTIFY_SOCKET={}", notify_path.display()))
        .arg(sprout_bin())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd) must be installed");
    // The activator listens first; sprout starts on the first connection.
    let mut c = None;
    wait_for("the activated socket", || {
        c = std::net::TcpStream::connect(("127.0.0.1", port)).ok();
        c.is_some()
    });
    let mut c = Client { s: c.unwrap() };
    c.s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.expect("list-tube-used\r\n", "USING default\r\n");
    let mut buf = [0u8; 64];
    let n = notify.recv(&mut buf).expect("READY=1 on NOTIFY_SOCKET");
    assert_eq!(&buf[..n], b"READY=1");
    // A second connection goes to the same server through the inherited fd.
    let mut d = Client::connect(port);
    assert_eq!(d.stat("stats", "total-connections"), "2");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn command_line() {
    let run = |args: &[&str]| {
        Command::new(sprout_bin())
            .args(args)
            .output()
            .expect("run sprout")
    };
    let v = run(&["-v"]);
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("sprout "));
    let h = run(&["-h"]);
    assert!(h.status.success());
    assert!(String::from_utf8_lossy(&h.stdout).contains("127.0.0.1"));
    assert_eq!(run(&["-q"]).status.code(), Some(5));
    assert_eq!(run(&["stray"]).status.code(), Some(5));
    // A -b directory that cannot be used stops the start, with the reason.
    let b = run(&["-b", "/nonexistent/dir", "-p", &free_port().to_string()]);
    assert_eq!(b.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&b.stderr).contains("/nonexistent/dir"));
    // getopt-style flags as beanstalkd takes them.
    let s = Server::start_bin(sprout_bin(), &["-VVz10"]);
    let mut c = s.connect();
    assert_eq!(c.stat("stats", "max-job-size"), "10");
}
