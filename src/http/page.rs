//! `GET /`: the status page, rendered on the server so that it is right
//! without JavaScript; `assets/status.js` then refreshes its tables every
//! second from `/status.json`. The element ids here are what the script
//! fills: keep the two in step.

use std::fmt::Write;

use super::live::Live;
use super::status::{Filter, RATE_WINDOW_SECS, Who, snapshot};
use super::text::{push_html, push_query_value};
use super::tube_order::Column;

/// A duration for a person: `42 s`, `3 m 05 s`, `2 h 10 m`.
pub fn human(nanos: u64) -> String {
    let s = nanos / 1_000_000_000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} m {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} m", s / 3600, s % 3600 / 60),
    }
}

fn esc(v: &str) -> String {
    let mut s = String::new();
    push_html(&mut s, v);
    s
}

/// The window of every rate on the page, in words.
const WINDOW: &str = "1 min";
const _: () = assert!(RATE_WINDOW_SECS == 60, "WINDOW says 1 min");

/// "primary, 2 replicas" or "replica of host:11300, lag 0.004 s" (or
/// "not connected"). status.js writes the same from /status.json.
pub fn role(e: &crate::engine::Engine, now: crate::job::Nanos) -> String {
    let r = e.replication_view();
    match &r.primary {
        None if e.refuses_changes() => format!("standby (epoch {}): takes no changes", e.epoch()),
        None => format!(
            "primary, {} replica{}",
            r.replicas,
            if r.replicas == 1 { "" } else { "s" }
        ),
        Some(p) if !r.following => format!("replica of {p}, not connected"),
        Some(p) => match r.lag_seconds(now) {
            Some(lag) => format!("replica of {p}, lag {lag:.3} s"),
            None => format!("replica of {p}"),
        },
    }
}

/// A client as the page names it: its address, and for a unix-socket
/// client its process and user (`unix, pid 4242, alice`). status.js
/// writes the same.
pub fn address(addr: &str, who: &Option<Who>) -> String {
    match who {
        Some(w) => format!("{addr}, pid {}, {}", w.pid, w.user),
        None => addr.to_string(),
    }
}

/// The tubes' headings, each a link that sorts by it (again: the other
/// way round).
fn tube_heads(o: &mut String, filter: &Filter) {
    const HEADS: [(Column, &str, &str); 12] = [
        (Column::Name, "tube", ""),
        (Column::Ready, "ready", ""),
        (Column::Reserved, "reserved", ""),
        (Column::Delayed, "delayed", ""),
        (Column::Buried, "buried", ""),
        (Column::Waiting, "waiting", ""),
        (Column::Paused, "paused", ""),
        (Column::Oldest, "oldest ready", ""),
        (Column::Puts, "puts", "since start"),
        (Column::PutRate, "put/s", WINDOW),
        (Column::ReserveRate, "reserve/s", WINDOW),
        (Column::DeleteRate, "delete/s", WINDOW),
    ];
    let order = filter.order;
    let way = |asc: bool| if asc { "asc" } else { "desc" };
    let _ = write!(
        o,
        "\n<section><h2>Tubes <span class=\"dim\" id=\"tubes-order\">({})</span></h2>\
         <table id=\"tubes\" data-sort=\"{}\" data-order=\"{}\"><thead><tr>",
        order_words(filter),
        order.by.name(),
        way(order.ascending),
    );
    for (column, label, note) in HEADS {
        let next = order.toggled(column);
        let (aria, mark) = match (order.by == column, order.ascending) {
            (false, _) => ("", ""),
            (true, true) => (" aria-sort=\"ascending\"", " ▲"),
            (true, false) => (" aria-sort=\"descending\"", " ▼"),
        };
        let _ = write!(o, "<th{aria}><a href=\"?");
        if let Some(t) = &filter.tube {
            o.push_str("tube=");
            push_query_value(o, t);
            o.push_str("&amp;");
        }
        let _ = write!(
            o,
            "sort={}&amp;order={}\">{label}</a>",
            column.name(),
            way(next.ascending)
        );
        if !note.is_empty() {
            let _ = write!(o, " <span class=\"dim\">{note}</span>");
        }
        let _ = write!(o, "{mark}</th>");
    }
    o.push_str("</tr></thead><tbody>");
}

