//! A hierarchical timer wheel with millisecond ticks.
//!
//! Every deadline the server has (a reservation's TTR, a waiting reserve's
//! timeout or DEADLINE_SOON, a delayed job becoming ready, a paused tube
//! resuming) is one entry here. Insert and cancel are O(1); finding the next
//! deadline is O(levels) thanks to a 64-bit occupancy mask per level, so an
//! idle server can sleep exactly until the next thing it has to do.
//!
//! Level `l` has 64 slots of 64^l ms each. An entry lives in the level of the
//! highest 6-bit group in which its deadline differs from `elapsed` (the first
//! millisecond not yet processed). When time reaches a slot of level > 0 its
//! entries are re-placed one level lower, until they fire from level 0 at the
//! exact millisecond. Deadlines beyond the top level's reach (~795 days) are
//! parked in the top level and re-placed when that slot comes round.
//!
//! The wheel has no clock: callers pass `now` in milliseconds.

use std::num::NonZeroU32;

use slab::Slab;

const LEVELS: usize = 6;
const BITS: u32 = 6;
const SLOTS: usize = 1 << BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// The span of the top level.
const REACH: u64 = 1 << (BITS as u64 * LEVELS as u64);
const NIL: u32 = u32::MAX;

/// A handle for cancelling a timer: the entry's key plus one, so that an
/// `Option<TimerId>` (one in every job) takes 4 bytes, not 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerId(NonZeroU32);

impl TimerId {
    fn key(self) -> u32 {
        self.0.get() - 1
    }
}

struct Entry<T> {
    when: u64,
    value: T,
    level: u8,
    slot: u8,
    prev: u32,
    next: u32,
}

struct Level {
    occupied: u64,
    head: [u32; SLOTS],
    tail: [u32; SLOTS],
}

impl Default for Level {
    fn default() -> Self {
        Level {
            occupied: 0,
            head: [NIL; SLOTS],
            tail: [NIL; SLOTS],
        }
    }
}

pub struct TimerWheel<T> {
    elapsed: u64,
    levels: [Level; LEVELS],
    entries: Slab<Entry<T>>,
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new(0)
    }
}

