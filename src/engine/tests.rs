use super::*;

const NOW: Nanos = 1 << 60;

/// An engine with client 0 connected.
fn engine() -> Engine {
    let mut e = Engine::new(65535, ServerInfo::default(), NOW);
    e.connect(0);
    e
}

/// Client 0 puts a small job; returns its id.
fn put(e: &mut Engine, out: &mut Out) -> u64 {
    let id = e.begin_put(0);
    e.finish_put(0, id, 0, 0, 10, b"job"[..].into(), NOW, NOW, out);
    id
}

#[test]
fn memory_is_given_back_as_jobs_go() {
    let now = NOW;
    let mut e = engine();
    let mut out = Out::default();
    let ids: Vec<u64> = (0..20_000).map(|_| put(&mut e, &mut out)).collect();
    let full = e.jobs.capacity();
    assert!(!e.shrink_if_emptied(), "nothing to give back yet");
    for id in ids.iter().rev() {
        e.execute(0, &Command::Delete(*id), now, &mut out);
    }
    assert!(e.bodies.allocations() > 0, "one chunk kept at hand");
    assert!(e.shrink_if_emptied());
    assert_eq!(e.bodies.allocations(), 0);
    assert!(
        e.jobs.capacity() < full / 4,
        "{} of {full}",
        e.jobs.capacity()
    );
    assert!(e.ids.capacity() < 1000);
    assert!(!e.shrink_if_emptied(), "once per halving");
}

#[test]
fn the_last_jobs_room_goes_with_them() {
    // The event loop asks after every turn; here, after every delete.
    let now = NOW;
    let mut e = engine();
    let mut out = Out::default();
    let ids: Vec<u64> = (0..20_000).map(|_| put(&mut e, &mut out)).collect();
    let mut shrinks = 0;
    for id in ids {
        e.execute(0, &Command::Delete(id), now, &mut out);
        shrinks += e.shrink_if_emptied() as u32;
    }
    // 20,000 halves to below the floor in three steps, then the rest.
    assert_eq!(shrinks, 4);
    assert_eq!(e.jobs.capacity(), 0);
    assert_eq!(e.ids.capacity(), 0);
    // Light traffic afterwards does not shrink on every emptying.
    for _ in 0..100 {
        let id = put(&mut e, &mut out);
        e.execute(0, &Command::Delete(id), now, &mut out);
        assert!(!e.shrink_if_emptied());
    }
}

#[test]
fn a_long_watch_list_gets_the_best_job_it_watches() {
    let mut e = engine();
    e.connect(1);
    let mut out = Out::default();
    let names: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    for name in &names {
        e.execute(0, &Command::Watch(name), NOW, &mut out);
    }
    // Client 1 fills four tubes, fewer than client 0 watches, so the
    // reserve walks the tubes with ready jobs.
    let mut put_in = |e: &mut Engine, tube: &str, pri: u32| {
        e.execute(1, &Command::Use(tube), NOW, &mut out);
        let id = e.begin_put(1);
        e.finish_put(1, id, pri, 0, 10, b"job"[..].into(), NOW, NOW, &mut out);
        id
    };
    put_in(&mut e, "unwatched", 0);
    put_in(&mut e, "t7", 5);
    let best = put_in(&mut e, "t5", 10);
    let next = put_in(&mut e, "t3", 20);
    e.execute(
        0,
        &Command::PauseTube {
            name: "t7",
            delay: 60,
        },
        NOW,
        &mut out,
    );
    assert_eq!(e.tubes.with_ready().len(), 4);
    for want in [best, next] {
        let mut out = Out::default();
        e.execute(0, &Command::Reserve, NOW, &mut out);
        let reply = format!("RESERVED {want} 3\r\njob\r\n");
        assert_eq!(String::from_utf8_lossy(&out.0), reply);
        assert_eq!(e.check_invariants(), Ok(()));
    }
    assert_eq!(e.tubes.with_ready().len(), 2);
}

