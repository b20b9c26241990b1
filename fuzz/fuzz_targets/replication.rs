//! Fuzz the replication stream as a hostile or broken primary sends it,
//! into a replica's `Follower` and engine.
//!
//! The first byte picks the mode. Raw: the rest is the stream's bytes,
//! greeting included, in pieces; nothing may panic, and damage must end
//! the stream, not be applied. Built: the rest describes frames (records
//! of a few ids, tubes and states, snapshot marks, heartbeats, and now and
//! then a corrupt byte), which the harness frames with their CRCs so that
//! the engine's side is reached; after every piece the engine's invariants
//! hold, and at the end each job the engine holds is what a model of the
//! rules (doc/ha.md) says: the newest full record's tube, the newest
//! state and priority, gone once deleted or swept by a resync.
#![no_main]

use std::collections::{BTreeMap, HashSet};

use libfuzzer_sys::fuzz_target;
use sprout::binlog::record::{self, DiskState, JobRec};
use sprout::engine::{Engine, ServerInfo, Sink};
use sprout::protocol::Command;
use sprout::replication::follower::{FollowError, Follower};
use sprout::replication::frame::{self, Frame, Kind};

const WALL: i64 = 1_800_000_000_000_000_000;
const NOW: u64 = 1 << 60;
const TUBES: [&str; 3] = ["default", "a", "b-c"];

struct Out(Vec<u8>);

impl Sink for Out {
    fn out(&mut self, _: u32) -> &mut Vec<u8> {
        &mut self.0
    }
    fn woken(&mut self, _: u32) {}
}

/// What the engine should hold: tube, state as stats-job says it, pri.
type Model = BTreeMap<u64, (&'static str, &'static str, u32)>;

fn state_word(s: DiskState, deadline: i64) -> &'static str {
    match s {
        DiskState::Buried => "buried",
        DiskState::Delayed if deadline > WALL => "delayed",
        _ => "ready",
    }
}

/// Applies what the follower has whole, as the event loop does.
fn drain(
    f: &mut Follower,
    engine: &mut Engine,
    out: &mut Out,
) -> Result<(), FollowError> {
    f.drain(|fr| match fr {
        Frame::Record(r) => Ok(engine.apply(r, WALL, NOW, out)?),
        Frame::SnapshotBegin => {
            engine.begin_resync();
            Ok(())
        }
        Frame::SnapshotEnd { next_id, .. } => Ok(engine.end_resync(*next_id, NOW, out).map(|_| ())?),
        Frame::Heartbeat { .. } => Ok(()),
        // As upstream.rs: an older epoch than the replica's stops the
        // stream before anything after it is applied.
        Frame::Epoch { epoch } => {
            let ours = engine.epoch();
            match engine.adopt_epoch(*epoch, out)? {
                true => Ok(()),
                false => Err(FollowError::StaleEpoch {
                    primary: *epoch,
                    ours,
                }),
            }
        }
    })
}

