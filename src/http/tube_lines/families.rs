//! What the per-tube part of `/metrics` holds: the families, their help,
//! and how one tube's values are written as lines.

use crate::engine::TubeView;
use crate::job::Nanos;
use crate::reply::push_u64;

/// The values written per tube, in family order.
pub const SLOTS: usize = 15;

pub struct Family {
    pub name: &'static str,
    pub kind: &'static str,
    pub help: &'static str,
    /// This family's values among a tube's SLOTS, one line each.
    pub slots: std::ops::Range<usize>,
    /// Labels after `tube`, one per slot (empty: none).
    extra: &'static [&'static str],
    /// The values are milliseconds, written as seconds.
    secs: bool,
}

const fn family(
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    slot: usize,
    secs: bool,
) -> Family {
    Family {
        name,
        kind,
        help,
        slots: slot..slot + 1,
        extra: &[""],
        secs,
    }
}

pub const FAMILIES: [Family; 12] = [
    Family {
        name: "sprout_tube_jobs",
        kind: "gauge",
        help: "Jobs in the tube by state (stats-tube current-jobs-*).",
        slots: 0..4,
        extra: &[
            ",state=\"ready\"",
            ",state=\"reserved\"",
            ",state=\"delayed\"",
            ",state=\"buried\"",
        ],
        secs: false,
    },
    family(
        "sprout_tube_urgent_jobs",
        "gauge",
        "Ready jobs with priority below 1024 (current-jobs-urgent).",
        4,
        false,
    ),
    family(
        "sprout_tube_jobs_created_total",
        "counter",
        "Jobs put into the tube (total-jobs).",
        5,
        false,
    ),
    family(
        "sprout_tube_reserves_total",
        "counter",
        "Reservations of the tube's jobs (no command shows it).",
        6,
        false,
    ),
    family(
        "sprout_tube_deletes_total",
        "counter",
        "Jobs deleted from the tube (cmd-delete).",
        7,
        false,
    ),
    family(
        "sprout_tube_pauses_total",
        "counter",
        "pause-tube commands for the tube (cmd-pause-tube).",
        8,
        false,
    ),
    family(
        "sprout_tube_using_connections",
        "gauge",
        "Connections using the tube (current-using).",
        9,
        false,
    ),
    family(
        "sprout_tube_watching_connections",
        "gauge",
        "Connections watching the tube (current-watching).",
        10,
        false,
    ),
    family(
        "sprout_tube_waiting_workers",
        "gauge",
        "Connections blocked in a reserve that watch the tube (current-waiting).",
        11,
        false,
    ),
    family(
        "sprout_tube_pause_seconds",
        "gauge",
        "Length of the tube's pause, 0 if not paused (pause).",
        12,
        true,
    ),
    family(
        "sprout_tube_pause_remaining_seconds",
        "gauge",
        "Time left of the tube's pause (pause-time-left).",
        13,
        true,
    ),
    family(
        "sprout_tube_oldest_ready_age_seconds",
        "gauge",
        "Age, since put, of the oldest ready job; 0 with none ready. How late the queue runs.",
        14,
        true,
    ),
];

pub fn values(t: &TubeView) -> [u64; SLOTS] {
    let ms = |n: Nanos| n / 1_000_000;
    [
        t.ready,
        t.reserved,
        t.delayed,
        t.buried,
        t.urgent,
        t.total_jobs,
        t.reserves,
        t.cmd_delete,
        t.cmd_pause,
        t.using,
        t.watching,
        t.waiting,
        ms(t.pause),
        ms(t.pause_left),
        ms(t.oldest_ready_age.unwrap_or(0)),
    ]
}

impl Family {
    /// This family's lines for one tube.
    pub fn write(&self, out: &mut Vec<u8>, label: &str, values: &[u64; SLOTS]) {
        for (slot, extra) in self.slots.clone().zip(self.extra) {
            out.extend_from_slice(self.name.as_bytes());
            out.extend_from_slice(b"{tube=\"");
            out.extend_from_slice(label.as_bytes());
            out.push(b'"');
            out.extend_from_slice(extra.as_bytes());
            out.extend_from_slice(b"} ");
            let v = values[slot];
            if self.secs {
                push_u64(out, v / 1000);
                let ms = v % 1000;
                out.extend_from_slice(&[
                    b'.',
                    b'0' + (ms / 100) as u8,
                    b'0' + (ms / 10 % 10) as u8,
                    b'0' + (ms % 10) as u8,
                ]);
            } else {
                push_u64(out, v);
            }
            out.push(b'\n');
        }
    }
}
