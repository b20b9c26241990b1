//! The queue engine: every job, tube and connection's queue-side state, and
//! the rules that move jobs between states.
//!
//! The engine does no I/O and reads no clock. The event loop passes `now` in
//! and hands it a [`Sink`] that receives reply bytes for any connection (the
//! one that sent the command, or a blocked reserver that a put just served).
//!
//! Dispatch does not scan tubes: a tube that has both a ready job and a
//! waiting connection (and is not paused) sits in the `candidates` heap,
//! keyed by its best ready job, so matching a job to a waiter is O(log n).
//!
//! Reading order: this file (the state, connecting and disconnecting,
//! lookups), `commands.rs` (what each command does), `reserve.rs` (waiting
//! and matching), `transitions.rs` (moving a job between states),
//! `timers.rs` (what a deadline does), `persistence.rs` (logging a change
//! before applying it). `crate::stats` writes the YAML documents.

use std::borrow::Cow;
use std::io::Write;

use slab::Slab;

use crate::body_store::BodyStore;
use crate::heap::{Heap, Split64};
use crate::id_index::IdIndex;
use crate::job::{
    ClientId, Counts, Event, Job, JobKey, NANOS_PER_SEC, Nanos, RareTable, State, TubeId,
};
use crate::journal::{FileNo, Image, Journal, JournalError, LoggedState, Restored, RestoredState};
use crate::protocol::{Command, Op};
use crate::reply;
use crate::timer_wheel::{TimerId, TimerWheel};
use crate::tube::{CandidatePositions, JobPositions, NIL, ReadyKey, Registry, URGENT_PRI};
use crate::watch_list::WatchList;

pub use invariants::Broken;

mod commands;
mod invariants;
mod persistence;
mod replica;
mod reserve;
mod role;
#[cfg(test)]
mod tests;
mod timers;
mod transitions;
mod view;

pub use replica::ReplicationView;
pub use role::RoleChange;
pub use view::{ClientView, Levels, Reservation, ServerCounts, TubeView};

/// How long before a reservation's deadline a waiting reserve answers
/// DEADLINE_SOON instead of waiting on.
pub const SAFETY_MARGIN: Nanos = NANOS_PER_SEC;

/// Where the engine's effects go: replies, wake-ups and log records.
pub trait Sink {
    /// The output buffer of `client`.
    fn out(&mut self, client: ClientId) -> &mut Vec<u8>;
    /// `client` was blocked in reserve and has now been answered.
    fn woken(&mut self, client: ClientId);
    /// The journal every change is logged to first; None without `-b`.
    fn journal(&mut self) -> Option<&mut dyn Journal> {
        None
    }
}

/// What became of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The reply is in the sink.
    Done,
    /// A reserve is waiting; the reply comes later through [`Sink::woken`].
    Blocked,
    /// `quit`: close the connection, no reply.
    Close,
    /// `sprout-replicate`: the connection becomes a replica's stream (the
    /// event loop answers it).
    Replicate,
}

/// Something the timer wheel wakes the engine for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// A delayed job becomes ready.
    Delay(JobKey),
    /// A reservation's TTR runs out.
    Ttr(JobKey),
    /// A waiting reserve times out or reaches DEADLINE_SOON.
    Waiter(ClientId),
    /// A paused tube resumes.
    Unpause(TubeId),
}

/// Tubes one connection may watch at once; a `watch` of one more is
/// answered `OUT_OF_MEMORY` (doc/security.md). Far above what a worker
/// watches, low enough that one connection cannot hold a million tubes.
pub const MAX_WATCHED: usize = 10_000;

/// Facts about the process that stats prints and the engine cannot know.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    pub pid: u32,
    pub version: String,
    pub instance_id: String,
    pub hostname: String,
    pub os: String,
    pub platform: String,
    pub binlog_max_size: u64,
}

