//! Shrinking a failing script: take out runs of steps, long ones first,
//! while it still fails; then make each wait as short as still fails.

use crate::script::Step;

/// Trials at most, so that shrinking a long script stays quick.
const BUDGET: usize = 3000;

pub fn shrink(mut steps: Vec<Step>, fails: impl Fn(&[Step]) -> bool) -> Vec<Step> {
    let mut trials = 0;
    let mut chunk = steps.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < steps.len() && trials < BUDGET {
            let mut trial = steps.clone();
            trial.drain(i..(i + chunk).min(steps.len()));
            trials += 1;
            if fails(&trial) {
                steps = trial;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 || trials >= BUDGET {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    for i in 0..steps.len() {
        while let Step::Wait(ms) = steps[i] {
            if ms == 0 || trials >= BUDGET {
                break;
            }
            let mut trial = steps.clone();
            trial[i] = Step::Wait(ms / 2);
            trials += 1;
            if !fails(&trial) {
                break;
            }
            steps = trial;
        }
    }
    steps
}
