//! One HTTP connection's responses waiting to be written: a queue of
//! buffers. A large body (a scrape of /metrics is 7 MB at 10,000 tubes)
//! goes in as its own buffer, moved rather than copied, and once written
//! that buffer is handed back for the next large body: allocating 7 MB
//! afresh for every scrape costs more in page faults than rendering it.

use std::collections::VecDeque;

/// A body at least this large is queued as its own buffer; smaller ones
/// (and every head) are appended to the last, so that pipelined small
/// responses leave in one write.
const OWN_BUFFER: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct Output {
    buffers: VecDeque<Vec<u8>>,
    /// Bytes of the first buffer already written.
    sent: usize,
    /// Bytes not yet written.
    queued: usize,
    /// The largest buffer of a body written out since the last `take_spent`.
    spent: Option<Vec<u8>>,
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
        self.buffers.front().map_or(&[], |b| &b[self.sent..])
    }

    /// Appends bytes to the last buffer, unless that is a large body's
    /// (which would have to grow, a copy of all of it).
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.buffers.back_mut() {
            Some(b) if b.len() < OWN_BUFFER => b.extend_from_slice(bytes),
            _ => self.buffers.push_back(bytes.to_vec()),
        }
        self.queued += bytes.len();
    }

    /// Queues a body: a large one as its own buffer.
    pub fn push_body(&mut self, body: Vec<u8>) {
        if body.len() < OWN_BUFFER {
            return self.push(&body);
        }
        self.queued += body.len();
        self.buffers.push_back(body);
    }

    /// The client took the next `n` bytes (at most [`len`](Self::len)).
    pub fn wrote(&mut self, n: usize) {
        let n = n.min(self.queued);
        self.sent += n;
        self.queued -= n;
        while let Some(front) = self.buffers.front()
            && self.sent >= front.len()
        {
            self.sent -= front.len();
            let done = self.buffers.pop_front().unwrap_or_default();
            if done.capacity() >= OWN_BUFFER
                && self
                    .spent
                    .as_ref()
                    .is_none_or(|s| s.capacity() < done.capacity())
            {
                self.spent = Some(done);
            }
        }
    }

    /// A large buffer written out, emptied, to be used again.
    pub fn take_spent(&mut self) -> Option<Vec<u8>> {
        let mut b = self.spent.take()?;
        b.clear();
        Some(b)
    }

    /// Every byte not yet written, in one piece (tests and the recovery
    /// responder, whose responses are small).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.queued);
        for (i, b) in self.buffers.iter().enumerate() {
            all.extend_from_slice(if i == 0 { &b[self.sent..] } else { b });
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_leave_in_order_and_a_large_buffer_comes_back() {
        let mut o = Output::default();
        o.push(b"head 1\n");
        o.push_body(b"small body\n".to_vec());
        let big = vec![b'x'; OWN_BUFFER + 1];
        let big_at = big.as_ptr();
        o.push(b"head 2\n");
        o.push_body(big);
        o.push(b"head 3\n");
        assert_eq!(o.len(), 7 + 11 + 7 + OWN_BUFFER + 1 + 7);
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
        assert!(all.ends_with(b"xxxhead 3\n"));
        let back = o.take_spent().expect("the large buffer");
        assert_eq!(
            (back.as_ptr(), back.len()),
            (big_at, 0),
            "the same buffer, emptied"
        );
        assert!(o.take_spent().is_none());
        all.clear();
        assert_eq!(o.to_vec(), all);
    }
}
