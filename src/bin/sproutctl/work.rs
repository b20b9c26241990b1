//! `work`: a shell command as a worker, gearman's `-w -f name -- cmd`.
//!
//! `--concurrency N` slots, each a thread with its own connection to
//! every server (a reservation belongs to the connection that made it).
//! A slot reserves from the servers in turn, runs the command once per
//! job with the body on stdin, touches the job while it runs (the TTR is
//! a lease: a worker that dies gives its job back when the TTR runs out),
//! and then deletes it (exit 0), releases it with a growing delay, or
//! buries it after `--attempts` tries, counted from the job's own
//! `reserves` so that they survive worker restarts. SIGTERM or SIGINT:
//! no more reserves; running commands get `--grace` seconds to finish,
//! then are stopped and their jobs released; exit 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argh::FromArgs;
use sprout::protocol::valid_tube_name;

use crate::call;
use crate::client::{Conn, Error, Job, Reserved, stat};
use crate::{Ctx, exit};

#[derive(FromArgs)]
#[argh(subcommand, name = "work")]
/// Run a command once per job: exit 0 deletes the job, a failure retries
/// it later, and buries it after --attempts tries.
pub struct WorkArgs {
    /// tube to take jobs from (repeat for several; default "default")
    #[argh(option)]
    tube: Vec<String>,
    /// commands run at once (default 1)
    #[argh(option, default = "1")]
    concurrency: usize,
    /// tries before a job is buried (default 3)
    #[argh(option, default = "3")]
    attempts: u64,
    /// seconds a command may run before it is stopped (default: no limit)
    #[argh(option)]
    timeout: Option<u64>,
    /// stop after this many jobs (default: run until stopped)
    #[argh(option)]
    count: Option<u64>,
    /// seconds of delay before the first retry, doubled for each next
    /// (default 1, at most an hour)
    #[argh(option, default = "1")]
    backoff: u64,
    /// seconds running commands get to finish on SIGTERM, and a timed-out
    /// one between SIGTERM and SIGKILL (default 10)
    #[argh(option, default = "10")]
    grace: u64,
    /// the command and its arguments, after --
    #[argh(positional, greedy)]
    command: Vec<String>,
}

/// What the slots share.
struct Shared {
    servers: Vec<String>,
    tubes: Vec<String>,
    args: WorkArgs,
    /// SIGTERM or SIGINT came.
    stop: Arc<AtomicBool>,
    /// Jobs taken, against --count.
    taken: AtomicU64,
}

pub fn run(ctx: &Ctx, a: WorkArgs) -> i32 {
    if a.command.is_empty() {
        return exit::usage("work wants a command: sproutctl work --tube T -- CMD ARGS...");
    }
    let tubes = if a.tube.is_empty() {
        vec!["default".to_string()]
    } else {
        a.tube.clone()
    };
    if let Some(t) = tubes.iter().find(|t| !valid_tube_name(t.as_bytes())) {
        return exit::usage(&format!("{t:?} is not a tube name"));
    }
    if a.concurrency == 0 || a.attempts == 0 {
        return exit::usage("--concurrency and --attempts are at least 1");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("sproutctl: cannot handle signal {sig}: {e}");
            return exit::FAILED;
        }
    }
    // Fail early, and clearly, when no server can be reached at all.
    let reachable = ctx.servers.iter().any(|s| Conn::connect(s).is_ok());
    if !reachable {
        let e = Conn::connect(&ctx.servers[0]).err();
        return e.map_or(exit::UNAVAILABLE, |e| exit::report(&e));
    }
    let shared = Arc::new(Shared {
        servers: ctx.servers.clone(),
        tubes,
        args: a,
        stop,
        taken: AtomicU64::new(0),
    });
    let slots: Vec<_> = (0..shared.args.concurrency)
        .map(|i| {
            let s = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("slot-{i}"))
                .spawn(move || Slot::new(s).run())
        })
        .collect();
    for slot in slots.into_iter().flatten() {
        let _ = slot.join();
    }
    exit::OK
}

/// One server as a slot sees it: its connection, made when needed, and
/// when to try again after it went away.
struct Link {
    addr: String,
    conn: Option<Conn>,
    retry_at: Instant,
    backoff: Duration,
    /// Its -z, for call replies.
    max_job_size: usize,
}

struct Slot {
    s: Arc<Shared>,
    links: Vec<Link>,
    turn: usize,
}

/// How a command's run ended.
enum Ran {
    Exited(i32),
    Signalled(i32),
    TimedOut,
    /// Stopped at shutdown, after the grace.
    Stopped,
    /// The connection that holds the job went away.
    Lost,
}

