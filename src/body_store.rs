//! Where job bodies live.
//!
//! In an allocation of its own, a 100-byte body costs 112 bytes of heap
//! (malloc's header and rounding) and 16 more for the pointer and length in
//! the job. Bodies up to [`SMALL_MAX`] bytes are packed instead into chunks
//! of equal slots, one size class per 4 bytes, and a job keeps an 8-byte
//! [`BodyRef`]: 100 + 8 bytes for that body. Larger bodies keep an
//! allocation each, where the overhead is small. The CRLF that ends a body
//! on the wire is not stored.
//!
//! A chunk goes back to the allocator as soon as its last body is removed,
//! so memory follows the jobs out as far as their order allows; each class
//! keeps one emptied chunk at hand, so that a queue which empties and fills
//! again does not allocate on every put ([`BodyStore::shrink`] drops it).

use std::borrow::Cow;

use slab::Slab;

/// Bodies longer than this get an allocation of their own.
pub const SMALL_MAX: usize = 1024;
/// Slot sizes are multiples of this; it also leaves room in a free slot
/// for the link to the next free one.
const GRAIN: usize = 4;
/// A chunk holds a power of two of slots, between half this and this.
const CHUNK_BYTES: usize = 16 * 1024;
const NIL: u32 = u32::MAX;

/// A body in a [`BodyStore`]: valid until removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRef {
    /// A slot in the body's size class, or a key in the large bodies.
    slot: u32,
    len: u32,
}

impl BodyRef {
    /// Length in bytes.
    pub fn len(self) -> usize {
        self.len as usize
    }

    pub fn is_empty(self) -> bool {
        self.len == 0
    }
}

#[derive(Debug)]
pub struct BodyStore {
    /// Class `i` holds bodies of up to `(i + 1) * GRAIN` bytes, and more
    /// than `i * GRAIN` (class 0 also the empty ones).
    classes: Vec<Class>,
    large: Slab<Box<[u8]>>,
}

#[derive(Debug)]
struct Class {
    slot_size: usize,
    /// log2 of the slots per chunk.
    shift: u32,
    /// By chunk number; None once emptied and freed.
    chunks: Vec<Option<Chunk>>,
    /// Chunks that may have a free slot, checked when used. A chunk is
    /// made only when this is empty, so a freed chunk's number is reused
    /// only after its stale entry here is gone.
    with_room: Vec<u32>,
    /// Numbers of freed chunks.
    vacant: Vec<u32>,
    spare: Option<Box<[u8]>>,
}

#[derive(Debug)]
struct Chunk {
    bytes: Box<[u8]>,
    /// The first free slot, or NIL; a free slot holds the next in its
    /// first four bytes.
    free: u32,
    /// Slots from here on were never used.
    fresh: u32,
    live: u32,
    /// Whether the chunk is in `with_room`.
    listed: bool,
}

impl Default for BodyStore {
    fn default() -> Self {
        BodyStore::new()
    }
}

impl BodyStore {
    pub fn new() -> Self {
        let classes = (1..=SMALL_MAX / GRAIN)
            .map(|i| {
                let slot_size = i * GRAIN;
                Class {
                    slot_size,
                    shift: (CHUNK_BYTES / slot_size).ilog2(),
                    chunks: Vec::new(),
                    with_room: Vec::new(),
                    vacant: Vec::new(),
                    spare: None,
                }
            })
            .collect();
        BodyStore {
            classes,
            large: Slab::new(),
        }
    }

    /// Stores a body; an owned large one keeps its allocation.
    pub fn insert(&mut self, body: Cow<[u8]>) -> BodyRef {
        let len = body.len() as u32;
        if body.len() > SMALL_MAX {
            let slot = self.large.insert(body.into_owned().into_boxed_slice()) as u32;
            return BodyRef { slot, len };
        }
        let class = &mut self.classes[class_of(body.len())];
        let slot = class.alloc();
        class.slot_mut(slot)[..body.len()].copy_from_slice(&body);
        BodyRef { slot, len }
    }

    pub fn get(&self, r: BodyRef) -> &[u8] {
        let len = r.len();
        if len > SMALL_MAX {
            return &self.large[r.slot as usize];
        }
        let class = &self.classes[class_of(len)];
        let (n, at) = class.place(r.slot);
        match &class.chunks[n] {
            Some(chunk) => &chunk.bytes[at..at + len],
            None => unreachable!("body {r:?} was removed"),
        }
    }

    pub fn remove(&mut self, r: BodyRef) {
        let len = r.len();
        if len > SMALL_MAX {
            self.large.remove(r.slot as usize);
        } else {
            self.classes[class_of(len)].free(r.slot);
        }
    }

    /// Chunks and large bodies held, for tests of memory given back.
    #[cfg(test)]
    pub fn allocations(&self) -> usize {
        self.classes.iter().map(Class::chunks_held).sum::<usize>() + self.large.len()
    }

    /// Gives back the chunks kept at hand, and the bookkeeping of classes
    /// left empty.
    pub fn shrink(&mut self) {
        for class in &mut self.classes {
            class.spare = None;
            if class.chunks.iter().all(Option::is_none) {
                class.chunks = Vec::new();
                class.with_room = Vec::new();
                class.vacant = Vec::new();
            }
        }
        self.large.shrink_to_fit();
    }
}

fn class_of(len: usize) -> usize {
    len.saturating_sub(1) / GRAIN
}

impl Class {
    /// Chunk number and byte offset of `slot`.
    fn place(&self, slot: u32) -> (usize, usize) {
        let n = (slot >> self.shift) as usize;
        let i = (slot & ((1 << self.shift) - 1)) as usize;
        (n, i * self.slot_size)
    }

