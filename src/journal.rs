//! What the engine asks of persistence, and nothing about how it is done.
//!
//! The engine describes each change as a [`Image`] of the job *after* the
//! change and hands it to a [`Journal`] before it touches its own state: if
//! the journal refuses, the command fails and nothing has changed. The
//! binlog ([`crate::binlog`]) is the real journal; without `-b` there is
//! none, and every change is accepted.

use crate::body_store::BodyRef;
use crate::job::{Counts, JobKey, Nanos};

/// A binlog file number (`binlog.N`); 0 means "no file".
pub type FileNo = u32;

/// How a job stands, as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggedState {
    Ready,
    /// Reserved jobs come back ready after a restart; logged only when a
    /// reserve-job takes a job out of the buried or delayed state.
    Reserved,
    Delayed,
    Buried,
}

/// A job's fields as the journal writes them. Times are on the engine's
/// monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Image {
    pub key: JobKey,
    pub id: u64,
    pub pri: u32,
    /// Seconds.
    pub delay: u32,
    /// Seconds.
    pub ttr: u32,
    pub created_at: Nanos,
    /// When a delayed job becomes ready; ignored in other states.
    pub deadline: Nanos,
    /// A buried job's place in its tube's bury order (larger is later);
    /// ignored in other states.
    pub rank: u64,
    pub counts: Counts,
    pub state: LoggedState,
    /// The file holding the job's newest full record.
    pub home: FileNo,
    /// Length of the tube's name.
    pub tube_len: u32,
    /// Length of the body, CRLF included, as records give it.
    pub body_len: u32,
}

/// Why a change could not be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalError {
    /// No room could be set aside on disk (disk full, file-size limit).
    /// Answered OUT_OF_MEMORY, as beanstalkd does.
    NoSpace,
    /// A write failed. Answered INTERNAL_ERROR.
    Io,
}

impl JournalError {
    /// The reply a client gets when its command could not be logged.
    pub fn reply(self) -> &'static [u8] {
        match self {
            JournalError::NoSpace => b"OUT_OF_MEMORY\r\n",
            JournalError::Io => b"INTERNAL_ERROR\r\n",
        }
    }
}

/// A job read back from the binlog at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub id: u64,
    /// Shared by the jobs of one tube.
    pub tube: std::rc::Rc<str>,
    pub pri: u32,
    /// Seconds.
    pub delay: u32,
    /// Seconds.
    pub ttr: u32,
    /// On the engine's clock (may be before its start: saturates at 0).
    pub created_at: Nanos,
    pub counts: Counts,
    pub state: RestoredState,
    /// The body without its CRLF, in the store recovery hands over.
    pub body: BodyRef,
    pub home: FileNo,
}

/// Where a restored job goes. Jobs that were reserved come back ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoredState {
    Ready,
    /// Ready at `until`, on the engine's clock.
    Delayed {
        until: Nanos,
    },
    /// Buried jobs are queued by ascending rank (the order they were buried).
    /// `ranked` is false when the rank was not on disk but inferred from the
    /// record's position (files beanstalkd wrote): such a job's rank must be
    /// logged before compaction can move any buried job.
    Buried {
        rank: u64,
        ranked: bool,
    },
}

/// The binlog fields of `stats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JournalStats {
    pub oldest_index: u64,
    pub current_index: u64,
    pub records_migrated: u64,
    pub records_written: u64,
}

pub trait Journal {
    /// Logs a new job in full, and sets aside room for its delete. Returns
    /// the job's home file. `data` is the body without its CRLF (records
    /// add it).
    fn put(
        &mut self,
        img: &Image,
        tube: &str,
        data: &[u8],
        now: Nanos,
    ) -> Result<FileNo, JournalError>;

    /// Logs a change of state, priority or delay.
    fn update(&mut self, img: &Image, now: Nanos) -> Result<(), JournalError>;

    /// Logs a delete; it uses the room set aside by `put`.
    fn delete(&mut self, img: &Image, now: Nanos) -> Result<(), JournalError>;

    /// A file compaction wants emptied, with the jobs that may call it
    /// home (some entries may be stale: check each job's home). None when
    /// the disk is lean enough.
    fn wants_moved(&mut self) -> Option<(FileNo, Vec<JobKey>)>;

    /// Rewrites a job in full into the current file. Returns the new home.
    fn migrate(
        &mut self,
        img: &Image,
        tube: &str,
        data: &[u8],
        now: Nanos,
    ) -> Result<FileNo, JournalError>;

    fn stats(&self) -> JournalStats;

    /// Saves the replication epoch durably (beside the binlog, not in it:
    /// beanstalkd's format has no record for it) before the engine acts on
    /// it.
    fn save_epoch(&mut self, epoch: u64) -> Result<(), JournalError>;
}
