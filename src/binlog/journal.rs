//! The binlog as the engine's [`Journal`]: a put's full record and the
//! room for its delete, a state change's short record, a delete, and
//! compaction's moves.

use super::*;

impl Journal for Binlog {
    fn put(
        &mut self,
        img: &Image,
        tube: &str,
        body: &[u8],
        now: Nanos,
    ) -> Result<FileNo, JournalError> {
        let home = self.write_full(img, tube, body, now, self.owed + 1)?;
        if img.id >= self.max_id {
            self.max_id = img.id;
            self.max_id_live = true;
        }
        Ok(home)
    }

    fn update(&mut self, img: &Image, now: Nanos) -> Result<(), JournalError> {
        self.make_room(SHORT)?;
        let rec = Self::jobrec(img, Self::disk_state(img.state), now);
        self.write_short(&rec)
    }

    fn delete(&mut self, img: &Image, now: Nanos) -> Result<(), JournalError> {
        // Uses the job's own owed record: no room to find.
        let rec = Self::jobrec(img, DiskState::Deleted, now);
        self.write_short(&rec)?;
        self.owed = self.owed.saturating_sub(1);
        if img.id == self.max_id {
            self.max_id_live = false;
        }
        self.leave_home(img);
        self.collect();
        Ok(())
    }

    fn wants_moved(&mut self) -> Option<(FileNo, Vec<JobKey>)> {
        let cur = self.cur.as_ref()?.no;
        // A file whose jobs have all left goes once the records that moved
        // them are durable: until then, moving more jobs would not help.
        let synced = self.synced();
        let closed: u64 = (self.files.range(..cur))
            .filter(|(_, f)| f.refs > 0 || f.freed_at <= synced)
            .map(|(_, f)| f.size)
            .sum();
        let live: u64 = self.files.values().map(|f| f.live_bytes).sum();
        if closed <= live + self.file_size {
            return None;
        }
        let (&no, f) = self.files.range(..cur).find(|(_, f)| f.refs > 0)?;
        Some((no, f.keys.clone()))
    }

    fn migrate(
        &mut self,
        img: &Image,
        tube: &str,
        body: &[u8],
        now: Nanos,
    ) -> Result<FileNo, JournalError> {
        self.migrating = true;
        let home = self.write_full(img, tube, body, now, self.owed);
        self.migrating = false;
        let home = home?;
        self.leave_home(img);
        self.stats.records_migrated += 1;
        self.collect();
        Ok(home)
    }

    fn stats(&self) -> JournalStats {
        JournalStats {
            oldest_index: self.files.keys().next().copied().unwrap_or(0) as u64,
            current_index: self.cur.as_ref().map_or(0, |c| c.no) as u64,
            ..self.stats
        }
    }

    fn save_epoch(&mut self, epoch: u64) -> Result<(), JournalError> {
        epoch::write(&self.dir, epoch).map_err(|e| {
            log::error!(
                "binlog: cannot save epoch {epoch} in {}: {e}; the role change is refused, check the disk",
                self.dir.display()
            );
            if e.raw_os_error() == Some(libc::ENOSPC) {
                JournalError::NoSpace
            } else {
                JournalError::Io
            }
        })
    }
}
