//! The flag a long-running subcommand (work, top, supervise) checks
//! between steps: set by SIGTERM or SIGINT, so that it can finish what
//! it holds (a job, the terminal, a lease) before it exits.

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub fn on_signal() -> io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}
