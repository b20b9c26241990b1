//! Accepting queue connections, and refusing them at the ceiling.

use super::*;

impl Server {
    pub(super) fn accept(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let accepted = match &self.listener {
                Listener::Tcp(l) => l.accept().map(|(s, a)| {
                    let _ = s.set_nodelay(true);
                    (Stream::Tcp(s), a.to_string())
                }),
                Listener::Unix(l, _) => l
                    .accept()
                    .map(|(s, _)| (Stream::Unix(s), "unix".to_string())),
            };
            if self.accept_failing && accepted.is_ok() {
                self.accept_failing = false;
                info!("accepting connections again");
            }
            match accepted {
                Ok((stream, peer)) if self.conns.len() >= self.ceiling => self.refuse(stream, peer),
                Ok((stream, peer)) => {
                    if self.refusing {
                        self.refusing = false;
                        info!("below the connection ceiling again: accepting connections");
                    }
                    self.add_conn(stream, peer)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // EMFILE and friends: keep serving, retry shortly.
                    if !self.accept_failing {
                        self.accept_failing = true;
                        warn!(
                            "cannot accept a connection: {e}; retrying every {} ms (raise the open-file limit, e.g. LimitNOFILE, if this persists)",
                            ACCEPT_BACKOFF.as_millis()
                        );
                    } else {
                        debug!("accept still failing: {e}");
                    }
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    /// At the ceiling: the client is told OUT_OF_MEMORY, as for any other
    /// lack of resources, and the connection is closed.
    pub(super) fn refuse(&mut self, mut stream: Stream, peer: String) {
        if !self.refusing {
            self.refusing = true;
            warn!(
                "{} connections, the most the open-file limit allows (less {RESERVED_FDS} for the server): refusing new ones with OUT_OF_MEMORY until some close; raise the limit (LimitNOFILE, ulimit -n) for more",
                self.conns.len()
            );
        }
        debug!("refused connection from {peer}: at the connection ceiling");
        // A fresh socket's buffer has room for one short line. Input already
        // sent is read first, so that the close is a FIN, not a reset that
        // could discard the line.
        let mut input = [0u8; 4096];
        let _ = std::io::Read::read(&mut stream, &mut input);
        let _ = std::io::Write::write(&mut stream, b"OUT_OF_MEMORY\r\n");
    }

    pub(super) fn add_conn(&mut self, mut stream: Stream, peer: String) {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) =
            self.poll
                .registry()
                .register(stream.source(), Token(key), Interest::READABLE)
        {
            warn!("cannot watch a new connection from {peer}: {e}; closing it");
            return;
        }
        let cred = match &stream {
            Stream::Unix(s) => crate::peer_cred::of(s),
            Stream::Tcp(_) => None,
        };
        let mut conn = Conn::new(stream);
        conn.cred = cred;
        conn.peer = peer.as_str().into();
        conn.since = self.clock.now();
        entry.insert(conn);
        self.engine.connect(key as ClientId);
        match cred {
            Some(c) => info!(
                "accepted connection {key} from {peer} (pid {}, uid {})",
                c.pid, c.uid
            ),
            None => info!("accepted connection {key} from {peer}"),
        }
    }
}
