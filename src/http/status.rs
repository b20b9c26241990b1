//! The status of the queue for a person or a script: a snapshot of the
//! server, its tubes, connections, reserved and buried jobs, cut to a size
//! a page can show (the longest-running first, and a count of the rest),
//! written as `GET /status.json`. [`page`](super::page) writes the same
//! snapshot as HTML. Job bodies are never included: they may hold secrets.

use std::fmt::Write;

use crate::job::{ClientId, NANOS_PER_SEC, Nanos};

use super::history::{self, Point};
use super::live::Live;
use super::text::{push_json, push_num, query_param};
use super::tube_order::Order;
use crate::peer_cred::UserNames;

/// Rows of each table at most; the rest are counted.
pub const MAX_ROWS: usize = 100;
/// Tubes shown at most (doc/metrics.md and doc/security.md say so too).
pub const MAX_TUBE_ROWS: usize = 500;

/// The window of every rate shown, in seconds (doc/metrics.md).
pub const RATE_WINDOW_SECS: u64 = 60;

/// `?tube=NAME`: only what concerns one tube; `sort` and `order`: how
/// tubes are ordered.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub tube: Option<String>,
    pub order: Order,
}

impl Filter {
    pub fn from_query(query: &str) -> Filter {
        Filter {
            tube: query_param(query, "tube").filter(|t| !t.is_empty()),
            order: Order::from_query(query),
        }
    }

    fn admits(&self, tube: &str) -> bool {
        self.tube.as_deref().is_none_or(|t| t == tube)
    }
}

/// A unix-socket client's process id and user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub pid: i32,
    pub user: String,
}

pub struct ConnRow {
    pub id: ClientId,
    pub addr: String,
    pub who: Option<Who>,
    pub role: &'static str,
    pub used: String,
    pub watched: Vec<String>,
    pub reserved: usize,
    pub connected_for: Nanos,
}

pub struct ReservedRow {
    pub id: u64,
    pub tube: String,
    pub worker: ClientId,
    pub worker_addr: String,
    pub worker_who: Option<Who>,
    pub pri: u32,
    pub body_size: usize,
    pub reserves: u32,
    pub reserved_for: Nanos,
    pub ttr_left: Nanos,
}

pub struct Snapshot<'a> {
    pub live: &'a Live<'a>,
    pub rates: [f64; 3],
    pub tubes: Vec<crate::engine::TubeView<'a>>,
    /// Puts and deletes per second of each tube in `tubes`.
    pub tube_rates: Vec<[f64; 3]>,
    pub tubes_total: usize,
    pub conns: Vec<ConnRow>,
    pub conns_total: usize,
    pub reserved: Vec<ReservedRow>,
    pub reserved_total: usize,
}

/// The first `MAX_ROWS` of `v` by `key`, smallest first, without sorting
/// all of it.
fn first_rows<T, K: Ord>(mut v: Vec<T>, key: impl Fn(&T) -> K) -> (Vec<T>, usize) {
    let total = v.len();
    if v.len() > MAX_ROWS {
        v.select_nth_unstable_by_key(MAX_ROWS, &key);
        v.truncate(MAX_ROWS);
    }
    v.sort_by_key(key);
    (v, total)
}

