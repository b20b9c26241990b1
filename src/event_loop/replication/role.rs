//! What a role command means for the sockets (engine/role.rs has already
//! changed whether the engine takes changes): a promoted node stops
//! following; a demoted one drops its replicas, never sends the replies
//! that waited for them, and follows its new primary, or no one.

use crate::engine::RoleChange;

use super::super::*;
use super::Upstream;

impl Server {
    /// Carries out what the last command batch of connection `c` (or a
    /// replica's newer epoch) left to do.
    pub(in crate::event_loop) fn apply_role_change(&mut self, c: ClientId) {
        let Some(change) = self.engine.take_role_change() else {
            return;
        };
        let epoch = self.engine.epoch();
        match change {
            RoleChange::Primary => {
                self.drop_upstream();
                for (_, dc) in self.downstreams.iter_mut() {
                    dc.push_epoch(epoch);
                }
                // Writes wait for replicas again, if they must.
                if self.sync_replicas > 0 {
                    self.engine.set_writes_refused(true);
                }
                info!("promoted: the primary of epoch {epoch}; changes are taken");
            }
            RoleChange::Follow(primary) => {
                self.step_down(c);
                let keep = (self.upstream.as_ref()).is_some_and(|u| u.streams(&primary, epoch));
                if !keep {
                    self.drop_upstream();
                    info!("following {primary}, of epoch {epoch}; changes are refused (DRAINING)");
                    self.upstream = Some(Upstream::new(primary));
                }
            }
            RoleChange::Standby => {
                self.step_down(c);
                self.drop_upstream();
                warn!(
                    "a standby now, at epoch {epoch} (demoted, or a replica knew a newer epoch): this server takes no changes (DRAINING) until a supervisor says whom to follow (sprout-follow) or promotes it"
                );
            }
        }
    }

    /// No longer the primary: replies held for replicas or an fsync are
    /// never sent (their connections close, so that no client takes a
    /// change the new primary may not hold for done), and replicas are let
    /// go.
    fn step_down(&mut self, c: ClientId) {
        let held: Vec<usize> = (self.conns.iter())
            .filter(|(_, conn)| conn.held.is_some())
            .map(|(k, _)| k)
            .collect();
        if !held.is_empty() {
            warn!(
                "stepping down: {} connections waited for replies to changes; they close unanswered",
                held.len()
            );
        }
        for key in held {
            let conn = &mut self.conns[key];
            let from = conn.held.map_or(conn.out.len(), |h| h.from);
            conn.out.truncate(from);
            conn.held = None;
            if key == c as usize {
                // Its own drive closes it once the rest is written.
                conn.closing = true;
            } else {
                self.close(key as ClientId);
            }
        }
        let keys: Vec<usize> = self.downstreams.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.drop_downstream(key, "this server is no longer the primary");
        }
    }
}
