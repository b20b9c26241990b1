//! The listening socket (TCP, unix, or inherited from systemd), readiness
//! notification, and dropping privileges after binding.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::net::ToSocketAddrs;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use log::warn;

/// The first file descriptor systemd passes (SD_LISTEN_FDS_START).
const SYSTEMD_FD: RawFd = 3;

pub enum Listener {
    Tcp(mio::net::TcpListener),
    /// A unix socket and the path to remove at shutdown (none if inherited).
    Unix(mio::net::UnixListener, Option<PathBuf>),
}

impl Listener {
    /// Where it listens, for the start-up log line.
    pub fn describe(&self) -> String {
        let from = if inherited_by_us() {
            " (from systemd)"
        } else {
            ""
        };
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("{a}{from}"),
                Err(_) => format!("a TCP socket{from}"),
            },
            Listener::Unix(_, Some(p)) => format!("unix socket {}{from}", p.display()),
            Listener::Unix(l, None) => match l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            {
                Some(p) => format!("unix socket {p}{from}"),
                None => format!("a unix socket{from}"),
            },
        }
    }
}

#[derive(Debug)]
pub enum ListenError {
    Resolve(String, io::Error),
    Bind(String, io::Error),
    UnixPathTooLong(String),
    UnixPathTaken(String),
    Inherited(String),
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ListenError::Resolve(a, e) => write!(f, "cannot resolve listen address {a}: {e}"),
            ListenError::Bind(a, e) => {
                write!(f, "cannot listen on {a}: {e}")?;
                match bind_hint(a, e) {
                    Some(hint) => write!(f, " ({hint})"),
                    None => Ok(()),
                }
            }
            ListenError::UnixPathTooLong(p) => {
                write!(f, "unix socket path is longer than 107 bytes: {p}")
            }
            ListenError::UnixPathTaken(p) => {
                write!(
                    f,
                    "{p} exists and is not a socket; remove it or choose another path"
                )
            }
            ListenError::Inherited(why) => {
                write!(f, "inherited file descriptor 3 is unusable: {why}")
            }
        }
    }
}

/// What to do about a failed bind, by its cause.
fn bind_hint(addr: &str, e: &io::Error) -> Option<&'static str> {
    let unix = addr.starts_with("unix:");
    Some(match e.kind() {
        io::ErrorKind::AddrInUse if unix => {
            "another process listens on this socket: stop it or choose another path with -l unix:PATH"
        }
        io::ErrorKind::AddrInUse => {
            "is another beanstalkd or sprout using it? stop it or choose another port with -p"
        }
        io::ErrorKind::AddrNotAvailable => {
            "this host has no such address: give -l one of its own addresses (ip -brief address), 127.0.0.1, or 0.0.0.0 for all"
        }
        io::ErrorKind::PermissionDenied if unix => {
            "this user may not create files in the socket's directory: choose another path or run as a user who may"
        }
        io::ErrorKind::PermissionDenied => {
            "ports below 1024 need root or CAP_NET_BIND_SERVICE: choose another port with -p, or start as root and drop privileges with -u"
        }
        io::ErrorKind::NotFound if unix => {
            "the socket's directory does not exist: create it or choose another path"
        }
        _ => return None,
    })
}

/// Opens the listener: systemd's socket if one was passed to this process,
/// else `-l unix:PATH`, else TCP on `addr:port` (default 127.0.0.1).
pub fn open(addr: Option<&str>, port: u16, port_given: bool) -> Result<Listener, ListenError> {
    if inherited_by_us() {
        if let Some(a) = addr {
            warn!(
                "systemd passed a listening socket; -l {a} is ignored (set the address in the .socket unit)"
            );
        }
        if port_given {
            warn!(
                "systemd passed a listening socket; -p {port} is ignored (set the port in the .socket unit)"
            );
        }
        return from_systemd();
    }
    let addr = addr.unwrap_or("127.0.0.1");
    if let Some(path) = addr.strip_prefix("unix:") {
        return open_unix(path);
    }
    let text = if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    };
    let candidates = (addr, port)
        .to_socket_addrs()
        .map_err(|e| ListenError::Resolve(text.clone(), e))?;
    let mut last = io::Error::new(io::ErrorKind::AddrNotAvailable, "no address found");
    for sa in candidates {
        match mio::net::TcpListener::bind(sa) {
            Ok(l) => return Ok(Listener::Tcp(l)),
            Err(e) => last = e,
        }
    }
    Err(ListenError::Bind(text, last))
}

fn open_unix(path: &str) -> Result<Listener, ListenError> {
    if path.len() > 107 {
        return Err(ListenError::UnixPathTooLong(path.into()));
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ListenError::UnixPathTaken(path.into()));
        }
        warn!("removing stale unix socket {path}");
        let _ = std::fs::remove_file(path);
    }
    let l = mio::net::UnixListener::bind(path)
        .map_err(|e| ListenError::Bind(format!("unix:{path}"), e))?;
    Ok(Listener::Unix(l, Some(PathBuf::from(path))))
}

