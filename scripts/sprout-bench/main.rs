//! sprout-bench: the benchmark's load generator and ceiling server.
//!
//! `sprout-bench load --port P --workload cycle --conns 10 --secs 3 --body 100`
//! prints one line of `key=value` figures; `sprout-bench ceiling --port P`
//! serves canned replies (see ceiling.rs); `sprout-bench abuse --port P
//! --kind garbage --secs 3` is a misbehaving client (see abuse.rs).
//! scripts/bench runs them against sprout and beanstalkd;
//! doc/performance.md explains the figures.

mod abuse;
mod ceiling;
mod hist;
mod interest;
mod load;
mod reply;

use argh::FromArgs;

#[derive(FromArgs)]
/// Load generator and ceiling server for benchmarking beanstalk servers.
struct Args {
    #[argh(subcommand)]
    cmd: Sub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Sub {
    Load(LoadArgs),
    Ceiling(CeilingArgs),
    Abuse(AbuseArgs),
}

#[derive(FromArgs)]
#[argh(subcommand, name = "abuse")]
/// Be a misbehaving client and print what it managed.
struct AbuseArgs {
    /// server port on 127.0.0.1
    #[argh(option)]
    port: u16,
    /// huge-put, trickle, never-reads, tubes, delayed or garbage
    #[argh(option)]
    kind: abuse::Kind,
    /// seconds to run (default 3)
    #[argh(option, default = "3.0")]
    secs: f64,
    /// connections (trickle, never-reads), tubes or jobs (default 100)
    #[argh(option, default = "100")]
    count: u64,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "load")]
/// Drive a server and print ops/s and latency.
struct LoadArgs {
    /// server port on 127.0.0.1
    #[argh(option)]
    port: u16,
    /// put, cycle, pipeline, produce-consume or fill
    #[argh(option, default = "load::Workload::Cycle")]
    workload: load::Workload,
    /// connections (default 10)
    #[argh(option, default = "10")]
    conns: usize,
    /// seconds to run (default 3)
    #[argh(option, default = "3.0")]
    secs: f64,
    /// body bytes (default 100)
    #[argh(option, default = "100")]
    body: usize,
    /// commands per batch for pipeline (default 16)
    #[argh(option, default = "16")]
    depth: usize,
    /// jobs to put for fill (default 1000000)
    #[argh(option, default = "1000000")]
    jobs: u64,
    /// distinct tubes for the connections (default: one each)
    #[argh(option, default = "0")]
    tubes: usize,
    /// extra empty tubes each connection watches
    #[argh(option, default = "0")]
    watch_extra: usize,
    /// idle connections opened first
    #[argh(option, default = "0")]
    idle: usize,
    /// tubes made first, each holding one job delayed for an hour
    #[argh(option, default = "0")]
    extra_tubes: usize,
    /// the server's pid, to report its memory around a fill
    #[argh(option)]
    server_pid: Option<u32>,
    /// fill: leave the jobs in the server instead of deleting them
    #[argh(switch)]
    keep: bool,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "ceiling")]
/// Serve canned replies: the fastest a server could answer.
struct CeilingArgs {
    /// port on 127.0.0.1
    #[argh(option)]
    port: u16,
}

fn main() {
    let args: Args = argh::from_env();
    match args.cmd {
        Sub::Abuse(a) => {
            let cfg = abuse::Config {
                port: a.port,
                kind: a.kind,
                secs: a.secs,
                count: a.count,
            };
            match abuse::run(&cfg) {
                Ok(figures) => println!("{figures}"),
                Err(e) => {
                    eprintln!("abuse: {e}");
                    std::process::exit(1);
                }
            }
        }
        Sub::Ceiling(a) => {
            if let Err(e) = ceiling::serve(a.port) {
                eprintln!("ceiling: {e}");
                std::process::exit(1);
            }
        }
        Sub::Load(a) => {
            let cfg = load::Config {
                port: a.port,
                workload: a.workload,
                conns: a.conns.max(1),
                secs: a.secs,
                body: a.body,
                depth: a.depth,
                jobs: a.jobs,
                tubes: a.tubes,
                watch_extra: a.watch_extra,
                idle: a.idle,
                extra_tubes: a.extra_tubes,
                server_pid: a.server_pid,
                keep: a.keep,
            };
            match load::run(&cfg) {
                Ok(r) => {
                    let us = |h: &hist::Hist, q| h.quantile(q) as f64 / 1000.0;
                    let lat = if r.end_to_end.count() > 0 {
                        &r.end_to_end
                    } else {
                        &r.latency
                    };
                    print!(
                        "ops_per_sec={:.0} commands={} p50_us={:.1} p99_us={:.1} p999_us={:.1} errors={}",
                        r.commands as f64 / r.elapsed.max(1e-9),
                        r.commands,
                        us(lat, 0.5),
                        us(lat, 0.99),
                        us(lat, 0.999),
                        r.errors
                    );
                    if let Some((before, filled, drained)) = r.rss_kib {
                        print!(
                            " fill_secs={:.3} rss_before_kib={before} rss_filled_kib={filled} rss_drained_kib={drained}",
                            r.fill_secs
                        );
                    }
                    println!();
                }
                Err(e) => {
                    eprintln!("load: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
}