#[derive(Debug)]
pub(crate) struct Client {
    pub used: TubeId,
    pub watch: WatchList,
    /// Jobs reserved by this client, keyed (deadline, reservation
    /// sequence): soonest deadline first, and among equal deadlines the
    /// earlier reservation, as beanstalkd's reservation list gives. The
    /// third part, never compared (sequences are unique), is when the
    /// reservation began: a touch keeps it, for the status page.
    pub reserved: Heap<(Nanos, u64, Nanos)>,
    pub waiting: bool,
    /// Set while a reserve-with-timeout waits.
    pub timeout_at: Option<Nanos>,
    pub timer: Option<TimerId>,
    pub producer: bool,
    pub worker: bool,
}

/// Server-wide counters for stats.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    pub ops: [u64; Op::COUNT],
    pub job_timeouts: u64,
    /// Jobs handed to a worker (by any reserve command), for rates.
    pub reservations: u64,
    pub total_jobs: u64,
    pub total_connections: u64,
    pub ready: u64,
    pub urgent: u64,
    pub reserved: u64,
    pub delayed: u64,
    pub buried: u64,
    pub connections: u64,
    pub producers: u64,
    pub workers: u64,
    pub waiting: u64,
}

pub struct Engine {
    pub(crate) jobs: Slab<Job>,
    pub(crate) bodies: BodyStore,
    /// With a binlog, the file holding each job's newest full record, by
    /// job key (0: none); empty without one, so that jobs do not pay for
    /// a binlog they do not have.
    homes: Vec<FileNo>,
    pub(crate) rare: RareTable,
    pub(crate) ids: IdIndex,
    pub(crate) tubes: Registry,
    pub(crate) clients: Vec<Option<Client>>,
    candidates: Heap<ReadyKey>,
    /// Each timer carries its exact deadline: the wheel has millisecond
    /// slots, and timers due in one poll run in deadline order.
    timers: TimerWheel<(Nanos, Timer)>,
    fired: Vec<(Nanos, Timer)>,
    next_id: u64,
    /// Orders buried jobs (bury order) and reservations (reservation
    /// order); one counter serves both.
    seq: u64,
    pub(crate) max_job_size: u32,
    pub(crate) draining: bool,
    pub(crate) totals: Totals,
    pub(crate) info: ServerInfo,
    pub(crate) started: Nanos,
    /// Most jobs alive since the containers were last shrunk.
    peak_jobs: usize,
    /// The last shrink left jobs behind: shrink again when none are left.
    owe_shrink: bool,
    /// What the live jobs take, by [`job_memory`] (for `--max-memory`).
    pub(crate) job_bytes: u64,
    /// `--max-memory`: puts are refused while `job_bytes` is at least this.
    max_memory: Option<u64>,
    /// Tubes one connection may watch: [`MAX_WATCHED`], lower only where a
    /// test or fuzz target wants the bound within reach.
    max_watched: usize,
    /// A replica or a standby: commands that change the queue are refused
    /// (a primary is the one role that takes them).
    refuses_changes: bool,
    /// During a replica's resync, the ids heard of since it began.
    resync: Option<std::collections::HashSet<u64>>,
    replication: ReplicationView,
    writes_refused: bool,
    /// The newest replication epoch this node has seen (engine/role.rs).
    epoch: u64,
    /// What a role command left for the event loop to do.
    role_change: Option<RoleChange>,
}

/// What one job counts against `--max-memory`: its body and its share of
/// the structures that hold it (record, heap entry, id index). A formula,
/// not a reading of RSS, so the limit is the same on every run.
pub fn job_memory(body_len: usize) -> u64 {
    (std::mem::size_of::<Job>() + 16 + 4 + body_len) as u64
}

/// Containers smaller than this are not worth shrinking.
const SHRINK_FLOOR: usize = 4096;

fn ms_ceil(t: Nanos) -> u64 {
    t.div_ceil(1_000_000)
}

fn secs(n: u32) -> Nanos {
    n as Nanos * NANOS_PER_SEC
}

