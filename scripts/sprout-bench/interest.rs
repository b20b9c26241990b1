//! Writable interest only while output waits, shared by the generator and
//! the ceiling server: registered for good, every acknowledgement from the
//! peer would wake the loop for nothing.

use std::io;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// Re-registers `stream` for writable events if `want` differs from
/// `*armed`, and records the new state.
pub fn arm(
    registry: &Registry,
    stream: &mut TcpStream,
    token: Token,
    armed: &mut bool,
    want: bool,
) -> io::Result<()> {
    if want != *armed {
        let interest = if want {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        registry.reregister(stream, token, interest)?;
        *armed = want;
    }
    Ok(())
}
