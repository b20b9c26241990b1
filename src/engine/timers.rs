//! Deadlines: the timer wheel's entries and what each does when it fires.

use super::*;

impl Engine {
    /// When [`tick`](Self::tick) next has work, if ever.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.timers.next_expiration().map(|ms| ms * 1_000_000)
    }

    /// Runs every timer that is due: delays ending, TTRs running out,
    /// waiting reserves timing out, pauses ending. A late tick runs them in
    /// deadline order, as if it had come on time. Timers due at the same
    /// instant run as beanstalkd's tick does: delays ending (by job id,
    /// each handing its job out), then pauses ending (all, then one
    /// hand-out), then TTRs (by job id), then waiting reserves (by client).
    pub fn tick(&mut self, now: Nanos, sink: &mut impl Sink) {
        let mut fired = std::mem::take(&mut self.fired);
        self.timers.poll(now / 1_000_000, &mut fired);
        let order = |timer: &Timer| match *timer {
            Timer::Delay(key) => (0, self.jobs[key as usize].id),
            Timer::Unpause(_) => (1, 0),
            Timer::Ttr(key) => (2, self.jobs[key as usize].id),
            Timer::Waiter(c) => (3, c as u64),
        };
        fired.sort_unstable_by_key(|(at, timer)| (*at, order(timer)));
        for i in 0..fired.len() {
            let (at, timer) = fired[i];
            match timer {
                Timer::Delay(key) => {
                    self.jobs[key as usize].timer = None;
                    self.unlink(key);
                    self.make_ready(key);
                    self.dispatch(now, sink);
                }
                Timer::Ttr(key) => {
                    self.jobs[key as usize].timer = None;
                    self.unlink(key);
                    self.jobs[key as usize].count(Event::Timeout, &mut self.rare);
                    self.totals.job_timeouts += 1;
                    self.make_ready(key);
                    self.dispatch(now, sink);
                }
                Timer::Waiter(c) => {
                    self.client_mut(c).timer = None;
                    self.wait_timed_out(c, now, sink);
                }
                Timer::Unpause(t) => {
                    self.tubes.slab[t as usize].pause_timer = None;
                    self.end_pause(t);
                    let last = !matches!(fired.get(i + 1),
                        Some(&(next, Timer::Unpause(_))) if next == at);
                    if last {
                        self.dispatch(now, sink);
                    }
                }
            }
        }
        fired.clear();
        self.fired = fired;
    }

    pub(super) fn unpause(&mut self, t: TubeId, now: Nanos, sink: &mut impl Sink) {
        self.end_pause(t);
        self.dispatch(now, sink);
    }

    fn end_pause(&mut self, t: TubeId) {
        let tube = &mut self.tubes.slab[t as usize];
        tube.pause = 0;
        tube.unpause_at = 0;
        self.refresh_candidate(t);
    }

    pub(super) fn schedule(&mut self, at: Nanos, timer: Timer) -> TimerId {
        self.timers.insert(ms_ceil(at), (at, timer))
    }
}
