//! One blocking connection to a server that speaks the beanstalkd
//! protocol (sprout or beanstalkd itself): a command out, its reply in.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// What went wrong talking to a server, with what to do about it.
#[derive(Debug)]
pub enum Error {
    /// No connection could be made.
    Connect { addr: String, source: io::Error },
    /// The connection failed or closed mid-command.
    Lost { addr: String, source: io::Error },
    /// The server takes no changes now (`DRAINING`: a read-only replica,
    /// or a server in drain mode); nothing was stored, so another server
    /// may be tried.
    Refused { addr: String, command: String },
    /// A reply this client does not expect for the command.
    Reply {
        addr: String,
        command: String,
        reply: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect { addr, source } => write!(
                f,
                "cannot reach {addr}: {} (is sprout running? see --server)",
                describe(source)
            ),
            Error::Lost { addr, source } => write!(
                f,
                "lost the connection to {addr}: {} (did the server stop?)",
                describe(source)
            ),
            Error::Refused { addr, command } => write!(
                f,
                "{addr} takes no changes now (DRAINING to {command}): a read-only replica, or draining"
            ),
            Error::Reply {
                addr,
                command,
                reply,
            } => write!(f, "{addr} answered {command:?} with {reply:?}"),
        }
    }
}

impl std::error::Error for Error {}

/// "connection refused", not "Connection refused (os error 111)".
fn describe(e: &io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s).to_string();
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => s,
    }
}

/// A job as the server hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
    pub body: Vec<u8>,
}

/// What a reserve came back with.
#[derive(Debug)]
pub enum Reserved {
    Job(Job),
    TimedOut,
    /// A job this connection holds is about to reach its TTR.
    DeadlineSoon,
}

/// A YAML document of `stats`, `stats-tube` or `stats-job`: its keys and
/// values in order, values unquoted.
pub type Stats = Vec<(String, String)>;

