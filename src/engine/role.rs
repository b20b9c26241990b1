//! Who this node is in replication, and the epoch that says since when:
//! the commands a supervisor (or an operator) sends to promote or demote
//! it, and the check a primary makes of a replica's epoch (doc/ha.md).
//!
//! An epoch is a primary's term. A node keeps the newest it has seen on
//! disk (through the journal) before it acts on it, and refuses anything
//! older: a promotion, a primary to follow, or a replica's stream. So once
//! a newer primary has been made, an older one that hears of it stops
//! taking changes at once, and nothing that knows the newer epoch follows
//! or obeys the older one.
//!
//! The engine changes its own state (whether it takes changes) in the
//! command itself, before the reply; what the sockets must do about it
//! (drop replicas, follow someone) it leaves in [`RoleChange`] for the
//! event loop to take.

use super::*;

/// What the event loop must do after a role command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    /// Take changes, as the primary of the engine's epoch.
    Primary,
    /// Follow the primary at HOST:PORT.
    Follow(String),
    /// A newer epoch exists elsewhere: take no changes, follow no one,
    /// until told (replies held for replicas are never sent).
    Standby,
}

impl Engine {
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The epoch read back from disk at startup.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// What the sockets must do after the last role command, once.
    pub fn take_role_change(&mut self) -> Option<RoleChange> {
        self.role_change.take()
    }

    /// `--standby`: start taking no changes, until promoted or told to
    /// follow.
    pub fn set_standby(&mut self) {
        self.refuses_changes = true;
    }

    /// A replica has heard its primary's epoch: a newer one is saved and
    /// becomes this node's; an older one is refused (false), and the
    /// stream must not be applied.
    pub fn adopt_epoch(&mut self, epoch: u64, sink: &mut impl Sink) -> Result<bool, JournalError> {
        if epoch < self.epoch {
            return Ok(false);
        }
        if epoch > self.epoch {
            if let Some(j) = sink.journal() {
                j.save_epoch(epoch)?;
            }
            self.epoch = epoch;
        }
        Ok(true)
    }

    /// Saves `epoch` (newer than this node's) before it is acted on.
    fn raise_epoch(&mut self, epoch: u64, sink: &mut impl Sink) -> Result<(), JournalError> {
        if epoch > self.epoch {
            match sink.journal() {
                Some(j) => j.save_epoch(epoch)?,
                None => return Err(JournalError::Io),
            }
            self.epoch = epoch;
        }
        Ok(())
    }

    /// `sprout-replicate EPOCH`: a replica that knows a newer epoch than
    /// this node means this node is no primary any more: it stops taking
    /// changes now, and says so (`NOT_PRIMARY`). Otherwise the connection
    /// becomes the replica's stream.
    pub(super) fn replicate(&mut self, c: ClientId, epoch: u64, sink: &mut impl Sink) -> Outcome {
        if epoch <= self.epoch {
            return Outcome::Replicate;
        }
        if !self.refuses_changes {
            self.refuses_changes = true;
            self.role_change = Some(RoleChange::Standby);
        }
        // Saved if it can be; refused changes are safe either way.
        let _ = self.raise_epoch(epoch, sink);
        let _ = write!(sink.out(c), "NOT_PRIMARY {}\r\n", self.epoch);
        Outcome::Done
    }

    /// `sprout-promote EPOCH`: become the primary of EPOCH, which must be
    /// newer than any this node has seen (or its own, when it is primary
    /// already: promoting twice is answered the same).
    pub(super) fn promote(&mut self, c: ClientId, epoch: u64, sink: &mut impl Sink) {
        if sink.journal().is_none() {
            sink.out(c).extend_from_slice(b"NO_BINLOG\r\n");
            return;
        }
        let again = epoch == self.epoch && !self.refuses_changes;
        if epoch < self.epoch || (epoch == self.epoch && self.refuses_changes) {
            let _ = write!(sink.out(c), "STALE_EPOCH {}\r\n", self.epoch);
            return;
        }
        if !again {
            if let Err(e) = self.raise_epoch(epoch, sink) {
                sink.out(c).extend_from_slice(e.reply());
                return;
            }
            self.refuses_changes = false;
            self.role_change = Some(RoleChange::Primary);
        }
        let _ = write!(sink.out(c), "PROMOTED {}\r\n", self.epoch);
    }

    /// `sprout-demote`: take no changes from now on, follow no one. Needs
    /// no epoch: it only takes away.
    pub(super) fn demote(&mut self, c: ClientId, sink: &mut impl Sink) {
        if !self.refuses_changes || self.replication.primary.is_some() {
            self.refuses_changes = true;
            self.role_change = Some(RoleChange::Standby);
        }
        let _ = write!(sink.out(c), "DEMOTED {}\r\n", self.epoch);
    }

    /// `sprout-follow HOST:PORT EPOCH`: take no changes from now on, and
    /// follow that primary, whose epoch must be no older than this node's.
    pub(super) fn follow(&mut self, c: ClientId, primary: &str, epoch: u64, sink: &mut impl Sink) {
        if sink.journal().is_none() {
            sink.out(c).extend_from_slice(b"NO_BINLOG\r\n");
            return;
        }
        if epoch < self.epoch {
            let _ = write!(sink.out(c), "STALE_EPOCH {}\r\n", self.epoch);
            return;
        }
        if let Err(e) = self.raise_epoch(epoch, sink) {
            sink.out(c).extend_from_slice(e.reply());
            return;
        }
        self.refuses_changes = true;
        self.role_change = Some(RoleChange::Follow(primary.to_string()));
        let _ = write!(sink.out(c), "FOLLOWING {}\r\n", self.epoch);
    }
}
