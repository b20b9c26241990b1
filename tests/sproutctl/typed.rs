//! sproutctl as people type it: global flags on either side of the
//! subcommand, addresses that cannot be addresses, several servers with
//! one down, a missing tube alike everywhere, argh's messages, a body read
//! from a terminal, and call's reply tube gone once the call is over.

use std::time::Duration;

use super::common::{Server, free_port, put};
use super::tmux::Tmux;
use super::work::{Worker, eventually};
use super::{beanstalkd, ctl, ctl_bin, json, text};

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

#[test]
fn global_flags_work_before_or_after_the_subcommand() {
    let s = Server::start(&[]);
    let a = addr(s.port);
    put(&mut s.connect(), 0, 0, 60, b"x");
    for args in [
        vec!["--json", "--server", &a, "stats"],
        vec!["stats", "--json", "--server", &a],
        vec!["stats", &format!("--server={a}"), "--json"],
    ] {
        let out = ctl(&[], &args, b"");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let v = json(&out);
        assert_eq!(
            (v["server"].as_str(), v["current-jobs-ready"].as_u64()),
            (Some(a.as_str()), Some(1))
        );
    }
    // After `--` everything is the command's, --json included.
    let out = ctl(
        &[],
        &[
            "work", "--count", "1", "--server", &a, "--", "echo", "--json",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("] --json\n"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_address_that_cannot_be_one_is_a_usage_error() {
    for bad in [
        "127.0.0.1",
        ":99999",
        "localhost:0",
        "::1:11300",
        "host:port",
    ] {
        let out = ctl(&[], &["--server", bad, "stats"], b"");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains("HOST:PORT") && !err.contains("cannot reach"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn with_one_server_down_the_others_answer_and_the_status_says_so() {
    let s = Server::start(&[]);
    let (a, gone) = (addr(s.port), addr(free_port()));
    let mut c = s.connect();
    c.expect("use t\r\n", "USING t\r\n");
    for _ in 0..4 {
        put(&mut c, 0, 0, 60, b"x");
    }
    let both = [s.port, gone.rsplit_once(':').unwrap().1.parse().unwrap()];
    let reach = format!("cannot reach {gone}");

    let out = ctl(&both, &["stats", "t"], b"");
    assert_eq!(out.status.code(), Some(69));
    assert!(
        text(&out.stdout).starts_with(&format!("# {a}\nname")),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stderr).contains(&reach), "{}", text(&out.stderr));
    let out = ctl(&both, &["--json", "stats"], b"");
    assert_eq!(out.status.code(), Some(69));
    let v = json(&out);
    assert_eq!(
        (v[0]["server"].as_str(), v[0]["current-jobs-ready"].as_u64()),
        (Some(a.as_str()), Some(4))
    );
    assert_eq!(v[1]["server"].as_str(), Some(gone.as_str()));
    assert!(v[1]["error"].as_str().unwrap().contains(&reach));

    let out = ctl(&both, &["tubes"], b"");
    assert_eq!(out.status.code(), Some(69));
    assert!(
        text(&out.stdout)
            .lines()
            .any(|l| l.split_whitespace().take(3).eq([a.as_str(), "t", "4"])),
        "{}",
        text(&out.stdout)
    );
    let v = json(&ctl(&both, &["tubes", "--json"], b""));
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|t| t["server"].is_string()),
        "{v}"
    );

    let out = ctl(&both, &["put", "--lines", "--tube", "t"], b"5\n6\n");
    assert_eq!(out.status.code(), Some(69));
    assert_eq!(text(&out.stdout), "5\n6\n");
    assert!(text(&out.stderr).contains(&reach), "{}", text(&out.stderr));
    // Two lines: the turn reaches both servers whichever comes first (a
    // server never needed is never tried, so never named).
    let v = json(&ctl(
        &both,
        &["--json", "put", "--lines", "--tube", "t"],
        b"7\n8\n",
    ));
    assert_eq!(
        (v[0]["server"].as_str(), v[0]["put"].as_u64()),
        (Some(a.as_str()), Some(2))
    );
    assert_eq!(v[1]["server"].as_str(), Some(gone.as_str()));
    assert!(v[1]["error"].is_string(), "{v}");

    let out = ctl(&both, &["kick", "--tube", "t", "9"], b"");
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(69), format!("{a}: kicked 0\n"))
    );
    let out = ctl(&both, &["flush", "t", "--yes"], b"");
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(69), format!("{a}: deleted 8\n"))
    );
    assert!(text(&out.stderr).contains(&reach), "{}", text(&out.stderr));
    assert_eq!(c.stat("stats-tube t", "current-jobs-ready"), "0");
}

