//! What the loop does when an fsync completes or fails, and the clean stop.

use super::*;

impl Server {
    /// The sync thread has finished an fsync: release the replies that
    /// waited for it.
    pub(super) fn synced(&mut self) {
        let Some(b) = &mut self.binlog else { return };
        match b.sync_completed() {
            Ok(_) => {}
            Err(failed) if self.hold_replies => {
                error!(
                    "binlog: {failed}; the replies that waited for it are not sent, as their changes may not be on disk: sprout stops (exit status {EXIT_SYNC_FAILED}) so that a restart recovers what the disk holds; check the disk (dmesg)"
                );
                self.failed = Some(failed);
                return;
            }
            Err(failed) => {
                let failures = b.sync_failures();
                self.rewrite_after(failed, failures);
                return;
            }
        }
        self.release_held();
        self.ack_synced();
    }

    /// Sends the held replies whose changes are now durable: on disk
    /// (-f0) and on enough replicas (--sync-replicas). One that waited for
    /// replicas longer than --sync-timeout is never sent: its connection
    /// closes, so the client knows the outcome is unknown rather than
    /// taking it for done.
    pub(super) fn release_held(&mut self) {
        let Some(b) = &self.binlog else { return };
        let synced = b.synced();
        let replicated = self.replicated();
        let now = Instant::now();
        let mut expired = Vec::new();
        for (key, conn) in self.conns.iter_mut() {
            let Some(h) = conn.held else { continue };
            let on_disk = !self.hold_replies || h.written <= synced;
            let on_replicas = self.sync_replicas == 0 || h.tapped <= replicated;
            if on_disk && on_replicas {
                conn.held = None;
                self.woken.push(key as ClientId);
            } else if !on_replicas && now.duration_since(h.since) >= self.sync_timeout {
                expired.push(key);
            }
        }
        for key in expired {
            warn!(
                "connection {key}: {} replicas did not acknowledge its change within {} ms: the reply is not sent and the connection closed (the change is on this server, and may or may not be on a replica)",
                self.sync_replicas,
                self.sync_timeout.as_millis()
            );
            if let Some(conn) = self.conns.get_mut(key) {
                // Nothing held may leak out as the connection closes.
                let from = conn.held.map_or(conn.out.len(), |h| h.from);
                conn.out.truncate(from);
                conn.held = None;
            }
            self.close(key as ClientId);
        }
    }

    /// The primary's tapped records that at least `sync_replicas`
    /// replicas in step have applied (0 with fewer in step).
    pub(super) fn replicated(&self) -> u64 {
        let mut upto: Vec<u64> = (self.downstreams.iter())
            .filter_map(|(_, dc)| dc.in_step_upto())
            .collect();
        if self.sync_replicas == 0 || upto.len() < self.sync_replicas {
            return 0;
        }
        upto.sort_unstable_by(|a, b| b.cmp(a));
        upto[self.sync_replicas - 1]
    }

    /// -f MS: the replies went out before the fsync, so what they promised
    /// is written again, fresh: every live job into a new file, synced
    /// like any other write. Old files go once that is durable.
    pub(super) fn rewrite_after(&mut self, failed: SyncFailed, failures: u64) {
        let Some(b) = &mut self.binlog else { return };
        let fresh = b.start_over();
        let now = self.now();
        let unwritten = self.engine.relog_all(
            now,
            &mut Outputs {
                conns: &mut self.conns,
                woken: &mut self.woken,
                binlog: self.binlog.as_mut(),
            },
        );
        if let Some(b) = &mut self.binlog {
            b.rewritten();
        }
        if fresh.is_err() || unwritten > 0 {
            error!(
                "binlog: {failed} ({failures} so far), and {unwritten} of the live jobs could not be written again (no room): they may be lost in a power cut; free disk space and check the disk (dmesg)"
            );
        } else {
            error!(
                "binlog: {failed} ({failures} so far); every live job was written again to a fresh file, to be synced in its place; check the disk (dmesg)"
            );
        }
    }

    pub(super) fn shut_down(&mut self) -> Result<(), SyncFailed> {
        // Everything written becomes durable before the last replies go;
        // if it cannot, the replies still held are not sent.
        let durable = self.binlog.as_mut().map_or(Ok(()), Binlog::close);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(conn) = self.conns.get_mut(key) {
                if durable.is_ok() {
                    conn.held = None;
                }
                let _ = conn.flush();
            }
            self.close(key as ClientId);
        }
        if let Listener::Unix(_, Some(path)) = &self.listener
            && let Err(e) = std::fs::remove_file(path)
        {
            error!("could not remove unix socket {}: {e}", path.display());
        }
        info!("stopped");
        durable
    }
}
