//! The command parser: one command line (without its CRLF) in, one typed
//! [`Command`] or [`ParseError`] out. No I/O, no state, no clock.
//!
//! beanstalkd matches commands by case-sensitive prefix, in a fixed order,
//! and parses numbers with C library rules; the quirks that follow from that
//! (`quitxyz` quits, `pause-tubefoo 1` pauses `foo`, `kick -1` kicks
//! 2^32-1 jobs, `reserve ` is BAD_FORMAT) are reproduced here on purpose,
//! because clients and scripts see them.

/// The longest command line, CRLF included, that beanstalkd accepts.
pub const MAX_LINE: usize = 224;

/// The longest tube name.
pub const MAX_TUBE_NAME: usize = 200;

/// Commands whose use is counted in `stats` (`cmd-*`), plus the two that
/// beanstalkd counts without ever showing the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Peek,
    PeekReady,
    PeekDelayed,
    PeekBuried,
    Reserve,
    ReserveWithTimeout,
    Delete,
    Release,
    Use,
    Watch,
    Ignore,
    Bury,
    Kick,
    Touch,
    Stats,
    StatsJob,
    StatsTube,
    ListTubes,
    ListTubeUsed,
    ListTubesWatched,
    PauseTube,
    ReserveJob,
    KickJob,
}

impl Op {
    pub const COUNT: usize = 24;

    /// Every op, in `stats` order, the two it never shows last.
    pub const ALL: [Op; Op::COUNT] = [
        Op::Put,
        Op::Peek,
        Op::PeekReady,
        Op::PeekDelayed,
        Op::PeekBuried,
        Op::Reserve,
        Op::ReserveWithTimeout,
        Op::Delete,
        Op::Release,
        Op::Use,
        Op::Watch,
        Op::Ignore,
        Op::Bury,
        Op::Kick,
        Op::Touch,
        Op::Stats,
        Op::StatsJob,
        Op::StatsTube,
        Op::ListTubes,
        Op::ListTubeUsed,
        Op::ListTubesWatched,
        Op::PauseTube,
        Op::ReserveJob,
        Op::KickJob,
    ];

    /// How many of [`ALL`](Self::ALL) `stats` shows (`cmd-*`).
    pub const SHOWN: usize = 22;

    /// The command's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Peek => "peek",
            Op::PeekReady => "peek-ready",
            Op::PeekDelayed => "peek-delayed",
            Op::PeekBuried => "peek-buried",
            Op::Reserve => "reserve",
            Op::ReserveWithTimeout => "reserve-with-timeout",
            Op::Delete => "delete",
            Op::Release => "release",
            Op::Use => "use",
            Op::Watch => "watch",
            Op::Ignore => "ignore",
            Op::Bury => "bury",
            Op::Kick => "kick",
            Op::Touch => "touch",
            Op::Stats => "stats",
            Op::StatsJob => "stats-job",
            Op::StatsTube => "stats-tube",
            Op::ListTubes => "list-tubes",
            Op::ListTubeUsed => "list-tube-used",
            Op::ListTubesWatched => "list-tubes-watched",
            Op::PauseTube => "pause-tube",
            Op::ReserveJob => "reserve-job",
            Op::KickJob => "kick-job",
        }
    }
}

