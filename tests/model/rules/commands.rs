//! What each command does.

use super::*;

impl Model {
    // ---- commands ----

    /// Runs `cmd` from client `c` (not waiting); returns false for quit.
    pub fn execute(&mut self, c: usize, cmd: &Cmd, now: Nanos) -> bool {
        if let Some(k) = cmd.counter() {
            *self.counters.get_mut(k).expect("known counter") += 1;
        }
        match cmd {
            Cmd::Put {
                pri,
                delay,
                ttr,
                body,
            } => {
                if body.len() > self.max_job_size as usize {
                    return self.say_done(c, b"JOB_TOO_BIG\r\n");
                }
                self.client_mut(c).producer = true;
                let id = self.next_id;
                self.next_id += 1;
                let tube = self.client(c).used.clone();
                self.jobs.push(Job {
                    id,
                    tube: tube.clone(),
                    pri: *pri,
                    delay: *delay,
                    ttr: (*ttr).max(1),
                    body: body.clone(),
                    state: if *delay > 0 {
                        State::Delayed
                    } else {
                        State::Ready
                    },
                    deadline: now + *delay as Nanos * SEC,
                    reserver: 0,
                    order: 0,
                    created: now,
                    reserves: 0,
                    timeouts: 0,
                    releases: 0,
                    buries: 0,
                    kicks: 0,
                });
                self.dispatch(now);
                self.tube_mut(&tube).total_jobs += 1;
                self.total_jobs += 1;
                self.say(c, format!("INSERTED {id}\r\n").as_bytes());
            }
            Cmd::Use(name) => {
                self.tube_or_new(name);
                let old = std::mem::replace(&mut self.client_mut(c).used, name.clone());
                self.drop_if_unused(&old);
                self.say(c, format!("USING {name}\r\n").as_bytes());
            }
            Cmd::Watch(name) => {
                self.tube_or_new(name);
                let watch = &mut self.client_mut(c).watch;
                if !watch.contains(name) {
                    watch.push(name.clone());
                }
                let n = watch.len();
                self.say(c, format!("WATCHING {n}\r\n").as_bytes());
            }
            Cmd::Ignore(name) => {
                let watch = &self.client(c).watch;
                if let Some(i) = watch.iter().position(|w| w == name) {
                    if watch.len() == 1 {
                        return self.say_done(c, b"NOT_IGNORED\r\n");
                    }
                    self.client_mut(c).watch.swap_remove(i);
                    self.drop_if_unused(name);
                }
                let n = self.client(c).watch.len();
                self.say(c, format!("WATCHING {n}\r\n").as_bytes());
            }
            Cmd::Reserve => self.reserve(c, None, now),
            Cmd::ReserveWithTimeout(s) => self.reserve(c, Some(*s), now),
            Cmd::ReserveJob(id) => match self.job(*id) {
                Some(j) if j.state != State::Reserved => {
                    self.client_mut(c).worker = true;
                    self.reserve_to(*id, c, now);
                }
                _ => self.say(c, b"NOT_FOUND\r\n"),
            },
            Cmd::Delete(id) => match self.job(*id) {
                Some(j) if j.state != State::Reserved || j.reserver == c => {
                    let tube = j.tube.clone();
                    self.jobs.retain(|j| j.id != *id);
                    self.tube_mut(&tube).cmd_delete += 1;
                    self.drop_if_unused(&tube);
                    self.say(c, b"DELETED\r\n");
                }
                _ => self.say(c, b"NOT_FOUND\r\n"),
            },
            Cmd::Release { id, pri, delay } => {
                if !self.reserved_by(*id, c) {
                    return self.say_done(c, b"NOT_FOUND\r\n");
                }
                let job = self.job_mut(*id);
                job.pri = *pri;
                job.delay = *delay;
                job.releases += 1;
                if *delay > 0 {
                    job.state = State::Delayed;
                    job.deadline = now + *delay as Nanos * SEC;
                } else {
                    job.state = State::Ready;
                    self.dispatch(now);
                }
                self.say(c, b"RELEASED\r\n");
            }
            Cmd::Bury { id, pri } => {
                if !self.reserved_by(*id, c) {
                    return self.say_done(c, b"NOT_FOUND\r\n");
                }
                let order = self.next_seq();
                let job = self.job_mut(*id);
                job.pri = *pri;
                job.buries += 1;
                job.state = State::Buried;
                job.order = order;
                self.say(c, b"BURIED\r\n");
            }
            Cmd::Touch(id) => {
                if !self.reserved_by(*id, c) {
                    return self.say_done(c, b"NOT_FOUND\r\n");
                }
                let job = self.job_mut(*id);
                job.deadline = now + job.ttr as Nanos * SEC;
                self.say(c, b"TOUCHED\r\n");
            }
            Cmd::Kick(n) => {
                // Buried jobs first (bury order); delayed ones (soonest
                // first) only when the tube has no buried job.
                let tube = self.client(c).used.clone();
                let mut buried: Vec<(u64, u64)> = (self.jobs.iter())
                    .filter(|j| j.tube == tube && j.state == State::Buried)
                    .map(|j| (j.order, j.id))
                    .collect();
                let mut delayed: Vec<(u64, u64)> = (self.jobs.iter())
                    .filter(|j| j.tube == tube && j.state == State::Delayed)
                    .map(|j| (j.deadline, j.id))
                    .collect();
                buried.sort();
                delayed.sort();
                let from = if buried.is_empty() { delayed } else { buried };
                let ids: Vec<u64> = from.iter().take(*n as usize).map(|&(_, id)| id).collect();
                for &id in &ids {
                    self.kick(id, now);
                }
                self.say(c, format!("KICKED {}\r\n", ids.len()).as_bytes());
            }
            Cmd::KickJob(id) => match self.job(*id) {
                Some(j) if matches!(j.state, State::Buried | State::Delayed) => {
                    self.kick(*id, now);
                    self.say(c, b"KICKED\r\n");
                }
                _ => self.say(c, b"NOT_FOUND\r\n"),
            },
            Cmd::Peek(id) => self.found(c, self.job(*id).map(|j| j.id)),
            Cmd::PeekReady => {
                let id = self.first_in_used(c, State::Ready, |j| (j.pri as u64, j.id));
                self.found(c, id)
            }
            Cmd::PeekDelayed => {
                let id = self.first_in_used(c, State::Delayed, |j| (j.deadline, j.id));
                self.found(c, id)
            }
            Cmd::PeekBuried => {
                let id = self.first_in_used(c, State::Buried, |j| (j.order, j.id));
                self.found(c, id)
            }
            Cmd::StatsJob(id) => match self.job(*id) {
                Some(j) => {
                    let doc = self.job_doc(j, now);
                    self.out[c].push(Reply::Yaml(doc));
                }
                None => self.say(c, b"NOT_FOUND\r\n"),
            },
            Cmd::StatsTube(name) => match self.tube(name) {
                Some(t) => {
                    let doc = self.tube_doc(t, now);
                    self.out[c].push(Reply::Yaml(doc));
                }
                None => self.say(c, b"NOT_FOUND\r\n"),
            },
            Cmd::Stats => {
                let doc = self.stats_doc(now);
                self.out[c].push(Reply::Stats(doc));
            }
            Cmd::ListTubes => {
                let names: Vec<String> = self.tubes.iter().map(|t| t.name.clone()).collect();
                self.list(c, &names);
            }
            Cmd::ListTubeUsed => {
                let line = format!("USING {}\r\n", self.client(c).used);
                self.say(c, line.as_bytes());
            }
            Cmd::ListTubesWatched => {
                let names = self.client(c).watch.clone();
                self.list(c, &names);
            }
            Cmd::PauseTube { name, delay } => {
                if self.tube(name).is_none() {
                    return self.say_done(c, b"NOT_FOUND\r\n");
                }
                let tube = self.tube_mut(name);
                tube.cmd_pause += 1;
                if *delay == 0 {
                    // Paused for no time: over before anything else happens.
                    tube.paused_until = None;
                    tube.pause_secs = 0;
                    self.dispatch(now);
                } else {
                    tube.paused_until = Some(now + *delay as Nanos * SEC);
                    tube.pause_secs = *delay;
                }
                self.say(c, b"PAUSED\r\n");
            }
            Cmd::Quit => return false,
        }
        true
    }