pub fn stat<'a>(stats: &'a Stats, key: &str) -> Option<&'a str> {
    stats
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub struct Conn {
    pub addr: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn connect(addr: &str) -> Result<Conn, Error> {
        let err = |source| Error::Connect {
            addr: addr.to_string(),
            source,
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address found");
        for a in addr.to_socket_addrs().map_err(err)? {
            match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let writer = s.try_clone().map_err(err)?;
                    return Ok(Conn {
                        addr: addr.to_string(),
                        reader: BufReader::new(s),
                        writer,
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(err(last))
    }

    fn lost(&self, source: io::Error) -> Error {
        Error::Lost {
            addr: self.addr.clone(),
            source,
        }
    }

    fn refused(&self, command: &[u8]) -> Error {
        Error::Refused {
            addr: self.addr.clone(),
            command: String::from_utf8_lossy(command).trim_end().to_string(),
        }
    }

    fn unexpected(&self, command: &[u8], reply: &str) -> Error {
        Error::Reply {
            addr: self.addr.clone(),
            command: String::from_utf8_lossy(command).trim_end().to_string(),
            reply: reply.trim_end().to_string(),
        }
    }

    /// Bounds every read and write from now on: a server that accepts but
    /// never answers (SIGSTOPped) fails the command as Lost rather than
    /// hanging its caller.
    pub fn set_timeout(&self, d: Duration) {
        let _ = self.writer.set_read_timeout(Some(d));
        let _ = self.writer.set_write_timeout(Some(d));
    }

    /// One command line with no body (`line` without its CRLF) and its
    /// reply line: for the commands sproutctl has no method for.
    pub fn command(&mut self, line: &str) -> Result<String, Error> {
        self.ask(format!("{line}\r\n").as_bytes(), None)
    }

    /// Sends a command (with its body, for put) and reads the reply line,
    /// without its CRLF.
    fn ask(&mut self, command: &[u8], body: Option<&[u8]>) -> Result<String, Error> {
        let mut out = Vec::with_capacity(command.len() + body.map_or(0, |b| b.len() + 2));
        out.extend_from_slice(command);
        if let Some(b) = body {
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).map_err(|e| self.lost(e))?;
        let mut line = Vec::new();
        let n = (self.reader.read_until(b'\n', &mut line)).map_err(|e| self.lost(e))?;
        if n == 0 || !line.ends_with(b"\r\n") {
            let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed it");
            return Err(self.lost(eof));
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// The `n` bytes of data after an OK or a job line, and their CRLF.
    /// Read as they come, so a reply that claims more than it sends costs
    /// only what it sent.
    fn data(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        let mut buf = Vec::with_capacity(n.min(1 << 20) + 2);
        let want = n as u64 + 2;
        let got = (self.reader.by_ref().take(want))
            .read_to_end(&mut buf)
            .map_err(|e| self.lost(e))?;
        if got as u64 != want || !buf.ends_with(b"\r\n") {
            let short = io::Error::new(io::ErrorKind::UnexpectedEof, "the reply was cut short");
            return Err(self.lost(short));
        }
        buf.truncate(n);
        Ok(buf)
    }

    /// A reply `WORD ID BYTES`: the job that follows it.
    fn job(&mut self, command: &[u8], reply: &str, word: &str) -> Result<Job, Error> {
        let mut f = reply.split(' ');
        let (Some(w), Some(id), Some(bytes), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(self.unexpected(command, reply));
        };
        match (w == word, id.parse(), bytes.parse()) {
            (true, Ok(id), Ok(bytes)) => Ok(Job {
                id,
                body: self.data(bytes)?,
            }),
            _ => Err(self.unexpected(command, reply)),
        }
    }

    fn yaml(&mut self, command: &[u8]) -> Result<Option<String>, Error> {
        let reply = self.ask(command, None)?;
        if reply == "NOT_FOUND" {
            return Ok(None);
        }
        let Some(n) = reply.strip_prefix("OK ").and_then(|n| n.parse().ok()) else {
            return Err(self.unexpected(command, &reply));
        };
        let data = self.data(n)?;
        Ok(Some(String::from_utf8_lossy(&data).into_owned()))
    }

    fn expect(&mut self, command: &[u8], want: &str) -> Result<(), Error> {
        let reply = self.ask(command, None)?;
        if reply == want {
            Ok(())
        } else {
            Err(self.unexpected(command, &reply))
        }
    }

    /// `NOT_FOUND` is false; `yes` true; anything else an error.
    fn found(&mut self, command: &[u8], yes: &str) -> Result<bool, Error> {
        match self.ask(command, None)? {
            r if r == yes => Ok(true),
            r if r == "NOT_FOUND" => Ok(false),
            r => Err(self.unexpected(command, &r)),
        }
    }

    pub fn use_tube(&mut self, tube: &str) -> Result<(), Error> {
        self.expect(
            format!("use {tube}\r\n").as_bytes(),
            &format!("USING {tube}"),
        )
    }

    pub fn watch(&mut self, tube: &str) -> Result<(), Error> {
        let cmd = format!("watch {tube}\r\n");
        let reply = self.ask(cmd.as_bytes(), None)?;
        if reply.starts_with("WATCHING ") {
            Ok(())
        } else {
            Err(self.unexpected(cmd.as_bytes(), &reply))
        }
    }

    /// Ignoring the last watched tube is refused (`NOT_IGNORED`): false.
    pub fn ignore(&mut self, tube: &str) -> Result<bool, Error> {
        let cmd = format!("ignore {tube}\r\n");
        match self.ask(cmd.as_bytes(), None)? {
            r if r.starts_with("WATCHING ") => Ok(true),
            r if r == "NOT_IGNORED" => Ok(false),
            r => Err(self.unexpected(cmd.as_bytes(), &r)),
        }
    }

    /// Puts a job into the used tube: its id. A job the server buried at
    /// once (it could not grow its ready heap) is an error here.
    pub fn put(&mut self, pri: u32, delay: u32, ttr: u32, body: &[u8]) -> Result<u64, Error> {
        let cmd = format!("put {pri} {delay} {ttr} {}\r\n", body.len());
        let reply = self.ask(cmd.as_bytes(), Some(body))?;
        match reply.strip_prefix("INSERTED ").map(str::parse) {
            Some(Ok(id)) => Ok(id),
            _ if reply == "DRAINING" => Err(self.refused(cmd.as_bytes())),
            _ => Err(self.unexpected(cmd.as_bytes(), &reply)),
        }
    }

    pub fn reserve(&mut self, timeout_secs: u32) -> Result<Reserved, Error> {
        let cmd = format!("reserve-with-timeout {timeout_secs}\r\n");
        let reply = self.ask(cmd.as_bytes(), None)?;
        match reply.as_str() {
            "TIMED_OUT" => Ok(Reserved::TimedOut),
            "DEADLINE_SOON" => Ok(Reserved::DeadlineSoon),
            "DRAINING" => Err(self.refused(cmd.as_bytes())),
            _ => Ok(Reserved::Job(self.job(
                cmd.as_bytes(),
                &reply,
                "RESERVED",
            )?)),
        }
    }

    pub fn delete(&mut self, id: u64) -> Result<bool, Error> {
        self.found(format!("delete {id}\r\n").as_bytes(), "DELETED")
    }

    pub fn release(&mut self, id: u64, pri: u32, delay: u32) -> Result<bool, Error> {
        self.found(
            format!("release {id} {pri} {delay}\r\n").as_bytes(),
            "RELEASED",
        )
    }

    pub fn bury(&mut self, id: u64, pri: u32) -> Result<bool, Error> {
        self.found(format!("bury {id} {pri}\r\n").as_bytes(), "BURIED")
    }

    pub fn touch(&mut self, id: u64) -> Result<bool, Error> {
        self.found(format!("touch {id}\r\n").as_bytes(), "TOUCHED")
    }

    /// Kicks up to `bound` jobs in the used tube: how many were kicked.
    pub fn kick(&mut self, bound: u64) -> Result<u64, Error> {
        let cmd = format!("kick {bound}\r\n");
        let reply = self.ask(cmd.as_bytes(), None)?;
        match reply.strip_prefix("KICKED ").map(str::parse) {
            Some(Ok(n)) => Ok(n),
            _ => Err(self.unexpected(cmd.as_bytes(), &reply)),
        }
    }

    pub fn kick_job(&mut self, id: u64) -> Result<bool, Error> {
        self.found(format!("kick-job {id}\r\n").as_bytes(), "KICKED")
    }

    pub fn pause_tube(&mut self, tube: &str, secs: u32) -> Result<bool, Error> {
        self.found(format!("pause-tube {tube} {secs}\r\n").as_bytes(), "PAUSED")
    }

    /// `peek ID`, `peek-ready` and so on: the job, or None.
    pub fn peek(&mut self, command: &str) -> Result<Option<Job>, Error> {
        let cmd = format!("{command}\r\n");
        let reply = self.ask(cmd.as_bytes(), None)?;
        if reply == "NOT_FOUND" {
            return Ok(None);
        }
        self.job(cmd.as_bytes(), &reply, "FOUND").map(Some)
    }

    pub fn stats(&mut self) -> Result<Stats, Error> {
        let doc = self.yaml(b"stats\r\n")?.unwrap_or_default();
        Ok(parse_map(&doc))
    }

    pub fn stats_tube(&mut self, tube: &str) -> Result<Option<Stats>, Error> {
        let doc = self.yaml(format!("stats-tube {tube}\r\n").as_bytes())?;
        Ok(doc.map(|d| parse_map(&d)))
    }

    pub fn stats_job(&mut self, id: u64) -> Result<Option<Stats>, Error> {
        let doc = self.yaml(format!("stats-job {id}\r\n").as_bytes())?;
        Ok(doc.map(|d| parse_map(&d)))
    }

    pub fn list_tubes(&mut self) -> Result<Vec<String>, Error> {
        let doc = self.yaml(b"list-tubes\r\n")?.unwrap_or_default();
        Ok((doc.lines())
            .filter_map(|l| l.strip_prefix("- "))
            .map(unquote)
            .collect())
    }
}

/// `key: value` lines after `---`, as both beanstalkd 1.12 (bare) and
/// 1.13 (quoted names) write them.
pub fn parse_map(doc: &str) -> Stats {
    (doc.lines())
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), unquote(v)))
        .collect()
}

/// A YAML scalar as the servers write it: bare, or double-quoted with
/// backslash escapes.
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_documents_of_both_versions() {
        let m = parse_map("---\nname: default\ncurrent-jobs-ready: 3\n");
        assert_eq!(stat(&m, "name"), Some("default"));
        assert_eq!(stat(&m, "current-jobs-ready"), Some("3"));
        let m = parse_map("---\nname: \"a\\\"b\"\ntube: \"yes\"\n");
        assert_eq!(stat(&m, "name"), Some("a\"b"));
        assert_eq!(stat(&m, "tube"), Some("yes"));
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = Error::Connect {
            addr: "127.0.0.1:11300".into(),
            source: io::Error::from_raw_os_error(libc::ECONNREFUSED),
        };
        assert_eq!(
            e.to_string(),
            "cannot reach 127.0.0.1:11300: connection refused (is sprout running? see --server)"
        );
    }
}
