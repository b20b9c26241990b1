//! `Content-Encoding: gzip` for `/metrics`, built from pieces compressed
//! apart and kept between scrapes.
//!
//! Prometheus asks for gzip on every scrape. At 10,000 tubes the text is
//! 7 MB, and sending it costs the loop (and the scraper) more than
//! anything else in a scrape; compressed it is a tenth of that. But
//! compressing 7 MB takes 20 ms, so the per-tube text is cut into pieces
//! (`tube_lines.rs`), each compressed on its own and kept until its lines
//! change. A piece is a run of raw deflate blocks ended by a sync flush,
//! byte-aligned and referring to nothing before it, so pieces can be laid
//! one after another in a single gzip member (curl, unlike Go and Python,
//! reads no second member); a piece not compressed yet goes as stored
//! blocks. The CRC-32 of the whole is combined from the pieces' in a tree
//! per family, so a changed piece costs a few combines, not a pass over
//! 7 MB.

use crc32fast::Hasher;
use flate2::{Compress, Compression, FlushCompress, Status};

/// Whether an `Accept-Encoding` value admits gzip: `gzip` or `x-gzip`,
/// or `*`, with a q-value above 0 (RFC 9110 section 12.5.3).
pub fn accepts_gzip(value: &[u8]) -> bool {
    let mut star = None;
    for item in value.split(|&b| b == b',') {
        let mut parts = item.split(|&b| b == b';');
        let name = parts.next().unwrap_or_default().trim_ascii();
        let q = parts
            .filter_map(|p| {
                let p = p.trim_ascii();
                let v = p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q="))?;
                std::str::from_utf8(v).ok()?.trim().parse::<f32>().ok()
            })
            .next_back()
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
            return q > 0.0;
        }
        if name == b"*" {
            star = Some(q > 0.0);
        }
    }
    star.unwrap_or(false)
}

/// A raw deflate compressor kept between pieces (its tables are reset,
/// not reallocated).
pub struct Deflater(Compress);

impl Default for Deflater {
    fn default() -> Deflater {
        // Level 1: the pieces are repetitive text; higher levels gain
        // little here and cost twice the time.
        Deflater(Compress::new(Compression::fast(), false))
    }
}

impl Deflater {
    /// `raw` as deflate blocks referring to nothing before them, ended by
    /// a sync flush (byte-aligned, not final).
    pub fn piece(&mut self, raw: &[u8]) -> Vec<u8> {
        let c = &mut self.0;
        c.reset();
        let mut out = Vec::with_capacity(raw.len() / 4 + 64);
        let mut rest = raw;
        loop {
            let before = c.total_in();
            let status = c.compress_vec(rest, &mut out, FlushCompress::Sync);
            rest = &rest[(c.total_in() - before) as usize..];
            // Done when all is in and the flush fitted; else more room.
            if rest.is_empty() && out.len() < out.capacity() {
                return out;
            }
            match status {
                Ok(Status::Ok | Status::BufError | Status::StreamEnd) => {
                    out.reserve(out.capacity().max(64))
                }
                // The compressor's only errors are misuse; never with a
                // fresh stream and a growing buffer, but never a panic
                // either: the same bytes, stored.
                Err(_) => {
                    out.clear();
                    stored(raw, &mut out);
                    return out;
                }
            }
        }
    }
}

