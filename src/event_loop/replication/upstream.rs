//! The replica's side: one connection to the primary, made without
//! blocking and retried with back-off, its frames applied to the engine,
//! its acknowledgements written back.

use std::io::Write;

use mio::net::TcpStream;

use crate::replication::follower::{FollowError, Follower, hello};
use crate::replication::frame::Frame;

use super::super::*;
use super::UPSTREAM;
use crate::binlog::wall_now;

const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MOST: Duration = Duration::from_secs(5);

/// What a replica shows of its primary (stats, metrics, the page).
#[derive(Debug, Clone, Default)]
pub struct UpstreamFigures {
    pub primary: String,
    /// Connected and streaming.
    pub connected: bool,
    /// Its snapshot has arrived since it last connected.
    pub synced: bool,
    /// Records applied since start, on every connection.
    pub applied: u64,
    /// Where this replica stands in its primary's records, once in step
    /// on the current connection (`Follower::position`).
    pub position: Option<u64>,
    /// Connections made to the primary since start.
    pub connects: u64,
    /// When the newest heartbeat was applied (engine clock), and how far
    /// the primary's stamp on it was behind this server's wall clock.
    pub heard: Option<(Nanos, i64)>,
}

pub struct Upstream {
    link: Option<(TcpStream, Follower)>,
    /// Under -f0: (records applied, binlog records written then), not yet
    /// acknowledged because not yet fsynced.
    unsynced: std::collections::VecDeque<(u64, u64)>,
    /// Connected, and the hello written.
    greeted: bool,
    out: Vec<u8>,
    retry_at: Instant,
    backoff: Duration,
    /// Said (once) that the primary cannot be reached; again after it has
    /// been followed.
    warned: bool,
    pub figures: UpstreamFigures,
}

impl Upstream {
    pub fn new(primary: String) -> Upstream {
        Upstream {
            link: None,
            unsynced: std::collections::VecDeque::new(),
            greeted: false,
            out: Vec::new(),
            retry_at: Instant::now(),
            backoff: RETRY_FIRST,
            warned: false,
            figures: UpstreamFigures {
                primary,
                ..Default::default()
            },
        }
    }

    /// Whether it streams from `primary` now, at `epoch`.
    pub fn streams(&self, primary: &str, epoch: u64) -> bool {
        self.figures.primary == primary
            && (self.link.as_ref())
                .is_some_and(|(_, f)| f.primary_id.is_some() && f.primary_epoch == epoch)
    }

    /// When the next connection attempt is due, if none is open.
    pub fn retry_due(&self) -> Option<Instant> {
        self.link.is_none().then_some(self.retry_at)
    }
}

impl Server {
    /// Under -f0 on a replica: acknowledges what an fsync has made
    /// durable.
    pub(in crate::event_loop) fn ack_synced(&mut self) {
        let Some(b) = &self.binlog else { return };
        let synced = b.synced();
        let Some(up) = &mut self.upstream else { return };
        let Some((stream, follower)) = &mut up.link else {
            return;
        };
        let mut upto = None;
        while let Some(&(n, written)) = up.unsynced.front() {
            if written > synced {
                break;
            }
            upto = Some(n);
            up.unsynced.pop_front();
        }
        if let Some(n) = upto {
            follower.ack_upto(n, &mut up.out);
            if let Err(e) = write_out(stream, &mut up.out) {
                self.upstream_ended(&e);
            }
        }
    }

