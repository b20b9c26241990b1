//! The HTTP port while the binlog is read back, before the event loop
//! runs: a thread that answers every request 503 "recovering" (and
//! `/healthz` 200: the process is alive and making progress, and a
//! liveness probe that killed it would only restart the recovery), so
//! that a load balancer or an orchestrator sees an answer, not a hang.
//! It stops, and hands the socket back, before the loop starts.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::session::{Asked, Reply, Session, Site};

struct Recovering;

impl Site for Recovering {
    fn serve(&mut self, asked: Asked) -> Reply {
        match asked.path {
            "/healthz" => Reply::text(200, "ok (recovering the binlog)"),
            _ => Reply::text(503, "recovering the binlog; try again shortly"),
        }
    }
}

pub struct Responder {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<TcpListener>,
}

impl Responder {
    pub fn start(listener: TcpListener) -> std::io::Result<Responder> {
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("http-recovering".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => answer(stream),
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
                listener
            })?;
        Ok(Responder { stop, thread })
    }

    /// Stops answering; the listener comes back for the event loop.
    pub fn finish(self) -> Option<TcpListener> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().ok()
    }
}

/// One request, one answer, closed: at most a second spent per client.
fn answer(mut stream: std::net::TcpStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let mut session = Session::new(0);
    session.one_only = true;
    let mut buf = [0u8; 4096];
    while session.out.is_empty() {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => session.receive(&buf[..n], 0, &mut Recovering),
        }
        if session.buffered() > super::MAX_HEAD * 2 {
            break;
        }
    }
    let _ = stream.write_all(&session.out.to_vec());
}
