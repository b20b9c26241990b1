//! A fixed-bucket histogram of durations, as Prometheus exposes them:
//! cumulative counts per upper bound, a sum and a count. Recording is a
//! short scan of a dozen bounds, cheap enough for every loop turn.

use std::time::Duration;

/// Upper bounds, in seconds: 10 µs to 10 s, roughly ×2.5 a step.
pub const BOUNDS: [f64; 14] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.1, 1.0, 10.0,
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations at or below each bound, not cumulative (one more for
    /// those above the last).
    counts: [u64; BOUNDS.len() + 1],
    sum_nanos: u128,
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BOUNDS.len());
        self.counts[i] += 1;
        self.sum_nanos += d.as_nanos();
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_nanos as f64 / 1e9
    }

    /// (bound, observations at or below it), cumulative; `+Inf` is
    /// [`count`](Self::count).
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        BOUNDS.iter().zip(&self.counts).scan(0, |acc, (&b, &n)| {
            *acc += n;
            Some((b, *acc))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let mut h = Histogram::default();
        h.record(Duration::from_micros(10));
        h.record(Duration::from_micros(11));
        h.record(Duration::from_secs(60));
        let c: Vec<(f64, u64)> = h.cumulative().collect();
        assert_eq!(c[0], (0.000_01, 1));
        assert_eq!(c[1], (0.000_025, 2));
        assert_eq!(c.last(), Some(&(10.0, 2)));
        assert_eq!(h.count(), 3);
        assert!((h.sum_seconds() - 60.000_021).abs() < 1e-9);
    }
}
