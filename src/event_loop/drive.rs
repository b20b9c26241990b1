//! Driving a queue connection: its commands, its replies, its reads, and
//! its share of a turn.

use super::*;

impl Server {
    /// Paced connections whose pause is over are driven again.
    pub(super) fn resume_paced(&mut self) {
        let now = Instant::now();
        let (conns, woken) = (&mut self.conns, &mut self.woken);
        self.paced.retain(|&c| match conns.get_mut(c as usize) {
            Some(conn) if conn.paced_until.is_some_and(|t| t > now) => true,
            Some(conn) => {
                conn.paced = false;
                woken.push(c);
                false
            }
            None => false,
        });
    }

    pub(super) fn drive_woken(&mut self) {
        while !self.woken.is_empty() {
            let woken = std::mem::take(&mut self.woken);
            for c in woken {
                self.drive(c);
            }
        }
    }

    /// Handles buffered commands, writes output, and reads more, until the
    /// connection has to wait for its socket or for a reserve.
    pub(super) fn drive(&mut self, c: ClientId) {
        let key = c as usize;
        // Bytes just read into `scratch`, handled at the top of the loop.
        let mut fresh = 0;
        let mut skipped_one = false;
        for _ in 0..READS_PER_TURN {
            if !self.conns.contains(key) {
                return;
            }
            let flow = self.process(c, fresh);
            fresh = 0;
            if flow == Flow::Replicate {
                // Replies to what came before go first.
                if let Some(conn) = self.conns.get_mut(key)
                    && let Err(e) = conn.flush()
                {
                    debug!("connection {c}: write failed: {e}");
                    return self.close(c);
                }
                self.start_downstream(c);
                if self.conns.contains(key) {
                    // Refused: its answer is written, then it closes.
                    let _ = self.conns[key].flush();
                    return self.close(c);
                }
                return;
            }
            let conn = &mut self.conns[key];
            // A connection that yields goes on next turn: its replies can
            // wait for a fuller write (a write per 64 replies wakes its
            // reader, and the machine, a hundred times as often).
            let write = flow != Flow::Yield || conn.pending_output() >= FLUSH_AT;
            if write && let Err(e) = conn.flush() {
                debug!("connection {c}: write failed: {e}");
                return self.close(c);
            }
            if conn.blocked != conn.armed {
                let interest = if conn.blocked {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                if let Err(e) =
                    self.poll
                        .registry()
                        .reregister(conn.stream.source(), Token(key), interest)
                {
                    debug!("connection {c}: cannot watch for writing: {e}");
                    return self.close(c);
                }
                conn.armed = conn.blocked;
            }
            if flow == Flow::Quit {
                conn.closing = true;
            }
            if conn.closing && conn.pending_output() == 0 {
                return self.close(c);
            }
            if conn.closing || conn.pending_output() >= OUTPUT_HIGH_WATER {
                // Resumed by the next writable event.
                return;
            }
            if matches!(flow, Flow::OutputFull | Flow::Yield) {
                // Its share of this turn is used (a megabyte of replies that
                // drained while flushing, or UNITS_PER_TURN commands): the
                // rest waits until the others have had theirs.
                self.again.push(c);
                return;
            }
            if conn.eof {
                if flow == Flow::Waiting {
                    // A hang-up answers a waiting reserve, as in beanstalkd.
                    self.engine.hang_up_waiter(
                        c,
                        &mut Outputs {
                            conns: &mut self.conns,
                            woken: &mut self.woken,
                            binlog: self.binlog.as_mut(),
                        },
                    );
                    continue;
                }
                if conn.pending_output() == 0 {
                    return self.close(c);
                }
                return;
            }
            if flow == Flow::Waiting && conn.framer.buffered() >= WAITING_INPUT_LIMIT {
                return;
            }
            if conn.drained {
                return;
            }
            if skipped_one {
                // One read a turn for a body being thrown away.
                self.again.push(c);
                return;
            }
            let skipping = conn.framer.skipping();
            if skipping && conn.paced_until.is_some_and(|t| Instant::now() < t) {
                if !std::mem::replace(&mut conn.paced, true) {
                    self.paced.push(c);
                }
                return;
            }
            let room = if skipping {
                SKIP_READ
            } else {
                self.scratch.len()
            };
            match conn.stream.read(&mut self.scratch[..room]) {
                Ok(0) => conn.eof = true,
                Ok(n) => {
                    fresh = n;
                    conn.drained = n < room && !conn.hung_up;
                    if skipping {
                        skipped_one = true;
                        // A body that is thrown away is read at most a
                        // burst per SKIP_PAUSE: sent flat out, 4 GiB of it
                        // otherwise cost every other client.
                        conn.skipped += n;
                        if conn.skipped >= SKIP_BURST {
                            conn.skipped = 0;
                            conn.paced_until = Some(Instant::now() + SKIP_PAUSE);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("connection {c}: read failed: {e}");
                    return self.close(c);
                }
            }
        }
        // Out of turns with input possibly left: come back next turn, after
        // the others.
        if let Some(conn) = self.conns.get_mut(key) {
            conn.framer.push(&self.scratch[..fresh]);
        }
        self.again.push(c);
    }

    /// Runs the commands in what `c` has buffered and in the first `fresh`
    /// bytes of the read buffer.
    pub(super) fn process(&mut self, c: ClientId, fresh: usize) -> Flow {
        let written = self.binlog.as_ref().map_or(0, |b| b.written());
        let out_before = self.conns[c as usize].out.len();
        let flow = self.run_commands(c, fresh);
        if (self.hold_replies || self.sync_replicas > 0)
            && let Some(b) = &self.binlog
            && b.written() > written
            && let Some(conn) = self.conns.get_mut(c as usize)
        {
            let (from, since) = conn
                .held
                .map_or((out_before, Instant::now()), |h| (h.from, h.since));
            conn.held = Some(crate::conn::Held {
                from,
                written: b.written(),
                tapped: b.tapped_total(),
                since,
            });
        }
        // After the hold above, so that a demotion finds every reply held.
        self.apply_role_change(c);
        flow
    }

    pub(super) fn run_commands(&mut self, c: ClientId, fresh: usize) -> Flow {
        let now = self.now();
        let mut framer = std::mem::take(&mut self.conns[c as usize].framer);
        let scratch = std::mem::take(&mut self.scratch);
        let flow = framer.process(
            &scratch[..fresh],
            c,
            &mut self.engine,
            now,
            &mut Outputs {
                conns: &mut self.conns,
                woken: &mut self.woken,
                binlog: self.binlog.as_mut(),
            },
        );
        self.scratch = scratch;
        self.conns[c as usize].framer = framer;
        flow
    }

    pub(super) fn close(&mut self, c: ClientId) {
        let Some(mut conn) = self.conns.try_remove(c as usize) else {
            return;
        };
        let _ = self.poll.registry().deregister(conn.stream.source());
        // A client that never read may leave a megabyte of replies behind.
        self.trim |= conn.out.capacity() + conn.framer.capacity() >= BIG_BUFFERS;
        self.forget_client(c);
        info!("closed connection {c}");
    }

    /// The engine forgets client `c`, whose connection is out of the slab:
    /// it may hand the client's jobs to others, whose replies need a slab
    /// that no longer holds this connection.
    pub(super) fn forget_client(&mut self, c: ClientId) {
        let now = self.now();
        self.engine.disconnect(
            c,
            now,
            &mut Outputs {
                conns: &mut self.conns,
                woken: &mut self.woken,
                binlog: self.binlog.as_mut(),
            },
        );
    }
}
