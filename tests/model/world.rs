//! The engine and the model side by side: each step goes to both (to the
//! engine as bytes through a connection's framer, as the event loop sends
//! them), then every reply is compared, and then everything a client can
//! observe: each live job's stats-job, each tube's stats-tube, stats,
//! list-tubes, each client's watch list, who is waiting, and the engine's
//! own invariants.

use std::collections::BTreeMap;

use sprout::conn::{Flow, Framer};
use sprout::engine::{Engine, ServerInfo, Sink};

use crate::rules::{Cmd, Doc, Model, Nanos, Reply};
use crate::script::{ACTORS, MAX_JOB_SIZE, MS, OBSERVER, Step, TUBES};

/// The engine's clock starts near 2^60 ns, as the server's does, but on a
/// whole millisecond, so that a step can land exactly on a deadline.
pub const START: Nanos = (1 << 60) / MS * MS;

/// What stats shows of the process rather than the queue.
const PROCESS_KEYS: [&str; 12] = [
    "pid",
    "version",
    "sprout-version",
    "role",
    "replicas",
    "epoch",
    "rusage-utime",
    "rusage-stime",
    "id",
    "hostname",
    "os",
    "platform",
];

struct Outputs(Vec<Vec<u8>>);

impl Sink for Outputs {
    fn out(&mut self, c: u32) -> &mut Vec<u8> {
        &mut self.0[c as usize]
    }
    fn woken(&mut self, _: u32) {}
}

pub struct World {
    engine: Engine,
    pub model: Model,
    framers: Vec<Framer>,
    out: Outputs,
    pub now: Nanos,
    /// How often each reply came to a client that sends commands: what
    /// the scripts reached.
    pub tally: BTreeMap<String, u64>,
}

impl Default for World {
    fn default() -> Self {
        let clients = ACTORS + 1;
        let mut engine = Engine::new(MAX_JOB_SIZE, ServerInfo::default(), START);
        for c in 0..clients {
            engine.connect(c as u32);
        }
        World {
            engine,
            model: Model::new(MAX_JOB_SIZE, clients, START),
            framers: (0..clients).map(|_| Framer::default()).collect(),
            out: Outputs(vec![Vec::new(); clients]),
            now: START,
            tally: BTreeMap::new(),
        }
    }
}

impl World {
    /// Runs one step on both sides and compares all there is to see.
    pub fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Send(c, cmd) => self.send(*c, cmd)?,
            Step::HangUp(c) => self.hang_up(*c),
            Step::Wait(ms) => self.now += ms * MS,
        }
        // The loop's next turn: whatever the step made due runs now.
        self.engine.tick(self.now, &mut self.out);
        self.model.tick(self.now);
        self.compare_output()?;
        self.observe()
    }

    fn send(&mut self, c: usize, cmd: &Cmd) -> Result<(), String> {
        let (engine_waits, model_waits) = (
            self.engine.is_waiting(c as u32),
            self.model.client(c).waiting,
        );
        if engine_waits != model_waits {
            return Err(format!(
                "client {c} waiting: engine {engine_waits}, model {model_waits}"
            ));
        }
        if model_waits {
            // A shrunk script may send to a waiting client: nobody would.
            return Ok(());
        }
        let flow = (self.framers[c]).process(
            &cmd.wire(),
            c as u32,
            &mut self.engine,
            self.now,
            &mut self.out,
        );
        let open = self.model.execute(c, cmd, self.now);
        if (flow == Flow::Quit) == open {
            return Err(format!("quit: engine {flow:?}, model closes: {}", !open));
        }
        if !open {
            self.hang_up(c);
        }
        Ok(())
    }

    fn hang_up(&mut self, c: usize) {
        self.engine.disconnect(c as u32, self.now, &mut self.out);
        self.engine.connect(c as u32);
        self.framers[c] = Framer::default();
        self.model.disconnect(c, self.now);
        self.model.connect(c);
    }

    fn compare_output(&mut self) -> Result<(), String> {
        for c in 0..self.out.0.len() {
            let got = std::mem::take(&mut self.out.0[c]);
            let want = std::mem::take(&mut self.model.out[c]);
            if c < ACTORS {
                for reply in &want {
                    *self.tally.entry(word(reply)).or_default() += 1;
                }
            }
            compare(&got, &want).map_err(|e| format!("client {c}: {e}"))?;
        }
        Ok(())
    }

    /// Asks both sides everything a client could ask, and compares.
    fn observe(&mut self) -> Result<(), String> {
        self.engine
            .check_invariants()
            .map_err(|b| format!("engine invariant broken: {b:?}"))?;
        for c in 0..ACTORS {
            let (e, m) = (
                self.engine.is_waiting(c as u32),
                self.model.client(c).waiting,
            );
            if e != m {
                return Err(format!("client {c} waiting: engine {e}, model {m}"));
            }
            if !m {
                self.ask(c, Cmd::ListTubesWatched)?;
            }
        }
        let mut asks = vec![Cmd::Stats, Cmd::ListTubes];
        asks.extend(TUBES.iter().map(|t| Cmd::StatsTube(t.to_string())));
        let last = self.model.jobs.iter().map(|j| j.id).max().unwrap_or(0);
        asks.extend(self.model.jobs.iter().map(|j| Cmd::StatsJob(j.id)));
        // Just past the newest job: gone, or never made.
        asks.push(Cmd::StatsJob(last + 1));
        for cmd in asks {
            self.ask(OBSERVER, cmd)?;
        }
        Ok(())
    }

    fn ask(&mut self, c: usize, cmd: Cmd) -> Result<(), String> {
        self.send(c, &cmd)?;
        self.compare_output()
            .map_err(|e| format!("{}: {e}", String::from_utf8_lossy(&cmd.wire()).trim_end()))
    }
}