/// Whether LISTEN_PID/LISTEN_FDS name this process.
fn inherited_by_us() -> bool {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    if pid_ok && fds > 1 {
        warn!(
            "systemd passed {fds} sockets; serving only the first (give the .socket unit one ListenStream)"
        );
    }
    pid_ok && fds >= 1
}

fn from_systemd() -> Result<Listener, ListenError> {
    let fd = SYSTEMD_FD;
    let int_opt = |opt| -> io::Result<libc::c_int> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `v`.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if r == 0 {
            Ok(v)
        } else {
            Err(io::Error::last_os_error())
        }
    };
    let bad = |e: io::Error| ListenError::Inherited(e.to_string());
    if int_opt(libc::SO_TYPE).map_err(bad)? != libc::SOCK_STREAM {
        return Err(ListenError::Inherited("not a stream socket".into()));
    }
    if int_opt(libc::SO_ACCEPTCONN).map_err(bad)? == 0 {
        return Err(ListenError::Inherited("not listening".into()));
    }
    let domain = int_opt(libc::SO_DOMAIN).map_err(bad)?;
    // SAFETY: fd 3 was handed to us by systemd and is used by nothing else.
    unsafe {
        for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(k);
        }
    }
    match domain {
        libc::AF_INET | libc::AF_INET6 => {
            // SAFETY: see above; ownership of fd 3 moves into the listener.
            let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            l.set_nonblocking(true).map_err(bad)?;
            Ok(Listener::Tcp(mio::net::TcpListener::from_std(l)))
        }
        libc::AF_UNIX => {
            // SAFETY: as above.
            let l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
            l.set_nonblocking(true).map_err(bad)?;
            Ok(Listener::Unix(mio::net::UnixListener::from_std(l), None))
        }
        other => Err(ListenError::Inherited(format!(
            "unsupported address family {other}"
        ))),
    }
}

/// Tells systemd (Type=notify) that the server is ready, if it asked.
pub fn notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let result = (|| -> io::Result<()> {
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let sock = UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        let addr = if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        } else {
            SocketAddr::from_pathname(PathBuf::from(&path))?
        };
        sock.send_to_addr(b"READY=1", &addr)?;
        Ok(())
    })();
    if let Err(e) = result {
        warn!(
            "could not tell systemd that sprout is ready through {path:?}: {e}; a Type=notify unit will time out its start"
        );
    }
}

#[derive(Debug)]
pub enum UserError {
    Lookup(String),
    NoSuchUser(String),
    Switch(String, io::Error),
}

impl UserError {
    /// beanstalkd's exit codes for these failures.
    pub fn exit_code(&self) -> i32 {
        match self {
            UserError::Lookup(_) => 32,
            UserError::NoSuchUser(_) => 33,
            UserError::Switch(..) => 34,
        }
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            UserError::Lookup(u) => write!(f, "cannot look up user {u:?}"),
            UserError::NoSuchUser(u) => write!(f, "no such user: {u} (create it, or fix -u)"),
            UserError::Switch(u, e) => write!(f, "cannot become user {u}: {e}"),
        }
    }
}

/// `-u USER`: switch to the user's primary group and uid. Supplementary
/// groups are set to the user's own, unlike beanstalkd which keeps root's.
pub fn become_user(user: &str) -> Result<(), UserError> {
    let name = CString::new(user).map_err(|_| UserError::Lookup(user.into()))?;
    // SAFETY: getpwnam returns a pointer to static storage or null; we copy
    // the two fields we need before any other call.
    let (uid, gid) = unsafe {
        *libc::__errno_location() = 0;
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return Err(if *libc::__errno_location() != 0 {
                UserError::Lookup(user.into())
            } else {
                UserError::NoSuchUser(user.into())
            });
        }
        ((*pw).pw_uid, (*pw).pw_gid)
    };
    let fail = |_| UserError::Switch(user.into(), io::Error::last_os_error());
    // Already that user (a systemd unit with User= and a hardened, empty
    // capability set, where even initgroups to one's own groups is refused):
    // nothing to switch.
    // SAFETY: getuid and getgid have no preconditions and cannot fail.
    if unsafe { libc::getuid() == uid && libc::getgid() == gid } {
        return Ok(());
    }
    // SAFETY: plain system calls on values we own.
    unsafe {
        if libc::initgroups(name.as_ptr(), gid) != 0 {
            return Err(fail(()));
        }
        if libc::setgid(gid) != 0 {
            return Err(fail(()));
        }
        if libc::setuid(uid) != 0 {
            return Err(fail(()));
        }
    }
    Ok(())
}
