//! Fuzz bytes as a session against the engine: four connections that send
//! commands with bodies, hang up and come back, while time jumps ahead
//! (over deadlines, and onto them). After every step the invariants of
//! doc/architecture.md are checked from scratch (`Engine::check_invariants`),
//! the bound on watched tubes among them (lowered to 3, within reach).
//!
//! Each step takes a control byte: its low 2 bits pick the connection, the
//! next 2 what happens (00 and 01: the next bytes, up to a newline or 40
//! bytes, are input; 10: time moves on by the byte's top 4 bits in quarter
//! seconds; 11: the connection hangs up and a new one takes its place).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprout::conn::Framer;
use sprout::engine::{Engine, ServerInfo, Sink};

const CONNS: usize = 4;
const NANOS: u64 = 1_000_000_000;

struct Outputs(Vec<Vec<u8>>);

impl Sink for Outputs {
    fn out(&mut self, c: u32) -> &mut Vec<u8> {
        &mut self.0[c as usize]
    }
    fn woken(&mut self, _: u32) {}
}

fn check(engine: &Engine, step: &str) {
    if let Err(broken) = engine.check_invariants() {
        panic!("after {step}: {broken:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut now = 1u64 << 60;
    let mut engine = Engine::new(64, ServerInfo::default(), now);
    // A watch bound of 3 tubes, reached by a few commands: past it
    // `watch` is OUT_OF_MEMORY and the invariants say no list grew.
    engine.set_max_watched(3);
    let mut out = Outputs(vec![Vec::new(); CONNS]);
    let mut framers: Vec<Framer> = (0..CONNS).map(|_| Framer::default()).collect();
    for c in 0..CONNS {
        engine.connect(c as u32);
    }
    let mut rest = data;
    while let Some((&control, tail)) = rest.split_first() {
        rest = tail;
        let c = (control & 3) as usize;
        match (control >> 2) & 3 {
            0 | 1 => {
                let end = rest
                    .iter()
                    .take(40)
                    .position(|&b| b == b'\n')
                    .map_or(rest.len().min(40), |i| i + 1);
                let (input, tail) = rest.split_at(end);
                rest = tail;
                // Commands are written with CRLF; a lone LF stays as sent.
                let mut bytes = input.to_vec();
                if bytes.last() == Some(&b'\n') && (control >> 2) & 3 == 0 {
                    bytes.pop();
                    bytes.extend_from_slice(b"\r\n");
                }
                if !engine.is_waiting(c as u32) {
                    framers[c].process(&bytes, c as u32, &mut engine, now, &mut out);
                }
                check(&engine, "input");
            }
            2 => {
                // Whole quarter seconds, so deadlines are hit exactly too.
                now += (control >> 4) as u64 * NANOS / 4;
                engine.tick(now, &mut out);
                check(&engine, "tick");
            }
            _ => {
                engine.disconnect(c as u32, now, &mut out);
                check(&engine, "disconnect");
                framers[c] = Framer::default();
                engine.connect(c as u32);
                check(&engine, "connect");
            }
        }
        for o in out.0.iter_mut() {
            o.clear();
        }
    }
    // Every timer runs out.
    engine.tick(now + 10_000 * NANOS, &mut out);
    check(&engine, "the end");
});
