//! Files planted in the data directory: a FIFO, a device, a directory or
//! a huge file where eventfold expects one of its own files, and symbolic
//! links at the names it writes. Reading must never hang or exhaust
//! memory (only regular files are read, and only up to a limit), messages
//! must quote little of what they read, and no write may go through a
//! planted link to a file outside the directory.

#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    Entry, all_events, append_bytes, append_numbered, capture_warnings, dir_entries,
    in_process_test, intent_record, make_fifo, numbers, open_with_views, snapshot_file,
    spawning_test, test_dir, warnings_about, within,
};
use eventfold::{Error, Snapshot};

/// How long a call may take before it counts as hanging.
const LIMIT: Duration = Duration::from_secs(10);

/// The longest warning or error message a damaged file may cause, in
/// bytes, not counting the paths it names: a short excerpt, and what to
/// do.
const SHORT: usize = 600;

/// The bytes a file outside the data directory holds, which no planted
/// link may change.
const PRECIOUS: &str = "not eventfold's to write\n";

// --------------------------------------------------------------- helpers

/// A data directory `root/data` with history in the archive (0..3) and
/// in the active log (3..5), every view's snapshot saved, closed.
fn populated(root: &Path) -> PathBuf {
    let data = root.join("data");
    let mut log = open_with_views(&data);
    append_numbered(&mut log, 0..3);
    log.rotate().expect("rotate");
    append_numbered(&mut log, 3..5);
    log.refresh_all().expect("refresh");
    log.save_views().expect("save");
    data
}

/// A file outside the data directory, holding [`PRECIOUS`].
fn outside_file(root: &Path) -> PathBuf {
    let path = root.join("outside.txt");
    fs::write(&path, PRECIOUS).expect("write the outside file");
    path
}

/// Opens `data` with the standard views, refreshes them and returns the
/// count view, on a thread that must finish within [`LIMIT`].
fn open_and_count(data: &Path, what: &str) -> u64 {
    let data = data.to_path_buf();
    within(LIMIT, what, move || {
        let mut log = open_with_views(&data);
        log.refresh_all().expect("refresh");
        assert_eq!(numbers(&all_events(&log)), (0..5).collect::<Vec<_>>());
        *log.view::<u64>("count").expect("count")
    })
}

/// Opens `data`, on a thread that must finish within [`LIMIT`], and
/// returns the error the open must fail with.
fn open_error(data: &Path, what: &str) -> Error {
    let data = data.to_path_buf();
    within(LIMIT, what, move || {
        common::builder_with_views(&data)
            .open()
            .expect_err("the open must fail")
    })
}

/// The entry at `path` is a regular file now (not a link, not a FIFO).
fn assert_regular(path: &Path) {
    let kind = fs::symlink_metadata(path).expect("lstat").file_type();
    assert!(kind.is_file(), "{} is {kind:?}", path.display());
}

/// `text` is short once the paths of `root` it names are left out.
fn assert_short(text: &str, root: &Path) {
    let without_paths = text.replace(&*root.to_string_lossy(), "");
    assert!(
        without_paths.len() <= SHORT,
        "{} bytes: {}…",
        text.len(),
        head(text)
    );
}

/// The start of a text that may be huge, for a failure message.
fn head(text: &str) -> String {
    text.chars().take(300).collect()
}

/// A warning was logged about `path`, and every warning about it is short.
fn assert_warned_briefly(path: &Path, root: &Path) {
    let warnings = warnings_about(path);
    assert!(!warnings.is_empty(), "no warning about {}", path.display());
    for warning in &warnings {
        assert_short(warning, root);
    }
}

/// `error` is `Error::Corrupt` on `path`, its message names it and is
/// short.
fn assert_corrupt_on(error: &Error, path: &Path, root: &Path) {
    assert!(
        matches!(error, Error::Corrupt { path: p, .. } if p == path),
        "expected corruption in {}, got {}",
        path.display(),
        head(&format!("{error:?}"))
    );
    let text = error.to_string();
    assert!(text.contains(&*path.to_string_lossy()), "{text}");
    assert_short(&text, root);
}

