//! The event loop: one thread, one mio `Poll`, every socket non-blocking.
//!
//! Each turn: sleep in `poll` until the next socket event or the next
//! timer, whichever is first; run the engine's due timers; handle the
//! events; drive any connection that was answered out of turn (a woken
//! reserve). An idle server therefore sleeps until its next deadline and
//! uses no CPU.

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
use crate::job::{ClientId, Nanos};
use crate::journal::Journal;
use crate::listen::Listener;

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
/// The binlog's sync thread reports a finished fsync.
pub const WAKER: Token = Token(usize::MAX - 3);

/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;
/// A connection skipping a body reads this much, then pauses SKIP_PAUSE.
const SKIP_BURST: usize = 1 << 20;
const SKIP_PAUSE: Duration = Duration::from_millis(1);
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
    ) -> io::Result<Server> {
        match &mut listener {
            Listener::Tcp(l) => poll.registry().register(l, LISTENER, Interest::READABLE)?,
            Listener::Unix(l, _) => poll.registry().register(l, LISTENER, Interest::READABLE)?,
        }
        let mut signals = Signals::new([SIGUSR1, SIGTERM, SIGINT])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        Ok(Server {
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
        })
    }

    fn now(&self) -> Nanos {
        self.clock.now()
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
            self.drive_woken();
            if self.engine.shrink_if_emptied() || std::mem::take(&mut self.trim) {
                return_free_memory();
            }
        }
        self.shut_down().map_err(ServeError::SyncFailed)
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.woken.is_empty() || !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
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
        [timer, accept, sync, paced].into_iter().flatten().min()
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

    fn accept(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let accepted = match &self.listener {
                Listener::Tcp(l) => l.accept().map(|(s, a)| {
                    let _ = s.set_nodelay(true);
                    (Stream::Tcp(s), a.to_string())
                }),
                Listener::Unix(l, _) => l
                    .accept()
                    .map(|(s, _)| (Stream::Unix(s), "unix".to_string())),
            };
            if self.accept_failing && accepted.is_ok() {
                self.accept_failing = false;
                info!("accepting connections again");
            }
            match accepted {
                Ok((stream, peer)) if self.conns.len() >= self.ceiling => self.refuse(stream, peer),
                Ok((stream, peer)) => {
                    if self.refusing {
                        self.refusing = false;
                        info!("below the connection ceiling again: accepting connections");
                    }
                    self.add_conn(stream, peer)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // EMFILE and friends: keep serving, retry shortly.
                    if !self.accept_failing {
                        self.accept_failing = true;
                        warn!(
                            "cannot accept a connection: {e}; retrying every {} ms (raise the open-file limit, e.g. LimitNOFILE, if this persists)",
                            ACCEPT_BACKOFF.as_millis()
                        );
                    } else {
                        debug!("accept still failing: {e}");
                    }
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    /// At the ceiling: the client is told OUT_OF_MEMORY, as for any other
    /// lack of resources, and the connection is closed.
    fn refuse(&mut self, mut stream: Stream, peer: String) {
        if !self.refusing {
            self.refusing = true;
            warn!(
                "{} connections, the most the open-file limit allows (less {RESERVED_FDS} for the server): refusing new ones with OUT_OF_MEMORY until some close; raise the limit (LimitNOFILE, ulimit -n) for more",
                self.conns.len()
            );
        }
        debug!("refused connection from {peer}: at the connection ceiling");
        // A fresh socket's buffer has room for one short line. Input already
        // sent is read first, so that the close is a FIN, not a reset that
        // could discard the line.
        let mut input = [0u8; 4096];
        let _ = std::io::Read::read(&mut stream, &mut input);
        let _ = std::io::Write::write(&mut stream, b"OUT_OF_MEMORY\r\n");
    }

    fn add_conn(&mut self, mut stream: Stream, peer: String) {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) =
            self.poll
                .registry()
                .register(stream.source(), Token(key), Interest::READABLE)
        {
            warn!("cannot watch a new connection from {peer}: {e}; closing it");
            return;
        }
        entry.insert(Conn::new(stream));
        self.engine.connect(key as ClientId);
        info!("accepted connection {key} from {peer}");
    }

    /// Paced connections whose pause is over are driven again.
    fn resume_paced(&mut self) {
        let now = Instant::now();
        let (conns, woken) = (&mut self.conns, &mut self.woken);
        self.paced.retain(|&c| match conns.get_mut(c as usize) {
            Some(conn) if conn.paced_until.is_some_and(|t| t > now) => true,
            Some(conn) => {
                conn.paced = false;
                woken.push(c);
                false
            }
            None => false,
        });
    }

    fn drive_woken(&mut self) {
        while !self.woken.is_empty() {
            let woken = std::mem::take(&mut self.woken);
            for c in woken {
                self.drive(c);
            }
        }
    }

    /// Handles buffered commands, writes output, and reads more, until the
    /// connection has to wait for its socket or for a reserve.
    fn drive(&mut self, c: ClientId) {
        let key = c as usize;
        // Bytes just read into `scratch`, handled at the top of the loop.
        let mut fresh = 0;
        let mut skipped_one = false;
        for _ in 0..READS_PER_TURN {
            if !self.conns.contains(key) {
                return;
            }
            let flow = self.process(c, fresh);
            fresh = 0;
            let conn = &mut self.conns[key];
            // A connection that yields goes on next turn: its replies can
            // wait for a fuller write (a write per 64 replies wakes its
            // reader, and the machine, a hundred times as often).
            let write = flow != Flow::Yield || conn.pending_output() >= FLUSH_AT;
            if write && let Err(e) = conn.flush() {
                debug!("connection {c}: write failed: {e}");
                return self.close(c);
            }
            if conn.blocked != conn.armed {
                let interest = if conn.blocked {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                if let Err(e) =
                    self.poll
                        .registry()
                        .reregister(conn.stream.source(), Token(key), interest)
                {
                    debug!("connection {c}: cannot watch for writing: {e}");
                    return self.close(c);
                }
                conn.armed = conn.blocked;
            }
            if flow == Flow::Quit {
                conn.closing = true;
            }
            if conn.closing && conn.pending_output() == 0 {
                return self.close(c);
            }
            if conn.closing || conn.pending_output() >= OUTPUT_HIGH_WATER {
                // Resumed by the next writable event.
                return;
            }
            if matches!(flow, Flow::OutputFull | Flow::Yield) {
                // Its share of this turn is used (a megabyte of replies that
                // drained while flushing, or UNITS_PER_TURN commands): the
                // rest waits until the others have had theirs.
                self.again.push(c);
                return;
            }
            if conn.eof {
                if flow == Flow::Waiting {
                    // A hang-up answers a waiting reserve, as in beanstalkd.
                    self.engine.hang_up_waiter(
                        c,
                        &mut Outputs {
                            conns: &mut self.conns,
                            woken: &mut self.woken,
                            binlog: self.binlog.as_mut(),
                        },
                    );
                    continue;
                }
                if conn.pending_output() == 0 {
                    return self.close(c);
                }
                return;
            }
            if flow == Flow::Waiting && conn.framer.buffered() >= WAITING_INPUT_LIMIT {
                return;
            }
            if conn.drained {
                return;
            }
            if skipped_one {
                // One read a turn for a body being thrown away.
                self.again.push(c);
                return;
            }
            let skipping = conn.framer.skipping();
            if skipping && conn.paced_until.is_some_and(|t| Instant::now() < t) {
                if !std::mem::replace(&mut conn.paced, true) {
                    self.paced.push(c);
                }
                return;
            }
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => conn.eof = true,
                Ok(n) => {
                    fresh = n;
                    conn.drained = n < self.scratch.len() && !conn.hung_up;
                    if skipping {
                        skipped_one = true;
                        // A body that is thrown away is read at most a
                        // burst per millisecond (1 GiB/s): sent flat out,
                        // 4 GiB of it otherwise cost every other client.
                        conn.skipped += n;
                        if conn.skipped >= SKIP_BURST {
                            conn.skipped = 0;
                            conn.paced_until = Some(Instant::now() + SKIP_PAUSE);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("connection {c}: read failed: {e}");
                    return self.close(c);
                }
            }
        }
        // Out of turns with input possibly left: come back next turn, after
        // the others.
        if let Some(conn) = self.conns.get_mut(key) {
            conn.framer.push(&self.scratch[..fresh]);
        }
        self.again.push(c);
    }

    /// Runs the commands in what `c` has buffered and in the first `fresh`
    /// bytes of the read buffer.
    fn process(&mut self, c: ClientId, fresh: usize) -> Flow {
        let written = self.binlog.as_ref().map_or(0, |b| b.written());
        let out_before = self.conns[c as usize].out.len();
        let flow = self.run_commands(c, fresh);
        if self.hold_replies
            && let Some(b) = &self.binlog
            && b.written() > written
            && let Some(conn) = self.conns.get_mut(c as usize)
        {
            let from = conn.held.map_or(out_before, |(from, _)| from);
            conn.held = Some((from, b.written()));
        }
        flow
    }

    /// The sync thread has finished an fsync: release the replies that
    /// waited for it.
    fn synced(&mut self) {
        let Some(b) = &mut self.binlog else { return };
        let synced = match b.sync_completed() {
            Ok(synced) => synced,
            Err(failed) if self.hold_replies => {
                error!(
                    "binlog: {failed}; the replies that waited for it are not sent, as their changes may not be on disk: sprout stops (exit status {EXIT_SYNC_FAILED}) so that a restart recovers what the disk holds; check the disk (dmesg)"
                );
                self.failed = Some(failed);
                return;
            }
            Err(failed) => {
                let failures = b.sync_failures();
                self.rewrite_after(failed, failures);
                return;
            }
        };
        for (key, conn) in self.conns.iter_mut() {
            if conn.held.is_some_and(|(_, seq)| seq <= synced) {
                conn.held = None;
                self.woken.push(key as ClientId);
            }
        }
    }

    /// -f MS: the replies went out before the fsync, so what they promised
    /// is written again, fresh: every live job into a new file, synced
    /// like any other write. Old files go once that is durable.
    fn rewrite_after(&mut self, failed: SyncFailed, failures: u64) {
        let Some(b) = &mut self.binlog else { return };
        let fresh = b.start_over();
        let now = self.now();
        let unwritten = self.engine.relog_all(
            now,
            &mut Outputs {
                conns: &mut self.conns,
                woken: &mut self.woken,
                binlog: self.binlog.as_mut(),
            },
        );
        if let Some(b) = &mut self.binlog {
            b.rewritten();
        }
        if fresh.is_err() || unwritten > 0 {
            error!(
                "binlog: {failed} ({failures} so far), and {unwritten} of the live jobs could not be written again (no room): they may be lost in a power cut; free disk space and check the disk (dmesg)"
            );
        } else {
            error!(
                "binlog: {failed} ({failures} so far); every live job was written again to a fresh file, to be synced in its place; check the disk (dmesg)"
            );
        }
    }

    fn run_commands(&mut self, c: ClientId, fresh: usize) -> Flow {
        let now = self.now();
        let mut framer = std::mem::take(&mut self.conns[c as usize].framer);
        let scratch = std::mem::take(&mut self.scratch);
        let flow = framer.process(
            &scratch[..fresh],
            c,
            &mut self.engine,
            now,
            &mut Outputs {
                conns: &mut self.conns,
                woken: &mut self.woken,
                binlog: self.binlog.as_mut(),
            },
        );
        self.scratch = scratch;
        self.conns[c as usize].framer = framer;
        flow
    }

    fn close(&mut self, c: ClientId) {
        let Some(mut conn) = self.conns.try_remove(c as usize) else {
            return;
        };
        let _ = self.poll.registry().deregister(conn.stream.source());
        // A client that never read may leave a megabyte of replies behind.
        self.trim |= conn.out.capacity() + conn.framer.capacity() >= BIG_BUFFERS;
        // The engine may hand this client's jobs to others; their replies
        // need a slab that no longer holds this connection.
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
        info!("closed connection {c}");
    }

    fn shut_down(&mut self) -> Result<(), SyncFailed> {
        // Everything written becomes durable before the last replies go;
        // if it cannot, the replies still held are not sent.
        let durable = self.binlog.as_mut().map_or(Ok(()), Binlog::close);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(conn) = self.conns.get_mut(key) {
                if durable.is_ok() {
                    conn.held = None;
                }
                let _ = conn.flush();
            }
            self.close(key as ClientId);
        }
        if let Listener::Unix(_, Some(path)) = &self.listener
            && let Err(e) = std::fs::remove_file(path)
        {
            error!("could not remove unix socket {}: {e}", path.display());
        }
        info!("stopped");
        durable
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