/// Whether `got` is exactly the replies `want`, in order.
fn compare(got: &[u8], want: &[Reply]) -> Result<(), String> {
    let mut rest = got;
    for reply in want {
        match reply {
            Reply::Bytes(b) => {
                if !rest.starts_with(b) {
                    return Err(format!("expected {}, got {}", show(b), show(rest)));
                }
                rest = &rest[b.len()..];
            }
            Reply::Yaml(doc) | Reply::Stats(doc) => {
                let (yaml, tail) = ok_body(rest)
                    .ok_or_else(|| format!("expected OK <yaml>, got {}", show(rest)))?;
                rest = tail;
                let mut parsed = parse(yaml)?;
                if matches!(reply, Reply::Stats(_)) {
                    parsed.retain(|(k, _)| !PROCESS_KEYS.contains(&k.as_str()));
                }
                if &parsed != doc {
                    return Err(format!("yaml differs:\n{}", diff(&parsed, doc)));
                }
            }
        }
    }
    if !rest.is_empty() {
        return Err(format!("unexpected output {}", show(rest)));
    }
    Ok(())
}

/// `OK <n>\r\n<n bytes>\r\n`: the n bytes, and what follows.
fn ok_body(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let line_end = b.windows(2).position(|w| w == b"\r\n")?;
    let n: usize = std::str::from_utf8(b.get(..line_end)?.strip_prefix(b"OK ")?)
        .ok()?
        .parse()
        .ok()?;
    let start = line_end + 2;
    let body = b.get(start..start + n)?;
    let tail = b.get(start + n..)?.strip_prefix(b"\r\n")?;
    Some((body, tail))
}

/// A flat YAML mapping, string values unquoted.
fn parse(yaml: &[u8]) -> Result<Doc, String> {
    let text = std::str::from_utf8(yaml).map_err(|e| format!("yaml not UTF-8: {e}"))?;
    let body = text.strip_prefix("---\n").ok_or("yaml without ---")?;
    body.lines()
        .map(|line| {
            let (k, v) = line
                .split_once(": ")
                .ok_or_else(|| format!("yaml line {line:?}"))?;
            let v = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
                None => v.to_string(),
            };
            Ok((k.to_string(), v))
        })
        .collect()
}

fn diff(got: &Doc, want: &Doc) -> String {
    let mut s = String::new();
    for i in 0..got.len().max(want.len()) {
        let (g, w) = (got.get(i), want.get(i));
        if g != w {
            s.push_str(&format!("  engine {g:?}, model {w:?}\n"));
        }
    }
    s
}

fn show(b: &[u8]) -> String {
    let cut = &b[..b.len().min(200)];
    format!("{:?}", String::from_utf8_lossy(cut))
}

/// A reply's first word.
fn word(reply: &Reply) -> String {
    match reply {
        Reply::Bytes(b) => String::from_utf8_lossy(b)
            .split([' ', '\r'])
            .next()
            .unwrap_or_default()
            .to_string(),
        Reply::Yaml(_) | Reply::Stats(_) => "OK".into(),
    }
}
