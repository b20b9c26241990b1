//! Random scripts: what the clients send and how time moves, chosen with
//! the model's help (ids that exist, deadlines that are due) but stored as
//! plain data, so that a script replays, and still runs when shrinking
//! takes steps out of it.

use std::fmt;

use crate::rules::{Cmd, Model, Nanos, State};

/// Clients that send commands; one more, the observer, only reads stats.
pub const ACTORS: usize = 3;
pub const OBSERVER: usize = ACTORS;
pub const TUBES: [&str; 4] = ["default", "a", "b", "007"];
/// Small, so that some bodies are too big.
pub const MAX_JOB_SIZE: u32 = 10;
/// The clock moves in whole milliseconds: the timer wheel's unit.
pub const MS: Nanos = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A client sends a command.
    Send(usize, Cmd),
    /// A client's connection drops; a new one takes its place.
    HangUp(usize),
    /// The clock moves on by this many milliseconds.
    Wait(u64),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Step::Send(c, cmd) => {
                let wire = String::from_utf8_lossy(&cmd.wire())
                    .escape_debug()
                    .to_string();
                write!(f, "client {c}: {wire}")
            }
            Step::HangUp(c) => write!(f, "client {c} hangs up"),
            Step::Wait(ms) => write!(f, "wait {ms} ms"),
        }
    }
}

/// SplitMix64: small, fast, and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const PRIS: [u32; 7] = [0, 1, 2, 1023, 1024, 5000, u32::MAX];
const DELAYS: [u32; 6] = [0, 0, 0, 1, 2, 5];
const TTRS: [u32; 5] = [0, 1, 2, 3, 10];
const TIMEOUTS: [u32; 5] = [0, 0, 1, 2, 5];

/// Picks the next step for a world in the state of `model` at `now`.
pub fn next_step(rng: &mut Rng, model: &Model, now: Nanos) -> Step {
    let c = rng.below(ACTORS as u64) as usize;
    let roll = rng.below(100);
    if roll < 18 {
        return Step::Wait(wait(rng, model, now));
    }
    if roll < 22 {
        return Step::HangUp(c);
    }
    if model.client(c).waiting {
        // A waiting client sends nothing until answered.
        return Step::Wait(wait(rng, model, now));
    }
    let cmd = match rng.below(26) {
        0..=4 if model.jobs.len() < 30 => Cmd::Put {
            pri: rng.pick(&PRIS),
            delay: rng.pick(&DELAYS),
            ttr: rng.pick(&TTRS),
            body: body(rng),
        },
        0..=5 => Cmd::Reserve,
        6 | 7 => Cmd::ReserveWithTimeout(rng.pick(&TIMEOUTS)),
        8 | 9 => Cmd::Delete(some_id(rng, model, c)),
        10 | 11 => Cmd::Release {
            id: some_id(rng, model, c),
            pri: rng.pick(&PRIS),
            delay: rng.pick(&DELAYS),
        },
        12 => Cmd::Bury {
            id: some_id(rng, model, c),
            pri: rng.pick(&PRIS),
        },
        13 => Cmd::Touch(some_id(rng, model, c)),
        14 => Cmd::Kick(rng.pick(&[0, 1, 2, 5])),
        15 => Cmd::KickJob(some_id(rng, model, c)),
        16 => Cmd::ReserveJob(some_id(rng, model, c)),
        17 => match rng.below(4) {
            0 => Cmd::Peek(some_id(rng, model, c)),
            1 => Cmd::PeekReady,
            2 => Cmd::PeekDelayed,
            _ => Cmd::PeekBuried,
        },
        18 | 19 => Cmd::Use(rng_tube(rng)),
        20 | 21 => Cmd::Watch(rng_tube(rng)),
        22 | 23 => Cmd::Ignore(rng_tube(rng)),
        24 => Cmd::PauseTube {
            name: rng_tube(rng),
            delay: rng.pick(&[0, 1, 3]),
        },
        _ => match rng.below(8) {
            0 => Cmd::Quit,
            1 => Cmd::ListTubeUsed,
            2 => Cmd::StatsJob(some_id(rng, model, c)),
            3 => Cmd::StatsTube(rng_tube(rng)),
            _ => Cmd::Reserve,
        },
    };
    Step::Send(c, cmd)
}

fn rng_tube(rng: &mut Rng) -> String {
    rng.pick(&TUBES).to_string()
}

fn body(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(MAX_JOB_SIZE as u64 + 3) as usize;
    (0..len)
        .map(|_| rng.pick(&[b'a', b'z', b'\r', b'\n', 0, 0xff, b' ']))
        .collect()
}

/// An id worth asking about: mostly a live job (one this client holds,
/// when it holds any), sometimes one that does not exist.
fn some_id(rng: &mut Rng, model: &Model, c: usize) -> u64 {
    let held: Vec<u64> = (model.jobs.iter())
        .filter(|j| j.state == State::Reserved && j.reserver == c)
        .map(|j| j.id)
        .collect();
    if !held.is_empty() && rng.chance(60) {
        return rng.pick(&held);
    }
    if !model.jobs.is_empty() && rng.chance(85) {
        return model.jobs[rng.below(model.jobs.len() as u64) as usize].id;
    }
    rng.below(model.jobs.iter().map(|j| j.id).max().unwrap_or(0) + 3)
}

/// How far the clock jumps: onto a deadline, just before or after one,
/// over several, or some way at random.
fn wait(rng: &mut Rng, model: &Model, now: Nanos) -> u64 {
    let mut events = model.events();
    events.retain(|&t| t > now);
    let to_event = |i: usize| (events[i] - now) / MS;
    match rng.below(10) {
        0..=2 if !events.is_empty() => to_event(0),
        3 if !events.is_empty() => to_event(0).saturating_sub(1),
        4 if !events.is_empty() => to_event(0) + 1,
        5 if events.len() > 2 => to_event(rng.below(events.len() as u64) as usize),
        6 => 0,
        _ => rng.below(2500),
    }
}
