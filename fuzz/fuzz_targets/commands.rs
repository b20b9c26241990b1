//! Any bytes a client can send: through the parser on their own, and
//! through the framer and engine as a session of two connections, split
//! into reads at points taken from the input, with the bound on watched
//! tubes lowered to what a few bytes reach. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprout::conn::Framer;
use sprout::engine::{Engine, ServerInfo, Sink};
use sprout::protocol;

struct Outputs(Vec<Vec<u8>>);

impl Sink for Outputs {
    fn out(&mut self, c: u32) -> &mut Vec<u8> {
        &mut self.0[c as usize]
    }
    fn woken(&mut self, _: u32) {}
}

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let _ = protocol::parse(line, 100);
    }
    let info = ServerInfo {
        pid: 1,
        version: "fuzz".into(),
        instance_id: "0".repeat(16),
        hostname: "h".into(),
        os: "o".into(),
        platform: "p".into(),
        binlog_max_size: 0,
    };
    let mut engine = Engine::new(100, info, 0);
    // The watch bound within reach of a few bytes: 1 to 8 tubes.
    engine.set_max_watched(data.first().map_or(8, |b| (b % 8) as usize + 1));
    let mut out = Outputs(vec![Vec::new(), Vec::new()]);
    let mut framers = [Framer::default(), Framer::default()];
    engine.connect(0);
    engine.connect(1);
    let mut now = 0u64;
    // The first byte of each chunk picks the connection and the time step.
    for chunk in data.chunks(17) {
        let (head, body) = chunk.split_first().unwrap_or((&0, &[]));
        let c = (head & 1) as usize;
        now += (*head as u64 >> 1) * 50_000_000;
        engine.tick(now, &mut out);
        framers[c].process(body, c as u32, &mut engine, now, &mut out);
        out.0[c].clear();
    }
    engine.disconnect(0, now, &mut out);
    engine.disconnect(1, now, &mut out);
    engine.tick(now + 10_000_000_000_000, &mut out);
});
