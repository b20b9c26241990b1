//! Who is on the other end of a unix-socket connection: the kernel's
//! SO_PEERCRED (the process id and user id at connect time), and the user
//! names of /etc/passwd for the status page. A TCP peer is known only by
//! its address.

use std::collections::HashMap;
use std::os::fd::AsRawFd;

/// The connecting process, as the kernel recorded it at `connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cred {
    pub pid: i32,
    pub uid: u32,
}

/// The peer credentials of a connected unix socket; None if the kernel
/// will not say.
pub fn of(socket: &impl AsRawFd) -> Option<Cred> {
    let mut c = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `c` is a ucred and `len` its size, as SO_PEERCRED asks.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut c as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0 && c.pid > 0).then_some(Cred {
        pid: c.pid,
        uid: c.uid,
    })
}

/// User names by uid, from /etc/passwd: read when a page needs them, never
/// through NSS, whose network lookups (LDAP, sssd) could stall the event
/// loop. A uid it does not list is shown as a number.
#[derive(Debug, Default)]
pub struct UserNames(HashMap<u32, String>);

impl UserNames {
    pub fn read() -> UserNames {
        std::fs::read_to_string("/etc/passwd")
            .map(|s| UserNames::parse(&s))
            .unwrap_or_default()
    }

    pub fn parse(passwd: &str) -> UserNames {
        let mut names = HashMap::new();
        for line in passwd.lines() {
            let mut f = line.split(':');
            if let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next())
                && let Ok(uid) = uid.parse()
            {
                names.entry(uid).or_insert_with(|| name.to_string());
            }
        }
        UserNames(names)
    }

    /// `alice`, or `uid 1234` when /etc/passwd does not name it.
    pub fn name(&self, uid: u32) -> String {
        self.0
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| format!("uid {uid}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_passwd() {
        let u = UserNames::parse(
            "root:x:0:0:root:/root:/bin/sh\nbad line\nalice:x:1000:1000::/home/a:/bin/sh\nalias:x:1000:1000::/:/bin/sh\n",
        );
        assert_eq!(u.name(0), "root");
        assert_eq!(u.name(1000), "alice");
        assert_eq!(u.name(7), "uid 7");
    }

    #[test]
    fn a_socket_pair_names_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let c = of(&a).expect("SO_PEERCRED");
        assert_eq!(c.pid, std::process::id() as i32);
        // SAFETY: getuid cannot fail.
        assert_eq!(c.uid, unsafe { libc::getuid() });
    }
}
