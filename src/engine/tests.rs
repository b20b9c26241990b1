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
