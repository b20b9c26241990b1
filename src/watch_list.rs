//! The tubes one connection watches.
//!
//! Kept in watch order, which `list-tubes-watched` shows; `ignore` moves the
//! last tube into the gap, as beanstalkd's set does. A long list also keeps
//! its tubes sorted, so that "does this connection watch tube t?" costs
//! O(log n): a reserve over thousands of watched tubes then looks only at
//! the few tubes that hold ready jobs (see `Engine::best_ready`).

use crate::job::TubeId;
use crate::tube::NIL;

/// Lists up to this long are searched by a plain scan and keep no sorted
/// copy: most connections watch one or two tubes.
const SCAN_LEN: usize = 8;

#[derive(Debug)]
pub struct WatchList {
    /// Each tube with this connection's index in that tube's waiting set
    /// (NIL when not waiting).
    entries: Vec<(TubeId, u32)>,
    /// The same tubes in ascending order while `entries` is longer than
    /// `SCAN_LEN`; empty otherwise.
    sorted: Vec<TubeId>,
}

impl WatchList {
    /// A list holding only `t`.
    pub fn new(t: TubeId) -> Self {
        WatchList {
            entries: vec![(t, NIL)],
            sorted: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, t: TubeId) -> bool {
        if self.sorted.is_empty() {
            self.entries.iter().any(|&(w, _)| w == t)
        } else {
            self.sorted.binary_search(&t).is_ok()
        }
    }

    /// Adds `t` at the end; false if it was already watched.
    pub fn watch(&mut self, t: TubeId) -> bool {
        if self.contains(t) {
            return false;
        }
        self.entries.push((t, NIL));
        if !self.sorted.is_empty() {
            let at = self.sorted.partition_point(|&s| s < t);
            self.sorted.insert(at, t);
        } else if self.entries.len() > SCAN_LEN {
            self.sorted = self.entries.iter().map(|&(w, _)| w).collect();
            self.sorted.sort_unstable();
        }
        true
    }

    /// Removes `t`, moving the last tube into its place; false if it was
    /// not watched. Only for a connection that is not waiting: the moved
    /// entry's waiting-set index is not maintained.
    pub fn ignore(&mut self, t: TubeId) -> bool {
        let Some(i) = self.entries.iter().position(|&(w, _)| w == t) else {
            return false;
        };
        self.entries.swap_remove(i);
        if self.entries.len() <= SCAN_LEN {
            self.sorted = Vec::new();
        } else if let Ok(at) = self.sorted.binary_search(&t) {
            self.sorted.remove(at);
        }
        true
    }

    /// The tubes, in watch order.
    pub fn tubes(&self) -> impl Iterator<Item = TubeId> + '_ {
        self.entries.iter().map(|&(t, _)| t)
    }

    /// The `i`th entry: a tube and this connection's waiting-set index there.
    pub fn entry(&self, i: usize) -> (TubeId, u32) {
        self.entries[i]
    }

    pub fn set_waiting_index(&mut self, i: usize, pos: u32) {
        self.entries[i].1 = pos;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(w: &WatchList) -> Vec<TubeId> {
        w.tubes().collect()
    }

    #[test]
    fn ignore_moves_the_last_tube_into_the_gap() {
        let mut w = WatchList::new(0);
        assert!(w.watch(5));
        assert!(w.watch(3));
        assert!(!w.watch(5));
        assert!(w.ignore(0));
        assert!(!w.ignore(0));
        assert_eq!(order(&w), [3, 5]);
    }

    #[test]
    fn membership_holds_across_the_scan_limit_both_ways() {
        // Tube ids in a scrambled order, so sorted and watch order differ.
        let ids: Vec<TubeId> = (0..40).map(|i| (i * 17) % 41).collect();
        let mut w = WatchList::new(1000);
        for (n, &t) in ids.iter().enumerate() {
            assert!(w.watch(t));
            for &seen in &ids[..=n] {
                assert!(w.contains(seen), "{seen} after {n} watches");
            }
            assert!(!w.contains(41));
        }
        for (n, &t) in ids.iter().enumerate().rev() {
            assert!(w.ignore(t));
            assert!(!w.contains(t));
            for &left in &ids[..n] {
                assert!(w.contains(left), "{left} after ignoring {t}");
            }
            assert_eq!(w.len(), n + 1);
        }
        assert_eq!(order(&w), [1000]);
    }
}