    /// Each turn, on a replica: connect when due.
    pub(in crate::event_loop) fn tend_upstream(&mut self) {
        let Some(up) = &mut self.upstream else { return };
        if up.link.is_some() || Instant::now() < up.retry_at {
            return;
        }
        use std::net::ToSocketAddrs;
        let addr = match up.figures.primary.to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(a)) => a,
            Ok(None) | Err(_) => {
                warn!(
                    "cannot resolve the primary {}; retrying",
                    up.figures.primary
                );
                return self.upstream_failed();
            }
        };
        match TcpStream::connect(addr) {
            Ok(mut s) => {
                if let Err(e) = self.poll.registry().register(
                    &mut s,
                    UPSTREAM,
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    warn!("cannot watch the connection to the primary: {e}");
                    return self.upstream_failed();
                }
                let _ = s.set_nodelay(true);
                up.link = Some((s, Follower::default()));
                up.greeted = false;
                up.out.clear();
                up.unsynced.clear();
            }
            Err(e) => self.upstream_ended(&format!("cannot connect to {addr}: {e}")),
        }
    }

    /// Follows no one any more.
    pub(in crate::event_loop) fn drop_upstream(&mut self) {
        if let Some(mut up) = self.upstream.take()
            && let Some((mut s, _)) = up.link.take()
        {
            let _ = self.poll.registry().deregister(&mut s);
        }
    }

    fn upstream_failed(&mut self) {
        let Some(up) = &mut self.upstream else { return };
        if let Some((mut s, _)) = up.link.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        up.figures.connected = false;
        up.retry_at = Instant::now() + up.backoff;
        up.backoff = (up.backoff * 2).min(RETRY_MOST);
    }

    fn upstream_ended(&mut self, why: &str) {
        if let Some(up) = &mut self.upstream {
            // A lost primary is said each time; one never reached, once
            // (then every retry at debug level).
            let level = if up.figures.connected || !std::mem::replace(&mut up.warned, true) {
                log::Level::Warn
            } else {
                log::Level::Debug
            };
            log::log!(
                level,
                "the primary {} is not followed: {why}; reconnecting (a snapshot brings this replica up to date)",
                up.figures.primary
            );
        }
        self.upstream_failed();
    }

    /// An event on the connection to the primary.
    pub(in crate::event_loop) fn drive_upstream(&mut self) {
        let now = self.now();
        let wall = wall_now();
        let Some(up) = &mut self.upstream else { return };
        let Some((stream, follower)) = &mut up.link else {
            return;
        };
        if !up.greeted {
            match stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    if let Ok(Some(e)) | Err(e) = stream.take_error() {
                        return self.upstream_ended(&format!("cannot connect: {e}"));
                    }
                    return; // still connecting
                }
                Err(e) => return self.upstream_ended(&format!("cannot connect: {e}")),
            }
            up.greeted = true;
            up.out.extend_from_slice(&hello(self.engine.epoch()));
            up.figures.connects += 1;
        }
        let mut ended = None;
        loop {
            match stream.read(&mut self.scratch) {
                Ok(0) => {
                    ended = Some("it closed the connection".to_string());
                    break;
                }
                Ok(n) => follower.receive(&self.scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    ended = Some(format!("reading failed: {e}"));
                    break;
                }
            }
        }
        let engine = &mut self.engine;
        let figures = &mut up.figures;
        let mut sink = Outputs {
            conns: &mut self.conns,
            woken: &mut self.woken,
            binlog: self.binlog.as_mut(),
        };
        let applied_before = follower.applied;
        let drained = follower.drain(|f| match f {
            Frame::Record(r) => Ok(engine.apply(r, wall, now, &mut sink)?),
            Frame::Epoch { epoch } => {
                let ours = engine.epoch();
                if !engine.adopt_epoch(*epoch, &mut sink)? {
                    return Err(FollowError::StaleEpoch {
                        primary: *epoch,
                        ours,
                    });
                }
                if *epoch > ours {
                    info!("the primary {} is of epoch {epoch}: this replica's epoch now", figures.primary);
                }
                Ok(())
            }
            Frame::SnapshotBegin => {
                engine.begin_resync();
                Ok(())
            }
            Frame::SnapshotEnd { next_id, .. } => {
                let gone = engine.end_resync(*next_id, now, &mut sink)?;
                figures.synced = true;
                info!(
                    "replica in step with the primary {} ({} jobs; {gone} it no longer holds removed)",
                    figures.primary,
                    engine.counts().ready + engine.counts().delayed + engine.counts().buried
                );
                Ok(())
            }
            Frame::Heartbeat { wall: stamp, .. } => {
                figures.heard = Some((now, wall.saturating_sub(*stamp)));
                Ok(())
            }
        });
        figures.applied += follower.applied - applied_before;
        figures.position = follower.position;
        if follower.primary_id.is_some() && !figures.connected {
            figures.connected = true;
            figures.synced = false;
            up.backoff = RETRY_FIRST;
            up.warned = false;
            info!("following the primary {}", figures.primary);
        }
        if self.hold_replies {
            // -f0 here: acknowledged once this server's fsync has them.
            if let Some(b) = &self.binlog
                && follower.applied > up.unsynced.back().map_or(0, |&(n, _)| n)
            {
                up.unsynced.push_back((follower.applied, b.written()));
            }
        } else {
            follower.ack(&mut up.out);
        }
        if let Err(e) = write_out(stream, &mut up.out) {
            ended.get_or_insert(e);
        }
        if let Err(e) = drained {
            let e: FollowError = e;
            return self.upstream_ended(&e.to_string());
        }
        if let Some(why) = ended {
            self.upstream_ended(&why);
        }
    }
}

/// Writes what waits for the primary, as far as the socket takes it.
fn write_out(stream: &mut TcpStream, out: &mut Vec<u8>) -> Result<(), String> {
    while !out.is_empty() {
        match stream.write(out) {
            Ok(0) => return Err("it stopped reading".to_string()),
            Ok(n) => {
                out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("writing failed: {e}")),
        }
    }
    Ok(())
}
