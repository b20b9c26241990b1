//! `sproutctl supervise`: runs beside one sprout (started with
//! `--standby -b DIR`) and lets etcd decide whether it is primary. Each
//! tick it renews its lease, asks its sprout for `stats` (with a
//! timeout, so a stopped sprout counts as gone), publishes the node's
//! (epoch, position) under the nodes prefix, reads the leader key and
//! does what [`election::decide`] says: promote, follow, campaign,
//! demote or resign. [`etcd`] is the client.
//!
//! A leader whose lease cannot be renewed demotes its sprout once 2/3 of
//! the TTL has passed since the last renewal it sent (before etcd can
//! have let the lease lapse, so two primaries never both take changes
//! through it); on SIGTERM it demotes its sprout and revokes its lease.

mod election;
pub mod etcd;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use argh::FromArgs;
use serde_json::json;

use crate::Ctx;
use crate::client::{Conn, stat};
use crate::exit;
use election::{Leader, Local, Peer, Role, Seen, Step};
use etcd::{Created, Etcd};

#[derive(FromArgs)]
#[argh(subcommand, name = "supervise")]
/// Let etcd elect the primary: run one beside each sprout node (the
/// global --etcd and --cluster say where).
pub struct SuperviseArgs {
    /// this node's sprout, HOST:PORT as other nodes and clients reach it
    /// (default 127.0.0.1:11300)
    #[argh(option, default = "String::from(\"127.0.0.1:11300\")")]
    node: String,
    /// the lease's time to live in seconds: how long a lost machine may
    /// hold the leadership (default 5)
    #[argh(option, default = "5")]
    ttl: u64,
}

/// Where a cluster's keys are.
pub fn leader_key(cluster: &str) -> String {
    format!("/sprout/{cluster}/leader")
}

fn nodes_prefix(cluster: &str) -> String {
    format!("/sprout/{cluster}/nodes/")
}

/// The etcd endpoints: the flag, SPROUT_ETCD, or etcd's default.
pub fn endpoints(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("SPROUT_ETCD").ok())
        .unwrap_or_else(|| "http://127.0.0.1:2379".to_string())
}

/// How long the sprout may take to answer `stats` before it counts as
/// gone (stopped, hung, or its machine lost).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

pub fn run(ctx: &Ctx, a: SuperviseArgs) -> i32 {
    let mut etcd = match Etcd::new(&endpoints(ctx.etcd.clone())) {
        Ok(e) => e,
        Err(why) => return exit::usage(&why),
    };
    if a.ttl < 2 {
        return exit::usage("--ttl: at least 2 seconds (etcd's own minimum is near there)");
    }
    let stop = match crate::stop::on_signal() {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("sproutctl supervise: cannot catch SIGTERM and SIGINT: {e}");
            return exit::FAILED;
        }
    };
    let ttl = Duration::from_secs(a.ttl);
    let tick = (ttl / 10).min(Duration::from_millis(500));
    let mut s = Supervisor {
        me: a.node,
        cluster: ctx.cluster.clone(),
        lease: None,
        renewed: Instant::now(),
        ttl,
        last_local: None,
        gone_since: None,
    };
    eprintln!(
        "sproutctl supervise: {} in cluster {:?}, lease TTL {}s",
        s.me, s.cluster, a.ttl
    );
    while !stop.load(Ordering::Relaxed) {
        let began = Instant::now();
        s.turn(&mut etcd);
        std::thread::sleep(tick.saturating_sub(began.elapsed()));
    }
    // Stepping down: no primary is left without a lease behind it.
    if s.last_local
        .as_ref()
        .is_some_and(|l| l.role == Role::Primary)
    {
        s.tell("sprout-demote", "DEMOTED");
    }
    if let Some(lease) = s.lease.take() {
        let _ = etcd.revoke(lease);
    }
    eprintln!("sproutctl supervise: stopped; {} is a standby", s.me);
    exit::OK
}

