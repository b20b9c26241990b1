//! The primary's side of one replica, without the socket: the frames
//! waiting to be written (bounded), where its snapshot has got to, and the
//! acknowledgements it sends back, the only thing read from it.

use super::frame::{self, Kind};
use crate::job::{NANOS_PER_SEC, Nanos};

/// Replicas one primary streams to at once; one more is answered
/// `OUT_OF_MEMORY` and closed, so that replication streams cannot hold
/// more than this many times [`MAX_BEHIND`].
pub const MAX_REPLICAS: usize = 8;
/// Frames waiting for one replica at most; past it the replica is dropped
/// (it reconnects and resyncs), so a slow one cannot grow the primary.
pub const MAX_BEHIND: usize = 64 << 20;
/// Jobs a snapshot sends per turn of the loop, so that a million of them
/// do not hold up other clients.
pub const SNAPSHOT_JOBS_PER_TURN: usize = 2000;
/// A snapshot moves on only while less than this waits for its replica:
/// it goes at the replica's pace, never near [`MAX_BEHIND`].
pub const SNAPSHOT_AHEAD: usize = 4 << 20;
/// Time between heartbeats.
pub const HEARTBEAT: Nanos = NANOS_PER_SEC;
/// The longest line a replica may send (`ACK <u64>\r\n`, with room).
const MAX_LINE: usize = 64;

/// Why a replica's connection is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadError {
    /// More than [`MAX_BEHIND`] bytes waiting for it.
    TooFarBehind,
    /// It sent something other than `ACK <n>` lines.
    BadInput(String),
}

impl std::fmt::Display for LeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeadError::TooFarBehind => write!(
                f,
                "more than {} MiB of records wait for it; it will resync when it reconnects",
                MAX_BEHIND >> 20
            ),
            LeadError::BadInput(l) => write!(f, "it sent {l:?}, not ACK <n>"),
        }
    }
}

#[derive(Debug)]
pub struct Downstream {
    out: Vec<u8>,
    /// Bytes of `out` already written.
    written: usize,
    /// The next job slot the snapshot sends; None once it has ended.
    pub snapshot: Option<usize>,
    /// Record frames queued for it, and those it says it has applied.
    pub sent: u64,
    pub acked: u64,
    input: Vec<u8>,
    next_heartbeat: Nanos,
    /// (record frames sent, records the primary had tapped by then), in
    /// order: what an acknowledgement of n frames covers.
    marks: std::collections::VecDeque<(u64, u64)>,
    /// The primary's tapped records this replica has applied, counted
    /// once its snapshot has ended (before, it is not in step).
    pub in_step_upto: Option<u64>,
}

impl Downstream {
    /// A replica that has just asked to follow: `earlier` (replies to what
    /// it sent before, not yet written), the answer, and the start of its
    /// snapshot.
    pub fn new(earlier: &[u8], instance_id: &str, epoch: u64, now: Nanos) -> Downstream {
        let mut out = earlier.to_vec();
        out.extend_from_slice(format!("REPLICATING {instance_id} {epoch}\r\n").as_bytes());
        frame::push(&mut out, Kind::SnapshotBegin, &[]);
        Downstream {
            out,
            written: 0,
            snapshot: Some(0),
            sent: 0,
            acked: 0,
            input: Vec::new(),
            next_heartbeat: now + HEARTBEAT,
            marks: std::collections::VecDeque::new(),
            in_step_upto: None,
        }
    }

    /// Queues record frames (`count` of them, already framed), which bring
    /// the primary's tapped records to `tapped`.
    pub fn push_records(
        &mut self,
        frames: &[u8],
        count: u64,
        tapped: u64,
    ) -> Result<(), LeadError> {
        self.out.extend_from_slice(frames);
        self.sent += count;
        if self.snapshot.is_none() {
            self.marks.push_back((self.sent, tapped));
        }
        self.check()
    }

    /// Queues one record, framed here (a snapshot's).
    pub fn push_record(&mut self, record: &[u8]) {
        frame::push(&mut self.out, Kind::Record, record);
        self.sent += 1;
    }

    /// The snapshot is complete: with it the replica holds every change
    /// up to the primary's `tapped` records.
    pub fn end_snapshot(&mut self, next_id: u64, tapped: u64) {
        frame::push_snapshot_end(&mut self.out, next_id, tapped);
        self.snapshot = None;
        self.marks.push_back((self.sent, tapped));
        // An empty snapshot is acknowledged already.
        self.settle();
    }

    /// Moves `in_step_upto` to what the acknowledgements now cover.
    fn settle(&mut self) {
        while let Some(&(sent, tapped)) = self.marks.front() {
            if sent > self.acked {
                break;
            }
            self.in_step_upto = Some(tapped);
            self.marks.pop_front();
        }
    }

