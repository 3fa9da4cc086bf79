//! Readers beside a writer: `EventReader` sees exactly the acknowledged
//! history, whatever the writer does meanwhile, and never writes; waiting
//! and following wake on appends, across rotations and restarts of the
//! writer.
//!
//! The readers in other processes are in `tests/processes.rs`; readers of
//! each crash state of a rotation are in `tests/crash_safety.rs`.

mod common;

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use eventfold::{Error, Event, EventLog, EventReader, View};

use common::*;

/// The `(seq, n)` pairs a reader gives from `seq` on, with every event
/// checked to be `numbered(seq)`.
fn read_numbers(reader: &EventReader, seq: u64) -> Vec<u64> {
    reader
        .read_from_seq(seq)
        .expect("read_from_seq")
        .map(|item| {
            let (at, event, _) = item.expect("an event");
            assert_eq!(event, numbered(at), "event {at}");
            at
        })
        .collect()
}

#[test]
fn a_reader_sees_exactly_what_the_writer_acknowledged() {
    let _guard = in_process_test();
    let dir = test_dir();
    let mut log = EventLog::builder(dir.path())
        .max_log_size(600)
        .open()
        .unwrap();
    let reader = EventReader::open(dir.path()).unwrap();
    assert_eq!(reader.next_seq().unwrap(), 0);
    for n in 0..40 {
        append_numbered(&mut log, n..n + 1);
        assert_eq!(reader.next_seq().unwrap(), n + 1, "after event {n}");
    }
    assert!(
        dir.path().join(ARCHIVE).exists(),
        "the writer rotated meanwhile"
    );
    assert_eq!(read_numbers(&reader, 0), (0..40).collect::<Vec<_>>());
    assert_eq!(read_numbers(&reader, 17), (17..40).collect::<Vec<_>>());
    assert!(read_numbers(&reader, 40).is_empty());
    assert!(matches!(
        reader.read_from_seq(41),
        Err(Error::InvalidSeq {
            seq: 41,
            next_seq: 40
        })
    ));
    assert_eq!(
        reader.state_at(counter_reducer, 9).unwrap(),
        10,
        "state_at folds up to and including the event"
    );
}

#[test]
fn a_reader_writes_nothing_and_takes_no_lock() {
    let _guard = in_process_test();
    let dir = test_dir();
    {
        let mut log = EventLog::builder(dir.path())
            .max_log_size(300)
            .open()
            .unwrap();
        append_numbered(&mut log, 0..20);
        log.refresh_all().unwrap();
    }
    let before = dir_contents(dir.path());
    let reader = EventReader::open(dir.path()).unwrap();
    assert_eq!(read_numbers(&reader, 0).len(), 20);
    let mut view = View::new("count", counter_reducer, dir.path().join("views")).unwrap();
    assert_eq!(*view.refresh(&reader).unwrap(), 20);
    assert_eq!(*view.rebuild(&reader).unwrap(), 20);
    assert!(
        matches!(view.save(&reader), Err(Error::ReadOnly { .. })),
        "a reader refuses to save a snapshot"
    );
    assert_eq!(dir_contents(dir.path()), before, "nothing changed");
    // The writer opens while the reader is there: no lock is held.
    let mut log = EventLog::open(dir.path()).unwrap();
    append_numbered(&mut log, 20..21);
    assert_eq!(*view.refresh(&reader).unwrap(), 21);
}

#[test]
fn a_reader_of_an_empty_or_missing_log() {
    let _guard = in_process_test();
    let dir = test_dir();
    let reader = EventReader::open(dir.path()).unwrap();
    assert_eq!(reader.next_seq().unwrap(), 0);
    assert!(read_numbers(&reader, 0).is_empty());
    assert_eq!(
        reader.wait_for(0, Duration::from_millis(30)).unwrap(),
        0,
        "nothing came"
    );
    assert!(fs::read_dir(dir.path()).unwrap().next().is_none());
    // A follower started before the writer exists sees its events.
    let follower = {
        let reader = reader.clone();
        thread::spawn(move || {
            let mut follow = reader.follow(0);
            (0..3)
                .map(|_| follow.next().unwrap().unwrap().0)
                .collect::<Vec<_>>()
        })
    };
    let mut log = EventLog::open(dir.path()).unwrap();
    append_numbered(&mut log, 0..3);
    let seen = within(Duration::from_secs(20), "the follower", move || {
        follower.join().unwrap()
    });
    assert_eq!(seen, [0, 1, 2]);
    let missing = dir.path().join("missing");
    assert!(matches!(EventReader::open(&missing), Err(Error::Io { .. })));
    assert!(!missing.exists());
}