/// `error` is an I/O error on `path` saying it is not a regular file.
fn assert_not_regular(error: &Error, path: &Path) {
    assert!(
        matches!(error, Error::Io { path: Some(p), .. } if p == path),
        "expected an I/O error on {}, got {error:?}",
        path.display()
    );
    let text = error.to_string();
    assert!(
        text.contains(&*path.to_string_lossy()) && text.contains("not a regular file"),
        "{text}"
    );
}

// ------------------------------------------------------------ snapshots

#[test]
fn fifo_as_a_snapshot_is_rebuilt_without_hanging() {
    let _serial = spawning_test(); // mkfifo
    capture_warnings();
    let root = test_dir();
    let data = populated(root.path());
    let snapshot = snapshot_file(&data, "count");
    fs::remove_file(&snapshot).expect("remove");
    make_fifo(&snapshot);

    let error = {
        let snapshot = snapshot.clone();
        within(LIMIT, "Snapshot::load of a FIFO", move || {
            Snapshot::<u64>::load(&snapshot).expect_err("a FIFO is no snapshot")
        })
    };
    assert_corrupt_on(&error, &snapshot, root.path());

    assert_eq!(open_and_count(&data, "open with a FIFO as a snapshot"), 5);
    assert_warned_briefly(&snapshot, root.path());
    assert_regular(&snapshot);
}

#[test]
fn snapshot_linked_to_dev_zero_is_rebuilt_without_reading_it() {
    let _serial = in_process_test();
    capture_warnings();
    let root = test_dir();
    let data = populated(root.path());
    let snapshot = snapshot_file(&data, "seq");
    fs::remove_file(&snapshot).expect("remove");
    symlink("/dev/zero", &snapshot).expect("symlink");

    assert_eq!(
        open_and_count(&data, "open with /dev/zero as a snapshot"),
        5
    );
    assert_warned_briefly(&snapshot, root.path());
    // The rebuilt snapshot replaced the link; nothing was written through it.
    assert_regular(&snapshot);
}

#[test]
fn directory_as_a_snapshot_is_rebuilt_and_its_save_names_it() {
    let _serial = in_process_test();
    capture_warnings();
    let root = test_dir();
    let data = populated(root.path());
    let snapshot = snapshot_file(&data, "count");
    fs::remove_file(&snapshot).expect("remove");
    fs::create_dir(&snapshot).expect("create dir");
    fs::write(snapshot.join("keep.txt"), PRECIOUS).expect("write");

    let mut log = open_with_views(&data);
    assert_warned_briefly(&snapshot, root.path());
    log.refresh_all()
        .expect("a snapshot that cannot be saved is a warning for a refresh");
    assert_eq!(*log.view::<u64>("count").expect("view"), 5);
    let error = log
        .save_views()
        .expect_err("the rebuilt snapshot cannot replace a directory");
    assert!(
        matches!(&error, Error::Io { path: Some(p), .. } if *p == snapshot),
        "{error:?}"
    );
    drop(log);
    assert_eq!(
        fs::read_to_string(snapshot.join("keep.txt")).expect("read"),
        PRECIOUS,
        "the directory was touched"
    );
}

#[test]
fn huge_garbage_snapshot_is_rebuilt_and_the_warning_quotes_little() {
    let _serial = in_process_test();
    capture_warnings();
    let root = test_dir();
    let data = populated(root.path());
    let snapshot = snapshot_file(&data, "todos");
    // 100 MiB of one JSON string: serde's message for it quotes it whole.
    let mut garbage = vec![b'x'; 100 << 20];
    garbage[0] = b'"';
    *garbage.last_mut().expect("not empty") = b'"';
    fs::write(&snapshot, &garbage).expect("write garbage");
    drop(garbage);

    assert_eq!(open_and_count(&data, "open with a huge snapshot"), 5);
    assert_warned_briefly(&snapshot, root.path());
    assert!(fs::metadata(&snapshot).expect("stat").len() < 1000);
}

