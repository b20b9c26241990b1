//! The records kept for replicas while any follow: each record the binlog
//! writes (but compaction's, which changes no job) is framed for the
//! replication stream as it is written, and the event loop takes them
//! each turn (see `crate::replication`).

use super::*;
use crate::replication::frame::{self, Kind};

impl Binlog {
    /// A record was written: kept, framed, if replicas follow.
    pub(super) fn tapped(tap: &mut Option<(Vec<u8>, u64)>, total: &mut u64, record: &[u8]) {
        if let Some((tap, count)) = tap {
            frame::push(tap, Kind::Record, record);
            *count += 1;
            *total += 1;
        }
    }

    /// Records kept for replicas since start: the sequence replicas'
    /// acknowledgements are measured in.
    pub fn tapped_total(&self) -> u64 {
        self.tapped_total
    }

    /// Starts (or stops) keeping the records written for replicas.
    pub fn set_tap(&mut self, on: bool) {
        match (on, &self.tap) {
            (true, None) => self.tap = Some((Vec::new(), 0)),
            (false, _) => self.tap = None,
            _ => {}
        }
    }

    /// The record frames written since the last call, and how many.
    pub fn take_tap(&mut self) -> Option<(Vec<u8>, u64)> {
        let (tap, count) = self.tap.as_mut()?;
        if *count == 0 {
            return None;
        }
        Some((std::mem::take(tap), std::mem::take(count)))
    }

    /// A job's full record as this binlog would write it, for a
    /// replica's snapshot.
    pub fn encode_job(out: &mut Vec<u8>, img: &Image, tube: &str, body: &[u8], now: Nanos) {
        let rec = Self::jobrec(img, Self::disk_state(img.state), now);
        record::encode_full(out, tube.as_bytes(), &rec, body);
    }
}
