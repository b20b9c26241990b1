//! Replication: a primary streams the records it writes to its binlog to
//! replicas (`--replica-of HOST:PORT`), which apply them to their own
//! engine and write them to their own binlog, so that a replica's
//! directory is an ordinary v7 binlog that sprout or beanstalkd can start
//! on. Who is primary is never decided here: an operator, or a supervisor
//! reading etcd, says so (doc/ha.md).
//!
//! Reading order: [`frame`] (the stream's framing and checks),
//! [`leader`] (the primary's side of one replica: frames waiting, bounded;
//! its snapshot; its acknowledgements), [`follower`] (a replica's side of
//! its connection: the greeting, frames to apply, acknowledgements to
//! send). None has a socket or a clock. The engine applies records in
//! `engine/replica.rs`; the sockets are in `event_loop/replication/`
//! (`downstream.rs` a primary's, `upstream.rs` a replica's).

pub mod follower;
pub mod frame;
pub mod leader;
