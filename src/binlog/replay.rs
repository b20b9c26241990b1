//! Recovery: from the bytes of every binlog file, oldest first, to the jobs
//! that were alive. Pure: the caller reads the files and passes the clocks.
//!
//! The rules are beanstalkd's (a job is created by its first full record,
//! updated by every later record, removed by a delete; a short record for a
//! job not seen is ignored; a reserved job comes back ready), except where
//! beanstalkd loses or corrupts jobs:
//! - a body is never compared with `-z`: a job that was accepted is kept;
//! - damage ends only the file it is in, and is reported with its offset;
//! - a buried job keeps its bury count, and buried jobs come back in the
//!   order they were buried, not of their first record (see [`BuryOrder`]);
//! - every id seen, even in a record of a deleted job, raises the next id.

use std::collections::HashMap;
use std::rc::Rc;

use super::record::{DiskState, HeaderError, JobRec, Reader};
use crate::body_store::{BodyRef, BodyStore};
use crate::job::{IdMap, NANOS_PER_SEC, Nanos};
use crate::journal::{FileNo, Restored, RestoredState};

/// What a file held that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Shorter than its header: created, never written. Safe to remove.
    Empty(FileNo),
    /// A version other than 5 or 7. The file is left alone, unread.
    UnknownVersion(FileNo, i32),
    /// Records from `offset` on were skipped.
    Damaged {
        file: FileNo,
        offset: usize,
        skipped: usize,
        what: super::record::Damage,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Empty(n) => write!(f, "binlog.{n} is empty"),
            Problem::UnknownVersion(n, v) => write!(
                f,
                "binlog.{n} has format version {v}, which sprout cannot read; it is left as it is"
            ),
            Problem::Damaged {
                file,
                offset,
                skipped,
                what,
            } => write!(
                f,
                "binlog.{file}: {what} at byte {offset}; the last {skipped} bytes of the file were not read"
            ),
        }
    }
}

/// The outcome of reading every file.
#[derive(Debug)]
pub struct Replayed {
    /// Live jobs, in order of first appearance.
    pub jobs: Vec<Restored>,
    /// Their bodies.
    pub bodies: BodyStore,
    /// One above the largest id in any record.
    pub next_id: u64,
    /// Files that were read (version 5 or 7), whether or not damaged.
    pub read: Vec<FileNo>,
    pub problems: Vec<Problem>,
}

/// Where a buried job stands in its tube's bury order.
///
/// sprout writes a buried job's rank into the record's `deadline_at` as a
/// negative number (beanstalkd leaves that field stale for buried jobs,
/// never negative, and never reads it), so the order survives compaction,
/// which rewrites old buried jobs after newer ones. Records beanstalkd wrote
/// carry no rank: their order is the position of the record that buried
/// the job, and they were buried after every ranked job (sprout logs a rank
/// for each unranked buried job as it starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BuryOrder {
    Ranked(u64),
    /// Position of the burying record among all records read.
    At(u64),
}

impl BuryOrder {
    /// Reads the order a Buried record gives; `pos` is its position.
    fn of(rec: &JobRec, pos: u64) -> BuryOrder {
        if rec.deadline_at < 0 {
            BuryOrder::Ranked(rec.deadline_at.unsigned_abs())
        } else {
            BuryOrder::At(pos)
        }
    }
}

/// How a buried job's rank is written to `deadline_at`.
pub fn encode_rank(rank: u64) -> i64 {
    -(rank.clamp(1, i64::MAX as u64) as i64)
}

struct Partial {
    rec: JobRec,
    tube: Rc<str>,
    body: BodyRef,
    home: FileNo,
    bury: BuryOrder,
}

/// Recovery in progress: files are fed one at a time, oldest first, so the
/// caller can read each into the same buffer.
#[derive(Default)]
pub struct Replay {
    out: Replayed,
    /// Jobs in order of first appearance (None once deleted), and where
    /// each live id is in it: no sort at the end, and the map moves only
    /// indices.
    order: Vec<Option<Partial>>,
    live: IdMap<usize>,
    /// One shared name per tube, not one string per job; the last name
    /// looked up is kept aside, since records of one tube tend to come
    /// together.
    names: HashMap<Box<[u8]>, Rc<str>>,
    last_name: Option<Rc<str>>,
    /// Records read so far: the position of a record among all of them.
    seq: u64,
}

