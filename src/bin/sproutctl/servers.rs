//! The `--server` list. `put` and `call` send each job to one server,
//! taking them in turn from a start that differs per process, and move on
//! to the next only when one cannot be reached: once a put is sent, a
//! lost connection is reported rather than retried elsewhere, since the
//! job may be in (a job is never sent twice). A server that answers a put
//! with DRAINING stored nothing (a replica, or draining), so the next is
//! tried: `SPROUT_SERVERS` may list every node of a cluster.

use crate::client::{Conn, Error};

pub struct Servers {
    list: Vec<String>,
    next: usize,
}

impl Servers {
    pub fn new(list: &[String]) -> Servers {
        Servers {
            list: list.to_vec(),
            // Processes started together spread over the servers.
            next: std::process::id() as usize % list.len().max(1),
        }
    }

    /// Connects to the next server that answers, trying each once; the
    /// last error when none does.
    pub fn connect_next(&mut self) -> Result<Conn, Error> {
        let mut last = None;
        for _ in 0..self.list.len() {
            let addr = &self.list[self.next];
            self.next = (self.next + 1) % self.list.len();
            match Conn::connect(addr) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    if self.list.len() > 1 {
                        eprintln!("sproutctl: {e}; trying the next server");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least one server"))
    }

    /// Runs `send` (a put, after whatever it needs) on the next server that
    /// answers; on one that refuses changes, tries the next, each once.
    pub fn put_somewhere<T>(
        &mut self,
        mut send: impl FnMut(&mut Conn) -> Result<T, Error>,
    ) -> Result<(T, Conn), Error> {
        let mut last = None;
        for _ in 0..self.list.len() {
            let mut c = self.connect_next()?;
            match send(&mut c) {
                Ok(v) => return Ok((v, c)),
                Err(e @ Error::Refused { .. }) => {
                    if self.list.len() > 1 {
                        eprintln!("sproutctl: {e}; trying the next server");
                    }
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one server"))
    }
}