pub fn snapshot<'a>(live: &'a Live<'a>, filter: &Filter) -> Snapshot<'a> {
    let (e, now) = (live.engine, live.now);
    let peers = live.figures.peers;
    let addr = |c: ClientId| {
        peers
            .peer(c)
            .map_or_else(String::new, |p| p.addr.to_string())
    };
    // /etc/passwd is read only when a unix-socket client is listed.
    let mut users: Option<UserNames> = None;
    let mut who = |c: ClientId| {
        let cred = peers.peer(c)?.cred?;
        let users = users.get_or_insert_with(UserNames::read);
        Some(Who {
            pid: cred.pid,
            user: users.name(cred.uid),
        })
    };
    let (tubes, tube_rates, tubes_total) = tube_rows(live, filter);
    let clients: Vec<_> = e
        .client_views()
        .filter(|c| filter.admits(c.used) || c.watched().any(|t| filter.admits(t)))
        .collect();
    let connected_for = |c: ClientId| peers.peer(c).map_or(0, |p| now.saturating_sub(p.since));
    let (clients, conns_total) = first_rows(clients, |c| std::cmp::Reverse(connected_for(c.id)));
    let conns = (clients.into_iter())
        .map(|c| ConnRow {
            id: c.id,
            addr: addr(c.id),
            who: who(c.id),
            role: match (c.waiting, c.worker, c.producer) {
                (true, _, _) => "waiting",
                (_, true, true) => "producer+worker",
                (_, true, _) => "worker",
                (_, _, true) => "producer",
                _ => "idle",
            },
            used: c.used.to_string(),
            watched: c.watched().map(str::to_string).collect(),
            reserved: c.reserved,
            connected_for: connected_for(c.id),
        })
        .collect();
    // The nearest deadline first: the jobs about to time out.
    let reserved: Vec<_> = e.reservations().filter(|r| filter.admits(r.tube)).collect();
    let (reserved, reserved_total) = first_rows(reserved, |r| (r.deadline, r.id));
    let reserved = reserved
        .into_iter()
        .map(|r| ReservedRow {
            id: r.id,
            tube: r.tube.to_string(),
            worker: r.client,
            worker_addr: addr(r.client),
            worker_who: who(r.client),
            pri: r.pri,
            body_size: r.body_size,
            reserves: r.reserves,
            reserved_for: now.saturating_sub(r.reserved_at),
            ttr_left: r.deadline.saturating_sub(now),
        })
        .collect();
    Snapshot {
        live,
        rates: live.figures.rates.per_second(now, e.flow_counts()),
        tubes,
        tube_rates,
        tubes_total,
        conns,
        conns_total,
        reserved,
        reserved_total,
    }
}

/// The tubes shown, in the filter's order, with their rates, and how many
/// there are in all.
fn tube_rows<'a>(
    live: &'a Live<'a>,
    filter: &Filter,
) -> (Vec<crate::engine::TubeView<'a>>, Vec<[f64; 3]>, usize) {
    use super::tube_order::Column;
    let (e, now) = (live.engine, live.now);
    let order = filter.order;
    // The ages of the oldest jobs read every ready job's key: found for
    // every tube only when they are the order, else for the rows shown.
    let views: Box<dyn Iterator<Item = _>> = if order.by == Column::Oldest {
        Box::new(e.tube_views(now))
    } else {
        Box::new(e.tube_counts(now))
    };
    // Small rows to order (a view is 200 bytes; 10,000 of them moved
    // about by the sort cost four times the rest of the request).
    let mut rows: Vec<(f64, &str, crate::job::TubeId, [f64; 3])> = (views
        .filter(|t| filter.admits(t.name)))
    .map(|t| {
        let counts = [t.total_jobs, t.reserves, t.cmd_delete];
        let r = (live.figures.tube_rates).per_second(now, t.id, counts);
        (order.key(&t, &r), t.name, t.id, r)
    })
    .collect();
    let total = rows.len();
    let cmp = |a: &(f64, &str, _, _), b: &(f64, &str, _, _)| order.compare((a.0, a.1), (b.0, b.1));
    if rows.len() > MAX_TUBE_ROWS {
        rows.select_nth_unstable_by(MAX_TUBE_ROWS, cmp);
        rows.truncate(MAX_TUBE_ROWS);
    }
    rows.sort_by(cmp);
    let (views, rates) = (rows.into_iter())
        .filter_map(|(_, _, id, r)| Some((e.tube_view_at(id, now)?, r)))
        .unzip();
    (views, rates, total)
}

/// Seconds with millisecond precision, for JSON.
pub fn secs(n: Nanos) -> f64 {
    (n / 1_000_000) as f64 / (NANOS_PER_SEC / 1_000_000) as f64
}

