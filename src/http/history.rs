//! The last 15 minutes, for the status page's chart: every 10 s a point of
//! the jobs ready, reserved and buried and of those put, reserved and
//! deleted since the point before, server-wide and for up to
//! [`MAX_TUBES`] tubes. Bounded whatever the load: 90 points of 40 bytes
//! a ring, so at most about 470 KB in all. No clock of its own: the event
//! loop passes the time and the engine's [`Levels`] in.

use std::collections::{HashMap, VecDeque};

use crate::engine::Levels;
use crate::job::{NANOS_PER_SEC, Nanos};

/// Time between points.
pub const EVERY: Nanos = 10 * NANOS_PER_SEC;
/// Points kept: 15 minutes of them.
pub const POINTS: usize = 90;
/// Tubes with a history of their own. Past it a new tube gets one only
/// when a ring frees (its tube gone for 15 minutes), or when someone asks
/// for it (the quietest ring is given up).
pub const MAX_TUBES: usize = 128;

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub at: Nanos,
    /// Ready, reserved and buried jobs at `at`.
    pub held: [u32; 3],
    /// Puts, reserves and deletes since the point before; None for a
    /// ring's first point, which has no point before.
    pub moved: Option<[u32; 3]>,
}

impl Point {
    /// Puts, reserves and deletes per second over the interval that ends
    /// at this point, which began at `since`.
    pub fn rates(&self, since: Option<Nanos>) -> Option<[f64; 3]> {
        let (moved, since) = (self.moved?, since?);
        let secs = self.at.saturating_sub(since) as f64 / NANOS_PER_SEC as f64;
        (secs > 0.0).then(|| moved.map(|n| n as f64 / secs))
    }
}

#[derive(Debug, Default)]
pub struct Ring {
    points: VecDeque<Point>,
    /// The flow counters at the newest point.
    flow: [u64; 3],
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Ring {
    /// A ring with room for the whole window at once: grown by doubling,
    /// 90 points would take room for 128.
    fn new() -> Ring {
        Ring {
            points: VecDeque::with_capacity(POINTS),
            flow: [0; 3],
        }
    }

    /// The point `levels` make at `at`, after this ring's newest.
    pub fn point(&self, at: Nanos, levels: Levels) -> Point {
        // Counters that went down belong to a tube made again since:
        // counted from zero.
        let fresh = (0..3).any(|i| levels.flow[i] < self.flow[i]);
        let moved = (!self.points.is_empty()).then(|| {
            std::array::from_fn(|i| {
                let base = if fresh { 0 } else { self.flow[i] };
                clamp(levels.flow[i] - base)
            })
        });
        Point {
            at,
            held: levels.held.map(clamp),
            moved,
        }
    }

    fn push(&mut self, at: Nanos, levels: Levels) {
        let p = self.point(at, levels);
        if self.points.len() == POINTS {
            self.points.pop_front();
        }
        self.points.push_back(p);
        self.flow = levels.flow;
    }

    pub fn points(&self) -> impl Iterator<Item = &Point> {
        self.points.iter()
    }

    /// Everything that happened in the window, for choosing what to give
    /// up; zero when the ring shows nothing at all.
    fn activity(&self) -> u64 {
        (self.points.iter())
            .map(|p| {
                let moved = p.moved.unwrap_or_default();
                (p.held.iter().chain(&moved))
                    .map(|&n| n as u64)
                    .sum::<u64>()
            })
            .sum()
    }
}

#[derive(Debug, Default)]
pub struct History {
    next: Nanos,
    server: Ring,
    tubes: HashMap<Box<str>, Ring>,
}

impl History {
    /// Whether a point is due at `now`.
    pub fn due(&self, now: Nanos) -> bool {
        now >= self.next
    }

    /// Takes a point: the server's from `server`, each kept tube's from
    /// `tube` (None: the tube is gone, and holds nothing), and gives rings
    /// to tubes in `all` while there is room.
    pub fn sample<'a>(
        &mut self,
        now: Nanos,
        server: Levels,
        tube: impl Fn(&str) -> Option<Levels>,
        all: impl Iterator<Item = (&'a str, Levels)>,
    ) {
        self.next = now + EVERY;
        self.server.push(now, server);
        self.tubes.retain(|name, ring| {
            let levels = tube(name).unwrap_or(Levels {
                held: [0; 3],
                flow: ring.flow,
            });
            ring.push(now, levels);
            // Gone for a whole window: nothing left to show.
            ring.activity() > 0 || ring.points.len() < POINTS
        });
        if self.tubes.len() < MAX_TUBES {
            for (name, levels) in all {
                if self.tubes.len() == MAX_TUBES {
                    break;
                }
                if !self.tubes.contains_key(name) {
                    let mut ring = Ring::new();
                    ring.push(now, levels);
                    self.tubes.insert(name.into(), ring);
                }
            }
        }
    }

