//! `stats` (the server's, a tube's, a job's) and `tubes` (a table of every
//! tube), over every server given.

use argh::FromArgs;

use super::{Tally, one_server};
use crate::Ctx;
use crate::args::check_tube;
use crate::client::{Conn, Error, Stats, stat};
use crate::output::{self, json_map, json_str, print};

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

/// A stats document with the server that gave it first, for JSON.
fn with_server(addr: &str, doc: &Stats) -> String {
    let mut m = doc.clone();
    m.insert(0, ("server".to_string(), addr.to_string()));
    json_map(&m)
}

pub fn stats(ctx: &Ctx, a: StatsArgs) -> i32 {
    if let Some(t) = &a.tube
        && let Err(s) = check_tube(t)
    {
        return s;
    }
    let docs: Vec<(String, Result<Option<Stats>, Error>)> = match a.job {
        Some(id) => {
            let mut c = match one_server(ctx, "stats --job") {
                Ok(c) => c,
                Err(s) => return s,
            };
            let doc = c.stats_job(id);
            vec![(c.addr.clone(), doc)]
        }
        None => (ctx.servers.iter())
            .map(|addr| {
                let doc = Conn::connect(addr).and_then(|mut c| match &a.tube {
                    Some(t) => c.stats_tube(t),
                    None => c.stats().map(Some),
                });
                (addr.clone(), doc)
            })
            .collect(),
    };
    let several = docs.len() > 1;
    let mut tally = Tally::default();
    let mut items = Vec::new();
    for (addr, doc) in &docs {
        match doc {
            Ok(Some(d)) if ctx.json => items.push(with_server(addr, d)),
            Ok(Some(d)) => {
                if several {
                    print(&format!("# {addr}\n"));
                }
                print(&output::pairs(d));
            }
            Ok(None) => match (&a.tube, a.job) {
                (_, Some(id)) => tally.missing_job(id, addr),
                (Some(t), _) => tally.missing(t, addr),
                _ => {}
            },
            Err(e) => {
                tally.failed(e);
                if several {
                    let why = json_str(&e.to_string());
                    items.push(format!("{{\"server\":{},\"error\":{why}}}", json_str(addr)));
                }
            }
        }
    }
    if ctx.json && !items.is_empty() {
        if several {
            print(&format!("[{}]\n", items.join(",")));
        } else {
            print(&format!("{}\n", items[0]));
        }
    }
    tally.status()
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
    let several = ctx.servers.len() > 1;
    let mut tally = Tally::default();
    let (mut rows, mut items) = (Vec::new(), Vec::new());
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
        let docs = match r {
            Ok(v) => v,
            Err(e) => {
                tally.failed(&e);
                let why = json_str(&e.to_string());
                items.push(format!("{{\"server\":{},\"error\":{why}}}", json_str(addr)));
                continue;
            }
        };
        for s in docs {
            let mut row = vec![stat(&s, "name").unwrap_or("").to_string()];
            if several {
                row.insert(0, addr.clone());
            }
            row.extend((TUBE_COLUMNS.iter()).map(|(_, k)| stat(&s, k).unwrap_or("").to_string()));
            rows.push(row);
            items.push(with_server(addr, &s));
        }
    }
    if ctx.json {
        print(&format!("[{}]\n", items.join(",")));
        return tally.status();
    }
    let mut header = vec!["tube"];
    if several {
        header.insert(0, "server");
    }
    header.extend(TUBE_COLUMNS.iter().map(|(h, _)| *h));
    if !rows.is_empty() || tally.failed.is_none() {
        print(&output::table(&header, &rows));
    }
    tally.status()
}