/// "busiest first", "by ready, largest first", "by name, A to Z".
fn order_words(filter: &Filter) -> String {
    let o = filter.order;
    let way = match (o.by, o.ascending) {
        (Column::Name, true) => "A to Z",
        (Column::Name, false) => "Z to A",
        (_, true) => "smallest first",
        (_, false) => "largest first",
    };
    match (o.by, o.ascending) {
        (Column::Busy, false) => "busiest first".to_string(),
        (Column::Busy, true) => "quietest first".to_string(),
        (c, _) => format!("by {}, {way}", c.name().replace('_', " ")),
    }
}

/// The last 15 minutes, drawn by status.js from /status.json's history:
/// the page without JavaScript says where the figures are instead.
fn chart_section(o: &mut String, filter: &Filter) {
    let of = match &filter.tube {
        Some(t) => format!("tube {}", esc(t)),
        None => "all tubes".to_string(),
    };
    let _ = write!(
        o,
        "\n<section><h2>Last 15 minutes <span class=\"dim\" id=\"chart-of\">{of}</span></h2>\
         <div class=\"charts\">\
         <figure><figcaption>jobs: <span class=\"k-ready\">ready</span> \
         <span class=\"k-reserved\">reserved</span> <span class=\"k-buried\">buried</span></figcaption>\
         <svg id=\"chart-jobs\" viewBox=\"0 0 480 150\" role=\"img\" aria-label=\"jobs ready, reserved and buried over the last 15 minutes\"></svg></figure>\
         <figure><figcaption>per second: <span class=\"k-put\">put</span> \
         <span class=\"k-reserve\">reserve</span> <span class=\"k-delete\">delete</span></figcaption>\
         <svg id=\"chart-rates\" viewBox=\"0 0 480 150\" role=\"img\" aria-label=\"puts, reserves and deletes per second over the last 15 minutes\"></svg></figure>\
         </div><p class=\"more\" id=\"chart-note\"><noscript>The chart is drawn by JavaScript; \
         <a href=\"/status.json\">status.json</a> has its points.</noscript></p></section>"
    );
}

fn more(o: &mut String, id: &str, shown: usize, total: usize, what: &str) {
    let _ = write!(o, "<p class=\"more\" id=\"{id}\">");
    if total > shown {
        let _ = write!(o, "and {} more {what}", total - shown);
    }
    o.push_str("</p>");
}

