//! A real network partition: the primary cut off from etcd and from its
//! replicas, while a client on its side of the cut goes on putting.
//!
//! Two network namespaces this test creates (and deletes): `a` holds the
//! primary A and its supervisor; `q` holds etcd and the replicas B and C
//! with theirs. One veth pair joins them, addresses only inside them
//! (10.99.N.0/24), so no packet leaves what the test made. The cut is the
//! link on q's side going down: from a, etcd and the replicas time out,
//! as when a cable or a switch fails; A still reaches itself.
//!
//! Checked: A acknowledges no put after a new primary acknowledged its
//! first (its supervisor demotes it at 2/3 of the lease TTL, before etcd
//! can let the lease lapse and elect another); A ends up refusing puts;
//! with --sync-replicas 1 it acknowledges no put sent after the cut at
//! all, and every put it did acknowledge is on the new primary.
//!
//! Needs root (namespaces and veth pairs), as CI runs it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TempDir;

const TTL: &str = "3";

/// Two namespaces and the link between them; deleted when dropped
/// (which also kills what still runs inside).
struct Net {
    a: String,
    q: String,
    /// The link's end inside q, the one the cut takes down.
    q_end: String,
    /// A's address (in a) and the replicas' and etcd's (in q).
    a_ip: String,
    q_ip: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {} (this test needs root)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Net {
    fn new(n: u8) -> Net {
        let tag = format!("{}{n}", std::process::id() % 100_000);
        let net = Net {
            a: format!("sprout-{tag}-a"),
            q: format!("sprout-{tag}-q"),
            q_end: format!("spq{tag}"),
            a_ip: format!("10.99.{n}.2"),
            q_ip: format!("10.99.{n}.1"),
        };
        let a_end = format!("spa{tag}");
        ip(&["netns", "add", &net.a]);
        ip(&["netns", "add", &net.q]);
        ip(&[
            "link", "add", &a_end, "type", "veth", "peer", "name", &net.q_end,
        ]);
        ip(&["link", "set", &a_end, "netns", &net.a]);
        ip(&["link", "set", &net.q_end, "netns", &net.q]);
        for (ns, dev, addr) in [(&net.a, &a_end, &net.a_ip), (&net.q, &net.q_end, &net.q_ip)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        net
    }

    fn cut(&self) {
        ip(&["-n", &self.q, "link", "set", &self.q_end, "down"]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.a, &self.q] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread inside namespace `ns`: sockets it opens live
/// there, and keep working when handed back.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on a valid descriptor changes only this thread.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("a thread inside the namespace")
}

/// A process inside a namespace, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_in(ns: &str, bin: &str, args: &[String]) -> Proc {
    Proc(
        Command::new("ip")
            .args(["netns", "exec", ns, bin])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // etcd's log is long and says nothing this test checks.
            .stderr(if bin.ends_with("etcd") {
                Stdio::null()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin} in {ns}: {e}")),
    )
}

/// A connection, opened inside `ns`, whose every read is bounded.
struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    fn open(ns: &str, addr: &str) -> Option<Conn> {
        let addr = addr.to_string();
        let s = in_ns(ns, move || {
            let sa = addr.parse().ok()?;
            TcpStream::connect_timeout(&sa, Duration::from_secs(1)).ok()
        })?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        Some(Conn {
            r: BufReader::new(s.try_clone().ok()?),
            w: s,
        })
    }

    fn line(&mut self, cmd: &[u8]) -> Option<String> {
        self.w.write_all(cmd).ok()?;
        let mut l = String::new();
        self.r.read_line(&mut l).ok()?;
        l.ends_with("\r\n").then(|| l.trim_end().to_string())
    }

    fn stat(&mut self, key: &str) -> Option<String> {
        let head = self.line(b"stats\r\n")?;
        let n: usize = head.strip_prefix("OK ")?.parse().ok()?;
        let mut yaml = vec![0; n + 2];
        self.r.read_exact(&mut yaml).ok()?;
        String::from_utf8_lossy(&yaml)
            .lines()
            .find_map(|l| Some(l.strip_prefix(key)?.strip_prefix(": ")?.to_string()))
    }
}

/// The node's role, and the primary it streams from ("" if none). stats
/// quotes an address that YAML would read as a number.
fn role(ns: &str, addr: &str) -> Option<(String, String)> {
    let mut c = Conn::open(ns, addr)?;
    let following = c.stat("replica-following").is_some_and(|f| f == "true");
    let primary = c.stat("primary").filter(|_| following).unwrap_or_default();
    Some((c.stat("role")?, primary.trim_matches('"').to_string()))
}

fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One put sent to A: when sent, and the reply (None: none came).
struct Sent {
    at: Instant,
    body: String,
    reply: Option<String>,
    replied: Instant,
}

fn run_partition(n: u8, sync: &str) {
    let net = Net::new(n);
    let work = TempDir::new("partition");
    let etcd_url = format!("http://{}:2379", net.q_ip);
    let _etcd = spawn_in(
        &net.q,
        &std::env::var("SPROUT_ETCD_BIN").unwrap_or_else(|_| "etcd".to_string()),
        &[
            "--data-dir".into(),
            format!("{}/etcd", work.arg()),
            "--listen-client-urls".into(),
            etcd_url.clone(),
            "--advertise-client-urls".into(),
            etcd_url.clone(),
            "--listen-peer-urls".into(),
            "http://127.0.0.1:2380".into(),
            "--initial-advertise-peer-urls".into(),
            "http://127.0.0.1:2380".into(),
            "--initial-cluster".into(),
            "default=http://127.0.0.1:2380".into(),
        ],
    );
    let q_ns = net.q.clone();
    let etcd_addr = format!("{}:2379", net.q_ip);
    until("etcd listens", Duration::from_secs(15), || {
        Conn::open(&q_ns, &etcd_addr).is_some()
    });
    let sprout = env!("CARGO_BIN_EXE_sprout");
    let sproutctl = env!("CARGO_BIN_EXE_sproutctl");
    let node = |ns: &str, host: &str, port: u16, name: &str| -> (String, Proc, Proc) {
        let dir = format!("{}/{name}", work.arg());
        std::fs::create_dir_all(&dir).unwrap();
        let args: Vec<String> = [
            "-l",
            host,
            "-p",
            &port.to_string(),
            "-b",
            &dir,
            "--standby",
            "--sync-replicas",
            sync,
            "--sync-timeout",
            "2000",
        ]
        .map(String::from)
        .to_vec();
        let addr = format!("{host}:{port}");
        let s = spawn_in(ns, sprout, &args);
        let sup = [
            "--etcd",
            &etcd_url,
            "--cluster",
            "p",
            "supervise",
            "--node",
            &addr,
            "--ttl",
            TTL,
        ]
        .map(String::from)
        .to_vec();
        let (ns2, addr2) = (ns.to_string(), addr.clone());
        until(&format!("{addr} listens"), Duration::from_secs(10), || {
            Conn::open(&ns2, &addr2).is_some()
        });
        (addr, s, spawn_in(ns, sproutctl, &sup))
    };
    // A first, so that it is elected; then the replicas.
    let (a, _a_sprout, _a_sup) = node(&net.a, &net.a_ip, 11300, "a");
    until("A is elected", Duration::from_secs(20), || {
        role(&net.a, &a).is_some_and(|(r, _)| r == "primary")
    });
    let (b, _b_sprout, _b_sup) = node(&net.q, &net.q_ip, 11301, "b");
    let (c, _c_sprout, _c_sup) = node(&net.q, &net.q_ip, 11302, "c");
    for r in [&b, &c] {
        until(&format!("{r} follows A"), Duration::from_secs(20), || {
            role(&net.q, r).is_some_and(|(role, p)| role == "replica" && p == a)
        });
    }

    // A client on A's side puts, one at a time, and records each reply.
    let sent = Arc::new(Mutex::new(Vec::<Sent>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (sent, stop, ns, a) = (
            Arc::clone(&sent),
            Arc::clone(&stop),
            net.a.clone(),
            a.clone(),
        );
        std::thread::spawn(move || {
            let mut conn = None;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let Some(c) = conn.as_mut() else {
                    conn = Conn::open(&ns, &a);
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                i += 1;
                let body = format!("a-{i:06}");
                let at = Instant::now();
                let reply = c.line(format!("put 0 0 60 {}\r\n{body}\r\n", body.len()).as_bytes());
                if reply.is_none() {
                    conn = None;
                }
                let replied = Instant::now();
                sent.lock().unwrap().push(Sent {
                    at,
                    body,
                    reply,
                    replied,
                });
            }
        })
    };
    let acked = |s: &Sent| {
        s.reply
            .as_deref()
            .is_some_and(|r| r.starts_with("INSERTED "))
    };
    until("A acknowledges puts", Duration::from_secs(10), || {
        sent.lock().unwrap().iter().filter(|s| acked(s)).count() >= 50
    });

    let cut = Instant::now();
    net.cut();
    // A put sent while `ip` ran may still have got through.
    let cut_done = Instant::now();
    // Someone on q's side is elected: the first put it acknowledges.
    let mut new_primary = String::new();
    let mut first_new_ack = cut;
    until(
        "a new primary acknowledges a put",
        Duration::from_secs(30),
        || {
            for r in [&b, &c] {
                if let Some(mut conn) = Conn::open(&net.q, r)
                    && conn
                        .line(b"put 0 0 60 3\r\nnew\r\n")
                        .is_some_and(|l| l.starts_with("INSERTED "))
                {
                    first_new_ack = Instant::now();
                    new_primary = r.to_string();
                    return true;
                }
            }
            false
        },
    );
    until("A refuses puts", Duration::from_secs(30), || {
        let s = sent.lock().unwrap();
        s.last()
            .is_some_and(|l| l.at > first_new_ack && l.reply.as_deref() == Some("DRAINING"))
    });
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    let demoted = role(&net.a, &a).map(|(r, _)| r);
    assert_eq!(
        demoted.as_deref(),
        Some("standby"),
        "A's role after the cut"
    );

    let s = sent.lock().unwrap();
    let after_elected: Vec<&Sent> = s
        .iter()
        .filter(|x| acked(x) && x.replied > first_new_ack)
        .collect();
    assert!(
        after_elected.is_empty(),
        "A acknowledged {} puts after {new_primary} had acknowledged one, the first {:?}",
        after_elected.len(),
        after_elected.first().map(|x| (&x.body, &x.reply))
    );
    let last_ack = s
        .iter()
        .filter(|x| acked(x))
        .map(|x| x.replied)
        .max()
        .unwrap();
    let first_refusal = (s.iter())
        .find(|x| x.at > cut && x.reply.as_deref() == Some("DRAINING"))
        .map(|x| x.replied - cut);
    let acked_after_cut = s.iter().filter(|x| x.at > cut_done && acked(x)).count();
    if sync == "1" {
        assert_eq!(acked_after_cut, 0, "A acknowledged puts sent after the cut");
        // Every put A acknowledged is on the new primary.
        let mut conn = Conn::open(&net.q, &new_primary).expect("reach the new primary");
        for x in s.iter().filter(|x| acked(x)) {
            let id = x.reply.as_deref().unwrap().trim_start_matches("INSERTED ");
            let found = conn.line(format!("peek {id}\r\n").as_bytes());
            assert_eq!(
                found,
                Some(format!("FOUND {id} {}", x.body.len())),
                "{}",
                x.body
            );
            let mut body = vec![0; x.body.len() + 2];
            conn.r.read_exact(&mut body).unwrap();
            assert_eq!(&body[..x.body.len()], x.body.as_bytes());
        }
    }
    eprintln!(
        "partition --sync-replicas {sync}: A's last acknowledgement {:?} after the cut, \
         its first refusal {first_refusal:?}, {new_primary}'s first {:?} (lease TTL {TTL}s); \
         {} puts acknowledged by A after the cut, {} in all",
        last_ack.saturating_duration_since(cut),
        first_new_ack - cut,
        acked_after_cut,
        s.iter().filter(|x| acked(x)).count()
    );
}

#[test]
fn a_cut_off_primary_with_a_synchronous_replica_acknowledges_nothing_more() {
    run_partition(1, "1");
}

/// Asynchronous: A may acknowledge for a while after the cut, but its
/// supervisor demotes it before anyone else can be elected.
#[test]
fn a_cut_off_asynchronous_primary_steps_down_before_another_is_elected() {
    run_partition(2, "0");
}
