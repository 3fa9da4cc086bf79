//! A hostile environment: the data directory is a file, or read-only; the
//! snapshot directory is not writable; a file eventfold needs is a
//! directory; two processes race to open the same directory; a second open
//! in the same process. Each case must give a clear error (the right
//! variant, a message naming the path), write nothing where it should not,
//! and never panic.
//!
//! Root ignores file permissions, so "read-only" is made with `chmod` when
//! this process is subject to permissions, and with a read-only bind mount
//! when it is root; where neither works the case says so and passes.

#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    KillOnDrop, TestMount, all_events, append_numbered, counter_reducer, dir_contents,
    in_process_test, numbers, open_with_views, replay, seq_reducer, spawning_test, test_dir,
};
use eventfold::{Error, Event, EventLog};
use serde_json::json;

// --------------------------------------------------------------- helpers

/// `error` is an I/O error on exactly `path`, and its message names it.
fn assert_io_on(error: &Error, path: &Path) {
    assert!(
        matches!(error, Error::Io { path: Some(p), .. } if p == path),
        "expected an I/O error on {}, got {error:?}",
        path.display()
    );
    assert!(
        error.to_string().contains(&*path.to_string_lossy()),
        "the message does not name {}: {error}",
        path.display()
    );
}

/// The error is what a read-only directory gives: permission denied
/// (`chmod`) or a read-only file system (mount).
fn assert_refused_write(error: &Error) {
    let Error::Io { source, .. } = error else {
        panic!("expected an I/O error, got {error:?}");
    };
    assert!(
        matches!(
            source.kind(),
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
        ),
        "{error:?}"
    );
}

/// A data directory with history in the archive and in the active log,
/// snapshots saved, closed cleanly.
fn populated_log(dir: &Path) {
    let mut log = open_with_views(dir);
    append_numbered(&mut log, 0..5);
    log.rotate().expect("rotate");
    append_numbered(&mut log, 5..8);
    log.refresh_all().expect("refresh");
    log.save_views().expect("save");
}

/// Reopens `dir` and checks that its history is `0..n` and its views
/// agree with it.
fn assert_history(dir: &Path, n: u64) {
    let mut log = open_with_views(dir);
    assert_eq!(numbers(&all_events(&log)), (0..n).collect::<Vec<_>>());
    log.refresh_all().expect("refresh");
    assert_eq!(*log.view::<u64>("count").expect("count"), n);
    assert_eq!(
        *log.view::<Vec<u64>>("seq").expect("seq"),
        replay(&log, seq_reducer)
    );
}

/// A directory (and everything in it) made unwritable for this process;
/// writable again when dropped.
enum Unwritable {
    /// Permission bits: this process is subject to them. The old modes.
    Modes(Vec<(PathBuf, u32)>),
    /// A read-only bind mount: for root, which permissions do not stop.
    /// Held for its `Drop`, which unmounts it.
    Mount { _mount: TestMount },
}

