//! beanstalkd's binlog records, byte for byte: encoding (version 7) and
//! decoding (versions 7 and 5). Pure: bytes in, bytes out.
//!
//! A file is a 4-byte version header followed by records packed back to
//! back. A record is a name length, then (when the length is not zero) the
//! tube name, then an 80-byte job record, then (again only with a name) the
//! body with its CRLF. A record with a name is *full* (a put, or a job
//! rewritten by compaction); one without is *short* (a state change or a
//! delete). A job record whose id is 0 marks the zero-filled, preallocated
//! end of the data.

use crate::job::Counts;
use crate::protocol::valid_tube_name;

pub const VERSION: i32 = 7;
const VERSION_5: i32 = 5;
/// Size of a version 7 job record.
pub const JOBREC_SIZE: usize = 80;
/// A version 5 job record lacks the 3 bytes of tail padding.
const JOBREC_SIZE_V5: usize = 77;
/// Size of a short record (version 7).
pub const SHORT_SIZE: usize = 4 + JOBREC_SIZE;
pub const HEADER_SIZE: usize = 4;

/// A job's state as the binlog stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskState {
    Deleted = 0,
    Ready = 1,
    Reserved = 2,
    Buried = 3,
    Delayed = 4,
}

impl DiskState {
    fn from_byte(b: u8) -> Option<DiskState> {
        Some(match b {
            0 => DiskState::Deleted,
            1 => DiskState::Ready,
            2 => DiskState::Reserved,
            3 => DiskState::Buried,
            4 => DiskState::Delayed,
            _ => return None,
        })
    }
}

/// The fixed part of a record: every field of the job but its tube and
/// body. Times are nanoseconds; `created_at` and `deadline_at` count from
/// the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRec {
    pub id: u64,
    pub pri: u32,
    pub delay: i64,
    pub ttr: i64,
    /// Body length including its CRLF.
    pub body_size: i32,
    pub created_at: i64,
    /// When a delayed job becomes ready; stale in other states.
    pub deadline_at: i64,
    pub counts: Counts,
    pub state: DiskState,
}

impl JobRec {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.pri.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.delay.to_le_bytes());
        out.extend_from_slice(&self.ttr.to_le_bytes());
        out.extend_from_slice(&self.body_size.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.created_at.to_le_bytes());
        out.extend_from_slice(&self.deadline_at.to_le_bytes());
        let c = &self.counts;
        for n in [c.reserves, c.timeouts, c.releases, c.buries, c.kicks] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.push(self.state as u8);
        out.extend_from_slice(&[0; 3]);
    }

    /// Decodes the first 77 bytes (all a version 5 record has); `micros`
    /// scales version 5's microsecond times to nanoseconds.
    fn decode(b: &[u8], micros: bool) -> Result<JobRec, Damage> {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let time = |o: usize| {
            let t = u64_at(o) as i64;
            if micros { t.saturating_mul(1000) } else { t }
        };
        Ok(JobRec {
            id: u64_at(0),
            pri: u32_at(8),
            delay: time(16),
            ttr: time(24),
            body_size: u32_at(32) as i32,
            created_at: time(40),
            deadline_at: time(48),
            counts: Counts {
                reserves: u32_at(56),
                timeouts: u32_at(60),
                releases: u32_at(64),
                buries: u32_at(68),
                kicks: u32_at(72),
            },
            state: DiskState::from_byte(b[76]).ok_or(Damage::BadState(b[76]))?,
        })
    }
}

/// Appends a version 7 file header.
pub fn encode_header(out: &mut Vec<u8>) {
    out.extend_from_slice(&VERSION.to_le_bytes());
}

/// Appends a full record: the job with its tube and body (CRLF included).
pub fn encode_full(out: &mut Vec<u8>, tube: &[u8], rec: &JobRec, data: &[u8]) {
    out.extend_from_slice(&(tube.len() as i32).to_le_bytes());
    out.extend_from_slice(tube);
    rec.encode(out);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends a short record: a state change or, with state Deleted, a delete.
pub fn encode_short(out: &mut Vec<u8>, rec: &JobRec) {
    out.extend_from_slice(&0i32.to_le_bytes());
    rec.encode(out);
}

/// Bytes a full record takes.
pub fn full_size(tube_len: usize, body_len: usize) -> usize {
    4 + tube_len + JOBREC_SIZE + body_len
}

/// One decoded record. Tube and body are present in full records only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub rec: JobRec,
    /// A valid tube name, so ASCII.
    pub tube: Option<&'a [u8]>,
    pub body: Option<&'a [u8]>,
}