struct Supervisor {
    me: String,
    cluster: String,
    lease: Option<i64>,
    /// When the last renewal that succeeded was sent.
    renewed: Instant,
    ttl: Duration,
    /// The sprout's stats at the last answer.
    last_local: Option<Local>,
    /// The revision at which the leader key was first seen gone.
    gone_since: Option<u64>,
}

impl Supervisor {
    fn turn(&mut self, etcd: &mut Etcd) {
        let Some(local) = self.ask_local() else {
            // decide() says Resign to a silent sprout whatever else it
            // sees, so etcd is not asked first; and once the lease is
            // gone there is nothing more to give up.
            if self.lease.is_some() {
                self.act(etcd, Step::Resign);
            }
            return;
        };
        self.last_local = Some(local.clone());
        if !self.renew(etcd) {
            return;
        }
        let Some(lease) = self.lease else { return };
        let leader = match etcd.range(&leader_key(&self.cluster), true) {
            Ok((kvs, revision)) => {
                let leader = kvs.into_iter().next().map(|kv| Leader {
                    addr: kv.value,
                    epoch: kv.create_revision,
                    lease: kv.lease,
                });
                self.gone_since = match leader {
                    Some(_) => None,
                    None => Some(self.gone_since.unwrap_or(revision)),
                };
                leader
            }
            Err(e) => return eprintln!("sproutctl supervise: reading the leader: {e}"),
        };
        let me = json!({"addr": self.me, "epoch": local.epoch, "position": local.position});
        let key = format!("{}{}", nodes_prefix(&self.cluster), self.me);
        if let Err(e) = etcd.put(&key, &me.to_string(), lease) {
            eprintln!("sproutctl supervise: publishing this node: {e}");
        }
        let peers: Vec<Peer> = match etcd.range(&nodes_prefix(&self.cluster), false) {
            Ok((kvs, _)) => kvs.iter().filter_map(peer).collect(),
            Err(e) => return eprintln!("sproutctl supervise: reading the nodes: {e}"),
        };
        let step = election::decide(&Seen {
            me: &self.me,
            lease,
            local: Some(&local),
            leader: leader.as_ref(),
            gone_since: self.gone_since,
            peers: &peers,
        });
        self.act(etcd, step);
    }

