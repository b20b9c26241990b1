//! Deadlines: the timer wheel's entries and what each does when it fires.

use super::*;

impl Engine {
    /// When [`tick`](Self::tick) next has work, if ever.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.timers.next_expiration().map(|ms| ms * 1_000_000)
    }

    /// Runs every timer that is due: delays ending, TTRs running out,
    /// waiting reserves timing out, pauses ending.
    pub fn tick(&mut self, now: Nanos, sink: &mut impl Sink) {
        let mut fired = std::mem::take(&mut self.fired);
        self.timers.poll(now / 1_000_000, &mut fired);
        fired.sort_by_key(|(at, _)| *at);
        for (_, timer) in fired.drain(..) {
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
                    self.unpause(t, now, sink);
                }
            }
        }
        self.fired = fired;
    }

    pub(super) fn unpause(&mut self, t: TubeId, now: Nanos, sink: &mut impl Sink) {
        let tube = &mut self.tubes.slab[t as usize];
        tube.pause = 0;
        tube.unpause_at = 0;
        self.refresh_candidate(t);
        self.dispatch(now, sink);
    }

    pub(super) fn schedule(&mut self, at: Nanos, timer: Timer) -> TimerId {
        self.timers.insert(ms_ceil(at), (at, timer))
    }
}
