//! The parser against beanstalkd's behaviour, quirks included.

use super::command::BAD;
use super::*;

fn p(s: &str) -> Result<Command<'_>, ParseError> {
    parse(s.as_bytes(), 65535)
}

const BF: Result<Command<'static>, ParseError> = Err(BAD);

#[test]
fn commands() {
    assert_eq!(
        p("put 1 2 3 4"),
        Ok(Command::Put {
            pri: 1,
            delay: 2,
            ttr: 3,
            bytes: 4
        })
    );
    assert_eq!(p("peek 7"), Ok(Command::Peek(7)));
    assert_eq!(p("reserve"), Ok(Command::Reserve));
    assert_eq!(
        p("reserve-with-timeout 5"),
        Ok(Command::ReserveWithTimeout(5))
    );
    assert_eq!(
        p("release 1 2 3"),
        Ok(Command::Release {
            id: 1,
            pri: 2,
            delay: 3
        })
    );
    assert_eq!(p("bury 1 2"), Ok(Command::Bury { id: 1, pri: 2 }));
    assert_eq!(p("use foo"), Ok(Command::Use("foo")));
    assert_eq!(p("list-tubes-watched"), Ok(Command::ListTubesWatched));
    assert_eq!(p("list-tube-used"), Ok(Command::ListTubeUsed));
    assert_eq!(p("list-tubes"), Ok(Command::ListTubes));
    assert_eq!(
        p("pause-tube foo 10"),
        Ok(Command::PauseTube {
            name: "foo",
            delay: 10
        })
    );
    assert_eq!(p("stats-tube a"), Ok(Command::StatsTube("a")));
    assert_eq!(p("stats-job 3"), Ok(Command::StatsJob(3)));
    assert_eq!(p("kick-job 3"), Ok(Command::KickJob(3)));
    assert_eq!(p("reserve-job 3"), Ok(Command::ReserveJob(3)));
    assert_eq!(p("touch 3"), Ok(Command::Touch(3)));
}

#[test]
fn prefix_quirks() {
    assert_eq!(p("quitxyz"), Ok(Command::Quit));
    assert_eq!(
        p("pause-tubefoo 1"),
        Ok(Command::PauseTube {
            name: "foo",
            delay: 1
        })
    );
    assert_eq!(p("reservex"), BF);
    assert_eq!(p("reserve "), BF);
    assert_eq!(p("reserve-with-timeout"), BF);
    assert_eq!(p("statsx"), BF);
    assert_eq!(p("stats-foo"), BF);
    assert_eq!(p("peek-readyx"), BF);
    assert_eq!(p("list-tubesx"), BF);
    assert_eq!(p("delete"), Err(ParseError::UnknownCommand));
    assert_eq!(p("use"), Err(ParseError::UnknownCommand));
    assert_eq!(p("Stats"), Err(ParseError::UnknownCommand));
    assert_eq!(p(""), Err(ParseError::UnknownCommand));
}

#[test]
fn numbers() {
    assert_eq!(p("delete  1"), Ok(Command::Delete(1)));
    assert_eq!(p("delete 1 "), BF);
    assert_eq!(p("delete +1"), BF);
    assert_eq!(p("delete "), BF);
    assert_eq!(
        p("delete 18446744073709551615"),
        Ok(Command::Delete(u64::MAX))
    );
    assert_eq!(p("delete 18446744073709551616"), BF);
    assert_eq!(p("bury 1 4294967296"), BF);
    assert_eq!(p("release 1 2"), BF);
    assert_eq!(p("kick -1"), Ok(Command::Kick(u32::MAX)));
    assert_eq!(p("kick 3abc"), Ok(Command::Kick(3)));
    assert_eq!(p("kick \t5"), Ok(Command::Kick(5)));
    assert_eq!(p("kick 4294967297"), Ok(Command::Kick(1)));
    assert_eq!(p("kick 99999999999999999999"), BF);
    assert_eq!(p("kick "), BF);
    assert_eq!(p("kick x"), BF);
    assert_eq!(
        p("reserve-with-timeout 0 junk"),
        Ok(Command::ReserveWithTimeout(0))
    );
    assert_eq!(
        p("reserve-with-timeout  1x"),
        Ok(Command::ReserveWithTimeout(1))
    );
    assert_eq!(
        p("reserve-with-timeout 2147483647"),
        Ok(Command::ReserveWithTimeout(i32::MAX as u32))
    );
    assert_eq!(p("reserve-with-timeout 2147483648"), BF);
    assert_eq!(p("reserve-with-timeout -1"), BF);
    assert_eq!(p("reserve-with-timeout "), BF);
}