    /// The primary has been promoted to a newer epoch: the replica takes
    /// it in order with the records.
    pub fn push_epoch(&mut self, epoch: u64) {
        frame::push_epoch(&mut self.out, epoch);
    }

    /// A heartbeat, if one is due.
    pub fn heartbeat(&mut self, now: Nanos, wall: i64) {
        if now >= self.next_heartbeat {
            frame::push_heartbeat(&mut self.out, wall, self.sent);
            self.next_heartbeat = now + HEARTBEAT;
        }
    }

    pub fn check(&self) -> Result<(), LeadError> {
        if self.out.len() - self.written > MAX_BEHIND {
            return Err(LeadError::TooFarBehind);
        }
        Ok(())
    }

    /// A snapshot slice may be added now.
    pub fn snapshot_wants_more(&self) -> bool {
        self.snapshot.is_some() && self.out.len() - self.written < SNAPSHOT_AHEAD
    }

    pub fn unsent(&self) -> &[u8] {
        &self.out[self.written..]
    }

    pub fn wrote(&mut self, n: usize) {
        self.written += n;
        // Moved down only when most of it is written, not on every write.
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        } else if self.written > (1 << 20) && self.written * 2 > self.out.len() {
            self.out.drain(..self.written);
            self.written = 0;
        }
    }

    /// What the replica sent: `ACK <n>` lines.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), LeadError> {
        self.input.extend_from_slice(bytes);
        while let Some(end) = self.input.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&self.input[..end]).into_owned();
            let n = line
                .strip_prefix("ACK ")
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|&n| n <= self.sent)
                .ok_or_else(|| LeadError::BadInput(line.clone()))?;
            self.acked = self.acked.max(n);
            self.input.drain(..end + 2);
        }
        self.settle();
        if self.input.len() > MAX_LINE {
            let l = String::from_utf8_lossy(&self.input[..MAX_LINE]).into_owned();
            return Err(LeadError::BadInput(l));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_are_read_and_bounded() {
        let mut d = Downstream::new(b"", "id", 1, 0);
        assert!(d.unsent().starts_with(b"REPLICATING id 1\r\n"));
        d.push_record(b"r");
        d.push_record(b"r");
        d.receive(b"ACK 1\r\nAC").unwrap();
        assert_eq!(d.acked, 1);
        d.receive(b"K 2\r\n").unwrap();
        assert_eq!(d.acked, 2);
        // Past what was sent, or anything else, is an error.
        assert!(d.receive(b"ACK 3\r\n").is_err());
        let mut d = Downstream::new(b"", "id", 1, 0);
        assert!(d.receive(b"put 0 0 1 1\r\n").is_err());
        let mut d = Downstream::new(b"", "id", 1, 0);
        assert!(d.receive(&[b'A'; 100]).is_err());
    }

    #[test]
    fn a_replica_is_in_step_once_its_snapshot_is_acknowledged() {
        let mut d = Downstream::new(b"", "id", 1, 0);
        d.push_record(b"snap");
        // Tapped while the snapshot runs: sent, but no mark of its own.
        d.push_records(b"", 1, 7).unwrap();
        d.end_snapshot(9, 7);
        d.push_records(b"", 2, 9).unwrap();
        d.receive(b"ACK 1\r\n").unwrap();
        assert_eq!(d.in_step_upto, None);
        // The snapshot's end: in step with the 7 tapped by then.
        d.receive(b"ACK 2\r\n").unwrap();
        assert_eq!(d.in_step_upto, Some(7));
        d.receive(b"ACK 3\r\n").unwrap();
        assert_eq!(d.in_step_upto, Some(7));
        d.receive(b"ACK 4\r\n").unwrap();
        assert_eq!(d.in_step_upto, Some(9));
        // An empty snapshot is in step at once.
        let mut e = Downstream::new(b"", "id", 1, 0);
        e.end_snapshot(1, 3);
        assert_eq!(e.in_step_upto, Some(3));
    }

    #[test]
    fn a_replica_too_far_behind_is_dropped_and_writes_move_on() {
        let mut d = Downstream::new(b"", "id", 1, 0);
        let n = d.unsent().len();
        d.wrote(n);
        assert!(d.unsent().is_empty());
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..64 {
            d.push_records(&chunk, 1, 0).unwrap();
        }
        assert_eq!(d.push_records(&chunk, 1, 0), Err(LeadError::TooFarBehind));
        d.wrote(3 << 20);
        assert_eq!(d.unsent().len(), 62 << 20);
        // Heartbeats come once a second.
        d.heartbeat(HEARTBEAT, 5);
        let len = d.unsent().len();
        d.heartbeat(HEARTBEAT + 1, 5);
        assert_eq!(d.unsent().len(), len);
    }
}
