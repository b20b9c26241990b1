//! One slot of `work`: its links to the servers, a reserve across them,
//! and what becomes of a job once its command has run.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::call;
use crate::client::{Conn, Error, Job, Reserved, stat};

use super::Shared;
use super::child::{Ran, describe};

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

pub(super) struct Slot {
    pub(super) s: Arc<Shared>,
    links: Vec<Link>,
    turn: usize,
}

impl Slot {
    pub(super) fn new(s: Arc<Shared>) -> Slot {
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

    pub(super) fn stopping(&self) -> bool {
        self.s.stop.load(Ordering::Relaxed)
    }

    pub(super) fn run(mut self) {
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
    pub(super) fn conn(&mut self, i: usize) -> Option<&mut Conn> {
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

    pub(super) fn lose(&mut self, i: usize, e: &Error) {
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
                // Stop using the reply tube, so that it goes once the
                // caller has its reply instead of lingering in `tubes`.
                c.use_tube("default")?;
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
}

/// Seconds before try `attempt + 1`: base, doubled per try, an hour at most.
fn backoff(base: u64, attempt: u64) -> u32 {
    let shift = attempt.saturating_sub(1).min(20) as u32;
    base.saturating_mul(1 << shift).min(3600) as u32
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
