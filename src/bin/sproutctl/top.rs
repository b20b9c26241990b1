//! `top`: the tubes of every server, refreshed every second: jobs by
//! state, waiting workers, put and delete rates, pause; sortable, `q`
//! quits. Made for an 80x24 terminal over ssh: plain ANSI (alternate
//! screen, cursor home, clear to end of line), no colour needed, and the
//! terminal put back on every way out. Raw keys come from termios: a
//! terminal-UI crate would bring a second event system for three keys.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use argh::FromArgs;

use crate::client::{Conn, Error, stat};
use crate::{Ctx, exit};

#[derive(FromArgs)]
#[argh(subcommand, name = "top")]
/// A live view of the tubes: s sorts by the next column, r reverses, q
/// quits.
pub struct TopArgs {
    /// column to sort by first (default ready)
    #[argh(option, default = "String::from(\"ready\")")]
    sort: String,
    /// seconds between refreshes (default 1)
    #[argh(option, default = "1.0")]
    interval: f64,
}

/// Columns after the tube name: header, width.
const COLUMNS: [(&str, usize); 8] = [
    ("ready", 7),
    ("reserved", 8),
    ("delayed", 7),
    ("buried", 6),
    ("waiting", 7),
    ("put/s", 7),
    ("delete/s", 8),
    ("paused", 6),
];

/// One tube on one server, one refresh.
#[derive(Clone)]
struct Row {
    server: String,
    name: String,
    /// ready, reserved, delayed, buried, waiting.
    counts: [u64; 5],
    /// total-jobs and cmd-delete, for rates.
    totals: [u64; 2],
    rates: [f64; 2],
    pause_left: u64,
}

impl Row {
    fn key(&self, col: usize) -> f64 {
        match col {
            0..=4 => self.counts[col] as f64,
            5 | 6 => self.rates[col - 5],
            _ => self.pause_left as f64,
        }
    }
}

/// Reads every tube of every server, and the servers' puts, reserve
/// commands and deletes so far (summed).
fn sample(conns: &mut [(String, Option<Conn>)]) -> (Vec<Row>, Vec<String>, [u64; 3]) {
    let (mut rows, mut down, mut flow) = (Vec::new(), Vec::new(), [0u64; 3]);
    for (addr, conn) in conns.iter_mut() {
        if conn.is_none() {
            *conn = Conn::connect(addr).ok();
        }
        let Some(c) = conn.as_mut() else {
            down.push(addr.clone());
            continue;
        };
        let got = (|| {
            let st = c.stats()?;
            let n = |k: &str| {
                stat(&st, k)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let server = [
                n("total-jobs"),
                n("cmd-reserve") + n("cmd-reserve-with-timeout"),
                n("cmd-delete"),
            ];
            let mut v = Vec::new();
            for t in c.list_tubes()? {
                let Some(s) = c.stats_tube(&t)? else { continue };
                let n = |k: &str| stat(&s, k).and_then(|v| v.parse().ok()).unwrap_or(0);
                v.push(Row {
                    server: addr.clone(),
                    name: t,
                    counts: [
                        n("current-jobs-ready"),
                        n("current-jobs-reserved"),
                        n("current-jobs-delayed"),
                        n("current-jobs-buried"),
                        n("current-waiting"),
                    ],
                    totals: [n("total-jobs"), n("cmd-delete")],
                    rates: [0.0; 2],
                    pause_left: n("pause-time-left"),
                });
            }
            Ok::<_, Error>((v, server))
        })();
        match got {
            Ok((v, server)) => {
                rows.extend(v);
                for (f, n) in flow.iter_mut().zip(server) {
                    *f += n;
                }
            }
            Err(_) => {
                *conn = None;
                down.push(addr.clone());
            }
        }
    }
    (rows, down, flow)
}

/// The terminal in no-echo, no-line mode until dropped.
struct Raw {
    saved: libc::termios,
}

impl Raw {
    fn enter() -> Option<Raw> {
        // SAFETY: tcgetattr/tcsetattr on stdin with a termios we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            t.c_lflag &= !(libc::ICANON | libc::ECHO);
            t.c_cc[libc::VMIN] = 0;
            t.c_cc[libc::VTIME] = 0;
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return None;
            }
            print!("\x1b[?1049h\x1b[?25l");
            let _ = std::io::stdout().flush();
            Some(Raw { saved })
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        print!("\x1b[?25h\x1b[?1049l");
        let _ = std::io::stdout().flush();
        // SAFETY: restores the settings read in enter().
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

/// A key, if one comes within `wait`.
fn key(wait: Duration) -> Option<u8> {
    let mut fds = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll and read on stdin into a local buffer.
    unsafe {
        if libc::poll(&mut fds, 1, wait.as_millis() as i32) <= 0 {
            return None;
        }
        let mut b = 0u8;
        (libc::read(0, (&mut b as *mut u8).cast(), 1) == 1).then_some(b)
    }
}

fn size() -> (usize, usize) {
    // SAFETY: TIOCGWINSZ fills a winsize we own.
    unsafe {
        let mut w: libc::winsize = std::mem::zeroed();
        if libc::ioctl(1, libc::TIOCGWINSZ, &mut w) == 0 && w.ws_col > 0 {
            return (w.ws_col as usize, w.ws_row as usize);
        }
    }
    (80, 24)
}

pub fn run(ctx: &Ctx, a: TopArgs) -> i32 {
    let Some(mut sort) = COLUMNS.iter().position(|(h, _)| *h == a.sort) else {
        let names: Vec<&str> = COLUMNS.iter().map(|(h, _)| *h).collect();
        return exit::usage(&format!("--sort {}: one of {}", a.sort, names.join(", ")));
    };
    if !crate::output::stdout_is_terminal() {
        return exit::usage("top draws on a terminal; for a script, use tubes --json");
    }
    let mut conns: Vec<(String, Option<Conn>)> = (ctx.servers.iter())
        .map(|s| (s.clone(), Conn::connect(s).ok()))
        .collect();
    if conns.iter().all(|(_, c)| c.is_none()) {
        return match Conn::connect(&ctx.servers[0]) {
            Err(e) => exit::report(&e),
            Ok(_) => exit::UNAVAILABLE,
        };
    }
    // Without the flag, q still quits (and Ctrl-C then ends it unrestored).
    let quit = crate::stop::on_signal().unwrap_or_default();
    let Some(_raw) = Raw::enter() else {
        return exit::usage("top cannot set up the terminal");
    };
    let interval = Duration::from_secs_f64(a.interval.max(0.1));
    let mut reverse = false;
    let mut last: HashMap<(String, String), ([u64; 2], Instant)> = HashMap::new();
    let mut last_flow: Option<([u64; 3], Instant)> = None;
    loop {
        let (mut rows, down, flow) = sample(&mut conns);
        let now = Instant::now();
        let server_rates: [f64; 3] = match last_flow {
            Some((then, at)) => {
                let secs = now.duration_since(at).as_secs_f64().max(1e-3);
                std::array::from_fn(|i| flow[i].saturating_sub(then[i]) as f64 / secs)
            }
            None => [0.0; 3],
        };
        last_flow = Some((flow, now));
        for r in rows.iter_mut() {
            let k = (r.server.clone(), r.name.clone());
            if let Some((then, at)) = last.get(&k) {
                let secs = now.duration_since(*at).as_secs_f64().max(1e-3);
                let (totals, rates) = (r.totals, &mut r.rates);
                for ((rate, now), then) in rates.iter_mut().zip(totals).zip(then) {
                    *rate = now.saturating_sub(*then) as f64 / secs;
                }
            }
        }
        last = (rows.iter())
            .map(|r| ((r.server.clone(), r.name.clone()), (r.totals, now)))
            .collect();
        rows.sort_by(|x, y| {
            let o = y
                .key(sort)
                .total_cmp(&x.key(sort))
                .then(x.name.cmp(&y.name));
            if reverse { o.reverse() } else { o }
        });
        draw(ctx, &rows, &down, server_rates, sort, reverse);
        let until = Instant::now() + interval;
        while Instant::now() < until {
            if quit.load(Ordering::Relaxed) {
                return exit::OK;
            }
            match key(until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100)))
            {
                Some(b'q') | Some(b'Q') => return exit::OK,
                Some(b's') => {
                    sort = (sort + 1) % COLUMNS.len();
                    break;
                }
                Some(b'r') => {
                    reverse = !reverse;
                    break;
                }
                _ => {}
            }
        }
    }
}

