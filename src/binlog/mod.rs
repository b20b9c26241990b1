//! The binlog: beanstalkd's write-ahead log format, kept by the event loop
//! thread, synced by a thread of its own.
//!
//! Submodules: [`record`] (the byte layout), [`replay`] (recovery from the
//! bytes), [`files`] (the directory, lock and preallocation), [`sync`] (the
//! fsync thread), `durability.rs` (when writes count as durable, what a
//! failed fsync does, the clean stop, deleting old files), `journal.rs`
//! (what the engine asks: each kind of record), `tap.rs` (the records
//! kept for replicas). This file keeps
//! the books: which file is being written,
//! how much room is set aside for deletes, which files still hold live jobs,
//! and when compaction should move jobs out of an old file.
//!
//! Room for deletes: every live job is owed one short record. The writer
//! keeps enough preallocated space in the current file and in *spare* files
//! (created ahead, allocated in full) to write every owed record without
//! creating a file, so a delete never fails for want of space. Anything
//! that adds a job or writes a record first makes sure the books still
//! balance afterwards, creating spares as needed; if it cannot, the command
//! fails and nothing is written.
//!
//! Ids: each new current file starts with a delete record for the largest
//! id assigned so far (unless that job is alive, and so has a record of its
//! own), so that the largest id survives compaction of every older file.
//! beanstalkd reads such a record as a delete of a job it does not know,
//! and ignores it.

mod durability;
pub mod epoch;
pub mod files;
mod journal;
pub mod record;
pub mod replay;
pub mod sync;
mod tap;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{error, info, warn};

use crate::job::{JobKey, NANOS_PER_SEC, Nanos};
use crate::journal::{FileNo, Image, Journal, JournalError, JournalStats, LoggedState};
use files::OpenError;
use record::{DiskState, HEADER_SIZE, JobRec, SHORT_SIZE};
use sync::{Request, SyncFailed, Syncer};

const SHORT: u64 = SHORT_SIZE as u64;
/// Bytes of a fresh file not available for records: header and id record.
const FILE_OVERHEAD: u64 = HEADER_SIZE as u64 + SHORT;

/// When writes are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// -F: never fsync; the OS writes back when it likes.
    Never,
    /// -f MS: fsync within MS ms of a write. With 0, replies to commands
    /// that wrote wait for the fsync.
    Every(Duration),
}

/// The binlog as metrics show it.
#[derive(Debug, Clone, Default)]
pub struct DiskFigures {
    /// Files holding records (spares, preallocated and empty, apart).
    pub files: u64,
    pub spare_files: u64,
    /// Bytes allocated on disk, spares included.
    pub disk_bytes: u64,
    /// Bytes of the newest full records of live jobs.
    pub live_bytes: u64,
    /// live_bytes over the bytes of the files holding records: what
    /// compaction would keep.
    pub live_ratio: f64,
    /// Successful fsyncs of the current file, and every failed one.
    pub fsyncs: u64,
    pub fsync_failures: u64,
    pub fsync_seconds: crate::histogram::Histogram,
    /// What `stats` shows of the binlog.
    pub stats: JournalStats,
}

/// The books of one file.
#[derive(Debug, Default)]
struct FileInfo {
    /// Live jobs whose newest full record is here.
    refs: u64,
    /// Bytes of those records.
    live_bytes: u64,
    /// Bytes on disk.
    size: u64,
    /// Jobs that were given this file as home (some may since have moved).
    keys: Vec<JobKey>,
    /// Records written when its last job left (moved on or deleted): the
    /// file may go once that many are durable, not before, or a crash
    /// could lose a moved job's only copy on disk.
    freed_at: u64,
}

struct Writing {
    no: FileNo,
    file: Arc<File>,
    /// Where the next record goes.
    off: u64,
    /// Allocated size.
    size: u64,
}

struct Spare {
    no: FileNo,
    file: Arc<File>,
    size: u64,
}

pub struct Binlog {
    dir: PathBuf,
    _lock: File,
    file_size: u64,
    files: BTreeMap<FileNo, FileInfo>,
    cur: Option<Writing>,
    spares: Vec<Spare>,
    /// Short records owed: one per live job.
    owed: u64,
    max_id: u64,
    max_id_live: bool,
    stats: JournalStats,
    scratch: Vec<u8>,
    policy: SyncPolicy,
    syncer: Option<Syncer>,
    /// Records written, requested synced, and known synced.
    written: u64,
    requested: u64,
    synced: u64,
    last_sync: Instant,
    /// fsyncs that failed since start.
    sync_failures: u64,
    /// No file is deleted until this many records are durable (set after
    /// the jobs were rewritten following a failed fsync).
    keep_files_until: u64,
    /// While replicas follow: every record written (but compaction's,
    /// which changes no job), framed for them, and how many.
    tap: Option<(Vec<u8>, u64)>,
    tapped_total: u64,
    /// Compaction is writing: its records are not tapped.
    migrating: bool,
}