/// `raw` as stored (uncompressed) deflate blocks, not final. The stream
/// must be byte-aligned, as it is after a sync flush.
pub fn stored(raw: &[u8], out: &mut Vec<u8>) {
    for chunk in raw.chunks(u16::MAX as usize) {
        let len = chunk.len() as u16;
        out.push(0); // BFINAL 0, BTYPE 00, then the bits up to the byte end
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// The gzip member's header: deflate, no name, no time.
pub const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Ends the deflate stream (an empty final stored block) and the member:
/// CRC-32 and length (modulo 2^32) of everything compressed.
pub fn finish(out: &mut Vec<u8>, crc: Hasher, len: usize) {
    out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

pub fn crc(bytes: &[u8]) -> Hasher {
    let mut h = Hasher::new();
    h.update(bytes);
    h
}

/// The CRC-32 of a sequence of pieces, kept as a tree of combined CRCs:
/// changing a piece recombines its ancestors only.
#[derive(Default)]
pub struct CrcTree {
    /// Leaves at `width..2 * width`; node n combines 2n and 2n + 1.
    nodes: Vec<Hasher>,
    width: usize,
    stale: Vec<usize>,
}

impl CrcTree {
    pub fn new(pieces: usize) -> CrcTree {
        let width = pieces.next_power_of_two();
        CrcTree {
            nodes: vec![Hasher::new(); 2 * width],
            width,
            stale: Vec::new(),
        }
    }

    /// Holds `pieces` pieces from now on; those past them count as empty.
    /// False when the tree had to be made anew (every piece to be set).
    pub fn resize(&mut self, pieces: usize) -> bool {
        if pieces > self.width || self.width == 0 {
            *self = CrcTree::new(pieces);
            return false;
        }
        for p in pieces..self.width {
            self.set(p, Hasher::new());
        }
        true
    }

    pub fn set(&mut self, piece: usize, crc: Hasher) {
        self.nodes[self.width + piece] = crc;
        self.stale.push((self.width + piece) / 2);
    }

    /// The CRC of all the pieces, in order.
    pub fn root(&mut self) -> Hasher {
        let mut stale = std::mem::take(&mut self.stale);
        // Deepest first, each node once: a parent after its children.
        while !stale.is_empty() {
            stale.sort_unstable_by(|a, b| b.cmp(a));
            stale.dedup();
            let mut parents = Vec::with_capacity(stale.len());
            for n in stale.drain(..) {
                if n == 0 {
                    continue;
                }
                let mut h = self.nodes[2 * n].clone();
                h.combine(&self.nodes[2 * n + 1]);
                self.nodes[n] = h;
                parents.push(n / 2);
            }
            stale = parents;
        }
        // With one piece, its leaf is node 1, the root.
        self.nodes.get(1).cloned().unwrap_or_default()
    }
}

/// What a gzip member holds (tests of this module and of `tube_lines`).
#[cfg(test)]
pub fn gunzip(z: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(z)
        .read_to_end(&mut out)
        .expect("a valid gzip member");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_compressed_and_stored_make_one_member() {
        let parts: Vec<Vec<u8>> = (0..7)
            .map(|i| {
                (0..i * 3000 + 1)
                    .map(|n| format!("m{{tube=\"t{}\"}} {n}\n", n % 13))
                    .collect::<String>()
                    .into_bytes()
            })
            .chain([Vec::new(), vec![b'x'; 70_000]])
            .collect();
        let mut d = Deflater::default();
        let mut tree = CrcTree::new(parts.len());
        let mut z = HEADER.to_vec();
        for (i, p) in parts.iter().enumerate() {
            // Every other piece stored, as one not compressed yet.
            if i % 2 == 0 {
                let piece = d.piece(p);
                assert!(p.len() < 1000 || piece.len() < p.len() / 3, "piece {i}");
                z.extend_from_slice(&piece);
            } else {
                stored(p, &mut z);
            }
            tree.set(i, crc(p));
        }
        let all: Vec<u8> = parts.concat();
        finish(&mut z, tree.root(), all.len());
        assert_eq!(gunzip(&z), all);
    }

    #[test]
    fn the_tree_follows_changed_pieces() {
        let mut pieces: Vec<Vec<u8>> = (0..13).map(|i| vec![i as u8; i * 7]).collect();
        let mut tree = CrcTree::new(pieces.len());
        for (i, p) in pieces.iter().enumerate() {
            tree.set(i, crc(p));
        }
        assert_eq!(tree.root().finalize(), crc(&pieces.concat()).finalize());
        for (step, i) in [3, 12, 0, 3, 7].into_iter().enumerate() {
            pieces[i] = vec![step as u8 + 100; step * 5 + 1];
            tree.set(i, crc(&pieces[i]));
            assert_eq!(tree.root().finalize(), crc(&pieces.concat()).finalize());
        }
        let mut one = CrcTree::new(1);
        one.set(0, crc(b"alone"));
        assert_eq!(one.root().finalize(), crc(b"alone").finalize());
    }

    #[test]
    fn accept_encoding() {
        for yes in [
            &b"gzip"[..],
            b"gzip, deflate, br",
            b"deflate, GZIP;q=0.5",
            b"x-gzip",
            b"*",
            b"br;q=1.0, *;q=0.1",
            b"identity, gzip ; q=1",
        ] {
            assert!(accepts_gzip(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b""[..],
            b"identity",
            b"gzip;q=0",
            b"gzip;q=0.0, *",
            b"*;q=0",
            b"br, deflate",
            b"gzipx",
        ] {
            assert!(!accepts_gzip(no), "{}", String::from_utf8_lossy(no));
        }
    }
}
