//! One HTTP connection's responses waiting to be written: a queue of
//! buffers, so that a large body is never copied. A body of its own (the
//! status page) is moved in; a part shared with the cache that keeps it
//! (the per-tube blocks of /metrics, 7 MB at 10,000 tubes) is queued by
//! reference. Copying 7 MB per scrape, into freshly allocated memory,
//! cost the loop more than rendering it.

use std::collections::VecDeque;
use std::rc::Rc;

/// A body at least this large is queued as its own buffer; smaller ones
/// (and every head) are appended to the last, so that pipelined small
/// responses leave in one write.
const OWN_BUFFER: usize = 64 * 1024;

#[derive(Debug)]
enum Buffer {
    Own(Vec<u8>),
    Shared(Rc<Vec<u8>>),
}

impl Buffer {
    fn bytes(&self) -> &[u8] {
        match self {
            Buffer::Own(b) => b,
            Buffer::Shared(b) => b,
        }
    }
}

#[derive(Debug, Default)]
pub struct Output {
    buffers: VecDeque<Buffer>,
    /// Bytes of the first buffer already written.
    sent: usize,
    /// Bytes not yet written.
    queued: usize,
}

impl Output {
    /// Bytes not yet written.
    pub fn len(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// What to write next (empty when nothing waits).
    pub fn unsent(&self) -> &[u8] {
        self.buffers
            .front()
            .map_or(&[], |b| &b.bytes()[self.sent..])
    }

    /// Appends bytes to the last buffer, unless that is a large body's
    /// (which would have to grow, a copy of all of it).
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.buffers.back_mut() {
            Some(Buffer::Own(b)) if b.len() < OWN_BUFFER => b.extend_from_slice(bytes),
            _ => self.buffers.push_back(Buffer::Own(bytes.to_vec())),
        }
        self.queued += bytes.len();
    }

    /// Queues a body: a large one as its own buffer.
    pub fn push_body(&mut self, body: Vec<u8>) {
        if body.len() < OWN_BUFFER {
            return self.push(&body);
        }
        self.queued += body.len();
        self.buffers.push_back(Buffer::Own(body));
    }

    /// Queues a part that its maker keeps (and copies before changing,
    /// should it still be here).
    pub fn push_shared(&mut self, part: Rc<Vec<u8>>) {
        if part.is_empty() {
            return;
        }
        self.queued += part.len();
        self.buffers.push_back(Buffer::Shared(part));
    }

    /// The client took the next `n` bytes (at most [`len`](Self::len)).
    pub fn wrote(&mut self, n: usize) {
        let n = n.min(self.queued);
        self.sent += n;
        self.queued -= n;
        while let Some(front) = self.buffers.front()
            && self.sent >= front.bytes().len()
        {
            self.sent -= front.bytes().len();
            self.buffers.pop_front();
        }
    }

    /// Every byte not yet written, in one piece (tests and the recovery
    /// responder, whose responses are small).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.queued);
        for (i, b) in self.buffers.iter().enumerate() {
            let b = b.bytes();
            all.extend_from_slice(if i == 0 { &b[self.sent..] } else { b });
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_leave_in_order_and_shared_parts_are_let_go() {
        let mut o = Output::default();
        o.push(b"head 1\n");
        o.push_body(b"small body\n".to_vec());
        let big = vec![b'x'; OWN_BUFFER + 1];
        o.push(b"head 2\n");
        o.push_body(big);
        o.push(b"head 3\n");
        let shared = Rc::new(b"shared\n".to_vec());
        o.push_shared(shared.clone());
        o.push(b"tail\n");
        assert_eq!(o.len(), 7 + 11 + 7 + OWN_BUFFER + 1 + 7 + 7 + 5);
        let mut all = o.to_vec();
        let mut written = Vec::new();
        // Written in uneven pieces, as a socket takes them.
        while !o.is_empty() {
            let n = o.unsent().len().min(1000);
            written.extend_from_slice(&o.unsent()[..n]);
            o.wrote(n);
        }
        assert_eq!(written, all);
        assert!(all.starts_with(b"head 1\nsmall body\nhead 2\nxxx"));
        assert!(all.ends_with(b"xxxhead 3\nshared\ntail\n"));
        assert_eq!(Rc::strong_count(&shared), 1, "let go once written");
        all.clear();
        assert_eq!(o.to_vec(), all);
    }
}
