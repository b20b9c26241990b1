//! Replication's sockets, on the loop's thread.
//!
//! On a primary, a queue connection that sends `sprout-replicate` leaves
//! the engine and becomes a downstream: it gets a snapshot of every live
//! job, a slice a turn, and then every record the binlog writes, as it is
//! written, framed (`crate::replication::frame`); only its `ACK` lines are
//! read back. One whose frames pile up past `leader::MAX_BEHIND` is
//! dropped, and resyncs when it comes back.
//!
//! On a replica (`--replica-of`), one upstream connection to the primary:
//! connected without blocking, retried with back-off when it fails or
//! ends, its frames applied to the engine, which logs them to this
//! server's own binlog.

use std::io::Write;

use mio::net::TcpStream;

use crate::binlog::Binlog;
use crate::replication::follower::{FollowError, Follower, HELLO};
use crate::replication::frame::Frame;
use crate::replication::leader::{Downstream, LeadError, MAX_REPLICAS, SNAPSHOT_JOBS_PER_TURN};

use super::*;

/// Downstream connections are `REPL_BASE + key` (below `HTTP_BASE`).
pub const REPL_BASE: usize = 1 << 39;
pub const UPSTREAM: Token = Token(usize::MAX - 5);
/// Bytes written to one downstream per turn, so that a snapshot does not
/// hold the loop while the kernel copies it.
const WRITE_PER_TURN: usize = 4 << 20;
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MOST: Duration = Duration::from_secs(5);

pub struct DownConn {
    stream: Stream,
    d: Downstream,
    peer: Box<str>,
}

impl DownConn {
    /// The primary's tapped records it has applied, once in step.
    pub fn in_step_upto(&self) -> Option<u64> {
        self.d.in_step_upto
    }
}

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

    /// When the next connection attempt is due, if none is open.
    pub fn retry_due(&self) -> Option<Instant> {
        self.link.is_none().then_some(self.retry_at)
    }
}

