//! Every command and every error reply, over a real socket to a real sprout.

mod common;

use common::{Server, put};
use std::time::Duration;

#[test]
fn put_reserve_delete_and_peeks() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    assert_eq!(put(&mut c, 10, 0, 60, b"hello"), 1);
    assert_eq!(put(&mut c, 5, 0, 60, b"first"), 2);
    c.expect("peek 1\r\n", "FOUND 1 5\r\nhello\r\n");
    c.expect("peek 0\r\n", "NOT_FOUND\r\n");
    c.expect("peek 99\r\n", "NOT_FOUND\r\n");
    c.expect("peek-ready\r\n", "FOUND 2 5\r\nfirst\r\n");
    c.expect("peek-delayed\r\n", "NOT_FOUND\r\n");
    c.expect("peek-buried\r\n", "NOT_FOUND\r\n");
    c.expect("reserve\r\n", "RESERVED 2 5\r\nfirst\r\n");
    c.expect("reserve-with-timeout 0\r\n", "RESERVED 1 5\r\nhello\r\n");
    c.expect("reserve-with-timeout 0\r\n", "TIMED_OUT\r\n");
    c.expect("delete 2\r\n", "DELETED\r\n");
    c.expect("delete 2\r\n", "NOT_FOUND\r\n");
    c.expect("peek 2\r\n", "NOT_FOUND\r\n");
    // Another connection cannot delete a job reserved here, but peeks it.
    let mut d = s.connect();
    d.expect("delete 1\r\n", "NOT_FOUND\r\n");
    d.expect("peek 1\r\n", "FOUND 1 5\r\nhello\r\n");
    c.expect("delete 1\r\n", "DELETED\r\n");
}

#[test]
fn ready_order_is_priority_then_id() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    for (pri, body) in [(3u32, "c"), (1, "a"), (3, "d"), (2, "b"), (0, "z")] {
        put(&mut c, pri, 0, 60, body.as_bytes());
    }
    let mut got = vec![];
    for _ in 0..5 {
        let r = String::from_utf8(c.ask("reserve\r\n")).unwrap();
        got.push(r.lines().nth(1).unwrap().to_string());
    }
    assert_eq!(got, ["z", "a", "b", "c", "d"]);
}

#[test]
fn release_bury_kick_touch() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    put(&mut c, 1, 0, 60, b"x");
    c.expect("release 1 1 0\r\n", "NOT_FOUND\r\n");
    c.expect("bury 1 1\r\n", "NOT_FOUND\r\n");
    c.expect("touch 1\r\n", "NOT_FOUND\r\n");
    c.expect("reserve\r\n", "RESERVED 1 1\r\nx\r\n");
    c.expect("touch 1\r\n", "TOUCHED\r\n");
    c.expect("release 1 7 0\r\n", "RELEASED\r\n");
    assert_eq!(c.stat("stats-job 1", "pri"), "7");
    assert_eq!(c.stat("stats-job 1", "releases"), "1");
    c.expect("reserve\r\n", "RESERVED 1 1\r\nx\r\n");
    c.expect("bury 1 9\r\n", "BURIED\r\n");
    let job = c.yaml("stats-job 1");
    assert_eq!(
        (
            job["state"].as_str(),
            job["pri"].as_str(),
            job["buries"].as_str()
        ),
        ("buried", "9", "1")
    );
    c.expect("peek-buried\r\n", "FOUND 1 1\r\nx\r\n");
    c.expect("kick-job 1\r\n", "KICKED\r\n");
    c.expect("kick-job 1\r\n", "NOT_FOUND\r\n");
    assert_eq!(c.stat("stats-job 1", "kicks"), "1");
    // kick takes buried jobs first and leaves delayed ones alone.
    c.expect("reserve\r\n", "RESERVED 1 1\r\nx\r\n");
    c.expect("bury 1 9\r\n", "BURIED\r\n");
    put(&mut c, 1, 100, 60, b"later");
    c.expect("kick 10\r\n", "KICKED 1\r\n");
    c.expect("kick 10\r\n", "KICKED 1\r\n");
    c.expect("kick 10\r\n", "KICKED 0\r\n");
    c.expect("kick 0\r\n", "KICKED 0\r\n");
    assert_eq!(c.stat("stats-job 2", "state"), "ready");
}

