//! The event loop: one thread, one mio `Poll`, every socket non-blocking.
//!
//! Each turn: sleep in `poll` until the next socket event or the next
//! timer, whichever is first; run the engine's due timers; handle the
//! events; drive any connection that was answered out of turn (a woken
//! reserve). An idle server therefore sleeps until its next deadline and
//! uses no CPU.
//!
//! This file holds the server and its turn; `accept.rs` takes new queue
//! connections, `drive.rs` runs one connection's commands and I/O, and
//! `durability.rs` answers the sync thread and stops cleanly.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::binlog::Binlog;
use crate::binlog::sync::SyncFailed;
use crate::clock::Clock;
use crate::conn::{Conn, Flow, OUTPUT_HIGH_WATER, Stream};
use crate::engine::{Engine, Sink};
use crate::histogram::Histogram;
use crate::job::{ClientId, Nanos};
use crate::journal::Journal;
use crate::listen::Listener;

mod accept;
mod drive;
mod durability;
mod http;
mod replication;

use http::{HTTP_BASE, HTTP_LISTENER, HttpSide};
pub use replication::UpstreamFigures;
use replication::{DownConn, REPL_BASE, UPSTREAM, Upstream};

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
/// The binlog's sync thread reports a finished fsync.
pub const WAKER: Token = Token(usize::MAX - 3);

/// With --sync-replicas, how often held replies are checked against
/// --sync-timeout.
const HOLD_CHECK: Duration = Duration::from_millis(50);
/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;
/// A connection skipping a body reads this much, then pauses SKIP_PAUSE:
/// at most 256 MiB/s of a body nobody will keep (a 4 GiB put is refused
/// in 16 s), so that its sender's bursts do not cost the other clients.
const SKIP_BURST: usize = 1 << 20;
/// A skipping connection's read size, one read a turn: small, as
/// beanstalkd's 1 KiB bit bucket, so the others' turns come often.
const SKIP_READ: usize = 4096;
const SKIP_PAUSE: Duration = Duration::from_millis(4);
/// A connection that yields writes its replies once this much waits.
const FLUSH_AT: usize = 64 * 1024;
/// Buffers this large, freed, are worth handing back to the system.
const BIG_BUFFERS: usize = 1 << 20;
/// Reads per connection per event before others get a turn.
const READS_PER_TURN: usize = 16;
/// How long to stop accepting after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Descriptors kept back from connections: stdio, the poll, the listener,
/// the signal pipe and waker, and the binlog's lock, current, spare and
/// retiring files.
pub const RESERVED_FDS: u64 = 16;

/// How many connections fit in the open-file limit, less what the server
/// itself needs. At the ceiling a new connection is refused at once, so a
/// client hears no, instead of waiting in the backlog for a descriptor.
pub fn connection_ceiling() -> usize {
    // SAFETY: getrlimit only writes into the struct we pass.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    };
    soft.saturating_sub(RESERVED_FDS)
        .clamp(1, usize::MAX as u64) as usize
}
/// Stop reading from a connection blocked in reserve once this much input
/// is buffered behind the reserve.
const WAITING_INPUT_LIMIT: usize = 64 * 1024;

/// The exit status after a failed fsync under -f0 (sysexits' EX_TEMPFAIL):
/// the server stops rather than acknowledge what may not be on disk.
pub const EXIT_SYNC_FAILED: i32 = 75;

/// Why the loop stopped serving.
#[derive(Debug)]
pub enum ServeError {
    /// `poll` itself failed.
    Poll(io::Error),
    /// An fsync failed while replies waited for it (-f0), or at the final
    /// sync of a clean stop: the replies were not sent.
    SyncFailed(SyncFailed),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Poll(e) => write!(f, "poll failed: {e}"),
            ServeError::SyncFailed(e) => write!(f, "binlog {e}"),
        }
    }
}

/// Replies go straight into the connections' output buffers.
struct Outputs<'a> {
    conns: &'a mut Slab<Conn>,
    woken: &'a mut Vec<ClientId>,
    binlog: Option<&'a mut Binlog>,
}

impl Sink for Outputs<'_> {
    fn out(&mut self, c: ClientId) -> &mut Vec<u8> {
        &mut self.conns[c as usize].out
    }

    fn woken(&mut self, c: ClientId) {
        self.woken.push(c);
    }

    fn journal(&mut self) -> Option<&mut dyn Journal> {
        self.binlog.as_deref_mut().map(|b| b as &mut dyn Journal)
    }
}

