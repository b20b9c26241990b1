//! README.md's own commands, run as written (only the ports swapped for
//! free ones): every fenced `sh` block is one of the kinds below, or this
//! test fails, so a README edit that breaks a command fails CI.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, free_port};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The fenced `sh` blocks of README.md, their lines in order.
fn blocks() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let (mut out, mut cur): (Vec<Vec<String>>, Option<Vec<String>>) = (Vec::new(), None);
    for line in text.lines() {
        match (&mut cur, line.trim_end()) {
            (None, "```sh") => cur = Some(Vec::new()),
            (Some(_), "```") => out.extend(cur.take()),
            (Some(b), l) => b.push(l.to_string()),
            _ => {}
        }
    }
    assert!(cur.is_none(), "README.md has an unclosed ```sh block");
    out
}

/// A block's command lines run through `sh -c` with target/release first
/// on PATH (where `cargo build --release` puts sprout and sproutctl), in
/// its own process group, killed with it when dropped.
struct Shell(Child);

fn shell(line: &str, envs: &[(&str, String)]) -> Command {
    let path = format!(
        "{}:{}",
        root().join("target/release").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(line)
        .current_dir(root())
        .env("PATH", path)
        .env_remove("SPROUT_SERVERS");
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

impl Shell {
    fn start(line: &str, envs: &[(&str, String)], log: &Path) -> Shell {
        let child = shell(line, envs)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Shell(child)
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test made.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGTERM) };
        let _ = common::wait_child(&mut self.0, Duration::from_secs(10));
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// Runs a line to its end (bounded), returning stdout; it must exit 0.
fn run(line: &str, envs: &[(&str, String)]) -> String {
    let mut child = shell(line, envs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = common::wait_child(&mut child, Duration::from_secs(60));
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "{line}: {status:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (bounded) until a port answers `stats` as a beanstalkd would.
fn wait_serving(port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            s.write_all(b"stats\r\n").unwrap();
            let mut buf = [0u8; 3];
            if s.read_exact(&mut buf).is_ok() && &buf == b"OK " {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "nothing served on {port}; log: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn start_server(dir: &TempDir) -> (Shell, u16) {
    let port = free_port();
    let log = dir.0.join(format!("sprout-{port}.log"));
    let s = Shell::start(&format!("sprout -l 127.0.0.1 -p {port}"), &[], &log);
    wait_serving(port, &log);
    (s, port)
}

fn swap(line: &str, from: &str, to: u16) -> String {
    assert!(
        line.contains(from),
        "{line}: no {from} to swap for a free port"
    );
    line.replace(from, &to.to_string())
}

/// `cargo run --release -- -l 127.0.0.1 -p 11300`: it serves, and its
/// start-up line says where and what.
fn start_command(b: &[String], dir: &TempDir) {
    assert_eq!(b.len(), 1, "{b:?}");
    let port = free_port();
    let log = dir.0.join("cargo-run.log");
    let _s = Shell::start(&swap(&b[0], "11300", port), &[], &log);
    wait_serving(port, &log);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains(&format!("listening on 127.0.0.1:{port}; no binlog"))
            && said.contains("connections"),
        "{said}"
    );
}

/// The gearman example: a worker, then a call printing the line count.
fn sproutctl_example(b: &[String], dir: &TempDir) {
    let [work, call] = b else { panic!("{b:?}") };
    assert!(
        work.starts_with("sproutctl work ") && call.starts_with("sproutctl call "),
        "{b:?}"
    );
    let (_server, port) = start_server(dir);
    let env = [("SPROUT_SERVERS", format!("127.0.0.1:{port}"))];
    let _worker = Shell::start(work, &env, &dir.0.join("work.log"));
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let lines = passwd.iter().filter(|&&b| b == b'\n').count();
    assert!(call.contains("< /etc/passwd"), "{call}");
    assert_eq!(run(call, &env).trim(), lines.to_string(), "{call}");
}

/// `sprout ... --http 127.0.0.1:11380` and the curl that greps a metric.
fn http_example(b: &[String], dir: &TempDir) {
    let [server, curl] = b else { panic!("{b:?}") };
    let (port, http) = (free_port(), free_port());
    let line = swap(&swap(server, "11300", port), "11380", http);
    let log = dir.0.join("http.log");
    let _s = Shell::start(&line, &[], &log);
    wait_serving(port, &log);
    let metric = curl.rsplit(' ').next().unwrap();
    let out = run(&swap(curl, "11380", http), &[]);
    assert!(out.lines().any(|l| l.starts_with(metric)), "{curl}: {out}");
}

/// The service install: `cargo install` into a scratch root puts sprout and
/// sproutctl there and nothing else; every file the block installs exists;
/// the units pass `systemd-analyze verify` against the installed binary.
fn service_install(b: &[String], dir: &TempDir) {
    let scratch = dir.0.join("root");
    let install = b.iter().find(|l| l.starts_with("cargo install ")).unwrap();
    run(
        &install.replace("/usr/local", scratch.to_str().unwrap()),
        &[],
    );
    let mut bins: Vec<String> = std::fs::read_dir(scratch.join("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    bins.sort();
    assert_eq!(bins, ["sprout", "sproutctl"]);
    for l in b.iter().filter(|l| l.starts_with("install ")) {
        for f in l.split_whitespace().filter(|w| w.starts_with("doc/")) {
            assert!(root().join(f).is_file(), "{l}: {f} is not there");
        }
    }
    for page in ["sprout.1", "sproutctl.1"] {
        assert!(
            b.iter().any(|l| l.contains(&format!("doc/{page} "))),
            "the block installs no {page}"
        );
    }
    let units = dir.0.join("units");
    std::fs::create_dir_all(&units).unwrap();
    for u in ["sprout.service", "sprout.socket"] {
        let text = std::fs::read_to_string(root().join("doc").join(u)).unwrap();
        let bin = scratch.join("bin/sprout");
        std::fs::write(
            units.join(u),
            text.replace("/usr/local/bin/sprout", bin.to_str().unwrap()),
        )
        .unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(units.join("sprout.service"))
        .arg(units.join("sprout.socket"))
        .output()
        .expect("systemd-analyze (Debian's systemd)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The takeover from beanstalkd: systemctl is not run here, but what it
/// leans on is checked: SPROUT_EXTRA is read by the unit and offered in
/// /etc/default/sprout, and the unit may write beanstalkd's directory.
fn takeover(b: &[String]) {
    let unit = std::fs::read_to_string(root().join("doc/sprout.service")).unwrap();
    let default = std::fs::read_to_string(root().join("doc/sprout.default")).unwrap();
    assert!(
        b.iter()
            .any(|l| l.contains("SPROUT_EXTRA=\"-b /var/lib/beanstalkd\"")),
        "{b:?}"
    );
    assert!(unit.contains("$SPROUT_EXTRA") && default.contains("SPROUT_EXTRA"));
    assert!(unit.contains("ReadWritePaths=-/var/lib/beanstalkd"));
}

#[test]
fn every_readme_command_does_what_the_readme_says() {
    let dir = TempDir::new("readme");
    let mut seen = Vec::new();
    for b in blocks() {
        let first = b.first().cloned().unwrap_or_default();
        let kind = if first.starts_with("cargo run ") {
            start_command(&b, &dir);
            "start"
        } else if first == "bash scripts/test" {
            assert_eq!(b.len(), 1);
            let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
            assert!(
                ci.lines().any(|l| l == "bash scripts/test"),
                ".ci/run must run the README's test command"
            );
            "test"
        } else if first.starts_with("cargo install ") {
            service_install(&b, &dir);
            "install"
        } else if first.starts_with("systemctl disable --now beanstalkd") {
            takeover(&b);
            "takeover"
        } else if first.starts_with("sprout ") && first.contains("--http") {
            http_example(&b, &dir);
            "http"
        } else if first.starts_with("sproutctl work ") {
            sproutctl_example(&b, &dir);
            "sproutctl"
        } else {
            panic!("README.md has a sh block tests/readme.rs does not know; teach it: {b:?}");
        };
        seen.push(kind);
    }
    seen.sort();
    assert_eq!(
        seen,
        ["http", "install", "sproutctl", "start", "takeover", "test"]
    );
}

/// `systemd-analyze security` rates the unit as Debian's hardened daemons.
#[test]
fn the_service_unit_is_hardened() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(root().join("doc/sprout.service"))
        .output()
        .expect("systemd-analyze (Debian's systemd)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let level: f64 = (text.lines())
        .find_map(|l| {
            l.split("Overall exposure level for sprout.service: ")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    assert!(level <= 2.5, "exposure {level}: {text}");
}
