//! The replication epoch this node last knew, kept beside the binlog in
//! `DIR/sprout.epoch` (beanstalkd reads only `binlog.N` and `lock`, so
//! the directory stays one it can start on).
//!
//! An epoch is the term of one primary (doc/ha.md): a supervisor promotes
//! a node with the revision etcd gave its election. Kept on disk so that a
//! node restarted after a failover still refuses a primary, or a
//! promotion, older than what it has seen.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

const NAME: &str = "sprout.epoch";
const TEMP: &str = "sprout.epoch.new";

/// The epoch in `dir`; 0 if none was ever saved. A file that does not
/// read as one is an error, not 0: forgetting an epoch could let a stale
/// primary back in.
pub fn read(dir: &Path) -> io::Result<u64> {
    match std::fs::read_to_string(dir.join(NAME)) {
        Ok(s) => parse(&s).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} does not hold an epoch (\"epoch N\"): {s:?}",
                    dir.join(NAME).display()
                ),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

fn parse(s: &str) -> Option<u64> {
    s.strip_prefix("epoch ")?
        .trim_end_matches('\n')
        .parse()
        .ok()
}

/// Saves `epoch` durably: written to a new file, fsynced, renamed over
/// the old one, and the directory fsynced, so that a crash leaves the old
/// epoch or the new, never neither.
pub fn write(dir: &Path, epoch: u64) -> io::Result<()> {
    let temp = dir.join(TEMP);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    f.write_all(format!("epoch {epoch}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&temp, dir.join(NAME))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_read_back_and_damage_is_an_error() {
        let dir = std::env::temp_dir().join(format!("sprout-epoch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(read(&dir).unwrap(), 0);
        write(&dir, 17).unwrap();
        assert_eq!(read(&dir).unwrap(), 17);
        write(&dir, 18).unwrap();
        assert_eq!(read(&dir).unwrap(), 18);
        assert!(!dir.join(TEMP).exists());
        std::fs::write(dir.join(NAME), "epoch x\n").unwrap();
        assert!(read(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
