//! A job: its numbers, its state and its body.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

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

#[derive(Debug)]
pub struct Job {
    pub id: u64,
    pub pri: u32,
    /// Seconds, as last given by put or release.
    pub delay: u32,
    /// Seconds, at least 1.
    pub ttr: u32,
    pub created_at: Nanos,
    /// When a delayed job becomes ready, or a reserved job's TTR runs out.
    pub deadline: Nanos,
    pub state: State,
    pub tube: TubeId,
    /// Position in whichever heap holds the job now (ready, delayed,
    /// buried, or its reserver's reservations).
    pub pos: u32,
    /// The connection holding the reservation; meaningful when reserved.
    pub reserver: ClientId,
    /// The delay or TTR timer, when one is pending.
    pub timer: Option<TimerId>,
    pub counts: Counts,
    /// The binlog file holding the job's newest full record (0: none).
    pub file: crate::journal::FileNo,
    /// The body with its trailing CRLF, as it goes on the wire.
    pub body: Box<[u8]>,
}

impl Job {
    /// A job with the given id, tube, creation time and body; priority 0,
    /// no delay, TTR 1, no counts, no binlog file, and not yet in any heap
    /// (the caller sets the fields it knows and then places the job).
    pub fn new(id: u64, tube: TubeId, created_at: Nanos, body: Box<[u8]>) -> Job {
        Job {
            id,
            pri: 0,
            delay: 0,
            ttr: 1,
            created_at,
            deadline: 0,
            state: State::Ready,
            tube,
            pos: 0,
            reserver: 0,
            timer: None,
            counts: Counts::default(),
            file: 0,
            body,
        }
    }

    /// Body length without the CRLF.
    pub fn bytes(&self) -> usize {
        self.body.len() - 2
    }
}
