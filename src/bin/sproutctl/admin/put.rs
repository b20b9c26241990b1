//! `put`: one job to the first server that answers, or with `--lines` a
//! job per line of stdin, spread over the servers in turn.

use std::io::{BufRead, Write};

use argh::FromArgs;

use super::Tally;
use crate::args::{body_arg, check_tube};
use crate::client::Conn;
use crate::output::{self, json_str, print};
use crate::servers::Servers;
use crate::{Ctx, exit};

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
    let result = servers
        .put_somewhere(|c| {
            c.use_tube(&a.tube)?;
            c.put(a.pri, a.delay, a.ttr, &body)
        })
        .map(|(id, c)| (id, c.addr));
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

/// One server as `put --lines` sees it.
enum Link {
    /// Not connected yet.
    Unused,
    Up(Conn),
    /// Could not be reached, or was lost: skipped for the rest of the run.
    Down(String),
}

/// One job per line, each to the next server in turn, a connection kept
/// per server. A server that cannot be reached is named and skipped (its
/// turn goes to the next); the run ends with a status that says so.
fn put_lines(ctx: &Ctx, a: &PutArgs) -> i32 {
    let n = ctx.servers.len();
    let mut links: Vec<Link> = (0..n).map(|_| Link::Unused).collect();
    let mut counts = vec![0u64; n];
    let mut tally = Tally::default();
    let mut turn = std::process::id() as usize % n;
    let (mut put, progress) = (0u64, output::stderr_is_terminal());
    if output::stdin_is_terminal() {
        eprintln!("sproutctl: reading jobs from stdin, one per line; end with Ctrl-D");
    }
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut stopped = false;
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
        let mut chosen = None;
        for _ in 0..n {
            let i = turn;
            turn = (turn + 1) % n;
            if let Link::Unused = links[i] {
                links[i] = match Conn::connect(&ctx.servers[i])
                    .and_then(|mut c| c.use_tube(&a.tube).map(|()| c))
                {
                    Ok(c) => Link::Up(c),
                    Err(e) => {
                        let _ = out.flush();
                        tally.failed(&e);
                        Link::Down(e.to_string())
                    }
                };
            }
            if let Link::Up(_) = links[i] {
                chosen = Some(i);
                break;
            }
        }
        let Some(i) = chosen else {
            let _ = out.flush();
            eprintln!("sproutctl: {put} jobs put before no server could be reached");
            stopped = true;
            break;
        };
        let Link::Up(c) = &mut links[i] else { continue };
        match c.put(a.pri, a.delay, a.ttr, &body) {
            Ok(id) => {
                put += 1;
                counts[i] += 1;
                if !ctx.json {
                    let _ = writeln!(out, "{id}");
                }
            }
            Err(e) => {
                // Sent, and no reply: it may be in, so it is not sent again,
                // and the run stops rather than guess which lines are in.
                let _ = out.flush();
                eprintln!("sproutctl: {put} jobs put before this one failed");
                tally.failed(&e);
                links[i] = Link::Down(e.to_string());
                stopped = true;
                break;
            }
        }
        if progress && put.is_multiple_of(1000) {
            eprint!("\rput {put} jobs");
        }
    }
    let _ = out.flush();
    if ctx.json {
        let items: Vec<String> = (ctx.servers.iter().zip(&links).zip(&counts))
            .map(|((addr, link), put)| {
                let server = json_str(addr);
                let tube = json_str(&a.tube);
                match link {
                    Link::Down(why) => format!(
                        "{{\"server\":{server},\"tube\":{tube},\"put\":{put},\"error\":{}}}",
                        json_str(why)
                    ),
                    _ => format!("{{\"server\":{server},\"tube\":{tube},\"put\":{put}}}"),
                }
            })
            .collect();
        print(&format!("[{}]\n", items.join(",")));
    } else if progress && !stopped {
        eprintln!("\rput {put} jobs into {}", a.tube);
    }
    tally.status()
}
