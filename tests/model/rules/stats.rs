//! The stats documents, every count found by counting.

use super::*;

impl Model {
    // ---- stats ----

    pub(super) fn job_doc(&self, j: &Job, now: Nanos) -> Doc {
        let left = match j.state {
            State::Delayed | State::Reserved => j.deadline.saturating_sub(now) / SEC,
            _ => 0,
        };
        doc(&[
            ("id", j.id.to_string()),
            ("tube", j.tube.clone()),
            ("state", j.state.name().into()),
            ("pri", j.pri.to_string()),
            ("age", ((now - j.created) / SEC).to_string()),
            ("delay", j.delay.to_string()),
            ("ttr", j.ttr.to_string()),
            ("time-left", left.to_string()),
            ("file", "0".into()),
            ("reserves", j.reserves.to_string()),
            ("timeouts", j.timeouts.to_string()),
            ("releases", j.releases.to_string()),
            ("buries", j.buries.to_string()),
            ("kicks", j.kicks.to_string()),
        ])
    }

    /// Jobs in `tube` (all tubes when None) in state `s`, and of those the
    /// urgent ones.
    pub(super) fn count(&self, tube: Option<&str>, s: State) -> (usize, usize) {
        let of = |j: &&Job| j.state == s && tube.is_none_or(|t| j.tube == t);
        let n = self.jobs.iter().filter(of).count();
        let urgent = self
            .jobs
            .iter()
            .filter(of)
            .filter(|j| j.pri < URGENT)
            .count();
        (n, urgent)
    }

    pub(super) fn tube_doc(&self, t: &Tube, now: Nanos) -> Doc {
        let name = Some(t.name.as_str());
        let (ready, urgent) = self.count(name, State::Ready);
        let left = t.paused_until.map_or(0, |u| u.saturating_sub(now) / SEC);
        let clients = || self.connected();
        doc(&[
            ("name", t.name.clone()),
            ("current-jobs-urgent", urgent.to_string()),
            ("current-jobs-ready", ready.to_string()),
            (
                "current-jobs-reserved",
                self.count(name, State::Reserved).0.to_string(),
            ),
            (
                "current-jobs-delayed",
                self.count(name, State::Delayed).0.to_string(),
            ),
            (
                "current-jobs-buried",
                self.count(name, State::Buried).0.to_string(),
            ),
            ("total-jobs", t.total_jobs.to_string()),
            (
                "current-using",
                clients().filter(|c| c.used == t.name).count().to_string(),
            ),
            (
                "current-watching",
                clients()
                    .filter(|c| c.watch.contains(&t.name))
                    .count()
                    .to_string(),
            ),
            (
                "current-waiting",
                clients()
                    .filter(|c| c.waiting && c.watch.contains(&t.name))
                    .count()
                    .to_string(),
            ),
            ("cmd-delete", t.cmd_delete.to_string()),
            ("cmd-pause-tube", t.cmd_pause.to_string()),
            ("pause", t.pause_secs.to_string()),
            ("pause-time-left", left.to_string()),
        ])
    }

    pub(super) fn stats_doc(&self, now: Nanos) -> Doc {
        let (ready, urgent) = self.count(None, State::Ready);
        let mut d = doc(&[
            ("current-jobs-urgent", urgent.to_string()),
            ("current-jobs-ready", ready.to_string()),
            (
                "current-jobs-reserved",
                self.count(None, State::Reserved).0.to_string(),
            ),
            (
                "current-jobs-delayed",
                self.count(None, State::Delayed).0.to_string(),
            ),
            (
                "current-jobs-buried",
                self.count(None, State::Buried).0.to_string(),
            ),
        ]);
        for k in COUNTERS {
            d.push((k.into(), self.counters[k].to_string()));
        }
        let clients = || self.connected();
        d.extend(doc(&[
            ("job-timeouts", self.job_timeouts.to_string()),
            ("total-jobs", self.total_jobs.to_string()),
            ("max-job-size", self.max_job_size.to_string()),
            ("current-tubes", self.tubes.len().to_string()),
            ("current-connections", clients().count().to_string()),
            (
                "current-producers",
                clients().filter(|c| c.producer).count().to_string(),
            ),
            (
                "current-workers",
                clients().filter(|c| c.worker).count().to_string(),
            ),
            (
                "current-waiting",
                clients().filter(|c| c.waiting).count().to_string(),
            ),
            ("total-connections", self.total_connections.to_string()),
            ("uptime", ((now - self.started) / SEC).to_string()),
            ("binlog-oldest-index", "0".into()),
            ("binlog-current-index", "0".into()),
            ("binlog-records-migrated", "0".into()),
            ("binlog-records-written", "0".into()),
            ("binlog-max-size", "0".into()),
            ("draining", "false".into()),
        ]));
        d
    }
}

fn doc(pairs: &[(&str, String)]) -> Doc {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}
