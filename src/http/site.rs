//! Which path answers what, and the state a response is made from: the
//! engine itself, and what only the event loop knows.

use crate::binlog::DiskFigures;
use crate::engine::Engine;
use crate::histogram::Histogram;
use crate::job::{ClientId, Nanos};

use super::rates::{Rates, TubeRates};
use super::session::{Asked, Reply, Site};
use super::tube_lines::TubeLines;
use super::{metrics, page, status};

/// A queue connection's address and when it connected.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    pub addr: &'a str,
    pub since: Nanos,
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
}

const JS: &str = include_str!("assets/status.js");
const CSS: &str = include_str!("assets/status.css");
const ICON: &str = include_str!("assets/favicon.svg");

impl Site for Live<'_> {
    fn serve(&mut self, asked: Asked) -> Reply {
        let Asked { path, query, gzip } = asked;
        match path {
            "/" => Reply::new(
                200,
                "text/html; charset=utf-8",
                page::page(self, &status::Filter::from_query(query)),
            ),
            "/status.json" => Reply::new(
                200,
                "application/json",
                status::json(self, &status::Filter::from_query(query)),
            ),
            "/metrics" => metrics::render(self, gzip),
            "/status.js" => Reply::new(200, "text/javascript; charset=utf-8", JS),
            "/status.css" => Reply::new(200, "text/css; charset=utf-8", CSS),
            // Browsers ask for /favicon.ico whatever the page says.
            "/favicon.svg" | "/favicon.ico" => Reply::new(200, "image/svg+xml", ICON),
            "/healthz" => Reply::text(200, "ok"),
            "/readyz" if self.engine.is_draining() => Reply::text(503, "draining"),
            "/readyz" if !self.figures.ready => Reply::text(503, "recovering"),
            "/readyz" => Reply::text(200, "ready"),
            _ => Reply::text(
                404,
                "no such page; try /, /metrics, /status.json, /healthz or /readyz",
            ),
        }
    }
}
