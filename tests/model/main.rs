//! The engine checked against a model of the queue rules.
//!
//! `rules.rs` is a second implementation of beanstalkd's queue, small and
//! slow (vectors and scans). `script.rs` writes random scripts for three
//! clients (commands with bodies, hang-ups, and a clock that jumps onto
//! deadlines, just short of them, past them and over several at once).
//! `world.rs` runs each step on the engine and the model and compares every
//! reply and, after every step, everything a client can observe.
//!
//! Each seed is one script. The run prints its seeds; a failing one is
//! shrunk to a short script, printed with the step where the two differ.
//! Replay one with `SPROUT_MODEL_SEED=n SPROUT_MODEL_SEEDS=1`.
//!
//! Environment: `SPROUT_MODEL_SEED` (first seed, default 1),
//! `SPROUT_MODEL_SEEDS` (how many, default 100), `SPROUT_MODEL_LEN`
//! (steps per script, default 2000), `SPROUT_MODEL_THREADS`.

mod regressions;
mod rules;
mod script;
mod shrink;
mod world;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use script::{Rng, Step};
use world::World;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where a script first makes the engine and the model differ.
#[derive(Debug)]
struct Divergence {
    step: usize,
    what: String,
}

/// Runs a stored script from the start.
fn replay(steps: &[Step]) -> Result<(), Divergence> {
    let mut world = World::default();
    for (i, step) in steps.iter().enumerate() {
        world
            .step(step)
            .map_err(|what| Divergence { step: i, what })?;
    }
    Ok(())
}

/// Writes and runs the script of `seed`, step by step.
fn generate(
    seed: u64,
    len: usize,
    tally: &Mutex<BTreeMap<String, u64>>,
) -> (Vec<Step>, Result<(), Divergence>) {
    let mut rng = Rng::new(seed);
    let mut world = World::default();
    let mut steps = Vec::with_capacity(len);
    for i in 0..len {
        let step = script::next_step(&mut rng, &world.model, world.now);
        steps.push(step);
        if let Err(what) = world.step(&steps[i]) {
            return (steps, Err(Divergence { step: i, what }));
        }
    }
    let mut total = tally.lock().unwrap();
    for (k, v) in world.tally {
        *total.entry(k).or_default() += v;
    }
    (steps, Ok(()))
}

fn report(seed: u64, steps: Vec<Step>, first: Divergence) -> String {
    let short = shrink::shrink(steps[..=first.step].to_vec(), |s| replay(s).is_err());
    let why = replay(&short).expect_err("a shrunk script still fails");
    let mut s = format!(
        "seed {seed}: step {} of its script: {}\nshrunk to {} steps, which fail at step {}: {}\n",
        first.step,
        first.what,
        short.len(),
        why.step,
        why.what
    );
    for (i, step) in short.iter().enumerate() {
        s.push_str(&format!("  {i:3}  {step}\n"));
    }
    s.push_str(&format!(
        "replay: SPROUT_MODEL_SEED={seed} SPROUT_MODEL_SEEDS=1 cargo test --release --test model\n"
    ));
    s
}

#[test]
fn the_engine_follows_the_model() {
    let first = env("SPROUT_MODEL_SEED", 1);
    let seeds = env("SPROUT_MODEL_SEEDS", 100);
    let len = env("SPROUT_MODEL_LEN", 2000) as usize;
    let threads = env(
        "SPROUT_MODEL_THREADS",
        std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
    );
    println!(
        "model: seeds {first}..{} of {len} steps, {threads} threads",
        first + seeds
    );
    let next = AtomicU64::new(first);
    let steps = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let tally = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= first + seeds || !failures.lock().unwrap().is_empty() {
                        return;
                    }
                    let (script, result) = generate(seed, len, &tally);
                    steps.fetch_add(script.len(), Ordering::Relaxed);
                    if let Err(d) = result {
                        failures.lock().unwrap().push(report(seed, script, d));
                    }
                }
            });
        }
    });
    println!("model: {} steps run", steps.load(Ordering::Relaxed));
    println!(
        "model: replies to clients: {:?}",
        tally.into_inner().unwrap()
    );
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
