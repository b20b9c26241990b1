//! How sprout behaves at the edges of its resources: out of file
//! descriptors, and idle.

mod common;

use common::{Client, Server};
use std::os::unix::process::CommandExt;
use std::time::Duration;

/// With the descriptor limit reached, accept fails (EMFILE). The server
/// must keep serving the connections it has, must not spin on the listener,
/// and must take the waiting connections once descriptors free up.
#[test]
fn out_of_descriptors_backs_off_and_recovers() {
    const LIMIT: u64 = 32;
    let s = Server::start_with(common::sprout_bin(), &[], |cmd| {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: LIMIT,
                    rlim_max: LIMIT,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let mut first = s.connect();
    first.expect("use t\r\n", "USING t\r\n");
    // More clients than descriptors: the kernel completes the handshakes,
    // the server cannot accept them all.
    let mut flood: Vec<Client> = (0..2 * LIMIT).map(|_| s.connect()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let served: u64 = first
        .stat("stats", "current-connections")
        .parse()
        .expect("a number");
    assert!(
        served < 1 + 2 * LIMIT,
        "all {served} accepted under the limit"
    );

    // Existing connections are still served, and the listener is not spun on.
    let cpu = s.cpu_time();
    for _ in 0..10 {
        first.expect("list-tube-used\r\n", "USING t\r\n");
        std::thread::sleep(Duration::from_millis(100));
    }
    let spent = s.cpu_time() - cpu;
    assert!(
        spent < Duration::from_millis(500),
        "server used {spent:?} of CPU in 1 s while out of descriptors"
    );

    // Free descriptors (the server holds fewer than LIMIT connections, so
    // LIMIT / 2 clients fit): every client left, including those that
    // waited in the backlog, is served.
    flood.drain(..(3 * LIMIT / 2) as usize);
    for c in flood.iter_mut() {
        c.expect("list-tube-used\r\n", "USING default\r\n");
    }
    first.expect("list-tube-used\r\n", "USING t\r\n");
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