#[test]
fn snapshot_over_the_size_limit_is_rebuilt_unread() {
    let _serial = in_process_test();
    capture_warnings();
    let root = test_dir();
    let data = populated(root.path());
    let snapshot = snapshot_file(&data, "count");
    // A sparse file, one byte over the documented limit of 1 GiB.
    fs::File::create(&snapshot)
        .and_then(|f| f.set_len((1 << 30) + 1))
        .expect("create a sparse file");

    assert_eq!(open_and_count(&data, "open with an oversized snapshot"), 5);
    assert_warned_briefly(&snapshot, root.path());
    assert!(
        warnings_about(&snapshot)
            .iter()
            .any(|w| w.contains("over the limit")),
        "{:?}",
        warnings_about(&snapshot)
    );
    assert!(fs::metadata(&snapshot).expect("stat").len() < 1000);
}

#[test]
fn fifo_as_the_snapshot_of_an_unregistered_view_does_not_hang_a_rotation() {
    let _serial = spawning_test(); // mkfifo
    let root = test_dir();
    let data = populated(root.path());
    let stranger = snapshot_file(&data, "stranger");
    make_fifo(&stranger);

    let rotated = {
        let data = data.clone();
        within(LIMIT, "a rotation past a FIFO snapshot", move || {
            let mut log = open_with_views(&data);
            append_numbered(&mut log, 5..6);
            log.rotate().expect("rotate");
            numbers(&all_events(&log))
        })
    };
    assert_eq!(rotated, (0..6).collect::<Vec<_>>());
    assert!(
        fs::symlink_metadata(&stranger).is_err(),
        "the damaged snapshot of a view not registered is pruned"
    );
}

// -------------------------------------------------------- rotation.json

/// A populated directory with a rotation record planted by `plant`: open
/// must fail with `Error::Corrupt` naming it, and change nothing.
fn check_planted_rotation_record(what: &str, plant: impl FnOnce(&Path)) {
    let root = test_dir();
    let data = populated(root.path());
    let record = data.join("rotation.json");
    plant(&record);
    let before = dir_entries(&data);
    for _ in 0..2 {
        let error = open_error(&data, what);
        assert_corrupt_on(&error, &record, root.path());
    }
    assert!(dir_entries(&data) == before, "{what}: files changed");
}

#[test]
fn fifo_as_the_rotation_record_is_corrupt_and_nothing_is_touched() {
    let _serial = spawning_test(); // mkfifo
    check_planted_rotation_record("open with a FIFO as rotation.json", make_fifo);
}

#[test]
fn rotation_record_linked_to_dev_zero_is_corrupt_and_nothing_is_touched() {
    let _serial = in_process_test();
    check_planted_rotation_record("open with /dev/zero as rotation.json", |record| {
        symlink("/dev/zero", record).expect("symlink");
    });
}

#[test]
fn oversized_rotation_record_is_corrupt_and_nothing_is_touched() {
    let _serial = in_process_test();
    check_planted_rotation_record("open with a 5 KiB rotation.json", |record| {
        // A record that would roll back a rotation of the active log (as
        // it stands), padded with whitespace past the limit of 4 KiB.
        let data = record.parent().expect("in the data directory");
        let log_len = fs::metadata(data.join("app.jsonl")).expect("stat").len();
        let archive_len = fs::metadata(data.join("archive.jsonl.zst"))
            .expect("stat")
            .len();
        let padded = format!(
            "{}{}",
            intent_record(archive_len, log_len),
            " ".repeat(5000)
        );
        fs::write(record, padded).expect("write");
    });
}

#[test]
fn garbage_rotation_record_is_quoted_briefly() {
    let _serial = in_process_test();
    check_planted_rotation_record("open with a garbage rotation.json", |record| {
        fs::write(record, format!("\"{}\"", "x".repeat(3000))).expect("write");
    });
}

// -------------------------------------------------------------- the log

#[test]
fn corrupt_line_error_quotes_little() {
    let _serial = in_process_test();
    let root = test_dir();
    let data = populated(root.path());
    let line = format!(
        "{{\"type\":\"x\",\"data\":null,\"ts\":\"{}\"}}\n",
        "9".repeat(10_000)
    );
    append_bytes(&data.join("app.jsonl"), line.as_bytes());
    let error = common::builder_with_views(&data)
        .open()
        .expect_err("the last line is no event");
    assert_corrupt_on(&error, &data.join("app.jsonl"), root.path());
}

