//! One client connection: its socket, its buffers, and the framing state
//! machine that cuts the input into command lines and put bodies.
//!
//! [`Framer::process`] is pure: it consumes bytes already read, runs complete
//! commands through the engine, and says whether it needs more input. The
//! event loop does the reading and writing around it.

use std::borrow::Cow;
use std::io::{self, Read, Write};

use log::trace;
use memchr::memchr;

use crate::engine::{Engine, Outcome, Sink};
use crate::job::{ClientId, Nanos};
use crate::protocol::{self, Command, MAX_LINE, Op, ParseError};

/// Stop handling commands while this much output is waiting to be sent.
pub const OUTPUT_HIGH_WATER: usize = 1 << 20;

/// Commands (and bodies) one connection has handled per call before the
/// others get a turn: a client that pipelines thousands of commands then
/// delays another client's reply by at most this many.
pub const UNITS_PER_TURN: usize = 64;

/// An emptied buffer keeps its room up to this size: enough for ordinary
/// commands and replies to reuse it, while a connection gone idle after a
/// big body or a pipelined burst holds no more than this.
const KEEP_BUFFER: usize = 4096;

/// Where the framer is in the input stream.
#[derive(Debug, Default)]
enum Want {
    /// A command line.
    #[default]
    Line,
    /// The body of a put, `need` bytes more (CRLF included). `body` holds
    /// what came in earlier reads; a body that arrives in one read goes
    /// from the read buffer to the job's store without it.
    Body {
        id: u64,
        pri: u32,
        delay: u32,
        ttr: u32,
        created_at: Nanos,
        body: Vec<u8>,
        need: usize,
    },
    /// Bytes to throw away, then maybe a reply (JOB_TOO_BIG).
    Skip {
        left: u64,
        then: Option<&'static [u8]>,
    },
    /// Throw away input up to and including the next CRLF, then maybe a
    /// reply. `cr` remembers a CR that ended the previous chunk.
    SkipLine {
        cr: bool,
        then: Option<&'static [u8]>,
    },
}

/// Why processing stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Every complete command has been handled; more input is needed.
    NeedInput,
    /// A reserve is blocked; handle nothing more until it is answered.
    Waiting,
    /// Too much output is pending; resume once it drains.
    OutputFull,
    /// [`UNITS_PER_TURN`] handled: resume after the other connections.
    Yield,
    /// The client said quit.
    Quit,
    /// The client asked to follow as a replica: nothing more is read as
    /// commands.
    Replicate,
}

/// The input side of a connection.
#[derive(Debug, Default)]
pub struct Framer {
    /// Bytes read but not yet consumed, from `start` on.
    input: Vec<u8>,
    start: usize,
    want: Want,
}

impl Framer {
    /// Keeps bytes read from the socket for a later [`process`](Self::process).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// Room held for input, handled or not.
    pub fn capacity(&self) -> usize {
        self.input.capacity()
    }

    /// Whether it is throwing away a body (refused, or after a bad put).
    pub fn skipping(&self) -> bool {
        matches!(self.want, Want::Skip { .. })
    }

    /// Bytes read but not yet handled.
    pub fn buffered(&self) -> usize {
        self.input.len() - self.start
    }

    /// What is buffered and not yet handled, taken away (a connection that
    /// stops speaking the protocol hands it on).
    pub fn take_input(&mut self) -> Vec<u8> {
        let rest = self.input.split_off(self.start);
        self.input.clear();
        self.start = 0;
        rest
    }

    /// Handles every complete command in what was kept and then `fresh`
    /// (bytes just read, or none), in order. When nothing was kept, the
    /// fresh bytes are handled where they lie and only what is left over
    /// (an unfinished line, or commands behind a blocked reserve) is
    /// copied: a body then goes from the read buffer straight to its job.
    pub fn process(
        &mut self,
        fresh: &[u8],
        c: ClientId,
        engine: &mut Engine,
        now: Nanos,
        sink: &mut impl Sink,
    ) -> Flow {
        let flow = if self.buffered() == 0 {
            let mut at = 0;
            let flow = run(&mut self.want, fresh, &mut at, c, engine, now, sink);
            self.input.clear();
            self.start = 0;
            self.input.extend_from_slice(&fresh[at..]);
            flow
        } else {
            self.push(fresh);
            let input = std::mem::take(&mut self.input);
            let mut at = self.start;
            let flow = run(&mut self.want, &input, &mut at, c, engine, now, sink);
            self.input = input;
            self.start = at;
            flow
        };
        if self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
            if self.input.capacity() > KEEP_BUFFER {
                self.input = Vec::new();
            }
        }
        flow
    }
}

