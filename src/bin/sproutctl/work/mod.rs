//! `work`: a shell command as a worker, gearman's `-w -f name -- cmd`.
//!
//! `--concurrency N` slots, each a thread with its own connection to
//! every server (a reservation belongs to the connection that made it).
//! A slot reserves from the servers in turn, runs the command once per
//! job with the body on stdin, touches the job while it runs (the TTR is
//! a lease: a worker that dies gives its job back when the TTR runs out),
//! and then deletes it (exit 0), releases it with a growing delay, or
//! buries it after `--attempts` tries, counted from the job's own
//! `reserves` so that they survive worker restarts. SIGTERM or SIGINT:
//! no more reserves; running commands get `--grace` seconds to finish,
//! then are stopped and their jobs released; exit 0.
mod child;
mod slot;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use argh::FromArgs;

use crate::client::Conn;
use crate::{Ctx, exit};

use slot::Slot;

#[derive(FromArgs)]
#[argh(subcommand, name = "work")]
/// Run a command once per job: exit 0 deletes the job, a failure retries
/// it later, and buries it after --attempts tries.
pub struct WorkArgs {
    /// tube to take jobs from (repeat for several; default "default")
    #[argh(option)]
    tube: Vec<String>,
    /// commands run at once (default 1)
    #[argh(option, default = "1")]
    concurrency: usize,
    /// tries before a job is buried (default 3)
    #[argh(option, default = "3")]
    attempts: u64,
    /// seconds a command may run before it is stopped (default: no limit)
    #[argh(option)]
    timeout: Option<u64>,
    /// stop after this many jobs (default: run until stopped)
    #[argh(option)]
    count: Option<u64>,
    /// seconds of delay before the first retry, doubled for each next
    /// (default 1, at most an hour)
    #[argh(option, default = "1")]
    backoff: u64,
    /// seconds running commands get to finish on SIGTERM, and a timed-out
    /// one between SIGTERM and SIGKILL (default 10)
    #[argh(option, default = "10")]
    grace: u64,
    /// the command and its arguments, after --
    #[argh(positional, greedy)]
    command: Vec<String>,
}

/// What the slots share.
struct Shared {
    servers: Vec<String>,
    tubes: Vec<String>,
    args: WorkArgs,
    /// SIGTERM or SIGINT came.
    stop: Arc<AtomicBool>,
    /// Jobs taken, against --count.
    taken: AtomicU64,
}

pub fn run(ctx: &Ctx, a: WorkArgs) -> i32 {
    if a.command.is_empty() {
        return exit::usage("work wants a command: sproutctl work --tube T -- CMD ARGS...");
    }
    let tubes = if a.tube.is_empty() {
        vec!["default".to_string()]
    } else {
        a.tube.clone()
    };
    if let Some(s) = tubes.iter().find_map(|t| crate::args::check_tube(t).err()) {
        return s;
    }
    if a.concurrency == 0 || a.attempts == 0 {
        return exit::usage("--concurrency and --attempts are at least 1");
    }
    let stop = match crate::stop::on_signal() {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("sproutctl: cannot handle SIGTERM and SIGINT: {e}");
            return exit::FAILED;
        }
    };
    // Fail early, and clearly, when no server can be reached at all.
    let reachable = ctx.servers.iter().any(|s| Conn::connect(s).is_ok());
    if !reachable {
        let e = Conn::connect(&ctx.servers[0]).err();
        return e.map_or(exit::UNAVAILABLE, |e| exit::report(&e));
    }
    let shared = Arc::new(Shared {
        servers: ctx.servers.clone(),
        tubes,
        args: a,
        stop,
        taken: AtomicU64::new(0),
    });
    let slots: Vec<_> = (0..shared.args.concurrency)
        .map(|i| {
            let s = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("slot-{i}"))
                .spawn(move || Slot::new(s).run())
        })
        .collect();
    for slot in slots.into_iter().flatten() {
        let _ = slot.join();
    }
    exit::OK
}
