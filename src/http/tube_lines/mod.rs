//! The per-tube families of `/metrics`, kept rendered between scrapes.
//!
//! At 10,000 tubes they are 150,000 lines, 7 MB: rendered afresh on every
//! scrape they cost the loop 16 ms, a sixth of its time at a scrape every
//! 100 ms, while between two scrapes most tubes do not change. So each
//! family is kept as one block of text, in `list-tubes` order, with where
//! each tube's lines end; a tube whose values changed has its lines
//! rewritten (in place when no line changed length, else in one pass over
//! the block), and a response shares the blocks rather than copying them
//! (a block still being written to a slow client is copied before it
//! changes). When a tube is made, dropped or moved in the order, every
//! block is rendered afresh. Numbers are written by `reply::push_u64`
//! (no `core::fmt`: 150,000 of them a scrape).
//! Times are kept to the millisecond they are written with, so a tube
//! whose oldest job aged by less than that is unchanged.

use std::rc::Rc;

use crate::engine::TubeView;
use crate::job::{Nanos, TubeId};
use crate::reply::push_u64;

use super::text::push_label;

/// The values written per tube, in family order.
const SLOTS: usize = 15;

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    /// This family's values among a tube's SLOTS, one line each.
    slots: std::ops::Range<usize>,
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

const FAMILIES: [Family; 12] = [
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

fn values(t: &TubeView) -> [u64; SLOTS] {
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
    fn write(&self, out: &mut Vec<u8>, label: &str, values: &[u64; SLOTS]) {
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

/// One family: its HELP and TYPE lines, its lines for every tube, and
/// where each tube's end.
struct Block {
    text: Rc<Vec<u8>>,
    /// Where the first tube's lines start: after the HELP and TYPE.
    head: usize,
    ends: Vec<usize>,
}

impl Block {
    fn range(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { self.head } else { self.ends[i - 1] };
        start..self.ends[i]
    }

    /// Replaces the lines of the tubes in `changes` (in tube order, each
    /// with its new lines in `fresh`).
    fn apply(&mut self, changes: &[(usize, std::ops::Range<usize>)], fresh: &[u8]) {
        if (changes.iter()).all(|(i, new)| self.range(*i).len() == new.len()) {
            let text = Rc::make_mut(&mut self.text);
            for (i, new) in changes {
                let start = if *i == 0 { self.head } else { self.ends[i - 1] };
                text[start..self.ends[*i]].copy_from_slice(&fresh[new.clone()]);
            }
            return;
        }
        let mut text = Vec::with_capacity(self.text.len() + 64 * changes.len());
        let mut from = 0;
        for (i, new) in changes {
            let old = self.range(*i);
            text.extend_from_slice(&self.text[from..old.start]);
            text.extend_from_slice(&fresh[new.clone()]);
            from = old.end;
        }
        text.extend_from_slice(&self.text[from..]);
        // Every end after a changed tube moves by what the changes so far
        // added or took away.
        let (mut shift, mut start, mut next) = (0isize, self.head, changes.iter().peekable());
        for (i, end) in self.ends.iter_mut().enumerate() {
            let old_len = *end - start;
            start = *end;
            if let Some((_, new)) = next.next_if(|(c, _)| *c == i) {
                shift += new.len() as isize - old_len as isize;
            }
            *end = (*end as isize + shift) as usize;
        }
        self.text = Rc::new(text);
    }
}

/// The per-tube families as the last scrape wrote them.
#[derive(Default)]
pub struct TubeLines {
    /// The tubes of the last scrape, in order: slot, name, escaped label.
    tubes: Vec<(TubeId, Box<str>, Box<str>)>,
    values: Vec<[u64; SLOTS]>,
    blocks: Vec<Block>,
}

impl TubeLines {
    /// Brings the blocks up to the tubes `views` yields (in order; called
    /// again only when a tube was made, dropped or moved); returns every
    /// per-tube family. The views are streamed, not collected: 10,000 of
    /// them are 1.7 MB, a fresh allocation whose page faults cost more
    /// than comparing them.
    pub fn render<'a, I>(&mut self, views: impl Fn() -> I) -> Vec<Rc<Vec<u8>>>
    where
        I: Iterator<Item = TubeView<'a>>,
    {
        if !self.update(views()) {
            self.rebuild(views());
        }
        self.blocks.iter().map(|b| b.text.clone()).collect()
    }

    fn rebuild<'a>(&mut self, views: impl Iterator<Item = TubeView<'a>>) {
        // Fresh vectors, as for the blocks below.
        let n = views.size_hint().0;
        self.tubes = Vec::with_capacity(n);
        self.values = Vec::with_capacity(n);
        for v in views {
            let mut label = String::with_capacity(v.name.len());
            push_label(&mut label, v.name);
            self.tubes.push((v.id, v.name.into(), label.into()));
            self.values.push(values(&v));
        }
        let tubes = self.tubes.len();
        // Fresh blocks: a scrape of fewer tubes hands the memory back.
        self.blocks = (FAMILIES.iter())
            .map(|f| {
                let mut text = Vec::with_capacity(tubes * f.slots.len() * (f.name.len() + 32));
                for part in [
                    "# HELP ",
                    f.name,
                    " ",
                    f.help,
                    "\n# TYPE ",
                    f.name,
                    " ",
                    f.kind,
                    "\n",
                ] {
                    text.extend_from_slice(part.as_bytes());
                }
                let head = text.len();
                let mut ends = Vec::with_capacity(tubes);
                for ((_, _, label), v) in self.tubes.iter().zip(&self.values) {
                    f.write(&mut text, label, v);
                    ends.push(text.len());
                }
                Block {
                    text: Rc::new(text),
                    head,
                    ends,
                }
            })
            .collect();
    }

    /// Rewrites the lines of the tubes whose values changed; false (and
    /// nothing rewritten) when the tubes are not those of the last scrape.
    fn update<'a>(&mut self, views: impl Iterator<Item = TubeView<'a>>) -> bool {
        let mut fresh = Vec::new();
        let mut changes: [Vec<(usize, std::ops::Range<usize>)>; FAMILIES.len()] =
            Default::default();
        let mut seen = 0;
        for (i, v) in views.enumerate() {
            seen += 1;
            match self.tubes.get(i) {
                Some((id, name, _)) if *id == v.id && **name == *v.name => {}
                _ => return false,
            }
            let new = values(&v);
            let old = std::mem::replace(&mut self.values[i], new);
            if new == old {
                continue;
            }
            for (f, family) in FAMILIES.iter().enumerate() {
                let s = family.slots.clone();
                if new[s.clone()] != old[s] {
                    let start = fresh.len();
                    family.write(&mut fresh, &self.tubes[i].2, &new);
                    changes[f].push((i, start..fresh.len()));
                }
            }
        }
        if seen != self.tubes.len() || self.blocks.is_empty() {
            return false;
        }
        for (b, c) in self.blocks.iter_mut().zip(&changes) {
            if !c.is_empty() {
                b.apply(c, &fresh);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: TubeId, name: &str, ready: u64, age_ms: u64) -> TubeView<'_> {
        TubeView {
            id,
            name,
            urgent: 0,
            ready,
            reserved: 0,
            delayed: 0,
            buried: 0,
            total_jobs: ready,
            reserves: 0,
            using: 0,
            watching: 1,
            waiting: 0,
            cmd_delete: 0,
            cmd_pause: 0,
            pause: 0,
            pause_left: 0,
            oldest_ready_age: (ready > 0).then_some(age_ms * 1_000_000 + 999),
            oldest_buried: None,
        }
    }

    fn text(parts: Vec<Rc<Vec<u8>>>) -> String {
        String::from_utf8(parts.iter().flat_map(|p| p.iter().copied()).collect()).unwrap()
    }

    fn fresh(views: &[TubeView]) -> String {
        text(TubeLines::default().render(|| views.iter().cloned()))
    }

    fn kept(lines: &mut TubeLines, views: &[TubeView]) -> String {
        text(lines.render(|| views.iter().cloned()))
    }

    #[test]
    fn lines_are_the_format() {
        let out = fresh(&[view(0, "default", 3, 1500), view(4, "a\"b", 0, 0)]);
        assert!(
            out.contains("sprout_tube_jobs{tube=\"default\",state=\"ready\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("sprout_tube_jobs{tube=\"a\\\"b\",state=\"buried\"} 0\n"),
            "{out}"
        );
        assert!(out.contains("sprout_tube_oldest_ready_age_seconds{tube=\"default\"} 1.500\n"));
        assert!(out.contains("sprout_tube_pause_seconds{tube=\"a\\\"b\"} 0.000\n"));
        assert!(out.starts_with("# HELP sprout_tube_jobs "), "{out}");
    }

    /// Whatever changes between scrapes, the kept text is the text a
    /// fresh render writes: lines of the same length, longer, shorter,
    /// first and last tube, tubes made and dropped.
    #[test]
    fn kept_text_equals_a_fresh_render() {
        let names: Vec<String> = (0..40).map(|i| format!("tube-{i}")).collect();
        let mut lines = TubeLines::default();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut ready = vec![0u64; names.len()];
        let mut count = names.len();
        for step in 0..2000 {
            for _ in 0..next(4) {
                let i = next(count as u64) as usize;
                ready[i] = match next(3) {
                    0 => ready[i] + 1,
                    1 => ready[i] * 13 + 7,
                    _ => ready[i] / 10,
                };
            }
            if step % 97 == 0 {
                count = 1 + next(names.len() as u64) as usize;
            }
            let views: Vec<_> = (0..count)
                .map(|i| view(i as TubeId, &names[i], ready[i], step))
                .collect();
            assert_eq!(kept(&mut lines, &views), fresh(&views), "step {step}");
        }
    }

    /// A response still being written keeps the text it was given.
    #[test]
    fn a_block_being_written_is_not_changed_under_it() {
        let mut lines = TubeLines::default();
        let before = [view(0, "a", 1, 0), view(1, "b", 2, 0)];
        let held = lines.render(|| before.iter().cloned());
        // Lines of the same length: rewritten in place, in a copy.
        let after = [view(0, "a", 5, 0), view(1, "b", 3, 0)];
        assert_eq!(kept(&mut lines, &after), fresh(&after));
        assert_eq!(text(held), fresh(&before));
    }

    #[test]
    fn a_tube_in_another_slot_is_rendered_afresh() {
        let mut lines = TubeLines::default();
        kept(&mut lines, &[view(0, "a", 1, 0), view(1, "b", 2, 0)]);
        // Same slots, other names; then same names, other slots.
        let views = [view(0, "c", 1, 0), view(1, "b", 2, 0)];
        assert_eq!(kept(&mut lines, &views), fresh(&views));
        let views = [view(3, "c", 1, 0), view(1, "b", 2, 0)];
        assert_eq!(kept(&mut lines, &views), fresh(&views));
    }
}
