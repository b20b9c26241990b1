//! A job's command: run with the body on stdin, touched while it runs,
//! stopped at --timeout or after the grace of a shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::slot::Slot;

/// How a command's run ended.
pub(super) enum Ran {
    Exited(i32),
    Signalled(i32),
    TimedOut,
    /// Stopped at shutdown, after the grace.
    Stopped,
    /// The connection that holds the job went away.
    Lost,
}

impl Slot {
    /// Runs the command on one job, touching it while it runs. Returns how
    /// it ended and, for a call, its stdout.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_command(
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

pub(super) fn describe(ran: &Ran) -> String {
    match ran {
        Ran::Exited(c) => format!("exited with {c}"),
        Ran::Signalled(s) => format!("killed by signal {s}"),
        Ran::TimedOut => "ran past --timeout".to_string(),
        Ran::Stopped => "stopped at shutdown".to_string(),
        Ran::Lost => "lost".to_string(),
    }
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
