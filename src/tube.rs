//! Tubes and the registry that names them.
//!
//! A tube holds its jobs in three heaps (ready by priority then id, delayed
//! by deadline then id, buried by bury order) and the set of connections
//! waiting to reserve from it. The registry keeps beanstalkd's listing order:
//! tubes are appended on creation and a freed tube's slot is filled by the
//! last one, which is the order `list-tubes` shows.

use std::collections::HashMap;

use slab::Slab;

use crate::heap::{Heap, Positions, Split64};
use crate::job::{ClientId, JobKey, Nanos, TubeId};
use crate::timer_wheel::TimerId;

/// Marks "not in the set" in position fields.
pub const NIL: u32 = u32::MAX;

/// A ready job's place in line: priority, then id (the oldest first).
pub type ReadyKey = (u32, Split64);

/// Jobs with a priority below this are "urgent" in stats.
pub const URGENT_PRI: u32 = 1024;

#[derive(Debug)]
pub struct Tube {
    pub name: Box<str>,
    pub ready: Heap<ReadyKey>,
    /// By deadline, then id.
    pub delayed: Heap<(Split64, Split64)>,
    /// By bury rank.
    pub buried: Heap<Split64>,
    pub reserved: u32,
    pub urgent: u32,
    /// Connections blocked in reserve that watch this tube, each with the
    /// index of this tube in its watch list. Served with a rotating cursor.
    pub waiting: Vec<(ClientId, u32)>,
    pub cursor: u32,
    pub using: u32,
    pub watching: u32,
    pub total_jobs: u64,
    /// Reservations of the tube's jobs, for its reserve rate (no command
    /// shows it).
    pub reserves: u64,
    pub cmd_delete: u64,
    pub cmd_pause: u64,
    /// Length of the current pause; 0 when not paused.
    pub pause: Nanos,
    pub unpause_at: Nanos,
    pub pause_timer: Option<TimerId>,
    /// Position in the engine's dispatch-candidate heap, or NIL.
    pub candidate: u32,
    list_pos: u32,
    /// Position in the registry's list of tubes with ready jobs, or NIL.
    ready_pos: u32,
}

impl Tube {
    fn new(name: &str, list_pos: u32) -> Self {
        Tube {
            name: name.into(),
            ready: Heap::default(),
            delayed: Heap::default(),
            buried: Heap::default(),
            reserved: 0,
            urgent: 0,
            waiting: Vec::new(),
            cursor: 0,
            using: 0,
            watching: 0,
            total_jobs: 0,
            reserves: 0,
            cmd_delete: 0,
            cmd_pause: 0,
            pause: 0,
            unpause_at: 0,
            pause_timer: None,
            candidate: NIL,
            list_pos,
            ready_pos: NIL,
        }
    }

    pub fn paused(&self) -> bool {
        self.pause > 0
    }

    /// Jobs in any state.
    pub fn job_count(&self) -> usize {
        self.ready.len() + self.delayed.len() + self.buried.len() + self.reserved as usize
    }

    fn unreferenced(&self) -> bool {
        self.job_count() == 0 && self.using == 0 && self.watching == 0
    }
}

/// All tubes, by id and by name.
#[derive(Debug, Default)]
pub struct Registry {
    pub slab: Slab<Tube>,
    by_name: HashMap<Box<str>, TubeId>,
    order: Vec<TubeId>,
    /// The tubes whose ready heap is not empty, in no particular order.
    with_ready: Vec<TubeId>,
    /// Most tubes alive since the containers were last shrunk.
    peak: usize,
    /// Bytes of the names of the tubes alive.
    name_bytes: usize,
}

/// What one tube counts against `--max-memory`: its record, its name (kept
/// twice: in the tube and in the index by name) and its share of the
/// registry's index, list and slab, and of a watch-list entry. A formula,
/// not a reading of RSS: a million tubes made by `watch` measured 316 MB
/// resident, 320 bytes each with 17-byte names; this counts 322.
pub fn tube_memory(name_len: usize) -> u64 {
    (std::mem::size_of::<Tube>() + 2 * name_len + TUBE_OVERHEAD) as u64
}

/// Allocation headers and rounding of the two names, the index entry, the
/// list and slab slots, and the watch-list entry.
const TUBE_OVERHEAD: usize = 96;

/// Registries smaller than this are not worth shrinking.
const SHRINK_FLOOR: usize = 1024;

/// The tube that always exists.
pub const DEFAULT: &str = "default";

impl Registry {
    /// A registry holding only `default`, which is never freed.
    pub fn new() -> Self {
        let mut r = Registry::default();
        r.find_or_make(DEFAULT);
        r
    }

    pub fn default_tube(&self) -> TubeId {
        self.order[0]
    }

    pub fn find(&self, name: &str) -> Option<TubeId> {
        self.by_name.get(name).copied()
    }

    pub fn find_or_make(&mut self, name: &str) -> TubeId {
        if let Some(t) = self.find(name) {
            return t;
        }
        let t = self.slab.insert(Tube::new(name, self.order.len() as u32)) as TubeId;
        self.by_name.insert(name.into(), t);
        self.order.push(t);
        self.peak = self.peak.max(self.order.len());
        self.name_bytes += name.len();
        t
    }

    /// What the tubes alive count against `--max-memory`, by [`tube_memory`].
    pub fn memory(&self) -> u64 {
        tube_memory(0) * self.order.len() as u64 + 2 * self.name_bytes as u64
    }

