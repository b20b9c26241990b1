//! One family's lines for every tube, kept as one block of text with
//! where each tube's lines end, and its compressed pieces.

use std::ops::Range;
use std::rc::Rc;

use crc32fast::Hasher;

use crate::http::gzip::{CrcTree, Deflater, crc, stored};

/// One family: its HELP and TYPE lines, its lines for every tube, and
/// where each tube's end.
pub struct Block {
    pub text: Rc<Vec<u8>>,
    /// Where the first tube's lines start: after the HELP and TYPE.
    head: usize,
    ends: Vec<usize>,
    /// Tubes per compressed piece (the first piece holds the HELP and
    /// TYPE lines too).
    per_piece: usize,
    /// Made by the first gzip scrape; a piece whose tubes change is
    /// compressed again at the next.
    pieces: Vec<Piece>,
    crc: CrcTree,
}

#[derive(Default)]
struct Piece {
    /// Raw deflate, sync-flushed; None until compressed.
    deflated: Option<Vec<u8>>,
    /// Its CRC is in the tree.
    summed: bool,
}

impl Block {
    pub fn new(text: Vec<u8>, head: usize, ends: Vec<usize>, per_piece: usize) -> Block {
        Block {
            text: Rc::new(text),
            head,
            ends,
            per_piece: per_piece.max(1),
            pieces: Vec::new(),
            crc: CrcTree::default(),
        }
    }

    fn range(&self, i: usize) -> Range<usize> {
        let start = if i == 0 { self.head } else { self.ends[i - 1] };
        start..self.ends[i]
    }

    /// Replaces the lines of the tubes in `changes` (in tube order, each
    /// with its new lines in `fresh`).
    pub fn apply(&mut self, changes: &[(usize, Range<usize>)], fresh: &[u8]) {
        for (i, _) in changes {
            if let Some(p) = self.pieces.get_mut(i / self.per_piece) {
                *p = Piece::default();
            }
        }
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

    /// Keeps the first `n` tubes' lines.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.ends.len() {
            return;
        }
        let end = if n == 0 { self.head } else { self.ends[n - 1] };
        Rc::make_mut(&mut self.text).truncate(end);
        self.ends.truncate(n);
        self.forget_from(n);
    }

    /// Appends tubes' lines: `lines`, each tube's ending at `ends` (from
    /// the start of `lines`).
    pub fn append(&mut self, lines: &[u8], ends: &[usize]) {
        let (at, first) = (self.text.len(), self.ends.len());
        Rc::make_mut(&mut self.text).extend_from_slice(lines);
        self.ends.extend(ends.iter().map(|e| at + e));
        self.forget_from(first);
    }

    /// The pieces from the one holding tube `i` on are to be made again
    /// (the last piece changes as tubes come and go).
    fn forget_from(&mut self, i: usize) {
        let from = (i / self.per_piece).min(self.pieces.len());
        for p in &mut self.pieces[from..] {
            *p = Piece::default();
        }
    }

    fn piece_count(&self) -> usize {
        self.ends.len().div_ceil(self.per_piece).max(1)
    }

    /// Bytes of piece `p`: its tubes' lines, and the HELP and TYPE for
    /// the first.
    fn piece_range(&self, p: usize) -> Range<usize> {
        let start = match p * self.per_piece {
            0 => 0,
            first => self.ends[first - 1],
        };
        let last = ((p + 1) * self.per_piece).min(self.ends.len());
        let end = if last == 0 {
            self.text.len()
        } else {
            self.ends[last - 1]
        };
        start..end
    }

    /// Appends the block as deflate (pieces compressed before, or now
    /// while `budget` lasts, else stored); returns the block's CRC.
    pub fn deflate(&mut self, d: &mut Deflater, budget: &mut usize, out: &mut Vec<u8>) -> Hasher {
        let count = self.piece_count();
        if self.pieces.len() != count {
            // Pieces past the end are gone; a tree too small is made anew,
            // every piece's CRC to be set again.
            self.pieces.resize_with(count, Piece::default);
            if !self.crc.resize(count) {
                self.pieces.iter_mut().for_each(|p| p.summed = false);
            }
        }
        for p in 0..count {
            let raw = &self.text[self.piece_range(p)];
            let piece = &mut self.pieces[p];
            if !piece.summed {
                self.crc.set(p, crc(raw));
                piece.summed = true;
            }
            if piece.deflated.is_none() && *budget > 0 {
                piece.deflated = Some(d.piece(raw));
                *budget -= 1;
            }
            match &piece.deflated {
                Some(z) => out.extend_from_slice(z),
                None => stored(raw, out),
            }
        }
        self.crc.root()
    }
}
