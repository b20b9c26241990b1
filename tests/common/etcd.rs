//! A real etcd (Debian's etcd-server 3.4) on loopback for one test: free
//! ports, its own data directory, killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{TempDir, free_port, listens_on};

pub struct Etcd {
    child: Child,
    /// `http://127.0.0.1:PORT`, what `--etcd` takes.
    pub url: String,
    _dir: TempDir,
}

impl Etcd {
    pub fn start() -> Etcd {
        let etcd = std::env::var("SPROUT_ETCD_BIN").unwrap_or_else(|_| "etcd".to_string());
        for _ in 0..5 {
            let dir = TempDir::new("etcd");
            let (client, peer) = (free_port(), free_port());
            let curl = format!("http://127.0.0.1:{client}");
            let purl = format!("http://127.0.0.1:{peer}");
            let mut child = Command::new(&etcd)
                .args(["--data-dir", &format!("{}/data", dir.arg())])
                .args([
                    "--listen-client-urls",
                    &curl,
                    "--advertise-client-urls",
                    &curl,
                ])
                .args([
                    "--listen-peer-urls",
                    &purl,
                    "--initial-advertise-peer-urls",
                    &purl,
                ])
                .args(["--initial-cluster", &format!("default={purl}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {etcd} (Debian's etcd-server): {e}"));
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // a port was taken: try others
                }
                if listens_on(child.id(), client) {
                    return Etcd {
                        child,
                        url: curl,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("etcd did not start listening");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