impl Unwritable {
    /// Makes `dir` and its contents unwritable, or returns `None` after
    /// saying why the test `name` cannot run here.
    fn make(dir: &Path, name: &str) -> Option<Unwritable> {
        let mut modes = Vec::new();
        for (relative, _) in dir_contents(dir) {
            let path = dir.join(relative);
            modes.push((path.clone(), mode_of(&path)));
        }
        modes.push((dir.to_path_buf(), mode_of(dir)));
        // Files first, then directories deepest first, the top one last.
        for (path, mode) in modes.iter().rev() {
            let read_only = if path.is_dir() { 0o555 } else { 0o444 };
            set_mode(path, mode & !0o777 | read_only);
        }
        let modes = Unwritable::Modes(modes);
        if !can_create_in(dir) {
            return Some(modes);
        }
        drop(modes); // root: permissions are not enforced
        match TestMount::read_only(dir) {
            Ok(mount) if !can_create_in(dir) => Some(Unwritable::Mount { _mount: mount }),
            Ok(_) => {
                println!("SKIP {name}: a read-only bind mount did not stop writes");
                None
            }
            Err(why) => {
                println!(
                    "SKIP {name}: running as root, so permissions are not enforced, \
                     and a read-only mount is not allowed here ({why})"
                );
                None
            }
        }
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        if let Unwritable::Modes(modes) = self {
            for (path, mode) in modes.iter() {
                set_mode(path, *mode);
            }
        }
    }
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode()
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Whether a new file can be created in `dir` (removing it again).
fn can_create_in(dir: &Path) -> bool {
    let probe = dir.join(".write-probe");
    match fs::File::create(&probe) {
        Ok(_) => {
            fs::remove_file(&probe).expect("remove probe");
            true
        }
        Err(_) => false,
    }
}

// ---------------------------------------------- the directory is a file

#[test]
fn data_dir_that_is_a_regular_file_is_an_io_error_naming_it() {
    let _serial = in_process_test();
    let root = test_dir();
    let file = root.path().join("data");
    fs::write(&file, b"not a directory").expect("write file");
    let before = dir_contents(root.path());

    let error = EventLog::open(&file).expect_err("a file is not a data directory");
    assert_io_on(&error, &file);
    let error =
        EventLog::open(file.join("below")).expect_err("nor can a directory be made below a file");
    assert_io_on(&error, &file);
    assert!(dir_contents(root.path()) == before, "something was written");
}

// ----------------------------------------------- read-only data directory

#[test]
fn new_log_in_a_read_only_directory_is_refused_and_writes_nothing() {
    let _serial = spawning_test(); // Unwritable may run mount(8)
    let root = test_dir();
    let data = root.path().join("data");
    fs::create_dir(&data).expect("create dir");
    let name = "new_log_in_a_read_only_directory_is_refused_and_writes_nothing";
    let Some(_guard) = Unwritable::make(&data, name) else {
        return;
    };
    let error = EventLog::open(&data).expect_err("views/ cannot be created");
    assert_io_on(&error, &data.join("views"));
    assert_refused_write(&error);
    let error = EventLog::open(data.join("sub")).expect_err("sub/ cannot be created");
    assert_io_on(&error, &data.join("sub"));
    assert!(dir_contents(&data).is_empty(), "something was written");
}

#[test]
fn existing_log_in_a_read_only_directory_is_refused_and_untouched() {
    let _serial = spawning_test(); // Unwritable may run mount(8)
    let root = test_dir();
    let data = root.path().join("data");
    populated_log(&data);
    let before = dir_contents(&data);
    {
        let name = "existing_log_in_a_read_only_directory_is_refused_and_untouched";
        let Some(_guard) = Unwritable::make(&data, name) else {
            return;
        };
        for _ in 0..2 {
            let error = common::builder_with_views(&data)
                .open()
                .expect_err("app.jsonl cannot be opened for appending");
            assert_io_on(&error, &data.join("app.jsonl"));
            assert_refused_write(&error);
        }
        assert!(dir_contents(&data) == before, "files changed");
    }
    assert_history(&data, 8);
}

// -------------------------------------------- snapshot dir not writable

#[test]
fn unwritable_views_dir_fails_snapshot_saves_only() {
    let _serial = spawning_test(); // Unwritable may run mount(8)
    let root = test_dir();
    let data = root.path().join("data");
    populated_log(&data);
    let views = data.join("views");
    let views_before = dir_contents(&views);
    let archive = fs::read(data.join("archive.jsonl.zst")).expect("archive");
    {
        let name = "unwritable_views_dir_fails_snapshot_saves_only";
        let Some(_guard) = Unwritable::make(&views, name) else {
            return;
        };
        let mut log = open_with_views(&data);
        log.append(&common::numbered(8))
            .expect("the log is writable");
        log.refresh_all()
            .expect("a small refresh is not due to save a snapshot");
        assert_eq!(*log.view::<u64>("count").expect("count"), 9);

        let error = log.save_views().expect_err("snapshots cannot be saved");
        assert!(
            matches!(&error, Error::Io { path: Some(p), .. }
                if p.starts_with(&views) && p.to_string_lossy().ends_with(".snapshot.json.tmp")),
            "{error:?}"
        );
        assert!(
            error.to_string().contains(&*views.to_string_lossy()),
            "{error}"
        );
        assert_refused_write(&error);

        let log_len = log.active_len();
        let error = log
            .rotate()
            .expect_err("the rotation cannot save snapshots");
        assert!(
            matches!(&error, Error::Io { path: Some(p), .. } if p.starts_with(&views)),
            "{error:?}"
        );
        assert!(!data.join("rotation.json").exists(), "the rotation began");
        assert_eq!(
            fs::read(data.join("archive.jsonl.zst")).expect("archive"),
            archive
        );
        assert_eq!(log.active_len(), log_len);

        let error = log
            .rebuild_view("count")
            .expect_err("the snapshot cannot be deleted");
        assert_io_on(&error, &views.join("count.snapshot.json"));

        log.append(&common::numbered(9))
            .expect("snapshot failures do not poison the log");
        drop(log); // its snapshot save fails with a warning, no panic
        assert!(dir_contents(&views) == views_before, "views/ changed");
    }
    assert_history(&data, 10);
}

// --------------------------------------- a file eventfold needs is a dir

#[test]
fn log_file_that_is_a_directory_is_an_io_error_naming_it() {
    let _serial = in_process_test();
    let root = test_dir();
    let data = root.path().join("data");
    let log_dir = data.join("app.jsonl");
    fs::create_dir_all(&log_dir).expect("create dirs");
    fs::write(log_dir.join("keep.txt"), b"mine").expect("write");
    for _ in 0..2 {
        let error = open_with_views_result(&data).expect_err("app.jsonl is a directory");
        assert_io_on(&error, &log_dir);
    }
    let after = dir_contents(&data);
    let names: Vec<_> = after
        .keys()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["app.jsonl", "app.jsonl/keep.txt", "views"]);
}

