//! The fsync thread. fsync can take milliseconds to seconds; the event loop
//! hands each one to this thread and goes on serving, and hears back
//! through a channel and a mio waker.

use std::fs::File;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::histogram::Histogram;

/// Work for the thread, done in the order sent.
pub enum Request {
    /// Make everything written to `file` so far durable, then report `seq`.
    Sync { file: Arc<File>, seq: u64 },
    /// A file the writer has left: make it durable, then close it.
    Retire { file: Arc<File> },
}

/// An fsync that failed. After one, the kernel may have dropped the pages
/// it could not write and marked them clean, so a retried fsync can report
/// success for data that is gone (PostgreSQL's lesson): what was written
/// before it cannot be called durable.
#[derive(Debug)]
pub struct SyncFailed {
    /// The fsync of a file the writer had left (else of the current one).
    pub retired: bool,
    pub error: std::io::Error,
}

impl std::fmt::Display for SyncFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let which = if self.retired {
            "a finished"
        } else {
            "the current"
        };
        write!(f, "fsync of {which} binlog file failed: {}", self.error)
    }
}

pub struct Syncer {
    tx: Option<Sender<Request>>,
    done: Receiver<Result<(u64, Duration), SyncFailed>>,
    thread: Option<JoinHandle<()>>,
    /// How long each successful fsync of the current file took.
    pub latency: Histogram,
}

impl Syncer {
    /// Starts the thread; `wake` is called after every completed or failed
    /// sync.
    pub fn start(wake: impl Fn() + Send + 'static) -> std::io::Result<Syncer> {
        let (tx, rx) = unbounded::<Request>();
        let (done_tx, done) = unbounded();
        let thread = std::thread::Builder::new()
            .name("binlog-sync".into())
            .spawn(move || {
                for req in rx {
                    let report = match req {
                        Request::Sync { file, seq } => {
                            let started = Instant::now();
                            (file.sync_data())
                                .map(|()| (seq, started.elapsed()))
                                .map_err(|error| SyncFailed {
                                    retired: false,
                                    error,
                                })
                        }
                        Request::Retire { file } => match file.sync_all() {
                            Ok(()) => continue,
                            Err(error) => Err(SyncFailed {
                                retired: true,
                                error,
                            }),
                        },
                    };
                    if done_tx.send(report).is_err() {
                        return;
                    }
                    wake();
                }
            })?;
        Ok(Syncer {
            tx: Some(tx),
            done,
            thread: Some(thread),
            latency: Histogram::default(),
        })
    }

    pub fn send(&self, req: Request) {
        if let Some(tx) = &self.tx {
            // The thread only stops when we drop the sender.
            let _ = tx.send(req);
        }
    }

    /// The highest sequence number reported synced since the last call, or
    /// the first failure reported since then (reports are in order, so a
    /// sync reported after a failure does not make the failure good).
    pub fn completed(&mut self) -> Result<Option<u64>, SyncFailed> {
        let mut best = None;
        for report in self.done.try_iter() {
            let (seq, took) = report?;
            self.latency.record(took);
            best = best.max(Some(seq));
        }
        Ok(best)
    }

    /// Finishes every request sent, and stops the thread.
    pub fn finish(&mut self) -> Result<Option<u64>, SyncFailed> {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.completed()
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