    /// The bytes of a slot that `alloc` gave and `free` has not taken.
    fn slot_mut(&mut self, slot: u32) -> &mut [u8] {
        let (n, at) = self.place(slot);
        match &mut self.chunks[n] {
            Some(chunk) => &mut chunk.bytes[at..at + self.slot_size],
            None => unreachable!("slot {slot} of a freed chunk"),
        }
    }

    fn per_chunk(&self) -> u32 {
        1 << self.shift
    }

    fn alloc(&mut self) -> u32 {
        let per_chunk = self.per_chunk();
        while let Some(&n) = self.with_room.last() {
            let Some(chunk) = &mut self.chunks[n as usize] else {
                self.with_room.pop();
                continue;
            };
            let i = if chunk.free != NIL {
                let i = chunk.free;
                let at = i as usize * self.slot_size;
                let mut link = [0; 4];
                link.copy_from_slice(&chunk.bytes[at..at + 4]);
                chunk.free = u32::from_ne_bytes(link);
                i
            } else if chunk.fresh < per_chunk {
                chunk.fresh += 1;
                chunk.fresh - 1
            } else {
                chunk.listed = false;
                self.with_room.pop();
                continue;
            };
            chunk.live += 1;
            return (n << self.shift) | i;
        }
        let bytes = (self.spare.take())
            .unwrap_or_else(|| vec![0; self.slot_size << self.shift].into_boxed_slice());
        let n = self.vacant.pop().unwrap_or_else(|| {
            self.chunks.push(None);
            self.chunks.len() as u32 - 1
        });
        self.chunks[n as usize] = Some(Chunk {
            bytes,
            free: NIL,
            fresh: 1,
            live: 1,
            listed: true,
        });
        self.with_room.push(n);
        n << self.shift
    }

    fn free(&mut self, slot: u32) {
        let (n, at) = self.place(slot);
        let mask = self.per_chunk() - 1;
        let Some(chunk) = &mut self.chunks[n] else {
            unreachable!("slot {slot} of a freed chunk");
        };
        chunk.live -= 1;
        if chunk.live == 0 {
            if let Some(chunk) = self.chunks[n].take() {
                self.spare.get_or_insert(chunk.bytes);
            }
            self.vacant.push(n as u32);
            return;
        }
        chunk.bytes[at..at + 4].copy_from_slice(&chunk.free.to_ne_bytes());
        chunk.free = slot & mask;
        if !chunk.listed {
            chunk.listed = true;
            self.with_room.push(n as u32);
        }
    }

    #[cfg(test)]
    fn chunks_held(&self) -> usize {
        self.chunks.iter().flatten().count() + self.spare.is_some() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(len: usize, seed: u64) -> Vec<u8> {
        (0..len)
            .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64) % 251) as u8)
            .collect()
    }

    #[test]
    fn agrees_with_a_map_under_random_traffic() {
        // A deterministic xorshift drives puts and deletes of every size
        // class and some large bodies; every live body must read back.
        let mut s = BodyStore::new();
        let mut live: Vec<(BodyRef, u64, usize)> = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for seed in 0..60_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 5 < 3 || live.is_empty() {
                let len = match x % 100 {
                    0 => SMALL_MAX + 1 + (x >> 8) as usize % 5000,
                    1..=50 => 100 + (x >> 8) as usize % 8,
                    _ => 2 + (x >> 8) as usize % (SMALL_MAX - 1),
                };
                let b = body(len, seed);
                let r = if seed % 2 == 0 {
                    s.insert(Cow::Borrowed(&b))
                } else {
                    s.insert(Cow::Owned(b))
                };
                live.push((r, seed, len));
            } else {
                let (r, ..) = live.swap_remove((x >> 8) as usize % live.len());
                s.remove(r);
            }
        }
        for &(r, seed, len) in &live {
            assert_eq!(s.get(r), &body(len, seed)[..]);
        }
        for (r, ..) in live {
            s.remove(r);
        }
        s.shrink();
        assert!(s.classes.iter().all(|c| c.chunks_held() == 0));
        assert!(s.large.is_empty());
    }

    #[test]
    fn an_emptied_chunk_goes_back_while_others_live() {
        let mut s = BodyStore::new();
        let per_chunk = s.classes[class_of(100)].per_chunk() as usize;
        let refs: Vec<BodyRef> = (0..per_chunk * 4)
            .map(|i| s.insert(Cow::Owned(body(100, i as u64))))
            .collect();
        let class = class_of(100);
        assert_eq!(s.classes[class].chunks_held(), 4);
        // Empty the second and third chunks: one is freed, one kept at
        // hand; the others' bodies are untouched.
        for r in &refs[per_chunk..per_chunk * 3] {
            s.remove(*r);
        }
        assert_eq!(s.classes[class].chunks_held(), 3);
        s.shrink();
        assert_eq!(s.classes[class].chunks_held(), 2);
        for (i, r) in refs.iter().enumerate() {
            if !(per_chunk..per_chunk * 3).contains(&i) {
                assert_eq!(s.get(*r), &body(100, i as u64)[..]);
            }
        }
        // New bodies fill the freed chunks' numbers before growing.
        let more: Vec<BodyRef> = (0..per_chunk * 2)
            .map(|i| s.insert(Cow::Owned(body(97, i as u64))))
            .collect();
        assert_eq!(s.classes[class].chunks.len(), 4);
        assert_eq!(s.get(more[0]), &body(97, 0)[..]);
    }

    #[test]
    fn a_queue_that_empties_and_refills_reuses_its_chunk() {
        let mut s = BodyStore::new();
        for i in 0..1000 {
            let r = s.insert(Cow::Owned(body(50, i)));
            assert_eq!(s.get(r), &body(50, i)[..]);
            s.remove(r);
            assert_eq!(s.classes[class_of(50)].chunks_held(), 1);
        }
    }
}