#[test]
fn the_invariant_check_finds_a_count_that_is_off() {
    let mut e = engine();
    let mut out = Out::default();
    put(&mut e, &mut out);
    assert_eq!(e.check_invariants(), Ok(()));
    e.totals.ready += 1;
    assert_eq!(
        e.check_invariants(),
        Err(Broken::Count {
            what: "current-jobs-ready",
            counted: 2,
            held: 1
        })
    );
}

#[test]
fn the_room_of_dropped_tubes_is_given_back() {
    let mut e = engine();
    let mut out = Out::default();
    e.connect(1);
    let names: Vec<String> = (0..10_000).map(|i| format!("t{i}")).collect();
    for name in &names {
        e.execute(1, &Command::Watch(name), NOW, &mut out);
    }
    let full = e.tubes.slab.capacity();
    assert!(full >= 10_001);
    assert!(!e.shrink_if_emptied(), "nothing to give back yet");
    e.disconnect(1, NOW, &mut out);
    assert_eq!(e.tubes.len(), 1);
    assert!(e.shrink_if_emptied());
    assert!(e.tubes.slab.capacity() < 100, "{}", e.tubes.slab.capacity());
    assert!(!e.shrink_if_emptied(), "once per halving");
}

#[test]
fn a_watch_past_the_bound_is_refused_and_the_list_keeps_its_size() {
    let mut e = engine();
    e.set_max_watched(3);
    let ask = |e: &mut Engine, cmd: &Command| {
        let mut out = Out::default();
        e.execute(0, cmd, NOW, &mut out);
        String::from_utf8_lossy(&out.0).into_owned()
    };
    // default, a, b: at the bound.
    assert_eq!(ask(&mut e, &Command::Watch("a")), "WATCHING 2\r\n");
    assert_eq!(ask(&mut e, &Command::Watch("b")), "WATCHING 3\r\n");
    assert_eq!(ask(&mut e, &Command::Watch("c")), "OUT_OF_MEMORY\r\n");
    // No tube was made for the refused watch.
    assert!(e.tubes.find("c").is_none());
    // A tube already watched is still answered with the count.
    assert_eq!(ask(&mut e, &Command::Watch("a")), "WATCHING 3\r\n");
    assert_eq!(ask(&mut e, &Command::Ignore("b")), "WATCHING 2\r\n");
    assert_eq!(ask(&mut e, &Command::Watch("c")), "WATCHING 3\r\n");
    assert_eq!(e.check_invariants(), Ok(()));
    // Lowered under what the connection watches, the check says so.
    e.set_max_watched(2);
    assert!(matches!(
        e.check_invariants(),
        Err(Broken::Count { held: 3, .. })
    ));
}

mod replica {
    use super::*;
    use crate::binlog::record::{self, DiskState, JobRec};

    const WALL: i64 = 1_800_000_000_000_000_000;

    fn rec(id: u64, state: DiskState, deadline_at: i64) -> JobRec {
        JobRec {
            id,
            pri: 9,
            delay: 5 * NANOS_PER_SEC as i64,
            ttr: 30 * NANOS_PER_SEC as i64,
            body_size: 4,
            created_at: WALL - 2 * NANOS_PER_SEC as i64,
            deadline_at,
            counts: Default::default(),
            state,
        }
    }

    fn apply(e: &mut Engine, bytes: &[u8]) {
        let r = record::parse_one(bytes).unwrap();
        e.apply(&r, WALL, NOW, &mut Out::default()).unwrap();
        assert_eq!(e.check_invariants(), Ok(()));
    }

    fn full(id: u64, tube: &str, state: DiskState, deadline_at: i64) -> Vec<u8> {
        let mut b = Vec::new();
        record::encode_full(&mut b, tube.as_bytes(), &rec(id, state, deadline_at), b"hi");
        b
    }