#[test]
fn fifo_as_the_active_log_is_a_clear_error() {
    let _serial = spawning_test(); // mkfifo
    let root = test_dir();
    let data = root.path().join("data");
    fs::create_dir_all(data.join("views")).expect("create dirs");
    let log = data.join("app.jsonl");
    make_fifo(&log);
    let error = open_error(&data, "open with a FIFO as app.jsonl");
    assert_not_regular(&error, &log);
}

#[test]
fn device_as_the_active_log_is_a_clear_error() {
    let _serial = in_process_test();
    let root = test_dir();
    let data = root.path().join("data");
    fs::create_dir_all(data.join("views")).expect("create dirs");
    let log = data.join("app.jsonl");
    symlink("/dev/null", &log).expect("symlink");
    let error = open_error(&data, "open with /dev/null as app.jsonl");
    assert_not_regular(&error, &log);
}

#[test]
fn fifo_as_the_torn_file_is_a_clear_error_and_the_log_is_kept() {
    let _serial = spawning_test(); // mkfifo
    let root = test_dir();
    let data = populated(root.path());
    let log = data.join("app.jsonl");
    append_bytes(&log, b"{\"type\":\"torn");
    let torn = data.join("app.jsonl.torn");
    make_fifo(&torn);
    let before = fs::read(&log).expect("read");
    let error = open_error(&data, "open with a FIFO as app.jsonl.torn");
    assert_not_regular(&error, &torn);
    assert_eq!(fs::read(&log).expect("read"), before, "the tail was cut");
}

// ------------------------------------------------ links at written names

/// The temporary names eventfold writes, relative to the data directory.
const TMP_NAMES: [&str; 4] = [
    "views/count.snapshot.json.tmp",
    "views/seq.snapshot.json.tmp",
    "views/todos.snapshot.json.tmp",
    "rotation.json.tmp",
];

/// Plants a link to `target` at every name of [`TMP_NAMES`] in `data`.
fn plant_tmp_links(data: &Path, target: &Path) {
    for name in TMP_NAMES {
        let link = data.join(name);
        let _ = fs::remove_file(&link);
        symlink(target, &link).expect("symlink");
    }
}

/// No entry is left at the names of [`TMP_NAMES`].
fn assert_no_tmp_entries(data: &Path) {
    for name in TMP_NAMES {
        assert!(
            fs::symlink_metadata(data.join(name)).is_err(),
            "{name} is still there"
        );
    }
}

#[test]
fn links_at_temporary_names_are_swept_on_open_and_never_written_through() {
    let _serial = in_process_test();
    capture_warnings();
    let root = test_dir();
    let data = populated(root.path());
    let outside = outside_file(root.path());
    plant_tmp_links(&data, &outside);

    let mut log = open_with_views(&data);
    assert_no_tmp_entries(&data);
    for name in TMP_NAMES {
        assert!(!warnings_about(&data.join(name)).is_empty(), "{name}");
    }
    append_numbered(&mut log, 5..8);
    log.refresh_all().expect("refresh");
    log.save_views().expect("save");
    log.rotate().expect("rotate");
    drop(log);
    assert_eq!(fs::read_to_string(&outside).expect("read"), PRECIOUS);
}

#[test]
fn links_planted_at_temporary_names_while_open_are_never_written_through() {
    let _serial = in_process_test();
    let root = test_dir();
    let data = populated(root.path());
    let outside = outside_file(root.path());
    let nowhere = root.path().join("nowhere.txt");
    let mut log = open_with_views(&data);
    append_numbered(&mut log, 5..8);
    log.refresh_all().expect("refresh");

    plant_tmp_links(&data, &outside);
    log.save_views().expect("save");
    assert_eq!(
        fs::read_to_string(&outside).expect("read"),
        PRECIOUS,
        "save_views"
    );

    plant_tmp_links(&data, &outside);
    log.rotate().expect("rotate");
    assert_eq!(
        fs::read_to_string(&outside).expect("read"),
        PRECIOUS,
        "rotate"
    );
    assert_no_tmp_entries(&data);

    // Dangling links: following one would create the file it names.
    plant_tmp_links(&data, &nowhere);
    append_numbered(&mut log, 8..9);
    log.rotate().expect("rotate");
    assert!(fs::symlink_metadata(&nowhere).is_err(), "rotate created it");

    let path = data.join("views/count.snapshot.json");
    plant_tmp_links(&data, &outside);
    Snapshot {
        state: 1u64,
        offset: 0,
        hash: String::new(),
    }
    .save(&path)
    .expect("Snapshot::save");
    assert_eq!(
        fs::read_to_string(&outside).expect("read"),
        PRECIOUS,
        "Snapshot::save"
    );
    assert_regular(&path);
    drop(log);
    assert_eq!(
        fs::read_to_string(&outside).expect("read"),
        PRECIOUS,
        "drop"
    );
}