/// What [`Engine::restore`] hands back for the binlog.
pub struct Restoration {
    /// Each restored job's key and home file.
    pub placed: Vec<(JobKey, FileNo)>,
    /// Buried jobs whose rank was inferred rather than read, in bury order.
    pub unranked: Vec<JobKey>,
}

impl Engine {
    pub fn new(max_job_size: u32, info: ServerInfo, now: Nanos) -> Self {
        Engine {
            jobs: Slab::new(),
            bodies: BodyStore::new(),
            homes: Vec::new(),
            rare: RareTable::new(),
            ids: IdIndex::default(),
            tubes: Registry::new(),
            clients: Vec::new(),
            candidates: Heap::default(),
            timers: TimerWheel::new(now / 1_000_000),
            fired: Vec::new(),
            next_id: 1,
            seq: 0,
            max_job_size,
            draining: false,
            totals: Totals::default(),
            info,
            started: now,
            peak_jobs: 0,
            owe_shrink: false,
            job_bytes: 0,
            max_memory: None,
            max_watched: MAX_WATCHED,
            refuses_changes: false,
            resync: None,
            replication: ReplicationView::default(),
            writes_refused: false,
            epoch: 0,
            role_change: None,
        }
    }

    /// Lowers (or raises) the bound on the tubes one connection watches,
    /// so that a fuzz target reaches it in a few bytes.
    pub fn set_max_watched(&mut self, n: usize) {
        self.max_watched = n.max(1);
    }

    /// `--max-memory`: refuse puts while the jobs take this much or more.
    pub fn set_max_memory(&mut self, bytes: Option<u64>) {
        self.max_memory = bytes;
    }

    /// What the live jobs and the tubes take, by [`job_memory`] and
    /// [`tube_memory`](crate::tube::tube_memory).
    pub fn memory_used(&self) -> u64 {
        self.job_bytes + self.tubes.memory()
    }

    /// Whether a put may go ahead under `--max-memory`. A job is refused
    /// while jobs and tubes take the limit or more; the one that crosses it
    /// is taken, so any job fits once.
    pub fn has_room_for_put(&self) -> bool {
        self.max_memory.is_none_or(|max| self.memory_used() < max)
    }

    /// Whether `use` or `watch` may name `name` under `--max-memory`: a
    /// tube that exists always, a new one while there is room.
    fn has_room_for_tube(&self, name: &str) -> bool {
        self.tubes.find(name).is_some() || self.has_room_for_put()
    }

    /// Gives memory back once the jobs (or the tubes) alive have halved
    /// since the last time (so the cost, linear in the containers' size, is
    /// paid once per halving). Returns whether it shrank anything: the
    /// caller may then also return freed heap pages to the system.
    pub fn shrink_if_emptied(&mut self) -> bool {
        let tubes = self.tubes.shrink_if_emptied();
        if tubes {
            self.candidates.shrink();
        }
        self.shrink_jobs_if_emptied() || tubes
    }

    fn shrink_jobs_if_emptied(&mut self) -> bool {
        let live = self.jobs.len();
        self.peak_jobs = self.peak_jobs.max(live);
        let halved = self.peak_jobs >= SHRINK_FLOOR && live <= self.peak_jobs / 2;
        // Halving stops at the floor; the room of the last few thousand
        // jobs goes once they are gone too.
        let emptied = live == 0 && self.owe_shrink;
        if !halved && !emptied {
            return false;
        }
        self.owe_shrink = live > 0;
        self.peak_jobs = live;
        self.jobs.shrink_to_fit();
        // Live keys are below the slab's capacity.
        self.homes.truncate(self.jobs.capacity());
        self.homes.shrink_to_fit();
        self.rare.shrink_to_fit();
        self.bodies.shrink();
        self.ids.shrink();
        self.timers.shrink();
        for (_, t) in self.tubes.slab.iter_mut() {
            t.ready.shrink();
            t.delayed.shrink();
            t.buried.shrink();
        }
        for c in self.clients.iter_mut().flatten() {
            c.reserved.shrink();
        }
        true
    }

