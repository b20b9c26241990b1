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
    set("draining", v.draining ? "yes" : "no");
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
      [function (r) { return "#" + r.worker + " " + r.worker_addr; }, "worker"],
      [function (r) { return human(r.reserved_for); }],
      [function (r) { return human(r.ttr_left); }, "ttr"],
      [function (r) { return r.pri; }],
      [function (r) { return r.body_size; }],
      [function (r) { return r.reserves; }],
    ]);
    more("reserved-more", s.reserved.length, s.reserved_total, "reserved jobs");
    fill("connections-table", s.connections, [
      [function (c) { return c.id; }],
      [function (c) { return c.addr; }],
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
    document.body.classList.remove("stale");
  }
  function refresh() {
    fetch("/status.json" + location.search, { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(render)
      .catch(function () { document.body.classList.add("stale"); })
      .then(function () { setTimeout(refresh, 1000); });
  }
  setTimeout(refresh, 1000);
})();