    pub(super) fn say_done(&mut self, c: usize, bytes: &[u8]) -> bool {
        self.say(c, bytes);
        true
    }

    pub(super) fn reserved_by(&self, id: u64, c: usize) -> bool {
        self.job(id)
            .is_some_and(|j| j.state == State::Reserved && j.reserver == c)
    }

    pub(super) fn kick(&mut self, id: u64, now: Nanos) {
        let job = self.job_mut(id);
        job.kicks += 1;
        job.state = State::Ready;
        self.dispatch(now);
    }

    pub(super) fn first_in_used(
        &self,
        c: usize,
        s: State,
        key: impl Fn(&Job) -> (u64, u64),
    ) -> Option<u64> {
        let tube = &self.client(c).used;
        (self.jobs.iter())
            .filter(|j| &j.tube == tube && j.state == s)
            .min_by_key(|j| key(j))
            .map(|j| j.id)
    }

    pub(super) fn found(&mut self, c: usize, id: Option<u64>) {
        match id {
            Some(id) => self.job_reply(c, "FOUND", id),
            None => self.say(c, b"NOT_FOUND\r\n"),
        }
    }

    pub(super) fn list(&mut self, c: usize, names: &[String]) {
        let mut yaml = String::from("---\n");
        for n in names {
            yaml.push_str(&format!("- {n}\n"));
        }
        let v = format!("OK {}\r\n{yaml}\r\n", yaml.len()).into_bytes();
        self.out[c].push(Reply::Bytes(v));
    }
}
