//! The HTTP port's sockets (`--http`): accepting, reading into each
//! connection's [`Session`], writing its responses as the socket drains,
//! and the time limits. Responses are made from the engine as it is at
//! that moment, on this thread, so nothing is locked or copied; a
//! response larger than the socket's buffer waits in the session like a
//! queue reply waits in a connection.

use std::io::{Read, Write};

use mio::net::{TcpListener, TcpStream};

use crate::http::MAX_CONNECTIONS;
use crate::http::history::History;
use crate::http::live::{Live, LoopFigures, Peer, Peers};
use crate::http::rates::{Rates, TubeRates};
use crate::http::session::{Reply, Session, write_response};
use crate::http::tube_lines::TubeLines;

use super::*;

/// The HTTP listener's token; connections are `HTTP_BASE + key`.
pub const HTTP_LISTENER: Token = Token(usize::MAX - 4);
pub const HTTP_BASE: usize = 1 << 40;

pub struct HttpConn {
    stream: TcpStream,
    session: Session,
    /// After the last response: our side is shut down, and what the client
    /// still sends is read and dropped until it closes too, or until this
    /// deadline or LINGER_BYTES. Closing at once, with its input unread,
    /// would send a reset that can destroy the response before the client
    /// reads it (a 414 to a client still sending its megabyte).
    linger: Option<(Nanos, usize)>,
}

const LINGER: Nanos = 2_000_000_000;
const LINGER_BYTES: usize = 1 << 20;
/// Bytes a connection writes per turn. The socket would take a 7 MB
/// /metrics at once, holding every queue reply for the 2 ms the kernel
/// spends on it; in pieces it leaves between them.
const WRITE_PER_TURN: usize = 64 * 1024;

pub struct HttpSide {
    listener: TcpListener,
    conns: Slab<HttpConn>,
    pub rates: Rates,
    pub tube_rates: TubeRates,
    tube_lines: TubeLines,
    pub history: History,
    requests: u64,
    /// Set while connections are refused at the ceiling (one log line).
    refusing: bool,
    /// Connections that wrote their turn's share with more to write: the
    /// socket will not say writable again, so they are driven next turn.
    pub again: Vec<usize>,
}

impl HttpSide {
    pub fn new(listener: TcpListener) -> HttpSide {
        HttpSide {
            listener,
            conns: Slab::new(),
            rates: Rates::default(),
            tube_rates: TubeRates::default(),
            tube_lines: TubeLines::default(),
            history: History::default(),
            requests: 0,
            refusing: false,
            again: Vec::new(),
        }
    }

    /// When the next time limit falls due.
    pub fn next_deadline(&self) -> Option<Nanos> {
        (self.conns.iter())
            .map(|(_, c)| c.linger.map_or(c.session.deadline(), |(until, _)| until))
            .min()
    }
}

struct QueuePeers<'a>(&'a Slab<Conn>);

impl Peers for QueuePeers<'_> {
    fn peer(&self, c: ClientId) -> Option<Peer<'_>> {
        self.0.get(c as usize).map(|conn| Peer {
            addr: &conn.peer,
            since: conn.since,
            cred: conn.cred,
        })
    }
}

impl Server {
    pub(super) fn register_http(&mut self) -> io::Result<()> {
        if let Some(h) = &mut self.http {
            self.poll
                .registry()
                .register(&mut h.listener, HTTP_LISTENER, Interest::READABLE)?;
        }
        Ok(())
    }