#[test]
fn fifo_at_a_temporary_name_is_swept_without_hanging() {
    let _serial = spawning_test(); // mkfifo
    let root = test_dir();
    let data = populated(root.path());
    for name in TMP_NAMES {
        make_fifo(&data.join(name));
    }
    let data2 = data.clone();
    within(
        LIMIT,
        "open, save and rotate past planted FIFOs",
        move || {
            let mut log = open_with_views(&data2);
            append_numbered(&mut log, 5..6);
            log.refresh_all().expect("refresh");
            log.save_views().expect("save");
            log.rotate().expect("rotate");
        },
    );
    assert_no_tmp_entries(&data);
}

#[test]
fn link_planted_as_the_torn_file_is_replaced_and_its_target_untouched() {
    let _serial = in_process_test();
    capture_warnings();
    let root = test_dir();
    let data = populated(root.path());
    let outside = outside_file(root.path());
    let torn = data.join("app.jsonl.torn");
    symlink(&outside, &torn).expect("symlink");
    let tail = b"{\"type\":\"torn";
    append_bytes(&data.join("app.jsonl"), tail);

    assert_eq!(open_and_count(&data, "open with a linked torn file"), 5);
    assert_eq!(fs::read_to_string(&outside).expect("read"), PRECIOUS);
    assert_regular(&torn);
    assert_eq!(fs::read(&torn).expect("read"), [&tail[..], b"\n"].concat());
    assert!(!warnings_about(&torn).is_empty());

    // A dangling link: following it would create the file it names.
    let nowhere = root.path().join("nowhere.txt");
    fs::remove_file(&torn).expect("remove");
    symlink(&nowhere, &torn).expect("symlink");
    append_bytes(&data.join("app.jsonl"), tail);
    assert_eq!(open_and_count(&data, "open with a dangling torn link"), 5);
    assert!(fs::symlink_metadata(&nowhere).is_err(), "it was created");
    assert_regular(&torn);
    let kept: Vec<_> = dir_entries(&data)
        .into_iter()
        .filter(|(_, e)| matches!(e, Entry::Link(_)))
        .collect();
    assert!(kept.is_empty(), "links left: {kept:?}");
}

#[test]
fn symlinked_data_directory_and_files_are_followed() {
    let _serial = in_process_test();
    let root = test_dir();
    let real = populated(root.path());
    let elsewhere = root.path().join("elsewhere");
    fs::create_dir(&elsewhere).expect("create dir");
    // The active log, the archive and views/ live elsewhere, linked in.
    for name in ["app.jsonl", "archive.jsonl.zst", "views"] {
        fs::rename(real.join(name), elsewhere.join(name)).expect("move");
        symlink(elsewhere.join(name), real.join(name)).expect("symlink");
    }
    let linked = root.path().join("linked");
    symlink(&real, &linked).expect("symlink");

    let mut log = open_with_views(&linked);
    append_numbered(&mut log, 5..7);
    log.rotate().expect("rotate");
    append_numbered(&mut log, 7..8);
    log.refresh_all().expect("refresh");
    assert_eq!(numbers(&all_events(&log)), (0..8).collect::<Vec<_>>());
    drop(log);
    for name in ["app.jsonl", "archive.jsonl.zst", "views"] {
        let kind = fs::symlink_metadata(real.join(name)).expect("lstat");
        assert!(kind.file_type().is_symlink(), "{name} is a link still");
    }
    assert!(
        fs::metadata(elsewhere.join("app.jsonl"))
            .expect("stat")
            .len()
            > 0
    );
    assert!(elsewhere.join("views/count.snapshot.json").is_file());
}
