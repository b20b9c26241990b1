//! The invariants of doc/architecture.md, checked from scratch: for the
//! fuzz targets and the engine's tests, after every step. Slow (it walks
//! every job, tube and connection), never called by the server.

use super::*;

/// The first invariant found broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// A job is not at its recorded position in the heap its state names.
    Misplaced { id: u64, state: State },
    /// The heaps hold a different number of jobs than exist.
    JobCount { held: usize, jobs: usize },
    /// A count that stats reports differs from what the structures hold.
    Count {
        what: &'static str,
        counted: u64,
        held: u64,
    },
    /// A tube has a ready job and a waiting client, is not paused, and yet
    /// no match was made (or the candidates heap is not empty).
    Unmatched { tube: TubeId },
    /// A waiting client is missing from the waiting set of a tube it
    /// watches, or is there at a position it does not record.
    Waiter { client: ClientId, tube: TubeId },
    /// The registry's list of tubes with ready jobs is wrong.
    ReadyList { tube: TubeId },
    /// A delayed or reserved job without its timer, or another with one.
    Timer { id: u64, state: State },
}

impl Engine {
    /// Checks every invariant; `Ok` when all hold.
    pub fn check_invariants(&self) -> Result<(), Broken> {
        let mut held = 0;
        let mut totals = [0u64; 5]; // ready, urgent, delayed, buried, reserved
        for (key, job) in self.jobs.iter() {
            let key = key as u32;
            let tube = &self.tubes.slab[job.tube as usize];
            let at = match job.state {
                State::Ready => tube.ready.item_at(job.pos),
                State::Delayed => tube.delayed.item_at(job.pos),
                State::Buried => tube.buried.item_at(job.pos),
                State::Reserved => self
                    .clients
                    .get(job.reserver as usize)
                    .and_then(Option::as_ref)
                    .and_then(|c| c.reserved.item_at(job.pos)),
            };
            if at != Some(key) || self.ids.get(job.id) != Some(key) {
                return Err(Broken::Misplaced {
                    id: job.id,
                    state: job.state,
                });
            }
            if job.timer.is_some() != matches!(job.state, State::Delayed | State::Reserved) {
                return Err(Broken::Timer {
                    id: job.id,
                    state: job.state,
                });
            }
            held += 1;
            let i = match job.state {
                State::Ready => 0,
                State::Delayed => 2,
                State::Buried => 3,
                State::Reserved => 4,
            };
            totals[i] += 1;
            if job.state == State::Ready && job.pri < URGENT_PRI {
                totals[1] += 1;
            }
        }
        let in_heaps: usize = self
            .tubes
            .slab
            .iter()
            .map(|(_, t)| t.ready.len() + t.delayed.len() + t.buried.len())
            .sum::<usize>()
            + self
                .clients
                .iter()
                .flatten()
                .map(|c| c.reserved.len())
                .sum::<usize>();
        if held != in_heaps || held != self.jobs.len() {
            return Err(Broken::JobCount {
                held: in_heaps,
                jobs: self.jobs.len(),
            });
        }
        let t = &self.totals;
        for (what, counted, held) in [
            ("current-jobs-ready", t.ready, totals[0]),
            ("current-jobs-urgent", t.urgent, totals[1]),
            ("current-jobs-delayed", t.delayed, totals[2]),
            ("current-jobs-buried", t.buried, totals[3]),
            ("current-jobs-reserved", t.reserved, totals[4]),
        ] {
            if counted != held {
                return Err(Broken::Count {
                    what,
                    counted,
                    held,
                });
            }
        }
        self.check_tubes()?;
        self.check_waiters()
    }

    fn check_tubes(&self) -> Result<(), Broken> {
        if !self.candidates.is_empty() {
            let (_, tube) = self.candidates.peek().unwrap_or_default();
            return Err(Broken::Unmatched { tube });
        }
        let mut reserved = vec![0u32; self.tubes.slab.capacity()];
        for c in self.clients.iter().flatten() {
            for key in c.reserved.items() {
                reserved[self.jobs[key as usize].tube as usize] += 1;
            }
        }
        for (id, tube) in self.tubes.slab.iter() {
            let id = id as TubeId;
            if !tube.paused() && !tube.ready.is_empty() && !tube.waiting.is_empty() {
                return Err(Broken::Unmatched { tube: id });
            }
            if tube.ready.is_empty() == self.tubes.with_ready().contains(&id) {
                return Err(Broken::ReadyList { tube: id });
            }
            let urgent = tube
                .ready
                .items()
                .filter(|&k| self.jobs[k as usize].pri < URGENT_PRI)
                .count() as u64;
            for (what, counted, held) in [
                ("stats-tube current-jobs-urgent", tube.urgent as u64, urgent),
                (
                    "stats-tube current-jobs-reserved",
                    tube.reserved as u64,
                    reserved[id as usize] as u64,
                ),
            ] {
                if counted != held {
                    return Err(Broken::Count {
                        what,
                        counted,
                        held,
                    });
                }
            }
        }
        Ok(())
    }

    fn check_waiters(&self) -> Result<(), Broken> {
        let mut waiting = 0;
        for (c, client) in self.clients.iter().enumerate() {
            let Some(client) = client else { continue };
            if client.watch.len() > self.max_watched {
                return Err(Broken::Count {
                    what: "tubes one connection watches (at most)",
                    counted: self.max_watched as u64,
                    held: client.watch.len() as u64,
                });
            }
            if !client.waiting {
                continue;
            }
            waiting += 1;
            for i in 0..client.watch.len() {
                let (t, pos) = client.watch.entry(i);
                let there = self.tubes.slab[t as usize].waiting.get(pos as usize);
                if there.map(|&(who, _)| who) != Some(c as ClientId) {
                    return Err(Broken::Waiter {
                        client: c as ClientId,
                        tube: t,
                    });
                }
            }
        }
        let in_sets: usize = self.tubes.slab.iter().map(|(_, t)| t.waiting.len()).sum();
        let watched: usize = self
            .clients
            .iter()
            .flatten()
            .filter(|c| c.waiting)
            .map(|c| c.watch.len())
            .sum();
        if in_sets != watched || waiting != self.totals.waiting {
            return Err(Broken::Count {
                what: "current-waiting",
                counted: self.totals.waiting,
                held: waiting,
            });
        }
        Ok(())
    }
}