impl Replay {
    pub fn new() -> Self {
        Replay::default()
    }

    /// Reads file `no`, whose number must be above every file read before.
    pub fn file(&mut self, no: FileNo, bytes: &[u8]) {
        let reader = match Reader::new(bytes) {
            Ok(r) => r,
            Err(HeaderError::Empty) => {
                self.out.problems.push(Problem::Empty(no));
                return;
            }
            Err(HeaderError::Version(v)) => {
                self.out.problems.push(Problem::UnknownVersion(no, v));
                return;
            }
        };
        self.out.read.push(no);
        for item in reader {
            let r = match item {
                Ok(r) => r,
                Err((offset, what)) => {
                    self.out.problems.push(Problem::Damaged {
                        file: no,
                        offset,
                        skipped: bytes.len() - offset,
                        what,
                    });
                    break;
                }
            };
            self.seq += 1;
            let id = r.rec.id;
            self.out.next_id = self.out.next_id.max(id.saturating_add(1));
            if r.rec.state == DiskState::Deleted {
                if let Some(p) = self.live.remove(&id).and_then(|i| self.order[i].take()) {
                    self.out.bodies.remove(p.body);
                }
                continue;
            }
            let at = match (self.live.get(&id).copied(), r.tube, r.body) {
                (Some(i), Some(tube), Some(body)) => {
                    let tube = self.intern(tube);
                    if let Some(p) = &mut self.order[i] {
                        p.tube = tube;
                        self.out.bodies.remove(p.body);
                        p.body = self.out.bodies.insert(body.into());
                        p.home = no;
                    }
                    i
                }
                (Some(i), _, _) => i,
                (None, Some(tube), Some(body)) => {
                    let tube = self.intern(tube);
                    self.order.push(Some(Partial {
                        rec: r.rec,
                        tube,
                        body: self.out.bodies.insert(body.into()),
                        home: no,
                        bury: BuryOrder::At(0),
                    }));
                    self.live.insert(id, self.order.len() - 1);
                    self.order.len() - 1
                }
                // A short record of a job whose full record is gone.
                _ => continue,
            };
            let Some(p) = &mut self.order[at] else {
                continue;
            };
            p.rec = r.rec;
            if r.rec.state == DiskState::Buried {
                p.bury = BuryOrder::of(&r.rec, self.seq);
            }
        }
    }

    fn intern(&mut self, name: &[u8]) -> Rc<str> {
        if let Some(last) = self.last_name.as_ref().filter(|l| l.as_bytes() == name) {
            return last.clone();
        }
        let rc = match self.names.get(name) {
            Some(rc) => rc.clone(),
            None => {
                // The reader admits only tube-name characters, all ASCII,
                // so nothing is replaced here.
                let rc: Rc<str> = String::from_utf8_lossy(name).into();
                self.names.insert(name.into(), rc.clone());
                rc
            }
        };
        self.last_name = Some(rc.clone());
        rc
    }

    /// The live jobs. `wall_now` is nanoseconds since the epoch; `now` is
    /// the engine's clock.
    pub fn finish(self, wall_now: i64, now: Nanos) -> Replayed {
        let mut out = self.out;
        // Unranked buries come after every ranked one.
        let top = (self.order.iter().flatten())
            .filter(|p| p.rec.state == DiskState::Buried)
            .filter_map(|p| match p.bury {
                BuryOrder::Ranked(r) => Some(r),
                BuryOrder::At(_) => None,
            })
            .max()
            .unwrap_or(0);
        out.jobs = (self.order.into_iter())
            .filter_map(|p| Some(restored(p?, top, wall_now, now)))
            .collect();
        out
    }
}

