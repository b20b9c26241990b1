//! `GET /`: the status page, rendered on the server so that it is right
//! without JavaScript; `assets/status.js` then refreshes its tables every
//! second from `/status.json`. The element ids here are what the script
//! fills: keep the two in step.

use std::fmt::Write;

use super::live::Live;
use super::status::{Filter, snapshot};
use super::text::push_html;

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
         <div><dt>put/s</dt><dd id=\"rate-put\">{:.1}</dd></div><div><dt>reserve/s</dt><dd id=\"rate-reserve\">{:.1}</dd></div>\
         <div><dt>delete/s</dt><dd id=\"rate-delete\">{:.1}</dd></div><div><dt>draining</dt><dd id=\"draining\">{}</dd></div>\
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
        if e.is_draining() { "yes" } else { "no" },
    );
    o.push_str(
        "\n<section><h2>Tubes</h2><table id=\"tubes\"><thead><tr><th>tube</th><th>ready</th>\
         <th>reserved</th><th>delayed</th><th>buried</th><th>waiting</th><th>paused</th>\
         <th>oldest ready</th><th>total</th><th>put/s</th><th>reserve/s</th><th>delete/s</th></tr></thead><tbody>",
    );
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
        "</section>\n<section><h2>Reserved jobs <span class=\"dim\">(longest first)</span></h2>\
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
            esc(&r.worker_addr),
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
            esc(&cn.addr),
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
