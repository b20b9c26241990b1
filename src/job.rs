//! A job: its numbers, its state and its body.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroU32;

use slab::Slab;

use crate::body_store::BodyRef;
use crate::timer_wheel::TimerId;

/// Nanoseconds on the server's monotonic clock.
pub type Nanos = u64;

pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Index of a job in the engine's job slab.
pub type JobKey = u32;
/// Index of a tube in the registry's slab.
pub type TubeId = u32;
/// A connection, as numbered by the event loop.
pub type ClientId = u32;

/// Hashes a job id with splitmix64's finalizer, where SipHash took a fifth
/// of replay time. The ids in the map are the server's own, sequential;
/// the mixing spreads any subset a client could leave alive (say every
/// 1024th) over all buckets.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 ^= id;
    }
}

/// A map keyed by job id.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ready,
    Reserved,
    Delayed,
    Buried,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Reserved => "reserved",
            State::Delayed => "delayed",
            State::Buried => "buried",
        }
    }
}

/// How often each thing happened to a job, as stats-job shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub reserves: u32,
    pub timeouts: u32,
    pub releases: u32,
    pub buries: u32,
    pub kicks: u32,
}

/// Something [`Counts`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Reserve,
    Timeout,
    Release,
    Bury,
    Kick,
}

/// The counts a job keeps out of line: most jobs never time out, nor are
/// released, buried or kicked. They live in the engine's [`RareTable`], and
/// a job that has any holds its key there (plus one, so that "none" costs
/// no extra bytes).
#[derive(Debug, Clone, Copy, Default)]
pub struct RareCounts {
    timeouts: u32,
    releases: u32,
    buries: u32,
    kicks: u32,
}

/// Where the jobs' rarer counts live.
pub type RareTable = Slab<RareCounts>;

fn key_of(slot: usize) -> NonZeroU32 {
    NonZeroU32::new(slot as u32 + 1).expect("slot + 1 is not zero")
}

fn slot(key: NonZeroU32) -> usize {
    key.get() as usize - 1
}

#[derive(Debug)]
pub struct Job {
    pub id: u64,
    pub pri: u32,
    /// Seconds, as last given by put or release.
    pub delay: u32,
    /// Seconds, at least 1.
    pub ttr: u32,
    pub created_at: Nanos,
    pub state: State,
    pub tube: TubeId,
    /// Position in whichever heap holds the job now (ready, delayed,
    /// buried, or its reserver's reservations).
    pub pos: u32,
    /// The connection holding the reservation; meaningful when reserved.
    pub reserver: ClientId,
    /// The delay or TTR timer, when one is pending.
    pub timer: Option<TimerId>,
    /// How often the job was reserved. The other counts get an entry in
    /// the [`RareTable`] when the first of them happens: a job waiting in a
    /// queue is 12 bytes smaller than with all five inline.
    pub reserves: u32,
    pub rare: Option<NonZeroU32>,
    /// The body, without the CRLF that ends it on the wire, in the
    /// engine's body store.
    pub body: BodyRef,
}

impl Job {
    /// A job with the given id, tube, creation time and body; priority 0,
    /// no delay, TTR 1, no counts, no binlog file, and not yet in any heap
    /// (the caller sets the fields it knows and then places the job).
    pub fn new(id: u64, tube: TubeId, created_at: Nanos, body: BodyRef) -> Job {
        Job {
            id,
            pri: 0,
            delay: 0,
            ttr: 1,
            created_at,
            state: State::Ready,
            tube,
            pos: 0,
            reserver: 0,
            timer: None,
            reserves: 0,
            rare: None,
            body,
        }
    }

    pub fn counts(&self, table: &RareTable) -> Counts {
        let rare = self.rare.map(|i| table[slot(i)]).unwrap_or_default();
        Counts {
            reserves: self.reserves,
            timeouts: rare.timeouts,
            releases: rare.releases,
            buries: rare.buries,
            kicks: rare.kicks,
        }
    }

    /// Sets every count (a job read back from the binlog).
    pub fn set_counts(&mut self, c: Counts, table: &mut RareTable) {
        self.reserves = c.reserves;
        self.forget_rare(table);
        if c.timeouts | c.releases | c.buries | c.kicks != 0 {
            self.rare = Some(key_of(table.insert(RareCounts {
                timeouts: c.timeouts,
                releases: c.releases,
                buries: c.buries,
                kicks: c.kicks,
            })));
        }
    }

    /// Counts one more `event`. Counters wrap, as beanstalkd's do.
    pub fn count(&mut self, event: Event, table: &mut RareTable) {
        let n = match event {
            Event::Reserve => &mut self.reserves,
            rare => {
                let i = *self
                    .rare
                    .get_or_insert_with(|| key_of(table.insert(RareCounts::default())));
                let r = &mut table[slot(i)];
                match rare {
                    Event::Timeout => &mut r.timeouts,
                    Event::Release => &mut r.releases,
                    Event::Bury => &mut r.buries,
                    _ => &mut r.kicks,
                }
            }
        };
        *n = n.wrapping_add(1);
    }

    /// Gives back the job's entry in the table of rarer counts, if any.
    pub fn forget_rare(&mut self, table: &mut RareTable) {
        if let Some(i) = self.rare.take() {
            table.remove(slot(i));
        }
    }

    /// Body length (the CRLF that ends it on the wire is not stored).
    pub fn bytes(&self) -> usize {
        self.body.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_kept_out_of_line_read_back_whole() {
        let mut bodies = crate::body_store::BodyStore::new();
        let body = bodies.insert(b"x\r\n"[..].into());
        let mut table = RareTable::new();
        let mut job = Job::new(1, 0, 0, body);
        assert_eq!(job.counts(&table), Counts::default());
        job.count(Event::Reserve, &mut table);
        job.count(Event::Reserve, &mut table);
        assert!(job.rare.is_none(), "reserves alone stay inline");
        for e in [
            Event::Timeout,
            Event::Release,
            Event::Bury,
            Event::Kick,
            Event::Kick,
        ] {
            job.count(e, &mut table);
        }
        let c = Counts {
            reserves: 2,
            timeouts: 1,
            releases: 1,
            buries: 1,
            kicks: 2,
        };
        assert_eq!(job.counts(&table), c);
        let mut copy = Job::new(2, 0, 0, body);
        copy.set_counts(c, &mut table);
        assert_eq!(copy.counts(&table), c);
        copy.set_counts(
            Counts {
                reserves: 7,
                ..Counts::default()
            },
            &mut table,
        );
        assert!(copy.rare.is_none());
        assert_eq!(copy.counts(&table).reserves, 7);
        job.forget_rare(&mut table);
        assert!(table.is_empty(), "every entry given back");
    }

    #[test]
    fn a_job_record_stays_small() {
        // Every job in a queue costs this much besides its body; see
        // doc/performance.md before letting it grow.
        assert!(
            std::mem::size_of::<Job>() <= 64,
            "{}",
            std::mem::size_of::<Job>()
        );
    }
}