#[test]
fn delayed_jobs_become_ready() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    put(&mut c, 0, 1, 60, b"soon");
    let job = c.yaml("stats-job 1");
    assert_eq!(
        (job["state"].as_str(), job["delay"].as_str()),
        ("delayed", "1")
    );
    c.expect("peek-delayed\r\n", "FOUND 1 4\r\nsoon\r\n");
    c.expect("reserve-with-timeout 0\r\n", "TIMED_OUT\r\n");
    // A blocked reserve is served when the delay ends.
    c.expect("reserve-with-timeout 5\r\n", "RESERVED 1 4\r\nsoon\r\n");
    // A release with a delay goes back to delayed.
    c.expect("release 1 0 1\r\n", "RELEASED\r\n");
    assert_eq!(c.stat("stats-job 1", "state"), "delayed");
    c.expect("reserve\r\n", "RESERVED 1 4\r\nsoon\r\n");
}

#[test]
fn ttr_expiry_and_deadline_soon() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    put(&mut c, 0, 0, 0, b"t"); // ttr 0 becomes 1
    assert_eq!(c.stat("stats-job 1", "ttr"), "1");
    c.expect("reserve\r\n", "RESERVED 1 1\r\nt\r\n");
    // With ttr 1 the job is inside the safety margin at once.
    c.expect("reserve\r\n", "DEADLINE_SOON\r\n");
    c.expect("reserve-with-timeout 0\r\n", "DEADLINE_SOON\r\n");
    std::thread::sleep(Duration::from_millis(1300));
    let job = c.yaml("stats-job 1");
    assert_eq!(
        (job["state"].as_str(), job["timeouts"].as_str()),
        ("ready", "1")
    );
    assert_eq!(c.stat("stats", "job-timeouts"), "1");
    // A waiting reserve gets DEADLINE_SOON one second before the TTR ends.
    put(&mut c, 0, 0, 3, b"u");
    c.expect("reserve\r\n", "RESERVED 1 1\r\nt\r\n");
    c.expect("delete 1\r\n", "DELETED\r\n");
    c.expect("reserve\r\n", "RESERVED 2 1\r\nu\r\n");
    let t0 = std::time::Instant::now();
    c.expect("reserve\r\n", "DEADLINE_SOON\r\n");
    // Not before the last second of the TTR (no earlier than 2 s after the
    // reserve, less the moments before t0), and within it: the job is still
    // reserved, with less than a second left.
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    let job = c.yaml("stats-job 2");
    assert_eq!(
        (job["state"].as_str(), job["time-left"].as_str()),
        ("reserved", "0")
    );
}

#[test]
fn blocked_reserve_is_woken_by_put_on_any_watched_tube() {
    let s = Server::start(&[]);
    let mut worker = s.connect();
    worker.expect("watch jobs\r\n", "WATCHING 2\r\n");
    worker.send("reserve\r\n");
    worker.expect_silence(Duration::from_millis(200));
    let mut producer = s.connect();
    assert_eq!(producer.stat("stats", "current-waiting"), "1");
    producer.expect("use jobs\r\n", "USING jobs\r\n");
    put(&mut producer, 0, 0, 60, b"work");
    assert_eq!(worker.reply(), b"RESERVED 1 4\r\nwork\r\n");
    // Commands pipelined behind a blocked reserve run once it is answered.
    worker.send("reserve-with-timeout 1\r\nlist-tube-used\r\n");
    assert_eq!(worker.reply(), b"TIMED_OUT\r\n");
    assert_eq!(worker.reply(), b"USING default\r\n");
}

#[test]
fn closing_a_connection_releases_its_jobs() {
    let s = Server::start(&[]);
    let mut a = s.connect();
    put(&mut a, 0, 0, 60, b"j");
    a.expect("reserve\r\n", "RESERVED 1 1\r\nj\r\n");
    let mut waiter = s.connect();
    waiter.send("reserve\r\n");
    waiter.expect_silence(Duration::from_millis(100));
    drop(a);
    assert_eq!(waiter.reply(), b"RESERVED 1 1\r\nj\r\n");
    let job = waiter.yaml("stats-job 1");
    assert_eq!(
        (job["reserves"].as_str(), job["timeouts"].as_str()),
        ("2", "0")
    );
    // quit closes without a reply, and so does quit with trailing junk.
    waiter.send("quitxyz\r\n");
    waiter.expect_closed();
    let mut b = s.connect();
    assert_eq!(b.stat("stats-job 1", "state"), "ready");
}

