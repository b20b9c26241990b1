//! `call`: gearman's foreground job over any beanstalkd-protocol server.
//!
//! The caller makes a reply tube that only it watches, and puts its job
//! with a first line naming that tube; a `work` worker runs the command on
//! the rest of the body and puts the command's stdout and exit status into
//! the reply tube, on the same server, before it deletes the job. The
//! formats (doc/cli.md):
//!
//! ```text
//! request: \0sproutctl-call/1 REPLY-TUBE\n BODY
//! reply:   \0sproutctl-reply/1 STATUS [truncated]\n STDOUT
//! ```
//!
//! A body that does not start with the request line's exact form reaches
//! the command unchanged; the leading NUL keeps text jobs from ever
//! looking like one.

use std::io::Write;
use std::time::{Duration, Instant};

use argh::FromArgs;
use sprout::protocol::valid_tube_name;

use crate::client::{Error, Reserved};
use crate::servers::Servers;
use crate::{Ctx, exit};

const REQUEST: &[u8] = b"\0sproutctl-call/1 ";
const REPLY: &[u8] = b"\0sproutctl-reply/1 ";

/// The reply tube and the body, if `job` is a call.
pub fn parse_request(job: &[u8]) -> Option<(&str, &[u8])> {
    let rest = job.strip_prefix(REQUEST)?;
    let nl = memchr::memchr(b'\n', rest)?;
    let tube = std::str::from_utf8(&rest[..nl]).ok()?;
    valid_tube_name(tube.as_bytes()).then_some((tube, &rest[nl + 1..]))
}

pub fn request(reply_tube: &str, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(REQUEST.len() + reply_tube.len() + 1 + body.len());
    v.extend_from_slice(REQUEST);
    v.extend_from_slice(reply_tube.as_bytes());
    v.push(b'\n');
    v.extend_from_slice(body);
    v
}

/// The reply for an exit status and stdout, cut to fit `max` bytes.
pub fn reply(status: i32, stdout: &[u8], max: usize) -> Vec<u8> {
    let head = |truncated: bool| {
        let mut h = REPLY.to_vec();
        h.extend_from_slice(status.to_string().as_bytes());
        if truncated {
            h.extend_from_slice(b" truncated");
        }
        h.push(b'\n');
        h
    };
    let mut v = head(false);
    if v.len() + stdout.len() > max {
        v = head(true);
        let room = max.saturating_sub(v.len());
        v.extend_from_slice(&stdout[..room.min(stdout.len())]);
    } else {
        v.extend_from_slice(stdout);
    }
    v
}

/// (status, truncated, stdout) of a reply.
pub fn parse_reply(job: &[u8]) -> Option<(i32, bool, &[u8])> {
    let rest = job.strip_prefix(REPLY)?;
    let nl = memchr::memchr(b'\n', rest)?;
    let head = std::str::from_utf8(&rest[..nl]).ok()?;
    let mut words = head.split(' ');
    let status = words.next()?.parse().ok()?;
    let truncated = words.next() == Some("truncated");
    Some((status, truncated, &rest[nl + 1..]))
}

#[derive(FromArgs)]
#[argh(subcommand, name = "call")]
/// Put a job, wait for a `work` worker to run it, print the command's
/// output and exit with its status.
pub struct CallArgs {
    /// tube the workers watch
    #[argh(option)]
    tube: String,
    /// seconds to wait for the result (default 0: for ever)
    #[argh(option, default = "0")]
    timeout: u64,
    /// priority (default 1024)
    #[argh(option, default = "1024")]
    pri: u32,
    /// seconds a worker may hold the job between touches (default 60)
    #[argh(option, default = "60")]
    ttr: u32,
    /// the body; "-" or none reads stdin
    #[argh(positional)]
    body: Option<String>,
}

pub fn run(ctx: &Ctx, a: CallArgs) -> i32 {
    if let Err(s) = crate::args::check_tube(&a.tube) {
        return s;
    }
    let body = match crate::args::body_arg(a.body.as_deref()) {
        Ok(b) => b,
        Err(status) => return status,
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let reply_tube = format!("sproutctl.reply.{}.{nanos}", std::process::id());
    let mut servers = Servers::new(&ctx.servers);
    let started = Instant::now();
    // A server that refuses changes (a replica) is passed over: the reply
    // comes on the connection that took the request.
    let sent = servers.put_somewhere(|c| {
        c.watch(&reply_tube)?;
        c.ignore("default")?;
        c.use_tube(&a.tube)?;
        c.put(a.pri, 0, a.ttr, &request(&reply_tube, &body))
    });
    let (id, mut c) = match sent {
        Ok(v) => v,
        Err(e) => return exit::report(&e),
    };
    let result = (|| {
        loop {
            let wait = if a.timeout == 0 {
                60
            } else {
                let left = Duration::from_secs(a.timeout).saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Ok::<_, Error>(Err(id));
                }
                left.as_secs().max(1) as u32
            };
            match c.reserve(wait)? {
                Reserved::Job(job) => {
                    c.delete(job.id)?;
                    return Ok(Ok(job.body));
                }
                Reserved::TimedOut | Reserved::DeadlineSoon => {}
            }
        }
    })();
    match result {
        Ok(Ok(reply)) => match parse_reply(&reply) {
            Some((status, truncated, stdout)) => {
                let _ = std::io::stdout().write_all(stdout);
                let _ = std::io::stdout().flush();
                if truncated {
                    eprintln!(
                        "sproutctl: the output was cut to fit the server's job size (-z on the server)"
                    );
                }
                status
            }
            None => {
                eprintln!("sproutctl: a job in {reply_tube} that is not a reply");
                exit::FAILED
            }
        },
        Ok(Err(id)) => {
            // Not yet taken: nobody will run it now. Taken: a worker has it.
            let gone = c.delete(id).unwrap_or(false);
            eprintln!(
                "sproutctl: no result within {} s from tube {} at {}{}",
                a.timeout,
                a.tube,
                c.addr,
                if gone {
                    " (no worker took the job; it is deleted)"
                } else {
                    " (a worker may still be running it)"
                }
            );
            exit::TIMED_OUT
        }
        Err(e) => exit::report(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_and_plain_jobs_are_not_calls() {
        let r = request("sproutctl.reply.1.2", b"\x00\xff body");
        assert_eq!(
            parse_request(&r),
            Some(("sproutctl.reply.1.2", &b"\x00\xff body"[..]))
        );
        assert_eq!(parse_request(b"sproutctl-call/1 t\nbody"), None);
        assert_eq!(parse_request(b"\0sproutctl-call/1 bad tube\nbody"), None);
        let r = reply(3, b"out\n", 1000);
        assert_eq!(parse_reply(&r), Some((3, false, &b"out\n"[..])));
        let r = reply(0, &[b'x'; 100], 40);
        assert_eq!(r.len(), 40);
        let (status, truncated, out) = parse_reply(&r).unwrap();
        assert_eq!((status, truncated), (0, true));
        assert!(out.iter().all(|&b| b == b'x'));
    }
}