#[test]
fn a_reader_never_sees_bytes_the_writer_did_not_acknowledge() {
    let _guard = in_process_test();
    let dir = test_dir();
    {
        let mut log = EventLog::open(dir.path()).unwrap();
        append_numbered(&mut log, 0..3);
    }
    // Complete lines a writer wrote but never acknowledged (it died before
    // its sync returned), and a torn line after them.
    let log_path = dir.path().join(LOG);
    let extra = format!(
        "{}\n{}\n{{\"type\":\"numb",
        stored_line(&numbered(3), 3),
        stored_line(&numbered(4), 4)
    );
    append_bytes(&log_path, extra.as_bytes());
    let before = dir_contents(dir.path());
    let reader = EventReader::open(dir.path()).unwrap();
    assert_eq!(read_numbers(&reader, 0), [0, 1, 2]);
    assert_eq!(dir_contents(dir.path()), before, "nothing repaired");
    // Without the writer's record (a directory of an older version, or
    // after a reboot), every complete line is the history.
    fs::remove_file(dir.path().join("app.jsonl.committed")).unwrap();
    let reader = EventReader::open(dir.path()).unwrap();
    assert_eq!(read_numbers(&reader, 0), [0, 1, 2, 3, 4]);
    // The writer keeps those lines when it opens, cutting the torn one.
    let log = EventLog::open(dir.path()).unwrap();
    assert_eq!(log.next_seq(), 5);
    assert_eq!(read_numbers(&reader, 0), [0, 1, 2, 3, 4]);
}

