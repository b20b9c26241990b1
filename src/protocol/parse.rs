//! The parser itself: beanstalkd's prefix matching, in its order, and
//! number parsing by C library rules.

use super::command::BAD;
use super::*;

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
            if let Some(rest) = after!("sprout-") {
                return parse_role(rest);
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
/// sprout's replication commands, after `sprout-` (doc/ha.md): no
/// beanstalkd client sends these names.
fn parse_role(rest: &[u8]) -> Result<Command<'_>, ParseError> {
    if rest == b"demote" {
        return Ok(Command::Demote);
    }
    if rest == b"replicate" {
        return Ok(Command::Replicate { epoch: 0 });
    }
    if let Some(n) = rest.strip_prefix(b"replicate ") {
        return one_id(n).map(|epoch| Command::Replicate { epoch });
    }
    if let Some(n) = rest.strip_prefix(b"promote ") {
        return one_id(n).map(|epoch| Command::Promote { epoch });
    }
    if let Some(args) = rest.strip_prefix(b"follow ") {
        let sp = memchr::memchr(b' ', args).ok_or(BAD)?;
        let (addr, n) = (&args[..sp], &args[sp..]);
        let primary = std::str::from_utf8(addr).map_err(|_| BAD)?;
        if !valid_primary(primary) {
            return Err(BAD);
        }
        return one_id(n).map(|epoch| Command::Follow { primary, epoch });
    }
    Err(ParseError::UnknownCommand)
}

/// HOST:PORT, as `--replica-of` takes it: a host of name characters (or
/// a bracketed IPv6 address) and a port number.
pub fn valid_primary(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let host_ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}

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