    fn short(id: u64, state: DiskState, deadline_at: i64) -> Vec<u8> {
        let mut b = Vec::new();
        record::encode_short(&mut b, &rec(id, state, deadline_at));
        b
    }

    fn ask(e: &mut Engine, cmd: &Command) -> String {
        let mut out = Out::default();
        e.execute(0, cmd, NOW, &mut out);
        String::from_utf8_lossy(&out.0).into_owned()
    }

    #[test]
    fn records_are_applied_as_recovery_reads_them() {
        let mut e = engine();
        e.set_refuses_changes(true);
        apply(&mut e, &full(7, "mail", DiskState::Ready, 0));
        apply(
            &mut e,
            &full(
                8,
                "mail",
                DiskState::Delayed,
                WALL + 3 * NANOS_PER_SEC as i64,
            ),
        );
        apply(&mut e, &full(9, "mail", DiskState::Buried, -4));
        let t = |e: &Engine| {
            let v = e.tube_views(NOW).find(|t| t.name == "mail").unwrap();
            (v.ready, v.delayed, v.buried)
        };
        assert_eq!(t(&e), (1, 1, 1));
        // A state change, then a delete; a change of a job not held is
        // nothing.
        apply(&mut e, &short(7, DiskState::Buried, -5));
        assert_eq!(t(&e), (0, 1, 2));
        apply(&mut e, &short(8, DiskState::Deleted, 0));
        apply(&mut e, &short(99, DiskState::Ready, 0));
        assert_eq!(t(&e), (0, 0, 2));
        // Buried in the primary's order: 9 (rank 4) before 7 (rank 5).
        e.execute(0, &Command::Use("mail"), NOW, &mut Out::default());
        e.set_refuses_changes(false);
        assert!(ask(&mut e, &Command::PeekBuried).starts_with("FOUND 9 "));
        // The delete of 99 was not applied, but its id is used up: the next
        // id is past every id heard of.
        assert_eq!(e.begin_put(0), 100);
    }

    #[test]
    fn a_replica_refuses_changes_and_serves_reads() {
        let mut e = engine();
        e.set_refuses_changes(true);
        apply(&mut e, &full(1, "default", DiskState::Ready, 0));
        for cmd in [
            Command::Delete(1),
            Command::Reserve,
            Command::ReserveJob(1),
            Command::Kick(1),
            Command::Bury { id: 1, pri: 0 },
        ] {
            assert_eq!(ask(&mut e, &cmd), "DRAINING\r\n", "{cmd:?}");
        }
        let id = e.begin_put(0);
        let mut out = Out::default();
        e.finish_put(0, id, 0, 0, 10, b"x"[..].into(), NOW, NOW, &mut out);
        assert_eq!(out.0, b"DRAINING\r\n");
        assert!(ask(&mut e, &Command::Peek(1)).starts_with("FOUND 1 2\r\nhi\r\n"));
        assert_eq!(ask(&mut e, &Command::Watch("x")), "WATCHING 2\r\n");
    }

    #[test]
    fn a_resync_removes_what_the_primary_no_longer_holds() {
        let mut e = engine();
        e.set_refuses_changes(true);
        for id in 1..=3 {
            apply(&mut e, &full(id, "t", DiskState::Ready, 0));
        }
        e.begin_resync();
        apply(&mut e, &full(2, "t", DiskState::Ready, 0));
        apply(&mut e, &full(5, "t", DiskState::Ready, 0));
        // 3 deleted on the primary while the replica was away: not sent.
        let gone = e.end_resync(40, NOW, &mut Out::default()).unwrap();
        assert_eq!(gone, 2);
        let mut ids: Vec<u64> = e.jobs.iter().map(|(_, j)| j.id).collect();
        ids.sort();
        assert_eq!(ids, [2, 5]);
        assert_eq!(e.check_invariants(), Ok(()));
        assert_eq!(e.begin_put(0), 40);
    }
}