    /// Loads jobs read back from the binlog into a new engine, before any
    /// client connects; the store that holds their bodies becomes the
    /// engine's. New ids start at `next_id` at least.
    pub fn restore(
        &mut self,
        jobs: Vec<Restored>,
        bodies: BodyStore,
        next_id: u64,
        now: Nanos,
    ) -> Restoration {
        assert!(self.jobs.is_empty(), "restore runs on a new engine");
        self.bodies = bodies;
        let mut placed = Vec::with_capacity(jobs.len());
        let mut unranked = Vec::new();
        self.jobs.reserve(jobs.len());
        self.ids.reserve(jobs.len());
        // Restored jobs share one name per tube: look each name up once.
        let mut last: Option<(std::rc::Rc<str>, TubeId)> = None;
        for r in jobs {
            if self.ids.contains(r.id) {
                self.bodies.remove(r.body);
                continue;
            }
            let tube = match &last {
                Some((name, t)) if std::rc::Rc::ptr_eq(name, &r.tube) => *t,
                _ => {
                    let t = self.tubes.find_or_make(&r.tube);
                    last = Some((r.tube.clone(), t));
                    t
                }
            };
            self.job_bytes += job_memory(r.body.len());
            let key = self.jobs.insert(Job {
                pri: r.pri,
                delay: r.delay,
                ttr: r.ttr.max(1),
                ..Job::new(r.id, tube, r.created_at, r.body)
            }) as JobKey;
            self.set_home(key, r.home);
            self.jobs[key as usize].set_counts(r.counts, &mut self.rare);
            self.ids.insert(r.id, key);
            match r.state {
                RestoredState::Ready => self.make_ready(key),
                RestoredState::Delayed { until } if until > now => self.make_delayed(key, until),
                RestoredState::Delayed { .. } => self.make_ready(key),
                RestoredState::Buried { rank, ranked } => {
                    self.make_buried(key, rank);
                    self.seq = self.seq.max(rank);
                    if !ranked {
                        unranked.push((rank, key));
                    }
                }
            }
            placed.push((key, r.home));
            self.next_id = self.next_id.max(r.id.saturating_add(1));
        }
        self.next_id = self.next_id.max(next_id);
        unranked.sort_unstable();
        Restoration {
            placed,
            unranked: unranked.into_iter().map(|(_, k)| k).collect(),
        }
    }

    /// Logs the bury rank of restored buried jobs whose rank was not on
    /// disk, in bury order, so that compaction can later move any buried
    /// job without changing the order a restart gives.
    pub fn log_ranks(
        &mut self,
        keys: &[JobKey],
        journal: &mut dyn Journal,
        now: Nanos,
    ) -> Result<(), JournalError> {
        for &key in keys {
            journal.update(&self.image(key), now)?;
        }
        Ok(())
    }

    pub fn max_job_size(&self) -> u32 {
        self.max_job_size
    }

    /// SIGUSR1: refuse new jobs from now on.
    pub fn set_draining(&mut self) {
        self.draining = true;
    }

    /// A new connection, using and watching `default`.
    pub fn connect(&mut self, c: ClientId) {
        let d = self.tubes.default_tube();
        let tube = &mut self.tubes.slab[d as usize];
        tube.using += 1;
        tube.watching += 1;
        let i = c as usize;
        if self.clients.len() <= i {
            self.clients.resize_with(i + 1, || None);
        }
        debug_assert!(self.clients[i].is_none(), "client id {c} in use");
        self.clients[i] = Some(Client {
            used: d,
            watch: WatchList::new(d),
            reserved: Heap::default(),
            waiting: false,
            timeout_at: None,
            timer: None,
            producer: false,
            worker: false,
        });
        self.totals.connections += 1;
        self.totals.total_connections += 1;
    }

