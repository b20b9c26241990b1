//! Reservation: reserve, reserve-job, waiting, DEADLINE_SOON, and matching
//! ready jobs to waiting connections through the candidates heap.

use super::*;

impl Engine {
    pub(super) fn reserve(
        &mut self,
        c: ClientId,
        timeout: Option<u32>,
        now: Nanos,
        sink: &mut impl Sink,
    ) -> Outcome {
        self.mark_worker(c);
        if self.deadline_soon(c, now) && !self.any_ready(c) {
            sink.out(c).extend_from_slice(b"DEADLINE_SOON\r\n");
            return Outcome::Done;
        }
        // A ready job in a watched tube goes straight to this client: no
        // such tube has waiters (dispatch leaves none), so joining every
        // watched tube's waiters just to leave again would pick the same
        // job at a cost linear in the watch list, in heap operations.
        if let Some((t, key)) = self.best_ready(c) {
            // As if it had been the tube's only waiter: the round-robin
            // among later waiters starts after it.
            self.tubes.slab[t as usize].cursor = 1;
            self.unlink(key);
            self.make_reserved(key, c, now);
            self.jobs[key as usize].count(Event::Reserve, &mut self.rare);
            self.reply_job(c, key, b"RESERVED", sink);
            return Outcome::Done;
        }
        self.start_waiting(c);
        self.dispatch(now, sink);
        if !self.client(c).waiting {
            return Outcome::Done;
        }
        let timeout_at = timeout.map(|s| now + secs(s));
        self.client_mut(c).timeout_at = timeout_at;
        if timeout == Some(0) {
            self.wait_timed_out(c, now, sink);
            return Outcome::Done;
        }
        let soon = self
            .client(c)
            .reserved
            .peek()
            .map(|((d, _, _), _)| d.saturating_sub(SAFETY_MARGIN));
        let wake = match (soon, timeout_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = wake {
            let timer = self.schedule(at, Timer::Waiter(c));
            self.client_mut(c).timer = Some(timer);
        }
        Outcome::Blocked
    }

    /// A waiting reserve's timer: DEADLINE_SOON if a reservation is about
    /// to run out, else TIMED_OUT if it had a timeout.
    pub(super) fn wait_timed_out(&mut self, c: ClientId, now: Nanos, sink: &mut impl Sink) {
        if !self.client(c).waiting {
            return;
        }
        let reply: &[u8] = if self.deadline_soon(c, now) {
            b"DEADLINE_SOON\r\n"
        } else if self.client(c).timeout_at.is_some() {
            b"TIMED_OUT\r\n"
        } else {
            return;
        };
        self.stop_waiting(c);
        sink.out(c).extend_from_slice(reply);
        sink.woken(c);
    }

    pub(super) fn reserve_job(&mut self, c: ClientId, id: u64, now: Nanos, sink: &mut impl Sink) {
        match self.ids.get(id) {
            Some(key) if self.jobs[key as usize].state != State::Reserved => {
                if self.jobs[key as usize].state != State::Ready {
                    // Out of buried or delayed: logged, so that a restart
                    // does not put the job back (beanstalkd does).
                    // beanstalkd never fails a reserve-job: without room
                    // the job is reserved unlogged, and a restart puts it
                    // back where it was, as beanstalkd always does.
                    let mut img = self.image(key);
                    img.counts.reserves += 1;
                    img.state = LoggedState::Reserved;
                    let _ = self.log(sink, |j| j.update(&img, now));
                }
                // Unlike reserve, only a successful reserve-job makes a worker.
                self.mark_worker(c);
                self.unlink(key);
                self.make_reserved(key, c, now);
                self.jobs[key as usize].count(Event::Reserve, &mut self.rare);
                self.reply_job(c, key, b"RESERVED", sink);
            }
            _ => sink.out(c).extend_from_slice(b"NOT_FOUND\r\n"),
        }
    }

    pub(super) fn mark_worker(&mut self, c: ClientId) {
        let client = self.client_mut(c);
        if !client.worker {
            client.worker = true;
            self.totals.workers += 1;
        }
    }

    pub(super) fn deadline_soon(&self, c: ClientId, now: Nanos) -> bool {
        match self.client(c).reserved.peek() {
            Some(((deadline, _, _), _)) => now + SAFETY_MARGIN >= deadline,
            None => false,
        }
    }

    /// The most urgent ready job in the unpaused tubes `c` watches: the one
    /// dispatch would give it.
    pub(super) fn best_ready(&self, c: ClientId) -> Option<(TubeId, JobKey)> {
        let best = |t: TubeId| {
            let tube = &self.tubes.slab[t as usize];
            Some((tube.ready.peek().filter(|_| !tube.paused())?, t))
        };
        // Keys are unique, so the order of the tubes does not matter.
        (self.watched_with_ready(c))
            .filter_map(best)
            .min_by_key(|&((k, _), _)| k)
            .map(|((_, key), t)| (t, key))
    }

    /// Whether any watched tube has a ready job, paused or not.
    pub(super) fn any_ready(&self, c: ClientId) -> bool {
        self.watched_with_ready(c).next().is_some()
    }

    /// The tubes `c` watches that have ready jobs (paused ones too), found
    /// by walking the shorter of its watch list and the registry's list of
    /// tubes with ready jobs: a connection may watch thousands of tubes of
    /// which few hold ready jobs.
    pub(super) fn watched_with_ready(&self, c: ClientId) -> impl Iterator<Item = TubeId> + '_ {
        let watch = &self.client(c).watch;
        let with_ready = self.tubes.with_ready();
        let by_watch = watch.len() <= with_ready.len();
        let has_ready = |t: &TubeId| !self.tubes.slab[*t as usize].ready.is_empty();
        let watched = |t: &TubeId| watch.contains(*t);
        (by_watch.then(|| watch.tubes().filter(has_ready)))
            .into_iter()
            .flatten()
            .chain(
                (!by_watch)
                    .then(|| with_ready.iter().copied().filter(watched))
                    .into_iter()
                    .flatten(),
            )
    }