/// Handles complete units of `input` from `*at` on, until one of them
/// stops the connection, more input is needed, or the turn's share is used.
fn run(
    want: &mut Want,
    input: &[u8],
    at: &mut usize,
    c: ClientId,
    engine: &mut Engine,
    now: Nanos,
    sink: &mut impl Sink,
) -> Flow {
    for _ in 0..UNITS_PER_TURN {
        if engine.is_waiting(c) {
            return Flow::Waiting;
        }
        if sink.out(c).len() >= OUTPUT_HIGH_WATER {
            return Flow::OutputFull;
        }
        match step(want, input, at, c, engine, now, sink) {
            Some(Flow::NeedInput) | None if *at == input.len() => return Flow::NeedInput,
            Some(flow) => return flow,
            None => {}
        }
    }
    if engine.is_waiting(c) {
        Flow::Waiting
    } else {
        Flow::Yield
    }
}

/// Handles one unit of input. `None` means progress was made.
fn step(
    want: &mut Want,
    input: &[u8],
    at: &mut usize,
    c: ClientId,
    engine: &mut Engine,
    now: Nanos,
    sink: &mut impl Sink,
) -> Option<Flow> {
    let avail = &input[*at..];
    match want {
        Want::Line => {
            let window = &avail[..avail.len().min(MAX_LINE)];
            match find_crlf(window) {
                Some(end) => {
                    let line = &avail[..end];
                    *at += end + 2;
                    command(want, line, c, engine, now, sink)
                }
                None if avail.len() >= MAX_LINE => {
                    // Too long to be a command: discard to the end of the line.
                    *want = Want::SkipLine {
                        cr: false,
                        then: Some(b"BAD_FORMAT\r\n"),
                    };
                    None
                }
                None => Some(Flow::NeedInput),
            }
        }
        Want::SkipLine { cr, then } => {
            if avail.is_empty() {
                return Some(Flow::NeedInput);
            }
            let end = if *cr && avail[0] == b'\n' {
                Some(1)
            } else {
                find_crlf(avail).map(|i| i + 2)
            };
            match end {
                Some(n) => {
                    *at += n;
                    if let Some(reply) = then.take() {
                        sink.out(c).extend_from_slice(reply);
                    }
                    *want = Want::Line;
                    None
                }
                None => {
                    *cr = avail.last() == Some(&b'\r');
                    *at = input.len();
                    Some(Flow::NeedInput)
                }
            }
        }
        Want::Skip { left, then } => {
            let n = (*left).min(avail.len() as u64);
            *at += n as usize;
            *left -= n;
            if *left > 0 {
                return Some(Flow::NeedInput);
            }
            if let Some(reply) = then.take() {
                sink.out(c).extend_from_slice(reply);
            }
            *want = Want::Line;
            None
        }
        Want::Body { body, need, .. } => {
            let n = (*need).min(avail.len());
            let in_place = body.is_empty() && n == *need;
            if !in_place {
                body.reserve_exact(*need);
                body.extend_from_slice(&avail[..n]);
            }
            *need -= n;
            *at += n;
            if *need > 0 {
                return Some(Flow::NeedInput);
            }
            let Want::Body {
                id,
                pri,
                delay,
                ttr,
                created_at,
                body,
                ..
            } = std::mem::take(want)
            else {
                unreachable!()
            };
            let mut body = if in_place {
                Cow::Borrowed(&avail[..n])
            } else {
                Cow::Owned(body)
            };
            if !body.ends_with(b"\r\n") {
                // beanstalkd parses whatever follows the declared length
                // as commands; we skip to the end of that line instead.
                sink.out(c).extend_from_slice(b"EXPECTED_CRLF\r\n");
                *want = Want::SkipLine {
                    cr: body.last() == Some(&b'\r'),
                    then: None,
                };
                return None;
            }
            // The job keeps its data; the CRLF is the protocol's.
            let len = body.len() - 2;
            match &mut body {
                Cow::Borrowed(b) => *b = &b[..len],
                Cow::Owned(v) => v.truncate(len),
            }
            engine.finish_put(c, id, pri, delay, ttr, body, created_at, now, sink);
            None
        }
    }
}