pub fn json(live: &Live, filter: &Filter) -> Vec<u8> {
    let s = snapshot(live, filter);
    let e = live.engine;
    let info = e.info();
    let n = e.counts();
    // About what each row takes, so that 140 KB are not grown into.
    let rows = 360 * s.tubes.len() + 240 * s.conns.len() + 240 * s.reserved.len();
    let mut o = String::with_capacity(4096 + rows);
    o.push_str("{\"server\":{\"version\":");
    push_json(&mut o, &info.version);
    o.push_str(",\"hostname\":");
    push_json(&mut o, &info.hostname);
    let _ = write!(
        o,
        ",\"pid\":{},\"uptime\":{},\"draining\":{},\"jobs\":{{\"urgent\":{},\"ready\":{},\"reserved\":{},\"delayed\":{},\"buried\":{}}},\
         \"tubes\":{},\"connections\":{},\"producers\":{},\"workers\":{},\"waiting\":{},\"total_jobs\":{},\"job_timeouts\":{},\
         \"rates\":{{\"put\":{:.3},\"reserve\":{:.3},\"delete\":{:.3}}}}}",
        info.pid,
        secs(e.uptime(live.now)),
        e.is_draining(),
        n.urgent,
        n.ready,
        n.reserved,
        n.delayed,
        n.buried,
        n.tubes,
        n.connections,
        n.producers,
        n.workers,
        n.waiting,
        n.total_jobs,
        n.job_timeouts,
        s.rates[0],
        s.rates[1],
        s.rates[2],
    );
    // Replication, after the server's figures (doc/ha.md).
    let r = e.replication_view();
    o.truncate(o.len() - 1);
    match &r.primary {
        None => {
            let role = if e.refuses_changes() {
                "standby"
            } else {
                "primary"
            };
            let _ = write!(o, ",\"role\":\"{role}\",\"replicas\":{}", r.replicas);
        }
        Some(p) => {
            o.push_str(",\"role\":\"replica\",\"primary\":");
            push_json(&mut o, p);
            let lag = r
                .lag_seconds(live.now)
                .map_or("null".to_string(), |l| format!("{l:.3}"));
            let _ = write!(
                o,
                ",\"following\":{},\"lag\":{lag},\"replicas\":{}",
                r.following, r.replicas
            );
        }
    }
    let _ = write!(o, ",\"epoch\":{}}}", e.epoch());
    o.push_str(",\"filter\":");
    match &filter.tube {
        Some(t) => push_json(&mut o, t),
        None => o.push_str("null"),
    }
    let _ = write!(
        o,
        ",\"sort\":{{\"by\":\"{}\",\"order\":\"{}\"}},\"rate_window\":{RATE_WINDOW_SECS}",
        filter.order.by.name(),
        if filter.order.ascending {
            "asc"
        } else {
            "desc"
        },
    );
    push_history(&mut o, live, filter);
    let _ = write!(o, ",\"tubes_total\":{},\"tubes\":", s.tubes_total);
    array(&mut o, s.tubes.iter().zip(&s.tube_rates), |o, (t, r)| {
        o.push_str("{\"name\":");
        push_json(o, t.name);
        let _ = write!(
            o,
            ",\"put_rate\":{:.3},\"reserve_rate\":{:.3},\"delete_rate\":{:.3}",
            r[0], r[1], r[2]
        );
        for (key, n) in [
            ("urgent", t.urgent),
            ("ready", t.ready),
            ("reserved", t.reserved),
            ("delayed", t.delayed),
            ("buried", t.buried),
            ("total_jobs", t.total_jobs),
            ("using", t.using),
            ("watching", t.watching),
            ("waiting", t.waiting),
            ("reserves", t.reserves),
            ("deletes", t.cmd_delete),
        ] {
            field(o, key, n);
        }
        o.push_str(if t.pause > 0 {
            ",\"paused\":true"
        } else {
            ",\"paused\":false"
        });
        let _ = write!(o, ",\"pause_left\":{}", secs(t.pause_left));
        match t.oldest_ready_age {
            Some(a) => {
                let _ = write!(o, ",\"oldest_ready_age\":{}", secs(a));
            }
            None => o.push_str(",\"oldest_ready_age\":null"),
        }
        match t.oldest_buried {
            Some((id, age)) => {
                let _ = write!(
                    o,
                    ",\"oldest_buried\":{{\"id\":{id},\"age\":{}}}}}",
                    secs(age)
                );
            }
            None => o.push_str(",\"oldest_buried\":null}"),
        }
    });
    let _ = write!(
        o,
        ",\"connections_total\":{},\"connections\":",
        s.conns_total
    );
    array(&mut o, s.conns.iter(), |o, c| {
        let _ = write!(o, "{{\"id\":{},\"addr\":", c.id);
        push_json(o, &c.addr);
        push_who(o, "", &c.who);
        let _ = write!(o, ",\"role\":\"{}\",\"using\":", c.role);
        push_json(o, &c.used);
        o.push_str(",\"watching\":");
        array(o, c.watched.iter(), |o, t| push_json(o, t));
        let _ = write!(
            o,
            ",\"reserved\":{},\"connected_for\":{}}}",
            c.reserved,
            secs(c.connected_for)
        );
    });
    let _ = write!(o, ",\"reserved_total\":{},\"reserved\":", s.reserved_total);
    array(&mut o, s.reserved.iter(), |o, r| {
        let _ = write!(o, "{{\"id\":{},\"tube\":", r.id);
        push_json(o, &r.tube);
        let _ = write!(o, ",\"worker\":{},\"worker_addr\":", r.worker);
        push_json(o, &r.worker_addr);
        push_who(o, "worker_", &r.worker_who);
        let _ = write!(
            o,
            ",\"pri\":{},\"body_size\":{},\"reserves\":{},\"reserved_for\":{},\"ttr_left\":{}}}",
            r.pri,
            r.body_size,
            r.reserves,
            secs(r.reserved_for),
            secs(r.ttr_left)
        );
    });
    o.push_str("}\n");
    o.into_bytes()
}

