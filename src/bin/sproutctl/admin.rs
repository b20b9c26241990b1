//! The one-shot subcommands: put, peek, delete, kick, kick-job, pause,
//! flush, stats, tubes. A job id names a job on one server only, so the
//! subcommands that take ids want exactly one `--server`; those that act
//! on tubes act on every server given.

use std::io::{BufRead, Read, Write};

use argh::FromArgs;
use sprout::protocol::valid_tube_name;

use crate::client::{Conn, Error, Stats, stat};
use crate::output::{self, json_body, json_map, json_str, print};
use crate::servers::Servers;
use crate::{Ctx, exit};

fn check_tube(t: &str) -> Result<(), i32> {
    if valid_tube_name(t.as_bytes()) {
        Ok(())
    } else {
        Err(exit::usage(&format!(
            "{t:?} is not a tube name: 1 to 200 of A-Z a-z 0-9 - + / ; . $ _ ( ), not starting with -"
        )))
    }
}

/// A body given as an argument, or read from stdin when it is `-` or
/// absent (put and call).
pub fn body_arg(arg: Option<&str>) -> Result<Vec<u8>, i32> {
    match arg {
        Some("-") | None => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b).map_err(|e| {
                eprintln!("sproutctl: cannot read the body from stdin: {e}");
                exit::USAGE
            })?;
            Ok(b)
        }
        Some(b) => Ok(b.as_bytes().to_vec()),
    }
}

/// The one server an id-addressed subcommand talks to.
fn one_server(ctx: &Ctx, what: &str) -> Result<Conn, i32> {
    if ctx.servers.len() > 1 {
        return Err(exit::usage(&format!(
            "{what} names jobs by id, and ids are per server: give one --server"
        )));
    }
    Conn::connect(&ctx.servers[0]).map_err(|e| exit::report(&e))
}

#[derive(FromArgs)]
#[argh(subcommand, name = "put")]
/// Put a job (its body from the argument, or stdin) and print its id.
pub struct PutArgs {
    /// tube (default "default")
    #[argh(option, default = "String::from(\"default\")")]
    tube: String,
    /// priority, 0 most urgent (default 1024)
    #[argh(option, default = "1024")]
    pri: u32,
    /// seconds before the job is ready (default 0)
    #[argh(option, default = "0")]
    delay: u32,
    /// seconds a worker may hold the job (default 60)
    #[argh(option, default = "60")]
    ttr: u32,
    /// one job per line of stdin, the newline left out
    #[argh(switch)]
    lines: bool,
    /// the body; "-" or none reads stdin
    #[argh(positional)]
    body: Option<String>,
}

pub fn put(ctx: &Ctx, a: PutArgs) -> i32 {
    if let Err(s) = check_tube(&a.tube) {
        return s;
    }
    if a.lines {
        return put_lines(ctx, &a);
    }
    let mut servers = Servers::new(&ctx.servers);
    let body = match body_arg(a.body.as_deref()) {
        Ok(b) => b,
        Err(status) => return status,
    };
    let result = servers.connect_next().and_then(|mut c| {
        c.use_tube(&a.tube)?;
        Ok((c.put(a.pri, a.delay, a.ttr, &body)?, c.addr))
    });
    match result {
        Ok((id, addr)) if ctx.json => {
            print(&format!("{{\"id\":{id},\"server\":{}}}\n", json_str(&addr)));
            exit::OK
        }
        Ok((id, _)) => {
            print(&format!("{id}\n"));
            exit::OK
        }
        Err(e) => exit::report(&e),
    }
}