    /// The connection is gone: its reserved jobs go back to ready at once.
    pub fn disconnect(&mut self, c: ClientId, now: Nanos, sink: &mut impl Sink) {
        if self.client(c).waiting {
            self.stop_waiting(c);
        }
        // Release in reservation order, as beanstalkd walks its list.
        let reserved = &self.client(c).reserved;
        let mut held: Vec<(u64, JobKey)> = reserved
            .items()
            .filter_map(|k| Some((reserved.key_at(self.jobs[k as usize].pos)?.1, k)))
            .collect();
        held.sort_unstable();
        for (_, key) in held {
            self.unlink(key);
            self.make_ready(key);
            self.dispatch(now, sink);
        }
        let Some(client) = self.clients[c as usize].take() else {
            return;
        };
        self.tubes.slab[client.used as usize].using -= 1;
        self.release_tube(client.used);
        for t in client.watch.tubes() {
            self.tubes.slab[t as usize].watching -= 1;
            self.release_tube(t);
        }
        self.totals.connections -= 1;
        self.totals.producers -= client.producer as u64;
        self.totals.workers -= client.worker as u64;
    }

    /// Counts a command whose numbers parsed but which then failed.
    pub fn count(&mut self, op: Op) {
        self.totals.ops[op as usize] += 1;
    }

    /// Whether `c` is blocked in a reserve.
    pub fn is_waiting(&self, c: ClientId) -> bool {
        self.client(c).waiting
    }

    /// The connection half-closed while blocked in reserve: answer
    /// TIMED_OUT, as beanstalkd does on a hang-up.
    pub fn hang_up_waiter(&mut self, c: ClientId, sink: &mut impl Sink) {
        if self.client(c).waiting {
            self.stop_waiting(c);
            sink.out(c).extend_from_slice(b"TIMED_OUT\r\n");
        }
    }

    /// A job that `c` may delete: reserved by `c`, or not reserved at all.
    fn held_or_free(&self, c: ClientId, key: JobKey) -> bool {
        let job = &self.jobs[key as usize];
        job.state != State::Reserved || job.reserver == c
    }

    fn reserved_by(&self, c: ClientId, id: u64) -> Option<JobKey> {
        let key = self.ids.get(id)?;
        let job = &self.jobs[key as usize];
        (job.state == State::Reserved && job.reserver == c).then_some(key)
    }

    fn reply_found(&self, c: ClientId, key: Option<JobKey>, sink: &mut impl Sink) {
        match key {
            Some(key) => self.reply_job(c, key, b"FOUND", sink),
            None => sink.out(c).extend_from_slice(b"NOT_FOUND\r\n"),
        }
    }

    fn reply_job(&self, c: ClientId, key: JobKey, word: &[u8], sink: &mut impl Sink) {
        let job = &self.jobs[key as usize];
        let out = sink.out(c);
        reply::job_line(out, word, job.id, job.bytes() as u64);
        out.extend_from_slice(self.bodies.get(job.body));
        out.extend_from_slice(b"\r\n");
    }

    fn used_tube(&self, c: ClientId) -> &crate::tube::Tube {
        &self.tubes.slab[self.client(c).used as usize]
    }

    pub(crate) fn client(&self, c: ClientId) -> &Client {
        self.clients[c as usize]
            .as_ref()
            .expect("client is connected")
    }

    fn client_mut(&mut self, c: ClientId) -> &mut Client {
        self.clients[c as usize]
            .as_mut()
            .expect("client is connected")
    }
}

/// A sink that collects every connection's replies in one buffer, for
/// unit tests of the engine and the framer.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Out(pub Vec<u8>);

#[cfg(test)]
impl Sink for Out {
    fn out(&mut self, _: ClientId) -> &mut Vec<u8> {
        &mut self.0
    }
    fn woken(&mut self, _: ClientId) {}
}
