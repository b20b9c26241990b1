//! The one-shot subcommands: put, peek, delete, kick, kick-job, pause,
//! flush, stats, tubes. A job id names a job on one server only, so the
//! subcommands that take ids want exactly one `--server`; those that act
//! on tubes act on every server given, and carry on past one that fails:
//! what each reachable server answered is printed, the one that failed is
//! named, and the status is not 0.
//!
//! Reading order: [`put`], [`peek`], [`by_id`] (delete, kick-job),
//! [`tube`] (kick, pause, flush), [`stats`] (stats, tubes).

mod by_id;
mod peek;
mod put;
mod stats;
mod tube;

pub use by_id::{DeleteArgs, KickJobArgs, delete, kick_job};
pub use peek::{PeekArgs, peek};
pub use put::{PutArgs, put};
pub use stats::{StatsArgs, TubesArgs, stats, tubes};
pub use tube::{FlushArgs, KickArgs, PauseArgs, flush, kick, pause};

use crate::client::{Conn, Error};
use crate::output::{json_str, print};
use crate::{Ctx, exit};

/// The one server an id-addressed subcommand talks to.
fn one_server(ctx: &Ctx, what: &str) -> Result<Conn, i32> {
    if ctx.servers.len() > 1 {
        return Err(exit::usage(&format!(
            "{what} names jobs by id, and ids are per server: give one --server"
        )));
    }
    Conn::connect(&ctx.servers[0]).map_err(|e| exit::report(&e))
}

/// How the servers of a command sent to each of them fared, for its exit
/// status: a failure (unreachable, 69; refused, 1) outranks a missing tube
/// (3), which outranks success.
#[derive(Default)]
struct Tally {
    failed: Option<i32>,
    missing: bool,
}

impl Tally {
    fn failed(&mut self, e: &Error) {
        let s = exit::report(e);
        self.failed.get_or_insert(s);
    }

    fn missing(&mut self, tube: &str, addr: &str) {
        eprintln!("sproutctl: no tube {tube} on {addr}");
        self.missing = true;
    }

    fn missing_job(&mut self, id: u64, addr: &str) {
        eprintln!("sproutctl: no job {id} on {addr}");
        self.missing = true;
    }

    fn status(&self) -> i32 {
        match (self.failed, self.missing) {
            (Some(s), _) => s,
            (None, true) => exit::NOT_FOUND,
            (None, false) => exit::OK,
        }
    }
}

/// Whether `tube` exists on the server: `use` would make it, so this asks
/// first.
fn tube_exists(c: &mut Conn, tube: &str) -> Result<bool, Error> {
    Ok(c.stats_tube(tube)?.is_some())
}

/// What one server did with a command on a tube.
enum Count {
    Done(u64),
    NoTube,
}

/// Runs `each` on every server, carrying on past one that fails; prints
/// the count each gave (`done N`, or `SERVER: done N` with several; in
/// JSON an array naming each server), names every server that failed or
/// lacks the tube, and gives the status of the worst (see [`Tally`]).
fn each_server(
    ctx: &Ctx,
    done: &str,
    tube: &str,
    mut each: impl FnMut(&mut Conn) -> Result<Count, Error>,
) -> i32 {
    let mut tally = Tally::default();
    let mut items = Vec::new();
    let several = ctx.servers.len() > 1;
    for addr in &ctx.servers {
        let server = json_str(addr);
        match Conn::connect(addr).and_then(|mut c| each(&mut c)) {
            Ok(Count::Done(n)) => {
                items.push(format!("{{\"server\":{server},\"{done}\":{n}}}"));
                if !ctx.json {
                    match several {
                        true => print(&format!("{addr}: {done} {n}\n")),
                        false => print(&format!("{done} {n}\n")),
                    }
                }
            }
            Ok(Count::NoTube) => {
                tally.missing(tube, addr);
                let why = json_str(&format!("no tube {tube}"));
                items.push(format!("{{\"server\":{server},\"error\":{why}}}"));
            }
            Err(e) => {
                tally.failed(&e);
                let why = json_str(&e.to_string());
                items.push(format!("{{\"server\":{server},\"error\":{why}}}"));
            }
        }
    }
    if ctx.json {
        print(&format!("[{}]\n", items.join(",")));
    }
    tally.status()
}