/// A parsed command. Tube names borrow from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    Put {
        pri: u32,
        delay: u32,
        ttr: u32,
        bytes: u32,
    },
    Peek(u64),
    PeekReady,
    PeekDelayed,
    PeekBuried,
    Reserve,
    ReserveWithTimeout(u32),
    ReserveJob(u64),
    Delete(u64),
    Release {
        id: u64,
        pri: u32,
        delay: u32,
    },
    Bury {
        id: u64,
        pri: u32,
    },
    Touch(u64),
    Kick(u32),
    KickJob(u64),
    StatsJob(u64),
    StatsTube(&'a str),
    Stats,
    Use(&'a str),
    Watch(&'a str),
    Ignore(&'a str),
    ListTubes,
    ListTubeUsed,
    ListTubesWatched,
    PauseTube {
        name: &'a str,
        delay: u32,
    },
    Quit,
}

impl Command<'_> {
    /// The stats counter this command bumps once it has parsed.
    pub fn op(&self) -> Option<Op> {
        Some(match self {
            Command::Put { .. } => Op::Put,
            Command::Peek(_) => Op::Peek,
            Command::PeekReady => Op::PeekReady,
            Command::PeekDelayed => Op::PeekDelayed,
            Command::PeekBuried => Op::PeekBuried,
            Command::Reserve => Op::Reserve,
            Command::ReserveWithTimeout(_) => Op::ReserveWithTimeout,
            Command::ReserveJob(_) => Op::ReserveJob,
            Command::Delete(_) => Op::Delete,
            Command::Release { .. } => Op::Release,
            Command::Bury { .. } => Op::Bury,
            Command::Touch(_) => Op::Touch,
            Command::Kick(_) => Op::Kick,
            Command::KickJob(_) => Op::KickJob,
            Command::StatsJob(_) => Op::StatsJob,
            Command::StatsTube(_) => Op::StatsTube,
            Command::Stats => Op::Stats,
            Command::Use(_) => Op::Use,
            Command::Watch(_) => Op::Watch,
            Command::Ignore(_) => Op::Ignore,
            Command::ListTubes => Op::ListTubes,
            Command::ListTubeUsed => Op::ListTubeUsed,
            Command::ListTubesWatched => Op::ListTubesWatched,
            Command::PauseTube { .. } => Op::PauseTube,
            Command::Quit => return None,
        })
    }
}

/// Why a line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// `BAD_FORMAT`. `counted` is the counter beanstalkd bumps anyway (its
    /// numbers parsed, a later check failed). `body` is the length of a put
    /// body that follows the bad line and must be skipped, when it can be
    /// known (see doc/compatibility.md: beanstalkd runs it as commands).
    BadFormat {
        counted: Option<Op>,
        body: Option<u32>,
    },
    /// `UNKNOWN_COMMAND`.
    UnknownCommand,
    /// `JOB_TOO_BIG`, sent only after `bytes + 2` body bytes are skipped.
    /// Counted as a put.
    JobTooBig { bytes: u32 },
}

const BAD: ParseError = ParseError::BadFormat {
    counted: None,
    body: None,
};

/// Parses one command line, CRLF removed. `max_job_size` is `-z`.
pub fn parse(line: &[u8], max_job_size: u32) -> Result<Command<'_>, ParseError> {
    if memchr::memchr(0, line).is_some() {
        return Err(BAD);
    }
    // Prefixes are tried in beanstalkd's lookup order; grouping them by
    // first letter keeps that order among any two that could both match.
    // `exact` commands take no argument and must match the whole line.
    macro_rules! after {
        ($p:expr) => {
            line.strip_prefix($p.as_bytes())
        };
    }
    let exact = |cmd: Command<'static>, p: &str| -> Option<Result<Command<'static>, ParseError>> {
        line.starts_with(p.as_bytes()).then_some({
            if line.len() == p.len() {
                Ok(cmd)
            } else {
                Err(BAD)
            }
        })
    };
    match line.first() {
        Some(b'p') => {
            if let Some(rest) = after!("put ") {
                return parse_put(rest, max_job_size);
            }
            if let Some(rest) = after!("peek ") {
                return one_id(rest).map(Command::Peek);
            }
            for (cmd, p) in [
                (Command::PeekReady, "peek-ready"),
                (Command::PeekDelayed, "peek-delayed"),
                (Command::PeekBuried, "peek-buried"),
            ] {
                if let Some(r) = exact(cmd, p) {
                    return r;
                }
            }
            if let Some(rest) = after!("pause-tube") {
                return parse_pause_tube(rest);
            }
        }
        Some(b'r') => {
            if let Some(rest) = after!("reserve-with-timeout ") {
                // 1.13: 0..=i32::MAX, and anything after the number is ignored.
                let (n, _) = leading_u64(rest).ok_or(BAD)?;
                return match u32::try_from(n) {
                    Ok(n) if n <= i32::MAX as u32 => Ok(Command::ReserveWithTimeout(n)),
                    _ => Err(BAD),
                };
            }
            if let Some(rest) = after!("reserve-job ") {
                return one_id(rest).map(Command::ReserveJob);
            }
            if let Some(r) = exact(Command::Reserve, "reserve") {
                return r;
            }
            if let Some(rest) = after!("release ") {
                let (id, rest) = leading_u64(rest).ok_or(BAD)?;
                let (pri, rest) = leading_u32(rest).ok_or(BAD)?;
                let delay = last_u32(rest)?;
                return Ok(Command::Release { id, pri, delay });
            }
        }
        Some(b'd') => {
            if let Some(rest) = after!("delete ") {
                return one_id(rest).map(Command::Delete);
            }
        }
        Some(b'b') => {
            if let Some(rest) = after!("bury ") {
                let (id, rest) = leading_u64(rest).ok_or(BAD)?;
                let pri = last_u32(rest)?;
                return Ok(Command::Bury { id, pri });
            }
        }
        Some(b'k') => {
            if let Some(rest) = after!("kick ") {
                return c_strtoul(rest).map(|n| Command::Kick(n as u32)).ok_or(BAD);
            }
            if let Some(rest) = after!("kick-job ") {
                return one_id(rest).map(Command::KickJob);
            }
        }
        Some(b't') => {
            if let Some(rest) = after!("touch ") {
                return one_id(rest).map(Command::Touch);
            }
        }
        Some(b's') => {
            if let Some(rest) = after!("stats-job ") {
                return one_id(rest).map(Command::StatsJob);
            }
            if let Some(rest) = after!("stats-tube ") {
                return tube_name(rest).map(Command::StatsTube);
            }
            if let Some(r) = exact(Command::Stats, "stats") {
                return r;
            }
        }
        Some(b'u') => {
            if let Some(rest) = after!("use ") {
                return tube_name(rest).map(Command::Use);
            }
        }
        Some(b'w') => {
            if let Some(rest) = after!("watch ") {
                return tube_name(rest).map(Command::Watch);
            }
        }
        Some(b'i') => {
            if let Some(rest) = after!("ignore ") {
                return tube_name(rest).map(Command::Ignore);
            }
        }
        Some(b'l') => {
            for (cmd, p) in [
                (Command::ListTubesWatched, "list-tubes-watched"),
                (Command::ListTubeUsed, "list-tube-used"),
                (Command::ListTubes, "list-tubes"),
            ] {
                if let Some(r) = exact(cmd, p) {
                    return r;
                }
            }
        }
        Some(b'q') if line.starts_with(b"quit") => return Ok(Command::Quit),
        _ => {}
    }
    Err(ParseError::UnknownCommand)
}

