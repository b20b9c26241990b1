//! Arbitrary bytes as binlog files: recovery must never panic, and every
//! job it returns must be well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprout::binlog::replay::replay;

fuzz_target!(|data: &[u8]| {
    // Up to three "files", split at 0xFE bytes.
    let files: Vec<&[u8]> = data.split(|&b| b == 0xFE).take(3).collect();
    let r = replay(
        files.iter().enumerate().map(|(i, f)| (i as u32 + 1, *f)),
        1_800_000_000_000_000_000,
        1 << 60,
    );
    for j in &r.jobs {
        assert_eq!(r.bodies.get(j.body).len(), j.body.len());
        assert!(j.id < r.next_id);
        assert!(j.ttr >= 1);
    }
});