/// Why the rest of a file cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The file ends in the middle of a record (a torn write).
    Truncated,
    /// A name length outside 0..=200.
    BadNameLength(i64),
    /// A tube name with characters a tube name cannot have.
    BadName,
    /// A state byte outside 0..=4.
    BadState(u8),
    /// A body size below 2, or a body that does not end in CRLF.
    BadBody,
    /// The largest u64 as a job id: no server could have given it, since
    /// the next id would not exist (or, in a replication frame, id 0).
    BadId,
    /// A replication frame with bytes after its record.
    Trailing,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Truncated => write!(f, "the file ends inside a record"),
            Damage::BadNameLength(n) => write!(f, "impossible tube name length {n}"),
            Damage::BadName => write!(f, "a tube name with invalid characters"),
            Damage::BadState(s) => write!(f, "unknown job state {s}"),
            Damage::BadBody => write!(f, "a job body without its CRLF"),
            Damage::BadId => write!(f, "a job id no server can give (0 or {})", u64::MAX),
            Damage::Trailing => write!(f, "bytes after the record"),
        }
    }
}

/// Why a file was not read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than 4 bytes: created, never written.
    Empty,
    /// A version this reader does not know.
    Version(i32),
}

/// Reads a file's records in order. Yields `Err` at most once, with the
/// offset where the damage starts; nothing after it is read.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    v5: bool,
    done: bool,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<Reader<'a>, HeaderError> {
        let Some(h) = bytes.get(..HEADER_SIZE) else {
            return Err(HeaderError::Empty);
        };
        let v5 = match i32::from_le_bytes([h[0], h[1], h[2], h[3]]) {
            VERSION => false,
            VERSION_5 => true,
            v => return Err(HeaderError::Version(v)),
        };
        Ok(Reader {
            bytes,
            pos: HEADER_SIZE,
            v5,
            done: false,
        })
    }

    /// Offset of the next record.
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn is_v5(&self) -> bool {
        self.v5
    }

    fn next_record(&mut self) -> Result<Option<Record<'a>>, Damage> {
        let rest = &self.bytes[self.pos..];
        match self.parse(rest) {
            // A zero-filled tail shorter than a record is an end, not a tear.
            Err(Damage::Truncated) if rest.iter().all(|&b| b == 0) => Ok(None),
            other => other,
        }
    }

    fn parse(&mut self, rest: &'a [u8]) -> Result<Option<Record<'a>>, Damage> {
        if rest.is_empty() {
            return Ok(None);
        }
        let (len_size, rec_size) = if self.v5 {
            (8, JOBREC_SIZE_V5)
        } else {
            (4, JOBREC_SIZE)
        };
        let len_bytes = rest.get(..len_size).ok_or(Damage::Truncated)?;
        let namelen = if self.v5 {
            let mut a = [0; 8];
            a.copy_from_slice(len_bytes);
            i64::from_le_bytes(a)
        } else {
            i32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as i64
        };
        if !(0..=crate::protocol::MAX_TUBE_NAME as i64).contains(&namelen) {
            return Err(Damage::BadNameLength(namelen));
        }
        let namelen = namelen as usize;
        let mut at = len_size;
        let name = rest.get(at..at + namelen).ok_or(Damage::Truncated)?;
        at += namelen;
        let fixed = rest.get(at..at + rec_size).ok_or(Damage::Truncated)?;
        at += rec_size;
        let rec = JobRec::decode(fixed, self.v5)?;
        if rec.id == 0 {
            return Ok(None); // beanstalkd's end-of-data mark
        }
        if rec.id == u64::MAX {
            return Err(Damage::BadId);
        }
        let (tube, body) = if namelen > 0 {
            if !valid_tube_name(name) {
                return Err(Damage::BadName);
            }
            if rec.body_size < 2 {
                return Err(Damage::BadBody);
            }
            let size = rec.body_size as usize;
            let body = rest.get(at..at + size).ok_or(Damage::Truncated)?;
            let Some(data) = body.strip_suffix(b"\r\n") else {
                return Err(Damage::BadBody);
            };
            at += size;
            (Some(name), Some(data))
        } else {
            (None, None)
        };
        self.pos += at;
        Ok(Some(Record { rec, tube, body }))
    }
}