    fn accept_http_into(&mut self, refused: &mut Vec<usize>) {
        let now = self.now();
        let Some(h) = &mut self.http else { return };
        loop {
            let (mut stream, peer) = match h.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // Out of descriptors: the queue's accept backs off and
                    // warns; here the next readable event retries.
                    debug!("cannot accept an HTTP connection: {e}");
                    return;
                }
            };
            let serving = (h.conns.iter()).filter(|(_, c)| !c.session.closing).count();
            let mut session = Session::new(now);
            if serving >= MAX_CONNECTIONS {
                if !std::mem::replace(&mut h.refusing, true) {
                    warn!(
                        "{MAX_CONNECTIONS} HTTP connections open, the most served at once: answering 503 to new ones until some close"
                    );
                }
                let reply = Reply::text(503, "too many HTTP connections; try again shortly");
                write_response(&mut session.out, reply, false, true);
                session.closing = true;
                if h.conns.len() >= 2 * MAX_CONNECTIONS {
                    // No room even to close gently.
                    let _ = stream.write(session.out.unsent());
                    continue;
                }
            } else {
                h.refusing = false;
            }
            let _ = stream.set_nodelay(true);
            let entry = h.conns.vacant_entry();
            let token = Token(HTTP_BASE + entry.key());
            // Edge-triggered, both ways, for the life of the connection:
            // a writable event comes only when a full socket drains.
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                warn!("cannot watch an HTTP connection from {peer}: {e}; closing it");
                continue;
            }
            debug!("HTTP connection {} from {peer}", entry.key());
            let key = entry.key();
            entry.insert(HttpConn {
                stream,
                session,
                linger: None,
            });
            if h.conns[key].session.closing {
                refused.push(key);
            }
        }
    }

    pub(super) fn accept_http(&mut self) {
        let mut refused = Vec::new();
        self.accept_http_into(&mut refused);
        // Their 503 goes out now; they linger until the client closes.
        for key in refused {
            self.drive_http(key);
        }
    }

    /// Writes what waits, answers what is buffered, and reads more, until
    /// the socket or the session says wait.
    pub(super) fn drive_http(&mut self, key: usize) {
        let now = self.now();
        let binlog = self.binlog.as_ref().map(|b| b.figures());
        let Some(h) = &mut self.http else { return };
        let HttpSide {
            conns,
            rates,
            tube_rates,
            tube_lines,
            history,
            requests,
            again,
            ..
        } = h;
        let http_connections = conns.len();
        let mut budget = WRITE_PER_TURN;
        loop {
            let Some(hc) = conns.get_mut(key) else { return };
            let s = &mut hc.session;
            while s.pending_output() > 0 {
                if budget == 0 {
                    if !again.contains(&key) {
                        again.push(key);
                    }
                    return;
                }
                let unsent = s.out.unsent();
                match hc.stream.write(&unsent[..unsent.len().min(budget)]) {
                    Ok(0) => return close_http(&self.poll, conns, key),
                    Ok(n) => {
                        budget -= n;
                        s.wrote(n, now)
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return close_http(&self.poll, conns, key),
                }
            }
            if s.closing && s.pending_output() == 0 {
                return linger(&self.poll, conns, key, &mut self.scratch, now);
            }
            let mut live = Live {
                engine: &self.engine,
                now,
                figures: LoopFigures {
                    turns: &self.turns,
                    binlog: binlog.clone(),
                    http_connections,
                    http_requests: *requests,
                    rates,
                    tube_rates,
                    peers: &QueuePeers(&self.conns),
                    ready: true,
                },
                tube_lines,
                history,
            };
            let served = s.served;
            // Requests left buffered while the output was full.
            s.answer(now, &mut live);
            if !s.wants_input() {
                *requests += s.served - served;
                if s.served > served {
                    continue;
                }
                return;
            }
            match hc.stream.read(&mut self.scratch) {
                Ok(0) => {
                    // Half-closed: what was asked is still answered.
                    s.closing = true;
                }
                Ok(n) => s.receive(&self.scratch[..n], now, &mut live),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    *requests += s.served - served;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return close_http(&self.poll, conns, key),
            }
            *requests += s.served - served;
        }
    }

    /// Drives the connections that stopped at their share last turn.
    pub(super) fn resume_http(&mut self) {
        let Some(h) = &mut self.http else { return };
        for key in std::mem::take(&mut h.again) {
            self.drive_http(key);
        }
    }

    /// Applies the HTTP time limits: closes idle and stuck connections,
    /// answers 408 to requests that took too long.
    pub(super) fn expire_http(&mut self) {
        let now = self.now();
        let Some(h) = &mut self.http else { return };
        let lingered: Vec<usize> = (h.conns.iter())
            .filter(|(_, c)| c.linger.is_some_and(|(until, _)| until <= now))
            .map(|(k, _)| k)
            .collect();
        for key in lingered {
            close_http(&self.poll, &mut h.conns, key);
        }
        if h.next_deadline().is_none_or(|d| d > now) {
            return;
        }
        let keys: Vec<usize> = h.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(h) = &mut self.http else { return };
            let expired = (h.conns.get_mut(key))
                .map(|c| (c.session.expire(now), c.session.pending_output() > 0));
            match expired {
                Some((true, _)) => close_http(&self.poll, &mut h.conns, key),
                // A 408 to write.
                Some((false, true)) => self.drive_http(key),
                _ => {}
            }
        }
    }
}

/// Reads and drops what the client still sends after the last response.
fn linger(poll: &Poll, conns: &mut Slab<HttpConn>, key: usize, buf: &mut [u8], now: Nanos) {
    let Some(c) = conns.get_mut(key) else { return };
    let (_, dropped) = c.linger.get_or_insert_with(|| {
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        (now + LINGER, 0)
    });
    loop {
        match c.stream.read(buf) {
            Ok(n) if n > 0 && *dropped + n <= LINGER_BYTES => *dropped += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            _ => return close_http(poll, conns, key),
        }
    }
}

fn close_http(poll: &Poll, conns: &mut Slab<HttpConn>, key: usize) {
    if let Some(mut c) = conns.try_remove(key) {
        let _ = poll.registry().deregister(&mut c.stream);
        debug!("closed HTTP connection {key}");
    }
}