impl Default for Replayed {
    fn default() -> Self {
        Replayed {
            jobs: Vec::new(),
            bodies: BodyStore::new(),
            next_id: 1,
            read: Vec::new(),
            problems: Vec::new(),
        }
    }
}

/// Replays `files` (number, contents), which must be in ascending order.
/// `wall_now` is nanoseconds since the epoch; `now` is the engine's clock.
pub fn replay<'a>(
    files: impl IntoIterator<Item = (FileNo, &'a [u8])>,
    wall_now: i64,
    now: Nanos,
) -> Replayed {
    let mut r = Replay::new();
    for (no, bytes) in files {
        r.file(no, bytes);
    }
    r.finish(wall_now, now)
}

fn restored(p: Partial, top_rank: u64, wall_now: i64, now: Nanos) -> Restored {
    let r = &p.rec;
    let secs = |ns: i64| (ns.max(0) as u64 / NANOS_PER_SEC).min(u32::MAX as u64) as u32;
    let state = match r.state {
        DiskState::Buried => match p.bury {
            BuryOrder::Ranked(rank) => RestoredState::Buried { rank, ranked: true },
            BuryOrder::At(pos) => RestoredState::Buried {
                rank: top_rank.saturating_add(pos),
                ranked: false,
            },
        },
        DiskState::Delayed if r.deadline_at > wall_now => RestoredState::Delayed {
            until: now.saturating_add((r.deadline_at - wall_now) as u64),
        },
        _ => RestoredState::Ready,
    };
    let age = wall_now.saturating_sub(r.created_at).max(0) as u64;
    Restored {
        id: r.id,
        tube: p.tube,
        pri: r.pri,
        delay: secs(r.delay),
        ttr: secs(r.ttr).max(1),
        created_at: now.saturating_sub(age),
        counts: r.counts,
        state,
        body: p.body,
        home: p.home,
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::{encode_full, encode_header, encode_short};
    use super::*;
    use crate::job::Counts;

    const WALL: i64 = 1_800_000_000 * NANOS_PER_SEC as i64;
    const NOW: Nanos = 1 << 60;

    fn rec(id: u64, state: DiskState) -> JobRec {
        JobRec {
            id,
            pri: 10,
            delay: 0,
            ttr: 5 * NANOS_PER_SEC as i64,
            body_size: 3,
            created_at: WALL - 7 * NANOS_PER_SEC as i64,
            deadline_at: 0,
            counts: Counts::default(),
            state,
        }
    }

    fn file(records: &[(Option<&str>, JobRec)]) -> Vec<u8> {
        let mut f = Vec::new();
        encode_header(&mut f);
        for (tube, r) in records {
            match tube {
                Some(t) => encode_full(&mut f, t.as_bytes(), r, b"x"),
                None => encode_short(&mut f, r),
            }
        }
        f
    }

    #[test]
    fn states_ids_and_order() {
        let mut delayed = rec(3, DiskState::Delayed);
        delayed.deadline_at = WALL + 4 * NANOS_PER_SEC as i64;
        let mut buried1 = rec(1, DiskState::Buried);
        buried1.counts.buries = 1;
        let f1 = file(&[
            (Some("a"), rec(1, DiskState::Ready)),
            (Some("b"), rec(2, DiskState::Ready)),
            (Some("a"), delayed),
            (Some("a"), rec(4, DiskState::Ready)),
            (None, rec(2, DiskState::Buried)),
            (None, rec(4, DiskState::Reserved)),
        ]);
        let f2 = file(&[
            (None, buried1),
            (None, rec(9, DiskState::Deleted)),
            (None, rec(77, DiskState::Ready)), // job unknown: ignored
        ]);
        let r = replay([(1, &f1[..]), (2, &f2[..])], WALL, NOW);
        assert!(r.problems.is_empty());
        assert_eq!(r.next_id, 78);
        let got: Vec<(u64, RestoredState, u32)> = r
            .jobs
            .iter()
            .map(|j| (j.id, j.state, j.counts.buries))
            .collect();
        assert_eq!(
            got,
            vec![
                // Buried later than job 2, so behind it in the FIFO.
                (
                    1,
                    RestoredState::Buried {
                        rank: 7,
                        ranked: false
                    },
                    1
                ),
                (
                    2,
                    RestoredState::Buried {
                        rank: 5,
                        ranked: false
                    },
                    0
                ),
                (
                    3,
                    RestoredState::Delayed {
                        until: NOW + 4 * NANOS_PER_SEC
                    },
                    0
                ),
                (4, RestoredState::Ready, 0),
            ]
        );
        assert_eq!(r.jobs[0].created_at, NOW - 7 * NANOS_PER_SEC);
        assert_eq!(r.jobs[0].ttr, 5);
        assert_eq!(&*r.jobs[1].tube, "b");
    }

    #[test]
    fn jobs_of_one_tube_share_its_name() {
        let tubes = ["a", "b", "a", "a", "c", "b"];
        let records: Vec<_> = (tubes.iter().enumerate())
            .map(|(i, &t)| (Some(t), rec(i as u64 + 1, DiskState::Ready)))
            .collect();
        let f = file(&records);
        let r = replay([(1, &f[..])], WALL, NOW);
        let names: Vec<&str> = r.jobs.iter().map(|j| &*j.tube).collect();
        assert_eq!(names, tubes);
        assert!(Rc::ptr_eq(&r.jobs[0].tube, &r.jobs[2].tube));
        assert!(Rc::ptr_eq(&r.jobs[1].tube, &r.jobs[5].tube));
        assert!(!Rc::ptr_eq(&r.jobs[0].tube, &r.jobs[1].tube));
    }

    #[test]
    fn logged_ranks_order_buried_jobs_before_positions() {
        let ranked = |id, rank| {
            let mut r = rec(id, DiskState::Buried);
            r.deadline_at = encode_rank(rank);
            r
        };
        let f = file(&[
            (Some("a"), rec(1, DiskState::Ready)),
            (Some("a"), rec(2, DiskState::Ready)),
            (None, ranked(2, 5)),
            // Buried by beanstalkd: a stale, positive deadline_at.
            (None, {
                let mut r = rec(1, DiskState::Buried);
                r.deadline_at = WALL;
                r
            }),
            // Job 3 was buried first, then moved here by compaction.
            (Some("a"), ranked(3, 2)),
        ]);
        let r = replay([(1, &f[..])], WALL, NOW);
        let mut got: Vec<(RestoredState, u64)> = r.jobs.iter().map(|j| (j.state, j.id)).collect();
        got.sort_unstable_by_key(|(s, _)| match s {
            RestoredState::Buried { rank, .. } => *rank,
            _ => 0,
        });
        assert_eq!(
            got,
            vec![
                (
                    RestoredState::Buried {
                        rank: 2,
                        ranked: true
                    },
                    3
                ),
                (
                    RestoredState::Buried {
                        rank: 5,
                        ranked: true
                    },
                    2
                ),
                // After the highest rank, by the position of its record (4).
                (
                    RestoredState::Buried {
                        rank: 9,
                        ranked: false
                    },
                    1
                ),
            ]
        );
    }

    #[test]
    fn damage_ends_only_its_file() {
        let mut f1 = file(&[(Some("a"), rec(1, DiskState::Ready))]);
        let good = f1.len();
        f1.extend_from_slice(&file(&[(Some("a"), rec(2, DiskState::Ready))])[4..20]);
        let f2 = file(&[(Some("a"), rec(3, DiskState::Ready))]);
        let r = replay([(1, &f1[..]), (2, &f2[..]), (3, &[][..])], WALL, NOW);
        let ids: Vec<u64> = r.jobs.iter().map(|j| j.id).collect();
        assert_eq!(ids, vec![1, 3]);
        assert_eq!(
            r.problems,
            vec![
                Problem::Damaged {
                    file: 1,
                    offset: good,
                    skipped: 16,
                    what: super::super::record::Damage::Truncated
                },
                Problem::Empty(3)
            ]
        );
        assert_eq!(r.read, vec![1, 2]);
    }
}
