//! A replica's side of one connection to its primary, without the socket:
//! it says hello, checks the answer, cuts what arrives into frames for the
//! caller to apply, and says which it has applied. A new connection is a
//! new `Follower`.

use super::frame::{self, Frame, StreamError};
use crate::journal::JournalError;

/// What a replica sends first: the newest epoch it knows.
pub fn hello(epoch: u64) -> Vec<u8> {
    format!("sprout-replicate {epoch}\r\n").into_bytes()
}
/// The longest line accepted before the frames begin.
const MAX_GREETING: usize = 256;

/// Why a connection to the primary ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowError {
    /// It answered as beanstalkd (or an older sprout) does.
    NotSprout,
    /// It runs without `-b`: it has no binlog to stream.
    NoBinlog,
    /// It already streams to as many replicas as it will.
    Full,
    /// It knows an older epoch than this replica: it is not the primary
    /// any more, and has stopped taking changes (`NOT_PRIMARY`).
    NotPrimary(u64),
    /// Its epoch is older than the newest this replica has seen: its
    /// records are not applied.
    StaleEpoch {
        primary: u64,
        ours: u64,
    },
    /// Some other first line.
    Unexpected(String),
    Stream(StreamError),
    /// The replica could not log a record to its own binlog.
    Journal(JournalError),
}

impl From<JournalError> for FollowError {
    fn from(e: JournalError) -> Self {
        FollowError::Journal(e)
    }
}

impl std::fmt::Display for FollowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FollowError::NotSprout => write!(
                f,
                "it answered UNKNOWN_COMMAND: it is not sprout, or a sprout without replication"
            ),
            FollowError::NoBinlog => write!(
                f,
                "it runs without a binlog, so has nothing to stream; start it with -b DIR"
            ),
            FollowError::Full => write!(
                f,
                "it already streams to as many replicas as it takes (OUT_OF_MEMORY)"
            ),
            FollowError::NotPrimary(e) => write!(
                f,
                "it is not the primary (it knew only epoch {e}, older than this replica's, and now takes no changes)"
            ),
            FollowError::StaleEpoch { primary, ours } => write!(
                f,
                "its epoch {primary} is older than {ours}, the newest this replica has seen: a newer primary exists"
            ),
            FollowError::Unexpected(l) => write!(f, "it answered {l:?}, not REPLICATING"),
            FollowError::Stream(e) => write!(f, "{e}"),
            FollowError::Journal(e) => write!(
                f,
                "this replica cannot write its own binlog ({})",
                String::from_utf8_lossy(e.reply()).trim_end()
            ),
        }
    }
}

#[derive(Debug, Default)]
pub struct Follower {
    buf: Vec<u8>,
    /// The primary's instance id, once it has answered.
    pub primary_id: Option<String>,
    /// The primary's epoch, from its answer and any newer since.
    pub primary_epoch: u64,
    /// The primary's records this replica holds, counted as the primary
    /// counts them (since its start), once its snapshot has ended: two
    /// replicas of one primary compare by it (the further is the one to
    /// promote).
    pub position: Option<u64>,
    /// Record frames applied on this connection.
    pub applied: u64,
    acked: u64,
    /// The newest heartbeat: the primary's wall clock then, and the record
    /// frames it had sent.
    pub heard: Option<(i64, u64)>,
}