fn check(engine: &Engine) {
    if let Err(b) = engine.check_invariants() {
        panic!("{b:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut engine = Engine::new(1000, ServerInfo::default(), NOW);
    engine.set_refuses_changes(true);
    engine.connect(0);
    let mut out = Out(Vec::new());
    let mut f = Follower::default();
    if mode & 1 == 1 {
        for piece in rest.chunks(((mode >> 1) as usize).max(1)) {
            f.receive(piece);
            let r = drain(&mut f, &mut engine, &mut out);
            check(&engine);
            if r.is_err() {
                return;
            }
        }
        return;
    }
    let mut stream = b"REPLICATING x\r\n".to_vec();
    let mut model = Model::new();
    let mut seen: Option<HashSet<u64>> = None;
    let mut corrupt = false;
    // The newest epoch the stream has given, and whether a later frame
    // gave an older one (the stream must stop there).
    let mut epoch = 0u64;
    let mut stale = false;
    let mut it = rest.chunks(4);
    for op in it.by_ref() {
        let b = |i: usize| op.get(i).copied().unwrap_or(0);
        let id = (b(1) % 12) as u64 + 1;
        match b(0) % 8 {
            0..=3 => {
                let state = match b(2) % 5 {
                    0 => DiskState::Deleted,
                    1 => DiskState::Ready,
                    2 => DiskState::Reserved,
                    3 => DiskState::Buried,
                    _ => DiskState::Delayed,
                };
                let deadline = match state {
                    DiskState::Buried => -((b(3) as i64) + 1),
                    DiskState::Delayed => WALL + (b(3) as i64 - 100) * 1_000_000_000,
                    _ => 0,
                };
                let pri = b(3) as u32 * 7;
                let full = b(0) % 8 < 2 && state != DiskState::Deleted;
                let tube = TUBES[(b(2) / 5 % 3) as usize];
                let body = vec![b'x'; (b(3) % 5) as usize];
                let rec = JobRec {
                    id,
                    pri,
                    delay: 0,
                    ttr: 10_000_000_000,
                    body_size: body.len() as i32 + 2,
                    created_at: WALL - 5,
                    deadline_at: deadline,
                    counts: Default::default(),
                    state,
                };
                let mut r = Vec::new();
                if full {
                    record::encode_full(&mut r, tube.as_bytes(), &rec, &body);
                } else {
                    record::encode_short(&mut r, &rec);
                }
                frame::push(&mut stream, Kind::Record, &r);
                if corrupt || stale {
                    continue;
                }
                if let Some(s) = &mut seen {
                    s.insert(id);
                }
                if state == DiskState::Deleted {
                    model.remove(&id);
                } else if full {
                    model.insert(id, (tube, state_word(state, deadline), pri));
                } else if let Some(m) = model.get_mut(&id) {
                    *m = (m.0, state_word(state, deadline), pri);
                }
            }
            4 => {
                frame::push(&mut stream, Kind::SnapshotBegin, &[]);
                if !corrupt && !stale {
                    seen = Some(HashSet::new());
                }
            }
            5 => {
                frame::push_snapshot_end(&mut stream, id, id);
                if !corrupt && !stale && let Some(s) = seen.take() {
                    model.retain(|id, _| s.contains(id));
                }
            }
            6 if b(2) % 2 == 0 => frame::push_heartbeat(&mut stream, WALL, id),
            6 => {
                let e = (b(3) % 6) as u64;
                frame::push_epoch(&mut stream, e);
                if !corrupt && !stale {
                    if e < epoch {
                        stale = true;
                    } else {
                        epoch = e;
                    }
                }
            }
            _ => {
                // A flipped byte somewhere: the stream must stop at or
                // before it, so the model stops here too.
                if b(1) % 4 == 0 && stream.len() > 16 {
                    let at = 16 + (b(2) as usize * 31 + b(3) as usize) % (stream.len() - 16);
                    stream[at] ^= 1 << (b(3) % 8);
                    corrupt = true;
                }
            }
        }
    }
    let mut failed = false;
    for piece in stream.chunks(97) {
        f.receive(piece);
        let r = drain(&mut f, &mut engine, &mut out);
        check(&engine);
        if r.is_err() {
            failed = true;
            break;
        }
    }
    if !corrupt {
        // The epoch only rises, and an older one stops the stream.
        assert_eq!(engine.epoch(), epoch);
        assert_eq!(failed, stale, "a stale epoch, and only that, stops a whole stream");
    }
    if corrupt {
        // Some prefix was applied: the invariants held; nothing more to
        // compare (a flipped byte may still parse as another valid record).
        return;
    }
    for id in 1..=12u64 {
        out.0.clear();
        engine.execute(0, &Command::StatsJob(id), NOW, &mut out);
        let text = String::from_utf8_lossy(&out.0).into_owned();
        match model.get(&id) {
            None => assert_eq!(text, "NOT_FOUND\r\n", "job {id}"),
            Some((tube, state, pri)) => {
                let field = |k: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                        .map(|v| v.trim_matches('"').to_string())
                        .unwrap_or_default()
                };
                assert_eq!(
                    (field("tube"), field("state"), field("pri")),
                    (tube.to_string(), state.to_string(), pri.to_string()),
                    "job {id}: {text}"
                );
            }
        }
    }
});