    /// Someone asked for `name`'s chart: it gets a ring from now on if it
    /// has none, the quietest being given up when all are taken.
    pub fn want(&mut self, now: Nanos, name: &str, levels: Levels) {
        if self.tubes.contains_key(name) {
            return;
        }
        if self.tubes.len() >= MAX_TUBES {
            let quietest = (self.tubes.iter())
                .min_by_key(|(_, r)| r.activity())
                .map(|(n, _)| n.clone());
            if let Some(n) = quietest {
                self.tubes.remove(&n);
            }
        }
        let mut ring = Ring::new();
        ring.push(now, levels);
        self.tubes.insert(name.into(), ring);
    }

    pub fn server(&self) -> &Ring {
        &self.server
    }

    pub fn tube(&self, name: &str) -> Option<&Ring> {
        self.tubes.get(name)
    }

    pub fn tubes_kept(&self) -> usize {
        self.tubes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(held: [u64; 3], flow: [u64; 3]) -> Levels {
        Levels { held, flow }
    }

    const S: Nanos = NANOS_PER_SEC;

    #[test]
    fn points_every_ten_seconds_for_fifteen_minutes() {
        let mut h = History::default();
        for i in 0..200u64 {
            let now = i * EVERY;
            assert!(h.due(now));
            let server = lv([i, 1, 2], [i * 30, i * 20, i * 10]);
            h.sample(now, server, |_| None, std::iter::empty());
            assert!(!h.due(now + EVERY - 1));
        }
        let pts: Vec<_> = h.server().points().copied().collect();
        assert_eq!(pts.len(), POINTS);
        assert_eq!(pts[0].at, 110 * EVERY);
        let last = pts[POINTS - 1];
        assert_eq!(last.held, [199, 1, 2]);
        assert_eq!(last.moved, Some([30, 20, 10]));
        assert_eq!(last.rates(Some(pts[POINTS - 2].at)), Some([3.0, 2.0, 1.0]));
        // The ring's first point has nothing before it.
        let mut r = Ring::default();
        r.push(0, lv([1, 0, 0], [5, 0, 0]));
        assert_eq!(r.points().next().unwrap().moved, None);
        // A point off the schedule: the rate over its own interval.
        let p = r.point(5 * S / 2, lv([1, 0, 0], [10, 0, 0]));
        assert_eq!(p.rates(Some(0)), Some([2.0, 0.0, 0.0]));
    }

    #[test]
    fn tubes_are_bounded_and_a_gone_tube_frees_its_ring() {
        let names: Vec<String> = (0..MAX_TUBES + 10).map(|i| format!("t{i}")).collect();
        let mut h = History::default();
        let v: Vec<(&str, Levels)> = (names.iter())
            .map(|s| (s.as_str(), lv([1, 0, 0], [1, 0, 0])))
            .collect();
        let some = |_: &str| Some(lv([1, 0, 0], [1, 0, 0]));
        h.sample(0, Levels::default(), some, v.into_iter());
        assert_eq!(h.tubes_kept(), MAX_TUBES);
        assert!(h.tube("t0").is_some() && h.tube(&names[MAX_TUBES]).is_none());
        // Asked for, the last tube takes the quietest ring.
        h.want(1, &names[MAX_TUBES], lv([5, 0, 0], [9, 0, 0]));
        assert_eq!(h.tubes_kept(), MAX_TUBES);
        assert!(h.tube(&names[MAX_TUBES]).is_some());
        // Every tube gone: each ring records zeros, then goes once its
        // window shows nothing.
        for i in 1..POINTS as u64 {
            h.sample(i * EVERY, Levels::default(), |_| None, std::iter::empty());
        }
        assert_eq!(h.tubes_kept(), MAX_TUBES);
        let end = POINTS as u64 * EVERY;
        h.sample(end, Levels::default(), |_| None, std::iter::empty());
        assert_eq!(h.tubes_kept(), 0);
    }

    #[test]
    fn a_ring_is_the_size_the_docs_say() {
        // doc/metrics.md: 90 points of 40 bytes, about 3.6 KB a ring.
        assert_eq!(std::mem::size_of::<Point>(), 40);
        assert!(Ring::new().points.capacity() < POINTS + 8);
    }

    #[test]
    fn a_tube_made_again_counts_from_zero() {
        let mut r = Ring::default();
        r.push(0, lv([0; 3], [100, 50, 40]));
        r.push(EVERY, lv([0; 3], [3, 1, 0]));
        assert_eq!(r.points().last().unwrap().moved, Some([3, 1, 0]));
    }
}
