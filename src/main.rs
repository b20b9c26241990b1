//! The `sprout` binary: parse flags, open the socket, serve.

use std::io::Read;
use std::path::Path;
use std::process::exit;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argh::FromArgs;
use log::{error, info, warn};

use mio::{Poll, Waker};
use sprout::binlog::files::{EXIT_LOCKED, OpenError};
use sprout::binlog::{Binlog, SyncPolicy};
use sprout::cli::{self, Args, MAX_JOB_SIZE_LIMIT, split_short_flags};
use sprout::clock::{CLOCK_BASE, Clock};
use sprout::engine::{Engine, ServerInfo};
use sprout::event_loop::{EXIT_SYNC_FAILED, ServeError, Server, WAKER};
use sprout::http::recovering::Responder;
use sprout::listen;

/// beanstalkd's exit status for bad usage.
const EXIT_USAGE: i32 = 5;
/// beanstalkd's exit status when the listening socket cannot be made.
const EXIT_LISTEN: i32 = 111;

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let name = argv.first().map(String::as_str).unwrap_or("sprout");
    let split = split_short_flags(&argv[1.min(argv.len())..]);
    let split: Vec<&str> = split.iter().map(String::as_str).collect();
    let args = match Args::from_args(&[name], &split) {
        Ok(a) => a,
        Err(early) => {
            // As beanstalkd: the usage goes to stderr, with status 0 for
            // -h and 5 after a bad flag.
            match early.status {
                Ok(()) => {
                    eprint!("{}", cli::usage());
                    exit(0)
                }
                Err(()) => {
                    eprint!("sprout: {}\n{}", early.output.trim_end(), cli::usage());
                    exit(EXIT_USAGE)
                }
            }
        }
    };
    if args.version {
        println!(
            "sprout {} (the beanstalkd {} protocol)",
            env!("CARGO_PKG_VERSION"),
            sprout::stats::PROTOCOL_VERSION
        );
        return;
    }
    init_logging(args.verbose);
    if args.compact || args.no_compact {
        warn!("-c and -n are obsolete and have no effect");
    }
    let mut max_job_size = args.max_job_size;
    if max_job_size > MAX_JOB_SIZE_LIMIT {
        warn!("-z {max_job_size} is too large; using the maximum, {MAX_JOB_SIZE_LIMIT}");
        max_job_size = MAX_JOB_SIZE_LIMIT;
    }
    let port_given = split.iter().any(|a| *a == "-p" || a.starts_with("--port"));
    let listener = match listen::open(args.listen.as_deref(), args.port, port_given) {
        Ok(l) => l,
        Err(e) => {
            error!("{e}");
            exit(EXIT_LISTEN);
        }
    };
    let http = args.http.as_deref().map(|addr| match open_http(addr) {
        Ok(l) => l,
        Err(e) => {
            error!("cannot listen for HTTP on {addr}: {e} (--http wants ADDR:PORT, e.g. 127.0.0.1:8080)");
            exit(EXIT_LISTEN);
        }
    });
    if let Some(user) = &args.user
        && let Err(e) = listen::become_user(user)
    {
        error!("{e}");
        exit(e.exit_code());
    }
    if args.replica_of.is_some() && args.binlog_dir.is_none() {
        error!(
            "--replica-of needs -b DIR: a replica writes what it follows to a binlog of its own"
        );
        exit(EXIT_USAGE);
    }
    if let Some(p) = &args.replica_of
        && !sprout::protocol::valid_primary(p)
    {
        error!("--replica-of {p:?}: give the primary as HOST:PORT, as in 10.0.0.1:11300");
        exit(EXIT_USAGE);
    }
    if args.standby && args.binlog_dir.is_none() {
        error!(
            "--standby needs -b DIR: a standby is promoted or follows, and both keep an epoch beside the binlog"
        );
        exit(EXIT_USAGE);
    }
    if args.sync_replicas.is_some_and(|n| n > 0) && args.binlog_dir.is_none() {
        error!(
            "--sync-replicas needs -b DIR: replicas follow the binlog, so a primary without one has nothing to send"
        );
        exit(EXIT_USAGE);
    }
    let clock = Clock::start();
    let mut engine = Engine::new(
        max_job_size as u32,
        server_info(args.binlog_size),
        CLOCK_BASE,
    );
    engine.set_max_memory(args.max_memory);
    let poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            error!("cannot set up the event loop: {e}");
            exit(1);
        }
    };
    let policy = match (args.no_fsync, args.fsync_ms) {
        (true, _) => SyncPolicy::Never,
        (false, ms) => SyncPolicy::Every(Duration::from_millis(ms.unwrap_or(50))),
    };
    // While the binlog is read back, HTTP clients hear 503, not silence.
    let responder = http.map(|l| match Responder::start(l) {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the HTTP port: {e}");
            exit(1);
        }
    });
    let binlog = args
        .binlog_dir
        .as_deref()
        .map(|dir| open_binlog(Path::new(dir), &args, policy, &poll, &mut engine, clock));
    let persistence = match (&args.binlog_dir, &binlog) {
        (Some(dir), Some((_, n))) => format!("binlog {dir} ({n} jobs recovered)"),
        _ => "no binlog (jobs live in memory only; -b DIR keeps them)".to_string(),
    };
    let binlog = binlog.map(|(b, _)| b);
    let http = responder.map(|r| match r.finish() {
        Some(l) => mio::net::TcpListener::from_std(l),
        None => {
            error!("the HTTP port's recovery responder failed");
            exit(1);
        }
    });
    let hold = binlog.is_some() && policy == SyncPolicy::Every(Duration::ZERO);
    let queue = listener.describe();
    let web = (http.as_ref())
        .and_then(|l| l.local_addr().ok())
        .map_or(String::new(), |a| format!(", HTTP on {a}"));
    let mut server = match Server::new(listener, engine, clock, poll, binlog, hold, http) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot set up the event loop: {e}");
            exit(EXIT_LISTEN);
        }
    };
    let sync = args.sync_replicas.unwrap_or(0);
    server.sync_replicas(
        sync,
        Duration::from_millis(args.sync_timeout.unwrap_or(5000)),
    );
    let role = match &args.replica_of {
        Some(primary) => {
            server.follow(primary.clone());
            format!("; a read-only replica of {primary}")
        }
        None if args.standby => {
            server.standby();
            "; a standby, taking no changes until promoted".to_string()
        }
        None if sync > 0 => format!("; replies to changes wait for {sync} replicas"),
        None => String::new(),
    };
    // The one line an operator reads at start (beanstalkd says nothing).
    info!(
        target: STARTUP,
        "sprout {} listening on {queue}{web}; {persistence}{role}; up to {} connections (the open-file limit less 16); pid {}",
        env!("CARGO_PKG_VERSION"),
        sprout::event_loop::connection_ceiling(),
        std::process::id()
    );
    listen::notify_ready();
    match server.run() {
        Ok(()) => {}
        // Logged where it happened, with what to do.
        Err(ServeError::SyncFailed(_)) => exit(EXIT_SYNC_FAILED),
        Err(e) => {
            error!("event loop failed: {e}");
            exit(1);
        }
    }
}

