use super::*;
use crate::job::Counts;

const NOW: Nanos = 1 << 60;

fn image(id: u64, key: JobKey) -> Image {
    Image {
        key,
        id,
        pri: 1,
        delay: 0,
        ttr: 10,
        created_at: NOW,
        deadline: 0,
        rank: 0,
        counts: Counts::default(),
        state: LoggedState::Ready,
        home: 0,
        tube_len: 7,
        body_len: 3,
    }
}

fn fresh_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sprout-unit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create a temp dir");
    d
}

#[test]
fn a_write_error_fails_the_change_and_writing_goes_on_in_a_fresh_file() {
    let dir = fresh_dir("werr");
    let mut b = Binlog::open(&dir, 8192, SyncPolicy::Never, NOW, || {})
        .expect("open")
        .binlog;
    assert_eq!(b.put(&image(1, 0), "default", b"a", NOW), Ok(1));
    // The current file stops accepting writes (a read-only handle).
    let cur = b.cur.as_mut().expect("a current file");
    cur.file = Arc::new(File::open(files::path_of(&dir, 1)).expect("reopen"));
    assert_eq!(
        b.put(&image(2, 1), "default", b"b", NOW),
        Err(JournalError::Io)
    );
    // The next change goes to a fresh file, and so can every delete.
    let home = b.put(&image(3, 2), "default", b"c", NOW).expect("put");
    assert!(home > 1, "home {home}");
    let mut one = image(1, 0);
    one.home = 1;
    b.delete(&one, NOW).expect("delete");
    b.close().expect("close");
    drop(b);
    let files: Vec<(FileNo, Vec<u8>)> = files::list(&dir)
        .expect("list")
        .into_iter()
        .map(|n| (n, std::fs::read(files::path_of(&dir, n)).expect("read")))
        .collect();
    let r = replay::replay(files.iter().map(|(n, b)| (*n, &b[..])), wall_now(), NOW);
    let ids: Vec<u64> = r.jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![3]);
    let _ = std::fs::remove_dir_all(&dir);
}