/// One job per line, each to the next server in turn, a connection kept
/// per server; a server that cannot be reached is skipped.
fn put_lines(ctx: &Ctx, a: &PutArgs) -> i32 {
    let n = ctx.servers.len();
    let mut conns: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
    let mut turn = std::process::id() as usize % n;
    let (mut put, progress) = (0u64, output::stderr_is_terminal());
    let mut out = std::io::BufWriter::new(std::io::stdout());
    for line in std::io::stdin().lock().split(b'\n') {
        let mut body = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("sproutctl: cannot read stdin: {e}");
                return exit::USAGE;
            }
        };
        if body.last() == Some(&b'\r') {
            body.pop();
        }
        // The next server that answers.
        let mut last_err = None;
        let mut chosen = None;
        for _ in 0..n {
            let i = turn;
            turn = (turn + 1) % n;
            if conns[i].is_none() {
                match Conn::connect(&ctx.servers[i])
                    .and_then(|mut c| c.use_tube(&a.tube).map(|()| c))
                {
                    Ok(c) => conns[i] = Some(c),
                    Err(e) => {
                        last_err = Some(e);
                        continue;
                    }
                }
            }
            chosen = Some(i);
            break;
        }
        let Some(i) = chosen else {
            let _ = out.flush();
            eprintln!("sproutctl: {put} jobs put before no server could be reached");
            return last_err.map_or(exit::UNAVAILABLE, |e| exit::report(&e));
        };
        let Some(c) = conns[i].as_mut() else { continue };
        match c.put(a.pri, a.delay, a.ttr, &body) {
            Ok(id) => {
                put += 1;
                if !ctx.json {
                    let _ = writeln!(out, "{id}");
                }
            }
            Err(e) => {
                // Sent, and no reply: it may be in, so it is not sent again.
                let _ = out.flush();
                eprintln!("sproutctl: {put} jobs put before this one failed");
                return exit::report(&e);
            }
        }
        if progress && put.is_multiple_of(1000) {
            eprint!("\rput {put} jobs");
        }
    }
    let _ = out.flush();
    if ctx.json {
        print(&format!(
            "{{\"put\":{put},\"tube\":{}}}\n",
            json_str(&a.tube)
        ));
    } else if progress {
        eprintln!("\rput {put} jobs into {}", a.tube);
    }
    exit::OK
}

#[derive(FromArgs)]
#[argh(subcommand, name = "peek")]
/// Show a job's stats and body: by id, or the next ready, delayed or
/// buried job of a tube.
pub struct PeekArgs {
    /// the next ready job
    #[argh(switch)]
    ready: bool,
    /// the delayed job next to be ready
    #[argh(switch)]
    delayed: bool,
    /// the next buried job to be kicked
    #[argh(switch)]
    buried: bool,
    /// tube for --ready, --delayed, --buried (default "default")
    #[argh(option, default = "String::from(\"default\")")]
    tube: String,
    /// job id
    #[argh(positional)]
    id: Option<u64>,
}

pub fn peek(ctx: &Ctx, a: PeekArgs) -> i32 {
    let states = [
        (a.ready, "ready"),
        (a.delayed, "delayed"),
        (a.buried, "buried"),
    ];
    let chosen: Vec<&str> = states
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, s)| *s)
        .collect();
    let command = match (a.id, chosen.as_slice()) {
        (Some(id), []) => format!("peek {id}"),
        (None, [state]) => format!("peek-{state}"),
        _ => return exit::usage("peek wants a job id, or one of --ready, --delayed, --buried"),
    };
    if let Err(s) = check_tube(&a.tube) {
        return s;
    }
    let mut c = match one_server(ctx, "peek") {
        Ok(c) => c,
        Err(s) => return s,
    };
    let found = (|| {
        if a.id.is_none() {
            c.use_tube(&a.tube)?;
        }
        let Some(job) = c.peek(&command)? else {
            return Ok(None);
        };
        // The job may go between the peek and its stats.
        let stats = c.stats_job(job.id)?.unwrap_or_default();
        Ok::<_, Error>(Some((job, stats)))
    })();
    let (job, stats) = match found {
        Ok(Some(j)) => j,
        Ok(None) => {
            match a.id {
                Some(id) => eprintln!("sproutctl: no job {id} on {}", c.addr),
                None => eprintln!("sproutctl: no {} job in tube {}", chosen[0], a.tube),
            }
            return exit::NOT_FOUND;
        }
        Err(e) => return exit::report(&e),
    };
    if ctx.json {
        print(&format!(
            "{{\"id\":{},\"stats\":{},{}}}\n",
            job.id,
            json_map(&stats),
            json_body(&job.body)
        ));
    } else if output::stdout_is_terminal() {
        print(&output::pairs(&stats));
        print(&format!("\n{}\n", output::escaped(&job.body)));
    } else {
        // Piped: the body byte for byte, the stats beside it on stderr.
        eprint!("{}", output::pairs(&stats));
        let _ = std::io::stdout().write_all(&job.body);
    }
    exit::OK
}

