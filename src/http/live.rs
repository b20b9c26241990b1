//! The state a response is made from, at one moment: the engine itself,
//! and what only the event loop knows. Every renderer (metrics, status,
//! page) reads it; only `site` routes to them, so the arrows run one way.

use crate::binlog::DiskFigures;
use crate::engine::Engine;
use crate::histogram::Histogram;
use crate::job::{ClientId, Nanos};

use super::history::History;
use super::rates::{Rates, TubeRates};
use super::tube_lines::TubeLines;

/// A queue connection's address and when it connected.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    pub addr: &'a str,
    pub since: Nanos,
    /// A unix-socket client's process and user.
    pub cred: Option<crate::peer_cred::Cred>,
}

/// The event loop's knowledge of its queue connections.
pub trait Peers {
    fn peer(&self, c: ClientId) -> Option<Peer<'_>>;
}

/// What the event loop knows that the engine does not.
pub struct LoopFigures<'a> {
    /// How long each turn of the loop took.
    pub turns: &'a Histogram,
    /// None without `-b`.
    pub binlog: Option<DiskFigures>,
    pub http_connections: usize,
    pub http_requests: u64,
    pub rates: &'a Rates,
    pub tube_rates: &'a TubeRates,
    pub peers: &'a dyn Peers,
    /// The binlog is recovered and the queue port listens.
    pub ready: bool,
}

/// The state at one moment, answering requests.
pub struct Live<'a> {
    pub engine: &'a Engine,
    pub now: Nanos,
    pub figures: LoopFigures<'a>,
    /// The per-tube part of /metrics as the last scrape left it.
    pub tube_lines: &'a mut TubeLines,
    /// The last 15 minutes; a request for one tube's chart may give that
    /// tube a ring.
    pub history: &'a mut History,
}