#[test]
fn views_path_that_is_a_file_is_an_io_error_naming_it() {
    let _serial = in_process_test();
    let root = test_dir();
    let data = root.path().join("data");
    fs::create_dir(&data).expect("create dir");
    fs::write(data.join("views"), b"mine").expect("write");
    let error = open_with_views_result(&data).expect_err("views is a file");
    assert_io_on(&error, &data.join("views"));
    let names: Vec<_> = dir_contents(&data).into_keys().collect();
    assert_eq!(names, [PathBuf::from("views")], "nothing else was created");
    assert_eq!(fs::read(data.join("views")).expect("read"), b"mine");
}

#[test]
fn archive_path_that_is_a_directory_is_an_error_naming_it() {
    let _serial = in_process_test();
    let root = test_dir();
    let data = root.path().join("data");
    {
        let mut log = open_with_views(&data);
        append_numbered(&mut log, 0..3);
    }
    let archive = data.join("archive.jsonl.zst");
    fs::create_dir(&archive).expect("create dir");
    let before = dir_contents(&data);
    let outcome = open_with_views_result(&data).and_then(|mut log| {
        log.refresh_all()?;
        log.read_full()?.try_for_each(|item| item.map(drop))?;
        log.rotate()
    });
    let error = outcome.expect_err("the archive is a directory");
    assert!(
        error.to_string().contains(&*archive.to_string_lossy()),
        "the message does not name the archive: {error:?}"
    );
    let after = dir_contents(&data);
    assert!(!data.join("rotation.json").exists());
    assert_eq!(
        after.get(Path::new("app.jsonl")),
        before.get(Path::new("app.jsonl"))
    );
    assert_eq!(after.get(Path::new("archive.jsonl.zst")), Some(&None));
}

fn open_with_views_result(dir: &Path) -> eventfold::Result<EventLog> {
    common::builder_with_views(dir).open()
}

// ------------------------------------------------------ the single writer

#[test]
fn second_open_in_the_same_process_is_locked_and_touches_nothing() {
    let _serial = in_process_test();
    let root = test_dir();
    let data = root.path().join("data");
    let mut first = open_with_views(&data);
    append_numbered(&mut first, 0..3);
    // Leftovers that an open would sweep, had it the lock.
    fs::write(data.join("rotation.json.tmp"), b"{").expect("write");
    fs::write(data.join("views/count.snapshot.json.tmp"), b"{").expect("write");
    let before = dir_contents(&data);

    for _ in 0..2 {
        let error = open_with_views_result(&data).expect_err("the directory is locked");
        assert!(
            matches!(&error, Error::Locked { path } if *path == data),
            "{error:?}"
        );
        assert!(
            error.to_string().contains(&*data.to_string_lossy()),
            "{error}"
        );
    }
    assert!(dir_contents(&data) == before, "a locked open touched files");
    first
        .append(&common::numbered(3))
        .expect("the first log still writes");
    drop(first);
    assert_history(&data, 4);
}