impl<T> TimerWheel<T> {
    /// A wheel whose clock starts at `now` ms.
    pub fn new(now: u64) -> Self {
        TimerWheel {
            elapsed: now,
            levels: Default::default(),
            entries: Slab::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Gives back the room of timers gone (up to the last one in use).
    pub fn shrink(&mut self) {
        self.entries.shrink_to_fit();
    }

    /// Schedules `value` to fire at `when` ms. A deadline in the past fires
    /// at the next [`poll`](Self::poll).
    pub fn insert(&mut self, when: u64, value: T) -> TimerId {
        let key = self.entries.insert(Entry {
            when,
            value,
            level: 0,
            slot: 0,
            prev: NIL,
            next: NIL,
        });
        self.place(key as u32);
        // Slab keys stay below u32::MAX: each entry takes far more than a byte.
        TimerId(NonZeroU32::MIN.saturating_add(key as u32))
    }

    /// Removes the timer `id` if it is still pending and its value passes
    /// `is_mine`. The check makes a stale handle harmless: its slot may have
    /// been reused by an unrelated timer.
    pub fn cancel(&mut self, id: TimerId, is_mine: impl FnOnce(&T) -> bool) -> bool {
        let key = id.key();
        match self.entries.get(key as usize) {
            Some(e) if is_mine(&e.value) => {
                self.unlink(key);
                self.entries.remove(key as usize);
                true
            }
            _ => false,
        }
    }

    /// The millisecond at which the next timer is due (possibly in the past),
    /// or `None` when nothing is scheduled. May be earlier than any real
    /// deadline when a higher level needs re-placing first; polling then
    /// simply fires nothing.
    pub fn next_expiration(&self) -> Option<u64> {
        self.next_slot().map(|(_, _, at)| at)
    }

    /// Fires every timer due at or before `now`, appending their values to
    /// `fired` in deadline order.
    pub fn poll(&mut self, now: u64, fired: &mut Vec<T>) {
        while let Some((level, slot, at)) = self.next_slot() {
            if at > now {
                break;
            }
            self.elapsed = self.elapsed.max(at);
            let lv = &mut self.levels[level];
            let mut key = lv.head[slot];
            lv.head[slot] = NIL;
            lv.tail[slot] = NIL;
            lv.occupied &= !(1 << slot);
            while key != NIL {
                let next = self.entries[key as usize].next;
                if self.entries[key as usize].when <= now {
                    fired.push(self.entries.remove(key as usize).value);
                } else {
                    self.place(key);
                }
                key = next;
            }
        }
        self.elapsed = self.elapsed.max(now);
    }

    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        for (l, lv) in self.levels.iter().enumerate() {
            if lv.occupied == 0 {
                continue;
            }
            let shift = BITS * l as u32;
            let current = ((self.elapsed >> shift) & SLOT_MASK) as u32;
            let slot =
                (lv.occupied.rotate_right(current).trailing_zeros() + current) as usize % SLOTS;
            let rotation = 1u64 << (shift + BITS);
            let start = self.elapsed & !(rotation - 1);
            let mut at = start + ((slot as u64) << shift);
            if slot < current as usize {
                // Only parked far-future entries wrap into the next rotation.
                at += rotation;
            }
            return Some((l, slot, at.max(self.elapsed)));
        }
        None
    }

    fn place(&mut self, key: u32) {
        let when = self.entries[key as usize].when.max(self.elapsed);
        // At most half the top level's span ahead, so a parked entry's top
        // slot is never the current one and each re-placing makes progress.
        let eff = when.min(self.elapsed + REACH / 2);
        let differing = (self.elapsed ^ eff) | SLOT_MASK;
        let level = (((63 - differing.leading_zeros()) / BITS) as usize).min(LEVELS - 1);
        let slot = ((eff >> (BITS * level as u32)) & SLOT_MASK) as usize;
        let lv = &mut self.levels[level];
        let tail = lv.tail[slot];
        {
            let e = &mut self.entries[key as usize];
            e.level = level as u8;
            e.slot = slot as u8;
            e.prev = tail;
            e.next = NIL;
        }
        if tail == NIL {
            lv.head[slot] = key;
        } else {
            self.entries[tail as usize].next = key;
        }
        lv.tail[slot] = key;
        lv.occupied |= 1 << slot;
    }

    fn unlink(&mut self, key: u32) {
        let (level, slot, prev, next) = {
            let e = &self.entries[key as usize];
            (e.level as usize, e.slot as usize, e.prev, e.next)
        };
        let lv = &mut self.levels[level];
        if prev == NIL {
            lv.head[slot] = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            lv.tail[slot] = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
        if lv.head[slot] == NIL {
            lv.occupied &= !(1 << slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(w: &mut TimerWheel<u32>, now: u64) -> Vec<u32> {
        let mut v = vec![];
        w.poll(now, &mut v);
        v
    }

    #[test]
    fn fires_at_the_exact_millisecond() {
        let mut w = TimerWheel::new(1000);
        for (i, d) in [1u64, 63, 64, 65, 4095, 4096, 300_000, 86_400_000]
            .iter()
            .enumerate()
        {
            w.insert(1000 + d, i as u32);
        }
        let mut now = 1000;
        let mut seen = vec![];
        // Step through time by jumping to each reported expiration.
        while let Some(at) = w.next_expiration() {
            assert!(at >= now);
            now = at;
            for v in drain(&mut w, now) {
                seen.push((v, now - 1000));
            }
        }
        let expect: Vec<(u32, u64)> = [1u64, 63, 64, 65, 4095, 4096, 300_000, 86_400_000]
            .iter()
            .enumerate()
            .map(|(i, d)| (i as u32, *d))
            .collect();
        assert_eq!(seen, expect);
        assert!(w.is_empty());
    }

    #[test]
    fn late_poll_fires_everything_due_in_order() {
        let mut w = TimerWheel::new(0);
        w.insert(5000, 3);
        w.insert(10, 1);
        w.insert(700, 2);
        w.insert(9000, 4);
        assert_eq!(drain(&mut w, 6000), vec![1, 2, 3]);
        assert_eq!(w.next_expiration().map(|t| t <= 9000), Some(true));
        assert_eq!(drain(&mut w, 8999), Vec::<u32>::new());
        assert_eq!(drain(&mut w, 9000), vec![4]);
    }

    #[test]
    fn past_deadlines_fire_on_next_poll() {
        let mut w = TimerWheel::new(500);
        w.insert(100, 7);
        assert_eq!(w.next_expiration(), Some(500));
        assert_eq!(drain(&mut w, 500), vec![7]);
    }

    #[test]
    fn cancel_removes_and_rejects_stale_handles() {
        let mut w = TimerWheel::new(0);
        let a = w.insert(100, 1);
        let b = w.insert(100, 2);
        assert!(w.cancel(a, |v| *v == 1));
        assert!(!w.cancel(a, |v| *v == 1));
        // The slot of `a` is reused; the stale handle must not cancel it.
        let c = w.insert(200, 3);
        assert_eq!(a, c);
        assert!(!w.cancel(a, |v| *v == 1));
        assert_eq!(drain(&mut w, 1000), vec![2, 3]);
        assert!(!w.cancel(b, |v| *v == 2));
        assert_eq!(w.next_expiration(), None);
    }

    #[test]
    fn beyond_reach_is_parked_and_still_exact() {
        let mut w = TimerWheel::new(0);
        let far = REACH * 3 + 12345;
        w.insert(far, 9);
        let mut now = 0;
        let mut polls = 0;
        while let Some(at) = w.next_expiration() {
            now = at;
            polls += 1;
            assert!(polls < 100);
            if !drain(&mut w, now).is_empty() {
                break;
            }
        }
        assert_eq!(now, far);
    }

    #[test]
    fn matches_a_sorted_model_under_random_use() {
        let mut w = TimerWheel::new(0);
        let mut model: Vec<(u64, u32, TimerId)> = vec![];
        let mut x: u64 = 99;
        let mut now = 0u64;
        for i in 0..5000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            match (x >> 60) % 4 {
                0 | 1 => {
                    let span = [10u64, 1000, 100_000, 10_000_000][((x >> 10) % 4) as usize];
                    let when = now + (x >> 20) % span;
                    let id = w.insert(when, i);
                    model.push((when, i, id));
                }
                2 if !model.is_empty() => {
                    let k = ((x >> 8) as usize) % model.len();
                    let (_, v, id) = model.remove(k);
                    assert!(w.cancel(id, |x| *x == v));
                }
                _ => {
                    now += (x >> 30) % 50_000;
                    let mut got = drain(&mut w, now);
                    let mut due: Vec<u32> =
                        model.iter().filter(|m| m.0 <= now).map(|m| m.1).collect();
                    model.retain(|m| m.0 > now);
                    got.sort();
                    due.sort();
                    assert_eq!(got, due, "at {now}");
                    if let Some(next) = w.next_expiration() {
                        let min = model.iter().map(|m| m.0).min().unwrap();
                        assert!(next <= min && next > now);
                    } else {
                        assert!(model.is_empty());
                    }
                }
            }
        }
    }
}
