//! The YAML documents of `stats`, `stats-job` and `stats-tube`, field for
//! field and in beanstalkd's order. String values go through [`yaml`]:
//! bare where every YAML parser reads them as strings, quoted otherwise.

use std::io::Write;

/// The beanstalkd release whose protocol sprout speaks, as `stats` says
/// it in `version` (sprout's own version is `sprout-version`).
pub const PROTOCOL_VERSION: &str = "1.13";

use crate::engine::Engine;
use crate::job::{JobKey, NANOS_PER_SEC, Nanos, State, TubeId};
use crate::journal::JournalStats;
use crate::protocol::Op;
use crate::yaml;

/// Whole seconds from `from` to `to`, 0 if `to` is not later.
fn secs_between(from: Nanos, to: Nanos) -> u64 {
    to.saturating_sub(from) / NANOS_PER_SEC
}

/// CPU time used by this process: (user, system) as (seconds, microseconds).
pub fn rusage() -> ((i64, i64), (i64, i64)) {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    (
        (ru.ru_utime.tv_sec, ru.ru_utime.tv_usec),
        (ru.ru_stime.tv_sec, ru.ru_stime.tv_usec),
    )
}

impl Engine {
    pub(crate) fn job_yaml(&self, key: JobKey, now: Nanos) -> Vec<u8> {
        let job = &self.jobs[key as usize];
        let time_left = match job.state {
            State::Reserved | State::Delayed => secs_between(now, self.deadline(key)),
            _ => 0,
        };
        let c = job.counts(&self.rare);
        let mut y = Vec::with_capacity(256);
        let _ = write!(y, "---\nid: {}\ntube: ", job.id);
        yaml::push_str(&mut y, &self.tubes.slab[job.tube as usize].name);
        let _ = write!(
            y,
            "\nstate: {}\npri: {}\nage: {}\ndelay: {}\nttr: {}\n\
             time-left: {}\nfile: {}\nreserves: {}\ntimeouts: {}\nreleases: {}\nburies: {}\nkicks: {}\n",
            job.state.name(),
            job.pri,
            secs_between(job.created_at, now),
            job.delay,
            job.ttr,
            time_left,
            self.home(key),
            c.reserves,
            c.timeouts,
            c.releases,
            c.buries,
            c.kicks,
        );
        y
    }

    pub(crate) fn tube_yaml(&self, t: TubeId, now: Nanos) -> Vec<u8> {
        let tube = &self.tubes.slab[t as usize];
        let (pause, left) = if tube.paused() {
            (
                tube.pause / NANOS_PER_SEC,
                secs_between(now, tube.unpause_at),
            )
        } else {
            (0, 0)
        };
        let mut y = Vec::with_capacity(320);
        y.extend_from_slice(b"---\nname: ");
        yaml::push_str(&mut y, &tube.name);
        let _ = write!(
            y,
            "\ncurrent-jobs-urgent: {}\ncurrent-jobs-ready: {}\n\
             current-jobs-reserved: {}\ncurrent-jobs-delayed: {}\ncurrent-jobs-buried: {}\n\
             total-jobs: {}\ncurrent-using: {}\ncurrent-watching: {}\ncurrent-waiting: {}\n\
             cmd-delete: {}\ncmd-pause-tube: {}\npause: {}\npause-time-left: {}\n",
            tube.urgent,
            tube.ready.len(),
            tube.reserved,
            tube.delayed.len(),
            tube.buried.len(),
            tube.total_jobs,
            tube.using,
            tube.watching,
            tube.waiting.len(),
            tube.cmd_delete,
            tube.cmd_pause,
            pause,
            left,
        );
        y
    }

