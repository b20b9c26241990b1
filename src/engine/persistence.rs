//! The engine's side of the journal: a job's image for a record, logging
//! before applying, refusals, compaction, and each job's home file.

use super::*;

impl Engine {
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
                .map(|(deadline, _, _)| deadline),
            State::Ready | State::Buried => None,
        };
        at.unwrap_or(0)
    }

    /// The job as it stands, for the journal.
    pub(super) fn image(&self, key: JobKey) -> Image {
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
    pub(super) fn log(
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
    pub(super) fn refuse(&mut self, c: ClientId, e: JournalError, sink: &mut impl Sink) -> Outcome {
        sink.out(c).extend_from_slice(e.reply());
        Outcome::Done
    }

    /// Rewrites the jobs of a file compaction wants gone, so it can go.
    pub(super) fn compact(&mut self, now: Nanos, sink: &mut impl Sink) {
        let Some(journal) = sink.journal() else {
            return;
        };
        let Some((file, keys)) = journal.wants_moved() else {
            return;
        };
        for key in keys {
            if !self.jobs.contains(key as usize) || self.home(key) != file {
                continue; // a stale entry: moved, or a new job in a reused slot
            }
            if self.move_job(key, journal, now).is_err() {
                return; // tried again after the next write
            }
        }
    }

    /// Writes a job's full record anew (the journal's current file becomes
    /// its home).
    fn move_job(
        &mut self,
        key: JobKey,
        journal: &mut dyn Journal,
        now: Nanos,
    ) -> Result<(), JournalError> {
        let job = &self.jobs[key as usize];
        let img = self.image(key);
        let name = &self.tubes.slab[job.tube as usize].name;
        let home = journal.migrate(&img, name, self.bodies.get(job.body), now)?;
        self.set_home(key, home);
        Ok(())
    }

    /// Rewrites every live job in full into the journal's current file,
    /// after a failed fsync made what was written before untrustworthy
    /// (see `Binlog::start_over`). Returns how many jobs could not be
    /// written (no room on disk).
    pub fn relog_all(&mut self, now: Nanos, sink: &mut impl Sink) -> usize {
        let Some(journal) = sink.journal() else {
            return 0;
        };
        let keys: Vec<JobKey> = self.jobs.iter().map(|(k, _)| k as JobKey).collect();
        keys.into_iter()
            .filter(|&key| self.move_job(key, journal, now).is_err())
            .count()
    }

    /// The binlog file holding the job's newest full record (0: none).
    pub(crate) fn home(&self, key: JobKey) -> FileNo {
        self.homes.get(key as usize).copied().unwrap_or(0)
    }

    pub(super) fn set_home(&mut self, key: JobKey, file: FileNo) {
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
    pub(super) fn free(&mut self, key: JobKey) {
        let mut job = self.jobs.remove(key as usize);
        self.job_bytes -= job_memory(job.body.len());
        job.forget_rare(&mut self.rare);
        self.set_home(key, 0);
        self.bodies.remove(job.body);
        self.ids.remove(job.id);
        self.release_tube(job.tube);
    }

    pub(super) fn release_tube(&mut self, t: TubeId) {
        if let Some(tube) = self.tubes.release_if_unused(t)
            && let Some(timer) = tube.pause_timer
        {
            self.timers.cancel(timer, |(_, v)| *v == Timer::Unpause(t));
        }
    }
}
