//! Job id → job key. Ids are handed out in increasing order and most jobs
//! die roughly in order, so the live ids are mostly a dense recent range:
//! a window (a ring of keys, 4 bytes per id) covers that range, and the few
//! old jobs that outlive it (a job buried for a week) move to a hash map.
//! A hash map alone cost about 37 bytes per job.

use std::collections::VecDeque;

use crate::job::{IdMap, JobKey};

/// A window slot whose id is not alive.
const NONE: JobKey = JobKey::MAX;
/// Windows smaller than this are never thinned.
const MIN_WINDOW: usize = 1024;

#[derive(Default)]
pub struct IdIndex {
    /// The id of `window[0]`.
    base: u64,
    window: VecDeque<JobKey>,
    /// Live ids in the window.
    in_window: usize,
    /// Live ids outside the window: below `base` when they moved there,
    /// but not only (a replica hears ids in any order, and a window
    /// started afresh can begin below them).
    old: IdMap<JobKey>,
    /// No id in `old` is larger (0 when it is empty): a new id above it
    /// needs no look there, which is every put of a server.
    old_max: u64,
}

impl IdIndex {
    pub fn len(&self) -> usize {
        self.in_window + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, id: u64) -> Option<usize> {
        let i = id.checked_sub(self.base)?;
        (i < self.window.len() as u64).then_some(i as usize)
    }

    pub fn get(&self, id: u64) -> Option<JobKey> {
        match self.slot(id).map(|i| self.window[i]) {
            Some(k) if k != NONE => Some(k),
            _ if id <= self.old_max => self.old.get(&id).copied(),
            _ => None,
        }
    }

    fn insert_old(&mut self, id: u64, key: JobKey) {
        self.old.insert(id, key);
        self.old_max = self.old_max.max(id);
    }

    pub fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    pub fn insert(&mut self, id: u64, key: JobKey) {
        if self.in_window == 0 {
            self.window.clear();
            self.base = id;
        }
        if id < self.base {
            self.insert_old(id, key);
            return;
        }
        // An id may be in `old` only once: not in the window as well.
        if id <= self.old_max && self.old.remove(&id).is_some() {
            self.insert_old(id, key);
            return;
        }
        let gap = id - self.base;
        if gap >= self.window.len() as u64 + (MIN_WINDOW.max(self.window.len())) as u64 {
            // A far jump (ids continued above a restored binlog's): start
            // the window afresh rather than fill the gap.
            self.spill(self.window.len());
            self.window.clear();
            self.base = id;
        }
        let i = (id - self.base) as usize;
        if i >= self.window.len() {
            self.window.resize(i + 1, NONE);
        }
        if self.window[i] == NONE {
            self.in_window += 1;
        }
        self.window[i] = key;
    }

    pub fn remove(&mut self, id: u64) -> Option<JobKey> {
        let in_window = self.slot(id).filter(|&i| self.window[i] != NONE);
        let Some(i) = in_window else {
            let key = self.old.remove(&id);
            if self.old.is_empty() {
                self.old_max = 0;
            }
            return key;
        };
        let key = std::mem::replace(&mut self.window[i], NONE);
        self.in_window -= 1;
        while self.window.front() == Some(&NONE) {
            self.window.pop_front();
            self.base += 1;
        }
        // Mostly holes behind a few long-lived jobs: keep the longest tail
        // that is at least half alive, and move the rest out.
        if self.window.len() > MIN_WINDOW && self.in_window * 4 < self.window.len() {
            let len = self.window.len();
            let (mut live, mut keep) = (0, 0);
            for (j, &k) in self.window.iter().enumerate().rev() {
                live += (k != NONE) as usize;
                if live * 2 >= len - j {
                    keep = len - j;
                }
            }
            self.spill(len - keep);
        }
        Some(key)
    }

