//! How sprout behaves at the edges of its resources: at its connection
//! ceiling, with many connections, and idle.

mod common;

use common::{Client, Server, put, try_put};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

/// Starts sprout with an open-file limit of `limit`.
fn start_with_fd_limit(limit: u64) -> Server {
    Server::start_with(common::sprout_bin(), &[], move |cmd| {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
}

/// Waits (bounded) until the server counts `n` connections.
fn wait_for_connections(c: &mut Client, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now: usize = c.stat("stats", "current-connections").parse().unwrap();
        if now == n {
            return;
        }
        assert!(Instant::now() < deadline, "{now} connections, not {n}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// At the connection ceiling (the open-file limit less what the server
/// keeps for itself), a new client hears OUT_OF_MEMORY and is closed at
/// once: a refusal, never a wait in the backlog. The clients it has are
/// served, the listener is not spun on, and once some leave, new clients
/// are taken again.
#[test]
fn at_the_connection_ceiling_new_clients_are_refused_at_once() {
    const LIMIT: u64 = 48;
    let ceiling = (LIMIT - sprout::event_loop::RESERVED_FDS) as usize;
    let s = start_with_fd_limit(LIMIT);
    let mut first = s.connect();
    first.expect("use t\r\n", "USING t\r\n");
    // Accepted in the order they connect: the first fill the ceiling.
    let mut flood: Vec<Client> = (0..2 * LIMIT).map(|_| s.connect()).collect();
    let refused = flood.split_off(ceiling - 1);
    for mut c in refused {
        assert_eq!(c.reply(), b"OUT_OF_MEMORY\r\n");
        c.expect_closed();
    }
    wait_for_connections(&mut first, ceiling);
    for c in flood.iter_mut() {
        c.expect("list-tube-used\r\n", "USING default\r\n");
    }

    // Existing connections are still served, and the listener is not spun on.
    let cpu = s.cpu_time();
    for _ in 0..10 {
        first.expect("list-tube-used\r\n", "USING t\r\n");
        std::thread::sleep(Duration::from_millis(100));
    }
    let spent = s.cpu_time() - cpu;
    assert!(
        spent < Duration::from_millis(500),
        "server used {spent:?} of CPU in 1 s at the ceiling"
    );

    // Some leave: as many new clients are taken, and the next is refused.
    flood.drain(..4);
    wait_for_connections(&mut first, ceiling - 4);
    let mut again: Vec<Client> = (0..4).map(|_| s.connect()).collect();
    for c in again.iter_mut() {
        c.expect("list-tube-used\r\n", "USING default\r\n");
    }
    let mut over = s.connect();
    assert_eq!(over.reply(), b"OUT_OF_MEMORY\r\n");
    over.expect_closed();
    first.expect("list-tube-used\r\n", "USING t\r\n");
}

/// 10,000 clients at once, each served.
#[test]
fn ten_thousand_connections_are_held_at_once() {
    const CLIENTS: usize = 10_000;
    // This test process holds the clients' ends: raise its own soft limit.
    // SAFETY: getrlimit/setrlimit on our own process.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        assert!(
            lim.rlim_max >= CLIENTS as u64 + 200,
            "the hard open-file limit ({}) is too low for this test",
            lim.rlim_max
        );
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let s = start_with_fd_limit(CLIENTS as u64 + 100);
    let mut clients: Vec<Client> = (0..CLIENTS).map(|_| s.connect()).collect();
    let mut watcher = s.connect();
    wait_for_connections(&mut watcher, CLIENTS + 1);
    // Every one of them is served: each asks, then each reads its answer.
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(format!("use t{}\r\n", i % 7));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.reply(), format!("USING t{}\r\n", i % 7).as_bytes());
    }
    assert_eq!(watcher.stat("stats", "current-tubes"), "8");
}

/// An idle server sleeps until its next deadline, even with a waiting
/// reserve, a reservation and a delayed job pending far off.
#[test]
fn idle_server_does_not_spin() {
    let s = Server::start(&[]);
    let mut a = s.connect();
    a.expect("put 0 0 1000 1\r\nx\r\n", "INSERTED 1\r\n");
    a.expect("reserve\r\n", "RESERVED 1 1\r\nx\r\n");
    a.expect("put 0 1000 10 1\r\ny\r\n", "INSERTED 2\r\n");
    let mut waiter = s.connect();
    waiter.send("reserve-with-timeout 1000\r\n");
    let mut idle: Vec<Client> = (0..20).map(|_| s.connect()).collect();
    idle[0].expect("list-tube-used\r\n", "USING default\r\n");
    let cpu = s.cpu_time();
    std::thread::sleep(Duration::from_secs(2));
    let spent = s.cpu_time() - cpu;
    assert!(
        spent < Duration::from_millis(200),
        "idle server used {spent:?} of CPU in 2 s"
    );
    waiter.expect_silence(Duration::from_millis(10));
}

/// --max-memory: while the jobs take the limit or more, a put is answered
/// OUT_OF_MEMORY (its body skipped, no id taken); everything else works,
/// and puts go in again once deletes bring the jobs under the limit. Each
/// job counts its body and 84 bytes (sprout --help).
#[test]
fn max_memory_refuses_puts_until_deletes_make_room() {
    const PER_JOB: u64 = 1000 + 84;
    // The 20th job crosses the limit; the 21st is refused. The tube
    // `default` counts too.
    let limit = 19 * PER_JOB + sprout::tube::tube_memory("default".len()) + 1;
    let s = Server::start(&["--max-memory", &limit.to_string()]);
    let mut c = s.connect();
    let body = [b'm'; 1000];
    let mut ids = Vec::new();
    loop {
        let reply = try_put(&mut c, 0, 0, 60, &body);
        if reply == "OUT_OF_MEMORY\r\n" {
            break;
        }
        ids.push(
            reply
                .strip_prefix("INSERTED ")
                .unwrap()
                .trim_end()
                .parse::<u64>()
                .unwrap(),
        );
        assert!(ids.len() <= 20, "puts were not refused");
    }
    assert_eq!(ids.len(), 20);
    // The refused body was skipped, a small put is refused too, and no id
    // was used up.
    assert_eq!(try_put(&mut c, 0, 0, 60, b"x"), "OUT_OF_MEMORY\r\n");
    c.expect("list-tube-used\r\n", "USING default\r\n");
    let first = ids[0];
    c.expect(
        format!("reserve-job {first}\r\n"),
        format!("RESERVED {first} 1000\r\n{}\r\n", "m".repeat(1000)).as_str(),
    );
    c.expect(format!("bury {first} 1\r\n"), "BURIED\r\n");
    c.expect("kick 1\r\n", "KICKED 1\r\n");
    assert_eq!(c.stat("stats", "current-jobs-ready"), "20");
    assert_eq!(c.stat("stats", "cmd-put"), "22");
    // A delete makes room for one more.
    c.expect(format!("delete {first}\r\n"), "DELETED\r\n");
    assert_eq!(put(&mut c, 0, 0, 60, &body), ids[19] + 1);
    assert_eq!(try_put(&mut c, 0, 0, 60, &body), "OUT_OF_MEMORY\r\n");
    // Another connection is refused as well, and served otherwise.
    let mut other = s.connect();
    assert_eq!(try_put(&mut other, 0, 0, 60, b"y"), "OUT_OF_MEMORY\r\n");
    other.expect(
        format!("peek {}\r\n", ids[1]),
        format!("FOUND {} 1000\r\n{}\r\n", ids[1], "m".repeat(1000)).as_str(),
    );
}

/// --max-memory counts tubes too: past it, `use` or `watch` of a new tube
/// is answered OUT_OF_MEMORY (as beanstalkd answers when it cannot make
/// one); tubes that exist stay usable, and once tubes go, new ones can be
/// made again.
#[test]
fn max_memory_refuses_new_tubes_until_some_go() {
    let per_tube = sprout::tube::tube_memory("tube-000".len());
    // Room for `default` and 99 more tubes; the 100th crosses the limit.
    let limit = sprout::tube::tube_memory("default".len()) + 99 * per_tube + 1;
    let s = Server::start(&["--max-memory", &limit.to_string()]);
    let mut maker = s.connect();
    for i in 0..100 {
        maker.expect(
            format!("watch tube-{i:03}\r\n"),
            format!("WATCHING {}\r\n", i + 2),
        );
    }
    maker.expect("watch tube-100\r\n", "OUT_OF_MEMORY\r\n");
    maker.expect("use tube-101\r\n", "OUT_OF_MEMORY\r\n");
    let mut other = s.connect();
    other.expect("use tube-050\r\n", "USING tube-050\r\n");
    other.expect("watch tube-099\r\n", "WATCHING 2\r\n");
    assert_eq!(try_put(&mut other, 0, 0, 60, b"x"), "OUT_OF_MEMORY\r\n");
    assert_eq!(other.stat("stats", "current-tubes"), "101");
    // The maker goes, and with it every tube only it watched.
    drop(maker);
    let deadline = Instant::now() + Duration::from_secs(10);
    while other.stat("stats", "current-tubes") != "3" {
        assert!(Instant::now() < deadline, "the maker's tubes stayed");
        std::thread::sleep(Duration::from_millis(10));
    }
    other.expect("watch fresh\r\n", "WATCHING 3\r\n");
    assert_eq!(put(&mut other, 0, 0, 60, b"x"), 1);
}

/// The server's resident memory, in KiB.
fn rss_kib(s: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The largest length a put can declare: the body is read and thrown away
/// as it comes (never kept), JOB_TOO_BIG follows its last byte, and the
/// connection goes on. Another client is served while it streams.
#[test]
fn a_put_of_4294967295_bytes_is_skipped_as_it_comes() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    let mut other = s.connect();
    let before = rss_kib(&s);
    c.send("put 0 0 10 4294967295\r\n");
    let chunk = vec![b'x'; 1 << 20];
    let mut left = u32::MAX as usize;
    let (mut peak, mut ids) = (before, 0);
    while left > 0 {
        let n = left.min(chunk.len());
        c.send(&chunk[..n]);
        left -= n;
        if left.is_multiple_of(256 << 20) {
            peak = peak.max(rss_kib(&s));
            ids += 1;
            assert_eq!(put(&mut other, 0, 0, 10, b"served"), ids);
            other.expect(format!("delete {ids}\r\n"), "DELETED\r\n");
        }
    }
    c.send("\r\n");
    assert_eq!(c.reply(), b"JOB_TOO_BIG\r\n");
    assert_eq!(
        put(&mut c, 0, 0, 10, b"after"),
        ids + 1,
        "the refused put took no id"
    );
    // 4 GiB went through; what the server holds grew by a few buffers.
    assert!(
        peak < before + 16 * 1024,
        "{before} KiB before, {peak} KiB while skipping"
    );
}

/// Twenty connections make 100,000 tubes (watching 5,000 each: one
/// connection may watch at most 10,000) and close: the tubes go, and so
/// does the memory they took.
#[test]
fn tubes_made_and_dropped_give_their_memory_back() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    let before = rss_kib(&s);
    const TUBES: usize = 100_000;
    const PER: usize = 5_000;
    let mut watchers: Vec<_> = (0..TUBES / PER).map(|_| s.connect()).collect();
    for (w, watcher) in watchers.iter_mut().enumerate() {
        for batch in 0..PER / 1000 {
            let first = w * PER + batch * 1000;
            let cmds: String = (first..first + 1000)
                .map(|i| format!("watch many-{i}\r\n"))
                .collect();
            watcher.send(cmds);
            for i in 0..1000 {
                assert_eq!(
                    watcher.line(),
                    format!("WATCHING {}\r\n", batch * 1000 + i + 2)
                );
            }
        }
    }
    assert_eq!(c.stat("stats", "current-tubes"), (TUBES + 1).to_string());
    let full = rss_kib(&s);
    drop(watchers);
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.stat("stats", "current-tubes") != "1" {
        assert!(Instant::now() < deadline, "the tubes were not dropped");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The room goes at the end of the loop's turn that dropped them, after
    // that turn's replies; a reply to a command sent since comes later.
    c.expect("list-tube-used\r\n", "USING default\r\n");
    let after = rss_kib(&s);
    assert!(
        full > before + 10 * 1024,
        "{before} KiB, then {full} KiB with the tubes"
    );
    assert!(
        after < before + 4 * 1024,
        "{before} KiB before, {full} with the tubes, {after} after"
    );
}
