//! Fuzz bytes as HTTP traffic on one connection, against a server holding
//! a few jobs (reserved, delayed, buried) in a few tubes, so that every
//! page renders from real state. The bytes arrive in pieces, with time
//! moving between them, as a slow or pipelining client sends them.
//!
//! Checked after every piece: no panic; what was buffered stays within
//! the limits (a request head, a read, and the responses allowed to
//! wait); every response written is a whole HTTP/1.1 response whose
//! Content-Length is its body's; after an error nothing more is answered.
//!
//! The chart's history is sampled whenever time moves past its interval,
//! and connection 1 is a unix-socket client, so that every field of the
//! status page is rendered.
//!
//! Each step takes a control byte: its low 6 bits are the piece's length
//! (0: time moves on by the top 2 bits times 4 seconds, over the request
//! and idle limits).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprout::engine::{Engine, ServerInfo, Sink};
use sprout::histogram::Histogram;
use sprout::http::history::History;
use sprout::http::rates::{Rates, TubeRates};
use sprout::http::session::Session;
use sprout::http::live::{Live, LoopFigures, Peer, Peers};
use sprout::http::tube_lines::TubeLines;
use sprout::http::{MAX_HEAD, OUTPUT_LIMIT};

const NANOS: u64 = 1_000_000_000;

struct Outputs(Vec<Vec<u8>>);

impl Sink for Outputs {
    fn out(&mut self, c: u32) -> &mut Vec<u8> {
        &mut self.0[c as usize]
    }
    fn woken(&mut self, _: u32) {}
}

/// Connection 0 over TCP, connection 1 over a unix socket.
struct NoPeers;

impl Peers for NoPeers {
    fn peer(&self, c: u32) -> Option<Peer<'_>> {
        Some(match c {
            0 => Peer {
                addr: "127.0.0.1:1",
                since: 0,
                cred: None,
            },
            _ => Peer {
                addr: "unix",
                since: 0,
                cred: Some(sprout::peer_cred::Cred { pid: 42, uid: 0 }),
            },
        })
    }
}

fn queue(now: u64) -> Engine {
    let mut e = Engine::new(64, ServerInfo::default(), now);
    let mut out = Outputs(vec![Vec::new(); 2]);
    e.connect(0);
    e.connect(1);
    let script: &[&[u8]] = &[
        b"use a+b\r\n",
        b"put 1 0 60 2\r\nhi\r\n",
        b"put 2 30 60 2\r\nhi\r\n",
        b"put 3 0 60 2\r\nhi\r\n",
        b"pause-tube a+b 20\r\n",
        b"watch a+b\r\n",
        b"reserve-with-timeout 0\r\n",
        b"bury 1 1\r\n",
    ];
    let mut framer = sprout::conn::Framer::default();
    for line in script {
        framer.process(line, 1, &mut e, now, &mut out);
    }
    e
}

/// Every response in `out` is whole and sized as it says.
fn check_responses(out: &[u8]) {
    let mut at = 0;
    while at < out.len() {
        let rest = &out[at..];
        assert!(rest.starts_with(b"HTTP/1.1 "), "not a response at {at}");
        let head = memchr::memmem::find(rest, b"\r\n\r\n").expect("a whole head") + 4;
        let text = std::str::from_utf8(&rest[..head]).expect("an ASCII head");
        let len: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("Content-Length")
            .parse()
            .expect("a length");
        // HEAD responses carry the length but no body: accept either.
        let next = &rest[head..];
        let body = !(next.is_empty() || next.starts_with(b"HTTP/1.1 "));
        at += if body { head + len } else { head };
        assert!(at <= out.len(), "a body shorter than its Content-Length");
        if body && text.contains("\r\nContent-Encoding: gzip\r\n") {
            // One gzip member whose text is the exposition.
            let mut plain = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(&next[..len]),
                &mut plain,
            )
            .expect("a valid gzip member of text");
            assert!(plain.starts_with("# HELP "), "{plain:.80}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut now = 1u64 << 40;
    let engine = queue(now);
    let turns = Histogram::default();
    let rates = Rates::default();
    let tube_rates = TubeRates::default();
    let mut session = Session::new(now);
    let mut tube_lines = TubeLines::default();
    // The chart's history, sampled as time moves on, as the loop does.
    let mut history = History::default();
    let sample = |history: &mut History, now| {
        let (server, all) = (engine.levels(), engine.each_tube_levels());
        history.sample(now, server, |t| engine.tube_levels(t), all);
    };
    sample(&mut history, now);
    let mut rest = data;
    while let Some((&control, tail)) = rest.split_first() {
        let n = (control & 0x3f) as usize;
        if n == 0 {
            now += (control >> 6) as u64 * 4 * NANOS;
            session.expire(now);
            if history.due(now) {
                sample(&mut history, now);
            }
            rest = tail;
            continue;
        }
        let (piece, tail) = tail.split_at(n.min(tail.len()));
        rest = tail;
        let closing = session.closing;
        let before = session.out.len();
        let mut live = Live {
            engine: &engine,
            now,
            figures: LoopFigures {
                turns: &turns,
                binlog: None,
                http_connections: 1,
                http_requests: 0,
                rates: &rates,
                tube_rates: &tube_rates,
                peers: &NoPeers,
                ready: true,
            },
            tube_lines: &mut tube_lines,
            history: &mut history,
        };
        if session.wants_input() {
            session.receive(piece, now, &mut live);
        }
        if closing {
            assert_eq!(session.out.len(), before, "answered after closing");
        }
        assert!(session.buffered() <= MAX_HEAD + 64 + OUTPUT_LIMIT + 64 * 1024 + 16 * 1024);
        // The client reads everything now and then.
        if control & 0x40 != 0 {
            check_responses(&session.out.to_vec());
            let n = session.pending_output();
            session.wrote(n, now);
        }
    }
    check_responses(&session.out.to_vec());
});