#[test]
fn half_close_while_waiting_times_out_then_closes() {
    // As beanstalkd 1.12: a waiting reserve whose client shuts down its
    // sending side is answered TIMED_OUT, then the connection closes and
    // its reservations go back to ready.
    let s = Server::start(&[]);
    let mut a = s.connect();
    put(&mut a, 0, 0, 60, b"x");
    a.expect("reserve\r\n", "RESERVED 1 1\r\nx\r\n");
    a.send("reserve\r\n");
    a.expect_silence(Duration::from_millis(100));
    a.s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(a.reply(), b"TIMED_OUT\r\n");
    a.expect_closed();
    let mut b = s.connect();
    assert_eq!(b.stat("stats-job 1", "state"), "ready");
    assert_eq!(b.stat("stats", "current-connections"), "1");
}

#[test]
fn a_hang_up_is_noticed_whenever_it_comes() {
    // The server stops reading once a read comes back short and waits for
    // the next event; a hang-up must still arrive as one, whether it comes
    // with the last command or after its reply.
    let s = Server::start(&[]);
    let mut a = s.connect();
    put(&mut a, 0, 0, 60, b"x");
    put(&mut a, 0, 0, 60, b"y");
    // With the last command.
    let mut b = s.connect();
    b.send("reserve-job 1\r\n");
    b.s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(b.reply(), b"RESERVED 1 1\r\nx\r\n");
    b.expect_closed();
    // After the reply, once the server has gone back to waiting.
    let mut c = s.connect();
    c.expect("reserve-job 2\r\n", "RESERVED 2 1\r\ny\r\n");
    c.expect_silence(Duration::from_millis(50));
    c.s.shutdown(std::net::Shutdown::Write).unwrap();
    c.expect_closed();
    // Both reservations went back.
    assert_eq!(a.stat("stats-job 1", "state"), "ready");
    assert_eq!(a.stat("stats-job 2", "state"), "ready");
    assert_eq!(a.stat("stats", "current-connections"), "1");
}

#[test]
fn closing_releases_in_reservation_order() {
    // Checked against beanstalkd 1.12: the first job reserved comes back
    // first, whatever its id, and a touch does not move it.
    let s = Server::start(&[]);
    let mut a = s.connect();
    for body in [b"a", b"b", b"c"] {
        put(&mut a, 0, 0, 60, body);
    }
    a.expect("reserve-job 2\r\n", "RESERVED 2 1\r\nb\r\n");
    a.expect("reserve-job 3\r\n", "RESERVED 3 1\r\nc\r\n");
    a.expect("touch 2\r\n", "TOUCHED\r\n");
    a.expect("reserve-job 1\r\n", "RESERVED 1 1\r\na\r\n");
    let mut waiter = s.connect();
    waiter.send("reserve\r\n");
    waiter.expect_silence(Duration::from_millis(100));
    drop(a);
    assert_eq!(waiter.reply(), b"RESERVED 2 1\r\nb\r\n");
}

#[test]
fn reserve_job_on_every_state() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    put(&mut c, 0, 0, 60, b"r");
    put(&mut c, 0, 100, 60, b"d");
    c.expect("reserve-job 2\r\n", "RESERVED 2 1\r\nd\r\n");
    c.expect("reserve-job 2\r\n", "NOT_FOUND\r\n");
    c.expect("bury 2 0\r\n", "BURIED\r\n");
    c.expect("reserve-job 2\r\n", "RESERVED 2 1\r\nd\r\n");
    c.expect("reserve-job 1\r\n", "RESERVED 1 1\r\nr\r\n");
    c.expect("reserve-job 3\r\n", "NOT_FOUND\r\n");
    assert_eq!(c.stat("stats", "current-jobs-reserved"), "2");
}