fn a_missing_tube_is_the_same_everywhere(s: &Server) {
    let expected = format!("sproutctl: no tube nosuch on {}\n", addr(s.port));
    for args in [
        &["flush", "nosuch", "--yes"][..],
        &["kick", "--tube", "nosuch", "5"],
        &["pause", "nosuch", "5"],
        &["stats", "nosuch"],
    ] {
        let out = ctl(&[s.port], args, b"");
        assert_eq!(
            (out.status.code(), text(&out.stdout), text(&out.stderr)),
            (Some(3), String::new(), expected.clone()),
            "{args:?}"
        );
    }
    // Asking did not make it.
    assert!(!text(&s.connect().ask("list-tubes\r\n")).contains("nosuch"));
}

#[test]
fn a_missing_tube_is_the_same_everywhere_on_sprout() {
    a_missing_tube_is_the_same_everywhere(&Server::start(&[]));
}

#[test]
fn a_missing_tube_is_the_same_everywhere_on_beanstalkd() {
    a_missing_tube_is_the_same_everywhere(&beanstalkd());
}

#[test]
fn usage_errors_are_sproutctls_and_point_at_the_subcommands_help() {
    let out = ctl(&[], &["flush", "--bogus", "t"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "sproutctl: Unrecognized argument: --bogus (see sproutctl flush --help)\n"
    );
    let out = ctl(&[], &["work", "--help"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains(" -- COMMAND [ARGS...]"),
        "{}",
        text(&out.stdout)
    );
    // A bad tube name: one message, whichever subcommand it went to.
    let bad = "no spaces";
    let mut messages = Vec::new();
    for args in [
        &["put", "--tube", bad, "x"][..],
        &["peek", "--ready", "--tube", bad],
        &["kick", "--tube", bad, "1"],
        &["pause", bad, "1"],
        &["flush", bad, "--yes"],
        &["stats", bad],
        &["work", "--tube", bad, "--", "true"],
        &["call", "--tube", bad, "x"],
    ] {
        let out = ctl(&[], args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        let pointer = format!(" (see sproutctl {} --help)\n", args[0]);
        let said = err
            .strip_suffix(&pointer)
            .unwrap_or_else(|| panic!("{args:?}: {err}"));
        messages.push(said.to_string());
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(messages[0].starts_with("sproutctl: \"no spaces\" is not a tube name: "));
}

#[test]
fn put_on_a_terminal_says_it_reads_stdin() {
    let s = Server::start(&[]);
    let tmux = Tmux::start(&format!(
        "{} --server {} put --tube tty",
        ctl_bin(),
        addr(s.port)
    ));
    tmux.until("the prompt", |sc| {
        sc.contains("reading the body from stdin; end it with Ctrl-D")
    });
    tmux.keys("hello");
    tmux.keys("Enter");
    tmux.keys("C-d");
    let mut c = s.connect();
    eventually(Duration::from_secs(10), "the job is put", || {
        c.ask("stats-tube tty\r\n").starts_with(b"OK")
    });
    c.expect("use tty\r\n", "USING tty\r\n");
    c.expect("peek-ready\r\n", "FOUND 1 6\r\nhello\n\r\n");
}

#[test]
fn calls_leave_no_reply_tube_behind() {
    let s = Server::start(&[]);
    let _w = Worker::start(s.port, &["--tube", "count_lines", "--", "wc", "-l"]);
    let mut c = s.connect();
    for input in [&b"a\nb\n"[..], b"c\n"] {
        let out = ctl(
            &[s.port],
            &["call", "--tube", "count_lines", "--timeout", "20"],
            input,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let lines = input.iter().filter(|&&b| b == b'\n').count();
        assert_eq!(text(&out.stdout).trim(), lines.to_string());
        // The worker stops using the reply tube just after it replies;
        // the caller may be done a moment before that.
        eventually(Duration::from_secs(5), "the reply tube goes", || {
            !text(&c.ask("list-tubes\r\n")).contains("sproutctl.reply")
        });
    }
}