#[test]
fn removing_files_under_a_writer_does_not_release_the_lock() {
    let _serial = in_process_test();
    let root = test_dir();
    let data = root.path().join("data");
    let mut first = open_with_views(&data);
    append_numbered(&mut first, 0..3);
    fs::remove_file(data.join("app.jsonl")).expect("remove");
    fs::remove_dir_all(data.join("views")).expect("remove");
    let error = EventLog::open(&data).expect_err("the lock is on the directory itself");
    assert!(
        matches!(&error, Error::Locked { path } if *path == data),
        "{error:?}"
    );
    drop(first);
}

/// Environment of a racing child: the data directory, its id, the Unix
/// time in milliseconds at which to open, and a file whose appearance
/// tells the winner to close.
const RACE_DIR: &str = "EVENTFOLD_RACE_DIR";
const RACE_ID: &str = "EVENTFOLD_RACE_ID";
const RACE_AT: &str = "EVENTFOLD_RACE_AT";
const RACE_RELEASE: &str = "EVENTFOLD_RACE_RELEASE";

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Child side of the race: waits for the agreed moment, opens, and either
/// appends one event naming itself and holds the lock until released, or
/// reports `Error::Locked`.
#[test]
fn child_racer() {
    let Some(dir) = std::env::var_os(RACE_DIR) else {
        return; // only meaningful as a child of `two_processes_racing_to_open`
    };
    let dir = PathBuf::from(dir);
    let id: u64 = std::env::var(RACE_ID).expect("id").parse().expect("number");
    let at: u64 = std::env::var(RACE_AT).expect("at").parse().expect("number");
    let release = PathBuf::from(std::env::var_os(RACE_RELEASE).expect("release"));
    while unix_millis() < at {
        std::hint::spin_loop();
    }
    match EventLog::builder(&dir)
        .view::<u64>("count", counter_reducer)
        .open()
    {
        Ok(mut log) => {
            log.append(&Event::with_ts("winner", json!({ "id": id }), 1))
                .expect("append");
            println!("\n@opened {id}"); // libtest's "test ... " has no newline
            let deadline = Instant::now() + Duration::from_secs(20);
            while !release.exists() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(2));
            }
        }
        Err(error) => {
            assert!(
                matches!(&error, Error::Locked { path } if *path == dir),
                "{error:?}"
            );
            assert!(
                error.to_string().contains(&*dir.to_string_lossy()),
                "{error}"
            );
            println!("\n@locked {id}");
        }
    }
}