    /// Moves the first `n` slots out of the window, live ones to `old`.
    fn spill(&mut self, n: usize) {
        for (k, key) in self.window.drain(..n).enumerate() {
            if key != NONE {
                let id = self.base + k as u64;
                self.old.insert(id, key);
                self.old_max = self.old_max.max(id);
                self.in_window -= 1;
            }
        }
        self.base += n as u64;
        while self.window.front() == Some(&NONE) {
            self.window.pop_front();
            self.base += 1;
        }
    }

    /// Gives back memory after many jobs went.
    pub fn shrink(&mut self) {
        self.window.shrink_to_fit();
        self.old.shrink_to_fit();
    }

    pub fn reserve(&mut self, n: usize) {
        self.window.reserve(n);
    }

    /// Entries the window and the map have room for.
    pub fn capacity(&self) -> usize {
        self.window.capacity() + self.old.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A small deterministic generator (xorshift), no crate needed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn agrees_with_a_hash_map_when_ids_come_in_any_order() {
        // A replica hears ids in whatever order its primary's records
        // give them (the fuzz target found a window grown over an old id).
        for seed in 1..40u64 {
            let mut rng = Rng(seed * 0x2545_f491);
            let mut idx = IdIndex::default();
            let mut map: HashMap<u64, JobKey> = HashMap::new();
            let span = [12, 3000, 100_000][seed as usize % 3];
            for step in 0..5_000u32 {
                let id = 1 + rng.next() % span;
                match rng.next() % 3 {
                    0 => {
                        idx.insert(id, step);
                        map.insert(id, step);
                    }
                    1 => assert_eq!(idx.remove(id), map.remove(&id), "seed {seed} step {step}"),
                    _ => assert_eq!(
                        idx.get(id),
                        map.get(&id).copied(),
                        "seed {seed} step {step}"
                    ),
                }
                assert_eq!(idx.len(), map.len(), "seed {seed} step {step}");
            }
        }
        let mut idx = IdIndex::default();
        for (op, id) in [(1, 9), (1, 4), (0, 9), (1, 2), (1, 11)] {
            if op == 1 {
                idx.insert(id, id as JobKey);
            } else {
                idx.remove(id);
            }
        }
        assert_eq!(idx.get(4), Some(4));
    }

    #[test]
    fn agrees_with_a_hash_map() {
        for seed in 1..20u64 {
            let mut rng = Rng(seed * 0x9e37_79b9);
            let mut idx = IdIndex::default();
            let mut map: HashMap<u64, JobKey> = HashMap::new();
            let mut next = 1 + rng.next() % 1000;
            for step in 0..20_000u32 {
                match rng.next() % 10 {
                    0..=4 => {
                        idx.insert(next, step);
                        map.insert(next, step);
                        next += 1 + rng.next().is_multiple_of(50) as u64 * (rng.next() % 5000);
                    }
                    5..=8 => {
                        // Mostly the oldest jobs go, sometimes any.
                        let id = if rng.next().is_multiple_of(4) {
                            next.saturating_sub(rng.next() % 3000)
                        } else {
                            map.keys().min().copied().unwrap_or(0)
                        };
                        assert_eq!(idx.remove(id), map.remove(&id), "seed {seed} step {step}");
                    }
                    _ => {
                        let id = next.saturating_sub(rng.next() % 5000);
                        assert_eq!(idx.get(id), map.get(&id).copied(), "seed {seed}");
                    }
                }
                assert_eq!(idx.len(), map.len());
            }
            for (&id, &key) in &map {
                assert_eq!(idx.get(id), Some(key));
            }
        }
    }

    #[test]
    fn a_long_lived_job_does_not_pin_the_window() {
        let mut idx = IdIndex::default();
        idx.insert(1, 1); // buried forever
        for id in 2..200_000u64 {
            idx.insert(id, 7);
            if id > 10 {
                idx.remove(id - 8);
            }
        }
        assert_eq!(idx.get(1), Some(1));
        assert!(
            idx.window.len() < 4 * MIN_WINDOW,
            "window {}",
            idx.window.len()
        );
        assert!(idx.len() < 20);
    }
}
