// Refreshes the status page every second from /status.json. The page is
// complete without this script; it only keeps the tables current. Mirrors
// src/http/page.rs: the ids and columns are the same.
"use strict";
(function () {
  function human(secs) {
    var s = Math.floor(secs);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " m " + String(s % 60).padStart(2, "0") + " s";
    return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " m";
  }
  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
  }
  function fill(tableId, items, columns) {
    var table = document.getElementById(tableId);
    if (!table) return;
    var body = document.createElement("tbody");
    items.forEach(function (item) {
      var row = document.createElement("tr");
      columns.forEach(function (col) { cell(row, col[0](item), col[1]); });
      body.appendChild(row);
    });
    table.replaceChild(body, table.tBodies[0]);
  }
  function more(id, shown, total, what) {
    var p = document.getElementById(id);
    if (p) p.textContent = total > shown ? "and " + (total - shown) + " more " + what : "";
  }
  // As page.rs's address(): a unix-socket client's process and user.
  function address(addr, pid, user) {
    return pid === null ? addr : addr + ", pid " + pid + ", " + user;
  }
  var SVG = "http://www.w3.org/2000/svg";
  // The chart's frame, in viewBox units (480 by 150).
  var W = 480, H = 150, L = 44, R = 6, T = 8, B = 20;
  // A round number at least v: the top of the axis.
  function top(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }
  function el(name, attrs, text) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // One chart: a line per key over [t1 - window, t1]; rates are null
  // where a point has no interval before it, and those are left out.
  function chart(id, points, keys, t1, windowSecs, digits) {
    var svg = document.getElementById(id);
    if (!svg) return;
    var t0 = t1 - windowSecs;
    var shown = points.filter(function (p) { return p.t >= t0; });
    var max = 0;
    shown.forEach(function (p) { keys.forEach(function (k) { if (p[k] !== null && p[k] > max) max = p[k]; }); });
    var ymax = top(max);
    function x(t) { return (L + (t - t0) / windowSecs * (W - L - R)).toFixed(1); }
    function y(v) { return (T + (1 - v / ymax) * (H - T - B)).toFixed(1); }
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("data-t0", t0);
    svg.setAttribute("data-t1", t1);
    svg.setAttribute("data-top", ymax);
    svg.appendChild(el("path", { class: "axis", d: "M" + L + " " + T + "V" + (H - B) + "H" + (W - R) }));
    svg.appendChild(el("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, ymax.toFixed(digits)));
    svg.appendChild(el("text", { x: L - 4, y: H - B, "text-anchor": "end" }, "0"));
    svg.appendChild(el("text", { x: L, y: H - 5 }, Math.round(windowSecs / 60) + " min ago"));
    [600, 300].forEach(function (ago) {
      if (ago >= windowSecs) return;
      svg.appendChild(el("path", { class: "grid", d: "M" + x(t1 - ago) + " " + T + "V" + (H - B) }));
      svg.appendChild(el("text", { x: x(t1 - ago), y: H - 5, "text-anchor": "middle" }, ago / 60 + " min"));
    });
    svg.appendChild(el("text", { x: W - R, y: H - 5, "text-anchor": "end" }, "now"));
    keys.forEach(function (k) {
      var pts = shown.filter(function (p) { return p[k] !== null; })
        .map(function (p) { return x(p.t) + "," + y(p[k]); });
      svg.appendChild(el("polyline", { class: "k-" + k, "data-key": k, points: pts.join(" ") }));
    });
  }
  function charts(s) {
    var h = s.history;
    var points = h.now ? h.points.concat([h.now]) : h.points;
    var t1 = h.now ? h.now.t : s.server.uptime;
    chart("chart-jobs", points, ["ready", "reserved", "buried"], t1, h.window, 0);
    chart("chart-rates", points, ["put", "reserve", "delete"], t1, h.window, 1);
    var note = h.tube !== null && !h.kept
      ? (h.now ? "no history kept for this tube yet: it starts now" : "no tube " + h.tube)
      : "a point every " + h.every + " s; rates are per second over the interval before each point";
    set("chart-note", note);
  }
  function set(id, text) {
    var el = document.getElementById(id);
    if (el) el.textContent = text;
  }
  function render(s) {
    var v = s.server;
    set("uptime", human(v.uptime));
    ["ready", "reserved", "delayed", "buried"].forEach(function (k) { set("jobs-" + k, v.jobs[k]); });
    set("connections", v.connections);
    set("waiting", v.waiting);
    set("rate-put", v.rates.put.toFixed(1));
    set("rate-reserve", v.rates.reserve.toFixed(1));
    set("rate-delete", v.rates.delete.toFixed(1));
    set("total-jobs", v.total_jobs);
    set("draining", v.draining ? "yes" : "no");
    // As page.rs's role().
    set("role", v.role === "standby"
      ? "standby (epoch " + v.epoch + "): takes no changes"
      : v.role === "primary"
      ? "primary, " + v.replicas + " replica" + (v.replicas === 1 ? "" : "s")
      : !v.following ? "replica of " + v.primary + ", not connected"
      : v.lag === null ? "replica of " + v.primary
      : "replica of " + v.primary + ", lag " + v.lag.toFixed(3) + " s");
    fill("tubes", s.tubes, [
      [function (t) { return t.name; }],
      [function (t) { return t.ready; }],
      [function (t) { return t.reserved; }],
      [function (t) { return t.delayed; }],
      [function (t) { return t.buried; }],
      [function (t) { return t.waiting; }],
      [function (t) { return t.paused ? human(t.pause_left) + " left" : ""; }],
      [function (t) { return t.oldest_ready_age === null ? "" : human(t.oldest_ready_age); }],
      [function (t) { return t.total_jobs; }],
      [function (t) { return t.put_rate.toFixed(1); }],
      [function (t) { return t.reserve_rate.toFixed(1); }],
      [function (t) { return t.delete_rate.toFixed(1); }],
    ]);
    more("tubes-more", s.tubes.length, s.tubes_total, "tubes");
    fill("reserved", s.reserved, [
      [function (r) { return r.id; }, "job"],
      [function (r) { return r.tube; }],
      [function (r) { return "#" + r.worker + " " + address(r.worker_addr, r.worker_pid, r.worker_user); }, "worker"],
      [function (r) { return human(r.reserved_for); }],
      [function (r) { return human(r.ttr_left); }, "ttr"],
      [function (r) { return r.pri; }],
      [function (r) { return r.body_size; }],
      [function (r) { return r.reserves; }],
    ]);
    more("reserved-more", s.reserved.length, s.reserved_total, "reserved jobs");
    fill("connections-table", s.connections, [
      [function (c) { return c.id; }],
      [function (c) { return address(c.addr, c.pid, c.user); }],
      [function (c) { return c.role; }],
      [function (c) { return c.using; }],
      [function (c) { return c.watching.join(", "); }],
      [function (c) { return c.reserved; }],
      [function (c) { return human(c.connected_for); }],
    ]);
    more("connections-more", s.connections.length, s.connections_total, "connections");
    fill("buried", s.tubes.filter(function (t) { return t.buried > 0; }), [
      [function (t) { return t.name; }],
      [function (t) { return t.buried; }],
      [function (t) { return t.oldest_buried ? t.oldest_buried.id : ""; }],
      [function (t) { return t.oldest_buried ? human(t.oldest_buried.age) : ""; }],
    ]);
    charts(s);
    document.body.classList.remove("stale");
  }
  function refresh() {
    fetch("/status.json" + location.search, { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(render)
      .catch(function () { document.body.classList.add("stale"); })
      .then(function () { setTimeout(refresh, 1000); });
  }
  // At once, for the chart; then every second.
  refresh();
})();
