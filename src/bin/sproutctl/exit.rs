//! sproutctl's exit statuses (doc/sproutctl.1 lists them). `call` exits
//! with its command's status instead, except for its own failures.

use std::sync::OnceLock;

use crate::client::Error;

pub const OK: i32 = 0;
/// A server answered something this client cannot accept (a refused
/// command, an unexpected reply).
pub const FAILED: i32 = 1;
/// Bad arguments: an unknown flag, a bad tube name, a missing body.
pub const USAGE: i32 = 2;
/// The job, tube or state asked for is not there.
pub const NOT_FOUND: i32 = 3;
/// No server could be reached, or one was lost mid-command (sysexits'
/// EX_UNAVAILABLE).
pub const UNAVAILABLE: i32 = 69;
/// `call`: no reply came within --timeout (as timeout(1)).
pub const TIMED_OUT: i32 = 124;

/// Prints the error and gives its status.
pub fn report(e: &Error) -> i32 {
    eprintln!("sproutctl: {e}");
    status(e)
}

pub fn status(e: &Error) -> i32 {
    match e {
        Error::Connect { .. } | Error::Lost { .. } | Error::Refused { .. } => UNAVAILABLE,
        Error::Reply { .. } => FAILED,
    }
}

/// The subcommand being run, for usage errors' pointer to its --help.
static SUBCOMMAND: OnceLock<&'static str> = OnceLock::new();

pub fn set_subcommand(name: &'static str) {
    let _ = SUBCOMMAND.set(name);
}

/// A usage error: says what, gives USAGE.
pub fn usage(why: &str) -> i32 {
    match SUBCOMMAND.get() {
        Some(sub) => eprintln!("sproutctl: {why} (see sproutctl {sub} --help)"),
        None => eprintln!("sproutctl: {why} (see sproutctl --help)"),
    }
    USAGE
}
