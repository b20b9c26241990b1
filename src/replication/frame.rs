//! The replication stream's framing, both ways, with no sockets.
//!
//! After `sprout-replicate <epoch>` the primary answers one line,
//! `REPLICATING <instance-id> <epoch>\r\n` (its own epoch, never older
//! than the replica's), and from then on writes frames:
//!
//! ```text
//! kind: u8 | length: u32 LE | crc32 of the payload: u32 LE | payload
//! ```
//!
//! A record frame's payload is one binlog v7 record, the bytes the primary
//! wrote to its own file. The replica writes back only `ACK <seq>\r\n`
//! lines, `seq` counting the record frames it has applied.
//!
//! Everything read is checked before it is believed: a frame of an unknown
//! kind, a length past [`MAX_PAYLOAD`], a wrong CRC, or a record that does
//! not parse is a [`StreamError`], and the replica drops the connection and
//! starts over; it never applies part of a bad frame.

use crate::binlog::record::{self, Record};

/// Header bytes of a frame.
pub const HEADER: usize = 9;
/// The largest payload: a full record of the largest body and tube name
/// (bodies are bounded by -z, at most 2^30 here; a frame past this is
/// corrupt).
pub const MAX_PAYLOAD: usize = (1 << 30) + 512;

/// What a frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One binlog record.
    Record = 1,
    /// A snapshot of every live job follows: the replica notes which jobs
    /// it hears of from here on.
    SnapshotBegin = 2,
    /// The snapshot is complete: jobs the replica holds and did not hear
    /// of since it began are gone on the primary. Payload: the primary's
    /// next job id and its position (the records it had tapped, with
    /// which the replica is now in step), u64 LE each; every record frame
    /// after it moves the position on by one.
    SnapshotEnd = 3,
    /// The primary is alive. Payload: its wall clock (nanoseconds since
    /// the epoch, i64 LE) and the record frames it has sent (u64 LE).
    Heartbeat = 4,
    /// The primary has been promoted again, to a newer epoch. Payload: the
    /// epoch, u64 LE. (The greeting's epoch reaches the replica as one
    /// too, before any other frame.)
    Epoch = 5,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Record,
            2 => Kind::SnapshotBegin,
            3 => Kind::SnapshotEnd,
            4 => Kind::Heartbeat,
            5 => Kind::Epoch,
            _ => return None,
        })
    }
}

/// Appends a frame.
pub fn push(out: &mut Vec<u8>, kind: Kind, payload: &[u8]) {
    out.push(kind as u8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

pub fn push_snapshot_end(out: &mut Vec<u8>, next_id: u64, position: u64) {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&next_id.to_le_bytes());
    p[8..].copy_from_slice(&position.to_le_bytes());
    push(out, Kind::SnapshotEnd, &p);
}

pub fn push_heartbeat(out: &mut Vec<u8>, wall: i64, sent: u64) {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&wall.to_le_bytes());
    p[8..].copy_from_slice(&sent.to_le_bytes());
    push(out, Kind::Heartbeat, &p);
}

pub fn push_epoch(out: &mut Vec<u8>, epoch: u64) {
    push(out, Kind::Epoch, &epoch.to_le_bytes());
}

/// A frame read and checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Record(Record<'a>),
    SnapshotBegin,
    SnapshotEnd { next_id: u64, position: u64 },
    Heartbeat { wall: i64, sent: u64 },
    Epoch { epoch: u64 },
}

/// Why the stream cannot be read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    UnknownKind(u8),
    TooLong(usize),
    BadCrc,
    /// A payload of the wrong size for its kind.
    BadPayload,
    /// A record frame whose record does not parse.
    BadRecord(record::Damage),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::UnknownKind(k) => write!(f, "a frame of unknown kind {k}"),
            StreamError::TooLong(n) => write!(f, "a frame of {n} bytes, past the bound"),
            StreamError::BadCrc => write!(f, "a frame whose CRC does not match"),
            StreamError::BadPayload => write!(f, "a frame whose payload has the wrong size"),
            StreamError::BadRecord(d) => write!(f, "a record that does not parse: {d}"),
        }
    }
}

