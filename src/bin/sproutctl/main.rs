//! sproutctl: work and drive a beanstalkd-protocol queue (sprout, or
//! beanstalkd itself) from the shell, across one server or several.
//!
//! Reading order: [`args`] (the command line as typed), [`client`] (one blocking connection), [`servers`] (the
//! `--server` list: round robin and failover), [`admin`] (put, peek,
//! delete, kick, pause, flush, stats, tubes), [`top`] (the live view),
//! [`work`] (a shell command
//! as a worker), [`call`] (a job whose worker's output comes back),
//! [`output`] (tables, JSON, escaping), [`supervise`] (etcd elects the
//! primary). doc/cli.md and doc/sproutctl.1
//! say what each does; the exit statuses are [`exit`]'s.

mod admin;
mod args;
mod base64;
mod call;
mod client;
mod exit;
mod output;
mod servers;
mod stop;
mod supervise;
mod top;
mod work;

use argh::FromArgs;

/// The server when neither --server nor SPROUT_SERVERS says.
const DEFAULT_SERVER: &str = "127.0.0.1:11300";

#[derive(FromArgs)]
/// Work and drive a beanstalkd-protocol queue from the shell.
struct Args {
    /// a server, HOST:PORT (repeat for several; default SPROUT_SERVERS, a
    /// comma-separated list, or 127.0.0.1:11300)
    #[argh(option)]
    server: Vec<String>,
    /// find the primary through etcd: its endpoints, comma-separated
    /// http://HOST:PORT (or SPROUT_ETCD); what `supervise` talks to
    #[argh(option)]
    etcd: Option<String>,
    /// the cluster's name in etcd: its keys are under /sprout/NAME/
    /// (default sprout)
    #[argh(option, default = "String::from(\"sprout\")")]
    cluster: String,
    /// machine-readable output, one JSON document
    #[argh(switch)]
    json: bool,
    #[argh(subcommand)]
    cmd: Sub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Sub {
    Put(admin::PutArgs),
    Peek(admin::PeekArgs),
    Delete(admin::DeleteArgs),
    Kick(admin::KickArgs),
    KickJob(admin::KickJobArgs),
    Pause(admin::PauseArgs),
    Flush(admin::FlushArgs),
    Stats(admin::StatsArgs),
    Tubes(admin::TubesArgs),
    Top(top::TopArgs),
    Work(work::WorkArgs),
    Call(call::CallArgs),
    Supervise(supervise::SuperviseArgs),
}

/// What every subcommand gets: the servers and how to print.
pub struct Ctx {
    pub servers: Vec<String>,
    /// `--etcd`, for `supervise`.
    pub etcd: Option<String>,
    pub cluster: String,
    pub json: bool,
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let rest = args::stdin_dash(args::hoist_globals(argv));
    let sub = args::subcommand(&rest).and_then(|i| {
        let name = rest[i].as_str();
        args::SUBCOMMANDS.iter().copied().find(|s| *s == name)
    });
    if let Some(sub) = sub {
        exit::set_subcommand(sub);
    }
    let rest: Vec<&str> = rest.iter().map(|s| s.as_str()).collect();
    let args = match Args::from_args(&["sproutctl"], &rest) {
        Ok(a) => a,
        Err(early) => {
            // --help is not an error; a bad argument is a usage error.
            match early.status {
                Ok(()) => {
                    println!("{}", args::help_text(&early.output, sub));
                    std::process::exit(exit::OK)
                }
                Err(()) => {
                    eprintln!("{}", args::argh_error(&early.output, sub));
                    std::process::exit(exit::USAGE)
                }
            }
        }
    };
    let mut servers = args.server;
    let mut from = "--server";
    if servers.is_empty()
        && let Ok(env) = std::env::var("SPROUT_SERVERS")
    {
        servers = (env.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        from = "SPROUT_SERVERS entry";
    }
    let is_supervise = matches!(args.cmd, Sub::Supervise(_));
    // --etcd (not for supervise, which talks to etcd itself): the primary
    // is whoever holds the leader key now.
    let etcd = args
        .etcd
        .clone()
        .or_else(|| std::env::var("SPROUT_ETCD").ok());
    if servers.is_empty()
        && !is_supervise
        && let Some(endpoints) = &etcd
    {
        match supervise::find_primary(endpoints, &args.cluster) {
            Ok(primary) => servers.push(primary),
            Err(why) => {
                eprintln!("sproutctl: {why}");
                std::process::exit(exit::UNAVAILABLE)
            }
        }
        from = "etcd leader";
    }
    if servers.is_empty() {
        servers.push(DEFAULT_SERVER.to_string());
    }
    if let Some(why) = servers
        .iter()
        .find_map(|s| args::check_server(s, from).err())
    {
        std::process::exit(exit::usage(&why));
    }
    let ctx = Ctx {
        servers,
        etcd,
        cluster: args.cluster,
        json: args.json,
    };
    let status = match args.cmd {
        Sub::Put(a) => admin::put(&ctx, a),
        Sub::Peek(a) => admin::peek(&ctx, a),
        Sub::Delete(a) => admin::delete(&ctx, a),
        Sub::Kick(a) => admin::kick(&ctx, a),
        Sub::KickJob(a) => admin::kick_job(&ctx, a),
        Sub::Pause(a) => admin::pause(&ctx, a),
        Sub::Flush(a) => admin::flush(&ctx, a),
        Sub::Stats(a) => admin::stats(&ctx, a),
        Sub::Tubes(a) => admin::tubes(&ctx, a),
        Sub::Top(a) => top::run(&ctx, a),
        Sub::Work(a) => work::run(&ctx, a),
        Sub::Call(a) => call::run(&ctx, a),
        Sub::Supervise(a) => supervise::run(&ctx, a),
    };
    std::process::exit(status)
}