#[test]
fn tubes_use_watch_ignore_and_lists() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.expect("list-tube-used\r\n", "USING default\r\n");
    c.expect("list-tubes-watched\r\n", "OK 14\r\n---\n- default\n\r\n");
    c.expect("ignore default\r\n", "NOT_IGNORED\r\n");
    c.expect("ignore nosuch\r\n", "WATCHING 1\r\n");
    c.expect("watch t1\r\n", "WATCHING 2\r\n");
    c.expect("watch t1\r\n", "WATCHING 2\r\n");
    c.expect("watch t2\r\n", "WATCHING 3\r\n");
    c.expect("use t3\r\n", "USING t3\r\n");
    c.expect(
        "list-tubes\r\n",
        "OK 29\r\n---\n- default\n- t1\n- t2\n- t3\n\r\n",
    );
    // A freed tube's place in the list is taken by the last one.
    c.expect("ignore t1\r\n", "WATCHING 2\r\n");
    c.expect(
        "list-tubes\r\n",
        "OK 24\r\n---\n- default\n- t3\n- t2\n\r\n",
    );
    c.expect(
        "list-tubes-watched\r\n",
        "OK 19\r\n---\n- default\n- t2\n\r\n",
    );
    c.expect("ignore default\r\n", "WATCHING 1\r\n");
    c.expect("list-tubes-watched\r\n", "OK 9\r\n---\n- t2\n\r\n");
    // stats-tube never creates a tube; a tube with a job stays.
    c.expect("stats-tube nosuch\r\n", "NOT_FOUND\r\n");
    put(&mut c, 0, 0, 60, b"x");
    c.expect("use default\r\n", "USING default\r\n");
    assert_eq!(c.stat("stats-tube t3", "current-jobs-ready"), "1");
    c.expect("delete 1\r\n", "DELETED\r\n");
    c.expect("stats-tube t3\r\n", "NOT_FOUND\r\n");
    assert_eq!(c.stat("stats", "current-tubes"), "2");
}

#[test]
fn pause_tube_holds_back_reservation_only() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.expect("pause-tube nosuch 1\r\n", "NOT_FOUND\r\n");
    put(&mut c, 0, 0, 60, b"p");
    c.expect("pause-tube default 1\r\n", "PAUSED\r\n");
    let t = c.yaml("stats-tube default");
    assert_eq!(
        (t["pause"].as_str(), t["cmd-pause-tube"].as_str()),
        ("1", "1")
    );
    c.expect("reserve-with-timeout 0\r\n", "TIMED_OUT\r\n");
    c.expect("peek-ready\r\n", "FOUND 1 1\r\np\r\n");
    let t0 = std::time::Instant::now();
    c.expect("reserve-with-timeout 5\r\n", "RESERVED 1 1\r\np\r\n");
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    c.expect("release 1 0 0\r\n", "RELEASED\r\n");
    c.expect("pause-tube default 100\r\n", "PAUSED\r\n");
    c.expect("pause-tube default 0\r\n", "PAUSED\r\n");
    c.expect("reserve-with-timeout 2\r\n", "RESERVED 1 1\r\np\r\n");
}

#[test]
fn bad_format_and_unknown_command() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    for (cmd, reply) in [
        ("delete 1 \r\n", "BAD_FORMAT\r\n"),
        ("delete +1\r\n", "BAD_FORMAT\r\n"),
        ("delete \r\n", "BAD_FORMAT\r\n"),
        ("delete 18446744073709551616\r\n", "BAD_FORMAT\r\n"),
        ("delete\r\n", "UNKNOWN_COMMAND\r\n"),
        ("release 1 2\r\n", "BAD_FORMAT\r\n"),
        ("bury 1\r\n", "BAD_FORMAT\r\n"),
        ("kick \r\n", "BAD_FORMAT\r\n"),
        ("kick 99999999999999999999\r\n", "BAD_FORMAT\r\n"),
        ("kick -1\r\n", "KICKED 0\r\n"),
        ("reservex\r\n", "BAD_FORMAT\r\n"),
        ("reserve \r\n", "BAD_FORMAT\r\n"),
        ("reserve-with-timeout\r\n", "BAD_FORMAT\r\n"),
        ("reserve-with-timeout -1\r\n", "BAD_FORMAT\r\n"),
        ("reserve-with-timeout 2147483648\r\n", "BAD_FORMAT\r\n"),
        ("statsx\r\n", "BAD_FORMAT\r\n"),
        ("list-tubesx\r\n", "BAD_FORMAT\r\n"),
        ("peek-readyx\r\n", "BAD_FORMAT\r\n"),
        ("use \r\n", "BAD_FORMAT\r\n"),
        ("use -a\r\n", "BAD_FORMAT\r\n"),
        ("watch a b\r\n", "BAD_FORMAT\r\n"),
        ("use a%b\r\n", "BAD_FORMAT\r\n"),
        ("stats-tube -a\r\n", "BAD_FORMAT\r\n"),
        ("pause-tube default x\r\n", "BAD_FORMAT\r\n"),
        ("use a\0b\r\n", "BAD_FORMAT\r\n"),
        ("Stats\r\n", "UNKNOWN_COMMAND\r\n"),
        ("\r\n", "UNKNOWN_COMMAND\r\n"),
        ("hello world\r\n", "UNKNOWN_COMMAND\r\n"),
    ] {
        c.expect(cmd, reply);
    }
    // Tube names: 200 characters are fine, 201 are not.
    c.expect(
        format!("use {}\r\n", "a".repeat(200)),
        format!("USING {}\r\n", "a".repeat(200)),
    );
    c.expect(format!("use {}\r\n", "b".repeat(201)), "BAD_FORMAT\r\n");
    c.expect("use A-Za-z0-9+/;.$_()\r\n", "USING A-Za-z0-9+/;.$_()\r\n");
}