/// One version 7 record that fills `bytes` exactly, as a replication
/// frame carries it (no file header; beanstalkd's end mark, id 0, is not
/// a record here).
pub fn parse_one(bytes: &[u8]) -> Result<Record<'_>, Damage> {
    let mut r = Reader {
        bytes,
        pos: 0,
        v5: false,
        done: false,
    };
    match r.parse(bytes)? {
        Some(rec) if r.pos == bytes.len() => Ok(rec),
        Some(_) => Err(Damage::Trailing),
        None => Err(Damage::BadId),
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Record<'a>, (usize, Damage)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(d) => {
                self.done = true;
                Some(Err((self.pos, d)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, state: DiskState) -> JobRec {
        JobRec {
            id,
            pri: 7,
            delay: 2_000_000_000,
            ttr: 60_000_000_000,
            body_size: 5,
            created_at: 1_700_000_000_000_000_000,
            deadline_at: 1_700_000_002_000_000_000,
            counts: Counts {
                reserves: 1,
                timeouts: 2,
                releases: 3,
                buries: 4,
                kicks: 5,
            },
            state,
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let mut f = Vec::new();
        encode_header(&mut f);
        let full = rec(9, DiskState::Delayed);
        encode_full(&mut f, b"emails", &full, b"abc");
        assert_eq!(f.len(), HEADER_SIZE + full_size(6, 5));
        let short = rec(9, DiskState::Deleted);
        encode_short(&mut f, &short);
        assert_eq!(f.len(), HEADER_SIZE + full_size(6, 5) + SHORT_SIZE);
        // Field offsets as in beanstalkd's struct Jobrec on x86_64.
        let jr = &f[HEADER_SIZE + 4 + 6..];
        assert_eq!(&jr[0..8], &9u64.to_le_bytes());
        assert_eq!(&jr[8..12], &7u32.to_le_bytes());
        assert_eq!(&jr[32..36], &5i32.to_le_bytes());
        assert_eq!(&jr[56..60], &1u32.to_le_bytes());
        assert_eq!(jr[76], 4);
        f.extend_from_slice(&[0; 300]); // preallocated tail
        let got: Vec<_> = Reader::new(&f).unwrap().collect();
        assert_eq!(
            got,
            vec![
                Ok(Record {
                    rec: full,
                    tube: Some(&b"emails"[..]),
                    body: Some(b"abc"),
                }),
                Ok(Record {
                    rec: short,
                    tube: None,
                    body: None,
                }),
            ]
        );
    }

    #[test]
    fn version_5_is_read_with_microseconds() {
        let mut f = 5i32.to_le_bytes().to_vec();
        let mut r = rec(3, DiskState::Ready);
        r.delay = 2_000_000; // µs
        let mut v7 = Vec::new();
        r.encode(&mut v7);
        f.extend_from_slice(&4u64.to_le_bytes());
        f.extend_from_slice(b"tube");
        f.extend_from_slice(&v7[..JOBREC_SIZE_V5]);
        f.extend_from_slice(b"abc\r\n");
        let got: Vec<_> = Reader::new(&f).unwrap().collect();
        let Ok(first) = &got[0] else { panic!() };
        assert_eq!(first.rec.delay, 2_000_000_000);
        assert_eq!(first.tube, Some(&b"tube"[..]));
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn damage_stops_the_file_with_its_offset() {
        let mut f = Vec::new();
        encode_header(&mut f);
        encode_short(&mut f, &rec(1, DiskState::Buried));
        let good = f.len();
        encode_full(&mut f, b"t", &rec(2, DiskState::Ready), b"abc");
        // Every cut inside the second record is a torn write.
        for cut in good + 1..f.len() {
            let got: Vec<_> = Reader::new(&f[..cut]).unwrap().collect();
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert!(got[0].is_ok());
            assert_eq!(got[1], Err((good, Damage::Truncated)), "cut at {cut}");
        }
        let mut bad = f.clone();
        bad[good] = 201;
        let got: Vec<_> = Reader::new(&bad).unwrap().collect();
        assert_eq!(got[1], Err((good, Damage::BadNameLength(201))));
        let mut bad = f.clone();
        let last = bad.len() - 1;
        bad[last] = b'x';
        let got: Vec<_> = Reader::new(&bad).unwrap().collect();
        assert_eq!(got[1], Err((good, Damage::BadBody)));
        let mut bad = f[..good].to_vec();
        encode_short(&mut bad, &rec(u64::MAX, DiskState::Ready));
        let got: Vec<_> = Reader::new(&bad).unwrap().collect();
        assert_eq!(got[1], Err((good, Damage::BadId)));
        assert_eq!(Reader::new(&[7, 0]).err(), Some(HeaderError::Empty));
        assert_eq!(
            Reader::new(&8i32.to_le_bytes()).err(),
            Some(HeaderError::Version(8))
        );
    }
}