/// A recovered binlog, ready to hand its jobs to the engine.
pub struct Opened {
    pub binlog: Binlog,
    pub replayed: replay::Replayed,
}

fn no_space(dir: &Path, e: std::io::Error) -> JournalError {
    warn!(
        "binlog: cannot allocate a file in {}: {e}; puts, buries and delayed releases are refused (OUT_OF_MEMORY) until there is room: free disk space",
        dir.display()
    );
    JournalError::NoSpace
}

/// Bytes of a job's full record, from its tube name and body lengths.
pub fn full_record_size(payload: u64) -> u64 {
    record::full_size(0, 0) as u64 + payload
}

/// The wall clock as binlog records and the replication stream give it:
/// nanoseconds since the epoch.
pub fn wall_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Binlog {
    /// Locks `dir`, reads every file in it, and opens a new file to write.
    /// `now` is the engine's clock; `wake` is called from the sync thread.
    pub fn open(
        dir: &Path,
        file_size: u64,
        policy: SyncPolicy,
        now: Nanos,
        wake: impl Fn() + Send + 'static,
    ) -> Result<Opened, OpenError> {
        let io = |e| OpenError::Io(dir.to_path_buf(), e);
        let lock = files::lock(dir)?;
        let found = files::list(dir).map_err(io)?;
        // One file at a time through one buffer: the files can be far
        // larger than the jobs they leave alive.
        let mut replay = replay::Replay::new();
        let mut sizes = Vec::with_capacity(found.len());
        let mut buf = Vec::new();
        for &no in &found {
            let path = files::path_of(dir, no);
            buf.clear();
            match File::open(&path).and_then(|mut f| f.read_to_end(&mut buf)) {
                Ok(size) => {
                    replay.file(no, &buf);
                    sizes.push((no, size as u64));
                }
                Err(e) => warn!("cannot read {}: {e}; skipping it", path.display()),
            }
        }
        drop(buf);
        let replayed = replay.finish(wall_now(), now);
        for p in &replayed.problems {
            match p {
                replay::Problem::Empty(n) => {
                    info!("{p}; removing it");
                    let _ = std::fs::remove_file(files::path_of(dir, *n));
                }
                _ => warn!("{p}"),
            }
        }
        let mut b = Binlog {
            dir: dir.to_path_buf(),
            _lock: lock,
            file_size: files::round_up(file_size.max(FILE_OVERHEAD + SHORT)),
            files: BTreeMap::new(),
            cur: None,
            spares: Vec::new(),
            owed: 0,
            max_id: replayed.next_id - 1,
            max_id_live: false,
            stats: JournalStats::default(),
            scratch: Vec::new(),
            tap: None,
            tapped_total: 0,
            migrating: false,
            policy,
            syncer: None,
            written: 0,
            requested: 0,
            synced: 0,
            last_sync: Instant::now(),
            sync_failures: 0,
            keep_files_until: 0,
        };
        for (no, size) in sizes {
            if replayed.read.contains(&no) {
                b.files.insert(
                    no,
                    FileInfo {
                        size,
                        ..FileInfo::default()
                    },
                );
            }
        }
        b.max_id_live = replayed.jobs.iter().any(|j| j.id == b.max_id);
        let next = found.last().map_or(1, |n| n + 1);
        let file = files::create(dir, next, b.file_size)
            .map_err(|e| OpenError::Io(files::path_of(dir, next), e))?;
        b.files.insert(
            next,
            FileInfo {
                size: b.file_size,
                ..FileInfo::default()
            },
        );
        b.cur = Some(Writing {
            no: next,
            file: Arc::new(file),
            off: HEADER_SIZE as u64,
            size: b.file_size,
        });
        b.write_id_record();
        if let SyncPolicy::Every(_) = policy {
            b.syncer = Some(Syncer::start(wake).map_err(io)?);
        }
        Ok(Opened {
            binlog: b,
            replayed,
        })
    }

    /// Takes in the jobs the engine restored (key and home file each), and
    /// sets aside room for their deletes. Fails if the disk cannot hold it.
    /// `payloads` are the jobs' tube name plus body lengths.
    pub fn adopt(
        &mut self,
        jobs: &[(JobKey, FileNo)],
        payloads: &[u64],
    ) -> Result<(), JournalError> {
        for (&(key, home), &payload) in jobs.iter().zip(payloads) {
            let f = self.files.entry(home).or_default();
            f.refs += 1;
            f.live_bytes += full_record_size(payload);
            f.keys.push(key);
        }
        self.owed = jobs.len() as u64;
        self.make_room(0)?;
        self.collect();
        Ok(())
    }

    // ---- room ----

    fn usable(size: u64) -> u64 {
        size - FILE_OVERHEAD
    }

    /// Short records that fit in the space allocated and not yet written,
    /// if the next record written takes `n` bytes.
    fn slots_after(&self, n: u64) -> Option<u64> {
        let cur = self.cur.as_ref()?;
        let rem = cur.size - cur.off;
        let spares = |skip: usize| -> u64 {
            self.spares[skip..]
                .iter()
                .map(|s| Self::usable(s.size) / SHORT)
                .sum()
        };
        if n <= rem {
            return Some((rem - n) / SHORT + spares(0));
        }
        let first = self.spares.first()?;
        if Self::usable(first.size) < n {
            return None;
        }
        Some((Self::usable(first.size) - n) / SHORT + spares(1))
    }

    /// Makes sure that after a record of `n` bytes every owed short record
    /// still fits, creating or growing spare files as needed.
    fn make_room(&mut self, n: u64) -> Result<(), JournalError> {
        self.ensure_current()?;
        loop {
            let cur = self.cur.as_ref().ok_or(JournalError::Io)?;
            let fits_cur = n <= cur.size - cur.off;
            if !fits_cur
                && let Some(first) = self.spares.first_mut()
                && Self::usable(first.size) < n
            {
                // A record bigger than a file: grow the next file for it.
                let size = files::round_up(n + FILE_OVERHEAD);
                files::allocate(&first.file, size).map_err(|e| no_space(&self.dir, e))?;
                first.size = size;
                self.files.entry(first.no).or_default().size = size;
            }
            match self.slots_after(n) {
                Some(s) if s >= self.owed => return Ok(()),
                _ => self.add_spare(n)?,
            }
        }
    }

    fn add_spare(&mut self, n: u64) -> Result<(), JournalError> {
        let no = self
            .files
            .keys()
            .next_back()
            .map_or(1, |n| n + 1)
            .max(self.cur.as_ref().map_or(1, |c| c.no + 1));
        let size = self.file_size.max(files::round_up(n + FILE_OVERHEAD));
        let file = files::create(&self.dir, no, size).map_err(|e| no_space(&self.dir, e))?;
        self.files.insert(
            no,
            FileInfo {
                size,
                ..FileInfo::default()
            },
        );
        self.spares.push(Spare {
            no,
            file: Arc::new(file),
            size,
        });
        Ok(())
    }

    // ---- writing ----

    /// Writes one encoded record (in `self.scratch`) to the current file,
    /// moving to the next spare when it does not fit. Returns its file.
    fn write_scratch(&mut self) -> Result<FileNo, JournalError> {
        let n = self.scratch.len() as u64;
        let fits = self.cur.as_ref().is_some_and(|c| n <= c.size - c.off);
        if !fits {
            self.rotate()?;
        }
        let cur = self.cur.as_mut().ok_or(JournalError::Io)?;
        if let Err(e) = cur.file.write_all_at(&self.scratch, cur.off) {
            error!(
                "binlog: writing binlog.{} at byte {} failed: {e}; the command was refused (INTERNAL_ERROR) and writing goes on in a new file; check the disk",
                cur.no, cur.off
            );
            self.retire();
            // Room for every delete was partly in the file just left.
            if let Err(e) = self.make_room(0) {
                error!(
                    "binlog: no fresh file to write to ({e:?}); changes are refused until one can be made"
                );
            }
            return Err(JournalError::Io);
        }
        cur.off += n;
        let no = cur.no;
        self.written += 1;
        self.stats.records_written += 1;
        if !self.migrating {
            Self::tapped(&mut self.tap, &mut self.tapped_total, &self.scratch);
        }
        Ok(no)
    }

    /// Leaves the current file (trimmed to what was written) for the next
    /// spare.
    fn rotate(&mut self) -> Result<(), JournalError> {
        self.retire();
        self.ensure_current()
    }

    /// Makes the next spare (created if there is none) the current file,
    /// if there is no current file (after a write error).
    fn ensure_current(&mut self) -> Result<(), JournalError> {
        if self.cur.is_some() {
            return Ok(());
        }
        if self.spares.is_empty() {
            self.add_spare(0)?;
        }
        let s = self.spares.remove(0);
        self.cur = Some(Writing {
            no: s.no,
            file: s.file,
            off: HEADER_SIZE as u64,
            size: s.size,
        });
        self.write_id_record();
        Ok(())
    }

    /// Closes the current file: trimmed, synced off the loop, kept until
    /// its jobs are gone.
    fn retire(&mut self) {
        let Some(cur) = self.cur.take() else { return };
        if let Err(e) = cur.file.set_len(cur.off) {
            warn!("binlog: cannot trim binlog.{}: {e}", cur.no);
        } else {
            self.files.entry(cur.no).or_default().size = cur.off;
        }
        if let Some(s) = &self.syncer {
            s.send(Request::Retire { file: cur.file });
        }
        self.collect();
    }

    fn write_id_record(&mut self) {
        if self.max_id == 0 || self.max_id_live {
            return;
        }
        let rec = JobRec {
            id: self.max_id,
            pri: 0,
            delay: 0,
            ttr: 0,
            body_size: 0,
            created_at: 0,
            deadline_at: 0,
            counts: Default::default(),
            state: DiskState::Deleted,
        };
        // Not in `scratch`: a rotation in the middle of writing a record
        // comes here with that record still in it.
        let mut buf = Vec::with_capacity(SHORT_SIZE);
        record::encode_short(&mut buf, &rec);
        // Room for it is outside the books (FILE_OVERHEAD).
        if let Some(cur) = &mut self.cur {
            match cur.file.write_all_at(&buf, cur.off) {
                Ok(()) => {
                    cur.off += SHORT;
                    self.written += 1;
                    self.stats.records_written += 1;
                    Self::tapped(&mut self.tap, &mut self.tapped_total, &buf);
                }
                Err(e) => warn!(
                    "binlog: cannot write the id record: {e}; if this persists, ids may be given out again after a restart; check the disk"
                ),
            }
        }
    }

    /// The record of `img`; `now` is the engine's clock, which is
    /// monotonic, while the binlog's times are wall-clock.
    fn jobrec(img: &Image, state: DiskState, now: Nanos) -> JobRec {
        let wall = wall_now();
        let to_wall = |t: Nanos| wall.saturating_add(t as i64 - now as i64);
        JobRec {
            id: img.id,
            pri: img.pri,
            delay: img.delay as i64 * NANOS_PER_SEC as i64,
            ttr: img.ttr as i64 * NANOS_PER_SEC as i64,
            body_size: img.body_len as i32,
            created_at: to_wall(img.created_at),
            deadline_at: match img.state {
                LoggedState::Delayed => to_wall(img.deadline),
                LoggedState::Buried => replay::encode_rank(img.rank),
                _ => 0,
            },
            counts: img.counts,
            state,
        }
    }

    fn disk_state(s: LoggedState) -> DiskState {
        match s {
            LoggedState::Ready => DiskState::Ready,
            LoggedState::Reserved => DiskState::Reserved,
            LoggedState::Delayed => DiskState::Delayed,
            LoggedState::Buried => DiskState::Buried,
        }
    }

    /// Writes a full record of `img` and makes its file the job's home.
    fn write_full(
        &mut self,
        img: &Image,
        tube: &str,
        body: &[u8],
        now: Nanos,
        owed_after: u64,
    ) -> Result<FileNo, JournalError> {
        let n = record::full_size(tube.len(), body.len() + 2) as u64;
        let owed = self.owed;
        self.owed = owed_after;
        let room = self.make_room(n);
        self.owed = owed;
        room?;
        let rec = Self::jobrec(img, Self::disk_state(img.state), now);
        self.scratch.clear();
        record::encode_full(&mut self.scratch, tube.as_bytes(), &rec, body);
        let home = self.write_scratch()?;
        self.owed = owed_after;
        let f = self.files.entry(home).or_default();
        f.refs += 1;
        f.live_bytes += n;
        f.keys.push(img.key);
        Ok(home)
    }

    /// Takes a job's full record out of its old home's books.
    fn leave_home(&mut self, img: &Image) {
        let size = full_record_size(img.tube_len as u64 + img.body_len as u64);
        let written = self.written;
        if let Some(f) = self.files.get_mut(&img.home) {
            f.refs = f.refs.saturating_sub(1);
            f.live_bytes = f.live_bytes.saturating_sub(size);
            if f.refs == 0 {
                f.keys = Vec::new();
                f.freed_at = written;
            }
        }
    }

    fn write_short(&mut self, rec: &JobRec) -> Result<(), JournalError> {
        self.scratch.clear();
        record::encode_short(&mut self.scratch, rec);
        self.write_scratch().map(|_| ())
    }
}
