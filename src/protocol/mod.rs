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

mod command;
mod op;
mod parse;
#[cfg(test)]
mod tests;

pub use command::{Command, ParseError};
pub use op::Op;
pub use parse::{parse, valid_primary, valid_tube_name};