pub struct Server {
    poll: Poll,
    listener: Listener,
    signals: Signals,
    conns: Slab<Conn>,
    engine: Engine,
    clock: Clock,
    scratch: Vec<u8>,
    /// Connections that received output out of turn and must be driven.
    woken: Vec<ClientId>,
    /// Connections skipping a body that wait for their next read.
    paced: Vec<ClientId>,
    /// A connection that held a megabyte or more of buffers closed this
    /// turn: hand free pages back at its end.
    trim: bool,
    /// Connections that used up their reads with input left: driven again
    /// next turn, after that turn's events, so that a client sending flat
    /// out gets its share and no more.
    again: Vec<ClientId>,
    accept_paused_until: Option<Instant>,
    /// Set from the first failed accept until one succeeds again, so an
    /// operator gets one warning per episode, not ten a second.
    accept_failing: bool,
    /// Most connections served at once ([`connection_ceiling`]).
    ceiling: usize,
    /// Set while connections are being refused at the ceiling (one warning
    /// per episode).
    refusing: bool,
    stopping: bool,
    binlog: Option<Binlog>,
    /// With -f0, replies to commands that wrote to the binlog wait for
    /// the fsync; then each connection's output is held from an offset.
    hold_replies: bool,
    /// An fsync failed while replies waited for it: stop, sending none.
    failed: Option<SyncFailed>,
    /// The HTTP port, with `--http`.
    http: Option<HttpSide>,
    /// How long each turn took, from waking to the next sleep.
    turns: Histogram,
    /// Replicas following this server.
    downstreams: Slab<DownConn>,
    /// With `--replica-of`: the primary this server follows.
    upstream: Option<Upstream>,
    /// `--sync-replicas N`: replies to changes wait until N replicas have
    /// applied them, at most `sync_timeout`.
    sync_replicas: usize,
    sync_timeout: Duration,
    /// When held replies are next checked against `sync_timeout` (also
    /// with no replica at all, when no ACK comes to trigger it).
    next_hold_check: Instant,
}

impl Server {
    /// `clock` is the one the engine's times were read from.
    pub fn new(
        mut listener: Listener,
        engine: Engine,
        clock: Clock,
        poll: Poll,
        binlog: Option<Binlog>,
        hold_replies: bool,
        http: Option<mio::net::TcpListener>,
    ) -> io::Result<Server> {
        match &mut listener {
            Listener::Tcp(l) => poll.registry().register(l, LISTENER, Interest::READABLE)?,
            Listener::Unix(l, _) => poll.registry().register(l, LISTENER, Interest::READABLE)?,
        }
        let mut signals = Signals::new([SIGUSR1, SIGTERM, SIGINT])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let mut server = Server {
            poll,
            listener,
            signals,
            conns: Slab::new(),
            engine,
            clock,
            scratch: vec![0; READ_CHUNK],
            woken: Vec::new(),
            again: Vec::new(),
            paced: Vec::new(),
            trim: false,
            accept_paused_until: None,
            accept_failing: false,
            ceiling: connection_ceiling(),
            refusing: false,
            stopping: false,
            binlog,
            hold_replies,
            failed: None,
            http: http.map(HttpSide::new),
            turns: Histogram::default(),
            downstreams: Slab::new(),
            upstream: None,
            sync_replicas: 0,
            sync_timeout: Duration::from_secs(5),
            next_hold_check: Instant::now(),
        };
        server.register_http()?;
        Ok(server)
    }

    fn now(&self) -> Nanos {
        self.clock.now()
    }

    /// `--sync-replicas N --sync-timeout`: a reply to a change is sent once
    /// N replicas have applied it; with fewer than N in step, changes are
    /// refused.
    pub fn sync_replicas(&mut self, n: usize, timeout: Duration) {
        self.sync_replicas = n;
        self.sync_timeout = timeout;
        self.engine.set_writes_refused(n > 0);
    }

    /// Follows `primary` (HOST:PORT) as a replica: the engine refuses
    /// changes of its own from now on.
    pub fn follow(&mut self, primary: String) {
        self.engine.set_refuses_changes(true);
        self.upstream = Some(Upstream::new(primary));
    }

    /// `--standby`: takes no changes and follows no one until a role
    /// command says which.
    pub fn standby(&mut self) {
        self.engine.set_standby();
    }

