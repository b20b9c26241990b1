//! The engine's side of replication: a replica applies the binlog records
//! its primary streams, each logged to the replica's own journal first (so
//! its directory is an ordinary v7 binlog), and refuses every command that
//! would change the queue itself.
//!
//! A record is applied as recovery reads it: a full record is the job as
//! it now stands (made, or made anew); a short record changes a job's
//! state, or with state Deleted removes it; a short record of a job the
//! replica does not hold is nothing to apply. Ids seen raise the next id,
//! so a replica promoted later never gives out an id twice.
//!
//! A resync (a snapshot of every live job, sent when a replica connects)
//! is bracketed by [`begin_resync`](Engine::begin_resync) and
//! [`end_resync`](Engine::end_resync): jobs the replica held that it did
//! not hear of in between are gone on the primary, and go here too.

use std::collections::HashSet;

use crate::binlog::record::{DiskState, Record};

use super::*;

/// Where this server stands in replication, as the event loop last saw
/// it (stats, metrics and the page show it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationView {
    /// Replicas following this server.
    pub replicas: u64,
    /// On a replica: the primary it follows (HOST:PORT).
    pub primary: Option<String>,
    /// Connected to it and streaming.
    pub following: bool,
    /// Records applied from it since start.
    pub applied: u64,
    /// Its records this replica holds, counted as it counts them, once in
    /// step on this connection (a supervisor promotes the furthest).
    pub position: Option<u64>,
    /// When the newest heartbeat was applied (engine clock), and how far
    /// its stamp was behind this server's wall clock then.
    pub heard: Option<(Nanos, i64)>,
}

impl ReplicationView {
    /// Seconds this replica is behind its primary at `now`: the newest
    /// heartbeat's lag then, plus the time since (so a silent primary shows
    /// a growing lag). None before the first heartbeat. Wall clocks of two
    /// machines: as good as their time sync.
    pub fn lag_seconds(&self, now: Nanos) -> Option<f64> {
        let (at, lag) = self.heard?;
        let since = now.saturating_sub(at) as i64;
        Some(lag.saturating_add(since).max(0) as f64 / NANOS_PER_SEC as f64)
    }
}

impl Engine {
    pub fn set_replication_view(&mut self, v: ReplicationView) {
        self.replication = v;
    }

    pub fn replication_view(&self) -> &ReplicationView {
        &self.replication
    }

    /// Makes this engine refuse changes (a replica or a standby) or take
    /// them again (a primary): refused commands are answered `DRAINING`.
    pub fn set_refuses_changes(&mut self, on: bool) {
        self.refuses_changes = on;
    }

    pub fn refuses_changes(&self) -> bool {
        self.refuses_changes
    }

    /// `--sync-replicas`: while too few replicas are in step, changes that
    /// would be logged are refused before they are made (a put with
    /// OUT_OF_MEMORY, the rest with INTERNAL_ERROR: beanstalkd's replies
    /// when it cannot store a change).
    pub fn set_writes_refused(&mut self, on: bool) {
        self.writes_refused = on;
    }

    /// A snapshot begins: the ids heard of from now on are noted.
    pub fn begin_resync(&mut self) {
        self.resync = Some(HashSet::new());
    }

    /// The snapshot is complete: removes the jobs not heard of since it
    /// began, and raises the next id to the primary's. Returns how many
    /// were removed.
    pub fn end_resync(
        &mut self,
        next_id: u64,
        now: Nanos,
        sink: &mut impl Sink,
    ) -> Result<usize, JournalError> {
        self.next_id = self.next_id.max(next_id);
        let Some(seen) = self.resync.take() else {
            return Ok(0);
        };
        let gone: Vec<u64> = (self.jobs.iter())
            .map(|(_, j)| j.id)
            .filter(|id| !seen.contains(id))
            .collect();
        for &id in &gone {
            self.remove_replicated(id, now, sink)?;
        }
        Ok(gone.len())
    }