/// Opens the binlog and loads its jobs into the engine; exits on failure.
fn open_binlog(
    dir: &Path,
    args: &Args,
    policy: SyncPolicy,
    poll: &Poll,
    engine: &mut Engine,
    clock: Clock,
) -> (Binlog, usize) {
    // A file-size limit must fail the write (EFBIG), not kill the process.
    // SAFETY: setting a signal to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let waker = match Waker::new(poll.registry(), WAKER) {
        Ok(w) => Arc::new(w),
        Err(e) => {
            error!("cannot set up the event loop: {e}");
            exit(1);
        }
    };
    let now = clock.now();
    let wake = move || {
        let _ = waker.wake();
    };
    let opened = match Binlog::open(dir, args.binlog_size, policy, now, wake) {
        Ok(o) => o,
        Err(e) => {
            error!("{e}");
            exit(match e {
                OpenError::Locked(_) => EXIT_LOCKED,
                _ => 1,
            });
        }
    };
    let mut binlog = opened.binlog;
    let replayed = opened.replayed;
    match sprout::binlog::epoch::read(dir) {
        Ok(epoch) => engine.set_epoch(epoch),
        Err(e) => {
            error!(
                "cannot read the replication epoch: {e}; restore the file, or remove it only if no other node has been primary since"
            );
            exit(1);
        }
    }
    let payloads: Vec<u64> = replayed
        .jobs
        .iter()
        .map(|j| (j.tube.len() + j.body.len()) as u64)
        .collect();
    let count = replayed.jobs.len();
    let restored = engine.restore(replayed.jobs, replayed.bodies, replayed.next_id, now);
    if let Err(e) = binlog.adopt(&restored.placed, &payloads) {
        error!(
            "{}: no room to log the deletes of the {count} recovered jobs ({e:?})",
            dir.display()
        );
        exit(1);
    }
    if let Err(e) = engine.log_ranks(&restored.unranked, &mut binlog, now) {
        // The jobs are all there; only a later compaction could reorder them.
        warn!(
            "{}: cannot log the bury order of {} buried jobs ({e:?}); free some space",
            dir.display(),
            restored.unranked.len()
        );
    }
    info!("{}: recovered {count} jobs", dir.display());
    if let Some(max) = args.max_memory
        && engine.memory_used() >= max
    {
        warn!(
            "the {count} recovered jobs take {} bytes, --max-memory is {max}: puts are refused until deletes bring them under it",
            engine.memory_used()
        );
    }
    (binlog, count)
}

/// Binds the HTTP port: `ADDR:PORT`, or `[v6]:PORT`, or a host name.
fn open_http(addr: &str) -> std::io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = addr.to_socket_addrs()?.collect();
    std::net::TcpListener::bind(&addrs[..])
}

/// The log target of the start-up line, shown at the default verbosity.
const STARTUP: &str = "sprout::start";

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn,sprout::start=info",
        1 => "info",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp_millis()
        .init();
}

fn server_info(binlog_max_size: u64) -> ServerInfo {
    // SAFETY: uname fills the struct we pass.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let mut id = [0u8; 8];
    if let Err(e) = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut id)) {
        warn!("cannot read /dev/urandom for the instance id: {e}");
        id = (std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64).to_le_bytes();
    }
    ServerInfo {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        instance_id: id.iter().map(|b| format!("{b:02x}")).collect(),
        hostname: field(&u.nodename),
        os: field(&u.version),
        platform: field(&u.machine),
        binlog_max_size,
    }
}
