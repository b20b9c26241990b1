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
}