    /// Applies one record from the primary. `wall_now` is nanoseconds since
    /// the epoch, to turn the record's wall-clock times into the engine's.
    /// On a journal error nothing of the record is applied.
    pub fn apply(
        &mut self,
        r: &Record,
        wall_now: i64,
        now: Nanos,
        sink: &mut impl Sink,
    ) -> Result<(), JournalError> {
        let rec = &r.rec;
        self.next_id = self.next_id.max(rec.id.saturating_add(1));
        if let Some(seen) = &mut self.resync {
            seen.insert(rec.id);
        }
        if rec.state == DiskState::Deleted {
            return self.remove_replicated(rec.id, now, sink);
        }
        let place = Placement::of(rec, wall_now, now, &mut self.seq);
        let secs = |ns: i64| (ns.max(0) as u64 / NANOS_PER_SEC).min(u32::MAX as u64) as u32;
        let (delay, ttr) = (secs(rec.delay), secs(rec.ttr).max(1));
        let age = wall_now.saturating_sub(rec.created_at).max(0) as u64;
        let created_at = now.saturating_sub(age);
        match (r.tube, r.body, self.ids.get(rec.id)) {
            (Some(tube), Some(body), old) => {
                if old.is_some() {
                    self.remove_replicated(rec.id, now, sink)?;
                }
                // The reader admits only tube-name characters (ASCII).
                let name = String::from_utf8_lossy(tube);
                let t = self.tubes.find_or_make(&name);
                let img = Image {
                    key: self.jobs.vacant_key() as JobKey,
                    id: rec.id,
                    pri: rec.pri,
                    delay,
                    ttr,
                    created_at,
                    deadline: place.deadline(),
                    rank: place.rank(),
                    counts: rec.counts,
                    state: place.logged(),
                    home: 0,
                    tube_len: name.len() as u32,
                    body_len: body.len() as u32 + 2,
                };
                let home = match sink.journal() {
                    Some(j) => match j.put(&img, &name, body, now) {
                        Ok(home) => home,
                        Err(e) => {
                            self.release_tube(t);
                            return Err(e);
                        }
                    },
                    None => 0,
                };
                self.job_bytes += job_memory(body.len());
                let key = self.jobs.insert(Job {
                    pri: rec.pri,
                    delay,
                    ttr,
                    ..Job::new(rec.id, t, created_at, self.bodies.insert(body.into()))
                }) as JobKey;
                self.set_home(key, home);
                self.jobs[key as usize].set_counts(rec.counts, &mut self.rare);
                self.ids.insert(rec.id, key);
                self.tubes.slab[t as usize].total_jobs += 1;
                self.totals.total_jobs += 1;
                self.place(key, place);
            }
            (_, _, Some(key)) => {
                let mut img = self.image(key);
                img.pri = rec.pri;
                img.delay = delay;
                img.ttr = ttr;
                img.counts = rec.counts;
                img.state = place.logged();
                img.deadline = place.deadline();
                img.rank = place.rank();
                self.log(sink, |j| j.update(&img, now))?;
                self.unlink(key);
                let job = &mut self.jobs[key as usize];
                job.pri = rec.pri;
                job.delay = delay;
                job.ttr = ttr;
                job.set_counts(rec.counts, &mut self.rare);
                self.place(key, place);
            }
            // A state change of a job this replica does not hold.
            _ => {}
        }
        self.compact(now, sink);
        Ok(())
    }

    /// Up to `n` live jobs from job slot `from` on, each as its image,
    /// tube and body, for a replica's snapshot; the slot to go on from,
    /// None when every slot has been seen. Jobs made meanwhile in slots
    /// already passed reach the replica in the stream.
    pub fn snapshot_slice(
        &self,
        from: usize,
        n: usize,
        mut each: impl FnMut(&Image, &str, &[u8]),
    ) -> Option<usize> {
        let end = self.jobs.capacity();
        let mut sent = 0;
        let mut key = from;
        while key < end {
            if sent == n {
                return Some(key);
            }
            if let Some(job) = self.jobs.get(key) {
                let img = self.image(key as JobKey);
                let tube = &self.tubes.slab[job.tube as usize].name;
                each(&img, tube, self.bodies.get(job.body));
                sent += 1;
            }
            key += 1;
        }
        None
    }

    /// The next id this engine would give.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    fn place(&mut self, key: JobKey, place: Placement) {
        match place {
            Placement::Ready => self.make_ready(key),
            Placement::Delayed(until) => self.make_delayed(key, until),
            Placement::Buried(rank) => self.make_buried(key, rank),
        }
    }

    /// Removes job `id`, if held, logging its delete first.
    fn remove_replicated(
        &mut self,
        id: u64,
        now: Nanos,
        sink: &mut impl Sink,
    ) -> Result<(), JournalError> {
        let Some(key) = self.ids.get(id) else {
            return Ok(());
        };
        let img = self.image(key);
        self.log(sink, |j| j.delete(&img, now))?;
        let tube = self.jobs[key as usize].tube;
        self.unlink(key);
        self.tubes.slab[tube as usize].cmd_delete += 1;
        self.free(key);
        self.compact(now, sink);
        Ok(())
    }
}

/// Where a replicated job goes. Reserved jobs are ready on a replica, as
/// after a restart: reserves are not replicated.
#[derive(Debug, Clone, Copy)]
enum Placement {
    Ready,
    Delayed(Nanos),
    Buried(u64),
}

impl Placement {
    fn of(rec: &crate::binlog::record::JobRec, wall_now: i64, now: Nanos, seq: &mut u64) -> Self {
        match rec.state {
            DiskState::Delayed if rec.deadline_at > wall_now => {
                Placement::Delayed(now.saturating_add((rec.deadline_at - wall_now) as u64))
            }
            DiskState::Buried => {
                // A rank the primary wrote keeps its bury order; without
                // one (files beanstalkd wrote), the job goes last.
                let rank = if rec.deadline_at < 0 {
                    rec.deadline_at.unsigned_abs()
                } else {
                    *seq + 1
                };
                *seq = (*seq).max(rank);
                Placement::Buried(rank)
            }
            _ => Placement::Ready,
        }
    }

    fn logged(self) -> LoggedState {
        match self {
            Placement::Ready => LoggedState::Ready,
            Placement::Delayed(_) => LoggedState::Delayed,
            Placement::Buried(_) => LoggedState::Buried,
        }
    }

    fn deadline(self) -> Nanos {
        match self {
            Placement::Delayed(until) => until,
            _ => 0,
        }
    }

    fn rank(self) -> u64 {
        match self {
            Placement::Buried(rank) => rank,
            _ => 0,
        }
    }
}
