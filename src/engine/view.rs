//! Read-only views of the engine's state for the HTTP side (metrics and
//! the status page): what `stats` and `stats-tube` say, and what no
//! command shows, such as who holds which job and for how long. Nothing
//! here changes the engine; every time is passed in.

use super::*;

/// One tube, as `stats-tube` counts it, and a little more.
#[derive(Debug, Clone, PartialEq)]
pub struct TubeView<'a> {
    /// The tube's slot: reused once the tube is gone.
    pub id: TubeId,
    pub name: &'a str,
    pub urgent: u64,
    pub ready: u64,
    pub reserved: u64,
    pub delayed: u64,
    pub buried: u64,
    pub total_jobs: u64,
    /// Reservations of the tube's jobs (no command shows it).
    pub reserves: u64,
    pub using: u64,
    pub watching: u64,
    pub waiting: u64,
    pub cmd_delete: u64,
    pub cmd_pause: u64,
    /// The pause length and what is left of it, in nanoseconds (0, 0 when
    /// not paused).
    pub pause: Nanos,
    pub pause_left: Nanos,
    /// The age (since put) of the oldest ready job, if any is ready.
    pub oldest_ready_age: Option<Nanos>,
    /// The id and age of the job buried first, if any is buried.
    pub oldest_buried: Option<(u64, Nanos)>,
}

/// The server-wide counts of `stats`, by what they count: `ready` is
/// current-jobs-ready, `tubes` current-tubes, and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerCounts {
    pub urgent: u64,
    pub ready: u64,
    pub reserved: u64,
    pub delayed: u64,
    pub buried: u64,
    pub job_timeouts: u64,
    pub total_jobs: u64,
    pub max_job_size: u64,
    pub tubes: u64,
    pub connections: u64,
    pub producers: u64,
    pub workers: u64,
    pub waiting: u64,
    pub total_connections: u64,
}

/// One connection, as the engine knows it.
#[derive(Clone)]
pub struct ClientView<'a> {
    pub id: ClientId,
    pub used: &'a str,
    /// Read through [`watched`](Self::watched): collected for every
    /// connection, 1,000 of them cost a status request more than the rows
    /// it shows.
    watch: &'a crate::watch_list::WatchList,
    tubes: &'a Registry,
    pub producer: bool,
    pub worker: bool,
    /// Blocked in a reserve.
    pub waiting: bool,
    pub reserved: usize,
}

impl<'a> ClientView<'a> {
    /// The tubes the connection watches, by name, in `list-tubes-watched`
    /// order.
    pub fn watched(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let tubes = self.tubes;
        self.watch
            .tubes()
            .map(move |t| &*tubes.slab[t as usize].name)
    }
}

/// One reserved job: who holds it, since when, until when.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation<'a> {
    pub id: u64,
    pub tube: &'a str,
    pub client: ClientId,
    pub pri: u32,
    pub body_size: usize,
    pub reserved_at: Nanos,
    pub deadline: Nanos,
    pub reserves: u32,
}

/// What the status page's chart samples of the server or of one tube:
/// the jobs ready, reserved and buried now, and those ever put, reserved
/// and deleted (rates are differences of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Levels {
    pub held: [u64; 3],
    pub flow: [u64; 3],
}