/// `,"pid":n,"user":"name"` (with `prefix`), null for a TCP client.
fn push_who(o: &mut String, prefix: &str, who: &Option<Who>) {
    match who {
        Some(w) => {
            let _ = write!(o, ",\"{prefix}pid\":{},\"{prefix}user\":", w.pid);
            push_json(o, &w.user);
        }
        None => {
            let _ = write!(o, ",\"{prefix}pid\":null,\"{prefix}user\":null");
        }
    }
}

/// `,"history":{...}`: the chart's points (the server's, or the filter's
/// tube's) and `now`, the point the figures make at this moment (null for
/// a tube that does not exist). `t` is seconds since the server started;
/// rates are per second over the interval before each point (null for a
/// ring's first point, which has none).
fn push_history(o: &mut String, live: &Live, filter: &Filter) {
    let (e, now) = (live.engine, live.now);
    let (ring, levels) = match &filter.tube {
        None => (Some(live.history.server()), Some(e.levels())),
        Some(t) => (live.history.tube(t), e.tube_levels(t)),
    };
    o.push_str(",\"history\":{\"tube\":");
    match &filter.tube {
        Some(t) => push_json(o, t),
        None => o.push_str("null"),
    }
    let _ = write!(
        o,
        ",\"every\":{},\"window\":{},\"kept\":{},\"points\":",
        history::EVERY / NANOS_PER_SEC,
        history::EVERY / NANOS_PER_SEC * history::POINTS as u64,
        ring.is_some()
    );
    let empty = history::Ring::default();
    let ring = ring.unwrap_or(&empty);
    let point = |o: &mut String, p: &Point, since: Option<Nanos>| {
        let _ = write!(
            o,
            "{{\"t\":{},\"ready\":{},\"reserved\":{},\"buried\":{}",
            secs(e.uptime(p.at)),
            p.held[0],
            p.held[1],
            p.held[2]
        );
        match p.rates(since) {
            Some(r) => {
                let _ = write!(
                    o,
                    ",\"put\":{:.3},\"reserve\":{:.3},\"delete\":{:.3}}}",
                    r[0], r[1], r[2]
                );
            }
            None => o.push_str(",\"put\":null,\"reserve\":null,\"delete\":null}"),
        }
    };
    let mut since = None;
    array(o, ring.points(), |o, p| {
        point(o, p, since);
        since = Some(p.at);
    });
    o.push_str(",\"now\":");
    match levels {
        Some(l) => point(o, &ring.point(now, l), since),
        None => o.push_str("null"),
    }
    o.push('}');
}

/// `,"key":n`
fn field(o: &mut String, key: &str, n: u64) {
    o.push_str(",\"");
    o.push_str(key);
    o.push_str("\":");
    push_num(o, n);
}

/// A JSON array of `items`, each written by `each`.
fn array<T>(o: &mut String, items: impl Iterator<Item = T>, mut each: impl FnMut(&mut String, T)) {
    o.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            o.push(',');
        }
        each(o, item);
    }
    o.push(']');
}
