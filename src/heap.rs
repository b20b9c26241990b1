//! An indexed binary min-heap: a priority queue that can also remove an
//! element from the middle in O(log n).
//!
//! Each element is a small sort key plus the slab key of the item it stands
//! for (a job or a tube). Whenever an element moves, the heap tells the owner
//! of the items its new position through [`Positions`], so the owner can later
//! ask for that exact element to be removed (a job deleted while ready, a
//! delayed job kicked, a tube that stops being a dispatch candidate).
//!
//! Keys are copied into the heap rather than looked up through the items, so a
//! sift touches only this vector.

/// A `u64` kept as two `u32` halves (high first, so the derived order is
/// the number's). A key made of these needs only 4-byte alignment: a
/// (priority, id) key and its item then take 16 bytes, not 24, once per
/// job waiting in a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Split64([u32; 2]);

impl Split64 {
    pub fn get(self) -> u64 {
        (self.0[0] as u64) << 32 | self.0[1] as u64
    }
}

impl From<u64> for Split64 {
    fn from(n: u64) -> Self {
        Split64([(n >> 32) as u32, n as u32])
    }
}

/// Where the heap records each item's current index.
pub trait Positions {
    fn set_position(&mut self, item: u32, pos: u32);
}

#[derive(Debug, Clone, Copy)]
struct Entry<K> {
    key: K,
    item: u32,
}

/// A min-heap of `(key, item)` pairs ordered by `key`.
#[derive(Debug)]
pub struct Heap<K> {
    entries: Vec<Entry<K>>,
}

impl<K> Default for Heap<K> {
    fn default() -> Self {
        Heap {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord + Copy> Heap<K> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Gives back memory when at most a quarter of the room is used.
    pub fn shrink(&mut self) {
        if self.entries.len() * 4 <= self.entries.capacity() {
            self.entries.shrink_to_fit();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The smallest element, without removing it.
    pub fn peek(&self) -> Option<(K, u32)> {
        self.entries.first().map(|e| (e.key, e.item))
    }

    /// The item stored at `pos`, if any.
    pub fn item_at(&self, pos: u32) -> Option<u32> {
        self.entries.get(pos as usize).map(|e| e.item)
    }

    /// The key stored at `pos`, if any.
    pub fn key_at(&self, pos: u32) -> Option<K> {
        self.entries.get(pos as usize).map(|e| e.key)
    }

    pub fn push(&mut self, key: K, item: u32, at: &mut impl Positions) {
        self.entries.push(Entry { key, item });
        let last = self.entries.len() - 1;
        at.set_position(item, last as u32);
        self.sift_up(last, at);
    }

    pub fn pop(&mut self, at: &mut impl Positions) -> Option<(K, u32)> {
        if self.entries.is_empty() {
            return None;
        }
        Some(self.remove_at(0, at))
    }

    /// Removes the element at `pos` (as last reported through [`Positions`]).
    ///
    /// # Panics
    /// If `pos` is out of range: that is a broken invariant in the caller.
    pub fn remove(&mut self, pos: u32, at: &mut impl Positions) -> (K, u32) {
        self.remove_at(pos as usize, at)
    }

    /// Every item, in no particular order.
    pub fn items(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().map(|e| e.item)
    }

    /// Every element, key and item, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (K, u32)> + '_ {
        self.entries.iter().map(|e| (e.key, e.item))
    }

    fn remove_at(&mut self, pos: usize, at: &mut impl Positions) -> (K, u32) {
        let removed = self.entries.swap_remove(pos);
        if pos < self.entries.len() {
            let moved = self.entries[pos].item;
            at.set_position(moved, pos as u32);
            // The element moved in from the end may belong above or below.
            if pos > 0 && self.entries[pos].key < self.entries[(pos - 1) / 2].key {
                self.sift_up(pos, at);
            } else {
                self.sift_down(pos, at);
            }
        }
        (removed.key, removed.item)
    }

    fn sift_up(&mut self, mut pos: usize, at: &mut impl Positions) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.entries[pos].key >= self.entries[parent].key {
                break;
            }
            self.swap(pos, parent, at);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize, at: &mut impl Positions) {
        let len = self.entries.len();
        loop {
            let left = 2 * pos + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.entries[right].key < self.entries[left].key {
                right
            } else {
                left
            };
            if self.entries[child].key >= self.entries[pos].key {
                break;
            }
            self.swap(pos, child, at);
            pos = child;
        }
    }

    fn swap(&mut self, a: usize, b: usize, at: &mut impl Positions) {
        self.entries.swap(a, b);
        at.set_position(self.entries[a].item, a as u32);
        at.set_position(self.entries[b].item, b as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Pos(HashMap<u32, u32>);
    impl Positions for Pos {
        fn set_position(&mut self, item: u32, pos: u32) {
            self.0.insert(item, pos);
        }
    }

    fn check(h: &Heap<u64>, pos: &Pos) {
        for (i, e) in h.entries.iter().enumerate() {
            assert_eq!(pos.0[&e.item], i as u32, "position of item {}", e.item);
            if i > 0 {
                assert!(h.entries[(i - 1) / 2].key <= e.key, "heap order at {i}");
            }
        }
    }

    #[test]
    fn split_keys_order_as_their_numbers() {
        let nums = [
            0,
            1,
            u32::MAX as u64,
            1 << 32,
            (1 << 32) + 1,
            u64::MAX - 1,
            u64::MAX,
        ];
        for &a in &nums {
            assert_eq!(Split64::from(a).get(), a);
            for &b in &nums {
                assert_eq!(Split64::from(a).cmp(&Split64::from(b)), a.cmp(&b));
            }
        }
        assert_eq!(std::mem::size_of::<Entry<(u32, Split64)>>(), 16);
    }

    #[test]
    fn pops_in_key_order() {
        let mut h = Heap::default();
        let mut p = Pos::default();
        let keys = [5u64, 3, 9, 1, 7, 3, 0, 8];
        for (i, k) in keys.iter().enumerate() {
            h.push(*k, i as u32, &mut p);
            check(&h, &p);
        }
        let mut out = vec![];
        while let Some((k, _)) = h.pop(&mut p) {
            check(&h, &p);
            out.push(k);
        }
        let mut sorted = keys.to_vec();
        sorted.sort();
        assert_eq!(out, sorted);
    }

    #[test]
    fn removes_from_the_middle() {
        // A small deterministic pseudo-random sequence of pushes and removals,
        // checked against a sorted model after every step.
        let mut h = Heap::default();
        let mut p = Pos::default();
        let mut model: Vec<(u64, u32)> = vec![];
        let mut x: u64 = 12345;
        for step in 0..2000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if model.is_empty() || !(x >> 33).is_multiple_of(3) {
                let key = (x >> 40) % 100;
                h.push(key, step, &mut p);
                model.push((key, step));
            } else {
                let victim = model.remove(((x >> 20) as usize) % model.len());
                let (k, item) = h.remove(p.0[&victim.1], &mut p);
                assert_eq!((k, item), victim);
            }
            check(&h, &p);
            let min = model.iter().map(|m| m.0).min();
            assert_eq!(h.peek().map(|e| e.0), min);
        }
    }
}
