//! Running as a service: unix sockets, systemd socket activation and
//! readiness, signals, and the command line.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Server, free_port, listens_on, sprout_bin};

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
    wait_for("the activated socket", || listens_on(child.id(), port));
    let mut c = Client::connect(port);
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
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        format!(
            "sprout {} (the beanstalkd 1.13 protocol)\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    // -h as beanstalkd's: the usage on stderr, status 0.
    let h = run(&["-h"]);
    assert!(h.status.success());
    let usage = String::from_utf8_lossy(&h.stderr);
    assert!(usage.starts_with("Use: sprout [OPTIONS]") && usage.contains("127.0.0.1"));
    assert!(h.stdout.is_empty());
    assert_eq!(run(&["-q"]).status.code(), Some(5));
    assert_eq!(run(&["stray"]).status.code(), Some(5));
    // A -b directory that cannot be used stops the start, with the reason.
    let b = run(&["-b", "/nonexistent/dir", "-p", &free_port().to_string()]);
    assert_eq!(b.status.code(), Some(1));
    let said = String::from_utf8_lossy(&b.stderr);
    assert!(
        said.contains("binlog directory /nonexistent/dir does not exist"),
        "{said}"
    );
    // Each listen error says its own cause: an address this host lacks
    // (192.0.2.1 is reserved for documentation; nothing is sent to it),
    // and a port another process holds.
    let l = run(&["-l", "192.0.2.1", "-p", &free_port().to_string()]);
    let said = String::from_utf8_lossy(&l.stderr);
    assert!(
        said.contains("this host has no such address") && !said.contains("another beanstalkd"),
        "{said}"
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let l = run(&["-l", "127.0.0.1", "-p", &port]);
    let said = String::from_utf8_lossy(&l.stderr);
    assert!(
        said.contains("is another beanstalkd or sprout using it?"),
        "{said}"
    );
    // getopt-style flags as beanstalkd takes them.
    let s = Server::start_bin(sprout_bin(), &["-VVz10"]);
    let mut c = s.connect();
    assert_eq!(c.stat("stats", "max-job-size"), "10");
}

/// A system user made for one test (the suite runs as root), removed when
/// dropped.
struct TestUser {
    name: String,
}

impl TestUser {
    fn create(tag: &str) -> TestUser {
        let name = format!("sprout-{tag}-{}", std::process::id());
        let _ = Command::new("userdel").arg(&name).status();
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(&name)
            .status()
            .expect("run useradd");
        assert!(
            status.success(),
            "useradd {name}: the tests must run as root"
        );
        TestUser { name }
    }

    fn id(&self, flag: &str) -> u32 {
        let out = Command::new("id")
            .args([flag, &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// The Uid:, Gid: and Groups: lines of /proc/PID/status.
fn credentials(pid: i32) -> (String, String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    (line("Uid:"), line("Gid:"), line("Groups:"))
}

#[test]
fn dash_u_drops_privileges_after_binding() {
    let user = TestUser::create("u");
    let (uid, gid) = (user.id("-u"), user.id("-g"));
    // A port below 1024 needs root to bind; sprout binds it, then becomes
    // the user. Free ones are found by binding them first.
    let free_low: Vec<u16> = (900u16..1024)
        .filter(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .take(3)
        .collect();
    let mut served = None;
    for port in free_low {
        let mut child = Command::new(sprout_bin())
            .args(["-l", "127.0.0.1", "-p", &port.to_string(), "-u", &user.name])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sprout");
        let up = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            listens_on(child.id(), port)
        });
        if up && child.try_wait().unwrap().is_none() {
            served = Some((child, port));
            break;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let (mut child, port) = served.expect("sprout did not serve on a privileged port");
    let mut c = Client::connect(port);
    c.expect("put 0 0 10 2\r\nhi\r\n", "INSERTED 1\r\n");
    let (uids, gids, groups) = credentials(child.id() as i32);
    assert_eq!(uids, format!("{uid} {uid} {uid} {uid}"));
    assert_eq!(gids, format!("{gid} {gid} {gid} {gid}"));
    // initgroups: the user's own groups only, none of root's.
    assert_eq!(groups, gid.to_string());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn dash_u_opens_the_binlog_as_the_user() {
    let user = TestUser::create("ub");
    let dir = temp_dir("dash-u-binlog");
    // Root's directory, closed to others: the user cannot lock it.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let out = Command::new(sprout_bin())
        .args([
            "-l",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-u",
            &user.name,
        ])
        .arg("-b")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let uid = user.id("-u");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "binlog directory {} is not writable by uid {uid}",
            dir.display()
        )),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Given to the user, it works, and the files are the user's.
    let chown = Command::new("chown")
        .arg(&user.name)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(chown.success());
    let s = Server::start(&["-u", &user.name, "-b", dir.to_str().unwrap()]);
    let mut c = s.connect();
    c.expect("put 0 0 10 2\r\nhi\r\n", "INSERTED 1\r\n");
    let meta = std::fs::metadata(dir.join("binlog.1")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), user.id("-u"));
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs sprout with `args` and `env`, sends a few commands, stops it with
/// SIGTERM, and returns what it wrote to stderr.
fn log_of(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = temp_dir(&format!("log{}", args.len() + env.len()));
    let log = dir.join("stderr");
    let s = Server::start_with(sprout_bin(), args, |cmd| {
        cmd.env_remove("RUST_LOG").envs(env.iter().copied());
        cmd.stderr(std::fs::File::create(&log).unwrap());
    });
    let mut c = s.connect();
    c.expect("put 0 0 10 2\r\nhi\r\n", "INSERTED 1\r\n");
    c.expect("delete 1\r\n", "DELETED\r\n");
    let mut s = s;
    s.signal(libc::SIGTERM);
    assert!(s.wait_exit(Duration::from_secs(5)).is_some());
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    text
}

#[test]
fn logging_follows_dash_v_and_rust_log() {
    // At the default verbosity, the one start-up line and nothing else.
    let quiet = log_of(&[], &[]);
    let lines: Vec<&str> = quiet.lines().collect();
    assert!(
        lines.len() == 1
            && lines[0].contains(" INFO  sprout::start] sprout ")
            && lines[0].contains(" listening on 127.0.0.1:"),
        "a quiet run logged: {quiet}"
    );
    let info = log_of(&["-V"], &[]);
    assert!(
        info.contains("pid ") && info.contains("shutting down"),
        "{info}"
    );
    assert!(
        !info.contains("put 0 0 10 2"),
        "-V logged a command: {info}"
    );
    let every = log_of(&["-VV"], &[]);
    assert!(
        every.contains("put 0 0 10 2") && every.contains("delete 1"),
        "{every}"
    );
    let env = log_of(&[], &[("RUST_LOG", "info")]);
    assert!(
        env.contains("pid ") && !env.contains("put 0 0 10 2"),
        "{env}"
    );
}

fn doc(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("doc")
            .join(name),
    )
    .unwrap_or_else(|e| panic!("doc/{name}: {e}"))
}

#[test]
fn the_man_page_covers_every_flag() {
    let out = Command::new(sprout_bin()).arg("-h").output().unwrap();
    let help = String::from_utf8_lossy(&out.stderr);
    let page = doc("sprout.1");
    // " -b DIR" gives "-b"; " --max-memory BYTES" gives "--max-memory".
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| l.strip_prefix(' '))
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().next())
        .map(|f| if f.starts_with("--") { f } else { &f[..2] })
        .collect();
    assert!(flags.len() >= 14, "flags found in -h: {flags:?}");
    // An option is described under a .TP header line naming it.
    let headers: Vec<&str> = page
        .split(".TP\n")
        .skip(1)
        .filter_map(|item| item.lines().next())
        .collect();
    for f in flags {
        // groff spells each '-' as "\-".
        let spelt = f.replace('-', "\\-");
        let named = |h: &&str| {
            h.split(|c: char| c.is_whitespace() || c == '"' || c == ',')
                .any(|w| w == spelt)
        };
        assert!(headers.iter().any(named), "sprout.1 does not describe {f}");
    }
    for word in [
        "SIGTERM",
        "SIGINT",
        "SIGUSR1",
        "RUST_LOG",
        "binlog.",
        "lock",
        "EXIT STATUS",
    ] {
        assert!(page.contains(word), "sprout.1 does not mention {word}");
    }
}

#[test]
fn the_systemd_units_verify_and_their_command_line_serves() {
    // systemd's own checker, with the unit pointed at the binary under test.
    let dir = temp_dir("units");
    let service = doc("sprout.service");
    std::fs::write(
        dir.join("sprout.service"),
        service.replace("/usr/local/bin/sprout", sprout_bin()),
    )
    .unwrap();
    std::fs::write(dir.join("sprout.socket"), doc("sprout.socket")).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.join("sprout.service"))
        .arg(dir.join("sprout.socket"))
        .output()
        .expect("systemd-analyze (package systemd) is installed by scripts/test");
    let complaints = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && complaints.trim().is_empty(),
        "{complaints}"
    );

    // The ExecStart line, expanded as systemd does with the shipped
    // /etc/default/sprout: ${VAR} is one word, $VAR is split on spaces.
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let port = free_port();
    let mut env: std::collections::HashMap<String, String> = doc("sprout.default")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect();
    env.insert("SPROUT_LISTEN_PORT".into(), port.to_string());
    let extra = env["SPROUT_EXTRA"].replace("/var/lib/sprout", state.to_str().unwrap());
    env.insert("SPROUT_EXTRA".into(), extra);
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let mut argv: Vec<String> = Vec::new();
    for word in exec.split_whitespace() {
        if let Some(var) = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
            argv.push(env[var].clone());
        } else if let Some(var) = word.strip_prefix('$') {
            argv.extend(env[var].split_whitespace().map(String::from));
        } else {
            argv.push(word.to_string());
        }
    }
    assert_eq!(argv[0], "/usr/local/bin/sprout");
    let mut child = Command::new(sprout_bin())
        .args(&argv[1..])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the unit's command line to serve", || {
        listens_on(child.id(), port)
    });
    let mut c = Client::connect(port);
    c.expect("put 0 0 10 2\r\nhi\r\n", "INSERTED 1\r\n");
    assert!(
        state.join("binlog.1").exists(),
        "the default SPROUT_EXTRA keeps a binlog"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// sprout.service runs as User=sprout with an empty capability set, where
/// even initgroups to one's own groups is refused: `-u` naming that same
/// user must then be a no-op, not a failure to start.
#[test]
fn dash_u_for_the_user_already_running_needs_no_capability() {
    let user = TestUser::create("self");
    let (uid, gid) = (user.id("-u"), user.id("-g"));
    let port = free_port();
    let mut child = Command::new("setpriv")
        .args([
            "--reuid",
            &uid.to_string(),
            "--regid",
            &gid.to_string(),
            "--clear-groups",
        ])
        .args(["--inh-caps=-all", "--bounding-set=-all", "--"])
        .arg(sprout_bin())
        .args(["-l", "127.0.0.1", "-p", &port.to_string(), "-u", &user.name])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux) runs sprout");
    let up = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        listens_on(child.id(), port) || child.try_wait().unwrap().is_some()
    });
    let exited = child.try_wait().unwrap();
    if exited.is_some() || !up {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "sprout did not serve: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Client::connect(port).expect("put 0 0 10 2\r\nhi\r\n", "INSERTED 1\r\n");
    let _ = child.kill();
    let _ = child.wait();
}