/// Parses and runs one command line.
fn command(
    want: &mut Want,
    line: &[u8],
    c: ClientId,
    engine: &mut Engine,
    now: Nanos,
    sink: &mut impl Sink,
) -> Option<Flow> {
    if log::log_enabled!(log::Level::Trace) {
        trace!(
            "client {c}: {}",
            String::from_utf8_lossy(line).escape_debug()
        );
    }
    match protocol::parse(line, engine.max_job_size()) {
        Ok(Command::Put {
            pri,
            delay,
            ttr,
            bytes,
        }) => {
            engine.count(Op::Put);
            if !engine.has_room_for_put() {
                // --max-memory: the body is not kept, nor its id taken.
                *want = Want::Skip {
                    left: bytes as u64 + 2,
                    then: Some(b"OUT_OF_MEMORY\r\n"),
                };
                return None;
            }
            let id = engine.begin_put(c);
            let need = bytes as usize + 2;
            *want = Want::Body {
                id,
                pri,
                delay,
                ttr,
                created_at: now,
                body: Vec::new(),
                need,
            };
            None
        }
        Ok(cmd) => match engine.execute(c, &cmd, now, sink) {
            Outcome::Done => None,
            Outcome::Blocked => Some(Flow::Waiting),
            Outcome::Close => Some(Flow::Quit),
            Outcome::Replicate => Some(Flow::Replicate),
        },
        Err(ParseError::BadFormat { counted, body }) => {
            if let Some(op) = counted {
                engine.count(op);
            }
            sink.out(c).extend_from_slice(b"BAD_FORMAT\r\n");
            if let Some(bytes) = body {
                *want = Want::Skip {
                    left: bytes as u64 + 2,
                    then: None,
                };
            }
            None
        }
        Err(ParseError::UnknownCommand) => {
            sink.out(c).extend_from_slice(b"UNKNOWN_COMMAND\r\n");
            None
        }
        Err(ParseError::JobTooBig { bytes }) => {
            engine.count(Op::Put);
            *want = Want::Skip {
                left: bytes as u64 + 2,
                then: Some(b"JOB_TOO_BIG\r\n"),
            };
            None
        }
    }
}

/// Where the first CRLF in `s` starts. A search for the LF alone is much
/// cheaper than a two-byte substring search on lines this short.
fn find_crlf(s: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr(b'\n', &s[from..]) {
        let lf = from + i;
        if lf > 0 && s[lf - 1] == b'\r' {
            return Some(lf - 1);
        }
        from = lf + 1;
    }
    None
}

/// A client socket, TCP or unix.
pub enum Stream {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl Stream {
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Replies held back, from `from` on, until the binlog has synced
/// `written` records (-f0) and enough replicas have applied the first
/// `tapped` records sent to replicas (--sync-replicas); `since` bounds
/// the wait for replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub from: usize,
    pub written: u64,
    pub tapped: u64,
    pub since: std::time::Instant,
}

/// A connection as the event loop keeps it.
pub struct Conn {
    pub stream: Stream,
    pub framer: Framer,
    /// Replies not yet written, from `sent` on.
    pub out: Vec<u8>,
    pub sent: usize,
    /// The peer will send nothing more.
    pub eof: bool,
    /// The last read took less than it asked for, so the socket was empty
    /// then, and no readable event has come since: another read would only
    /// say EAGAIN. On Linux, with edge-triggered epoll, data or a hang-up
    /// arriving after that read brings a new event. (One exception: TCP
    /// stops a read at urgent data, and the bytes after it then wait for
    /// the client's next send. beanstalk clients send no urgent data.)
    pub drained: bool,
    /// An event said the peer closed or the socket failed: read on until
    /// EOF or the error, whatever the size of each read.
    pub hung_up: bool,
    /// Close once the output is written (quit).
    pub closing: bool,
    /// Output from an offset on waits for what made it durable: an fsync
    /// (-f0), replicas (--sync-replicas), or both.
    pub held: Option<Held>,
    /// The last flush stopped because the socket was full.
    pub blocked: bool,
    /// Registered for writable events. Only while blocked: otherwise every
    /// acknowledgement from the peer would wake the loop for nothing.
    pub armed: bool,
    /// Bytes read while skipping a body since the last pause.
    pub skipped: usize,
    /// While skipping a body: no read before this instant.
    pub paced_until: Option<std::time::Instant>,
    /// In the event loop's list of paced connections.
    pub paced: bool,
    /// The peer's address, and when it connected (for the status page).
    pub peer: Box<str>,
    pub since: crate::job::Nanos,
    /// A unix-socket client's process and user.
    pub cred: Option<crate::peer_cred::Cred>,
}

impl Conn {
    pub fn new(stream: Stream) -> Self {
        Conn {
            stream,
            framer: Framer::default(),
            out: Vec::new(),
            sent: 0,
            eof: false,
            drained: false,
            hung_up: false,
            closing: false,
            held: None,
            blocked: false,
            armed: false,
            skipped: 0,
            paced_until: None,
            paced: false,
            peer: "".into(),
            since: 0,
            cred: None,
        }
    }