/// The first whole frame of `buf` and its length, None if `buf` holds
/// only part of one.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, StreamError> {
    let Some(h) = buf.get(..HEADER) else {
        return Ok(None);
    };
    let kind = Kind::from_byte(h[0]).ok_or(StreamError::UnknownKind(h[0]))?;
    let len = u32::from_le_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(StreamError::TooLong(len));
    }
    let crc = u32::from_le_bytes([h[5], h[6], h[7], h[8]]);
    let Some(payload) = buf.get(HEADER..HEADER + len) else {
        return Ok(None);
    };
    if crc32fast::hash(payload) != crc {
        return Err(StreamError::BadCrc);
    }
    let u64_at = |p: &[u8], o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&p[o..o + 8]);
        u64::from_le_bytes(a)
    };
    let frame = match kind {
        Kind::Record => {
            let r = record::parse_one(payload).map_err(StreamError::BadRecord)?;
            Frame::Record(r)
        }
        Kind::SnapshotBegin if len == 0 => Frame::SnapshotBegin,
        Kind::SnapshotEnd if len == 16 => Frame::SnapshotEnd {
            next_id: u64_at(payload, 0),
            position: u64_at(payload, 8),
        },
        Kind::Heartbeat if len == 16 => Frame::Heartbeat {
            wall: u64_at(payload, 0) as i64,
            sent: u64_at(payload, 8),
        },
        Kind::Epoch if len == 8 => Frame::Epoch {
            epoch: u64_at(payload, 0),
        },
        _ => return Err(StreamError::BadPayload),
    };
    Ok(Some((frame, HEADER + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::record::{DiskState, JobRec};

    fn rec(id: u64, state: DiskState) -> JobRec {
        JobRec {
            id,
            pri: 7,
            delay: 0,
            ttr: 60_000_000_000,
            body_size: 4,
            created_at: 1,
            deadline_at: 0,
            counts: Default::default(),
            state,
        }
    }

    #[test]
    fn frames_round_trip_and_arrive_in_pieces() {
        let mut out = Vec::new();
        push(&mut out, Kind::SnapshotBegin, &[]);
        let mut r = Vec::new();
        record::encode_full(&mut r, b"emails", &rec(5, DiskState::Ready), b"hi");
        push(&mut out, Kind::Record, &r);
        let mut s = Vec::new();
        record::encode_short(&mut s, &rec(5, DiskState::Deleted));
        push(&mut out, Kind::Record, &s);
        push_snapshot_end(&mut out, 6, 40);
        push_heartbeat(&mut out, -3, 2);
        push_epoch(&mut out, 12);
        // Every prefix is "not yet" or whole frames, never an error.
        for cut in 0..out.len() {
            let mut at = 0;
            while let Some((_, n)) = parse(&out[at..cut]).unwrap() {
                at += n;
            }
        }
        let mut frames = Vec::new();
        let mut at = 0;
        while let Some((f, n)) = parse(&out[at..]).unwrap() {
            frames.push(format!("{f:?}"));
            at += n;
        }
        assert_eq!(at, out.len());
        assert_eq!(frames.len(), 6);
        assert!(frames[1].contains("id: 5") && frames[1].contains("Some([101, 109"));
        assert_eq!(frames[3], "SnapshotEnd { next_id: 6, position: 40 }");
        assert_eq!(frames[4], "Heartbeat { wall: -3, sent: 2 }");
        assert_eq!(frames[5], "Epoch { epoch: 12 }");
    }

    #[test]
    fn damage_is_an_error_not_a_record() {
        let mut r = Vec::new();
        record::encode_full(&mut r, b"t", &rec(1, DiskState::Ready), b"x");
        let mut good = Vec::new();
        push(&mut good, Kind::Record, &r);
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(parse(&bad), Err(StreamError::BadCrc));
        let mut bad = good.clone();
        bad[0] = 9;
        assert_eq!(parse(&bad), Err(StreamError::UnknownKind(9)));
        let mut huge = vec![1u8];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert!(matches!(parse(&huge), Err(StreamError::TooLong(_))));
        // A record frame holding garbage with a right CRC.
        let mut out = Vec::new();
        push(&mut out, Kind::Record, &[0xff; 20]);
        assert!(matches!(parse(&out), Err(StreamError::BadRecord(_))));
        // A record with bytes left over is not one record.
        let mut two = r.clone();
        two.extend_from_slice(&r);
        let mut out = Vec::new();
        push(&mut out, Kind::Record, &two);
        assert!(matches!(parse(&out), Err(StreamError::BadRecord(_))));
        let mut out = Vec::new();
        push(&mut out, Kind::SnapshotEnd, &[1, 2]);
        assert_eq!(parse(&out), Err(StreamError::BadPayload));
    }
}