    pub(super) fn start_waiting(&mut self, c: ClientId) {
        for w in 0..self.client(c).watch.len() {
            let t = self.client(c).watch.entry(w).0;
            let waiting = &mut self.tubes.slab[t as usize].waiting;
            waiting.push((c, w as u32));
            let pos = waiting.len() as u32 - 1;
            self.client_mut(c).watch.set_waiting_index(w, pos);
            self.refresh_candidate(t);
        }
        self.client_mut(c).waiting = true;
        self.totals.waiting += 1;
    }

    pub(super) fn stop_waiting(&mut self, c: ClientId) {
        for w in 0..self.client(c).watch.len() {
            let (t, pos) = self.client(c).watch.entry(w);
            if pos != NIL {
                self.remove_waiter(t, pos as usize);
                self.refresh_candidate(t);
            }
        }
        let client = self.client_mut(c);
        client.waiting = false;
        client.timeout_at = None;
        if let Some(timer) = client.timer.take() {
            self.timers.cancel(timer, |(_, v)| *v == Timer::Waiter(c));
        }
        self.totals.waiting -= 1;
    }

    /// Removes the waiter at `pos` of tube `t`'s set by moving the last one
    /// into its place, as beanstalkd does; returns the client removed.
    pub(super) fn remove_waiter(&mut self, t: TubeId, pos: usize) -> ClientId {
        let waiting = &mut self.tubes.slab[t as usize].waiting;
        let (c, w) = waiting.swap_remove(pos);
        let moved = waiting.get(pos).copied();
        self.client_mut(c).watch.set_waiting_index(w as usize, NIL);
        if let Some((c2, w2)) = moved {
            (self.client_mut(c2).watch).set_waiting_index(w2 as usize, pos as u32);
        }
        c
    }

    /// Hands ready jobs to waiting connections while any tube has both.
    pub(super) fn dispatch(&mut self, now: Nanos, sink: &mut impl Sink) {
        while let Some((_, t)) = self.candidates.peek() {
            let (_, key) = self.tubes.slab[t as usize]
                .ready
                .peek()
                .expect("a candidate tube has a ready job");
            let tube = &mut self.tubes.slab[t as usize];
            let at = tube.cursor as usize % tube.waiting.len();
            let c = self.remove_waiter(t, at);
            self.tubes.slab[t as usize].cursor = at as u32 + 1;
            self.stop_waiting(c);
            self.unlink(key);
            self.make_reserved(key, c, now);
            self.jobs[key as usize].count(Event::Reserve, &mut self.rare);
            self.reply_job(c, key, b"RESERVED", sink);
            sink.woken(c);
        }
    }

    /// Puts tube `t` in or out of the candidate heap, or re-keys it, after
    /// its ready jobs, waiters or pause changed.
    pub(super) fn refresh_candidate(&mut self, t: TubeId) {
        let tube = &self.tubes.slab[t as usize];
        let want = if tube.waiting.is_empty() || tube.paused() {
            None
        } else {
            tube.ready.peek().map(|(k, _)| k)
        };
        let pos = tube.candidate;
        let mut at = CandidatePositions(&mut self.tubes.slab);
        if pos != NIL {
            if want.is_some() && self.candidates.key_at(pos) == want {
                return;
            }
            self.candidates.remove(pos, &mut at);
            at.0[t as usize].candidate = NIL;
        }
        if let Some(key) = want {
            self.candidates.push(key, t, &mut at);
        }
    }
}
