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
//! changes). Tubes made and dropped change few places in the order (a new
//! one goes last, a dropped one's place is taken by the last), so a place
//! holding another tube has its lines rewritten like a changed tube's, new
//! tubes' lines are appended and gone ones cut off the end: an RPC-style
//! reply tube per request does not make every scrape render 7 MB afresh.
//! Numbers are written by `reply::push_u64`
//! (no `core::fmt`: 150,000 of them a scrape).
//! Times are kept to the millisecond they are written with, so a tube
//! whose oldest job aged by less than that is unchanged.
//!
//! For a scraper that takes gzip, each block is cut into pieces of
//! [`PIECE_TUBES`] tubes, compressed apart and kept until one of their
//! tubes changes (see `gzip.rs`); at most [`COMPRESS_PER_SCRAPE`] pieces
//! are compressed per scrape, the rest sent stored until a later one, so
//! a scrape after every tube changed costs the loop about 2 ms, not 20.
//!
//! Reading order: [`families`] (what is written per tube), [`block`] (one
//! family's text, its rewriting and its pieces), then `TubeLines` here.

mod block;
mod families;

use std::rc::Rc;

use crate::engine::TubeView;
use crate::job::TubeId;

use super::gzip::{self, Deflater};
use super::text::push_label;
use block::Block;
use families::{FAMILIES, SLOTS, values};

/// Tubes per compressed piece: about 3 KB of text, a tenth of that
/// compressed; smaller pieces compress worse and cost more each.
pub const PIECE_TUBES: usize = 64;
/// Pieces compressed per scrape at most (about 8 us each).
pub const COMPRESS_PER_SCRAPE: usize = 256;

/// The per-tube families as the last scrape wrote them.
pub struct TubeLines {
    /// The tubes of the last scrape, in order: slot, name, escaped label.
    tubes: Vec<(TubeId, Box<str>, Box<str>)>,
    values: Vec<[u64; SLOTS]>,
    blocks: Vec<Block>,
    per_piece: usize,
    compress_per_scrape: usize,
    /// Made by the first gzip scrape.
    deflater: Option<Deflater>,
    /// The last gzip response's size, to size the next.
    gzip_len: usize,
}

impl Default for TubeLines {
    fn default() -> TubeLines {
        TubeLines::with_pieces(PIECE_TUBES, COMPRESS_PER_SCRAPE)
    }
}

impl TubeLines {
    /// Pieces of `per_piece` tubes, at most `per_scrape` compressed per
    /// scrape (tests use small ones).
    pub fn with_pieces(per_piece: usize, per_scrape: usize) -> TubeLines {
        TubeLines {
            tubes: Vec::new(),
            values: Vec::new(),
            blocks: Vec::new(),
            per_piece,
            compress_per_scrape: per_scrape,
            deflater: None,
            gzip_len: 0,
        }
    }

    /// `head` (the server-wide families, made afresh) and the per-tube
    /// families, as one gzip member.
    pub fn gzip<'a, I>(&mut self, views: impl Fn() -> I, head: &[u8]) -> Vec<u8>
    where
        I: Iterator<Item = TubeView<'a>>,
    {
        self.refresh(views);
        let d = self.deflater.get_or_insert_with(Deflater::default);
        let mut out = Vec::with_capacity(self.gzip_len + self.gzip_len / 8 + 4096);
        out.extend_from_slice(&gzip::HEADER);
        out.extend_from_slice(&d.piece(head));
        let (mut sum, mut len) = (gzip::crc(head), head.len());
        let mut budget = self.compress_per_scrape;
        for b in &mut self.blocks {
            sum.combine(&b.deflate(d, &mut budget, &mut out));
            len += b.text.len();
        }
        gzip::finish(&mut out, sum, len);
        self.gzip_len = out.len();
        out
    }

    /// Brings the blocks up to the tubes `views` yields (in order; called
    /// again only when a tube was made, dropped or moved); returns every
    /// per-tube family. The views are streamed, not collected: 10,000 of
    /// them are 1.7 MB, a fresh allocation whose page faults cost more
    /// than comparing them.
    pub fn render<'a, I>(&mut self, views: impl Fn() -> I) -> Vec<Rc<Vec<u8>>>
    where
        I: Iterator<Item = TubeView<'a>>,
    {
        self.refresh(views);
        self.blocks.iter().map(|b| b.text.clone()).collect()
    }

