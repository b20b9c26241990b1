//! The queue rules, a second time: plain vectors and linear scans, no
//! heaps, no wheel, no indexes. Slow on purpose, so that each rule reads
//! as the sentence in the protocol (or in beanstalkd-internals.md) that it
//! comes from. Every count that stats reports is found by counting.

use std::collections::BTreeMap;

pub use cmd::{COUNTERS, Cmd};

mod cmd;
mod commands;
mod reserve;
mod stats;

pub type Nanos = u64;
pub const SEC: Nanos = 1_000_000_000;
/// A reservation this close to its end makes reserve answer DEADLINE_SOON.
const MARGIN: Nanos = SEC;
const URGENT: u32 = 1024;
pub const DEFAULT: &str = "default";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ready,
    Delayed,
    Reserved,
    Buried,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Delayed => "delayed",
            State::Reserved => "reserved",
            State::Buried => "buried",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub tube: String,
    pub pri: u32,
    pub delay: u32,
    pub ttr: u32,
    pub body: Vec<u8>,
    pub state: State,
    /// Delayed: when it becomes ready. Reserved: when its TTR runs out.
    pub deadline: Nanos,
    pub reserver: usize,
    /// Buried: its place in bury order. Reserved: in reservation order.
    pub order: u64,
    created: Nanos,
    reserves: u32,
    timeouts: u32,
    releases: u32,
    buries: u32,
    kicks: u32,
}

#[derive(Debug, Clone)]
pub struct Tube {
    pub name: String,
    pub paused_until: Option<Nanos>,
    pause_secs: u32,
    /// Waiting clients in beanstalkd's set order: appended at the end,
    /// removed by moving the last one into the hole, served round-robin
    /// from `cursor`.
    waiting: Vec<usize>,
    cursor: usize,
    total_jobs: u64,
    cmd_delete: u64,
    cmd_pause: u64,
}

#[derive(Debug, Clone)]
pub struct Client {
    pub used: String,
    pub watch: Vec<String>,
    pub waiting: bool,
    timeout_at: Option<Nanos>,
    producer: bool,
    worker: bool,
}

/// A stats document as (key, value) pairs in order; values as printed,
/// strings unquoted.
pub type Doc = Vec<(String, String)>;

/// What the model says a command's reply is: bytes, or a stats document
/// (compared field by field, so that process facts like the pid can be
/// left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Bytes(Vec<u8>),
    Yaml(Doc),
    /// The stats document, whose process facts are not compared.
    Stats(Doc),
}

pub struct Model {
    /// Live jobs, in no particular order.
    pub jobs: Vec<Job>,
    /// Tubes in list-tubes order.
    pub tubes: Vec<Tube>,
    pub clients: Vec<Option<Client>>,
    next_id: u64,
    seq: u64,
    counters: BTreeMap<&'static str, u64>,
    job_timeouts: u64,
    total_jobs: u64,
    total_connections: u64,
    started: Nanos,
    pub max_job_size: u32,
    /// Replies for each client, in order, since the last `take_output`.
    pub out: Vec<Vec<Reply>>,
}

impl Model {
    pub fn new(max_job_size: u32, clients: usize, now: Nanos) -> Self {
        let mut m = Model {
            jobs: Vec::new(),
            tubes: Vec::new(),
            clients: vec![None; clients],
            next_id: 1,
            seq: 0,
            counters: COUNTERS.iter().map(|&k| (k, 0)).collect(),
            job_timeouts: 0,
            total_jobs: 0,
            total_connections: 0,
            started: now,
            max_job_size,
            out: vec![Vec::new(); clients],
        };
        m.tube_or_new(DEFAULT);
        for c in 0..clients {
            m.connect(c);
        }
        m
    }

    // ---- lookups ----

    pub fn job(&self, id: u64) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == id)
    }

    fn job_mut(&mut self, id: u64) -> &mut Job {
        self.jobs.iter_mut().find(|j| j.id == id).expect("live job")
    }

    pub fn tube(&self, name: &str) -> Option<&Tube> {
        self.tubes.iter().find(|t| t.name == name)
    }

    fn tube_mut(&mut self, name: &str) -> &mut Tube {
        self.tubes
            .iter_mut()
            .find(|t| t.name == name)
            .expect("tube exists")
    }

    fn tube_or_new(&mut self, name: &str) {
        if self.tube(name).is_none() {
            self.tubes.push(Tube {
                name: name.into(),
                paused_until: None,
                pause_secs: 0,
                waiting: Vec::new(),
                cursor: 0,
                total_jobs: 0,
                cmd_delete: 0,
                cmd_pause: 0,
            });
        }
    }

    pub fn client(&self, c: usize) -> &Client {
        self.clients[c].as_ref().expect("connected")
    }

    fn client_mut(&mut self, c: usize) -> &mut Client {
        self.clients[c].as_mut().expect("connected")
    }

    fn connected(&self) -> impl Iterator<Item = &Client> {
        self.clients.iter().flatten()
    }

    /// A tube nobody refers to (no job, no user, no watcher) is gone, its
    /// place in the list taken by the last tube. `default` stays.
    fn drop_if_unused(&mut self, name: &str) {
        let used = name == DEFAULT
            || self.jobs.iter().any(|j| j.tube == name)
            || self
                .connected()
                .any(|c| c.used == name || c.watch.iter().any(|w| w == name));
        if !used && let Some(i) = self.tubes.iter().position(|t| t.name == name) {
            self.tubes.swap_remove(i);
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn say(&mut self, c: usize, bytes: &[u8]) {
        self.out[c].push(Reply::Bytes(bytes.to_vec()));
    }

    fn job_reply(&mut self, c: usize, word: &str, id: u64) {
        let job = self.job(id).expect("live job");
        let mut v = format!("{word} {id} {}\r\n", job.body.len()).into_bytes();
        v.extend_from_slice(&job.body);
        v.extend_from_slice(b"\r\n");
        self.out[c].push(Reply::Bytes(v));
    }

    // ---- connections ----

    pub fn connect(&mut self, c: usize) {
        self.clients[c] = Some(Client {
            used: DEFAULT.into(),
            watch: vec![DEFAULT.into()],
            waiting: false,
            timeout_at: None,
            producer: false,
            worker: false,
        });
        self.total_connections += 1;
    }

    /// The connection closes: it stops waiting, its reservations go back
    /// to ready in reservation order (each handed out at once), and the
    /// tubes it used and watched are let go in that order.
    pub fn disconnect(&mut self, c: usize, now: Nanos) {
        if self.client(c).waiting {
            self.stop_waiting(c);
        }
        let mut held: Vec<(u64, u64)> = (self.jobs.iter())
            .filter(|j| j.state == State::Reserved && j.reserver == c)
            .map(|j| (j.order, j.id))
            .collect();
        held.sort();
        for (_, id) in held {
            self.job_mut(id).state = State::Ready;
            self.dispatch(now);
        }
        let client = self.clients[c].take().expect("connected");
        self.drop_if_unused(&client.used);
        for t in &client.watch {
            self.drop_if_unused(t);
        }
    }
}
