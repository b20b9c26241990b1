//! /status.json and the page as an operator reads them: tubes in any
//! column's order (the busiest first by default, over every tube, not only
//! the rows shown), a unix-socket client named by its process and user,
//! and the chart's history with a point for now.

use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::common::{self, Server, TempDir, put};
use super::get;

fn json(h: u16, path: &str) -> serde_json::Value {
    serde_json::from_str(&get(h, path).text()).expect("status.json is JSON")
}

fn names(v: &serde_json::Value) -> Vec<String> {
    (v["tubes"].as_array().unwrap().iter())
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn tubes_sort_by_any_column_busiest_first() {
    let (s, h) = Server::start_http(&[], |_| {});
    let mut p = s.connect();
    // x holds 5 jobs, y 3, z 1 (buried): held and moved agree, so the
    // busiest order is the same whatever the rates' window.
    for (tube, n) in [("x", 5), ("y", 3), ("z", 1)] {
        p.expect(format!("use {tube}\r\n"), format!("USING {tube}\r\n"));
        for _ in 0..n {
            put(&mut p, 0, 0, 60, b"job");
        }
    }
    let mut w = s.connect();
    w.expect("watch z\r\n", "WATCHING 2\r\n");
    w.expect("ignore default\r\n", "WATCHING 1\r\n");
    let r = String::from_utf8(w.ask("reserve\r\n")).unwrap();
    let id = r.split(' ').nth(1).unwrap().to_string();
    w.expect(format!("bury {id} 0\r\n"), "BURIED\r\n");
    let v = json(h, "/status.json");
    assert_eq!(
        v["sort"],
        serde_json::json!({"by": "busy", "order": "desc"})
    );
    assert_eq!(v["rate_window"], 60);
    assert_eq!(names(&v), ["x", "y", "z", "default"]);
    let order = |q: &str| names(&json(h, &format!("/status.json?{q}")));
    assert_eq!(order("sort=name"), ["default", "x", "y", "z"]);
    assert_eq!(order("sort=name&order=desc"), ["z", "y", "x", "default"]);
    assert_eq!(order("sort=ready&order=asc"), ["default", "z", "y", "x"]);
    // Ties go by name.
    assert_eq!(order("sort=buried"), ["z", "default", "x", "y"]);
    assert_eq!(order("sort=puts"), ["x", "y", "z", "default"]);
    // An unknown column is the default order, not an error.
    assert_eq!(order("sort=bogus"), ["x", "y", "z", "default"]);
    // Each heading links to its order; the current one is marked, and
    // links keep the tube filter.
    let html = get(h, "/?sort=ready&order=asc").text();
    assert!(
        html.contains(
            "<th aria-sort=\"ascending\"><a href=\"?sort=ready&amp;order=desc\">ready</a> ▲</th>"
        ),
        "{html}"
    );
    assert!(html.contains("<a href=\"?sort=name&amp;order=asc\">tube</a>"));
    assert!(html.contains("(by ready, smallest first)"));
    let html = get(h, "/?tube=a%2Bb").text();
    assert!(html.contains("<a href=\"?tube=a%2Bb&amp;sort=buried&amp;order=desc\">buried</a>"));
    assert!(html.contains("(busiest first)"));
    // The rates say their window and the total what it counts.
    assert!(html.contains("put/s</a> <span class=\"dim\">1 min</span>"));
    assert!(html.contains("<dt>put/s <span class=\"dim\">last 1 min</span></dt>"));
    assert!(html.contains("puts</a> <span class=\"dim\">since start</span>"));
}

#[test]
fn the_order_is_over_every_tube_not_the_rows_shown() {
    let (s, h) = Server::start_http(&[], |_| {});
    let mut c = s.connect();
    // 505 empty tubes, then one with a job: last in list-tubes order, past
    // the 500 rows shown, yet the busiest.
    for i in 0..505 {
        c.expect(
            format!("watch t{i:03}\r\n"),
            format!("WATCHING {}\r\n", i + 2),
        );
    }
    c.expect("use zz\r\n", "USING zz\r\n");
    put(&mut c, 0, 0, 60, b"job");
    let v = json(h, "/status.json");
    assert_eq!(v["tubes_total"], 507);
    let shown = names(&v);
    assert_eq!(shown.len(), 500);
    assert_eq!(shown[0], "zz");
    // The rest by name: the empty tubes tie.
    assert_eq!(shown[1], "default");
    assert_eq!(shown[2], "t000");
    let v = json(h, "/status.json?sort=name&order=desc");
    assert_eq!(names(&v)[..2], ["zz", "t504"]);
}

/// sprout on a unix socket with `--http` on a free port.
struct UnixServer {
    child: std::process::Child,
    sock: std::path::PathBuf,
    http: u16,
    _dir: TempDir,
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_unix() -> UnixServer {
    let dir = TempDir::new("http-unix");
    let sock = dir.0.join("sprout.sock");
    for _ in 0..5 {
        let http = common::free_port();
        let mut child = Command::new(common::sprout_bin())
            .arg("-l")
            .arg(format!("unix:{}", sock.display()))
            .args(["--http", &format!("127.0.0.1:{http}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start sprout");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if sock.exists() && common::listens_on(child.id(), http) {
                return UnixServer {
                    child,
                    sock,
                    http,
                    _dir: dir,
                };
            }
            if let Ok(Some(_)) = child.try_wait() {
                break; // the HTTP port was taken
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("sprout did not listen on its unix socket and HTTP port");
}

fn ask(s: &mut UnixStream, cmd: &str) -> String {
    use std::io::{Read, Write};
    s.write_all(cmd.as_bytes()).unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).expect("a reply");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// What /etc/passwd calls this process's user.
fn my_user() -> String {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    (passwd.lines())
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.get(2) == Some(&uid.to_string().as_str())).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

#[test]
fn a_unix_socket_client_is_named_by_its_process_and_user() {
    let s = start_unix();
    let mut c = UnixStream::connect(&s.sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(ask(&mut c, "put 0 0 60 1\r\nx\r\n"), "INSERTED 1\r\n");
    assert!(ask(&mut c, "reserve\r\n").starts_with("RESERVED 1 1"));
    let v = json(s.http, "/status.json");
    let me = std::process::id() as i64;
    let conn = &v["connections"][0];
    assert_eq!(conn["addr"], "unix");
    assert_eq!(conn["pid"], me);
    assert_eq!(conn["user"], my_user());
    let job = &v["reserved"][0];
    assert_eq!(job["worker_pid"], me);
    assert_eq!(job["worker_user"], my_user());
    let html = get(s.http, "/").text();
    let named = format!("#{} unix, pid {me}, {}", job["worker"], my_user());
    assert!(html.contains(&named), "{named} not in {html}");
}

#[test]
fn history_ends_with_a_point_for_now() {
    let (s, h) = Server::start_http(&[], |_| {});
    let mut p = s.connect();
    p.expect("use mail\r\n", "USING mail\r\n");
    for _ in 0..3 {
        put(&mut p, 0, 0, 60, b"job");
    }
    let v = json(h, "/status.json");
    let hist = &v["history"];
    assert_eq!(
        (hist["every"].as_u64(), hist["window"].as_u64()),
        (Some(10), Some(900))
    );
    assert_eq!(hist["tube"], serde_json::Value::Null);
    assert_eq!(hist["kept"], true);
    // The server's ring began at its first turn; its first point has no
    // interval before it, so no rates.
    let first = &hist["points"][0];
    assert_eq!(first["put"], serde_json::Value::Null);
    let now = &hist["now"];
    assert_eq!(
        (now["ready"].as_u64(), now["reserved"].as_u64()),
        (Some(3), Some(0))
    );
    assert!(now["t"].as_f64().unwrap() >= first["t"].as_f64().unwrap());
    // A tube's chart: asked for, it is kept from then on.
    let v = json(h, "/status.json?tube=mail");
    assert_eq!(v["history"]["tube"], "mail");
    assert_eq!(v["history"]["kept"], true);
    assert_eq!(v["history"]["now"]["ready"], 3);
    let v = json(h, "/status.json?tube=nosuch");
    assert_eq!(v["history"]["kept"], false);
    assert_eq!(v["history"]["now"], serde_json::Value::Null);
    assert_eq!(v["history"]["points"], serde_json::json!([]));
}
