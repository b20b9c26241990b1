//! Job state transitions: taking a job out of whatever holds it and
//! putting it into ready, delayed, buried or reserved.

use super::*;

impl Engine {
    /// Takes a job out of whatever holds it, leaving its state stale until
    /// one of the `make_*` functions or [`free`](Self::free) runs.
    pub(super) fn unlink(&mut self, key: JobKey) {
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

    pub(super) fn make_ready(&mut self, key: JobKey) {
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

    pub(super) fn make_delayed(&mut self, key: JobKey, until: Nanos) {
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
    pub(super) fn make_buried(&mut self, key: JobKey, rank: u64) {
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
    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub(super) fn make_reserved(&mut self, key: JobKey, c: ClientId, now: Nanos) {
        self.hold(key, c, now, None);
    }

    /// Reserves `key` to `c` until its TTR runs out; `kept` is the place in
    /// `c`'s reservation order and when the reservation began (a new
    /// reservation, now, when None).
    pub(super) fn hold(
        &mut self,
        key: JobKey,
        c: ClientId,
        now: Nanos,
        kept: Option<(u64, Nanos)>,
    ) {
        let (seq, since) = match kept {
            Some(kept) => kept,
            None => {
                self.totals.reservations += 1;
                (self.next_seq(), now)
            }
        };
        let job = &mut self.jobs[key as usize];
        job.state = State::Reserved;
        job.reserver = c;
        let (t, sort) = (job.tube, (now + secs(job.ttr), seq, since));
        let timer = self.schedule(sort.0, Timer::Ttr(key));
        self.jobs[key as usize].timer = Some(timer);
        self.tubes.slab[t as usize].reserved += 1;
        self.tubes.slab[t as usize].reserves += 1;
        self.totals.reserved += 1;
        let client = self.clients[c as usize]
            .as_mut()
            .expect("reserving client exists");
        client
            .reserved
            .push(sort, key, &mut JobPositions(&mut self.jobs));
    }

    pub(super) fn kick(
        &mut self,
        key: JobKey,
        now: Nanos,
        sink: &mut impl Sink,
    ) -> Result<(), JournalError> {
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
}
