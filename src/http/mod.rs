//! The HTTP port (`--http ADDR:PORT`): Prometheus metrics, health checks
//! and a status page, served by the queue's own event loop so that they
//! read the engine's state as it is, without locks or copies.
//!
//! Reading order: [`session`] (one connection: framing with `httparse`,
//! limits, keep-alive; no sockets, time passed in; [`output`] holds what
//! waits to be written), [`live`] (the state a response is made from),
//! [`site`] (which path answers what), [`metrics`] (the Prometheus text; [`tube_lines`] keeps its
//! per-tube part rendered between scrapes, and [`gzip`] its compressed
//! pieces), [`status`] (the snapshot
//! and `/status.json`; [`tube_order`] sorts its tubes), [`page`] (the HTML page), [`text`] (escaping for each format),
//! [`rates`] (puts, reserves and deletes per second over the last minute),
//! [`history`] (the last 15 minutes, for the page's chart).
//! The sockets are `event_loop/http.rs`'s.

pub mod gzip;
pub mod history;
pub mod live;
pub mod metrics;
pub mod output;
pub mod page;
pub mod rates;
pub mod recovering;
pub mod session;
pub mod site;
pub mod status;
pub mod text;
pub mod tube_lines;
pub mod tube_order;

use std::time::Duration;

/// Bytes of a request line and its headers together; past it, 414 (no
/// line end yet) or 431, and the connection closes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Headers in one request; past it, 431.
pub const MAX_HEADERS: usize = 32;
/// From a request's first byte to its last; past it, 408 and a close
/// (a client trickling headers holds a connection no longer than this).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle keep-alive connection is closed after this.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A connection whose client reads none of a response for this long is
/// closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP connections at once; one more is answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 64;
/// Responses waiting to be written, per connection, before the next
/// pipelined request is read.
pub const OUTPUT_LIMIT: usize = 256 * 1024;