    /// A readable (or hang-up) event arrived for this socket.
    pub fn readable(&mut self, hung_up: bool) {
        self.drained = false;
        self.hung_up |= hung_up;
    }

    pub fn pending_output(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Writes as much pending output as the socket takes.
    pub fn flush(&mut self) -> io::Result<()> {
        let end = self.held.map_or(self.out.len(), |h| h.from);
        self.blocked = false;
        while self.sent < end {
            match self.stream.write(&self.out[self.sent..end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            if self.out.capacity() > KEEP_BUFFER {
                self.out = Vec::new();
            }
        } else {
            // Keep `out` holding only unsent bytes: its length is what
            // back-pressure measures.
            self.out.drain(..self.sent);
            if let Some(h) = &mut self.held {
                h.from -= self.sent;
            }
        }
        self.sent = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Out, ServerInfo};

    #[test]
    fn crlf_is_found_past_bare_line_feeds() {
        assert_eq!(find_crlf(b"put\r\n"), Some(3));
        assert_eq!(find_crlf(b"\r\n"), Some(0));
        assert_eq!(find_crlf(b"\nab\n\r\rx\r\n"), Some(7));
        assert_eq!(find_crlf(b"ab\n\r"), None);
        assert_eq!(find_crlf(b""), None);
    }

    #[test]
    fn a_long_pipeline_is_handled_a_share_at_a_time() {
        let now = 1 << 60;
        let mut engine = Engine::new(1 << 20, ServerInfo::default(), now);
        engine.connect(0);
        let mut framer = Framer::default();
        let mut out = Out::default();
        let input = b"list-tube-used\r\n".repeat(UNITS_PER_TURN * 2 + 10);
        let replies = |out: &Out| out.0.len() / b"USING default\r\n".len();
        let mut flow = framer.process(&input, 0, &mut engine, now, &mut out);
        for share in 1..=2 {
            assert_eq!(flow, Flow::Yield);
            assert_eq!(replies(&out), share * UNITS_PER_TURN);
            flow = framer.process(&[], 0, &mut engine, now, &mut out);
        }
        assert_eq!(flow, Flow::NeedInput);
        assert_eq!(replies(&out), UNITS_PER_TURN * 2 + 10);
        assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn a_connection_gone_quiet_keeps_little_room() {
        let now = 1 << 60;
        let mut engine = Engine::new(1 << 20, ServerInfo::default(), now);
        engine.connect(0);
        let mut framer = Framer::default();
        let mut out = Out::default();
        // A big body arriving in one read, then a small command.
        let mut input = b"put 0 0 10 50000\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 50_000));
        input.extend_from_slice(b"\r\n");
        // Most of it arrives, then the rest: what is left over is kept.
        let (first, rest) = input.split_at(40_000);
        assert_eq!(
            framer.process(first, 0, &mut engine, now, &mut out),
            Flow::NeedInput
        );
        assert_eq!(framer.buffered(), 0, "the body went straight to the job");
        framer.process(&rest[..5_000], 0, &mut engine, now, &mut out);
        framer.process(&rest[5_000..], 0, &mut engine, now, &mut out);
        assert_eq!(out.0, b"INSERTED 1\r\n");
        assert!(framer.input.capacity() <= KEEP_BUFFER);
        // A command cut in two is kept until it is whole; then the room it
        // took is reused.
        framer.process(b"peek-rea", 0, &mut engine, now, &mut out);
        assert_eq!(framer.buffered(), 8);
        framer.process(b"dy\r\n", 0, &mut engine, now, &mut out);
        assert!(out.0.starts_with(b"INSERTED 1\r\nFOUND 1 50000\r\n"));
        let room = framer.input.capacity();
        assert!(room > 0);
        framer.process(b"peek-rea", 0, &mut engine, now, &mut out);
        framer.process(b"dy\r\n", 0, &mut engine, now, &mut out);
        assert_eq!(framer.input.capacity(), room);
    }
}