fn draw(ctx: &Ctx, rows: &[Row], down: &[String], rates: [f64; 3], sort: usize, reverse: bool) {
    let (width, height) = size();
    let several = ctx.servers.len() > 1;
    let total = |i: usize| rows.iter().map(|r| r.counts[i]).sum::<u64>();
    let mut lines = vec![
        format!(
            "{}  {} tubes  ready {}  reserved {}  delayed {}  buried {}",
            if several {
                format!("{} servers", ctx.servers.len())
            } else {
                ctx.servers[0].clone()
            },
            rows.len(),
            total(0),
            total(1),
            total(2),
            total(3)
        ),
        format!(
            "put/s {:.1}  reserve/s {:.1}  delete/s {:.1}   (reserve: commands, all tubes)",
            rates[0], rates[1], rates[2]
        ),
        format!(
            "sorted by {}{}   s: next column  r: reverse  q: quit{}",
            COLUMNS[sort].0,
            if reverse { " (reversed)" } else { "" },
            if down.is_empty() {
                String::new()
            } else {
                format!("   unreachable: {}", down.join(", "))
            }
        ),
    ];
    let name_width = width
        .saturating_sub(COLUMNS.iter().map(|(_, w)| w + 1).sum::<usize>())
        .clamp(8, 40);
    let mut head = format!("{:<name_width$}", "tube");
    for (i, (h, w)) in COLUMNS.iter().enumerate() {
        // The sort column in capitals: a marker would widen it.
        let h = if i == sort {
            h.to_uppercase()
        } else {
            h.to_string()
        };
        head.push_str(&format!(" {h:>w$}"));
    }
    lines.push(head);
    for r in rows.iter().take(height.saturating_sub(lines.len() + 1)) {
        let mut name = if several {
            format!("{}/{}", r.server, r.name)
        } else {
            r.name.clone()
        };
        if name.chars().count() > name_width {
            name = name.chars().take(name_width - 1).collect::<String>() + "~";
        }
        let mut l = format!("{name:<name_width$}");
        for (i, (_, w)) in COLUMNS.iter().enumerate() {
            let cell = match i {
                0..=4 => r.counts[i].to_string(),
                5 | 6 => format!("{:.1}", r.rates[i - 5]),
                _ if r.pause_left > 0 => format!("{}s", r.pause_left),
                _ => String::new(),
            };
            l.push_str(&format!(" {cell:>w$}"));
        }
        lines.push(l);
    }
    if rows.len() + 3 > height.saturating_sub(1) {
        lines.push(format!("... {} tubes in all", rows.len()));
    }
    let mut out = String::from("\x1b[H");
    for (i, l) in lines.iter().take(height).enumerate() {
        if i > 0 {
            // No newline after the last: the screen must not scroll.
            out.push_str("\r\n");
        }
        out.extend(l.chars().take(width));
        out.push_str("\x1b[K");
    }
    out.push_str("\x1b[J");
    print!("{out}");
    let _ = std::io::stdout().flush();
}
