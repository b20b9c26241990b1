//! The binlog directory on disk: its lock, its `binlog.N` files, and
//! creating a file with its space allocated up front.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::record::{HEADER_SIZE, encode_header};
use crate::journal::FileNo;

/// beanstalkd's exit status when the directory is locked by another process.
pub const EXIT_LOCKED: i32 = 10;

/// Why the binlog directory cannot be used.
#[derive(Debug)]
pub enum OpenError {
    /// Another process holds the lock (beanstalkd or sprout).
    Locked(PathBuf),
    /// The `-b` directory does not exist.
    NoDirectory(PathBuf),
    /// The `-b` path exists but is not a directory.
    NotADirectory(PathBuf),
    /// The directory exists but this user may not write in it.
    NoAccess(PathBuf),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Locked(p) => write!(
                f,
                "{} is locked: another beanstalkd or sprout uses this binlog directory",
                p.display()
            ),
            OpenError::NoDirectory(p) => write!(
                f,
                "binlog directory {} does not exist: create it (mkdir -p {0}) for the user sprout runs as, or give another with -b",
                p.display()
            ),
            OpenError::NotADirectory(p) => write!(
                f,
                "{} is not a directory: give -b a directory for the binlog",
                p.display()
            ),
            OpenError::NoAccess(p) => write!(
                f,
                "binlog directory {} is not writable by uid {}: change its owner (chown) or give another with -b",
                p.display(),
                // SAFETY: getuid has no preconditions and cannot fail.
                unsafe { libc::getuid() }
            ),
            OpenError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

/// Takes beanstalkd's lock: a whole-file write lock (fcntl) on `DIR/lock`,
/// held for the life of the returned file.
pub fn lock(dir: &Path) -> Result<File, OpenError> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(OpenError::NoDirectory(dir.into()));
        }
        Ok(m) if !m.is_dir() => return Err(OpenError::NotADirectory(dir.into())),
        _ => {}
    }
    let path = dir.join("lock");
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => OpenError::NoAccess(dir.into()),
            _ => OpenError::Io(path.clone(), e),
        })?;
    // SAFETY: a zeroed flock is valid; fcntl gets a live descriptor.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) } != 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => OpenError::Locked(path),
            _ => OpenError::Io(path, e),
        });
    }
    Ok(f)
}

pub fn path_of(dir: &Path, no: FileNo) -> PathBuf {
    dir.join(format!("binlog.{no}"))
}

/// The numbers of the `binlog.N` files in `dir`, ascending. Names whose
/// suffix is not wholly a number are not binlog files.
pub fn list(dir: &Path) -> io::Result<Vec<FileNo>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(n) = name.to_str().and_then(|s| s.strip_prefix("binlog.")) else {
            continue;
        };
        if !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && let Ok(no) = n.parse::<FileNo>()
        {
            found.push(no);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Rounds up to whole 4 KiB blocks, as beanstalkd preallocates.
pub fn round_up(n: u64) -> u64 {
    n.div_ceil(4096).max(1) * 4096
}

/// Creates `binlog.N` with `size` bytes allocated on disk and the version
/// header written. Mode 0400, as beanstalkd's. On failure nothing is left.
pub fn create(dir: &Path, no: FileNo, size: u64) -> io::Result<File> {
    let path = path_of(dir, no);
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&path)?;
    let made = allocate(&f, size).and_then(|()| {
        let mut h = Vec::with_capacity(HEADER_SIZE);
        encode_header(&mut h);
        f.write_all_at(&h, 0)
    });
    if let Err(e) = made {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(f)
}

/// Makes sure `size` bytes are allocated, so that writes below it cannot
/// fail for want of space.
pub fn allocate(f: &File, size: u64) -> io::Result<()> {
    // SAFETY: a live descriptor; posix_fallocate returns an error number.
    let r = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, size as libc::off_t) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}