    pub(crate) fn stats_yaml(&self, now: Nanos, binlog: JournalStats) -> Vec<u8> {
        let t = &self.totals;
        let op = |o: Op| t.ops[o as usize];
        let ((us, uu), (ss, su)) = rusage();
        let info = &self.info;
        let mut y = Vec::with_capacity(1100);
        let _ = write!(
            y,
            "---\ncurrent-jobs-urgent: {}\ncurrent-jobs-ready: {}\ncurrent-jobs-reserved: {}\n\
             current-jobs-delayed: {}\ncurrent-jobs-buried: {}\ncmd-put: {}\ncmd-peek: {}\n\
             cmd-peek-ready: {}\ncmd-peek-delayed: {}\ncmd-peek-buried: {}\ncmd-reserve: {}\n\
             cmd-reserve-with-timeout: {}\ncmd-delete: {}\ncmd-release: {}\ncmd-use: {}\n\
             cmd-watch: {}\ncmd-ignore: {}\ncmd-bury: {}\ncmd-kick: {}\ncmd-touch: {}\n\
             cmd-stats: {}\ncmd-stats-job: {}\ncmd-stats-tube: {}\ncmd-list-tubes: {}\n\
             cmd-list-tube-used: {}\ncmd-list-tubes-watched: {}\ncmd-pause-tube: {}\n\
             job-timeouts: {}\ntotal-jobs: {}\nmax-job-size: {}\ncurrent-tubes: {}\n\
             current-connections: {}\ncurrent-producers: {}\ncurrent-workers: {}\n\
             current-waiting: {}\ntotal-connections: {}\npid: {}\nversion: ",
            t.urgent,
            t.ready,
            t.reserved,
            t.delayed,
            t.buried,
            op(Op::Put),
            op(Op::Peek),
            op(Op::PeekReady),
            op(Op::PeekDelayed),
            op(Op::PeekBuried),
            op(Op::Reserve),
            op(Op::ReserveWithTimeout),
            op(Op::Delete),
            op(Op::Release),
            op(Op::Use),
            op(Op::Watch),
            op(Op::Ignore),
            op(Op::Bury),
            op(Op::Kick),
            op(Op::Touch),
            op(Op::Stats),
            op(Op::StatsJob),
            op(Op::StatsTube),
            op(Op::ListTubes),
            op(Op::ListTubeUsed),
            op(Op::ListTubesWatched),
            op(Op::PauseTube),
            t.job_timeouts,
            t.total_jobs,
            self.max_job_size,
            self.tubes.len(),
            t.connections,
            t.producers,
            t.workers,
            t.waiting,
            t.total_connections,
            info.pid,
        );
        // The protocol's version, for clients that gate features on it
        // (fivebeans skips kick-job below 1.8); sprout's own comes last.
        // beanstalkd quotes the version always (1.12 too); so does sprout.
        yaml::push_quoted(&mut y, PROTOCOL_VERSION);
        let _ = write!(
            y,
            "\nrusage-utime: {}.{:06}\nrusage-stime: {}.{:06}\nuptime: {}\n\
             binlog-oldest-index: {}\nbinlog-current-index: {}\nbinlog-records-migrated: {}\n\
             binlog-records-written: {}\nbinlog-max-size: {}\ndraining: {}\nid: ",
            us,
            uu,
            ss,
            su,
            secs_between(self.started, now),
            binlog.oldest_index,
            binlog.current_index,
            binlog.records_migrated,
            binlog.records_written,
            info.binlog_max_size,
            self.draining,
        );
        for (key, value) in [
            ("", &info.instance_id),
            ("\nhostname: ", &info.hostname),
            ("\nos: ", &info.os),
            ("\nplatform: ", &info.platform),
        ] {
            y.extend_from_slice(key.as_bytes());
            yaml::push_str(&mut y, value);
        }
        // sprout's own keys follow all of beanstalkd's.
        y.extend_from_slice(b"\nsprout-version: ");
        yaml::push_quoted(&mut y, &info.version);
        let r = self.replication_view();
        match &r.primary {
            None => {
                let role = if self.refuses_changes() {
                    "standby"
                } else {
                    "primary"
                };
                let _ = write!(y, "\nrole: {role}\nreplicas: {}", r.replicas);
            }
            Some(primary) => {
                y.extend_from_slice(b"\nrole: replica\nprimary: ");
                yaml::push_str(&mut y, primary);
                let _ = write!(
                    y,
                    "\nreplica-following: {}\nreplica-records-applied: {}\nreplica-lag-seconds: ",
                    r.following, r.applied
                );
                match r.lag_seconds(now) {
                    Some(lag) => {
                        let _ = write!(y, "{lag:.3}");
                    }
                    None => y.extend_from_slice(b"-1"),
                }
                let position = r.position.map_or(-1, |p| p as i128);
                let _ = write!(y, "\nreplica-position: {position}");
                let _ = write!(y, "\nreplicas: {}", r.replicas);
            }
        }
        let _ = write!(y, "\nepoch: {}", self.epoch());
        y.push(b'\n');
        y
    }
}
