//! The commands: a put in two steps (its header, then its body) and every
//! other command, each answered through the sink.

use super::*;

impl Engine {
    /// The header of a put has parsed: the client is now a producer and the
    /// job's id is taken (a put that fails later burns it, as beanstalkd).
    pub fn begin_put(&mut self, c: ClientId) -> u64 {
        let client = self.client_mut(c);
        if !client.producer {
            client.producer = true;
            self.totals.producers += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The body of a put has arrived whole; `body` is without the CRLF
    /// that ended it. An owned large body keeps its allocation.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_put(
        &mut self,
        c: ClientId,
        id: u64,
        pri: u32,
        delay: u32,
        ttr: u32,
        body: Cow<[u8]>,
        created_at: Nanos,
        now: Nanos,
        sink: &mut impl Sink,
    ) {
        if self.draining || self.refuses_changes {
            sink.out(c).extend_from_slice(b"DRAINING\r\n");
            return;
        }
        if self.writes_refused {
            sink.out(c).extend_from_slice(b"OUT_OF_MEMORY\r\n");
            return;
        }
        let tube = self.client(c).used;
        let ttr = ttr.max(1);
        let mut file = 0;
        if let Some(journal) = sink.journal() {
            let img = Image {
                key: self.jobs.vacant_key() as JobKey,
                id,
                pri,
                delay,
                ttr,
                created_at,
                deadline: now + secs(delay),
                rank: 0,
                counts: Counts::default(),
                state: if delay > 0 {
                    LoggedState::Delayed
                } else {
                    LoggedState::Ready
                },
                home: 0,
                tube_len: self.tubes.slab[tube as usize].name.len() as u32,
                body_len: body.len() as u32 + 2,
            };
            let name = &self.tubes.slab[tube as usize].name;
            match journal.put(&img, name, &body, now) {
                Ok(home) => file = home,
                Err(e) => {
                    // No job exists under this id; the id stays used up.
                    sink.out(c).extend_from_slice(e.reply());
                    return;
                }
            }
        }
        self.job_bytes += job_memory(body.len());
        let key = self.jobs.insert(Job {
            pri,
            delay,
            ttr,
            ..Job::new(id, tube, created_at, self.bodies.insert(body))
        }) as JobKey;
        self.set_home(key, file);
        self.ids.insert(id, key);
        if delay > 0 {
            self.make_delayed(key, now + secs(delay));
        } else {
            self.make_ready(key);
            self.dispatch(now, sink);
        }
        self.tubes.slab[tube as usize].total_jobs += 1;
        self.totals.total_jobs += 1;
        reply::with_number(sink.out(c), b"INSERTED", id);
        self.compact(now, sink);
    }

    /// Runs one command other than put (see [`begin_put`](Self::begin_put)).
    pub fn execute(
        &mut self,
        c: ClientId,
        cmd: &Command,
        now: Nanos,
        sink: &mut impl Sink,
    ) -> Outcome {
        if let Some(op) = cmd.op() {
            self.count(op);
        }
        if self.writes_refused && !self.refuses_changes && writes_a_record(cmd) {
            sink.out(c).extend_from_slice(b"INTERNAL_ERROR\r\n");
            return Outcome::Done;
        }
        if self.refuses_changes && cmd.changes_the_queue() {
            // A replica's queue is its primary's: say so, in the word
            // beanstalkd uses for "not taking this now" (doc/compatibility.md).
            sink.out(c).extend_from_slice(b"DRAINING\r\n");
            return Outcome::Done;
        }
        match *cmd {
            Command::Quit => return Outcome::Close,
            Command::Replicate { epoch } => return self.replicate(c, epoch, sink),
            Command::Promote { epoch } => self.promote(c, epoch, sink),
            Command::Follow { primary, epoch } => self.follow(c, primary, epoch, sink),
            Command::Demote => self.demote(c, sink),
            Command::Put { .. } => unreachable!("put goes through begin_put/finish_put"),
            Command::Reserve => return self.reserve(c, None, now, sink),
            Command::ReserveWithTimeout(s) => return self.reserve(c, Some(s), now, sink),
            Command::ReserveJob(id) => self.reserve_job(c, id, now, sink),
            Command::Peek(id) => {
                let key = self.ids.get(id);
                self.reply_found(c, key, sink)
            }
            Command::PeekReady => {
                let key = self.used_tube(c).ready.peek().map(|(_, k)| k);
                self.reply_found(c, key, sink)
            }
            Command::PeekDelayed => {
                let key = self.used_tube(c).delayed.peek().map(|(_, k)| k);
                self.reply_found(c, key, sink)
            }
            Command::PeekBuried => {
                let key = self.used_tube(c).buried.peek().map(|(_, k)| k);
                self.reply_found(c, key, sink)
            }
            Command::Delete(id) => {
                let reply: &[u8] = match self.ids.get(id) {
                    Some(key) if self.held_or_free(c, key) => {
                        let img = self.image(key);
                        if let Err(e) = self.log(sink, |j| j.delete(&img, now)) {
                            return self.refuse(c, e, sink);
                        }
                        let tube = self.jobs[key as usize].tube;
                        self.unlink(key);
                        self.tubes.slab[tube as usize].cmd_delete += 1;
                        self.free(key);
                        self.compact(now, sink);
                        b"DELETED\r\n"
                    }
                    _ => b"NOT_FOUND\r\n",
                };
                sink.out(c).extend_from_slice(reply);
            }
            Command::Release { id, pri, delay } => {
                let reply: &[u8] = match self.reserved_by(c, id) {
                    Some(key) => {
                        // Logged with or without a delay, so that a restart
                        // keeps the new priority (beanstalkd forgets it).
                        let mut img = self.image(key);
                        img.pri = pri;
                        img.delay = delay;
                        img.counts.releases += 1;
                        img.state = if delay > 0 {
                            img.deadline = now + secs(delay);
                            LoggedState::Delayed
                        } else {
                            LoggedState::Ready
                        };
                        let logged = self.log(sink, |j| j.update(&img, now));
                        // beanstalkd does not log a release without delay,
                        // so never fails one: neither does sprout.
                        if let (Err(e), true) = (logged, delay > 0) {
                            return self.refuse(c, e, sink);
                        }
                        self.unlink(key);
                        let job = &mut self.jobs[key as usize];
                        job.pri = pri;
                        job.delay = delay;
                        job.count(Event::Release, &mut self.rare);
                        if delay > 0 {
                            self.make_delayed(key, now + secs(delay));
                        } else {
                            self.make_ready(key);
                            self.dispatch(now, sink);
                        }
                        b"RELEASED\r\n"
                    }
                    None => b"NOT_FOUND\r\n",
                };
                sink.out(c).extend_from_slice(reply);
            }
            Command::Bury { id, pri } => {
                let reply: &[u8] = match self.reserved_by(c, id) {
                    Some(key) => {
                        let mut img = self.image(key);
                        img.pri = pri;
                        img.counts.buries += 1;
                        img.state = LoggedState::Buried;
                        img.rank = self.next_seq();
                        if self.log(sink, |j| j.update(&img, now)).is_err() {
                            // beanstalkd's reply when a bury cannot be logged.
                            sink.out(c).extend_from_slice(b"INTERNAL_ERROR\r\n");
                            return Outcome::Done;
                        }
                        self.unlink(key);
                        let job = &mut self.jobs[key as usize];
                        job.pri = pri;
                        job.count(Event::Bury, &mut self.rare);
                        self.make_buried(key, img.rank);
                        b"BURIED\r\n"
                    }
                    None => b"NOT_FOUND\r\n",
                };
                sink.out(c).extend_from_slice(reply);
            }
            Command::Touch(id) => {
                let reply: &[u8] = match self.reserved_by(c, id) {
                    Some(key) => {
                        // A touch keeps the job's place in reservation order.
                        let pos = self.jobs[key as usize].pos;
                        let seq = self.client(c).reserved.key_at(pos).map(|k| (k.1, k.2));
                        self.unlink(key);
                        self.hold(key, c, now, seq);
                        b"TOUCHED\r\n"
                    }
                    None => b"NOT_FOUND\r\n",
                };
                sink.out(c).extend_from_slice(reply);
            }
            Command::Kick(n) => {
                // Buried jobs first; delayed ones only when none are buried.
                let t = self.client(c).used;
                let from_buried = !self.tubes.slab[t as usize].buried.is_empty();
                let mut kicked = 0u32;
                while kicked < n {
                    let tube = &self.tubes.slab[t as usize];
                    let next = if from_buried {
                        tube.buried.peek()
                    } else {
                        tube.delayed.peek().map(|((_, id), k)| (id, k))
                    };
                    let Some((_, key)) = next else { break };
                    if self.kick(key, now, sink).is_err() {
                        // Report what did move; the rest stays put.
                        break;
                    }
                    kicked += 1;
                }
                reply::with_number(sink.out(c), b"KICKED", kicked.into());
            }
            Command::KickJob(id) => {
                let reply: &[u8] = match self.ids.get(id) {
                    Some(key)
                        if matches!(
                            self.jobs[key as usize].state,
                            State::Buried | State::Delayed
                        ) =>
                    {
                        if let Err(e) = self.kick(key, now, sink) {
                            return self.refuse(c, e, sink);
                        }
                        b"KICKED\r\n"
                    }
                    _ => b"NOT_FOUND\r\n",
                };
                sink.out(c).extend_from_slice(reply);
            }
            Command::StatsJob(id) => match self.ids.get(id) {
                Some(key) => {
                    let yaml = self.job_yaml(key, now);
                    reply_ok(sink.out(c), &yaml);
                }
                None => sink.out(c).extend_from_slice(b"NOT_FOUND\r\n"),
            },
            Command::StatsTube(name) => match self.tubes.find(name) {
                Some(t) => {
                    let yaml = self.tube_yaml(t, now);
                    reply_ok(sink.out(c), &yaml);
                }
                None => sink.out(c).extend_from_slice(b"NOT_FOUND\r\n"),
            },
            Command::Stats => {
                let binlog = sink.journal().map(|j| j.stats()).unwrap_or_default();
                let yaml = self.stats_yaml(now, binlog);
                reply_ok(sink.out(c), &yaml);
            }
            Command::Use(name) => {
                if !self.has_room_for_tube(name) {
                    // beanstalkd's reply when it cannot make a tube.
                    sink.out(c).extend_from_slice(b"OUT_OF_MEMORY\r\n");
                    return Outcome::Done;
                }
                let t = self.tubes.find_or_make(name);
                let old = self.client(c).used;
                self.tubes.slab[t as usize].using += 1;
                self.client_mut(c).used = t;
                self.tubes.slab[old as usize].using -= 1;
                self.release_tube(old);
                let _ = write!(sink.out(c), "USING {name}\r\n");
            }
            Command::Watch(name) => {
                // A bound on one connection's watch list, answered as
                // beanstalkd answers a watch it cannot add: one line, the
                // connection in step. The lookup runs only at the bound.
                let full = self.client(c).watch.len() >= self.max_watched
                    && !(self.tubes.find(name)).is_some_and(|t| self.client(c).watch.contains(t));
                if full || !self.has_room_for_tube(name) {
                    sink.out(c).extend_from_slice(b"OUT_OF_MEMORY\r\n");
                    return Outcome::Done;
                }
                let t = self.tubes.find_or_make(name);
                if self.client_mut(c).watch.watch(t) {
                    self.tubes.slab[t as usize].watching += 1;
                }
                let n = self.client(c).watch.len();
                reply::with_number(sink.out(c), b"WATCHING", n as u64);
            }
            Command::Ignore(name) => {
                let found = self
                    .tubes
                    .find(name)
                    .filter(|&t| self.client(c).watch.contains(t));
                if let Some(t) = found {
                    if self.client(c).watch.len() == 1 {
                        sink.out(c).extend_from_slice(b"NOT_IGNORED\r\n");
                        return Outcome::Done;
                    }
                    // A command is never run while its client waits, so the
                    // entries have no waiting-set positions to maintain.
                    self.client_mut(c).watch.ignore(t);
                    self.tubes.slab[t as usize].watching -= 1;
                    self.release_tube(t);
                }
                let n = self.client(c).watch.len();
                reply::with_number(sink.out(c), b"WATCHING", n as u64);
            }
            Command::ListTubes => {
                let mut yaml = b"---\n".to_vec();
                for tube in self.tubes.in_order() {
                    let _ = writeln!(yaml, "- {}", tube.name);
                }
                reply_ok(sink.out(c), &yaml);
            }
            Command::ListTubeUsed => {
                let name = &self.used_tube(c).name;
                let _ = write!(sink.out(c), "USING {name}\r\n");
            }
            Command::ListTubesWatched => {
                let mut yaml = b"---\n".to_vec();
                for t in self.client(c).watch.tubes() {
                    let _ = writeln!(yaml, "- {}", self.tubes.slab[t as usize].name);
                }
                reply_ok(sink.out(c), &yaml);
            }
            Command::PauseTube { name, delay } => match self.tubes.find(name) {
                Some(t) => {
                    let tube = &mut self.tubes.slab[t as usize];
                    tube.cmd_pause += 1;
                    if let Some(old) = tube.pause_timer.take() {
                        self.timers.cancel(old, |(_, v)| *v == Timer::Unpause(t));
                    }
                    if delay == 0 {
                        // beanstalkd pauses for 1 ns, which has ended by the
                        // time anything else happens: unpause now.
                        self.unpause(t, now, sink);
                    } else {
                        let tube = &mut self.tubes.slab[t as usize];
                        tube.pause = secs(delay);
                        tube.unpause_at = now + secs(delay);
                        let timer = self.schedule(now + secs(delay), Timer::Unpause(t));
                        self.tubes.slab[t as usize].pause_timer = Some(timer);
                        self.refresh_candidate(t);
                    }
                    sink.out(c).extend_from_slice(b"PAUSED\r\n");
                }
                None => sink.out(c).extend_from_slice(b"NOT_FOUND\r\n"),
            },
        }
        Outcome::Done
    }
}

/// `OK <n>\r\n<data>\r\n`.
fn reply_ok(out: &mut Vec<u8>, data: &[u8]) {
    reply::with_number(out, b"OK", data.len() as u64);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Whether `cmd` (put aside, refused in `finish_put`) writes a binlog
/// record: what `--sync-replicas` refuses while too few replicas are in
/// step. A release without a delay goes ahead unlogged when it must, as
/// on a full disk.
fn writes_a_record(cmd: &Command) -> bool {
    match *cmd {
        Command::Delete(_) | Command::Bury { .. } | Command::Kick(_) | Command::KickJob(_) => true,
        Command::Release { delay, .. } => delay > 0,
        _ => false,
    }
}