#[test]
fn line_length_limit() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    // 224 bytes with the CRLF is the longest line accepted.
    let ok = format!("use {}\r\n", "a".repeat(224 - 6));
    assert_eq!(ok.len(), 224);
    c.expect(&ok, "BAD_FORMAT\r\n"); // valid length, but the name is over 200
    let ok = format!("delete {}1\r\n", " ".repeat(224 - 10));
    assert_eq!(ok.len(), 224);
    c.expect(&ok, "NOT_FOUND\r\n");
    let long = format!("delete {}1\r\n", " ".repeat(225 - 10));
    c.expect(&long, "BAD_FORMAT\r\n");
    // Far longer lines are skipped to their end, then the next command runs.
    c.send(format!("{}\r\nlist-tube-used\r\n", "x".repeat(5000)));
    assert_eq!(c.reply(), b"BAD_FORMAT\r\n");
    assert_eq!(c.reply(), b"USING default\r\n");
    // An overlong line whose CRLF straddles a read boundary.
    c.send(format!("{}\r", "y".repeat(223)));
    std::thread::sleep(Duration::from_millis(50));
    c.send("\nlist-tube-used\r\n");
    assert_eq!(c.reply(), b"BAD_FORMAT\r\n");
    assert_eq!(c.reply(), b"USING default\r\n");
}

#[test]
fn put_bodies_and_errors() {
    let s = Server::start(&["-z", "10"]);
    let mut c = s.connect();
    // 0-byte, exactly -z bytes, binary with CR and LF inside.
    assert_eq!(put(&mut c, 0, 0, 1, b""), 1);
    assert_eq!(put(&mut c, 0, 0, 1, b"0123456789"), 2);
    assert_eq!(put(&mut c, 0, 0, 1, b"\r\n\0\xff\r\r\n\n"), 3);
    c.expect(
        "peek 3\r\n",
        b"FOUND 3 8\r\n\r\n\0\xff\r\r\n\n\r\n".as_slice(),
    );
    c.expect("peek 1\r\n", "FOUND 1 0\r\n\r\n");
    // One byte over -z: the body is skipped, then JOB_TOO_BIG.
    c.expect("put 0 0 1 11\r\n01234567890\r\n", "JOB_TOO_BIG\r\n");
    assert_eq!(c.stat("stats", "max-job-size"), "10");
    // A body without its CRLF.
    c.expect("put 0 0 1 2\r\nabc\r\n", "EXPECTED_CRLF\r\n");
    // The id of a failed put is used up, as in beanstalkd.
    assert_eq!(put(&mut c, 0, 0, 1, b"z"), 5);
    // Trailing garbage after the byte count.
    c.expect("put 0 0 1 1 x\r\na\r\n", "BAD_FORMAT\r\n");
    c.expect("put 0 0 1\r\n", "BAD_FORMAT\r\n");
    assert_eq!(c.stat("stats", "cmd-put"), "7");
    c.expect("list-tube-used\r\n", "USING default\r\n");
}

