//! The primary's side: a connection that asked to follow, its snapshot
//! and the records it is fed, written as its socket takes them.

use std::io::Write;

use crate::binlog::Binlog;
use crate::replication::leader::{Downstream, LeadError, MAX_REPLICAS, SNAPSHOT_JOBS_PER_TURN};

use super::super::*;
use super::REPL_BASE;
use crate::binlog::wall_now;

/// Bytes written to one downstream per turn, so that a snapshot does not
/// hold the loop while the kernel copies it.
const WRITE_PER_TURN: usize = 4 << 20;

pub struct DownConn {
    stream: Stream,
    d: Downstream,
    peer: Box<str>,
}

impl DownConn {
    /// This primary has been promoted again: the replica hears of it.
    pub fn push_epoch(&mut self, epoch: u64) {
        self.d.push_epoch(epoch);
    }

    /// The primary's tapped records it has applied, once in step.
    pub fn in_step_upto(&self) -> Option<u64> {
        self.d.in_step_upto
    }
}

impl Server {
    /// Connection `c` asked to follow: it leaves the engine and becomes a
    /// downstream, answered with `REPLICATING` and a snapshot.
    pub(in crate::event_loop) fn start_downstream(&mut self, c: ClientId) {
        let key = c as usize;
        let refusal: Option<(&[u8], String)> = if self.binlog.is_none() {
            let why = "this server has no binlog (-b DIR)".to_string();
            Some((b"NO_BINLOG\r\n", why))
        } else if self.downstreams.len() >= MAX_REPLICAS {
            let why = format!("{MAX_REPLICAS} replicas already follow, the most");
            Some((b"OUT_OF_MEMORY\r\n", why))
        } else {
            None
        };
        if let Some((reply, why)) = refusal {
            let conn = &mut self.conns[key];
            conn.out.extend_from_slice(reply);
            conn.closing = true;
            warn!(
                "connection {c} from {} asked to replicate, but {why}: refused",
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
        if let Some(b) = &mut self.binlog {
            b.set_tap(true);
        }
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(conn.stream.source());
        self.forget_client(c);
        let now = self.now();
        let earlier = &conn.out[conn.sent..];
        let e = &self.engine;
        let mut d = Downstream::new(earlier, &e.info().instance_id, e.epoch(), now);
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
        let n = self.engine.counts();
        info!(
            "replica at {} follows: sending a snapshot of {} jobs, then every change",
            conn.peer,
            n.ready + n.reserved + n.delayed + n.buried
        );
        entry.insert(DownConn {
            stream: conn.stream,
            d,
            peer: conn.peer,
        });
    }

    /// Each turn, on a primary: the records written go to every replica,
    /// snapshots move on a slice, heartbeats, and what waits is written.
    pub(in crate::event_loop) fn feed_downstreams(&mut self) {
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
        let mut stepped = false;
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
                    None => {
                        dc.d.end_snapshot(self.engine.next_id(), tapped_total);
                        // An empty snapshot puts the replica in step now.
                        stepped |= dc.d.in_step_upto.is_some();
                    }
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
        if stepped && self.sync_replicas > 0 {
            self.release_held();
        }
    }

    /// Whether a replica's snapshot has a slice to send now (the loop then
    /// does not sleep; one waiting for its replica to read wakes on the
    /// socket's writable event).
    pub(in crate::event_loop) fn snapshotting(&self) -> bool {
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
    pub(in crate::event_loop) fn drive_downstream(&mut self, key: usize) {
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

    pub(in crate::event_loop) fn drop_downstream(&mut self, key: usize, why: &str) {
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
}
