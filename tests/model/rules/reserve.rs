//! Reserving, waiting, handing jobs out, and what time does.

use super::*;

impl Model {
    // ---- reserving ----

    pub(super) fn deadline_soon(&self, c: usize, now: Nanos) -> bool {
        (self.jobs.iter())
            .filter(|j| j.state == State::Reserved && j.reserver == c)
            .any(|j| now + MARGIN >= j.deadline)
    }

    pub(super) fn paused(&self, tube: &str) -> bool {
        self.tube(tube).is_some_and(|t| t.paused_until.is_some())
    }

    /// The ready job a client would get: the smallest (pri, id) in the
    /// unpaused tubes it watches.
    pub(super) fn best_ready_for(&self, c: usize) -> Option<u64> {
        let watch = &self.client(c).watch;
        (self.jobs.iter())
            .filter(|j| j.state == State::Ready && watch.contains(&j.tube) && !self.paused(&j.tube))
            .min_by_key(|j| (j.pri, j.id))
            .map(|j| j.id)
    }

    pub(super) fn reserve_to(&mut self, id: u64, c: usize, now: Nanos) {
        let order = self.next_seq();
        let job = self.job_mut(id);
        job.state = State::Reserved;
        job.reserver = c;
        job.deadline = now + job.ttr as Nanos * SEC;
        job.order = order;
        job.reserves += 1;
        self.job_reply(c, "RESERVED", id);
    }

    pub(super) fn reserve(&mut self, c: usize, timeout: Option<u32>, now: Nanos) {
        self.client_mut(c).worker = true;
        // Paused tubes count as having ready jobs here.
        let watch = self.client(c).watch.clone();
        let any_ready =
            (self.jobs.iter()).any(|j| j.state == State::Ready && watch.contains(&j.tube));
        if self.deadline_soon(c, now) && !any_ready {
            return self.say(c, b"DEADLINE_SOON\r\n");
        }
        if let Some(id) = self.best_ready_for(c) {
            // As if it had been its tube's only waiter.
            let tube = self.job(id).expect("live").tube.clone();
            self.tube_mut(&tube).cursor = 1;
            return self.reserve_to(id, c, now);
        }
        for t in &watch {
            self.tube_mut(t).waiting.push(c);
        }
        let client = self.client_mut(c);
        client.waiting = true;
        client.timeout_at = timeout.map(|s| now + s as Nanos * SEC);
        if timeout == Some(0) {
            self.wait_ends(c, now);
        }
    }

    /// A waiting client's time has come: DEADLINE_SOON if a reservation is
    /// about to end, else TIMED_OUT if it gave a timeout.
    pub(super) fn wait_ends(&mut self, c: usize, now: Nanos) {
        let reply: &[u8] = if self.deadline_soon(c, now) {
            b"DEADLINE_SOON\r\n"
        } else if self.client(c).timeout_at.is_some() {
            b"TIMED_OUT\r\n"
        } else {
            return;
        };
        self.stop_waiting(c);
        self.say(c, reply);
    }

    /// When a waiting client must be answered even without a job.
    pub(super) fn wake_at(&self, c: usize) -> Option<Nanos> {
        let client = self.client(c);
        let soon = (self.jobs.iter())
            .filter(|j| j.state == State::Reserved && j.reserver == c)
            .map(|j| j.deadline.saturating_sub(MARGIN))
            .min();
        match (soon, client.timeout_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn stop_waiting(&mut self, c: usize) {
        let watch = self.client(c).watch.clone();
        for t in &watch {
            let waiting = &mut self.tube_mut(t).waiting;
            if let Some(i) = waiting.iter().position(|&w| w == c) {
                waiting.swap_remove(i);
            }
        }
        let client = self.client_mut(c);
        client.waiting = false;
        client.timeout_at = None;
    }

    /// While some unpaused tube has both a ready job and a waiting client:
    /// the smallest (pri, id) among such tubes' ready jobs goes to the
    /// waiter at that tube's cursor.
    pub(super) fn dispatch(&mut self, now: Nanos) {
        loop {
            let best = (self.jobs.iter())
                .filter(|j| j.state == State::Ready && !self.paused(&j.tube))
                .filter(|j| self.tube(&j.tube).is_some_and(|t| !t.waiting.is_empty()))
                .min_by_key(|j| (j.pri, j.id))
                .map(|j| (j.id, j.tube.clone()));
            let Some((id, name)) = best else { return };
            let tube = self.tube_mut(&name);
            let at = tube.cursor % tube.waiting.len();
            let c = tube.waiting.swap_remove(at);
            tube.cursor = at + 1;
            self.stop_waiting(c);
            self.reserve_to(id, c, now);
        }
    }

    // ---- time ----

    /// Everything due by `now`, in deadline order; at one instant: delays
    /// ending (by id), pauses ending, TTRs ending (by id), then waiting
    /// clients. Every decision uses `now`, the time the server looks.
    pub fn tick(&mut self, now: Nanos) {
        while let Some(t) = self.next_event().filter(|&t| t <= now) {
            let mut delayed: Vec<u64> = (self.jobs.iter())
                .filter(|j| j.state == State::Delayed && j.deadline == t)
                .map(|j| j.id)
                .collect();
            delayed.sort();
            for id in delayed {
                self.job_mut(id).state = State::Ready;
                self.dispatch(now);
            }
            let mut resumed = false;
            for tube in self.tubes.iter_mut() {
                if tube.paused_until == Some(t) {
                    tube.paused_until = None;
                    tube.pause_secs = 0;
                    resumed = true;
                }
            }
            if resumed {
                self.dispatch(now);
            }
            let mut expired: Vec<u64> = (self.jobs.iter())
                .filter(|j| j.state == State::Reserved && j.deadline == t)
                .map(|j| j.id)
                .collect();
            expired.sort();
            for id in expired {
                let job = self.job_mut(id);
                job.state = State::Ready;
                job.timeouts += 1;
                self.job_timeouts += 1;
                self.dispatch(now);
            }
            for c in 0..self.clients.len() {
                let due = self.clients[c].as_ref().is_some_and(|cl| cl.waiting)
                    && self.wake_at(c) == Some(t);
                if due {
                    self.wait_ends(c, now);
                }
            }
        }
    }

    /// The soonest instant at which something happens by itself.
    pub fn next_event(&self) -> Option<Nanos> {
        self.events().first().copied()
    }

    /// Every instant at which something will happen by itself, soonest
    /// first: delays and TTRs ending, pauses ending, waits ending.
    pub fn events(&self) -> Vec<Nanos> {
        let jobs = (self.jobs.iter())
            .filter(|j| matches!(j.state, State::Delayed | State::Reserved))
            .map(|j| j.deadline);
        let pauses = self.tubes.iter().filter_map(|t| t.paused_until);
        let waits = (0..self.clients.len())
            .filter(|&c| self.clients[c].as_ref().is_some_and(|cl| cl.waiting))
            .filter_map(|c| self.wake_at(c));
        let mut all: Vec<Nanos> = jobs.chain(pauses).chain(waits).collect();
        all.sort();
        all.dedup();
        all
    }
}
