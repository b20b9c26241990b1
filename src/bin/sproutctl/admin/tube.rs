//! The subcommands that act on a tube on every server: kick, pause,
//! flush. A tube that is not there is "no tube NAME on SERVER" and status
//! 3 from each of them alike.

use argh::FromArgs;

use super::{Count, each_server, tube_exists};
use crate::Ctx;
use crate::args::check_tube;
use crate::exit;

#[derive(FromArgs)]
#[argh(subcommand, name = "kick")]
/// Kick up to N buried jobs (or delayed ones, when none is buried).
pub struct KickArgs {
    /// tube (default "default")
    #[argh(option, default = "String::from(\"default\")")]
    tube: String,
    /// the most jobs to kick, per server
    #[argh(positional)]
    bound: u64,
}

pub fn kick(ctx: &Ctx, a: KickArgs) -> i32 {
    if let Err(s) = check_tube(&a.tube) {
        return s;
    }
    each_server(ctx, "kicked", &a.tube, |c| {
        if !tube_exists(c, &a.tube)? {
            return Ok(Count::NoTube);
        }
        c.use_tube(&a.tube)?;
        Ok(Count::Done(c.kick(a.bound)?))
    })
}

#[derive(FromArgs)]
#[argh(subcommand, name = "pause")]
/// Stop handing out a tube's jobs for a while.
pub struct PauseArgs {
    /// tube
    #[argh(positional)]
    tube: String,
    /// seconds (0 ends a pause)
    #[argh(positional)]
    seconds: u32,
}

pub fn pause(ctx: &Ctx, a: PauseArgs) -> i32 {
    if let Err(s) = check_tube(&a.tube) {
        return s;
    }
    each_server(ctx, "paused", &a.tube, |c| {
        Ok(match c.pause_tube(&a.tube, a.seconds)? {
            true => Count::Done(1),
            false => Count::NoTube,
        })
    })
}

#[derive(FromArgs)]
#[argh(subcommand, name = "flush")]
/// Delete a tube's jobs that nobody holds (ready, delayed and buried).
pub struct FlushArgs {
    /// only this state: ready, delayed or buried
    #[argh(option)]
    state: Option<String>,
    /// yes, delete them
    #[argh(switch)]
    yes: bool,
    /// tube
    #[argh(positional)]
    tube: String,
}

pub fn flush(ctx: &Ctx, a: FlushArgs) -> i32 {
    if let Err(s) = check_tube(&a.tube) {
        return s;
    }
    let states: Vec<&str> = match a.state.as_deref() {
        None => vec!["ready", "delayed", "buried"],
        Some(s @ ("ready" | "delayed" | "buried")) => vec![s],
        Some(other) => {
            return exit::usage(&format!("--state {other}: ready, delayed or buried"));
        }
    };
    if !a.yes {
        return exit::usage(&format!(
            "flush deletes the {} jobs of tube {}: add --yes",
            states.join(", "),
            a.tube
        ));
    }
    each_server(ctx, "deleted", &a.tube, |c| {
        if !tube_exists(c, &a.tube)? {
            return Ok(Count::NoTube);
        }
        c.use_tube(&a.tube)?;
        let mut n = 0;
        for state in &states {
            // A job a worker takes between the peek and the delete is
            // left to it; the next peek finds the next one.
            while let Some(job) = c.peek(&format!("peek-{state}"))? {
                n += c.delete(job.id)? as u64;
            }
        }
        Ok(Count::Done(n))
    })
}
