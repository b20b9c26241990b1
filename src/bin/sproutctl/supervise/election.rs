//! What a supervisor does next, decided from what it has just seen: its
//! sprout's stats, etcd's leader key and the nodes that publish
//! themselves. Pure: no sockets, no clock, so each rule has a test.
//!
//! The rules:
//! - The leader key is etcd's, created only if absent and held by a
//!   lease; the revision that created it is the epoch. Whoever holds it
//!   is primary, at that epoch; everyone else follows it, at that epoch.
//! - A node campaigns only while its sprout answers and no live node has
//!   seen more of the last primary's stream (a higher (epoch, position)):
//!   with --sync-replicas 1 the furthest replica holds every acknowledged
//!   change, so it is the one that may be elected. Positions are compared
//!   only once every live node has published after the leader key was
//!   seen gone (its key's mod_revision above that revision): a position
//!   published before may be stale, and a stale one could elect a replica
//!   that lacks the last acknowledged change.
//! - A node whose sprout does not answer gives up its lease, and with it
//!   its published position, so that it neither holds the key nor stalls
//!   an election.
//! - A primary with no key (its lease lapsed, or it never had one) is
//!   demoted before anyone else may be promoted.

/// A node's own sprout, as its `stats` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub role: Role,
    pub epoch: u64,
    /// The primary it follows (replicas only).
    pub primary: Option<String>,
    /// The followed primary's records it holds; -1 when it follows none.
    pub position: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
    Standby,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "primary" => Some(Role::Primary),
            "replica" => Some(Role::Replica),
            "standby" => Some(Role::Standby),
            _ => None,
        }
    }
}

/// Another node, as it publishes itself under the nodes prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub addr: String,
    pub epoch: u64,
    pub position: i64,
    /// The etcd revision of its last publication.
    pub published: u64,
}

/// The leader key as read: who, at which epoch, by which lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub addr: String,
    pub epoch: u64,
    pub lease: i64,
}

pub struct Seen<'a> {
    /// This node's advertised address (what the leader key holds).
    pub me: &'a str,
    /// This supervisor's lease.
    pub lease: i64,
    /// None when the sprout did not answer in time.
    pub local: Option<&'a Local>,
    pub leader: Option<&'a Leader>,
    /// The revision at which the leader key was first seen gone (None
    /// while it is there).
    pub gone_since: Option<u64>,
    /// Every live node, this one included.
    pub peers: &'a [Peer],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to change.
    Stay,
    /// This node holds the key: make its sprout primary at the epoch.
    Promote(u64),
    /// Another holds it: follow that one at its epoch.
    Follow(String, u64),
    /// No key: try to create it.
    Campaign,
    /// No key, yet this sprout is primary: stop it taking changes first.
    Demote,
    /// The sprout does not answer: give up the lease (the key, if held,
    /// and the published position) so that another can be elected now,
    /// not a TTL later.
    Resign,
}