impl Slot {
    fn new(s: Arc<Shared>) -> Slot {
        let links = (s.servers.iter())
            .map(|a| Link {
                addr: a.clone(),
                conn: None,
                retry_at: Instant::now(),
                backoff: Duration::from_secs(1),
                max_job_size: 65535,
            })
            .collect();
        Slot { s, links, turn: 0 }
    }

    fn stopping(&self) -> bool {
        self.s.stop.load(Ordering::Relaxed)
    }

    fn run(mut self) {
        while !self.stopping() {
            // Claim a job of --count before reserving it.
            let taken = self.s.taken.fetch_add(1, Ordering::SeqCst);
            if self.s.args.count.is_some_and(|n| taken >= n) {
                self.s.taken.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            match self.reserve() {
                Some((i, job)) => self.handle(i, job),
                None => {
                    self.s.taken.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }

    /// The connection to server `i`, made (watching the tubes) if need be;
    /// None while it is away.
    fn conn(&mut self, i: usize) -> Option<&mut Conn> {
        let tubes = self.s.tubes.clone();
        let l = &mut self.links[i];
        if l.conn.is_none() {
            if Instant::now() < l.retry_at {
                return None;
            }
            let made = Conn::connect(&l.addr).and_then(|mut c| {
                for t in &tubes {
                    c.watch(t)?;
                }
                if !tubes.iter().any(|t| t == "default") {
                    c.ignore("default")?;
                }
                let size = c.stats()?;
                Ok((c, stat(&size, "max-job-size").and_then(|v| v.parse().ok())))
            });
            match made {
                Ok((c, size)) => {
                    if l.backoff > Duration::from_secs(1) {
                        eprintln!("sproutctl: {} is back", l.addr);
                    }
                    l.conn = Some(c);
                    l.backoff = Duration::from_secs(1);
                    l.max_job_size = size.unwrap_or(65535);
                }
                Err(e) => {
                    if l.backoff == Duration::from_secs(1) {
                        eprintln!("sproutctl: {e}; retrying with backoff");
                    }
                    l.retry_at = Instant::now() + l.backoff;
                    l.backoff = (l.backoff * 2).min(Duration::from_secs(30));
                    return None;
                }
            }
        }
        l.conn.as_mut()
    }

    fn lose(&mut self, i: usize, e: &Error) {
        eprintln!("sproutctl: {e}; reconnecting");
        let l = &mut self.links[i];
        l.conn = None;
        l.retry_at = Instant::now() + l.backoff;
        l.backoff = (l.backoff * 2).min(Duration::from_secs(30));
    }

    /// A job from one of the servers, or None after a second without.
    /// With several servers each is asked without waiting first, so that
    /// a job on one is never kept waiting by a wait on another; then one,
    /// in turn, is waited on for a second.
    fn reserve(&mut self) -> Option<(usize, Job)> {
        let n = self.links.len();
        let mut order: Vec<usize> = (0..n).map(|k| (self.turn + k) % n).collect();
        self.turn = (self.turn + 1) % n;
        if n > 1 {
            for &i in &order {
                if self.stopping() {
                    return None;
                }
                let Some(c) = self.conn(i) else { continue };
                match c.reserve(0) {
                    Ok(Reserved::Job(job)) => return Some((i, job)),
                    Ok(_) => {}
                    Err(e) => self.lose(i, &e),
                }
            }
        }
        order.retain(|&i| self.links[i].conn.is_some() || Instant::now() >= self.links[i].retry_at);
        let Some(&i) = order.first() else {
            // Every server is away: wait for the first retry.
            std::thread::sleep(Duration::from_millis(200));
            return None;
        };
        if self.stopping() {
            return None;
        }
        let c = self.conn(i)?;
        match c.reserve(1) {
            Ok(Reserved::Job(job)) => Some((i, job)),
            Ok(_) => None,
            Err(e) => {
                self.lose(i, &e);
                None
            }
        }
    }

    fn handle(&mut self, i: usize, job: Job) {
        let id = job.id;
        let Some(c) = self.conn(i) else { return };
        let stats = match c.stats_job(id) {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => return self.lose(i, &e),
        };
        let num = |k: &str| stat(&stats, k).and_then(|v| v.parse::<u64>().ok());
        let attempt = num("reserves").unwrap_or(1);
        let ttr = num("ttr").unwrap_or(60);
        let pri = num("pri").unwrap_or(1024) as u32;
        let tube = stat(&stats, "tube").unwrap_or("").to_string();
        let (reply_tube, body) = match call::parse_request(&job.body) {
            Some((t, b)) => (Some(t.to_string()), b.to_vec()),
            None => (None, job.body),
        };
        let (ran, stdout) =
            self.run_command(i, id, &tube, attempt, ttr, &body, reply_tube.is_some());
        let status = match ran {
            Ran::Exited(code) => code,
            Ran::Signalled(sig) => 128 + sig,
            Ran::TimedOut => 124,
            Ran::Stopped | Ran::Lost => -1,
        };
        let attempts = self.s.args.attempts;
        let base = self.s.args.backoff;
        let max = self.links[i].max_job_size;
        let Some(c) = self.conn(i) else { return };
        let done = (|| {
            match ran {
                Ran::Lost => return Ok(()),
                Ran::Stopped => {
                    eprintln!("[job {id}] stopped at shutdown; released");
                    c.release(id, pri, 0)?;
                    return Ok(());
                }
                _ => {}
            }
            let last = attempt >= attempts;
            if let Some(t) = &reply_tube
                && (status == 0 || last)
            {
                // The result first: a worker that dies now runs the job
                // again rather than losing its answer.
                c.use_tube(t)?;
                c.put(0, 0, 60, &call::reply(status, &stdout, max))?;
            }
            if status == 0 {
                c.delete(id)?;
            } else if last {
                eprintln!(
                    "[job {id}] {}; attempt {attempt} of {attempts}: buried",
                    describe(&ran)
                );
                c.bury(id, pri)?;
            } else {
                let delay = backoff(base, attempt);
                eprintln!(
                    "[job {id}] {}; attempt {attempt} of {attempts}: released, again in {delay} s",
                    describe(&ran)
                );
                c.release(id, pri, delay)?;
            }
            Ok::<_, Error>(())
        })();
        if let Err(e) = done {
            self.lose(i, &e);
        }
    }

    /// Runs the command on one job, touching it while it runs. Returns how
    /// it ended and, for a call, its stdout.
    #[allow(clippy::too_many_arguments)]
    fn run_command(
        &mut self,
        i: usize,
        id: u64,
        tube: &str,
        attempt: u64,
        ttr: u64,
        body: &[u8],
        keep_stdout: bool,
    ) -> (Ran, Vec<u8>) {
        use std::os::unix::process::CommandExt;
        let a = &self.s.args;
        let mut cmd = Command::new(&a.command[0]);
        // Its own process group: a Ctrl-C meant for the worker (which lets
        // running commands finish) does not reach it, and a stop reaches
        // everything it started. It dies with the worker.
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let spawned = cmd
            .args(&a.command[1..])
            .env("SPROUT_JOB_ID", id.to_string())
            .env("SPROUT_TUBE", tube)
            .env("SPROUT_ATTEMPT", attempt.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                eprintln!("[job {id}] cannot run {:?}: {e}", a.command[0]);
                return (Ran::Exited(127), Vec::new());
            }
        };
        // A body that fits the pipe's atomic size goes in at once; a larger
        // one is fed by a thread, since a command may read it slowly (or
        // stop reading early, which is its own business).
        let feeder = child.stdin.take().and_then(|mut stdin| {
            if body.len() <= libc::PIPE_BUF {
                let _ = stdin.write_all(body);
                return None;
            }
            let body = body.to_vec();
            Some(std::thread::spawn(move || {
                let _ = stdin.write_all(&body);
            }))
        });
        let err_lines = child.stderr.take().map(|e| prefix_lines(id, e));
        let (out_lines, kept) = match child.stdout.take() {
            Some(o) if keep_stdout => (
                None,
                Some(std::thread::spawn(move || {
                    let mut v = Vec::new();
                    let _ = BufReader::new(o).read_to_end(&mut v);
                    v
                })),
            ),
            Some(o) => (Some(prefix_lines(id, o)), None),
            None => (None, None),
        };
        let ran = self.watch(i, id, ttr, &mut child);
        for t in [err_lines, out_lines, feeder].into_iter().flatten() {
            let _ = t.join();
        }
        let stdout = kept.and_then(|t| t.join().ok()).unwrap_or_default();
        (ran, stdout)
    }

    /// Waits for the child: touches the job every half TTR, stops it at
    /// --timeout or after the grace of a shutdown.
    fn watch(&mut self, i: usize, id: u64, ttr: u64, child: &mut Child) -> Ran {
        let started = Instant::now();
        let touch_every = Duration::from_millis((ttr * 1000 / 2).max(200));
        let mut touched = Instant::now();
        let timeout = self.s.args.timeout.map(Duration::from_secs);
        let grace = Duration::from_secs(self.s.args.grace);
        let mut stopping_since: Option<Instant> = None;
        let mut term_sent: Option<Instant> = None;
        let mut timed_out = false;
        let mut lost = false;
        let exited = ExitWatch::new(child.id());
        loop {
            match child.try_wait() {
                Ok(Some(st)) => {
                    use std::os::unix::process::ExitStatusExt;
                    return if lost {
                        Ran::Lost
                    } else if timed_out {
                        Ran::TimedOut
                    } else if stopping_since.is_some() && term_sent.is_some() {
                        Ran::Stopped
                    } else if let Some(code) = st.code() {
                        Ran::Exited(code)
                    } else {
                        Ran::Signalled(st.signal().unwrap_or(0))
                    };
                }
                Ok(None) => {}
                Err(_) => return Ran::Lost,
            }
            let now = Instant::now();
            if !lost && now.duration_since(touched) >= touch_every {
                touched = now;
                match self.conn(i).map(|c| c.touch(id)) {
                    Some(Ok(true)) => {}
                    Some(Ok(false)) => {
                        eprintln!(
                            "[job {id}] no longer ours (its TTR ran out?); its result will be dropped"
                        );
                        lost = true;
                    }
                    Some(Err(e)) => {
                        self.lose(i, &e);
                        lost = true;
                    }
                    None => lost = true,
                }
            }
            if stopping_since.is_none() && self.stopping() {
                stopping_since = Some(now);
            }
            let over = timeout.is_some_and(|t| now.duration_since(started) >= t);
            let shutdown_over = stopping_since.is_some_and(|s| now.duration_since(s) >= grace);
            if term_sent.is_none() && (over || shutdown_over) {
                timed_out = over && !shutdown_over;
                if timed_out {
                    eprintln!("[job {id}] ran past --timeout; stopping it");
                }
                signal(child, libc::SIGTERM);
                term_sent = Some(now);
            }
            if term_sent.is_some_and(|t| now.duration_since(t) >= grace) {
                signal(child, libc::SIGKILL);
            }
            // Until the command exits, the next touch, or a look at the
            // stop flag and the time limits.
            let next_touch = touch_every.saturating_sub(now.duration_since(touched));
            exited.wait(next_touch.min(Duration::from_millis(100)));
        }
    }
}

/// Waits for a process to exit without polling it: a pidfd becomes
/// readable when it does (Linux 5.3 on). Without one, short sleeps.
struct ExitWatch(i32);

impl ExitWatch {
    fn new(pid: u32) -> ExitWatch {
        // SAFETY: pidfd_open takes a pid and flags; -1 on failure.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        ExitWatch(fd as i32)
    }

    fn wait(&self, at_most: Duration) {
        if self.0 < 0 {
            return std::thread::sleep(at_most.min(Duration::from_millis(20)));
        }
        let mut p = libc::pollfd {
            fd: self.0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on a descriptor this struct owns.
        unsafe {
            libc::poll(&mut p, 1, at_most.as_millis().max(1) as i32);
        }
    }
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        if self.0 >= 0 {
            // SAFETY: closes the pidfd opened in new().
            unsafe {
                libc::close(self.0);
            }
        }
    }
}

/// Signals the command's process group (its pid: see `process_group`).
fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's group; try_wait has not reaped it.
    unsafe {
        libc::kill(-(child.id() as libc::pid_t), sig);
    }
}

fn describe(ran: &Ran) -> String {
    match ran {
        Ran::Exited(c) => format!("exited with {c}"),
        Ran::Signalled(s) => format!("killed by signal {s}"),
        Ran::TimedOut => "ran past --timeout".to_string(),
        Ran::Stopped => "stopped at shutdown".to_string(),
        Ran::Lost => "lost".to_string(),
    }
}

/// Seconds before try `attempt + 1`: base, doubled per try, an hour at most.
fn backoff(base: u64, attempt: u64) -> u32 {
    let shift = attempt.saturating_sub(1).min(20) as u32;
    base.saturating_mul(1 << shift).min(3600) as u32
}

/// Copies lines of `r` to stderr, each prefixed with the job id.
fn prefix_lines(id: u64, r: impl Read + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if !line.ends_with(b"\n") {
                        line.push(b'\n');
                    }
                    let mut out = format!("[job {id}] ").into_bytes();
                    out.extend_from_slice(&line);
                    let _ = std::io::stderr().write_all(&out);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(
            (1..=4).map(|a| backoff(1, a)).collect::<Vec<_>>(),
            [1, 2, 4, 8]
        );
        assert_eq!(backoff(5, 40), 3600);
    }
}