#[derive(FromArgs)]
#[argh(subcommand, name = "delete")]
/// Delete jobs by id.
pub struct DeleteArgs {
    /// job ids
    #[argh(positional)]
    ids: Vec<u64>,
}

pub fn delete(ctx: &Ctx, a: DeleteArgs) -> i32 {
    by_ids(ctx, "delete", &a.ids, "deleted", |c, id| c.delete(id))
}

#[derive(FromArgs)]
#[argh(subcommand, name = "kick-job")]
/// Kick buried or delayed jobs by id.
pub struct KickJobArgs {
    /// job ids
    #[argh(positional)]
    ids: Vec<u64>,
}

pub fn kick_job(ctx: &Ctx, a: KickJobArgs) -> i32 {
    by_ids(ctx, "kick-job", &a.ids, "kicked", |c, id| c.kick_job(id))
}

/// Runs `each` on every id: NOT_FOUND for any is status 3, after the rest.
fn by_ids(
    ctx: &Ctx,
    what: &str,
    ids: &[u64],
    done: &str,
    mut each: impl FnMut(&mut Conn, u64) -> Result<bool, Error>,
) -> i32 {
    if ids.is_empty() {
        return exit::usage(&format!("{what} wants at least one job id"));
    }
    let mut c = match one_server(ctx, what) {
        Ok(c) => c,
        Err(s) => return s,
    };
    let (mut ok, mut missing) = (Vec::new(), Vec::new());
    for &id in ids {
        match each(&mut c, id) {
            Ok(true) => ok.push(id),
            Ok(false) => missing.push(id),
            Err(e) => return exit::report(&e),
        }
    }
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    if ctx.json {
        print(&format!(
            "{{\"{done}\":[{}],\"not_found\":[{}]}}\n",
            list(&ok),
            list(&missing)
        ));
    } else {
        for id in &ok {
            print(&format!("{done} {id}\n"));
        }
    }
    for id in &missing {
        eprintln!(
            "sproutctl: no job {id} that {what} can act on at {}",
            c.addr
        );
    }
    if missing.is_empty() {
        exit::OK
    } else {
        exit::NOT_FOUND
    }
}

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
    each_server(ctx, "kicked", |c| {
        c.use_tube(&a.tube)?;
        c.kick(a.bound)
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
    let mut missing = false;
    let status = each_server(ctx, "paused", |c| {
        let found = c.pause_tube(&a.tube, a.seconds)?;
        if !found {
            eprintln!("sproutctl: no tube {} on {}", a.tube, c.addr);
            missing = true;
        }
        Ok(found as u64)
    });
    if status == exit::OK && missing {
        exit::NOT_FOUND
    } else {
        status
    }
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
    each_server(ctx, "deleted", |c| {
        c.use_tube(&a.tube)?;
        let mut n = 0;
        for state in &states {
            // A job a worker takes between the peek and the delete is
            // left to it; the next peek finds the next one.
            while let Some(job) = c.peek(&format!("peek-{state}"))? {
                n += c.delete(job.id)? as u64;
            }
        }
        Ok(n)
    })
}

/// Runs `each` on every server; prints the count each gave.
fn each_server(
    ctx: &Ctx,
    done: &str,
    mut each: impl FnMut(&mut Conn) -> Result<u64, Error>,
) -> i32 {
    let mut results = Vec::new();
    for addr in &ctx.servers {
        let r = Conn::connect(addr).and_then(|mut c| each(&mut c));
        match r {
            Ok(n) => results.push((addr.clone(), n)),
            Err(e) => return exit::report(&e),
        }
    }
    if ctx.json {
        let items: Vec<String> = (results.iter())
            .map(|(a, n)| format!("{{\"server\":{},\"{done}\":{n}}}", json_str(a)))
            .collect();
        print(&format!("[{}]\n", items.join(",")));
    } else if results.len() == 1 {
        print(&format!("{done} {}\n", results[0].1));
    } else {
        for (a, n) in &results {
            print(&format!("{a}: {done} {n}\n"));
        }
    }
    exit::OK
}

#[derive(FromArgs)]
#[argh(subcommand, name = "stats")]
/// The server's stats, a tube's (stats TUBE) or a job's (--job ID).
pub struct StatsArgs {
    /// a job's stats
    #[argh(option)]
    job: Option<u64>,
    /// tube
    #[argh(positional)]
    tube: Option<String>,
}

pub fn stats(ctx: &Ctx, a: StatsArgs) -> i32 {
    if let Some(t) = &a.tube
        && let Err(s) = check_tube(t)
    {
        return s;
    }
    let docs: Vec<(String, Option<Stats>)> = match a.job {
        Some(id) => {
            let mut c = match one_server(ctx, "stats --job") {
                Ok(c) => c,
                Err(s) => return s,
            };
            match c.stats_job(id) {
                Ok(doc) => vec![(c.addr.clone(), doc)],
                Err(e) => return exit::report(&e),
            }
        }
        None => {
            let mut v = Vec::new();
            for addr in &ctx.servers {
                let r = Conn::connect(addr).and_then(|mut c| match &a.tube {
                    Some(t) => c.stats_tube(t),
                    None => c.stats().map(Some),
                });
                match r {
                    Ok(doc) => v.push((addr.clone(), doc)),
                    Err(e) => return exit::report(&e),
                }
            }
            v
        }
    };
    let mut status = exit::OK;
    let mut items = Vec::new();
    for (addr, doc) in &docs {
        match doc {
            Some(d) if ctx.json => items.push(json_map(d)),
            Some(d) => {
                if docs.len() > 1 {
                    print(&format!("# {addr}\n"));
                }
                print(&output::pairs(d));
            }
            None => {
                status = exit::NOT_FOUND;
                match (&a.tube, a.job) {
                    (_, Some(id)) => eprintln!("sproutctl: no job {id} on {addr}"),
                    (Some(t), _) => eprintln!("sproutctl: no tube {t} on {addr}"),
                    _ => {}
                }
            }
        }
    }
    if ctx.json && status == exit::OK {
        if items.len() == 1 {
            print(&format!("{}\n", items[0]));
        } else {
            print(&format!("[{}]\n", items.join(",")));
        }
    }
    status
}

#[derive(FromArgs)]
#[argh(subcommand, name = "tubes")]
/// One line per tube with its jobs by state, workers and pause.
pub struct TubesArgs {}

/// The columns of `tubes`: header and stats-tube key.
const TUBE_COLUMNS: [(&str, &str); 8] = [
    ("ready", "current-jobs-ready"),
    ("reserved", "current-jobs-reserved"),
    ("delayed", "current-jobs-delayed"),
    ("buried", "current-jobs-buried"),
    ("urgent", "current-jobs-urgent"),
    ("waiting", "current-waiting"),
    ("watching", "current-watching"),
    ("pause-left", "pause-time-left"),
];

pub fn tubes(ctx: &Ctx, _a: TubesArgs) -> i32 {
    let mut rows = Vec::new();
    let mut docs = Vec::new();
    for addr in &ctx.servers {
        let r = Conn::connect(addr).and_then(|mut c| {
            let mut v = Vec::new();
            for t in c.list_tubes()? {
                // A tube can go between list-tubes and stats-tube.
                if let Some(s) = c.stats_tube(&t)? {
                    v.push(s);
                }
            }
            Ok(v)
        });
        match r {
            Ok(v) => {
                for s in v {
                    let mut row = vec![stat(&s, "name").unwrap_or("").to_string()];
                    if ctx.servers.len() > 1 {
                        row.insert(0, addr.clone());
                    }
                    row.extend(
                        TUBE_COLUMNS
                            .iter()
                            .map(|(_, k)| stat(&s, k).unwrap_or("").to_string()),
                    );
                    rows.push(row);
                    docs.push((addr.clone(), s));
                }
            }
            Err(e) => return exit::report(&e),
        }
    }
    if ctx.json {
        let items: Vec<String> = (docs.iter())
            .map(|(addr, s)| {
                let mut m = s.clone();
                m.insert(0, ("server".to_string(), addr.clone()));
                json_map(&m)
            })
            .collect();
        print(&format!("[{}]\n", items.join(",")));
        return exit::OK;
    }
    let mut header = vec!["tube"];
    if ctx.servers.len() > 1 {
        header.insert(0, "server");
    }
    header.extend(TUBE_COLUMNS.iter().map(|(h, _)| *h));
    print(&output::table(&header, &rows));
    exit::OK
}