pub fn decide(s: &Seen) -> Step {
    let mine = |l: &Leader| l.addr == s.me && l.lease == s.lease;
    let Some(local) = s.local else {
        return Step::Resign;
    };
    match s.leader {
        Some(l) if mine(l) => {
            if local.role == Role::Primary && local.epoch == l.epoch {
                Step::Stay
            } else {
                Step::Promote(l.epoch)
            }
        }
        // This node's key from a lease of before a restart: it lapses
        // within a TTL, and nobody else can be elected until then.
        Some(l) if l.addr == s.me => Step::Stay,
        Some(l) => {
            let following = local.role == Role::Replica
                && local.primary.as_deref() == Some(l.addr.as_str())
                && local.epoch == l.epoch;
            if following {
                Step::Stay
            } else {
                Step::Follow(l.addr.clone(), l.epoch)
            }
        }
        None if local.role == Role::Primary => Step::Demote,
        None => {
            let since = s.gone_since.unwrap_or(u64::MAX);
            let settled = s.peers.iter().any(|p| p.addr == s.me)
                && s.peers.iter().all(|p| p.published > since);
            let mine = (local.epoch, local.position);
            let ahead = (s.peers.iter())
                .filter(|p| p.addr != s.me)
                .any(|p| (p.epoch, p.position) > mine);
            if settled && !ahead {
                Step::Campaign
            } else {
                Step::Stay
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(role: Role, epoch: u64, primary: Option<&str>, position: i64) -> Local {
        Local {
            role,
            epoch,
            primary: primary.map(String::from),
            position,
        }
    }

    fn leader(addr: &str, epoch: u64, lease: i64) -> Leader {
        Leader {
            addr: addr.to_string(),
            epoch,
            lease,
        }
    }

    fn peer(addr: &str, epoch: u64, position: i64) -> Peer {
        Peer {
            addr: addr.to_string(),
            epoch,
            position,
            published: 101,
        }
    }

    /// As seen with the key gone since revision 100, this node ("a:1",
    /// at the position its Local says) among `peers`, all published after.
    fn decide_for(l: Option<&Local>, lead: Option<&Leader>, peers: &[Peer]) -> Step {
        let mut all = peers.to_vec();
        if let Some(l) = l
            && !all.iter().any(|p| p.addr == "a:1")
        {
            all.push(Peer {
                position: l.position,
                ..peer("a:1", l.epoch, 0)
            });
        }
        decide(&Seen {
            me: "a:1",
            lease: 7,
            local: l,
            leader: lead,
            gone_since: lead.is_none().then_some(100),
            peers: &all,
        })
    }

    #[test]
    fn the_key_holder_is_promoted_at_the_keys_epoch_once() {
        let k = leader("a:1", 12, 7);
        let standby = local(Role::Standby, 3, None, -1);
        assert_eq!(decide_for(Some(&standby), Some(&k), &[]), Step::Promote(12));
        let done = local(Role::Primary, 12, None, -1);
        assert_eq!(decide_for(Some(&done), Some(&k), &[]), Step::Stay);
        // Primary of an older epoch: promoted again, at the new one.
        let old = local(Role::Primary, 5, None, -1);
        assert_eq!(decide_for(Some(&old), Some(&k), &[]), Step::Promote(12));
    }

    #[test]
    fn others_follow_the_key_holder_and_a_primary_without_the_key_follows_too() {
        let k = leader("b:1", 12, 9);
        let following = local(Role::Replica, 12, Some("b:1"), 40);
        assert_eq!(decide_for(Some(&following), Some(&k), &[]), Step::Stay);
        let wrong = local(Role::Replica, 12, Some("c:1"), 40);
        let follow = Step::Follow("b:1".to_string(), 12);
        assert_eq!(decide_for(Some(&wrong), Some(&k), &[]), follow);
        let old_primary = local(Role::Primary, 5, None, -1);
        assert_eq!(decide_for(Some(&old_primary), Some(&k), &[]), follow);
    }

    #[test]
    fn a_silent_sprout_gives_up_its_lease_and_never_campaigns() {
        for lead in [Some(leader("a:1", 12, 7)), None, Some(leader("b:1", 12, 9))] {
            assert_eq!(decide_for(None, lead.as_ref(), &[]), Step::Resign);
        }
    }

    #[test]
    fn positions_published_before_the_key_went_are_not_compared() {
        let me = local(Role::Replica, 12, Some("b:1"), 40);
        // c:1 last published before the key went (revision 90 < 100): its
        // 39 may be stale, so nobody campaigns until it publishes again.
        let stale = [Peer {
            published: 90,
            ..peer("c:1", 12, 39)
        }];
        assert_eq!(decide_for(Some(&me), None, &stale), Step::Stay);
        // Nor before this node's own position is published.
        let unpublished_me = decide(&Seen {
            me: "a:1",
            lease: 7,
            local: Some(&me),
            leader: None,
            gone_since: Some(100),
            peers: &[peer("c:1", 12, 39)],
        });
        assert_eq!(unpublished_me, Step::Stay);
    }

    #[test]
    fn a_key_of_this_nodes_earlier_lease_is_left_to_lapse() {
        let prim = local(Role::Primary, 12, None, -1);
        assert_eq!(
            decide_for(Some(&prim), Some(&leader("a:1", 12, 3)), &[]),
            Step::Stay
        );
    }

    #[test]
    fn only_the_furthest_replica_campaigns() {
        let me = local(Role::Replica, 12, Some("b:1"), 40);
        let behind = [peer("c:1", 12, 39), peer("a:1", 12, 40)];
        assert_eq!(decide_for(Some(&me), None, &behind), Step::Campaign);
        let level = [peer("c:1", 12, 40)];
        assert_eq!(decide_for(Some(&me), None, &level), Step::Campaign);
        let ahead = [peer("c:1", 12, 41)];
        assert_eq!(decide_for(Some(&me), None, &ahead), Step::Stay);
        // A newer epoch beats any position of an older one.
        let newer = [peer("c:1", 13, 0)];
        assert_eq!(decide_for(Some(&me), None, &newer), Step::Stay);
        let older = [peer("c:1", 11, 1_000_000)];
        assert_eq!(decide_for(Some(&me), None, &older), Step::Campaign);
    }

    #[test]
    fn a_primary_with_no_key_is_demoted_before_any_campaign() {
        let prim = local(Role::Primary, 12, None, -1);
        assert_eq!(decide_for(Some(&prim), None, &[]), Step::Demote);
    }
}