#[test]
fn a_bad_put_skips_its_body_only_after_a_plain_count() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    // beanstalkd's own test job_size_invalid: neither 4th field is a plain
    // number, so nothing is skipped and the next line is a command.
    c.send("put 0 0 0 10b\r\nput 0 0 0 --!@#$%^&&**()0b\r\nlist-tube-used\r\n");
    assert_eq!(c.reply(), b"BAD_FORMAT\r\n");
    assert_eq!(c.reply(), b"BAD_FORMAT\r\n");
    assert_eq!(c.reply(), b"USING default\r\n");
    // A plain count with garbage after it: its 10 bytes and CRLF are the
    // body, even when they look like a command.
    c.send("put 0 0 0 10 x\r\nstats-job1\r\nlist-tube-used\r\n");
    assert_eq!(c.reply(), b"BAD_FORMAT\r\n");
    assert_eq!(c.reply(), b"USING default\r\n");
    // A count that does not fit in 32 bits is no count.
    c.send("put x 0 0 4294967296\r\nlist-tube-used\r\n");
    assert_eq!(c.reply(), b"BAD_FORMAT\r\n");
    assert_eq!(c.reply(), b"USING default\r\n");
    // Unparsable numbers before a plain 4th field: the body is skipped.
    c.send("put x 0 0 3\r\nabc\r\nlist-tube-used\r\n");
    assert_eq!(c.reply(), b"BAD_FORMAT\r\n");
    assert_eq!(c.reply(), b"USING default\r\n");
    c.expect_silence(Duration::from_millis(50));
}

#[test]
fn pipelined_and_byte_by_byte() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send("put 0 0 1 3\r\nabc\r\nput 1 0 1 0\r\n\r\nuse x\r\nlist-tube-used\r\npeek 1\r\n");
    assert_eq!(c.reply(), b"INSERTED 1\r\n");
    assert_eq!(c.reply(), b"INSERTED 2\r\n");
    assert_eq!(c.reply(), b"USING x\r\n");
    assert_eq!(c.reply(), b"USING x\r\n");
    assert_eq!(c.reply(), b"FOUND 1 3\r\nabc\r\n");
    for b in b"put 0 0 1 4\r\nw\r\nx\r\nstats-job 3\r\n" {
        c.send([*b]);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(c.reply(), b"INSERTED 3\r\n");
    let stats = String::from_utf8(c.reply()).unwrap();
    assert!(
        stats.contains("\nid: 3\n") && stats.contains("\ntube: x\n"),
        "{stats}"
    );
}

#[test]
fn a_string_value_is_quoted_only_where_yaml_would_misread_it() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    // The names every client reads back (tests/clients.rs).
    for (name, quoted) in common::tube_names() {
        let shown = if quoted {
            format!("\"{name}\"")
        } else {
            name.to_string()
        };
        c.expect(
            format!("use {name}\r\n"),
            format!("USING {name}\r\n").as_str(),
        );
        let id = put(&mut c, 0, 0, 60, b"x");
        let job = String::from_utf8(c.ask(format!("stats-job {id}\r\n"))).unwrap();
        assert!(job.contains(&format!("\ntube: {shown}\n")), "{name}: {job}");
        let tube = String::from_utf8(c.ask(format!("stats-tube {name}\r\n"))).unwrap();
        assert!(
            tube.contains(&format!("\r\n---\nname: {shown}\n")),
            "{name}: {tube}"
        );
        // The lists are never quoted, in 1.12 and 1.13 alike.
        let list = String::from_utf8(c.ask("list-tubes\r\n")).unwrap();
        assert!(list.contains(&format!("\n- {name}\n")), "{name}: {list}");
    }
}

