//! What a command line parses into: a typed [`Command`], or why it was
//! refused.

use super::Op;

/// A parsed command. Tube names borrow from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    Put {
        pri: u32,
        delay: u32,
        ttr: u32,
        bytes: u32,
    },
    Peek(u64),
    PeekReady,
    PeekDelayed,
    PeekBuried,
    Reserve,
    ReserveWithTimeout(u32),
    ReserveJob(u64),
    Delete(u64),
    Release {
        id: u64,
        pri: u32,
        delay: u32,
    },
    Bury {
        id: u64,
        pri: u32,
    },
    Touch(u64),
    Kick(u32),
    KickJob(u64),
    StatsJob(u64),
    StatsTube(&'a str),
    Stats,
    Use(&'a str),
    Watch(&'a str),
    Ignore(&'a str),
    ListTubes,
    ListTubeUsed,
    ListTubesWatched,
    PauseTube {
        name: &'a str,
        delay: u32,
    },
    Quit,
    /// `sprout-replicate [EPOCH]`: a replica asks to follow this server's
    /// binlog (no beanstalkd client sends it; beanstalkd answers
    /// UNKNOWN_COMMAND). EPOCH is the newest the replica knows (0 if none).
    Replicate {
        epoch: u64,
    },
    /// `sprout-promote EPOCH`: become the primary of a newer epoch (what a
    /// supervisor sends once etcd has elected this node).
    Promote {
        epoch: u64,
    },
    /// `sprout-follow HOST:PORT EPOCH`: stop taking changes at once and
    /// follow that primary, of that epoch.
    Follow {
        primary: &'a str,
        epoch: u64,
    },
    /// `sprout-demote`: stop taking changes at once and follow no one
    /// (what a supervisor sends when it can no longer renew its lease).
    Demote,
}

impl Command<'_> {
    /// Whether the command changes what the queue holds or who holds it:
    /// a replica refuses these. `use`, `watch` and `ignore` change only
    /// the connection.
    pub fn changes_the_queue(&self) -> bool {
        matches!(
            self,
            Command::Put { .. }
                | Command::Reserve
                | Command::ReserveWithTimeout(_)
                | Command::ReserveJob(_)
                | Command::Delete(_)
                | Command::Release { .. }
                | Command::Bury { .. }
                | Command::Touch(_)
                | Command::Kick(_)
                | Command::KickJob(_)
                | Command::PauseTube { .. }
        )
    }

    /// The stats counter this command bumps once it has parsed.
    pub fn op(&self) -> Option<Op> {
        Some(match self {
            Command::Put { .. } => Op::Put,
            Command::Peek(_) => Op::Peek,
            Command::PeekReady => Op::PeekReady,
            Command::PeekDelayed => Op::PeekDelayed,
            Command::PeekBuried => Op::PeekBuried,
            Command::Reserve => Op::Reserve,
            Command::ReserveWithTimeout(_) => Op::ReserveWithTimeout,
            Command::ReserveJob(_) => Op::ReserveJob,
            Command::Delete(_) => Op::Delete,
            Command::Release { .. } => Op::Release,
            Command::Bury { .. } => Op::Bury,
            Command::Touch(_) => Op::Touch,
            Command::Kick(_) => Op::Kick,
            Command::KickJob(_) => Op::KickJob,
            Command::StatsJob(_) => Op::StatsJob,
            Command::StatsTube(_) => Op::StatsTube,
            Command::Stats => Op::Stats,
            Command::Use(_) => Op::Use,
            Command::Watch(_) => Op::Watch,
            Command::Ignore(_) => Op::Ignore,
            Command::ListTubes => Op::ListTubes,
            Command::ListTubeUsed => Op::ListTubeUsed,
            Command::ListTubesWatched => Op::ListTubesWatched,
            Command::PauseTube { .. } => Op::PauseTube,
            Command::Quit
            | Command::Replicate { .. }
            | Command::Promote { .. }
            | Command::Follow { .. }
            | Command::Demote => return None,
        })
    }
}

/// Why a line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// `BAD_FORMAT`. `counted` is the counter beanstalkd bumps anyway (its
    /// numbers parsed, a later check failed). `body` is the length of a put
    /// body that follows the bad line and must be skipped, when it can be
    /// known (see doc/compatibility.md: beanstalkd runs it as commands).
    BadFormat {
        counted: Option<Op>,
        body: Option<u32>,
    },
    /// `UNKNOWN_COMMAND`.
    UnknownCommand,
    /// `JOB_TOO_BIG`, sent only after `bytes + 2` body bytes are skipped.
    /// Counted as a put.
    JobTooBig { bytes: u32 },
}

pub(super) const BAD: ParseError = ParseError::BadFormat {
    counted: None,
    body: None,
};