fn parse_put(rest: &[u8], max_job_size: u32) -> Result<Command<'static>, ParseError> {
    let nums = (|| {
        let (pri, rest) = leading_u32(rest)?;
        let (delay, rest) = leading_u32(rest)?;
        let (ttr, rest) = leading_u32(rest)?;
        let (bytes, rest) = leading_u32(rest)?;
        Some((pri, delay, ttr, bytes, rest))
    })();
    let Some((pri, delay, ttr, bytes, trailing)) = nums else {
        return Err(ParseError::BadFormat {
            counted: None,
            body: guess_body_len(rest),
        });
    };
    if bytes > max_job_size {
        return Err(ParseError::JobTooBig { bytes });
    }
    if !trailing.is_empty() {
        // The count is only trusted when it is a whole field: `10b` is not
        // a plain number, so nothing is skipped (beanstalkd's own test
        // `job_size_invalid` sends the next command straight after it).
        return Err(ParseError::BadFormat {
            counted: Some(Op::Put),
            body: trailing.starts_with(b" ").then_some(bytes),
        });
    }
    Ok(Command::Put {
        pri,
        delay,
        ttr,
        bytes,
    })
}

/// For a put line whose numbers do not parse, the body length the client
/// most likely meant: the fourth space-separated field, when there are at
/// least four and it is a plain number. Without it no skip is possible.
fn guess_body_len(rest: &[u8]) -> Option<u32> {
    let fields: Vec<&[u8]> = rest
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .collect();
    if fields.len() < 4 {
        return None;
    }
    let f = fields[3];
    if f.is_empty() || f.len() > 10 || !f.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(f).ok()?.parse().ok()
}

fn parse_pause_tube(rest: &[u8]) -> Result<Command<'_>, ParseError> {
    let rest = skip_spaces(rest);
    let len = rest.iter().take_while(|&&b| is_name_char(b)).count();
    if len == 0 {
        return Err(BAD);
    }
    let (name, rest) = rest.split_at(len);
    let delay = last_u32(rest)?;
    // Counted from here on, even if the name turns out to be invalid.
    if !valid_tube_name(name) {
        return Err(ParseError::BadFormat {
            counted: Some(Op::PauseTube),
            body: None,
        });
    }
    let name = std::str::from_utf8(name).map_err(|_| BAD)?;
    Ok(Command::PauseTube { name, delay })
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-+/;.$_()".contains(&b)
}

/// 1..=200 name characters, not starting with `-`.
pub fn valid_tube_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TUBE_NAME
        && name[0] != b'-'
        && name.iter().all(|&b| is_name_char(b))
}

fn tube_name(rest: &[u8]) -> Result<&str, ParseError> {
    if !valid_tube_name(rest) {
        return Err(BAD);
    }
    std::str::from_utf8(rest).map_err(|_| BAD)
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

/// beanstalkd's `read_u64` with an end pointer: spaces, then at least one
/// digit; returns the number and what follows it.
fn leading_u64(s: &[u8]) -> Option<(u64, &[u8])> {
    leading_digits(skip_spaces(s))
}

fn leading_u32(s: &[u8]) -> Option<(u32, &[u8])> {
    let (v, rest) = leading_u64(s)?;
    Some((u32::try_from(v).ok()?, rest))
}

/// A number that must end the line.
fn one_id(s: &[u8]) -> Result<u64, ParseError> {
    match leading_u64(s) {
        Some((v, [])) => Ok(v),
        _ => Err(BAD),
    }
}

fn last_u32(s: &[u8]) -> Result<u32, ParseError> {
    match leading_u32(s) {
        Some((v, [])) => Ok(v),
        _ => Err(BAD),
    }
}

/// C `strtoul` as `kick` uses it: leading whitespace, an optional sign,
/// digits, junk ignored; a negative number wraps; no digits or an overflow
/// of 64 bits fails.
fn c_strtoul(s: &[u8]) -> Option<u64> {
    let ws = s
        .iter()
        .take_while(|&&b| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))
        .count();
    let mut s = &s[ws..];
    let mut negative = false;
    if let Some((&sign, rest)) = s.split_first()
        && (sign == b'-' || sign == b'+')
    {
        negative = sign == b'-';
        s = rest;
    }
    let (v, _) = leading_digits(s)?;
    Some(if negative { v.wrapping_neg() } else { v })
}

fn leading_digits(s: &[u8]) -> Option<(u64, &[u8])> {
    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let mut v: u64 = 0;
    for &d in &s[..n] {
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some((v, &s[n..]))
}

#[cfg(test)]
mod tests {
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
}