#[test]
fn stats_fields_in_order() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    let reply = String::from_utf8(c.ask("stats\r\n")).unwrap();
    let keys: Vec<&str> = reply
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(": "))
        .map(|(k, _)| k)
        .collect();
    let expected = "current-jobs-urgent current-jobs-ready current-jobs-reserved current-jobs-delayed \
        current-jobs-buried cmd-put cmd-peek cmd-peek-ready cmd-peek-delayed cmd-peek-buried cmd-reserve \
        cmd-reserve-with-timeout cmd-delete cmd-release cmd-use cmd-watch cmd-ignore cmd-bury cmd-kick \
        cmd-touch cmd-stats cmd-stats-job cmd-stats-tube cmd-list-tubes cmd-list-tube-used \
        cmd-list-tubes-watched cmd-pause-tube job-timeouts total-jobs max-job-size current-tubes \
        current-connections current-producers current-workers current-waiting total-connections pid \
        version rusage-utime rusage-stime uptime binlog-oldest-index binlog-current-index \
        binlog-records-migrated binlog-records-written binlog-max-size draining id hostname os platform \
        sprout-version role replicas epoch";
    assert_eq!(keys, expected.split_whitespace().collect::<Vec<_>>());
    let (head, yaml) = reply.split_once("\r\n").unwrap();
    assert_eq!(head, format!("OK {}", yaml.len() - 2));
    assert!(yaml.ends_with("\n\r\n"));
    let m = c.yaml("stats");
    assert_eq!(m["pid"], s.pid().to_string());
    assert_eq!(m["cmd-stats"], "2");
    assert_eq!(m["current-connections"], "1");
    assert_eq!(m["draining"], "false");
    assert_eq!(m["id"].len(), 16);
    // uname's fields: bare where YAML reads them as strings (x86_64), in
    // quotes where it would not (the kernel version starts with '#').
    let uname = |what: &str| {
        let out = std::process::Command::new("uname")
            .arg(what)
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    };
    assert!(
        reply.contains(&format!("\nplatform: {}\n", uname("-m"))),
        "{reply}"
    );
    assert!(
        reply.contains(&format!("\nos: \"{}\"\n", uname("-v"))),
        "{reply}"
    );
    assert_eq!(m["hostname"], uname("-n"));
    // The protocol's version where beanstalkd gives its own; sprout's last.
    assert!(reply.contains("\nversion: \"1.13\"\n"), "{reply}");
    assert!(
        reply.ends_with(&format!(
            "\nsprout-version: \"{}\"\nrole: primary\nreplicas: 0\nepoch: 0\n\r\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{reply}"
    );
    let rusage = &m["rusage-utime"];
    assert_eq!(
        rusage.split_once('.').map(|(_, f)| f.len()),
        Some(6),
        "{rusage}"
    );
    // Counters for producers and workers.
    put(&mut c, 2000, 0, 60, b"x");
    c.expect("reserve\r\n", "RESERVED 1 1\r\nx\r\n");
    let m = c.yaml("stats");
    assert_eq!(
        (
            m["current-producers"].as_str(),
            m["current-workers"].as_str()
        ),
        ("1", "1")
    );
    assert_eq!(m["current-jobs-urgent"], "0");
}

#[test]
fn drain_mode_on_sigusr1() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    put(&mut c, 0, 0, 60, b"before");
    s.signal(libc::SIGUSR1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while c.stat("stats", "draining") != "true" {
        assert!(
            std::time::Instant::now() < deadline,
            "never started draining"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.expect("put 0 0 1 1\r\nx\r\n", "DRAINING\r\n");
    c.expect("reserve\r\n", "RESERVED 1 6\r\nbefore\r\n");
}

#[test]
fn back_pressure_keeps_serving_others() {
    let s = Server::start(&[]);
    let mut greedy = s.connect();
    // Ask for far more output than any buffer holds, without reading.
    let burst = "stats\r\n".repeat(20_000);
    greedy.send(&burst);
    let mut other = s.connect();
    other.expect("list-tube-used\r\n", "USING default\r\n");
    // All replies still arrive, in order, once the client reads.
    for _ in 0..20_000 {
        let r = greedy.reply();
        assert!(r.starts_with(b"OK "));
    }
}

#[test]
fn sigterm_stops_cleanly() {
    let mut s = Server::start(&[]);
    let mut c = s.connect();
    c.expect("list-tube-used\r\n", "USING default\r\n");
    s.signal(libc::SIGTERM);
    let st = s
        .wait_exit(Duration::from_secs(5))
        .expect("exits on SIGTERM");
    assert!(st.success(), "{st:?}");
    c.expect_closed();
}

/// One connection watches at most 10,000 tubes (doc/security.md): one more
/// is answered OUT_OF_MEMORY, as beanstalkd answers a watch it cannot add,
/// and the connection stays in step.
#[test]
fn a_watch_past_the_bound_is_refused_and_the_connection_carries_on() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    // The default tube is the first of the 10,000.
    let cmds: String = (1..10_000).map(|i| format!("watch w{i}\r\n")).collect();
    c.send(cmds);
    for i in 2..=10_000 {
        assert_eq!(c.line(), format!("WATCHING {i}\r\n"));
    }
    c.expect("watch one-more\r\n", "OUT_OF_MEMORY\r\n");
    // Watching one already watched is no addition; ignoring makes room.
    c.expect("watch w5\r\n", "WATCHING 10000\r\n");
    c.expect("ignore w5\r\n", "WATCHING 9999\r\n");
    c.expect("watch one-more\r\n", "WATCHING 10000\r\n");
    c.expect("list-tube-used\r\n", "USING default\r\n");
    assert!(!String::from_utf8_lossy(&c.ask("stats-tube nope\r\n")).starts_with("OK"));
}
