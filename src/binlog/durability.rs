//! When writes become durable, for the event loop: group commit, what a
//! failed fsync does to the books, the clean stop, and deleting old files.

use super::*;

impl Binlog {
    /// Records written since start (a sequence number for sync waits).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Records known durable. Without fsync, everything written counts.
    pub fn synced(&self) -> u64 {
        match self.policy {
            SyncPolicy::Never => self.written,
            SyncPolicy::Every(_) => self.synced,
        }
    }

    /// When the next fsync should start, if one is wanted.
    ///
    /// Group commit: while an fsync is running, none is started. Writes that
    /// arrive meanwhile all wait for the next one, which covers them all,
    /// and starts the moment the running one completes. (Starting one fsync
    /// per write instead queues them on the sync thread, one record each.)
    pub fn sync_due(&self) -> Option<Instant> {
        let in_flight = self.requested > self.synced;
        match self.policy {
            // An old file waiting to be deleted waits for no interval.
            SyncPolicy::Every(_) if self.deletion_waits() && !in_flight => Some(self.last_sync),
            SyncPolicy::Every(every) if self.written > self.requested && !in_flight => {
                Some(self.last_sync + every)
            }
            _ => None,
        }
    }

    /// Whether the oldest file holds no live job and goes as soon as the
    /// records that moved its jobs away are durable.
    fn deletion_waits(&self) -> bool {
        let cur = self.cur.as_ref().map_or(FileNo::MAX, |c| c.no);
        (self.files.first_key_value())
            .is_some_and(|(&no, f)| no < cur && f.refs == 0 && f.freed_at > self.synced)
    }

    /// Starts an fsync if one is due at `now`; returns whether it did.
    pub fn start_sync(&mut self, now: Instant) -> bool {
        let (Some(due), Some(syncer), Some(cur)) = (self.sync_due(), &self.syncer, &self.cur)
        else {
            return false;
        };
        if now < due {
            return false;
        }
        syncer.send(Request::Sync {
            file: cur.file.clone(),
            seq: self.written,
        });
        self.requested = self.written;
        self.last_sync = now;
        true
    }

    /// Takes in the sync thread's reports; returns the records now durable,
    /// or the failure of an fsync. After a failure nothing more counts as
    /// durable until a later fsync succeeds (one is due at once); what to
    /// do about what was written is the caller's (see [`start_over`]).
    ///
    /// [`start_over`]: Self::start_over
    pub fn sync_completed(&mut self) -> Result<u64, SyncFailed> {
        let Some(syncer) = &mut self.syncer else {
            return Ok(self.synced());
        };
        match syncer.completed() {
            Ok(Some(seq)) => {
                self.synced = self.synced.max(seq);
                self.collect();
            }
            Ok(None) => {}
            Err(failed) => {
                self.sync_failures += 1;
                // As if never asked: the next fsync is due, and only its
                // success moves `synced` on.
                self.requested = self.synced;
                return Err(failed);
            }
        }
        Ok(self.synced())
    }

    /// What the binlog's files and fsyncs look like now, for metrics.
    pub fn figures(&self) -> DiskFigures {
        let size: u64 = self.files.values().map(|f| f.size).sum();
        let live: u64 = self.files.values().map(|f| f.live_bytes).sum();
        let latency = self.syncer.as_ref().map(|s| s.latency.clone());
        DiskFigures {
            files: self.files.len() as u64,
            spare_files: self.spares.len() as u64,
            disk_bytes: size + self.spares.iter().map(|s| s.size).sum::<u64>(),
            live_bytes: live,
            live_ratio: if size == 0 {
                1.0
            } else {
                live as f64 / size as f64
            },
            fsyncs: latency.as_ref().map_or(0, |h| h.count()),
            fsync_failures: self.sync_failures,
            fsync_seconds: latency.unwrap_or_default(),
            stats: self.stats(),
        }
    }

    /// fsyncs that failed since start.
    pub fn sync_failures(&self) -> u64 {
        self.sync_failures
    }

    /// After a failed fsync, nothing written since the last good one can be
    /// trusted to be on disk, and a retried fsync proves nothing. Leaves
    /// the current file for a fresh one, into which the caller rewrites
    /// every live job ([`Journal::migrate`]); the old files go once those
    /// records are durable, and with them the records of jobs deleted
    /// since, so no deleted job comes back.
    pub fn start_over(&mut self) -> Result<(), JournalError> {
        self.keep_files_until = u64::MAX; // until the rewrite is done
        self.rotate()
    }

    /// The rewrite after [`start_over`](Self::start_over) is written: old
    /// files may go once it is durable.
    pub fn rewritten(&mut self) {
        self.keep_files_until = self.written;
    }

    /// A clean stop: everything written is made durable, the current file
    /// is trimmed, and unused spares are removed. Fails if an fsync did
    /// (this one, or one still being reported).
    pub fn close(&mut self) -> Result<(), SyncFailed> {
        let mut outcome = Ok(());
        if let Some(mut s) = self.syncer.take() {
            outcome = s.finish().map(drop);
        }
        if let Some(cur) = &self.cur {
            if self.policy != SyncPolicy::Never
                && let Err(error) = cur.file.sync_data()
            {
                outcome = outcome.and(Err(SyncFailed {
                    retired: false,
                    error,
                }));
            }
            if let Err(e) = cur.file.set_len(cur.off) {
                warn!("binlog: cannot trim binlog.{}: {e}", cur.no);
            }
        }
        for s in self.spares.drain(..) {
            let _ = std::fs::remove_file(files::path_of(&self.dir, s.no));
        }
        if let Err(e) = &outcome {
            self.sync_failures += 1;
            error!("binlog: {e}; the last changes may not be on disk; check the disk");
        } else {
            self.synced = self.written;
            // Files whose jobs moved on can go now that the moves are on
            // disk (after a failed fsync, that is every file but the last).
            self.collect();
        }
        outcome
    }

    /// Deletes leading files that no live job calls home, once the records
    /// that moved their jobs away are durable; none while the jobs
    /// rewritten after a failed fsync are not yet durable, as the old files
    /// may hold their only copy on disk.
    pub(super) fn collect(&mut self) {
        let synced = self.synced();
        if synced < self.keep_files_until {
            return;
        }
        let cur = self.cur.as_ref().map_or(FileNo::MAX, |c| c.no);
        while let Some((&no, f)) = self.files.first_key_value() {
            let busy = f.refs > 0 || f.freed_at > synced;
            if no >= cur || busy || self.spares.iter().any(|s| s.no == no) {
                break;
            }
            let path = files::path_of(&self.dir, no);
            if let Err(e) = std::fs::remove_file(&path) {
                warn!(
                    "binlog: cannot remove {}, which holds no live job: {e}; delete it by hand",
                    path.display()
                );
                break;
            }
            info!("binlog: removed {}, which held no live job", path.display());
            self.files.remove(&no);
        }
    }
}