    fn refresh<'a, I>(&mut self, views: impl Fn() -> I)
    where
        I: Iterator<Item = TubeView<'a>>,
    {
        if !self.update(views()) {
            self.rebuild(views());
        }
    }

    fn rebuild<'a>(&mut self, views: impl Iterator<Item = TubeView<'a>>) {
        // Fresh vectors, as for the blocks below.
        let n = views.size_hint().0;
        self.tubes = Vec::with_capacity(n);
        self.values = Vec::with_capacity(n);
        for v in views {
            self.tubes.push((v.id, v.name.into(), label(v.name)));
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
                Block::new(text, head, ends, self.per_piece)
            })
            .collect();
    }

    /// Rewrites the lines of the tubes whose values changed. A position
    /// that holds another tube than at the last scrape (a dropped tube's
    /// place takes the last one, as `list-tubes` shows) has all its lines
    /// rewritten; tubes past the old end are appended, and lines past the
    /// new end cut. False (nothing done) before the first render.
    fn update<'a>(&mut self, views: impl Iterator<Item = TubeView<'a>>) -> bool {
        if self.blocks.is_empty() {
            return false;
        }
        let mut fresh = Vec::new();
        let mut changes: [Vec<(usize, std::ops::Range<usize>)>; FAMILIES.len()] =
            Default::default();
        let mut appended = Vec::new();
        let mut seen = 0;
        for (i, v) in views.enumerate() {
            seen += 1;
            let new = values(&v);
            let moved = match self.tubes.get(i) {
                None => {
                    appended.push((v.id, v.name.into(), label(v.name), new));
                    continue;
                }
                Some((id, name, _)) => *id != v.id || **name != *v.name,
            };
            if moved {
                self.tubes[i] = (v.id, v.name.into(), label(v.name));
            }
            let old = std::mem::replace(&mut self.values[i], new);
            if new == old && !moved {
                continue;
            }
            for (f, family) in FAMILIES.iter().enumerate() {
                let s = family.slots.clone();
                if moved || new[s.clone()] != old[s] {
                    let start = fresh.len();
                    family.write(&mut fresh, &self.tubes[i].2, &new);
                    changes[f].push((i, start..fresh.len()));
                }
            }
        }
        for (b, c) in self.blocks.iter_mut().zip(&changes) {
            if !c.is_empty() {
                b.apply(c, &fresh);
            }
        }
        if seen < self.tubes.len() {
            self.tubes.truncate(seen);
            self.values.truncate(seen);
            for b in &mut self.blocks {
                b.truncate(seen);
            }
        }
        if !appended.is_empty() {
            for (b, f) in self.blocks.iter_mut().zip(&FAMILIES) {
                fresh.clear();
                let ends: Vec<usize> = (appended.iter())
                    .map(|(_, _, label, v)| {
                        f.write(&mut fresh, label, v);
                        fresh.len()
                    })
                    .collect();
                b.append(&fresh, &ends);
            }
            for (id, name, label, v) in appended {
                self.tubes.push((id, name, label));
                self.values.push(v);
            }
        }
        true
    }
}

