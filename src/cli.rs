//! The command line: beanstalkd's flags, with their defaults.
//!
//! beanstalkd parses flags getopt-style, so `-VV`, `-p11300` and `-VFz 100`
//! all work there; [`split_short_flags`] rewrites such arguments into the
//! one-flag-per-argument form argh understands, so existing unit files and
//! scripts keep working unchanged.

use argh::FromArgs;

/// The largest job size accepted for -z, as beanstalkd.
pub const MAX_JOB_SIZE_LIMIT: u64 = 1 << 30;

#[derive(FromArgs, Debug, Default)]
/// sprout: a work-queue server that speaks the beanstalkd protocol.
///
/// Unlike beanstalkd, with no -l it listens on 127.0.0.1 only; use -l 0.0.0.0
/// to listen on every interface.
pub struct Args {
    /// write-ahead log directory: jobs survive restarts and crashes
    #[argh(option, short = 'b')]
    pub binlog_dir: Option<String>,

    /// fsync at most once every MS milliseconds (default 50; -f0 fsyncs every write)
    #[argh(option, short = 'f')]
    pub fsync_ms: Option<u64>,

    /// never fsync
    #[argh(switch, short = 'F')]
    pub no_fsync: bool,

    /// listen on address ADDR (default 127.0.0.1); unix:/path for a unix socket
    #[argh(option, short = 'l')]
    pub listen: Option<String>,

    /// listen on port PORT (default 11300)
    #[argh(option, short = 'p', default = "11300")]
    pub port: u16,

    /// become user USER after binding
    #[argh(option, short = 'u')]
    pub user: Option<String>,

    /// maximum job size in bytes (default 65535, at most 1073741824)
    #[argh(option, short = 'z', default = "65535")]
    pub max_job_size: u64,

    /// binlog file size in bytes (default 10485760)
    #[argh(option, short = 's', default = "10485760")]
    pub binlog_size: u64,

    /// obsolete, accepted and ignored
    #[argh(switch, short = 'c')]
    pub compact: bool,

    /// obsolete, accepted and ignored
    #[argh(switch, short = 'n')]
    pub no_compact: bool,

    /// more logging; repeat for more (-VV logs every command)
    #[argh(switch, short = 'V')]
    pub verbose: u8,

    /// print the version and exit
    #[argh(switch, short = 'v')]
    pub version: bool,

    /// refuse puts (OUT_OF_MEMORY) while the jobs held take BYTES or more
    #[argh(option)]
    pub max_memory: Option<u64>,

    /// serve metrics, health checks and a status page over HTTP on ADDR:PORT
    #[argh(option)]
    pub http: Option<String>,

    /// follow the primary at HOST:PORT as a read-only replica (needs -b)
    #[argh(option)]
    pub replica_of: Option<String>,

    /// send a reply to a change only once N replicas have applied it
    #[argh(option)]
    pub sync_replicas: Option<usize>,

    /// how long a reply waits for --sync-replicas, in ms (default 5000)
    #[argh(option)]
    pub sync_timeout: Option<u64>,

    /// start taking no changes, following no one, until a supervisor sends
    /// sprout-promote or sprout-follow (needs -b)
    #[argh(switch)]
    pub standby: bool,
}

/// The help text, laid out as beanstalkd's `-h` (which operators and
/// scripts have seen for years), with sprout's defaults.
pub fn usage() -> &'static str {
    "Use: sprout [OPTIONS]

Options:
 -b DIR   write-ahead log directory
 -f MS    fsync at most once every MS milliseconds (default is 50ms);
          use -f0 for \"always fsync\"
 -F       never fsync
 -l ADDR  listen on address (default is 127.0.0.1; beanstalkd's is 0.0.0.0);
          unix:PATH listens on a unix socket
 -p PORT  listen on port (default is 11300)
 -u USER  become user and group
 -z BYTES set the maximum job size in bytes (default is 65535);
          max allowed is 1073741824 bytes
 -s BYTES set the size of each write-ahead log file (default is 10485760);
          will be rounded up to a multiple of 4096 bytes
 -c       obsolete, accepted and ignored
 -n       obsolete, accepted and ignored
 -v       show version information
 -V       increase verbosity (-VV logs every command)
 -h       show this help

Options beanstalkd does not have:
 --max-memory BYTES  refuse puts, and use or watch of a new tube, with
          OUT_OF_MEMORY while jobs and tubes take BYTES or more (a job counts
          its body and 84 bytes, a tube twice its name and 296; off by default)
 --http ADDR:PORT  serve /metrics (Prometheus), /healthz, /readyz and a
          status page (/, /status.json) over HTTP; off by default
 --replica-of HOST:PORT  follow that sprout (run with -b) as a read-only
          replica: its binlog records are applied here and written to this
          server's own -b DIR; changes are answered DRAINING (doc/ha.md)
 --sync-replicas N  (with -b) send the reply to a change only once N
          replicas have applied it; with fewer than N in step, changes are
          refused (put OUT_OF_MEMORY, others INTERNAL_ERROR); off by default
 --sync-timeout MS  a reply waits at most MS ms for --sync-replicas, then
          is never sent and its connection closes (default 5000)
 --standby  (with -b) start taking no changes (DRAINING) and following no
          one, until sprout-promote or sprout-follow says which (what a
          supervisor electing through etcd starts with; doc/ha.md)
"
}