impl Engine {
    /// Every tube, in `list-tubes` order.
    pub fn tube_views(&self, now: Nanos) -> impl Iterator<Item = TubeView<'_>> {
        (self.tubes.in_order_with_ids()).map(move |(id, t)| self.tube_view(id, t, now, true))
    }

    /// Every tube, in `list-tubes` order, without the ages of its oldest
    /// jobs (finding them reads every ready job's key).
    pub fn tube_counts(&self, now: Nanos) -> impl Iterator<Item = TubeView<'_>> {
        (self.tubes.in_order_with_ids()).map(move |(id, t)| self.tube_view(id, t, now, false))
    }

    /// One tube by its slot, ages included.
    pub fn tube_view_at(&self, id: TubeId, now: Nanos) -> Option<TubeView<'_>> {
        let t = self.tubes.slab.get(id as usize)?;
        Some(self.tube_view(id, t, now, true))
    }

    /// Every tube's name, in `list-tubes` order.
    pub fn tube_names(&self) -> impl Iterator<Item = &str> {
        (self.tubes.in_order_with_ids()).map(|(_, t)| &*t.name)
    }

    /// Each tube's slot, and its jobs put, reserved and deleted since it
    /// was made: what per-tube rates are made of.
    pub fn tube_flow(&self) -> impl Iterator<Item = (TubeId, [u64; 3])> + '_ {
        (self.tubes.slab.iter())
            .map(|(id, t)| (id as TubeId, [t.total_jobs, t.reserves, t.cmd_delete]))
    }

    fn tube_view<'a>(
        &'a self,
        id: TubeId,
        t: &'a crate::tube::Tube,
        now: Nanos,
        ages: bool,
    ) -> TubeView<'a> {
        let age = |key: u32| now.saturating_sub(self.jobs[key as usize].created_at);
        // Ids are handed out in put order, so the smallest is the oldest;
        // the scan reads only the heap's keys (about a nanosecond a job).
        let oldest_ready = ages
            .then(|| t.ready.entries().min_by_key(|&((_, id), _)| id))
            .flatten()
            .map(|(_, key)| age(key));
        let oldest_buried = t.buried.peek().map(|(_, key)| {
            let job = &self.jobs[key as usize];
            (job.id, age(key))
        });
        let (pause, pause_left) = if t.paused() {
            (t.pause, t.unpause_at.saturating_sub(now))
        } else {
            (0, 0)
        };
        TubeView {
            id,
            name: &t.name,
            urgent: t.urgent as u64,
            ready: t.ready.len() as u64,
            reserved: t.reserved as u64,
            delayed: t.delayed.len() as u64,
            buried: t.buried.len() as u64,
            total_jobs: t.total_jobs,
            reserves: t.reserves,
            using: t.using as u64,
            watching: t.watching as u64,
            waiting: t.waiting.len() as u64,
            cmd_delete: t.cmd_delete,
            cmd_pause: t.cmd_pause,
            pause,
            pause_left,
            oldest_ready_age: oldest_ready,
            oldest_buried,
        }
    }

    /// The server's [`Levels`].
    pub fn levels(&self) -> Levels {
        let t = &self.totals;
        Levels {
            held: [t.ready, t.reserved, t.buried],
            flow: self.flow_counts(),
        }
    }

    /// One tube's [`Levels`], if it exists.
    pub fn tube_levels(&self, name: &str) -> Option<Levels> {
        let t = &self.tubes.slab[self.tubes.find(name)? as usize];
        Some(tube_levels(t))
    }

    /// Every tube's name and [`Levels`], in `list-tubes` order.
    pub fn each_tube_levels(&self) -> impl Iterator<Item = (&str, Levels)> {
        (self.tubes.in_order()).map(|t| (&*t.name, tube_levels(t)))
    }

    pub fn tube_count(&self) -> usize {
        self.tubes.len()
    }

    /// Every connection, by id.
    pub fn client_views(&self) -> impl Iterator<Item = ClientView<'_>> {
        self.clients.iter().enumerate().filter_map(move |(i, c)| {
            let c = c.as_ref()?;
            Some(ClientView {
                id: i as ClientId,
                used: &self.tubes.slab[c.used as usize].name,
                watch: &c.watch,
                tubes: &self.tubes,
                producer: c.producer,
                worker: c.worker,
                waiting: c.waiting,
                reserved: c.reserved.len(),
            })
        })
    }

    /// Every reserved job, in no particular order.
    pub fn reservations(&self) -> impl Iterator<Item = Reservation<'_>> {
        self.clients.iter().enumerate().flat_map(move |(i, c)| {
            c.iter().flat_map(move |c| {
                c.reserved
                    .entries()
                    .map(move |((deadline, _, since), key)| {
                        let job = &self.jobs[key as usize];
                        Reservation {
                            id: job.id,
                            tube: &self.tubes.slab[job.tube as usize].name,
                            client: i as ClientId,
                            pri: job.pri,
                            body_size: job.bytes(),
                            reserved_at: since,
                            deadline,
                            reserves: job.counts(&self.rare).reserves,
                        }
                    })
            })
        })
    }

    /// Reserved jobs whose TTR ends within the DEADLINE_SOON margin.
    pub fn reservations_near_deadline(&self, now: Nanos) -> u64 {
        let soon = now + SAFETY_MARGIN;
        (self.clients.iter().flatten())
            .flat_map(|c| c.reserved.entries())
            .filter(|&((deadline, _, _), _)| deadline <= soon)
            .count() as u64
    }

    /// The server-wide counts of `stats` (command counts are
    /// [`command_counts`](Self::command_counts)).
    pub fn counts(&self) -> ServerCounts {
        let t = &self.totals;
        ServerCounts {
            urgent: t.urgent,
            ready: t.ready,
            reserved: t.reserved,
            delayed: t.delayed,
            buried: t.buried,
            job_timeouts: t.job_timeouts,
            total_jobs: t.total_jobs,
            max_job_size: self.max_job_size as u64,
            tubes: self.tubes.len() as u64,
            connections: t.connections,
            producers: t.producers,
            workers: t.workers,
            waiting: t.waiting,
            total_connections: t.total_connections,
        }
    }

    /// How often each command was used, every command counted.
    pub fn command_counts(&self) -> impl Iterator<Item = (Op, u64)> + '_ {
        Op::ALL
            .into_iter()
            .map(|op| (op, self.totals.ops[op as usize]))
    }

    /// (jobs put, jobs reserved, jobs deleted) since start: what rates are
    /// made of.
    pub fn flow_counts(&self) -> [u64; 3] {
        let t = &self.totals;
        [t.total_jobs, t.reservations, t.ops[Op::Delete as usize]]
    }

    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    pub fn uptime(&self, now: Nanos) -> Nanos {
        now.saturating_sub(self.started)
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }
}

fn tube_levels(t: &crate::tube::Tube) -> Levels {
    Levels {
        held: [
            t.ready.len() as u64,
            t.reserved as u64,
            t.buried.len() as u64,
        ],
        flow: [t.total_jobs, t.reserves, t.cmd_delete],
    }
}