/// A tube name escaped as a label value.
fn label(name: &str) -> Box<str> {
    let mut label = String::with_capacity(name.len());
    push_label(&mut label, name);
    label.into()
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

    /// Numbers below `n`, the same sequence for the same seed (xorshift).
    fn numbers(mut rng: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        }
    }

    /// Tubes as the registry orders them: a new one at the end (in a
    /// freed slot if there is one), a dropped one's place taken by the
    /// last; each with a ready count.
    struct Order {
        tubes: Vec<(TubeId, String, u64)>,
        free: Vec<TubeId>,
        made: usize,
    }

    impl Order {
        fn new(n: usize) -> Order {
            let mut o = Order {
                tubes: Vec::new(),
                free: Vec::new(),
                made: 0,
            };
            (0..n).for_each(|_| o.make());
            o
        }

        fn make(&mut self) {
            let id = self.free.pop().unwrap_or(self.made as TubeId);
            // Names of every length class, some needing escapes.
            let name = match self.made % 3 {
                0 => format!("t{}", self.made),
                1 => format!("tube-{}-longer", self.made),
                _ => format!("q\"{}\\", self.made),
            };
            self.tubes.push((id, name, 0));
            self.made += 1;
        }

        /// Some counts change, and now and then tubes come and go.
        fn step(&mut self, next: &mut impl FnMut(u64) -> u64) {
            for _ in 0..next(4) {
                let i = next(self.tubes.len() as u64) as usize;
                let t = &mut self.tubes[i];
                t.2 = match next(3) {
                    0 => t.2 + 1,
                    1 => t.2 * 13 + 7,
                    _ => t.2 / 10,
                };
            }
            if next(8) == 0 {
                for _ in 0..next(3) {
                    if self.tubes.len() > 1 {
                        let (id, ..) = self
                            .tubes
                            .swap_remove(next(self.tubes.len() as u64) as usize);
                        self.free.push(id);
                    }
                }
                for _ in 0..next(4) {
                    self.make();
                }
            }
        }

        fn views(&self, age_ms: u64) -> Vec<TubeView<'_>> {
            (self.tubes.iter())
                .map(|(id, name, ready)| view(*id, name, *ready, age_ms))
                .collect()
        }
    }

    /// Whatever changes between scrapes, the kept text is the text a
    /// fresh render writes: lines of the same length, longer, shorter,
    /// first and last tube, tubes made, dropped and moved.
    #[test]
    fn kept_text_equals_a_fresh_render() {
        let mut lines = TubeLines::default();
        let mut next = numbers(0x2545_f491_4f6c_dd1du64);
        let mut order = Order::new(40);
        for step in 0..2000 {
            order.step(&mut next);
            let views = order.views(step);
            assert_eq!(kept(&mut lines, &views), fresh(&views), "step {step}");
        }
    }

    fn gunzip(z: &[u8]) -> String {
        String::from_utf8(gzip::gunzip(z)).expect("text")
    }

    /// The gzip response is the text, whatever changed: pieces compressed
    /// at an earlier scrape, pieces changed since, pieces still stored for
    /// want of budget, and through identity scrapes in between.
    #[test]
    fn gzip_is_the_text_compressed() {
        let mut lines = TubeLines::with_pieces(3, 5);
        let mut next = numbers(0x9e37_79b9_7f4a_7c15u64);
        let mut order = Order::new(40);
        for step in 0..1000 {
            order.step(&mut next);
            let v = order.views(step / 5);
            if next(4) == 0 {
                assert_eq!(kept(&mut lines, &v), fresh(&v), "step {step}");
                continue;
            }
            let z = lines.gzip(|| v.iter().cloned(), b"# head\n");
            assert_eq!(gunzip(&z), format!("# head\n{}", fresh(&v)), "step {step}");
        }
        // Left alone, every piece ends compressed, 5 a scrape.
        let v = order.views(0);
        let first = lines.gzip(|| v.iter().cloned(), b"");
        let mut last = first.clone();
        for _ in 0..(12 * v.len().div_ceil(3) / 5 + 1) {
            last = lines.gzip(|| v.iter().cloned(), b"");
        }
        let raw = fresh(&v);
        assert_eq!(gunzip(&last), raw);
        assert!(
            last.len() < first.len(),
            "{} then {}",
            first.len(),
            last.len()
        );
        assert!(
            last.len() < raw.len() / 2,
            "{} of {}",
            last.len(),
            raw.len()
        );
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
    fn a_tube_in_another_slot_is_rewritten() {
        let mut lines = TubeLines::default();
        kept(&mut lines, &[view(0, "a", 1, 0), view(1, "b", 2, 0)]);
        // Same slots, other names; then same names, other slots.
        let views = [view(0, "c", 1, 0), view(1, "b", 2, 0)];
        assert_eq!(kept(&mut lines, &views), fresh(&views));
        let views = [view(3, "c", 1, 0), view(1, "b", 2, 0)];
        assert_eq!(kept(&mut lines, &views), fresh(&views));
    }
}