fn wall_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Server {
    /// Connection `c` asked to follow: it leaves the engine and becomes a
    /// downstream, answered with `REPLICATING` and a snapshot.
    pub(super) fn start_downstream(&mut self, c: ClientId) {
        let key = c as usize;
        let Some(binlog) = &mut self.binlog else {
            let conn = &mut self.conns[key];
            conn.out.extend_from_slice(b"NO_BINLOG\r\n");
            conn.closing = true;
            warn!(
                "connection {c} from {} asked to replicate, but this server has no binlog (-b DIR): refused",
                conn.peer
            );
            return;
        };
        if self.downstreams.len() >= MAX_REPLICAS {
            let conn = &mut self.conns[key];
            conn.out.extend_from_slice(b"OUT_OF_MEMORY\r\n");
            conn.closing = true;
            warn!(
                "connection {c} from {} asked to replicate, but {MAX_REPLICAS} replicas already follow, the most: refused",
                conn.peer
            );
            return;
        }
        if self.conns[key].held.is_some() {
            // Replies it was owed wait for an fsync: not worth the care.
            warn!(
                "connection {c} asked to replicate with replies still held: closed; it will retry"
            );
            return self.close(c);
        }
        binlog.set_tap(true);
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(conn.stream.source());
        let now = self.now();
        self.engine.disconnect(
            c,
            now,
            &mut Outputs {
                conns: &mut self.conns,
                woken: &mut self.woken,
                binlog: self.binlog.as_mut(),
            },
        );
        let earlier = &conn.out[conn.sent..];
        let mut d = Downstream::new(earlier, &self.engine.info().instance_id, now);
        let early = conn.framer.take_input();
        if let Err(e) = d.receive(&early) {
            warn!("replica at {}: {e}; closed", conn.peer);
            return;
        }
        let entry = self.downstreams.vacant_entry();
        let token = Token(REPL_BASE + entry.key());
        if let Err(e) = self.poll.registry().register(
            conn.stream.source(),
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!("cannot watch the replica at {}: {e}; closed", conn.peer);
            return;
        }
        info!(
            "replica at {} follows: sending a snapshot of {} jobs, then every change",
            conn.peer,
            self.engine.counts().ready
                + self.engine.counts().reserved
                + self.engine.counts().delayed
                + self.engine.counts().buried
        );
        entry.insert(DownConn {
            stream: conn.stream,
            d,
            peer: conn.peer,
        });
    }

    /// Each turn, on a primary: the records written go to every replica,
    /// snapshots move on a slice, heartbeats, and what waits is written.
    pub(super) fn feed_downstreams(&mut self) {
        if self.downstreams.is_empty() {
            if let Some(b) = &mut self.binlog {
                b.set_tap(false);
            }
            return;
        }
        let now = self.now();
        let wall = wall_now();
        let tapped = self.binlog.as_mut().and_then(|b| b.take_tap());
        let tapped_total = self.binlog.as_ref().map_or(0, |b| b.tapped_total());
        let mut dropped = Vec::new();
        let mut record = Vec::new();
        for (key, dc) in self.downstreams.iter_mut() {
            if let Some((frames, count)) = &tapped
                && let Err(e) = dc.d.push_records(frames, *count, tapped_total)
            {
                dropped.push((key, e));
                continue;
            }
            if let Some(from) = dc.d.snapshot.filter(|_| dc.d.snapshot_wants_more()) {
                let d = &mut dc.d;
                let next = (self.engine).snapshot_slice(
                    from,
                    SNAPSHOT_JOBS_PER_TURN,
                    |img, tube, body| {
                        record.clear();
                        Binlog::encode_job(&mut record, img, tube, body, now);
                        d.push_record(&record);
                    },
                );
                match next {
                    Some(at) => dc.d.snapshot = Some(at),
                    None => dc.d.end_snapshot(self.engine.next_id(), tapped_total),
                }
            }
            dc.d.heartbeat(now, wall);
            if let Err(e) = dc.d.check() {
                dropped.push((key, e));
            }
        }
        for (key, e) in dropped {
            self.drop_downstream(key, &e.to_string());
        }
        let keys: Vec<usize> = self.downstreams.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.write_downstream(key);
        }
        if self.sync_replicas > 0 {
            self.release_held();
        }
    }

    /// Whether a replica's snapshot has a slice to send now (the loop then
    /// does not sleep; one waiting for its replica to read wakes on the
    /// socket's writable event).
    pub(super) fn snapshotting(&self) -> bool {
        (self.downstreams.iter()).any(|(_, dc)| dc.d.snapshot_wants_more())
    }

    fn write_downstream(&mut self, key: usize) {
        let Some(dc) = self.downstreams.get_mut(key) else {
            return;
        };
        let mut budget = WRITE_PER_TURN;
        while budget > 0 && !dc.d.unsent().is_empty() {
            let unsent = dc.d.unsent();
            let n = unsent.len().min(budget);
            match dc.stream.write(&unsent[..n]) {
                Ok(0) => return self.drop_downstream(key, "it closed"),
                Ok(n) => {
                    dc.d.wrote(n);
                    budget -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.drop_downstream(key, &format!("writing failed: {e}")),
            }
        }
    }

    /// An event on a downstream: its acknowledgements, and room to write.
    pub(super) fn drive_downstream(&mut self, key: usize) {
        loop {
            let Some(dc) = self.downstreams.get_mut(key) else {
                return;
            };
            match dc.stream.read(&mut self.scratch) {
                Ok(0) => return self.drop_downstream(key, "it closed"),
                Ok(n) => {
                    if let Err(e) = dc.d.receive(&self.scratch[..n]) {
                        return self.drop_downstream(key, &e.to_string());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.drop_downstream(key, &format!("reading failed: {e}")),
            }
        }
        self.write_downstream(key);
        if self.sync_replicas > 0 {
            self.release_held();
        }
    }

    fn drop_downstream(&mut self, key: usize, why: &str) {
        if let Some(mut dc) = self.downstreams.try_remove(key) {
            let _ = self.poll.registry().deregister(dc.stream.source());
            let e = LeadError::TooFarBehind.to_string();
            let level = if why == e {
                log::Level::Warn
            } else {
                log::Level::Info
            };
            log::log!(
                level,
                "replica at {} is no longer followed: {why} (it had applied {} of {} records sent)",
                dc.peer,
                dc.d.acked,
                dc.d.sent
            );
        }
    }

    /// Tells the engine where replication stands (stats show it).
    pub(super) fn update_replication_view(&mut self) {
        let up = self.upstream.as_ref().map(|u| &u.figures);
        let v = crate::engine::ReplicationView {
            replicas: self.downstreams.len() as u64,
            primary: up.map(|f| f.primary.clone()),
            following: up.is_some_and(|f| f.connected),
            applied: up.map_or(0, |f| f.applied),
            heard: up.and_then(|f| f.heard),
        };
        if *self.engine.replication_view() != v {
            self.engine.set_replication_view(v);
        }
        // --sync-replicas N: with fewer than N replicas in step a change
        // could not be made durable, so it is refused before it is made.
        if self.sync_replicas > 0 {
            let in_step = (self.downstreams.iter())
                .filter(|(_, dc)| dc.in_step_upto().is_some())
                .count();
            self.engine.set_writes_refused(in_step < self.sync_replicas);
        }
    }

    /// Under -f0 on a replica: acknowledges what an fsync has made
    /// durable.
    pub(super) fn ack_synced(&mut self) {
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
    pub(super) fn tend_upstream(&mut self) {
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
    pub(super) fn drive_upstream(&mut self) {
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
            up.out.extend_from_slice(HELLO);
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
            Frame::Record(r) => engine.apply(r, wall, now, &mut sink),
            Frame::SnapshotBegin => {
                engine.begin_resync();
                Ok(())
            }
            Frame::SnapshotEnd { next_id } => {
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
