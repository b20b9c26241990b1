//! Puts, reserves and deletes per second over the last minute, from one
//! sample of the engine's counters a second (61 samples: a few hundred
//! bytes, whatever the load).

use std::collections::VecDeque;

use crate::job::{NANOS_PER_SEC, Nanos};

/// Samples kept: a minute of them, and the one a minute ago.
const KEPT: usize = 61;

#[derive(Debug, Default)]
pub struct Rates {
    samples: VecDeque<(Nanos, [u64; 3])>,
}

impl Rates {
    /// Takes a sample if a second has passed since the last one.
    pub fn sample(&mut self, now: Nanos, counts: [u64; 3]) {
        if self
            .samples
            .back()
            .is_some_and(|&(at, _)| now < at + NANOS_PER_SEC)
        {
            return;
        }
        if self.samples.len() == KEPT {
            self.samples.pop_front();
        }
        self.samples.push_back((now, counts));
    }

    /// (puts, reserves, deletes) per second between the oldest sample and
    /// `counts` at `now`; zeros before a second has passed.
    pub fn per_second(&self, now: Nanos, counts: [u64; 3]) -> [f64; 3] {
        let Some(&(at, then)) = self.samples.front() else {
            return [0.0; 3];
        };
        let secs = now.saturating_sub(at) as f64 / NANOS_PER_SEC as f64;
        if secs < 1.0 {
            return [0.0; 3];
        }
        std::array::from_fn(|i| counts[i].saturating_sub(then[i]) as f64 / secs)
    }
}

/// Per tube: puts, reserves and deletes per second over the last minute,
/// from a snapshot of every tube's counters each 10 s (7 kept: 24 bytes a
/// tube each, so 10,000 tubes cost 1.7 MB), by tube slot. A slot whose
/// counts went down holds a new tube, counted from zero.
#[derive(Debug, Default)]
pub struct TubeRates {
    snapshots: VecDeque<(Nanos, Vec<[u64; 3]>)>,
}

const TUBE_EVERY: Nanos = 10 * NANOS_PER_SEC;
const TUBE_KEPT: usize = 7;

impl TubeRates {
    /// Whether a snapshot is due at `now`.
    pub fn due(&self, now: Nanos) -> bool {
        self.snapshots
            .back()
            .is_none_or(|&(at, _)| now >= at + TUBE_EVERY)
    }

    pub fn snapshot(&mut self, now: Nanos, tubes: impl Iterator<Item = (u32, [u64; 3])>) {
        let mut v = Vec::new();
        for (id, counts) in tubes {
            let i = id as usize;
            if v.len() <= i {
                v.resize(i + 1, [0; 3]);
            }
            v[i] = counts;
        }
        if self.snapshots.len() == TUBE_KEPT {
            self.snapshots.pop_front();
        }
        self.snapshots.push_back((now, v));
    }

    /// (puts, reserves, deletes) per second for tube slot `id` with
    /// `counts` now.
    pub fn per_second(&self, now: Nanos, id: u32, counts: [u64; 3]) -> [f64; 3] {
        let Some((at, then)) = self.snapshots.front() else {
            return [0.0; 3];
        };
        let secs = now.saturating_sub(*at) as f64 / NANOS_PER_SEC as f64;
        if secs < 1.0 {
            return [0.0; 3];
        }
        let then = then.get(id as usize).copied().unwrap_or([0; 3]);
        let fresh = (0..3).any(|i| counts[i] < then[i]);
        std::array::from_fn(|i| {
            let base = if fresh { 0 } else { then[i] };
            counts[i].saturating_sub(base) as f64 / secs
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_window() {
        let mut r = Rates::default();
        for s in 0..=120u64 {
            r.sample(s * NANOS_PER_SEC, [s * 10, s, 0]);
        }
        // The window is the last 60 seconds: 10 puts and 1 reserve a second.
        assert_eq!(
            r.per_second(120 * NANOS_PER_SEC, [1200, 120, 0]),
            [10.0, 1.0, 0.0]
        );
        // Half a second later no new sample is taken.
        r.sample(120 * NANOS_PER_SEC + NANOS_PER_SEC / 2, [0, 0, 0]);
        assert_eq!(r.samples.len(), KEPT);
        assert_eq!(Rates::default().per_second(5, [1, 1, 1]), [0.0; 3]);
    }

    #[test]
    fn tube_rates_over_a_minute_and_reused_slots() {
        let mut r = TubeRates::default();
        for s in 0..=12u64 {
            let now = s * 10 * NANOS_PER_SEC;
            assert!(r.due(now));
            r.snapshot(
                now,
                [(0, [s * 50, s * 20, s * 10]), (2, [s, s, 0])].into_iter(),
            );
        }
        // The oldest kept is 60 s back: 5 puts, 2 reserves and 1 delete a
        // second.
        let now = 120 * NANOS_PER_SEC;
        assert_eq!(r.per_second(now, 0, [600, 240, 120]), [5.0, 2.0, 1.0]);
        // Slot 2's counts fell: a new tube there, counted from zero.
        assert_eq!(r.per_second(now, 2, [3, 0, 0]), [0.05, 0.0, 0.0]);
        assert!(!r.due(now + 1));
    }
}
