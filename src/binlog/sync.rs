//! The fsync thread. fsync can take milliseconds to seconds; the event loop
//! hands each one to this thread and goes on serving, and hears back
//! through a channel and a mio waker.

use std::fs::File;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, unbounded};
use log::warn;

/// Work for the thread, done in the order sent.
pub enum Request {
    /// Make everything written to `file` so far durable, then report `seq`.
    Sync { file: Arc<File>, seq: u64 },
    /// A file the writer has left: make it durable, then close it.
    Retire { file: Arc<File> },
}

pub struct Syncer {
    tx: Option<Sender<Request>>,
    done: Receiver<u64>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread; `wake` is called after every completed sync.
    pub fn start(wake: impl Fn() + Send + 'static) -> std::io::Result<Syncer> {
        let (tx, rx) = unbounded::<Request>();
        let (done_tx, done) = unbounded();
        let thread = std::thread::Builder::new()
            .name("binlog-sync".into())
            .spawn(move || {
                for req in rx {
                    match req {
                        Request::Sync { file, seq } => {
                            if let Err(e) = file.sync_data() {
                                warn!("binlog fsync failed: {e}; recent changes may be lost in a power cut; check the disk");
                            }
                            if done_tx.send(seq).is_err() {
                                return;
                            }
                            wake();
                        }
                        Request::Retire { file } => {
                            if let Err(e) = file.sync_all() {
                                warn!("binlog fsync of a finished file failed: {e}; its changes may be lost in a power cut; check the disk");
                            }
                        }
                    }
                }
            })?;
        Ok(Syncer {
            tx: Some(tx),
            done,
            thread: Some(thread),
        })
    }

    pub fn send(&self, req: Request) {
        if let Some(tx) = &self.tx {
            // The thread only stops when we drop the sender.
            let _ = tx.send(req);
        }
    }

    /// The highest sequence number reported synced since the last call.
    pub fn completed(&self) -> Option<u64> {
        self.done.try_iter().max()
    }

    /// Finishes every request sent, and stops the thread.
    pub fn finish(&mut self) -> Option<u64> {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.completed()
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.finish();
    }
}