impl Follower {
    pub fn receive(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet handled.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Handles what has arrived: the greeting, whose epoch is handed to
    /// `each` as a [`Frame::Epoch`] before anything else, then each whole
    /// frame, which `each` applies (heartbeats are noted here, and passed
    /// on). Frames after one that fails are left alone.
    pub fn drain(
        &mut self,
        mut each: impl FnMut(&Frame) -> Result<(), FollowError>,
    ) -> Result<(), FollowError> {
        let mut at = 0;
        if self.primary_id.is_none() {
            let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                if self.buf.len() > MAX_GREETING {
                    let l = String::from_utf8_lossy(&self.buf[..MAX_GREETING]).into_owned();
                    return Err(FollowError::Unexpected(l));
                }
                return Ok(());
            };
            let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            let not_primary = line.strip_prefix("NOT_PRIMARY ");
            match line.strip_prefix("REPLICATING ") {
                Some(rest) => {
                    // An older sprout gives no epoch: 0.
                    let (id, epoch) = match rest.split_once(' ') {
                        Some((id, e)) => {
                            let e = e.parse::<u64>();
                            (id, e.map_err(|_| FollowError::Unexpected(line.clone()))?)
                        }
                        None => (rest, 0),
                    };
                    each(&Frame::Epoch { epoch })?;
                    self.primary_id = Some(id.to_string());
                    self.primary_epoch = epoch;
                }
                None if let Some(e) = not_primary.and_then(|e| e.parse().ok()) => {
                    return Err(FollowError::NotPrimary(e));
                }
                None if line == "UNKNOWN_COMMAND" => return Err(FollowError::NotSprout),
                None if line == "NO_BINLOG" => return Err(FollowError::NoBinlog),
                None if line == "OUT_OF_MEMORY" => return Err(FollowError::Full),
                None => return Err(FollowError::Unexpected(line)),
            }
            at = end + 2;
        }
        let result = loop {
            match frame::parse(&self.buf[at..]) {
                Ok(Some((f, n))) => {
                    if let Err(e) = each(&f) {
                        break Err(e);
                    }
                    match f {
                        Frame::Record(_) => {
                            self.applied += 1;
                            self.position = self.position.map(|p| p + 1);
                        }
                        Frame::SnapshotEnd { position, .. } => self.position = Some(position),
                        Frame::Heartbeat { wall, sent } => self.heard = Some((wall, sent)),
                        Frame::Epoch { epoch } => self.primary_epoch = epoch,
                        _ => {}
                    }
                    at += n;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(FollowError::Stream(e)),
            }
        };
        self.buf.drain(..at);
        result
    }

    /// `ACK <applied>\r\n` if more has been applied since the last one.
    pub fn ack(&mut self, out: &mut Vec<u8>) {
        self.ack_upto(self.applied, out);
    }

    /// `ACK <n>\r\n` for the first `n` records applied (a replica under
    /// -f0 acknowledges only what its fsync has made durable).
    pub fn ack_upto(&mut self, n: u64, out: &mut Vec<u8>) {
        let n = n.min(self.applied);
        if n > self.acked {
            self.acked = n;
            out.extend_from_slice(format!("ACK {n}\r\n").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::record::{self, DiskState, JobRec};
    use crate::replication::frame::Kind;

    #[test]
    fn greeting_then_frames_then_an_ack() {
        let mut f = Follower::default();
        let mut r = Vec::new();
        let rec = JobRec {
            id: 3,
            pri: 1,
            delay: 0,
            ttr: 1,
            body_size: 3,
            created_at: 0,
            deadline_at: 0,
            counts: Default::default(),
            state: DiskState::Ready,
        };
        record::encode_full(&mut r, b"t", &rec, b"x");
        let mut bytes = b"REPLICATING abc 7\r\n".to_vec();
        frame::push(&mut bytes, Kind::SnapshotBegin, &[]);
        frame::push(&mut bytes, Kind::Record, &r);
        frame::push_snapshot_end(&mut bytes, 4, 9);
        frame::push(&mut bytes, Kind::Record, &r);
        let mut seen = Vec::new();
        // A byte at a time: nothing is applied twice or early.
        for b in &bytes {
            f.receive(&[*b]);
            f.drain(|fr| {
                seen.push(format!("{fr:?}").chars().take(14).collect::<String>());
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(f.primary_id.as_deref(), Some("abc"));
        assert_eq!(
            seen,
            [
                "Epoch { epoch:",
                "SnapshotBegin",
                "Record(Record ",
                "SnapshotEnd { ",
                "Record(Record "
            ]
        );
        assert_eq!(f.position, Some(10));
        assert_eq!(f.buffered(), 0);
        let mut out = Vec::new();
        f.ack(&mut out);
        f.ack(&mut out);
        assert_eq!(out, b"ACK 2\r\n");
    }

    #[test]
    fn answers_that_are_not_a_stream() {
        for (line, want) in [
            (&b"UNKNOWN_COMMAND\r\n"[..], FollowError::NotSprout),
            (b"NO_BINLOG\r\n", FollowError::NoBinlog),
            (b"OUT_OF_MEMORY\r\n", FollowError::Full),
            (b"NOT_PRIMARY 3\r\n", FollowError::NotPrimary(3)),
            (
                b"REPLICATING a b\r\n",
                FollowError::Unexpected("REPLICATING a b".into()),
            ),
            (
                b"BAD_FORMAT\r\n",
                FollowError::Unexpected("BAD_FORMAT".into()),
            ),
        ] {
            let mut f = Follower::default();
            f.receive(line);
            assert_eq!(f.drain(|_| Ok(())), Err(want));
        }
        let mut f = Follower::default();
        f.receive(&[b'x'; 300]);
        assert!(matches!(
            f.drain(|_| Ok(())),
            Err(FollowError::Unexpected(_))
        ));
        // A journal that fails stops the stream at that frame.
        let mut f = Follower::default();
        let mut bytes = b"REPLICATING a\r\n".to_vec();
        frame::push(&mut bytes, Kind::SnapshotBegin, &[]);
        f.receive(&bytes);
        let mut seen = Vec::new();
        let failed = f.drain(|fr| {
            seen.push(format!("{fr:?}"));
            match fr {
                Frame::Epoch { .. } => Ok(()),
                _ => Err(FollowError::Journal(JournalError::NoSpace)),
            }
        });
        assert_eq!(failed, Err(FollowError::Journal(JournalError::NoSpace)));
        // No epoch from an older sprout: 0.
        assert_eq!(seen, ["Epoch { epoch: 0 }", "SnapshotBegin"]);
    }
}
