//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4).
//! Every count of `stats` and `stats-tube`, and what no command shows:
//! the age of each tube's oldest ready job, reservations near their
//! deadline, the binlog's files and fsyncs, the loop's turn times.
//! doc/metrics.md maps the names to those of the beanstalkd exporters.

use std::fmt::{Display, Write};

use crate::histogram::Histogram;
use crate::job::{NANOS_PER_SEC, Nanos};
use crate::stats::rusage;

use super::live::Live;
use super::session::{Encoding, Reply};
use super::text::push_label;

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"");
                push_label(&mut self.0, v);
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with one unlabelled sample.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (le, n) in h.cumulative() {
            self.sample(&bucket, &[("le", &le.to_string())], n);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count());
        self.sample(&format!("{name}_sum"), &[], h.sum_seconds());
        self.sample(&format!("{name}_count"), &[], h.count());
    }
}

fn secs(n: Nanos) -> f64 {
    n as f64 / NANOS_PER_SEC as f64
}

/// The exposition; gzip-compressed for a scraper that takes it
/// (Prometheus does), the per-tube part from kept pieces.
pub fn render(live: &mut Live, gzip: bool) -> Reply {
    let (e, now) = (live.engine, live.now);
    let mut o = Out(String::with_capacity(8192));
    let info = e.info();
    o.family(
        "sprout_info",
        "gauge",
        "Always 1; the labels say which server this is.",
    );
    o.sample(
        "sprout_info",
        &[
            ("version", &info.version),
            ("protocol", crate::stats::PROTOCOL_VERSION),
            ("id", &info.instance_id),
            ("hostname", &info.hostname),
            ("pid", &info.pid.to_string()),
        ],
        1,
    );
    o.one(
        "sprout_uptime_seconds",
        "gauge",
        "Time since the server started.",
        secs(e.uptime(now)),
    );
    let ((us, uu), (ss, su)) = rusage();
    o.family(
        "sprout_cpu_seconds_total",
        "counter",
        "CPU time used, by mode (rusage-utime, rusage-stime).",
    );
    o.sample(
        "sprout_cpu_seconds_total",
        &[("mode", "user")],
        us as f64 + uu as f64 / 1e6,
    );
    o.sample(
        "sprout_cpu_seconds_total",
        &[("mode", "system")],
        ss as f64 + su as f64 / 1e6,
    );

    let n = e.counts();
    o.family("sprout_jobs", "gauge", "Jobs by state (current-jobs-*).");
    for (state, count) in [
        ("ready", n.ready),
        ("reserved", n.reserved),
        ("delayed", n.delayed),
        ("buried", n.buried),
    ] {
        o.sample("sprout_jobs", &[("state", state)], count);
    }
    o.one(
        "sprout_urgent_jobs",
        "gauge",
        "Ready jobs with priority below 1024 (current-jobs-urgent).",
        n.urgent,
    );
    o.one(
        "sprout_jobs_created_total",
        "counter",
        "Jobs put since start (total-jobs).",
        n.total_jobs,
    );
    o.one(
        "sprout_job_timeouts_total",
        "counter",
        "Reservations whose TTR ran out (job-timeouts).",
        n.job_timeouts,
    );
    o.family(
        "sprout_commands_total",
        "counter",
        "Commands received, by command (cmd-*).",
    );
    for (op, n) in e.command_counts() {
        o.sample("sprout_commands_total", &[("command", op.name())], n);
    }
    o.one(
        "sprout_max_job_size_bytes",
        "gauge",
        "The largest body a put may have (max-job-size).",
        n.max_job_size,
    );
    o.one(
        "sprout_tubes",
        "gauge",
        "Tubes that exist (current-tubes).",
        n.tubes,
    );
    o.one(
        "sprout_connections",
        "gauge",
        "Open queue connections (current-connections).",
        n.connections,
    );
    o.one(
        "sprout_producers",
        "gauge",
        "Connections that have put a job (current-producers).",
        n.producers,
    );
    o.one(
        "sprout_workers",
        "gauge",
        "Connections that have reserved (current-workers).",
        n.workers,
    );
    o.one(
        "sprout_waiting_workers",
        "gauge",
        "Connections blocked in a reserve (current-waiting).",
        n.waiting,
    );
    o.one(
        "sprout_connections_total",
        "counter",
        "Queue connections accepted since start (total-connections).",
        n.total_connections,
    );
    o.one(
        "sprout_draining",
        "gauge",
        "1 in drain mode (SIGUSR1): puts are refused.",
        e.is_draining() as u8,
    );
    let r = e.replication_view();
    o.one(
        "sprout_replicas",
        "gauge",
        "Replicas following this server.",
        r.replicas,
    );
    o.one(
        "sprout_replica",
        "gauge",
        "1 on a read-only replica (--replica-of) or a standby: changes are refused.",
        e.refuses_changes() as u8,
    );
    o.one(
        "sprout_epoch",
        "gauge",
        "The newest replication epoch this node has seen (doc/ha.md).",
        e.epoch(),
    );
    if r.primary.is_some() {
        o.one(
            "sprout_replica_following",
            "gauge",
            "1 while this replica is connected to its primary and streaming.",
            r.following as u8,
        );
        o.one(
            "sprout_replica_records_applied_total",
            "counter",
            "Records from the primary applied since start.",
            r.applied,
        );
        o.one(
            "sprout_replica_lag_seconds",
            "gauge",
            "How far this replica is behind its primary (-1 before its first heartbeat).",
            format!("{:.3}", r.lag_seconds(now).unwrap_or(-1.0)),
        );
    }
    o.one(
        "sprout_reservations_near_deadline",
        "gauge",
        "Reserved jobs with a second or less of TTR left (the DEADLINE_SOON margin).",
        e.reservations_near_deadline(now),
    );

    let f = &live.figures;
    let stats = f.binlog.as_ref().map(|b| b.stats).unwrap_or_default();
    o.one(
        "sprout_binlog_oldest_index",
        "gauge",
        "Number of the oldest binlog file (binlog-oldest-index).",
        stats.oldest_index,
    );
    o.one(
        "sprout_binlog_current_index",
        "gauge",
        "Number of the binlog file being written (binlog-current-index).",
        stats.current_index,
    );
    o.one(
        "sprout_binlog_records_written_total",
        "counter",
        "Records written to the binlog (binlog-records-written).",
        stats.records_written,
    );
    o.one(
        "sprout_binlog_records_migrated_total",
        "counter",
        "Records moved by compaction (binlog-records-migrated).",
        stats.records_migrated,
    );
    o.one(
        "sprout_binlog_max_file_size_bytes",
        "gauge",
        "Size of each binlog file (binlog-max-size, -s).",
        info.binlog_max_size,
    );
    if let Some(b) = &f.binlog {
        o.one(
            "sprout_binlog_files",
            "gauge",
            "Binlog files holding records.",
            b.files,
        );
        o.one(
            "sprout_binlog_spare_files",
            "gauge",
            "Preallocated empty binlog files kept for deletes.",
            b.spare_files,
        );
        o.one(
            "sprout_binlog_disk_bytes",
            "gauge",
            "Bytes the binlog's files take on disk, spares included.",
            b.disk_bytes,
        );
        o.one(
            "sprout_binlog_live_bytes",
            "gauge",
            "Bytes of the records of live jobs.",
            b.live_bytes,
        );
        o.one(
            "sprout_binlog_live_ratio",
            "gauge",
            "Live bytes over the bytes of files holding records.",
            b.live_ratio,
        );
        o.one(
            "sprout_binlog_fsyncs_total",
            "counter",
            "Successful fsyncs of the binlog file being written.",
            b.fsyncs,
        );
        o.one(
            "sprout_binlog_fsync_failures_total",
            "counter",
            "fsyncs that failed (each one rewrites or stops; see doc/architecture.md).",
            b.fsync_failures,
        );
        o.histogram(
            "sprout_binlog_fsync_duration_seconds",
            "How long successful fsyncs took.",
            &b.fsync_seconds,
        );
    }
    o.histogram(
        "sprout_loop_turn_duration_seconds",
        "How long each turn of the event loop took, from waking to sleeping.",
        f.turns,
    );
    o.one(
        "sprout_http_connections",
        "gauge",
        "Open HTTP connections.",
        f.http_connections,
    );
    o.one(
        "sprout_http_requests_total",
        "counter",
        "HTTP requests answered.",
        f.http_requests,
    );

    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    if gzip {
        let body = live.tube_lines.gzip(|| e.tube_views(now), o.0.as_bytes());
        let mut reply = Reply::new(200, content_type, body);
        reply.encoding = Encoding::Gzip;
        return reply;
    }
    let mut reply = Reply::new(200, content_type, o.0);
    reply.shared = live.tube_lines.render(|| e.tube_views(now));
    reply.encoding = Encoding::Identity;
    reply
}
