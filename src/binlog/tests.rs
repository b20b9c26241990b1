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

#[test]
fn a_file_whose_jobs_moved_on_goes_only_once_the_move_is_durable() {
    let dir = fresh_dir("moved");
    let hour = std::time::Duration::from_secs(3600);
    let mut b = Binlog::open(&dir, 8192, SyncPolicy::Every(hour), NOW, || {})
        .expect("open")
        .binlog;
    assert_eq!(b.put(&image(1, 0), "default", b"a", NOW), Ok(1));
    // Jobs that come and go until writing has moved on to file 2.
    let mut id = 2;
    while b.cur.as_ref().map(|c| c.no) == Some(1) {
        assert!(id < 1000, "file 1 never filled");
        let mut img = image(id, id as JobKey);
        img.body_len = 1002;
        img.home = b.put(&img, "default", &[b'x'; 1000], NOW).expect("put");
        b.delete(&img, NOW).expect("delete");
        id += 1;
    }
    // Job 1, the last in file 1, moves on: until that record is on disk,
    // file 1 holds the job's only durable copy.
    let mut one = image(1, 0);
    one.home = 1;
    assert!(b.migrate(&one, "default", b"a", NOW).expect("migrate") > 1);
    let first = files::path_of(&dir, 1);
    assert!(first.exists(), "file 1 went before the move was durable");
    // The fsync that lets it go is due at once, not an hour from now.
    let now = Instant::now();
    assert!(b.sync_due().is_some_and(|due| due <= now));
    assert!(b.start_sync(now));
    let deadline = now + std::time::Duration::from_secs(30);
    while b.sync_completed().expect("fsync") < b.written() {
        assert!(Instant::now() < deadline, "the fsync never completed");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(!first.exists(), "file 1 stayed after the move was durable");
    b.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}
