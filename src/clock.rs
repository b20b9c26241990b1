//! The server's clock: monotonic nanoseconds since the server started,
//! plus a large base. Everything below the event loop takes the time as
//! an argument; this is where it comes from.

use crate::job::Nanos;

/// The clock starts here rather than at 0, so that a job restored from the
/// binlog can have been created before this process started.
pub const CLOCK_BASE: Nanos = 1 << 60;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// CLOCK_MONOTONIC at the start, in nanoseconds.
    start: u64,
}

impl Clock {
    /// A clock reading [`CLOCK_BASE`] now.
    pub fn start() -> Clock {
        Clock { start: monotonic() }
    }

    /// Read once or twice per command: a plain `clock_gettime`, which
    /// costs less than `Instant::elapsed` and its checked arithmetic.
    pub fn now(&self) -> Nanos {
        CLOCK_BASE + monotonic().saturating_sub(self.start)
    }
}

fn monotonic() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given, and
    // CLOCK_MONOTONIC always exists on the systems we build for.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_from_the_base() {
        let clock = Clock::start();
        let a = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = clock.now();
        assert!((CLOCK_BASE..CLOCK_BASE + 1_000_000_000).contains(&a));
        assert!(b - a >= 5_000_000, "{}", b - a);
    }
}
