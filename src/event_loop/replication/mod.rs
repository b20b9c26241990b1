//! Replication's sockets, on the loop's thread.
//!
//! On a primary, a queue connection that sends `sprout-replicate` leaves
//! the engine and becomes a downstream: it gets a snapshot of every live
//! job, a slice a turn, and then every record the binlog writes, as it is
//! written, framed (`crate::replication::frame`); only its `ACK` lines are
//! read back. One whose frames pile up past `leader::MAX_BEHIND` is
//! dropped, and resyncs when it comes back.
//!
//! On a replica (`--replica-of`), one upstream connection to the primary:
//! connected without blocking, retried with back-off when it fails or
//! ends, its frames applied to the engine, which logs them to this
//! server's own binlog.
//!
//! `downstream.rs` is the primary's side, `upstream.rs` the replica's,
//! `role.rs` what a promotion or a demotion does to them.

use super::*;

mod downstream;
mod role;
mod upstream;

pub use downstream::DownConn;
pub use upstream::{Upstream, UpstreamFigures};

/// Downstream connections are `REPL_BASE + key` (below `HTTP_BASE`).
pub const REPL_BASE: usize = 1 << 39;
pub const UPSTREAM: Token = Token(usize::MAX - 5);

impl Server {
    /// Tells the engine where replication stands (stats show it).
    pub(super) fn update_replication_view(&mut self) {
        let up = self.upstream.as_ref().map(|u| &u.figures);
        let v = crate::engine::ReplicationView {
            replicas: self.downstreams.len() as u64,
            primary: up.map(|f| f.primary.clone()),
            following: up.is_some_and(|f| f.connected),
            applied: up.map_or(0, |f| f.applied),
            position: up.and_then(|f| f.position),
            heard: up.and_then(|f| f.heard),
        };
        if *self.engine.replication_view() != v {
            self.engine.set_replication_view(v);
        }
        // --sync-replicas N: with fewer than N replicas in step a change
        // could not be made durable, so it is refused before it is made.
        if self.sync_replicas > 0 {
            let in_step = (self.downstreams.iter())
                .filter(|(_, dc)| dc.in_step_upto().is_some())
                .count();
            self.engine.set_writes_refused(in_step < self.sync_replicas);
        }
    }
}