    /// Serves until SIGTERM or SIGINT, or until an fsync that replies wait
    /// for fails.
    pub fn run(&mut self) -> Result<(), ServeError> {
        let mut events = Events::with_capacity(1024);
        while !self.stopping {
            if let Some(b) = &mut self.binlog {
                b.start_sync(Instant::now());
            }
            if let Some(until) = self.accept_paused_until
                && Instant::now() >= until
            {
                self.accept_paused_until = None;
                self.accept();
            }
            let timeout = self.poll_timeout();
            let again = std::mem::take(&mut self.again);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    self.again = again;
                    continue;
                }
                Err(e) => return Err(ServeError::Poll(e)),
            }
            let woke = Instant::now();
            // Timers first: a command that arrives after a deadline must
            // find that deadline's work done (a job whose TTR ran out is
            // ready again), however late the loop woke.
            let now = self.now();
            self.engine.tick(
                now,
                &mut Outputs {
                    conns: &mut self.conns,
                    woken: &mut self.woken,
                    binlog: self.binlog.as_mut(),
                },
            );
            self.drive_woken();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    UPSTREAM => self.drive_upstream(),
                    Token(key) if (REPL_BASE..HTTP_BASE).contains(&key) => {
                        self.drive_downstream(key - REPL_BASE)
                    }
                    HTTP_LISTENER => self.accept_http(),
                    Token(key) if (HTTP_BASE..HTTP_LISTENER.0 - 1).contains(&key) => {
                        self.drive_http(key - HTTP_BASE)
                    }
                    SIGNALS => self.signals(),
                    WAKER => {
                        self.synced();
                        if let Some(failed) = self.failed.take() {
                            // No more commands, and no held reply, goes out.
                            return Err(ServeError::SyncFailed(failed));
                        }
                    }
                    Token(key) => {
                        if let Some(conn) = self.conns.get_mut(key) {
                            conn.readable(event.is_read_closed() || event.is_error());
                        }
                        self.drive(key as ClientId)
                    }
                }
            }
            self.woken.extend(again);
            self.resume_paced();
            self.resume_http();
            self.drive_woken();
            self.feed_downstreams();
            if self.sync_replicas > 0 && Instant::now() >= self.next_hold_check {
                self.release_held();
                self.next_hold_check = Instant::now() + HOLD_CHECK;
            }
            self.tend_upstream();
            self.update_replication_view();
            if let Some(h) = &mut self.http {
                h.rates.sample(now, self.engine.flow_counts());
                if h.tube_rates.due(now) {
                    h.tube_rates.snapshot(now, self.engine.tube_flow());
                }
                if h.history.due(now) {
                    let e = &self.engine;
                    let (server, all) = (e.levels(), e.each_tube_levels());
                    h.history.sample(now, server, |t| e.tube_levels(t), all);
                }
                self.expire_http();
            }
            if self.engine.shrink_if_emptied() || std::mem::take(&mut self.trim) {
                return_free_memory();
            }
            self.turns.record(woke.elapsed());
        }
        self.shut_down().map_err(ServeError::SyncFailed)
    }

    fn poll_timeout(&self) -> Option<Duration> {
        let http_again = self.http.as_ref().is_some_and(|h| !h.again.is_empty());
        if !self.woken.is_empty() || !self.again.is_empty() || http_again || self.snapshotting() {
            return Some(Duration::ZERO);
        }
        // Heartbeats to replicas each second; the next try to reach the
        // primary.
        let replication = [
            (!self.downstreams.is_empty()).then_some(Duration::from_secs(1)),
            (self.sync_replicas > 0).then_some(HOLD_CHECK),
            (self.upstream.as_ref().and_then(|u| u.retry_due()))
                .map(|at| at.saturating_duration_since(Instant::now())),
        ];
        let now = self.now();
        let timer = self
            .engine
            .next_deadline()
            .map(|at| Duration::from_nanos(at.saturating_sub(now)));
        let accept = self
            .accept_paused_until
            .map(|until| until.saturating_duration_since(Instant::now()));
        let sync = self
            .binlog
            .as_ref()
            .and_then(|b| b.sync_due())
            .map(|due| due.saturating_duration_since(Instant::now()));
        let paced = (self.paced.iter())
            .filter_map(|&c| self.conns.get(c as usize)?.paced_until)
            .min()
            .map(|t| t.saturating_duration_since(Instant::now()));
        // The HTTP side's time limits, and a rate sample a second.
        let http = self.http.as_ref().map(|h| {
            let limit = h.next_deadline().map_or(Duration::MAX, |at| {
                Duration::from_nanos(at.saturating_sub(now))
            });
            limit.min(Duration::from_secs(1))
        });
        [timer, accept, sync, paced, http]
            .into_iter()
            .chain(replication)
            .flatten()
            .min()
    }

    fn signals(&mut self) {
        for sig in self.signals.pending() {
            match sig {
                SIGUSR1 => {
                    info!("SIGUSR1: entering drain mode; new jobs are refused from now on");
                    self.engine.set_draining();
                }
                _ => {
                    info!("signal {sig}: shutting down");
                    self.stopping = true;
                }
            }
        }
    }
}

/// Hands the allocator's free pages back to the system, so that RSS falls
/// after many jobs are deleted (glibc keeps freed memory otherwise).
fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