#[test]
fn two_processes_racing_to_open_one_wins_the_other_is_locked() {
    if std::env::var_os(RACE_DIR).is_some() {
        return;
    }
    let _serial = spawning_test();
    let exe = std::env::current_exe().expect("test binary path");
    let root = test_dir();
    for round in 0..4u64 {
        let data = root.path().join(format!("data{round}"));
        let prior = if round % 2 == 1 {
            let mut log = EventLog::open(&data).expect("open");
            append_numbered(&mut log, 0..3);
            3
        } else {
            0 // the directory does not exist yet: both race to create it
        };
        let release = root.path().join(format!("release{round}"));
        let at = unix_millis() + 300;
        let (sender, receiver) = mpsc::channel();
        let mut children = Vec::new();
        for id in [1u64, 2] {
            let mut child = Command::new(&exe)
                .args(["--exact", "child_racer", "--nocapture", "--test-threads=1"])
                .env(RACE_DIR, &data)
                .env(RACE_ID, id.to_string())
                .env(RACE_AT, at.to_string())
                .env(RACE_RELEASE, &release)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn racer");
            let stdout = child.stdout.take().expect("piped stdout");
            let sender = sender.clone();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.starts_with('@') {
                        let _ = sender.send(line);
                    }
                }
            });
            children.push(KillOnDrop(child));
        }
        drop(sender);

        let mut reports = Vec::new();
        while reports.len() < 2 {
            match receiver.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => reports.push(line),
                Err(e) => {
                    panic!("round {round}: the racers did not both report ({e}): {reports:?}")
                }
            }
        }
        fs::write(&release, b"").expect("release the winner");
        for child in &mut children {
            let deadline = Instant::now() + Duration::from_secs(30);
            let status = loop {
                if let Some(status) = child.0.try_wait().expect("poll") {
                    break status;
                }
                assert!(Instant::now() < deadline, "round {round}: a racer hangs");
                thread::sleep(Duration::from_millis(5));
            };
            assert!(status.success(), "round {round}: a racer failed: {status}");
        }

        reports.sort();
        let winner: u64 = match (reports[0].split_once(' '), reports[1].split_once(' ')) {
            (Some(("@locked", loser)), Some(("@opened", winner))) => {
                assert_ne!(loser, winner);
                winner.parse().expect("id")
            }
            _ => panic!("round {round}: expected one winner and one locked: {reports:?}"),
        };
        let log = EventLog::open(&data).expect("open after the race");
        let events = all_events(&log);
        let winners: Vec<_> = events.iter().filter(|e| e.event_type == "winner").collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: the loser wrote: {events:?}"
        );
        assert_eq!(winners[0].data["id"], winner);
        assert_eq!(events.len() as u64, prior + 1);
    }
}

/// Closing a log and opening the same directory again, while another
/// thread of the process spawns child processes (as a server might): the
/// directory is not open anywhere else, so the open must succeed. A child
/// between `fork` and `exec` holds a copy of the closed log's lock
/// descriptor for a moment, which `open` mistakes for a second writer.
#[test]
fn reopen_while_another_thread_spawns_processes_is_not_locked() {
    if std::env::var_os(RACE_DIR).is_some() {
        return;
    }
    let _serial = spawning_test();
    let root = test_dir();
    let data = root.path().join("data");
    drop(EventLog::open(&data).expect("create"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawner = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut spawned = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut child) = Command::new("true").spawn() {
                    let _ = child.wait();
                    spawned += 1;
                }
            }
            spawned
        })
    };
    let started = Instant::now();
    let mut opens = 0u64;
    let mut locked = Vec::new();
    while started.elapsed() < Duration::from_secs(1) {
        match EventLog::open(&data) {
            Ok(log) => drop(log),
            Err(e) => locked.push(e.to_string()),
        }
        opens += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let spawned = spawner.join().expect("spawner");
    assert!(
        locked.is_empty(),
        "{} of {opens} opens of a directory no one had open failed \
         while {spawned} processes were spawned; first: {}",
        locked.len(),
        locked[0]
    );
}

/// Reliability rule 10: a data directory that is a file was reported as
/// "File exists (os error 17)", and an empty path as "I/O error on : No
/// such file or directory". Each now says what is wrong and what to do.
#[test]
fn bad_data_directory_paths_are_explained() {
    let dir = test_dir();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let error = EventLog::open(&file).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("not a directory"), "{text}");
    assert!(text.contains("not-a-dir"), "{text}");
    assert!(!text.contains("os error 17"), "{text}");
    assert!(
        EventLog::open(file.join("below"))
            .unwrap_err()
            .to_string()
            .contains("not a directory")
    );

    let text = EventLog::open("").unwrap_err().to_string();
    assert!(text.contains("path is empty"), "{text}");
}

/// Reliability rule 10: `read_from` past the end said "not the start of a
/// line"; it now says the offset is past the end and why that happens
/// (offsets start again at 0 after a rotation).
#[test]
fn read_from_past_the_end_says_so() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    append_numbered(&mut log, 0..3);
    let cursor = log.active_len();
    log.rotate().unwrap();
    let text = log.read_from(cursor).unwrap_err().to_string();
    assert!(text.contains("past the end"), "{text}");
    assert!(text.contains("rotation"), "{text}");
    append_numbered(&mut log, 3..6);
    let text = log.read_from(3).unwrap_err().to_string();
    assert!(text.contains("inside a line"), "{text}");
}