#[test]
fn a_history_that_shrinks_under_a_reader_is_an_error_not_a_shorter_read() {
    let _guard = in_process_test();
    let dir = test_dir();
    let older = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    append_numbered(&mut log, 0..3);
    copy_data_dir(dir.path(), older.path());
    append_numbered(&mut log, 3..5);
    drop(log);
    let reader = EventReader::open(dir.path()).unwrap();
    assert_eq!(reader.next_seq().unwrap(), 5);
    // The directory is put back as an older copy of it.
    copy_data_dir(older.path(), dir.path());
    match reader.next_seq() {
        Err(Error::Corrupt { detail, .. }) => {
            assert!(detail.contains("already read up to event 4"), "{detail}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_damaged_or_empty_record_of_the_writer_is_taken_as_absent() {
    let _guard = in_process_test();
    let dir = test_dir();
    {
        let mut log = EventLog::open(dir.path()).unwrap();
        append_numbered(&mut log, 0..4);
    }
    let record = dir.path().join("app.jsonl.committed");
    // Zeros, as a power cut can leave a file whose content was never
    // synced; nothing; and bytes that never parse.
    for damage in [vec![0; 160], Vec::new(), b"{\"base\":0,\"le".to_vec()] {
        fs::write(&record, &damage).unwrap();
        let reader = EventReader::open(dir.path()).unwrap();
        assert_eq!(read_numbers(&reader, 0), [0, 1, 2, 3], "{damage:?}");
    }
}

#[test]
fn waiting_wakes_on_an_append_in_this_process_and_in_another() {
    let _guard = in_process_test();
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    for reader in [log.reader(), EventReader::open(dir.path()).unwrap()] {
        let next = log.next_seq();
        let waiter = thread::spawn(move || {
            let start = Instant::now();
            let next = reader.wait_for(next, Duration::from_secs(30)).unwrap();
            (next, start.elapsed())
        });
        thread::sleep(Duration::from_millis(50));
        append_numbered(&mut log, next..next + 1);
        let (seen, waited) = waiter.join().unwrap();
        assert_eq!(seen, next + 1);
        assert!(waited < Duration::from_secs(30), "woken, not timed out");
    }
    let reader = log.reader();
    let start = Instant::now();
    assert_eq!(reader.wait_for(5, Duration::from_millis(40)).unwrap(), 2);
    assert!(
        start.elapsed() >= Duration::from_millis(40),
        "waited it out"
    );
    // A reader of a closed writer waits as readers in other processes do.
    drop(log);
    let waiter = thread::spawn(move || reader.wait_for(2, Duration::from_secs(30)).unwrap());
    thread::sleep(Duration::from_millis(50));
    let mut log = EventLog::open(dir.path()).unwrap();
    append_numbered(&mut log, 2..3);
    assert_eq!(waiter.join().unwrap(), 3);
}

#[test]
fn followers_see_every_event_once_in_order_while_the_writer_batches_and_rotates() {
    let _guard = in_process_test();
    const EVENTS: u64 = 6000;
    let dir = test_dir();
    let mut log = EventLog::builder(dir.path())
        .max_log_size(2048)
        .open()
        .unwrap();
    let mut followers = Vec::new();
    for reader in [log.reader(), EventReader::open(dir.path()).unwrap()] {
        followers.push(thread::spawn(move || {
            let mut follow = reader.follow(0);
            let mut last = None;
            while follow.next_seq() < EVENTS {
                let (seq, event) = follow.next().unwrap().expect("an event");
                assert_eq!(seq, last.map_or(0, |l| l + 1), "in order, none missed");
                assert_eq!(event, numbered(seq));
                last = Some(seq);
            }
            last
        }));
    }
    // A reader that reads from random places, and whose next_seq only grows.
    let checker = {
        let reader = EventReader::open(dir.path()).unwrap();
        thread::spawn(move || {
            let mut rng = Rng(7);
            let mut last = 0;
            while last < EVENTS {
                let next = reader.next_seq().unwrap();
                assert!(next >= last, "next_seq went back from {last} to {next}");
                last = next;
                let from = rng.range(0, next + 1);
                let read = read_numbers(&reader, from);
                assert!(read.len() as u64 >= next - from, "read up to {next}");
                assert_eq!(read.first().copied().unwrap_or(from), from);
            }
        })
    };
    let mut rng = Rng(11);
    let mut n = 0;
    while n < EVENTS {
        let batch = rng.range(1, 21).min(EVENTS - n);
        let events: Vec<Event> = (n..n + batch).map(numbered).collect();
        log.append_batch(&events).unwrap();
        n += batch;
    }
    let rotations = common::archive_frames(&dir.path().join(ARCHIVE)).len();
    assert!(rotations > 100, "rotated {rotations} times");
    for follower in followers {
        assert_eq!(follower.join().unwrap(), Some(EVENTS - 1));
    }
    checker.join().unwrap();
}

#[test]
fn a_view_folded_from_a_reader_goes_on_across_rotations() {
    let _guard = in_process_test();
    let dir = test_dir();
    let mut log = EventLog::builder(dir.path())
        .view::<Vec<u64>>("seq", seq_reducer)
        .open()
        .unwrap();
    append_numbered(&mut log, 0..10);
    log.refresh_all().unwrap();
    log.save_views().unwrap();
    let reader = EventReader::open(dir.path()).unwrap();
    let mut view = View::new("seq", seq_reducer, dir.path().join("views")).unwrap();
    assert_eq!(*view.refresh(&reader).unwrap(), (0..10).collect::<Vec<_>>());
    let snapshot = fs::read(snapshot_file(dir.path(), "seq")).unwrap();
    for round in 1..5 {
        append_numbered(&mut log, round * 10..round * 10 + 10);
        log.rotate().unwrap();
        append_numbered(&mut log, 1000 + round..1001 + round);
        let expected: Vec<u64> = replay(&log, seq_reducer);
        assert_eq!(*view.refresh(&reader).unwrap(), expected, "round {round}");
    }
    drop(log);
    assert_ne!(
        fs::read(snapshot_file(dir.path(), "seq")).unwrap(),
        snapshot,
        "the writer saved its snapshot"
    );
}

#[cfg(unix)]
#[test]
fn a_reader_reads_a_read_only_directory_of_another_user() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    const CHILD: &str = "EVENTFOLD_READER_CHILD_DIR";
    if let Some(dir) = std::env::var_os(CHILD) {
        // The child: a user who may read the files but not write them.
        let reader = EventReader::open(&dir).expect("open a reader");
        assert_eq!(read_numbers(&reader, 0), (0..30).collect::<Vec<_>>());
        let mut view = View::new(
            "count",
            counter_reducer,
            std::path::Path::new(&dir).join("views"),
        )
        .expect("a view");
        assert_eq!(*view.refresh(&reader).expect("refresh"), 30);
        println!("@ok");
        return;
    }
    let _guard = spawning_test();
    let dir = test_dir();
    {
        let mut log = EventLog::builder(dir.path())
            .max_log_size(500)
            .open()
            .unwrap();
        append_numbered(&mut log, 0..30);
        log.refresh_all().unwrap();
    }
    let before = dir_contents(dir.path());
    let mode = |path: &std::path::Path, mode| {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap()
    };
    for (path, content) in &before {
        let path = dir.path().join(path);
        mode(&path, if content.is_some() { 0o444 } else { 0o555 });
    }
    mode(dir.path(), 0o555);
    let exe = std::env::current_exe().unwrap();
    let mut command = std::process::Command::new(exe);
    command
        .args([
            "--exact",
            "a_reader_reads_a_read_only_directory_of_another_user",
            "--nocapture",
        ])
        .env(CHILD, dir.path());
    // As root, the child runs as nobody, who owns none of the files.
    if is_root() {
        command.uid(65534).gid(65534);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    mode(dir.path(), 0o755);
    assert!(
        output.status.success() && stdout.lines().any(|l| l == "@ok"),
        "the child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(dir_contents(dir.path()), before, "nothing changed");
}

/// Whether the tests run as root (who may write anything, whatever the
/// permissions say).
#[cfg(unix)]
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[test]
fn lines_are_the_stored_bytes_through_the_archive_and_the_active_log() {
    let _guard = common::in_process_test();
    let dir = common::test_dir();
    let mut log = EventLog::builder(dir.path())
        .max_log_size(400)
        .open()
        .unwrap();
    common::append_numbered(&mut log, 0..40);
    assert!(common::data_file(dir.path(), "archive.jsonl.zst").exists());
    // A hand-written line of another key order and spacing stays as it is.
    let odd = r#"{ "ts": 5, "data": {"n": 40}, "type": "numbered" }"#;
    drop(log);
    common::append_bytes(
        &common::data_file(dir.path(), "app.jsonl"),
        format!("{odd}\n").as_bytes(),
    );

    let mut stored = common::archive_lines(dir.path());
    let active = std::fs::read_to_string(common::data_file(dir.path(), "app.jsonl")).unwrap();
    stored.extend(active.lines().map(str::to_owned));
    assert_eq!(stored.len(), 41);

    // Opened again, the writer takes the line in and tells readers.
    let log = EventLog::open(dir.path()).unwrap();
    let reader = log.reader();
    let lines: Vec<(u64, String)> = reader
        .read_from_seq(0)
        .unwrap()
        .lines()
        .collect::<eventfold::Result<_>>()
        .unwrap();
    let expected: Vec<(u64, String)> = stored
        .into_iter()
        .enumerate()
        .map(|(i, l)| (i as u64, l))
        .collect();
    assert_eq!(lines, expected);

    // From the middle, with the hashes the other iterator gives.
    let hashes: Vec<String> = reader
        .read_from_seq(30)
        .unwrap()
        .map(|i| i.unwrap().2)
        .collect();
    let from_30: Vec<(u64, String)> = reader
        .read_from_seq(30)
        .unwrap()
        .lines()
        .map(Result::unwrap)
        .collect();
    assert_eq!(from_30, expected[30..]);
    for ((_, line), hash) in from_30.iter().zip(&hashes) {
        assert_eq!(
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(line.as_bytes())),
            *hash
        );
    }
}