    fn act(&mut self, etcd: &mut Etcd, step: Step) {
        match step {
            Step::Stay => {}
            Step::Promote(epoch) => {
                eprintln!(
                    "sproutctl supervise: elected; promoting {} at epoch {epoch}",
                    self.me
                );
                let reply = self.tell(&format!("sprout-promote {epoch}"), "PROMOTED");
                if reply
                    .as_deref()
                    .is_some_and(|r| r.starts_with("STALE_EPOCH"))
                {
                    // The sprout has seen a newer epoch than etcd's key:
                    // this etcd is not the one it was elected by.
                    eprintln!(
                        "sproutctl supervise: {} knows a newer epoch than etcd's {epoch}; resigning (was etcd's data lost?)",
                        self.me
                    );
                    self.resign(etcd);
                }
            }
            Step::Follow(primary, epoch) => {
                eprintln!(
                    "sproutctl supervise: {} follows {primary} at epoch {epoch}",
                    self.me
                );
                self.tell(&format!("sprout-follow {primary} {epoch}"), "FOLLOWING");
            }
            Step::Campaign => {
                let Some(lease) = self.lease else { return };
                match etcd.create(&leader_key(&self.cluster), &self.me, lease) {
                    Ok(Created::Made(epoch)) => {
                        eprintln!(
                            "sproutctl supervise: {} won the election, epoch {epoch}",
                            self.me
                        );
                        self.tell(&format!("sprout-promote {epoch}"), "PROMOTED");
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("sproutctl supervise: campaigning: {e}"),
                }
            }
            Step::Demote => {
                eprintln!("sproutctl supervise: no leader key; demoting {}", self.me);
                self.tell("sprout-demote", "DEMOTED");
            }
            Step::Resign => {
                eprintln!(
                    "sproutctl supervise: {} does not answer; giving up its lease",
                    self.me
                );
                self.resign(etcd);
            }
        }
    }

    /// Keeps the lease alive (or gets one). False when there is none to
    /// act under this turn.
    fn renew(&mut self, etcd: &mut Etcd) -> bool {
        let sent = Instant::now();
        let renewed = match self.lease {
            None => match etcd.grant(self.ttl.as_secs()) {
                Ok(id) => {
                    self.lease = Some(id);
                    true
                }
                Err(e) => {
                    eprintln!("sproutctl supervise: no lease: {e}");
                    false
                }
            },
            Some(id) => match etcd.keepalive(id) {
                Ok(true) => true,
                Ok(false) => {
                    eprintln!("sproutctl supervise: the lease lapsed; getting a new one");
                    self.lease = None;
                    false
                }
                Err(e) => {
                    eprintln!("sproutctl supervise: cannot renew the lease: {e}");
                    false
                }
            },
        };
        if renewed {
            self.renewed = sent;
            return true;
        }
        let leading = (self.last_local.as_ref()).is_some_and(|l| l.role == Role::Primary);
        if leading && self.renewed.elapsed() >= self.ttl * 2 / 3 {
            eprintln!(
                "sproutctl supervise: the lease may lapse before it can be renewed; demoting {}",
                self.me
            );
            if self.tell("sprout-demote", "DEMOTED").is_some() {
                self.lease = None;
                self.last_local = None;
            }
        }
        false
    }

    fn resign(&mut self, etcd: &mut Etcd) {
        if let Some(lease) = self.lease.take()
            && let Err(e) = etcd.revoke(lease)
        {
            eprintln!("sproutctl supervise: revoking the lease: {e}");
        }
    }

    /// The sprout's stats, or None when it does not answer in time.
    fn ask_local(&self) -> Option<Local> {
        let mut c = Conn::connect(&self.me).ok()?;
        c.set_timeout(HEALTH_TIMEOUT);
        let s = c.stats().ok()?;
        Some(Local {
            role: Role::parse(stat(&s, "role")?)?,
            epoch: stat(&s, "epoch")?.parse().ok()?,
            primary: stat(&s, "primary").map(String::from),
            position: stat(&s, "replica-position")
                .map_or(Ok(-1), str::parse)
                .ok()?,
        })
    }

    /// Sends a role command; its reply, or None (logged) when it did not
    /// come or was not `want`.
    fn tell(&self, command: &str, want: &str) -> Option<String> {
        let reply = Conn::connect(&self.me).and_then(|mut c| {
            c.set_timeout(HEALTH_TIMEOUT);
            c.command(command)
        });
        match reply {
            Ok(r) if r.starts_with(want) => Some(r),
            Ok(r) => {
                eprintln!(
                    "sproutctl supervise: {} answered {command:?} with {r:?}",
                    self.me
                );
                Some(r)
            }
            Err(e) => {
                eprintln!("sproutctl supervise: {command:?}: {e}");
                None
            }
        }
    }
}

fn peer(kv: &etcd::Kv) -> Option<Peer> {
    let v: serde_json::Value = serde_json::from_str(&kv.value).ok()?;
    Some(Peer {
        addr: v["addr"].as_str()?.to_string(),
        epoch: v["epoch"].as_u64()?,
        position: v["position"].as_i64()?,
        published: kv.mod_revision,
    })
}

/// `--etcd`: the primary's address as the leader key holds it.
pub fn find_primary(endpoints: &str, cluster: &str) -> Result<String, String> {
    let mut etcd = Etcd::new(endpoints)?;
    match etcd.range(&leader_key(cluster), true) {
        Ok((kvs, _)) => (kvs.into_iter().next().map(|kv| kv.value)).ok_or_else(|| {
            format!("cluster {cluster:?} has no primary in etcd now (is a supervisor running?)")
        }),
        Err(e) => Err(e.to_string()),
    }
}