pub fn page(live: &Live, filter: &Filter) -> Vec<u8> {
    let s = snapshot(live, filter);
    let e = live.engine;
    let info = e.info();
    let n = e.counts();
    let mut o = String::with_capacity(16 * 1024);
    let host = esc(&info.hostname);
    let _ = write!(
        o,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>sprout on {host}</title><link rel=\"stylesheet\" href=\"/status.css\">\
         <link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\"></head>\n<body>\
         <header><h1>sprout <span class=\"dim\">{} on {host}</span></h1>\
         <form method=\"get\" action=\"/\"><label>Tube <input name=\"tube\" value=\"{}\"></label>\
         <button>Filter</button> <a href=\"/\">all</a></form></header>\n",
        esc(&info.version),
        esc(filter.tube.as_deref().unwrap_or("")),
    );
    let _ = write!(
        o,
        "<section><h2>Server</h2><dl id=\"server\">\
         <div><dt>uptime</dt><dd id=\"uptime\">{}</dd></div>\
         <div><dt>ready</dt><dd id=\"jobs-ready\">{}</dd></div><div><dt>reserved</dt><dd id=\"jobs-reserved\">{}</dd></div>\
         <div><dt>delayed</dt><dd id=\"jobs-delayed\">{}</dd></div><div><dt>buried</dt><dd id=\"jobs-buried\">{}</dd></div>\
         <div><dt>connections</dt><dd id=\"connections\">{}</dd></div><div><dt>waiting</dt><dd id=\"waiting\">{}</dd></div>\
         <div><dt>put/s <span class=\"dim\">last {w}</span></dt><dd id=\"rate-put\">{:.1}</dd></div>\
         <div><dt>reserve/s <span class=\"dim\">last {w}</span></dt><dd id=\"rate-reserve\">{:.1}</dd></div>\
         <div><dt>delete/s <span class=\"dim\">last {w}</span></dt><dd id=\"rate-delete\">{:.1}</dd></div>\
         <div><dt>puts <span class=\"dim\">since start</span></dt><dd id=\"total-jobs\">{}</dd></div>\
         <div><dt>draining</dt><dd id=\"draining\">{}</dd></div>\
         <div><dt>role</dt><dd id=\"role\">{}</dd></div>\
         </dl></section>",
        human(e.uptime(live.now)),
        n.ready,
        n.reserved,
        n.delayed,
        n.buried,
        n.connections,
        n.waiting,
        s.rates[0],
        s.rates[1],
        s.rates[2],
        n.total_jobs,
        if e.is_draining() { "yes" } else { "no" },
        esc(&role(e, live.now)),
        w = WINDOW,
    );
    chart_section(&mut o, filter);
    tube_heads(&mut o, filter);
    for (t, r) in s.tubes.iter().zip(&s.tube_rates) {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            esc(t.name),
            t.ready,
            t.reserved,
            t.delayed,
            t.buried,
            t.waiting,
            if t.pause > 0 {
                format!("{} left", human(t.pause_left))
            } else {
                String::new()
            },
            t.oldest_ready_age.map(human).unwrap_or_default(),
            t.total_jobs,
            r[0],
            r[1],
            r[2],
        );
    }
    o.push_str("</tbody></table>");
    more(&mut o, "tubes-more", s.tubes.len(), s.tubes_total, "tubes");
    o.push_str(
        "</section>\n<section><h2>Reserved jobs <span class=\"dim\">(nearest deadline first)</span></h2>\
         <table id=\"reserved\"><thead><tr><th>job</th><th>tube</th><th>worker</th>\
         <th>reserved for</th><th>TTR left</th><th>pri</th><th>bytes</th><th>reserves</th></tr></thead><tbody>",
    );
    for r in &s.reserved {
        let _ = write!(
            o,
            "<tr><td class=\"job\">{}</td><td>{}</td><td class=\"worker\">#{} {}</td><td>{}</td>\
             <td class=\"ttr\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.id,
            esc(&r.tube),
            r.worker,
            esc(&address(&r.worker_addr, &r.worker_who)),
            human(r.reserved_for),
            human(r.ttr_left),
            r.pri,
            r.body_size,
            r.reserves,
        );
    }
    o.push_str("</tbody></table>");
    more(
        &mut o,
        "reserved-more",
        s.reserved.len(),
        s.reserved_total,
        "reserved jobs",
    );
    o.push_str(
        "</section>\n<section><h2>Connections <span class=\"dim\">(longest first)</span></h2>\
         <table id=\"connections-table\"><thead><tr><th>#</th><th>address</th><th>role</th>\
         <th>using</th><th>watching</th><th>holds</th><th>connected</th></tr></thead><tbody>",
    );
    for cn in &s.conns {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            cn.id,
            esc(&address(&cn.addr, &cn.who)),
            cn.role,
            esc(&cn.used),
            esc(&cn.watched.join(", ")),
            cn.reserved,
            human(cn.connected_for),
        );
    }
    o.push_str("</tbody></table>");
    more(
        &mut o,
        "connections-more",
        s.conns.len(),
        s.conns_total,
        "connections",
    );
    o.push_str(
        "</section>\n<section><h2>Buried</h2><table id=\"buried\"><thead><tr><th>tube</th>\
         <th>buried</th><th>first buried</th><th>its age</th></tr></thead><tbody>",
    );
    for t in s.tubes.iter().filter(|t| t.buried > 0) {
        let (id, age) = t.oldest_buried.unwrap_or_default();
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{id}</td><td>{}</td></tr>",
            esc(t.name),
            t.buried,
            human(age)
        );
    }
    o.push_str(
        "</tbody></table></section>\n<footer class=\"dim\">Job bodies are never shown. \
         <a href=\"/status.json\">status.json</a> · <a href=\"/metrics\">metrics</a></footer>\n\
         <script src=\"/status.js\"></script></body></html>\n",
    );
    o.into_bytes()
}
