//! sprout: a work-queue server that speaks the beanstalkd protocol.
//!
//! Reading order, from the wire inwards:
//! - [`event_loop`]: the single-threaded mio loop, sockets and signals.
//! - [`conn`]: a connection's buffers and the framing of lines and bodies.
//! - [`protocol`]: parsing one command line into a typed command;
//!   [`reply`]: writing the reply lines that carry numbers.
//! - [`engine`]: the queue engine that runs commands and timers.
//! - [`stats`]: the YAML documents of the stats commands; [`yaml`]: when
//!   a string value in them is quoted.
//! - [`journal`]: what the engine asks of persistence; [`binlog`]: the
//!   beanstalkd-format write-ahead log that provides it.
//! - [`tube`], [`watch_list`], [`job`], [`body_store`], [`heap`],
//!   [`timer_wheel`]: the data structures.
//! - [`cli`], [`listen`], [`clock`]: the command line, the listening
//!   socket, and the time every command is given; [`peer_cred`]: who a
//!   unix-socket client is.
//! - [`replication`]: a primary streaming its binlog records to replicas,
//!   and a replica applying them (the engine's side is `engine/replica.rs`).
//! - [`http`]: the optional HTTP port (`--http`): metrics, health checks
//!   and the status page, served by the same loop; [`histogram`]: the
//!   duration histograms it exposes.

pub mod binlog;
pub mod body_store;
pub mod cli;
pub mod clock;
pub mod conn;
pub mod engine;
pub mod event_loop;
pub mod heap;
pub mod histogram;
pub mod http;
pub mod id_index;
pub mod job;
pub mod journal;
pub mod listen;
pub mod peer_cred;
pub mod protocol;
pub mod replication;
pub mod reply;
pub mod stats;
pub mod timer_wheel;
pub mod tube;
pub mod watch_list;
pub mod yaml;