#[test]
fn tube_names() {
    assert_eq!(p("use "), BF);
    assert_eq!(p("use -a"), BF);
    assert_eq!(p("use a-"), Ok(Command::Use("a-")));
    assert_eq!(p("watch a b"), BF);
    assert_eq!(p("use a%b"), BF);
    assert_eq!(
        p("use A-Za-z0-9+/;.$_()"),
        Ok(Command::Use("A-Za-z0-9+/;.$_()"))
    );
    let long = format!("use {}", "a".repeat(200));
    assert!(p(&long).is_ok());
    let too_long = format!("use {}", "a".repeat(201));
    assert_eq!(p(&too_long), BF);
    assert_eq!(parse(b"use a\0b", 100), BF);
}

#[test]
fn pause_tube_counting() {
    let counted = Err(ParseError::BadFormat {
        counted: Some(Op::PauseTube),
        body: None,
    });
    assert_eq!(p("pause-tube -x 5"), counted);
    assert_eq!(p("pause-tube default x"), BF);
    assert_eq!(p("pause-tube"), BF);
    assert_eq!(p("pause-tube default 5 "), BF);
    assert_eq!(p("pause-tube a%b 5"), BF);
    assert_eq!(
        p("pause-tube default  5"),
        Ok(Command::PauseTube {
            name: "default",
            delay: 5
        })
    );
}

#[test]
fn put_errors() {
    assert_eq!(
        parse(b"put 0 0 1 11", 10),
        Err(ParseError::JobTooBig { bytes: 11 })
    );
    assert!(parse(b"put 0 0 1 10", 10).is_ok());
    // The size check comes before the trailing-garbage check.
    assert_eq!(
        parse(b"put 0 0 1 70000 junk", 65535),
        Err(ParseError::JobTooBig { bytes: 70000 })
    );
    assert_eq!(
        p("put 0 0 1 1 x"),
        Err(ParseError::BadFormat {
            counted: Some(Op::Put),
            body: Some(1)
        })
    );
    assert_eq!(
        p("put -1 0 1 5"),
        Err(ParseError::BadFormat {
            counted: None,
            body: Some(5)
        })
    );
    assert_eq!(p("put 0 0 1"), BF);
    // The body is skipped only when the 4th field is all digits and
    // fits in 32 bits; a number followed by anything else is no count.
    let counted = |body| {
        Err(ParseError::BadFormat {
            counted: Some(Op::Put),
            body,
        })
    };
    assert_eq!(p("put 0 0 0 10b"), counted(None));
    assert_eq!(p("put 0 0 0 10 "), counted(Some(10)));
    assert_eq!(p("put 0 0 0 10 b"), counted(Some(10)));
    assert_eq!(p("put 0 0 0 10\tb"), counted(None));
    assert_eq!(
        p("put 0 0 0 --!@#$%^&&**()0b"),
        Err(ParseError::BadFormat {
            counted: None,
            body: None
        })
    );
    assert_eq!(
        p("put x 0 0 12 b"),
        Err(ParseError::BadFormat {
            counted: None,
            body: Some(12)
        })
    );
    assert_eq!(
        p("put x 0 0 12b"),
        Err(ParseError::BadFormat {
            counted: None,
            body: None
        })
    );
    assert_eq!(
        p("put x 0 0 4294967296"),
        Err(ParseError::BadFormat {
            counted: None,
            body: None
        })
    );
    assert_eq!(
        p("put 4294967296 0 1 2"),
        Err(ParseError::BadFormat {
            counted: None,
            body: Some(2)
        })
    );
}