    /// Gives back the room of freed tubes once the tubes alive have halved
    /// since the last time (one connection may make and drop a million).
    /// Room below the highest live tube id stays: ids cannot move.
    pub fn shrink_if_emptied(&mut self) -> bool {
        let live = self.order.len();
        if self.peak < SHRINK_FLOOR || live > self.peak / 2 {
            return false;
        }
        self.peak = live;
        self.slab.shrink_to_fit();
        self.by_name.shrink_to_fit();
        self.order.shrink_to_fit();
        self.with_ready.shrink_to_fit();
        true
    }

    /// Frees `t` if nothing refers to it any more. `default` stays.
    pub fn release_if_unused(&mut self, t: TubeId) -> Option<Tube> {
        let tube = &self.slab[t as usize];
        if !tube.unreferenced() || t == self.default_tube() {
            return None;
        }
        let tube = self.slab.remove(t as usize);
        debug_assert_eq!(tube.ready_pos, NIL, "a tube with no jobs has none ready");
        self.by_name.remove(&tube.name);
        self.name_bytes -= tube.name.len();
        let pos = tube.list_pos as usize;
        self.order.swap_remove(pos);
        if let Some(&moved) = self.order.get(pos) {
            self.slab[moved as usize].list_pos = pos as u32;
        }
        Some(tube)
    }

    /// Brings the list of tubes with ready jobs up to date after tube
    /// `t`'s ready heap changed.
    pub fn ready_changed(&mut self, t: TubeId) {
        let tube = &mut self.slab[t as usize];
        match (tube.ready.is_empty(), tube.ready_pos) {
            (false, NIL) => {
                tube.ready_pos = self.with_ready.len() as u32;
                self.with_ready.push(t);
            }
            (true, pos) if pos != NIL => {
                tube.ready_pos = NIL;
                self.with_ready.swap_remove(pos as usize);
                if let Some(&moved) = self.with_ready.get(pos as usize) {
                    self.slab[moved as usize].ready_pos = pos;
                }
            }
            _ => {}
        }
    }

    /// The tubes that hold ready jobs (paused ones too).
    pub fn with_ready(&self) -> &[TubeId] {
        &self.with_ready
    }

    /// Tubes in `list-tubes` order.
    pub fn in_order(&self) -> impl Iterator<Item = &Tube> {
        self.order.iter().map(|&t| &self.slab[t as usize])
    }

    /// Tubes in `list-tubes` order, with their ids.
    pub fn in_order_with_ids(&self) -> impl Iterator<Item = (TubeId, &Tube)> {
        self.order.iter().map(|&t| (t, &self.slab[t as usize]))
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Lets a heap of tubes (the dispatch candidates) track their positions.
pub struct CandidatePositions<'a>(pub &'a mut Slab<Tube>);

impl Positions for CandidatePositions<'_> {
    fn set_position(&mut self, item: u32, pos: u32) {
        self.0[item as usize].candidate = pos;
    }
}

/// Lets a tube's heaps track their jobs' positions.
pub struct JobPositions<'a>(pub &'a mut Slab<crate::job::Job>);

impl Positions for JobPositions<'_> {
    fn set_position(&mut self, item: JobKey, pos: u32) {
        self.0[item as usize].pos = pos;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_memory_counts_is_what_the_docs_say() {
        // --help, sprout.1, compatibility.md and security.md give these.
        assert_eq!(tube_memory(0), 296);
        assert_eq!(crate::engine::job_memory(0), 84);
    }

    fn names(r: &Registry) -> Vec<&str> {
        r.in_order().map(|t| &*t.name).collect()
    }

    #[test]
    fn listing_order_follows_beanstalkd() {
        let mut r = Registry::new();
        let t1 = r.find_or_make("t1");
        r.find_or_make("t2");
        r.find_or_make("t3");
        assert_eq!(r.find_or_make("t2"), r.find("t2").unwrap());
        assert!(r.release_if_unused(t1).is_some());
        assert_eq!(names(&r), ["default", "t3", "t2"]);
        assert_eq!(r.find("t1"), None);
    }

    #[test]
    fn referenced_tubes_and_default_stay() {
        let mut r = Registry::new();
        let d = r.default_tube();
        assert!(r.release_if_unused(d).is_none());
        let t = r.find_or_make("busy");
        r.slab[t as usize].watching = 1;
        assert!(r.release_if_unused(t).is_none());
        r.slab[t as usize].watching = 0;
        r.slab[t as usize].reserved = 1;
        assert!(r.release_if_unused(t).is_none());
        r.slab[t as usize].reserved = 0;
        assert!(r.release_if_unused(t).is_some());
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn the_ready_list_follows_each_tubes_ready_heap() {
        struct Untracked;
        impl Positions for Untracked {
            fn set_position(&mut self, _: u32, _: u32) {}
        }
        let mut r = Registry::new();
        let a = r.find_or_make("a");
        let b = r.find_or_make("b");
        let push = |r: &mut Registry, t: TubeId, id: u64| {
            r.slab[t as usize]
                .ready
                .push((0, id.into()), 0, &mut Untracked);
            r.ready_changed(t);
        };
        let pop = |r: &mut Registry, t: TubeId| {
            r.slab[t as usize].ready.pop(&mut Untracked);
            r.ready_changed(t);
        };
        push(&mut r, a, 1);
        push(&mut r, b, 2);
        push(&mut r, a, 3);
        assert_eq!(r.with_ready(), [a, b]);
        pop(&mut r, a);
        assert_eq!(r.with_ready(), [a, b]);
        // Emptying `a` moves `b` into its place, and `b` still knows where.
        pop(&mut r, a);
        assert_eq!(r.with_ready(), [b]);
        pop(&mut r, b);
        assert!(r.with_ready().is_empty());
        assert_eq!(r.slab[b as usize].ready_pos, NIL);
        push(&mut r, b, 4);
        assert_eq!(r.with_ready(), [b]);
    }
}
