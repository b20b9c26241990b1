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
    /// earlier reservation, as beanstalkd's reservation list gives.
    pub reserved: Heap<(Nanos, u64)>,
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
        }
    }

    /// Gives memory back once the jobs alive have halved since the last
    /// time (so the cost, linear in the containers' size, is paid once per
    /// halving). Returns whether it shrank anything: the caller may then
    /// also return freed heap pages to the system.
    pub fn shrink_if_emptied(&mut self) -> bool {
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

    /// The header of a put has parsed: the client is now a producer and the
    /// job's id is taken (a put that fails later burns it, as beanstalkd).
    pub fn begin_put(&mut self, c: ClientId) -> u64 {
        let client = self.client_mut(c);
        if !client.producer {
            client.producer = true;
            self.totals.producers += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The body of a put has arrived whole; `body` is without the CRLF
    /// that ended it. An owned large body keeps its allocation.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_put(
        &mut self,
        c: ClientId,
        id: u64,
        pri: u32,
        delay: u32,
        ttr: u32,
        body: Cow<[u8]>,
        created_at: Nanos,
        now: Nanos,
        sink: &mut impl Sink,
    ) {
        if self.draining {
            sink.out(c).extend_from_slice(b"DRAINING\r\n");
            return;
        }
        let tube = self.client(c).used;
        let ttr = ttr.max(1);
        let mut file = 0;
        if let Some(journal) = sink.journal() {
            let img = Image {
                key: self.jobs.vacant_key() as JobKey,
                id,
                pri,
                delay,
                ttr,
                created_at,
                deadline: now + secs(delay),
                rank: 0,
                counts: Counts::default(),
                state: if delay > 0 {
                    LoggedState::Delayed
                } else {
                    LoggedState::Ready
                },
                home: 0,
                tube_len: self.tubes.slab[tube as usize].name.len() as u32,
                body_len: body.len() as u32 + 2,
            };
            let name = &self.tubes.slab[tube as usize].name;
            match journal.put(&img, name, &body, now) {
                Ok(home) => file = home,
                Err(e) => {
                    // No job exists under this id; the id stays used up.
                    sink.out(c).extend_from_slice(e.reply());
                    return;
                }
            }
        }
        let key = self.jobs.insert(Job {
            pri,
            delay,
            ttr,
            ..Job::new(id, tube, created_at, self.bodies.insert(body))
        }) as JobKey;
        self.set_home(key, file);
        self.ids.insert(id, key);
        if delay > 0 {
            self.make_delayed(key, now + secs(delay));
        } else {
            self.make_ready(key);
            self.dispatch(now, sink);
        }
        self.tubes.slab[tube as usize].total_jobs += 1;
        self.totals.total_jobs += 1;
        reply::with_number(sink.out(c), b"INSERTED", id);
        self.compact(now, sink);
    }

    /// Runs one command other than put (see [`begin_put`](Self::begin_put)).
    pub fn execute(
        &mut self,
        c: ClientId,
        cmd: &Command,
        now: Nanos,
        sink: &mut impl Sink,
    ) -> Outcome {
        if let Some(op) = cmd.op() {
            self.count(op);
        }
        match *cmd {
            Command::Quit => return Outcome::Close,
            Command::Put { .. } => unreachable!("put goes through begin_put/finish_put"),
            Command::Reserve => return self.reserve(c, None, now, sink),
            Command::ReserveWithTimeout(s) => return self.reserve(c, Some(s), now, sink),
            Command::ReserveJob(id) => self.reserve_job(c, id, now, sink),
            Command::Peek(id) => {
                let key = self.ids.get(id);
                self.reply_found(c, key, sink)
            }
            Command::PeekReady => {
                let key = self.used_tube(c).ready.peek().map(|(_, k)| k);
                self.reply_found(c, key, sink)
            }
            Command::PeekDelayed => {
                let key = self.used_tube(c).delayed.peek().map(|(_, k)| k);
                self.reply_found(c, key, sink)
            }
            Command::PeekBuried => {
                let key = self.used_tube(c).buried.peek().map(|(_, k)| k);
                self.reply_found(c, key, sink)
            }
            Command::Delete(id) => {
                let reply: &[u8] = match self.ids.get(id) {
                    Some(key) if self.held_or_free(c, key) => {
                        let img = self.image(key);
                        if let Err(e) = self.log(sink, |j| j.delete(&img, now)) {
                            return self.refuse(c, e, sink);
                        }
                        let tube = self.jobs[key as usize].tube;
                        self.unlink(key);
                        self.tubes.slab[tube as usize].cmd_delete += 1;
                        self.free(key);
                        self.compact(now, sink);
                        b"DELETED\r\n"
                    }
                    _ => b"NOT_FOUND\r\n",
                };
                sink.out(c).extend_from_slice(reply);
            }
            Command::Release { id, pri, delay } => {
                let reply: &[u8] = match self.reserved_by(c, id) {
                    Some(key) => {
                        // Logged with or without a delay, so that a restart
                        // keeps the new priority (beanstalkd forgets it).
                        let mut img = self.image(key);
                        img.pri = pri;
                        img.delay = delay;
                        img.counts.releases += 1;
                        img.state = if delay > 0 {
                            img.deadline = now + secs(delay);
                            LoggedState::Delayed
                        } else {
                            LoggedState::Ready
                        };
                        let logged = self.log(sink, |j| j.update(&img, now));
                        // beanstalkd does not log a release without delay,
                        // so never fails one: neither does sprout.
                        if let (Err(e), true) = (logged, delay > 0) {
                            return self.refuse(c, e, sink);
                        }
                        self.unlink(key);
                        let job = &mut self.jobs[key as usize];
                        job.pri = pri;
                        job.delay = delay;
                        job.count(Event::Release, &mut self.rare);
                        if delay > 0 {
                            self.make_delayed(key, now + secs(delay));
                        } else {
                            self.make_ready(key);
                            self.dispatch(now, sink);
                        }
                        b"RELEASED\r\n"
                    }
                    None => b"NOT_FOUND\r\n",
                };
                sink.out(c).extend_from_slice(reply);
            }
            Command::Bury { id, pri } => {
                let reply: &[u8] = match self.reserved_by(c, id) {
                    Some(key) => {
                        let mut img = self.image(key);
                        img.pri = pri;
                        img.counts.buries += 1;
                        img.state = LoggedState::Buried;
                        img.rank = self.next_seq();
                        if self.log(sink, |j| j.update(&img, now)).is_err() {
                            // beanstalkd's reply when a bury cannot be logged.
                            sink.out(c).extend_from_slice(b"INTERNAL_ERROR\r\n");
                            return Outcome::Done;
                        }
                        self.unlink(key);
                        let job = &mut self.jobs[key as usize];
                        job.pri = pri;
                        job.count(Event::Bury, &mut self.rare);
                        self.make_buried(key, img.rank);
                        b"BURIED\r\n"
                    }
                    None => b"NOT_FOUND\r\n",
                };
                sink.out(c).extend_from_slice(reply);
            }
            Command::Touch(id) => {
                let reply: &[u8] = match self.reserved_by(c, id) {
                    Some(key) => {
                        // A touch keeps the job's place in reservation order.
                        let pos = self.jobs[key as usize].pos;
                        let seq = self.client(c).reserved.key_at(pos).map(|k| k.1);
                        self.unlink(key);
                        self.hold(key, c, now, seq);
                        b"TOUCHED\r\n"
                    }
                    None => b"NOT_FOUND\r\n",
                };
                sink.out(c).extend_from_slice(reply);
            }
            Command::Kick(n) => {
                // Buried jobs first; delayed ones only when none are buried.
                let t = self.client(c).used;
                let from_buried = !self.tubes.slab[t as usize].buried.is_empty();
                let mut kicked = 0u32;
                while kicked < n {
                    let tube = &self.tubes.slab[t as usize];
                    let next = if from_buried {
                        tube.buried.peek()
                    } else {
                        tube.delayed.peek().map(|((_, id), k)| (id, k))
                    };
                    let Some((_, key)) = next else { break };
                    if self.kick(key, now, sink).is_err() {
                        // Report what did move; the rest stays put.
                        break;
                    }
                    kicked += 1;
                }
                reply::with_number(sink.out(c), b"KICKED", kicked.into());
            }
            Command::KickJob(id) => {
                let reply: &[u8] = match self.ids.get(id) {
                    Some(key)
                        if matches!(
                            self.jobs[key as usize].state,
                            State::Buried | State::Delayed
                        ) =>
                    {
                        if let Err(e) = self.kick(key, now, sink) {
                            return self.refuse(c, e, sink);
                        }
                        b"KICKED\r\n"
                    }
                    _ => b"NOT_FOUND\r\n",
                };
                sink.out(c).extend_from_slice(reply);
            }
            Command::StatsJob(id) => match self.ids.get(id) {
                Some(key) => {
                    let yaml = self.job_yaml(key, now);
                    reply_ok(sink.out(c), &yaml);
                }
                None => sink.out(c).extend_from_slice(b"NOT_FOUND\r\n"),
            },
            Command::StatsTube(name) => match self.tubes.find(name) {
                Some(t) => {
                    let yaml = self.tube_yaml(t, now);
                    reply_ok(sink.out(c), &yaml);
                }
                None => sink.out(c).extend_from_slice(b"NOT_FOUND\r\n"),
            },
            Command::Stats => {
                let binlog = sink.journal().map(|j| j.stats()).unwrap_or_default();
                let yaml = self.stats_yaml(now, binlog);
                reply_ok(sink.out(c), &yaml);
            }
            Command::Use(name) => {
                let t = self.tubes.find_or_make(name);
                let old = self.client(c).used;
                self.tubes.slab[t as usize].using += 1;
                self.client_mut(c).used = t;
                self.tubes.slab[old as usize].using -= 1;
                self.release_tube(old);
                let _ = write!(sink.out(c), "USING {name}\r\n");
            }
            Command::Watch(name) => {
                let t = self.tubes.find_or_make(name);
                if self.client_mut(c).watch.watch(t) {
                    self.tubes.slab[t as usize].watching += 1;
                }
                let n = self.client(c).watch.len();
                reply::with_number(sink.out(c), b"WATCHING", n as u64);
            }
            Command::Ignore(name) => {
                let found = self
                    .tubes
                    .find(name)
                    .filter(|&t| self.client(c).watch.contains(t));
                if let Some(t) = found {
                    if self.client(c).watch.len() == 1 {
                        sink.out(c).extend_from_slice(b"NOT_IGNORED\r\n");
                        return Outcome::Done;
                    }
                    // A command is never run while its client waits, so the
                    // entries have no waiting-set positions to maintain.
                    self.client_mut(c).watch.ignore(t);
                    self.tubes.slab[t as usize].watching -= 1;
                    self.release_tube(t);
                }
                let n = self.client(c).watch.len();
                reply::with_number(sink.out(c), b"WATCHING", n as u64);
            }
            Command::ListTubes => {
                let mut yaml = b"---\n".to_vec();
                for tube in self.tubes.in_order() {
                    let _ = writeln!(yaml, "- {}", tube.name);
                }
                reply_ok(sink.out(c), &yaml);
            }
            Command::ListTubeUsed => {
                let name = &self.used_tube(c).name;
                let _ = write!(sink.out(c), "USING {name}\r\n");
            }
            Command::ListTubesWatched => {
                let mut yaml = b"---\n".to_vec();
                for t in self.client(c).watch.tubes() {
                    let _ = writeln!(yaml, "- {}", self.tubes.slab[t as usize].name);
                }
                reply_ok(sink.out(c), &yaml);
            }
            Command::PauseTube { name, delay } => match self.tubes.find(name) {
                Some(t) => {
                    let tube = &mut self.tubes.slab[t as usize];
                    tube.cmd_pause += 1;
                    if let Some(old) = tube.pause_timer.take() {
                        self.timers.cancel(old, |(_, v)| *v == Timer::Unpause(t));
                    }
                    if delay == 0 {
                        // beanstalkd pauses for 1 ns, which has ended by the
                        // time anything else happens: unpause now.
                        self.unpause(t, now, sink);
                    } else {
                        let tube = &mut self.tubes.slab[t as usize];
                        tube.pause = secs(delay);
                        tube.unpause_at = now + secs(delay);
                        let timer = self.schedule(now + secs(delay), Timer::Unpause(t));
                        self.tubes.slab[t as usize].pause_timer = Some(timer);
                        self.refresh_candidate(t);
                    }
                    sink.out(c).extend_from_slice(b"PAUSED\r\n");
                }
                None => sink.out(c).extend_from_slice(b"NOT_FOUND\r\n"),
            },
        }
        Outcome::Done
    }

    /// When [`tick`](Self::tick) next has work, if ever.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.timers.next_expiration().map(|ms| ms * 1_000_000)
    }

    /// Runs every timer that is due: delays ending, TTRs running out,
    /// waiting reserves timing out, pauses ending.
    pub fn tick(&mut self, now: Nanos, sink: &mut impl Sink) {
        let mut fired = std::mem::take(&mut self.fired);
        self.timers.poll(now / 1_000_000, &mut fired);
        fired.sort_by_key(|(at, _)| *at);
        for (_, timer) in fired.drain(..) {
            match timer {
                Timer::Delay(key) => {
                    self.jobs[key as usize].timer = None;
                    self.unlink(key);
                    self.make_ready(key);
                    self.dispatch(now, sink);
                }
                Timer::Ttr(key) => {
                    self.jobs[key as usize].timer = None;
                    self.unlink(key);
                    self.jobs[key as usize].count(Event::Timeout, &mut self.rare);
                    self.totals.job_timeouts += 1;
                    self.make_ready(key);
                    self.dispatch(now, sink);
                }
                Timer::Waiter(c) => {
                    self.client_mut(c).timer = None;
                    self.wait_timed_out(c, now, sink);
                }
                Timer::Unpause(t) => {
                    self.tubes.slab[t as usize].pause_timer = None;
                    self.unpause(t, now, sink);
                }
            }
        }
        self.fired = fired;
    }

    fn unpause(&mut self, t: TubeId, now: Nanos, sink: &mut impl Sink) {
        let tube = &mut self.tubes.slab[t as usize];
        tube.pause = 0;
        tube.unpause_at = 0;
        self.refresh_candidate(t);
        self.dispatch(now, sink);
    }

    fn schedule(&mut self, at: Nanos, timer: Timer) -> TimerId {
        self.timers.insert(ms_ceil(at), (at, timer))
    }

    // ---- reservation ----

    fn reserve(
        &mut self,
        c: ClientId,
        timeout: Option<u32>,
        now: Nanos,
        sink: &mut impl Sink,
    ) -> Outcome {
        self.mark_worker(c);
        if self.deadline_soon(c, now) && !self.any_ready(c) {
            sink.out(c).extend_from_slice(b"DEADLINE_SOON\r\n");
            return Outcome::Done;
        }
        // A ready job in a watched tube goes straight to this client: no
        // such tube has waiters (dispatch leaves none), so joining every
        // watched tube's waiters just to leave again would pick the same
        // job at a cost linear in the watch list, in heap operations.
        if let Some((t, key)) = self.best_ready(c) {
            // As if it had been the tube's only waiter: the round-robin
            // among later waiters starts after it.
            self.tubes.slab[t as usize].cursor = 1;
            self.unlink(key);
            self.make_reserved(key, c, now);
            self.jobs[key as usize].count(Event::Reserve, &mut self.rare);
            self.reply_job(c, key, b"RESERVED", sink);
            return Outcome::Done;
        }
        self.start_waiting(c);
        self.dispatch(now, sink);
        if !self.client(c).waiting {
            return Outcome::Done;
        }
        let timeout_at = timeout.map(|s| now + secs(s));
        self.client_mut(c).timeout_at = timeout_at;
        if timeout == Some(0) {
            self.wait_timed_out(c, now, sink);
            return Outcome::Done;
        }
        let soon = self
            .client(c)
            .reserved
            .peek()
            .map(|((d, _), _)| d.saturating_sub(SAFETY_MARGIN));
        let wake = match (soon, timeout_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = wake {
            let timer = self.schedule(at, Timer::Waiter(c));
            self.client_mut(c).timer = Some(timer);
        }
        Outcome::Blocked
    }

    /// A waiting reserve's timer: DEADLINE_SOON if a reservation is about
    /// to run out, else TIMED_OUT if it had a timeout.
    fn wait_timed_out(&mut self, c: ClientId, now: Nanos, sink: &mut impl Sink) {
        if !self.client(c).waiting {
            return;
        }
        let reply: &[u8] = if self.deadline_soon(c, now) {
            b"DEADLINE_SOON\r\n"
        } else if self.client(c).timeout_at.is_some() {
            b"TIMED_OUT\r\n"
        } else {
            return;
        };
        self.stop_waiting(c);
        sink.out(c).extend_from_slice(reply);
        sink.woken(c);
    }

    fn reserve_job(&mut self, c: ClientId, id: u64, now: Nanos, sink: &mut impl Sink) {
        match self.ids.get(id) {
            Some(key) if self.jobs[key as usize].state != State::Reserved => {
                if self.jobs[key as usize].state != State::Ready {
                    // Out of buried or delayed: logged, so that a restart
                    // does not put the job back (beanstalkd does).
                    // beanstalkd never fails a reserve-job: without room
                    // the job is reserved unlogged, and a restart puts it
                    // back where it was, as beanstalkd always does.
                    let mut img = self.image(key);
                    img.counts.reserves += 1;
                    img.state = LoggedState::Reserved;
                    let _ = self.log(sink, |j| j.update(&img, now));
                }
                // Unlike reserve, only a successful reserve-job makes a worker.
                self.mark_worker(c);
                self.unlink(key);
                self.make_reserved(key, c, now);
                self.jobs[key as usize].count(Event::Reserve, &mut self.rare);
                self.reply_job(c, key, b"RESERVED", sink);
            }
            _ => sink.out(c).extend_from_slice(b"NOT_FOUND\r\n"),
        }
    }

    fn mark_worker(&mut self, c: ClientId) {
        let client = self.client_mut(c);
        if !client.worker {
            client.worker = true;
            self.totals.workers += 1;
        }
    }

    fn deadline_soon(&self, c: ClientId, now: Nanos) -> bool {
        match self.client(c).reserved.peek() {
            Some(((deadline, _), _)) => now + SAFETY_MARGIN >= deadline,
            None => false,
        }
    }

    /// The most urgent ready job in the unpaused tubes `c` watches: the one
    /// dispatch would give it.
    fn best_ready(&self, c: ClientId) -> Option<(TubeId, JobKey)> {
        let best = |t: TubeId| {
            let tube = &self.tubes.slab[t as usize];
            Some((tube.ready.peek().filter(|_| !tube.paused())?, t))
        };
        // Keys are unique, so the order of the tubes does not matter.
        (self.watched_with_ready(c))
            .filter_map(best)
            .min_by_key(|&((k, _), _)| k)
            .map(|((_, key), t)| (t, key))
    }

    /// Whether any watched tube has a ready job, paused or not.
    fn any_ready(&self, c: ClientId) -> bool {
        self.watched_with_ready(c).next().is_some()
    }

    /// The tubes `c` watches that have ready jobs (paused ones too), found
    /// by walking the shorter of its watch list and the registry's list of
    /// tubes with ready jobs: a connection may watch thousands of tubes of
    /// which few hold ready jobs.
    fn watched_with_ready(&self, c: ClientId) -> impl Iterator<Item = TubeId> + '_ {
        let watch = &self.client(c).watch;
        let with_ready = self.tubes.with_ready();
        let by_watch = watch.len() <= with_ready.len();
        let has_ready = |t: &TubeId| !self.tubes.slab[*t as usize].ready.is_empty();
        let watched = |t: &TubeId| watch.contains(*t);
        (by_watch.then(|| watch.tubes().filter(has_ready)))
            .into_iter()
            .flatten()
            .chain(
                (!by_watch)
                    .then(|| with_ready.iter().copied().filter(watched))
                    .into_iter()
                    .flatten(),
            )
    }

    fn start_waiting(&mut self, c: ClientId) {
        for w in 0..self.client(c).watch.len() {
            let t = self.client(c).watch.entry(w).0;
            let waiting = &mut self.tubes.slab[t as usize].waiting;
            waiting.push((c, w as u32));
            let pos = waiting.len() as u32 - 1;
            self.client_mut(c).watch.set_waiting_index(w, pos);
            self.refresh_candidate(t);
        }
        self.client_mut(c).waiting = true;
        self.totals.waiting += 1;
    }

    fn stop_waiting(&mut self, c: ClientId) {
        for w in 0..self.client(c).watch.len() {
            let (t, pos) = self.client(c).watch.entry(w);
            if pos != NIL {
                self.remove_waiter(t, pos as usize);
                self.refresh_candidate(t);
            }
        }
        let client = self.client_mut(c);
        client.waiting = false;
        client.timeout_at = None;
        if let Some(timer) = client.timer.take() {
            self.timers.cancel(timer, |(_, v)| *v == Timer::Waiter(c));
        }
        self.totals.waiting -= 1;
    }

    /// Removes the waiter at `pos` of tube `t`'s set by moving the last one
    /// into its place, as beanstalkd does; returns the client removed.
    fn remove_waiter(&mut self, t: TubeId, pos: usize) -> ClientId {
        let waiting = &mut self.tubes.slab[t as usize].waiting;
        let (c, w) = waiting.swap_remove(pos);
        let moved = waiting.get(pos).copied();
        self.client_mut(c).watch.set_waiting_index(w as usize, NIL);
        if let Some((c2, w2)) = moved {
            (self.client_mut(c2).watch).set_waiting_index(w2 as usize, pos as u32);
        }
        c
    }

    /// Hands ready jobs to waiting connections while any tube has both.
    fn dispatch(&mut self, now: Nanos, sink: &mut impl Sink) {
        while let Some((_, t)) = self.candidates.peek() {
            let (_, key) = self.tubes.slab[t as usize]
                .ready
                .peek()
                .expect("a candidate tube has a ready job");
            let tube = &mut self.tubes.slab[t as usize];
            let at = tube.cursor % tube.waiting.len();
            let c = self.remove_waiter(t, at);
            self.tubes.slab[t as usize].cursor = at + 1;
            self.stop_waiting(c);
            self.unlink(key);
            self.make_reserved(key, c, now);
            self.jobs[key as usize].count(Event::Reserve, &mut self.rare);
            self.reply_job(c, key, b"RESERVED", sink);
            sink.woken(c);
        }
    }

    /// Puts tube `t` in or out of the candidate heap, or re-keys it, after
    /// its ready jobs, waiters or pause changed.
    fn refresh_candidate(&mut self, t: TubeId) {
        let tube = &self.tubes.slab[t as usize];
        let want = if tube.waiting.is_empty() || tube.paused() {
            None
        } else {
            tube.ready.peek().map(|(k, _)| k)
        };
        let pos = tube.candidate;
        let mut at = CandidatePositions(&mut self.tubes.slab);
        if pos != NIL {
            if want.is_some() && self.candidates.key_at(pos) == want {
                return;
            }
            self.candidates.remove(pos, &mut at);
            at.0[t as usize].candidate = NIL;
        }
        if let Some(key) = want {
            self.candidates.push(key, t, &mut at);
        }
    }

    // ---- job state transitions ----

    /// Takes a job out of whatever holds it, leaving its state stale until
    /// one of the `make_*` functions or [`free`](Self::free) runs.
    fn unlink(&mut self, key: JobKey) {
        let job = &mut self.jobs[key as usize];
        let (t, pos, state) = (job.tube, job.pos, job.state);
        if let Some(timer) = job.timer.take() {
            let tag = match state {
                State::Delayed => Timer::Delay(key),
                _ => Timer::Ttr(key),
            };
            self.timers.cancel(timer, |(_, v)| *v == tag);
        }
        let urgent = job.pri < URGENT_PRI;
        let reserver = job.reserver;
        let mut at = JobPositions(&mut self.jobs);
        let tube = &mut self.tubes.slab[t as usize];
        match state {
            State::Ready => {
                tube.ready.remove(pos, &mut at);
                self.totals.ready -= 1;
                if urgent {
                    tube.urgent -= 1;
                    self.totals.urgent -= 1;
                }
            }
            State::Delayed => {
                tube.delayed.remove(pos, &mut at);
                self.totals.delayed -= 1;
            }
            State::Buried => {
                tube.buried.remove(pos, &mut at);
                self.totals.buried -= 1;
            }
            State::Reserved => {
                tube.reserved -= 1;
                self.totals.reserved -= 1;
                if let Some(Some(client)) = self.clients.get_mut(reserver as usize) {
                    client.reserved.remove(pos, &mut at);
                }
            }
        }
        if state == State::Ready {
            self.tubes.ready_changed(t);
            self.refresh_candidate(t);
        }
    }

    fn make_ready(&mut self, key: JobKey) {
        let job = &mut self.jobs[key as usize];
        job.state = State::Ready;
        let (t, sort) = (job.tube, (job.pri, job.id.into()));
        let tube = &mut self.tubes.slab[t as usize];
        tube.ready
            .push(sort, key, &mut JobPositions(&mut self.jobs));
        self.totals.ready += 1;
        if sort.0 < URGENT_PRI {
            tube.urgent += 1;
            self.totals.urgent += 1;
        }
        self.tubes.ready_changed(t);
        self.refresh_candidate(t);
    }

    fn make_delayed(&mut self, key: JobKey, until: Nanos) {
        let job = &mut self.jobs[key as usize];
        job.state = State::Delayed;
        let (t, id) = (job.tube, job.id);
        let timer = self.schedule(until, Timer::Delay(key));
        self.jobs[key as usize].timer = Some(timer);
        self.tubes.slab[t as usize].delayed.push(
            (until.into(), id.into()),
            key,
            &mut JobPositions(&mut self.jobs),
        );
        self.totals.delayed += 1;
    }

    /// Buries `key` at `rank` in its tube's bury order (see
    /// [`next_seq`](Self::next_seq)).
    fn make_buried(&mut self, key: JobKey, rank: u64) {
        let job = &mut self.jobs[key as usize];
        job.state = State::Buried;
        let t = job.tube;
        self.tubes.slab[t as usize].buried.push(
            rank.into(),
            key,
            &mut JobPositions(&mut self.jobs),
        );
        self.totals.buried += 1;
    }

    /// The next number in the one sequence that orders buries and
    /// reservations.
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn make_reserved(&mut self, key: JobKey, c: ClientId, now: Nanos) {
        self.hold(key, c, now, None);
    }

    /// Reserves `key` to `c` until its TTR runs out; `seq` is the place in
    /// `c`'s reservation order (a new one when None).
    fn hold(&mut self, key: JobKey, c: ClientId, now: Nanos, seq: Option<u64>) {
        let seq = seq.unwrap_or_else(|| self.next_seq());
        let job = &mut self.jobs[key as usize];
        job.state = State::Reserved;
        job.reserver = c;
        let (t, sort) = (job.tube, (now + secs(job.ttr), seq));
        let timer = self.schedule(sort.0, Timer::Ttr(key));
        self.jobs[key as usize].timer = Some(timer);
        self.tubes.slab[t as usize].reserved += 1;
        self.totals.reserved += 1;
        let client = self.clients[c as usize]
            .as_mut()
            .expect("reserving client exists");
        client
            .reserved
            .push(sort, key, &mut JobPositions(&mut self.jobs));
    }

    fn kick(&mut self, key: JobKey, now: Nanos, sink: &mut impl Sink) -> Result<(), JournalError> {
        let mut img = self.image(key);
        img.counts.kicks += 1;
        img.state = LoggedState::Ready;
        self.log(sink, |j| j.update(&img, now))?;
        self.unlink(key);
        self.jobs[key as usize].count(Event::Kick, &mut self.rare);
        self.make_ready(key);
        self.dispatch(now, sink);
        Ok(())
    }

    // ---- the journal ----

    /// When a delayed job becomes ready or a reserved job's TTR runs out;
    /// 0 in other states. The heap that holds the job keeps it in its key.
    pub(crate) fn deadline(&self, key: JobKey) -> Nanos {
        let job = &self.jobs[key as usize];
        let at = match job.state {
            State::Delayed => (self.tubes.slab[job.tube as usize].delayed)
                .key_at(job.pos)
                .map(|(until, _)| until.get()),
            State::Reserved => (self.clients.get(job.reserver as usize))
                .and_then(|c| c.as_ref()?.reserved.key_at(job.pos))
                .map(|(deadline, _)| deadline),
            State::Ready | State::Buried => None,
        };
        at.unwrap_or(0)
    }

    /// The job as it stands, for the journal.
    fn image(&self, key: JobKey) -> Image {
        let job = &self.jobs[key as usize];
        Image {
            key,
            id: job.id,
            pri: job.pri,
            delay: job.delay,
            ttr: job.ttr,
            created_at: job.created_at,
            deadline: self.deadline(key),
            rank: match job.state {
                State::Buried => self.tubes.slab[job.tube as usize]
                    .buried
                    .key_at(job.pos)
                    .map_or(0, Split64::get),
                _ => 0,
            },
            counts: job.counts(&self.rare),
            state: match job.state {
                State::Ready => LoggedState::Ready,
                State::Reserved => LoggedState::Reserved,
                State::Delayed => LoggedState::Delayed,
                State::Buried => LoggedState::Buried,
            },
            home: self.home(key),
            tube_len: self.tubes.slab[job.tube as usize].name.len() as u32,
            body_len: job.body.len() as u32 + 2,
        }
    }

    /// Runs `write` against the journal, if there is one.
    fn log(
        &mut self,
        sink: &mut impl Sink,
        write: impl FnOnce(&mut dyn Journal) -> Result<(), JournalError>,
    ) -> Result<(), JournalError> {
        match sink.journal() {
            Some(j) => write(j),
            None => Ok(()),
        }
    }

    /// A command that could not be logged: the error reply, nothing changed.
    fn refuse(&mut self, c: ClientId, e: JournalError, sink: &mut impl Sink) -> Outcome {
        sink.out(c).extend_from_slice(e.reply());
        Outcome::Done
    }

    /// Rewrites the jobs of a file compaction wants gone, so it can go.
    fn compact(&mut self, now: Nanos, sink: &mut impl Sink) {
        let Some(journal) = sink.journal() else {
            return;
        };
        let Some((file, keys)) = journal.wants_moved() else {
            return;
        };
        for key in keys {
            let Some(job) = self.jobs.get(key as usize) else {
                continue;
            };
            if self.home(key) != file {
                continue; // a stale entry: moved, or a new job in a reused slot
            }
            let img = self.image(key);
            let name = &self.tubes.slab[job.tube as usize].name;
            match journal.migrate(&img, name, self.bodies.get(job.body), now) {
                Ok(home) => self.set_home(key, home),
                Err(_) => return, // tried again after the next write
            }
        }
    }

    /// The binlog file holding the job's newest full record (0: none).
    pub(crate) fn home(&self, key: JobKey) -> FileNo {
        self.homes.get(key as usize).copied().unwrap_or(0)
    }

    fn set_home(&mut self, key: JobKey, file: FileNo) {
        let i = key as usize;
        if i >= self.homes.len() {
            if file == 0 {
                return;
            }
            self.homes.resize(i + 1, 0);
        }
        self.homes[i] = file;
    }

    /// Forgets an unlinked job, and its tube if that was the last use.
    fn free(&mut self, key: JobKey) {
        let mut job = self.jobs.remove(key as usize);
        job.forget_rare(&mut self.rare);
        self.set_home(key, 0);
        self.bodies.remove(job.body);
        self.ids.remove(job.id);
        self.release_tube(job.tube);
    }

    fn release_tube(&mut self, t: TubeId) {
        if let Some(tube) = self.tubes.release_if_unused(t)
            && let Some(timer) = tube.pause_timer
        {
            self.timers.cancel(timer, |(_, v)| *v == Timer::Unpause(t));
        }
    }

    // ---- lookups and replies ----

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

/// `OK <n>\r\n<data>\r\n`.
fn reply_ok(out: &mut Vec<u8>, data: &[u8]) {
    reply::with_number(out, b"OK", data.len() as u64);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Nanos = 1 << 60;

    /// An engine with client 0 connected.
    fn engine() -> Engine {
        let mut e = Engine::new(65535, ServerInfo::default(), NOW);
        e.connect(0);
        e
    }

    /// Client 0 puts a small job; returns its id.
    fn put(e: &mut Engine, out: &mut Out) -> u64 {
        let id = e.begin_put(0);
        e.finish_put(0, id, 0, 0, 10, b"job"[..].into(), NOW, NOW, out);
        id
    }

    #[test]
    fn memory_is_given_back_as_jobs_go() {
        let now = NOW;
        let mut e = engine();
        let mut out = Out::default();
        let ids: Vec<u64> = (0..20_000).map(|_| put(&mut e, &mut out)).collect();
        let full = e.jobs.capacity();
        assert!(!e.shrink_if_emptied(), "nothing to give back yet");
        for id in ids.iter().rev() {
            e.execute(0, &Command::Delete(*id), now, &mut out);
        }
        assert!(e.bodies.allocations() > 0, "one chunk kept at hand");
        assert!(e.shrink_if_emptied());
        assert_eq!(e.bodies.allocations(), 0);
        assert!(
            e.jobs.capacity() < full / 4,
            "{} of {full}",
            e.jobs.capacity()
        );
        assert!(e.ids.capacity() < 1000);
        assert!(!e.shrink_if_emptied(), "once per halving");
    }

    #[test]
    fn the_last_jobs_room_goes_with_them() {
        // The event loop asks after every turn; here, after every delete.
        let now = NOW;
        let mut e = engine();
        let mut out = Out::default();
        let ids: Vec<u64> = (0..20_000).map(|_| put(&mut e, &mut out)).collect();
        let mut shrinks = 0;
        for id in ids {
            e.execute(0, &Command::Delete(id), now, &mut out);
            shrinks += e.shrink_if_emptied() as u32;
        }
        // 20,000 halves to below the floor in three steps, then the rest.
        assert_eq!(shrinks, 4);
        assert_eq!(e.jobs.capacity(), 0);
        assert_eq!(e.ids.capacity(), 0);
        // Light traffic afterwards does not shrink on every emptying.
        for _ in 0..100 {
            let id = put(&mut e, &mut out);
            e.execute(0, &Command::Delete(id), now, &mut out);
            assert!(!e.shrink_if_emptied());
        }
    }

    #[test]
    fn a_long_watch_list_gets_the_best_job_it_watches() {
        let mut e = engine();
        e.connect(1);
        let mut out = Out::default();
        let names: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        for name in &names {
            e.execute(0, &Command::Watch(name), NOW, &mut out);
        }
        // Client 1 fills four tubes, fewer than client 0 watches, so the
        // reserve walks the tubes with ready jobs.
        let mut put_in = |e: &mut Engine, tube: &str, pri: u32| {
            e.execute(1, &Command::Use(tube), NOW, &mut out);
            let id = e.begin_put(1);
            e.finish_put(1, id, pri, 0, 10, b"job"[..].into(), NOW, NOW, &mut out);
            id
        };
        put_in(&mut e, "unwatched", 0);
        put_in(&mut e, "t7", 5);
        let best = put_in(&mut e, "t5", 10);
        let next = put_in(&mut e, "t3", 20);
        e.execute(
            0,
            &Command::PauseTube {
                name: "t7",
                delay: 60,
            },
            NOW,
            &mut out,
        );
        assert_eq!(e.tubes.with_ready().len(), 4);
        for want in [best, next] {
            let mut out = Out::default();
            e.execute(0, &Command::Reserve, NOW, &mut out);
            let reply = format!("RESERVED {want} 3\r\njob\r\n");
            assert_eq!(String::from_utf8_lossy(&out.0), reply);
        }
        assert_eq!(e.tubes.with_ready().len(), 2);
    }
}