/// Flags that take a value.
const VALUED: &[u8] = b"bflpuzs";
/// Long options that take a value.
const VALUED_LONG: &[&str] = &[
    "--max-memory",
    "--http",
    "--replica-of",
    "--sync-replicas",
    "--sync-timeout",
];

/// Splits `-VFV` into `-V -F -V` and `-p11300` into `-p 11300`, and
/// `--long=value` into `--long value`, stopping at the first argument that
/// is not a flag (or at `--`), like getopt_long.
pub fn split_short_flags(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let bytes = arg.as_bytes();
        if arg.starts_with("--") && arg.len() > 2 && arg != "--help" {
            match arg.split_once('=') {
                Some((name, value)) => out.extend([name.to_string(), value.to_string()]),
                None => {
                    out.push(arg.clone());
                    if VALUED_LONG.contains(&arg.as_str())
                        && let Some(value) = rest.next()
                    {
                        out.push(value.clone());
                    }
                }
            }
            continue;
        }
        if bytes.len() < 2 || bytes[0] != b'-' || bytes[1] == b'-' {
            out.push(arg.clone());
            out.extend(rest.cloned());
            break;
        }
        for (i, &flag) in bytes.iter().enumerate().skip(1) {
            if flag == b'h' {
                // argh spells help only long.
                out.push("--help".to_string());
                continue;
            }
            out.push(format!("-{}", flag as char));
            if VALUED.contains(&flag) {
                if i + 1 < bytes.len() {
                    out.push(arg[i + 1..].to_string());
                } else if let Some(value) = rest.next() {
                    out.push(value.clone());
                }
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(args: &[&str]) -> Vec<String> {
        split_short_flags(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn getopt_style_arguments() {
        assert_eq!(split(&["-VV", "-p11300"]), ["-V", "-V", "-p", "11300"]);
        assert_eq!(
            split(&["-VFz", "100", "-l", "::1"]),
            ["-V", "-F", "-z", "100", "-l", "::1"]
        );
        assert_eq!(split(&["-f0"]), ["-f", "0"]);
        assert_eq!(split(&["stray", "-V"]), ["stray", "-V"]);
        assert_eq!(split(&["--help"]), ["--help"]);
        assert_eq!(split(&["-Vh"]), ["-V", "--help"]);
        // Long options do not end the short ones, with or without `=`.
        assert_eq!(
            split(&["--max-memory", "100", "-p11300", "--max-memory=5", "-VV"]),
            [
                "--max-memory",
                "100",
                "-p",
                "11300",
                "--max-memory",
                "5",
                "-V",
                "-V"
            ]
        );
        assert_eq!(split(&["--", "-V"]), ["--", "-V"]);
        let argv = split(&["-p1", "--max-memory=1000"]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let a = Args::from_args(&["sprout"], &argv).expect("parses");
        assert_eq!((a.port, a.max_memory), (1, Some(1000)));
    }

    #[test]
    fn usage_lists_every_flag_argh_knows() {
        let Err(early) = Args::from_args(&["sprout"], &["--help"]) else {
            panic!("--help parsed as arguments");
        };
        let known: Vec<char> = early
            .output
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix('-'))
            .filter_map(|l| l.chars().next())
            .filter(char::is_ascii_alphabetic)
            .collect();
        assert!(known.len() >= 12, "{known:?}");
        for f in known {
            assert!(usage().contains(&format!("\n -{f} ")), "usage() lacks -{f}");
        }
    }

    #[test]
    fn parses_beanstalkd_flags() {
        let argv = split(&[
            "-l",
            "127.0.0.1",
            "-p11301",
            "-z",
            "10",
            "-VV",
            "-c",
            "-n",
            "-s",
            "4096",
        ]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let a = Args::from_args(&["sprout"], &argv).expect("parses");
        assert_eq!(a.listen.as_deref(), Some("127.0.0.1"));
        assert_eq!(a.port, 11301);
        assert_eq!(a.max_job_size, 10);
        assert_eq!(a.verbose, 2);
        assert_eq!(a.binlog_size, 4096);
        assert!(Args::from_args(&["sprout"], &["-q"]).is_err());
    }
}
