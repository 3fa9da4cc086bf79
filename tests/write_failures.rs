//! Real write failures: the test re-runs itself as a child process whose
//! file-size limit (`ulimit -f`) makes writes fail with `EFBIG`, with
//! `SIGXFSZ` ignored so that the process sees the error. Limits are chosen
//! so that the failure hits one chosen write: an append, a batch half way,
//! a snapshot save, and each step of a rotation that writes (the intent
//! record, the archive frame, the snapshot move). Where the sandbox allows
//! mounting, a 256 KiB tmpfs is filled up to get `ENOSPC` as well.
//!
//! Every case checks: the caller gets an error naming the file; the files
//! stay readable; nothing acknowledged is lost; after a failed write of
//! the log or the archive the log refuses every write until reopened; and
//! a reopen without the limit recovers (rolls a rotation back or forward).
//! Steps that cannot be made to fail this way: truncating the active log
//! (it shrinks) and removing the intent record.

#![cfg(unix)]

mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    TestMount, all_events, append_numbered, archive_frames, counter_reducer, dir_contents,
    file_size, numbered, numbers, random_text, replay, seq_reducer, snapshot_file, snapshot_json,
    spawning_test, stored_line, test_dir,
};
use eventfold::{Error, Event, EventLog};
use serde_json::json;
use tempfile::TempDir;

/// Set in the child's environment to the data directory it must use.
const CHILD_DIR: &str = "EVENTFOLD_WRITE_FAILURE_DIR";

/// For a test that spawns children: `None` when this process is itself a
/// child (which runs only its `child_` test), otherwise the guard that keeps
/// spawning tests apart from in-process ones.
fn parent_test() -> Option<std::sync::RwLockWriteGuard<'static, ()>> {
    std::env::var_os(CHILD_DIR).is_none().then(spawning_test)
}

/// An event of about 1 KiB, so that a few fill the allowed file size.
fn big_event(n: u64) -> Event {
    let mut event = numbered(n);
    event.data["pad"] = json!("x".repeat(1000));
    event
}

/// Runs this test binary's `name` test in a child process with a file size
/// limit of `blocks` 512-byte blocks; returns its standard output.
fn run_limited_child(name: &str, dir: &Path, blocks: u32) -> String {
    run_limited_child_with(name, dir, blocks, &[])
}

/// As [`run_limited_child`], with more environment variables for the
/// child. A child that runs longer than a minute is killed and the test
/// fails: it never hangs.
fn run_limited_child_with(name: &str, dir: &Path, blocks: u32, envs: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let script = format!(
        "trap '' XFSZ; ulimit -f {blocks} && exec \"$0\" --exact {name} --nocapture --test-threads=1"
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(exe)
        .env(CHILD_DIR, dir)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run child");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    let Some(status) = status else {
        panic!("child {name} timed out after 60 s\n{stdout}\n{stderr}");
    };
    assert!(
        status.success(),
        "child failed: {status}\n{stdout}\n{stderr}"
    );
    stdout
}

/// The number the child printed after `key=`.
fn reported(stdout: &str, key: &str) -> u64 {
    let tag = format!("{key}=");
    let start = stdout
        .find(&tag)
        .unwrap_or_else(|| panic!("child did not report {key}:\n{stdout}"))
        + tag.len();
    let digits: String = stdout[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("a number")
}

/// Child side: appends until the file-size limit makes a write fail, then
/// checks that the log refuses further appends, and reports.
#[test]
fn child_appends_until_the_disk_refuses() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return; // only meaningful as a child of `failed_write_poisons_the_log`
    };
    let mut log = EventLog::open(&dir).expect("open");
    let mut acked = 0;
    let error = loop {
        match log.append(&big_event(acked)) {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 1000, "the file size limit never took effect");
    };
    assert!(
        matches!(&error, Error::Io { path: Some(p), .. } if p.ends_with("app.jsonl")),
        "{error:?}"
    );
    let again = log
        .append(&numbered(acked))
        .expect_err("a poisoned log refuses appends");
    assert!(again.to_string().contains("reopen"), "{again}");
    for refused in [Err(again), log.rotate(), log.save_views()] {
        assert!(
            matches!(&refused, Err(Error::Poisoned { path }) if path.ends_with("app.jsonl")),
            "{refused:?}"
        );
    }
    log.refresh_all()
        .expect("a poisoned log still reads what was acknowledged");
    assert_eq!(all_events(&log).len() as u64, acked);
    // The fault lasts (the limit is still set): recovering in place works,
    // since it needs no new bytes, and the next append fails again.
    log.recover().expect("recover in place");
    assert!(!log.is_poisoned());
    assert!(log.append(&big_event(acked)).is_err());
    assert!(log.is_poisoned());
    let acked_bytes: u64 = (0..acked).map(|n| line_len(&big_event(n), n)).sum();
    assert_eq!(
        log.active_len(),
        acked_bytes,
        "failed appends acknowledge nothing"
    );
    println!("acked={acked}");
}

/// A write that fails half way poisons the log; a reopen (without the
/// limit) cuts the partial line and finds exactly the acknowledged events.
#[test]
fn failed_write_poisons_the_log_and_reopen_recovers() {
    let Some(_serial) = parent_test() else {
        return;
    };
    let dir = test_dir();
    let stdout = run_limited_child("child_appends_until_the_disk_refuses", dir.path(), 8);
    let acked = reported(&stdout, "acked");
    assert!(acked > 0, "some appends fit under the limit");

    let mut log = EventLog::open(dir.path()).expect("reopen");
    let ns: Vec<u64> = all_events(&log)
        .iter()
        .map(|e| e.data["n"].as_u64().expect("numbered"))
        .collect();
    assert_eq!(ns, (0..acked).collect::<Vec<_>>());
    assert!(
        !dir.path().join("app.jsonl.torn").exists(),
        "the failed write was cut back off the log, leaving no torn line"
    );
    log.append(&numbered(acked)).expect("append after recovery");
    assert_eq!(all_events(&log).len() as u64, acked + 1);
}

/// A reducer whose state grows 20 times faster than the log, so that its
/// snapshot hits the file size limit long before the log does.
fn amplify(mut pads: Vec<String>, event: &Event) -> Vec<String> {
    let pad = event.data["pad"].as_str().unwrap_or_default();
    pads.extend(std::iter::repeat_n(pad.to_owned(), 20));
    pads
}

/// Child side: a snapshot save that fails is an error for that refresh
/// only; the log stays writable and the old snapshot intact.
#[test]
fn child_snapshot_save_fails() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let dir = Path::new(&dir);
    let mut log = EventLog::builder(dir)
        .view::<Vec<String>>("pads", amplify)
        .open()
        .expect("open");
    log.refresh_all().expect("an empty state fits");
    let snapshot = dir.join("views/pads.snapshot.json");
    let before = std::fs::read(&snapshot).expect("snapshot saved");

    log.append(&big_event(0)).expect("the log line fits");
    log.refresh_all()
        .expect("one event is folded, its snapshot saved later");
    let error = log.save_views().expect_err("the snapshot does not fit");
    assert!(
        matches!(&error, Error::Io { path: Some(p), .. } if p.ends_with("pads.snapshot.json.tmp")),
        "{error:?}"
    );
    assert_eq!(std::fs::read(&snapshot).expect("still there"), before);
    assert!(!dir.join("views/pads.snapshot.json.tmp").exists());
    log.append(&big_event(1))
        .expect("the log is not poisoned by a cache");
    println!("acked=2");
}

/// After a failed snapshot save, a reopen without the limit rebuilds the
/// view from the log: nothing was lost.
#[test]
fn failed_snapshot_save_loses_nothing() {
    let Some(_serial) = parent_test() else {
        return;
    };
    let dir = test_dir();
    let stdout = run_limited_child("child_snapshot_save_fails", dir.path(), 32);
    assert_eq!(reported(&stdout, "acked"), 2);
    let mut log = EventLog::builder(dir.path())
        .view::<Vec<String>>("pads", amplify)
        .open()
        .expect("reopen");
    log.refresh_all().expect("refresh");
    assert_eq!(log.view::<Vec<String>>("pads").expect("view").len(), 40);
}

// ------------------------------------------------ a fault at every step
//
// One child test, `child_fault_case`, runs the case named by FAULT_CASE
// under the parent's file-size limit and prints what it acknowledged; the
// parent then reopens without the limit and checks the recovery.

/// Set in the child's environment: which fault case to run.
const FAULT_CASE: &str = "EVENTFOLD_FAULT_CASE";

/// Runs fault case `case` in a child limited to `blocks` 512-byte blocks.
fn run_fault(case: &str, dir: &Path, blocks: u32) -> String {
    run_limited_child_with("child_fault_case", dir, blocks, &[(FAULT_CASE, case)])
}

/// `numbered(n)` with a pad of `len` bytes.
fn padded(n: u64, len: usize) -> Event {
    let mut event = numbered(n);
    event.data["pad"] = json!("y".repeat(len));
    event
}

/// An event of about 540 bytes that zstd compresses only to about 3/4.
fn noisy_event(n: u64) -> Event {
    let mut event = numbered(n);
    event.data["pad"] = json!(random_text(n, 480));
    event
}

/// Length of `event`'s line stored as event `seq` of the history, newline
/// included.
fn line_len(event: &Event, seq: u64) -> u64 {
    stored_line(event, seq).len() as u64 + 1
}

/// `error` is an I/O error on a file named `file`, and says so.
fn assert_io_on(error: &Error, file: &str) {
    assert!(
        matches!(error, Error::Io { path: Some(p), .. } if p.ends_with(file)),
        "expected an I/O error on {file}, got {error:?}"
    );
    assert!(error.to_string().contains(file), "{error}");
}

/// Every write of `log` is refused with `Error::Poisoned` naming `file`,
/// while refreshing its views still works.
fn assert_poisoned(log: &mut EventLog, file: &str) {
    assert!(log.is_poisoned());
    let refused = [
        log.append(&numbered(999_999)).map(drop),
        log.append_batch(&[numbered(999_999)]).map(drop),
        log.save_views(),
        log.rotate(),
    ];
    for result in refused {
        assert!(
            matches!(&result, Err(Error::Poisoned { path }) if path.ends_with(file)),
            "expected Error::Poisoned on {file}, got {result:?}"
        );
    }
    log.refresh_all()
        .expect("a poisoned log still refreshes its views");
}

/// The sequence numbers of every event of `log`.
fn history(log: &EventLog) -> Vec<u64> {
    numbers(&all_events(log))
}

/// Lines of the archive (decompressed frame by frame with the zstd crate)
/// followed by those of `app.jsonl`, each parsed: the history as the files
/// hold it, read without eventfold.
fn history_in_files(dir: &Path) -> Vec<u64> {
    let mut bytes: Vec<u8> = archive_frames(&dir.join("archive.jsonl.zst")).concat();
    bytes.extend(fs::read(dir.join("app.jsonl")).expect("read app.jsonl"));
    let events: Vec<Event> = bytes
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("a valid event line"))
        .collect();
    numbers(&events)
}

/// Child side of every fault case.
#[test]
fn child_fault_case() {
    let (Some(dir), Ok(case)) = (std::env::var_os(CHILD_DIR), std::env::var(FAULT_CASE)) else {
        return; // only meaningful as a child of the fault tests below
    };
    let dir = Path::new(&dir);
    match case.as_str() {
        "append_at_newline" => child_append_at_newline(dir),
        "batch" => child_batch(dir),
        "refresh_snapshot" => child_refresh_snapshot(dir),
        "rotate_snapshot" => child_rotate_snapshot(dir),
        "rotate_intent" => child_rotate_intent(dir),
        "rotate_archive" => child_rotate_archive(dir),
        "rotate_shift" => child_rotate_shift(dir),
        "open_refused" => child_open_refused(dir),
        "group" => child_group(dir),
        other => panic!("unknown fault case {other}"),
    }
}

// (g) A group commit whose write fails.

/// Eight threads append 1 KiB events through one `SharedLog` until the
/// limit refuses a group's write; prints `@ack N` for every acknowledged
/// event and `failed_io=K` for the threads whose last call failed with the
/// write's own error (the callers of the failed group; the others were
/// refused by the poisoned log).
fn child_group(dir: &Path) {
    let shared = EventLog::open(dir).expect("open").into_shared();
    let start = std::sync::Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8_u64)
        .map(|t| {
            let shared = shared.clone();
            let start = std::sync::Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut acked = Vec::new();
                for i in 0.. {
                    let n = t * 10_000 + i;
                    match shared.append(&big_event(n)) {
                        Ok(_) => acked.push(n),
                        Err(e) => return (acked, e),
                    }
                    assert!(i < 1000, "the file size limit never took effect");
                }
                unreachable!()
            })
        })
        .collect();
    // The harness prints "test child_fault_case ... " without a newline.
    println!();
    let mut failed_io = 0;
    for thread in threads {
        let (acked, error) = thread.join().expect("thread");
        for n in acked {
            println!("@ack {n}");
        }
        match &error {
            Error::Io { path: Some(p), .. } if p.ends_with("app.jsonl") => failed_io += 1,
            Error::Poisoned { path } if path.ends_with("app.jsonl") => {}
            other => panic!("unexpected error {other:?}"),
        }
    }
    assert!(shared.with_log(|log| log.is_poisoned()));
    println!("failed_io={failed_io}");
}

/// The group whose write failed: every one of its callers gets the error,
/// and after a reopen the history is exactly the acknowledged events.
#[test]
fn a_failed_group_write_fails_every_caller_and_acknowledges_nothing() {
    let Some(_serial) = parent_test() else {
        return;
    };
    let dir = test_dir();
    let stdout = run_fault("group", dir.path(), 64);
    let acked: std::collections::BTreeSet<u64> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("@ack "))
        .map(|n| n.parse().expect("a number"))
        .collect();
    let failed = reported(&stdout, "failed_io");
    println!("the failed group held {failed} appends");
    assert!(
        failed >= 2,
        "the failed group held {failed} appends: expected several callers to share it"
    );
    let log = EventLog::open(dir.path()).expect("reopen without the limit");
    let history: std::collections::BTreeSet<u64> = all_events(&log)
        .iter()
        .map(|e| e.data["n"].as_u64().expect("n"))
        .collect();
    assert_eq!(all_events(&log).len(), history.len(), "no event twice");
    assert_eq!(
        history, acked,
        "the log holds exactly the acknowledged events ({failed} callers of the failed group)"
    );
}

// (a) An append whose JSON fits under the limit but whose newline does not.

/// Appends events to the fresh log in `dir` until it is exactly `size`
/// bytes long (`size` must leave room for at least one small event).
fn fill_log_to(dir: &Path, size: u64) -> u64 {
    let mut log = EventLog::open(dir).expect("open");
    let mut n = 0;
    while size - log.active_len() > 1100 + line_len(&padded(n + 1, 0), n + 1) {
        log.append(&big_event(n)).expect("append");
        n += 1;
    }
    let room = size - log.active_len();
    let pad = room - line_len(&padded(n, 0), n);
    log.append(&padded(n, pad as usize)).expect("append");
    assert_eq!(log.active_len(), size);
    n + 1
}

fn child_append_at_newline(dir: &Path) {
    let mut log = EventLog::open(dir).expect("open");
    let acked = all_events(&log).len() as u64;
    let error = log
        .append(&big_event(acked))
        .expect_err("the newline does not fit under the limit");
    assert_io_on(&error, "app.jsonl");
    assert_poisoned(&mut log, "app.jsonl");
    println!("acked={acked} file={}", file_size(&dir.join("app.jsonl")));
}

/// Runs the newline case: returns the acknowledged count and the history
/// after a reopen without the limit.
fn append_at_newline_case() -> (u64, Vec<u64>) {
    let dir = test_dir();
    let limit = 8 * 512;
    // The child's event and its seq, both under 10.
    let json = line_len(&big_event(9), 9) - 1;
    let prefilled = fill_log_to(dir.path(), limit - json);
    let stdout = run_fault("append_at_newline", dir.path(), 8);
    let acked = reported(&stdout, "acked");
    assert_eq!(acked, prefilled);
    assert_eq!(
        reported(&stdout, "file"),
        limit - json,
        "the JSON the failed append wrote (all but its newline) was cut back off"
    );
    let log = EventLog::open(dir.path()).expect("reopen");
    (acked, history(&log))
}

/// A failed append never costs an acknowledged event, and adds at most
/// itself.
#[test]
fn failed_append_at_the_newline_loses_nothing() {
    let Some(_serial) = parent_test() else {
        return;
    };
    let (acked, history) = append_at_newline_case();
    assert!(history.len() as u64 >= acked, "acknowledged events lost");
    assert_eq!(history[..acked as usize], (0..acked).collect::<Vec<_>>());
    assert!(history.len() as u64 <= acked + 1, "{history:?}");
}

/// The caller was told the append failed, so after a reopen the event must
/// not be there: a caller that retries it would store it twice.
#[test]
fn failed_append_at_the_newline_is_not_in_the_log_after_reopen() {
    let Some(_serial) = parent_test() else {
        return;
    };
    let (acked, history) = append_at_newline_case();
    assert_eq!(
        history,
        (0..acked).collect::<Vec<_>>(),
        "append returned an error, so after reopen its event must not be in the log"
    );
}

// (b) append_batch failing in the middle of the batch.

fn child_batch(dir: &Path) {
    let mut log = EventLog::open(dir).expect("open");
    log.append(&big_event(0)).expect("fits");
    log.append(&big_event(1)).expect("fits");
    let batch: Vec<Event> = (2..6).map(big_event).collect();
    let error = log
        .append_batch(&batch)
        .expect_err("the batch crosses the limit in its second event");
    assert_io_on(&error, "app.jsonl");
    assert_poisoned(&mut log, "app.jsonl");
    assert_eq!(
        log.active_len(),
        line_len(&big_event(0), 0) + line_len(&big_event(1), 1)
    );
    println!("acked=2");
}

/// Runs the batch case: the history after a reopen without the limit.
fn batch_case() -> Vec<u64> {
    let dir = test_dir();
    let stdout = run_fault("batch", dir.path(), 8);
    assert_eq!(reported(&stdout, "acked"), 2);
    let acked_bytes = line_len(&big_event(0), 0) + line_len(&big_event(1), 1);
    assert_eq!(
        file_size(&dir.path().join("app.jsonl")),
        acked_bytes,
        "the batch was cut back"
    );
    let mut log = EventLog::open(dir.path()).expect("reopen");
    let history = history(&log);
    assert_eq!(history_in_files(dir.path()), history);
    let next = history.len() as u64;
    log.append(&numbered(next))
        .expect("append after the reopen");
    history
}

/// A batch that fails half way: the acknowledged events are intact, and
/// nothing of the batch remains (it is cut back; at worst a prefix of
/// whole events could, if that cut failed too).
#[test]
fn failed_append_batch_mid_batch_loses_nothing() {
    let Some(_serial) = parent_test() else {
        return;
    };
    let history = batch_case();
    assert!(history.len() >= 2 && history.len() <= 6, "{history:?}");
    assert_eq!(history, (0..history.len() as u64).collect::<Vec<_>>());
}

/// The batch was refused as a whole, so none of it may appear later.
#[test]
fn failed_append_batch_leaves_none_of_its_events() {
    let Some(_serial) = parent_test() else {
        return;
    };
    assert_eq!(
        batch_case(),
        [0, 1],
        "append_batch returned an error, so none of its events may be in the log after reopen"
    );
}

// (c) A snapshot save that fails inside a refresh.

/// A log of two events with 100-byte pads, written without a limit.
fn two_padded_events(dir: &Path) {
    let mut log = EventLog::open(dir).expect("open");
    log.append(&padded(0, 100)).expect("append");
    log.append(&padded(1, 100)).expect("append");
}

fn pads_log(dir: &Path) -> EventLog {
    EventLog::builder(dir)
        .view::<Vec<String>>("pads", amplify)
        .open()
        .expect("open")
}

/// Runs a snapshot-save fault `case` on a log of two padded events, whose
/// child acknowledges a third; returns the directory, reopened without the
/// limit, after checking that the three events are there.
fn pads_fault(case: &str) -> (TempDir, EventLog) {
    let dir = test_dir();
    two_padded_events(dir.path());
    let stdout = run_fault(case, dir.path(), 4);
    assert_eq!(reported(&stdout, "acked"), 3);
    let log = pads_log(dir.path());
    assert_eq!(history(&log), [0, 1, 2]);
    (dir, log)
}

fn child_refresh_snapshot(dir: &Path) {
    let mut log = pads_log(dir);
    log.refresh_all()
        .expect("a snapshot that does not fit is a warning, not a failed refresh");
    assert_eq!(log.view::<Vec<String>>("pads").expect("view").len(), 40);
    let error = log
        .save_views()
        .expect_err("saving the snapshot explicitly reports the failure");
    assert_io_on(&error, "pads.snapshot.json.tmp");
    assert!(!dir.join("views/pads.snapshot.json").exists());
    assert!(!dir.join("views/pads.snapshot.json.tmp").exists());
    log.append(&numbered(2))
        .expect("a failed snapshot save does not poison the log");
    println!("acked=3");
}

#[test]
fn failed_snapshot_save_in_refresh_is_a_warning_not_a_poison() {
    let Some(_serial) = parent_test() else {
        return;
    };
    let (_dir, mut log) = pads_fault("refresh_snapshot");
    log.refresh_all().expect("refresh");
    let expected = replay(&log, amplify);
    assert_eq!(*log.view::<Vec<String>>("pads").expect("view"), expected);
}

// (d) Each step of a rotation that writes.

/// Step 1: the rotation's snapshot save fails; nothing has changed, and
/// the log is not poisoned.
fn child_rotate_snapshot(dir: &Path) {
    let mut log = pads_log(dir);
    let before = dir_contents(dir);
    let error = log.rotate().expect_err("the snapshot does not fit");
    assert_io_on(&error, "pads.snapshot.json.tmp");
    assert!(dir_contents(dir) == before, "a failed step 1 changed files");
    log.append(&numbered(2))
        .expect("a rotation that fails before the archive does not poison the log");
    println!("acked=3");
}

#[test]
fn rotation_failing_at_its_snapshot_save_changes_nothing() {
    let Some(_serial) = parent_test() else {
        return;
    };
    let (dir, mut log) = pads_fault("rotate_snapshot");
    log.rotate()
        .expect("the rotation succeeds without the limit");
    assert_eq!(history_in_files(dir.path()), [0, 1, 2]);
    assert_eq!(
        *log.view::<Vec<String>>("pads").expect("view"),
        replay(&log, amplify)
    );
}

/// Step 2: the intent record cannot be written (no byte may be written at
/// all); nothing has changed, and the log is poisoned.
fn child_rotate_intent(dir: &Path) {
    let mut log = EventLog::open(dir).expect("open writes nothing");
    let before = dir_contents(dir);
    let error = log.rotate().expect_err("the intent record does not fit");
    assert_io_on(&error, "rotation.json.tmp");
    assert!(dir_contents(dir) == before, "a failed step 2 changed files");
    assert_poisoned(&mut log, "rotation.json.tmp");
    println!("acked=3");
}

#[test]
fn rotation_failing_at_its_intent_record_changes_nothing() {
    let Some(_serial) = parent_test() else {
        return;
    };
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).expect("open");
    append_numbered(&mut log, 0..3);
    drop(log);
    let stdout = run_fault("rotate_intent", dir.path(), 0);
    assert_eq!(reported(&stdout, "acked"), 3);
    let mut log = EventLog::open(dir.path()).expect("reopen");
    assert_eq!(history(&log), [0, 1, 2]);
    log.rotate()
        .expect("the rotation succeeds without the limit");
    assert_eq!(history_in_files(dir.path()), [0, 1, 2]);
}

/// Step 3: the archive frame crosses the limit while the active log stays
/// under it (its text barely compresses): the auto-rotation of an append
/// fails half way through the frame, and is undone in place; an explicit
/// rotation then fails the same way and is left to the reopen.
fn child_rotate_archive(dir: &Path) {
    let archive = dir.join("archive.jsonl.zst");
    let mut log = EventLog::builder(dir)
        .max_log_size(6000)
        .view::<u64>("count", counter_reducer)
        .open()
        .expect("open");
    let mut acked = 0;
    let (archive_before, error) = loop {
        let before = file_size(&archive);
        match log.append(&noisy_event(acked)) {
            Ok(_) => acked += 1,
            Err(e) => break (before, e),
        }
        assert!(acked < 100, "the archive never reached the limit");
    };
    assert_io_on(&error, "archive.jsonl.zst");
    assert!(archive_before > 0, "the first rotation fitted");
    // The failed auto-rotation was undone in place: the append failed,
    // the log did not.
    assert!(!log.is_poisoned());
    assert!(!dir.join("rotation.json").exists());
    assert!(!dir.join("app.jsonl.tmp").exists());
    assert_eq!(
        file_size(&archive),
        archive_before,
        "the partial frame was cut"
    );
    // An explicit rotation fails the same way and is left for the reopen.
    let error = log.rotate().expect_err("the frame still does not fit");
    assert_io_on(&error, "archive.jsonl.zst");
    assert!(
        dir.join("rotation.json").exists(),
        "the intent record is there"
    );
    assert!(
        file_size(&archive) > archive_before,
        "a partial frame was written"
    );
    assert!(
        !dir.join("app.jsonl.tmp").exists(),
        "the empty file prepared for step 5 was removed"
    );
    assert!(log.active_len() < 16 * 512);
    assert_poisoned(&mut log, "archive.jsonl.zst");
    println!("acked={acked} archive_before={archive_before}");
}

#[test]
fn rotation_failing_in_its_archive_frame_rolls_back() {
    let Some(_serial) = parent_test() else {
        return;
    };
    let dir = test_dir();
    let stdout = run_fault("rotate_archive", dir.path(), 16);
    let acked = reported(&stdout, "acked");
    let archive_before = reported(&stdout, "archive_before");
    let archive = dir.path().join("archive.jsonl.zst");
    let bytes = fs::read(&archive).expect("read archive");
    assert!(
        zstd::decode_all(&bytes[..]).is_err(),
        "the partial frame does not decompress"
    );
    assert!(
        zstd::decode_all(&bytes[..archive_before as usize]).is_ok(),
        "the frames before it do"
    );

    let mut log = EventLog::builder(dir.path())
        .view::<u64>("count", counter_reducer)
        .open()
        .expect("reopen");
    assert!(!dir.path().join("rotation.json").exists());
    assert_eq!(
        file_size(&archive),
        archive_before,
        "the partial frame was cut"
    );
    let expected: Vec<u64> = (0..acked).collect();
    assert_eq!(history(&log), expected);
    assert_eq!(history_in_files(dir.path()), expected);
    log.refresh_all().expect("refresh");
    assert_eq!(*log.view::<u64>("count").expect("view"), acked);
    log.append(&numbered(acked)).expect("append");
    log.rotate().expect("rotate");
    assert_eq!(
        history_in_files(dir.path()),
        (0..=acked).collect::<Vec<_>>()
    );
}

/// Step 5: moving a snapshot to offset 0 fails after the active log was
/// truncated. The snapshot is already current before the rotation (so
/// step 1 writes nothing) and larger than the limit, which the small
/// intent record and archive frame are not.
fn child_rotate_shift(dir: &Path) {
    let snapshot = dir.join("views/pads.snapshot.json");
    let before = fs::read(&snapshot).expect("a saved snapshot");
    let mut log = pads_log(dir);
    let error = log.rotate().expect_err("the moved snapshot does not fit");
    assert_io_on(&error, "pads.snapshot.json.tmp");
    assert_poisoned(&mut log, "pads.snapshot.json.tmp");
    assert!(
        dir.join("rotation.json").exists(),
        "the intent record is there"
    );
    assert_eq!(
        file_size(&dir.join("app.jsonl")),
        0,
        "the log was truncated"
    );
    assert_eq!(history_in_files(dir), [0, 1], "the frame is complete");
    assert_eq!(fs::read(&snapshot).expect("snapshot"), before);
    println!("acked=2");
}

/// Opening under the limit fails (recovery cannot write) and changes
/// nothing.
fn child_open_refused(dir: &Path) {
    let before = dir_contents(dir);
    let error = EventLog::builder(dir)
        .view::<Vec<String>>("pads", amplify)
        .open()
        .expect_err("recovery cannot write");
    assert!(
        matches!(&error, Error::Io { path: Some(p), .. } if p.starts_with(dir)),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&*dir.to_string_lossy()),
        "{error}"
    );
    let after = dir_contents(dir);
    let created: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(
        after
            .iter()
            .all(|(k, v)| before.get(k).is_none_or(|old| old == v)),
        "a refused open changed files"
    );
    println!("refused=1 created={}", created.len());
}

#[test]
fn rotation_failing_at_its_snapshot_move_rolls_forward() {
    let Some(_serial) = parent_test() else {
        return;
    };
    let dir = test_dir();
    let mut log = pads_log(dir.path());
    log.append(&padded(0, 30)).expect("append");
    log.append(&padded(1, 30)).expect("append");
    log.refresh_all().expect("refresh");
    log.save_views().expect("save");
    drop(log);
    assert!(file_size(&dir.path().join("views/pads.snapshot.json")) > 512);

    let stdout = run_fault("rotate_shift", dir.path(), 1);
    assert_eq!(reported(&stdout, "acked"), 2);
    // Still under the limit, the open cannot finish the rotation either.
    let stdout = run_fault("open_refused", dir.path(), 1);
    assert_eq!(reported(&stdout, "refused"), 1);

    let mut log = pads_log(dir.path());
    assert!(!dir.path().join("rotation.json").exists());
    let snapshot = snapshot_json(dir.path(), "pads");
    assert_eq!(snapshot["offset"], 0, "the rotation was completed");
    assert_eq!(
        snapshot["archive_len"],
        file_size(&dir.path().join("archive.jsonl.zst"))
    );
    assert_eq!(history(&log), [0, 1]);
    let expected = replay(&log, amplify);
    assert_eq!(*log.view::<Vec<String>>("pads").expect("view"), expected);
    log.refresh_all().expect("refresh");
    assert_eq!(*log.view::<Vec<String>>("pads").expect("view"), expected);
}

/// A torn tail that open cannot keep aside in `app.jsonl.torn`: the open
/// fails and the torn bytes stay where they are; without the limit the
/// next open cuts them as usual.
#[test]
fn open_that_cannot_keep_a_torn_tail_aside_fails_cleanly() {
    let Some(_serial) = parent_test() else {
        return;
    };
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).expect("open");
    append_numbered(&mut log, 0..3);
    drop(log);
    let log_path = dir.path().join("app.jsonl");
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&log_path)
        .expect("open app.jsonl");
    file.write_all(br#"{"type":"numb"#).expect("torn tail");
    drop(file);
    let torn = fs::read(&log_path).expect("read");

    let stdout = run_fault("open_refused", dir.path(), 0);
    assert_eq!(reported(&stdout, "refused"), 1);
    assert_eq!(
        fs::read(&log_path).expect("read"),
        torn,
        "the log is untouched"
    );

    let log = EventLog::open(dir.path()).expect("reopen");
    assert_eq!(history(&log), [0, 1, 2]);
    assert_eq!(
        fs::read(dir.path().join("app.jsonl.torn")).expect("torn bytes kept"),
        b"{\"type\":\"numb\n"
    );
}

// ---------------------------------------------- a small, full file system

/// A 256 KiB tmpfs mounted in a fresh temporary directory, or `None` (with
/// a message) where mounting is not allowed.
fn small_tmpfs(test: &str) -> Option<(TempDir, TestMount)> {
    let root = test_dir();
    let point = root.path().join("mnt");
    fs::create_dir(&point).expect("create mount point");
    match TestMount::tmpfs(&point, "256k") {
        Ok(mount) => Some((root, mount)),
        Err(why) => {
            println!(
                "SKIP {test}: cannot mount a small tmpfs here ({why}); needs root and mount rights"
            );
            None
        }
    }
}

/// Fills the file system of `dir` with 16 KiB ballast files (the last one
/// shorter) until it is full; returns them, first the full ones.
fn fill_disk(dir: &Path) -> Vec<std::path::PathBuf> {
    let chunk = vec![0xa5u8; 16 * 1024];
    let mut ballast = Vec::new();
    for i in 0.. {
        let path = dir.join(format!("ballast{i}"));
        let mut file = fs::File::create(&path).expect("create ballast");
        ballast.push(path);
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(ENOSPC) => break,
            Err(e) => panic!("ballast: {e}"),
        }
    }
    ballast
}

const ENOSPC: i32 = 28;

fn is_enospc(error: &Error) -> bool {
    matches!(error, Error::Io { source, .. } if source.raw_os_error() == Some(ENOSPC))
}

#[test]
fn full_disk_append_poisons_and_reopen_recovers() {
    // Serialized with the other spawning tests: mount(8) is a child too.
    let Some(_serial) = parent_test() else {
        return;
    };
    let Some((_root, mount)) = small_tmpfs("full_disk_append_poisons_and_reopen_recovers") else {
        return;
    };
    let data = mount.path().join("data");
    let mut log = EventLog::open(&data).expect("open");
    let mut acked = 0;
    while acked < 5 {
        log.append(&big_event(acked)).expect("append");
        acked += 1;
    }
    let ballast = fill_disk(mount.path());
    let error = loop {
        match log.append(&big_event(acked)) {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 300, "the disk never filled");
    };
    assert_io_on(&error, "app.jsonl");
    assert!(is_enospc(&error), "{error:?}");
    assert_poisoned(&mut log, "app.jsonl");
    let acked_len = log.active_len();
    drop(log);

    // Whether the failed append's JSON went through whole, without its
    // newline: then the reopen keeps it (see the newline case above).
    let raw = fs::read(data.join("app.jsonl")).expect("read log");
    let whole = serde_json::from_slice::<Event>(&raw[acked_len as usize..]).is_ok();
    for file in ballast {
        fs::remove_file(file).expect("remove ballast");
    }
    let mut log = EventLog::open(&data).expect("reopen");
    let expected: Vec<u64> = (0..acked + u64::from(whole)).collect();
    assert_eq!(history(&log), expected);
    log.append(&numbered(acked + 1)).expect("append again");
}

#[test]
fn full_disk_rotation_rolls_back() {
    // Serialized with the other spawning tests: mount(8) is a child too.
    let Some(_serial) = parent_test() else {
        return;
    };
    let Some((_root, mount)) = small_tmpfs("full_disk_rotation_rolls_back") else {
        return;
    };
    let data = mount.path().join("data");
    let count_log = || {
        EventLog::builder(&data)
            .view::<u64>("count", counter_reducer)
            .open()
            .expect("open")
    };
    let mut log = count_log();
    for n in 0..64 {
        log.append(&noisy_event(n)).expect("append");
    }
    log.refresh_all().expect("refresh");
    log.save_views().expect("save");
    let ballast = fill_disk(mount.path());
    // Room for the intent record, not for the archive frame.
    fs::remove_file(&ballast[0]).expect("free 16 KiB");
    let error = log.rotate().expect_err("the archive frame does not fit");
    assert_io_on(&error, "archive.jsonl.zst");
    assert!(is_enospc(&error), "{error:?}");
    assert!(data.join("rotation.json").exists());
    assert_poisoned(&mut log, "archive.jsonl.zst");
    assert_eq!(*log.view::<u64>("count").expect("view"), 64);

    for file in &ballast[1..] {
        fs::remove_file(file).expect("remove ballast");
    }
    // Recovered in place, without reopening.
    log.recover().expect("recover once there is room");
    assert!(!log.is_poisoned());
    assert!(!data.join("rotation.json").exists());
    assert!(
        !data.join("archive.jsonl.zst").exists(),
        "the partial archive was removed"
    );
    assert_eq!(history(&log), (0..64).collect::<Vec<_>>());
    log.refresh_all().expect("refresh");
    assert_eq!(*log.view::<u64>("count").expect("view"), 64);
    log.rotate().expect("rotate with room");
    assert_eq!(history_in_files(&data), (0..64).collect::<Vec<_>>());
}

#[test]
fn full_disk_snapshot_save_is_an_error_not_a_poison() {
    // Serialized with the other spawning tests: mount(8) is a child too.
    let Some(_serial) = parent_test() else {
        return;
    };
    let Some((_root, mount)) = small_tmpfs("full_disk_snapshot_save_is_an_error_not_a_poison")
    else {
        return;
    };
    let data = mount.path().join("data");
    let seq_log = || {
        EventLog::builder(&data)
            .view::<Vec<u64>>("seq", seq_reducer)
            .open()
            .expect("open")
    };
    let mut log = seq_log();
    log.refresh_all().expect("refresh");
    append_numbered(&mut log, 0..300);
    log.refresh_all()
        .expect("refresh: less than 64 KiB, no save due");
    let snapshot = snapshot_file(&data, "seq");
    let before = fs::read(&snapshot).expect("snapshot");
    let ballast = fill_disk(mount.path());

    let error = log.save_views().expect_err("the disk is full");
    assert_io_on(&error, "seq.snapshot.json.tmp");
    assert!(is_enospc(&error), "{error:?}");
    assert_eq!(fs::read(&snapshot).expect("snapshot"), before);
    assert!(!data.join("views/seq.snapshot.json.tmp").exists());
    log.refresh_all()
        .expect("a failed snapshot save does not poison the log");

    for file in ballast {
        fs::remove_file(file).expect("remove ballast");
    }
    log.save_views().expect("save with room");
    drop(log);
    let log = seq_log();
    let expected: Vec<u64> = (0..300).collect();
    assert_eq!(*log.view::<Vec<u64>>("seq").expect("view"), expected);
}

/// Reliability rule 7: an automatic rotation that fails on a full disk,
/// at open or before an append, is undone in place: `open` returns a log
/// that is not poisoned, reads work, the append that needed the rotation
/// fails without writing its event, and once there is room the next
/// append rotates and succeeds, without a reopen. (Before, open returned
/// an already poisoned log, and every later refresh and append failed.)
#[test]
fn full_disk_auto_rotation_is_undone_in_place() {
    // Serialized with the other spawning tests: mount(8) is a child too.
    let Some(_serial) = parent_test() else {
        return;
    };
    let Some((_root, mount)) = small_tmpfs("full_disk_auto_rotation_is_undone_in_place") else {
        return;
    };
    let data = mount.path().join("data");
    let count_log = |max: u64| {
        EventLog::builder(&data)
            .max_log_size(max)
            .view::<u64>("count", counter_reducer)
            .open()
    };
    {
        let mut log = count_log(0).expect("open");
        for n in 0..64 {
            log.append(&noisy_event(n)).expect("append");
        }
        log.refresh_all().expect("refresh");
    }
    let ballast = fill_disk(mount.path());
    fs::remove_file(&ballast[0]).expect("free 16 KiB");

    let mut log = count_log(1_000).expect("opens although its rotation fails");
    assert!(!log.is_poisoned(), "the failed rotation was undone");
    assert!(!data.join("rotation.json").exists());
    assert!(!data.join("archive.jsonl.zst").exists());
    log.refresh_all().expect("refresh");
    assert_eq!(*log.view::<u64>("count").expect("view"), 64);

    let len = log.active_len();
    let error = log
        .append(&noisy_event(64))
        .expect_err("the append's rotation does not fit");
    assert!(is_enospc(&error), "{error:?}");
    assert!(!log.is_poisoned(), "undone in place again");
    assert_eq!(log.active_len(), len, "the event was not written");
    assert_eq!(history(&log), (0..64).collect::<Vec<_>>());

    for file in &ballast[1..] {
        fs::remove_file(file).expect("remove ballast");
    }
    log.append(&noisy_event(64))
        .expect("with room, the rotation and the append succeed");
    assert!(data.join("archive.jsonl.zst").exists());
    assert_eq!(history(&log), (0..65).collect::<Vec<_>>());
    log.refresh_all().expect("refresh");
    assert_eq!(*log.view::<u64>("count").expect("view"), 65);
    drop(log);
    let log = count_log(1_000).expect("reopen");
    assert_eq!(history_in_files(&data), (0..65).collect::<Vec<_>>());
    assert_eq!(history(&log), (0..65).collect::<Vec<_>>());
}

/// `chattr` on `path`: `+i` makes the file immutable, `-i` writable again.
/// `false` where the file system or the machine does not allow it.
fn chattr(flag: &str, path: &Path) -> bool {
    std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Reliability rule 9, as the web app met it: the log's file refuses
/// writes for a while (made immutable, as a failing disk would). The
/// failed append poisons the log, but views and `read_full` keep serving
/// what was acknowledged; `recover` fails while the fault lasts and
/// succeeds once it is gone, without dropping the handle; nothing
/// acknowledged is lost and the failed event is not in the log.
#[test]
fn a_passing_write_fault_is_recovered_in_place() {
    let Some(_serial) = parent_test() else {
        return;
    };
    let dir = test_dir();
    let log_path = dir.path().join("app.jsonl");
    let mut log = EventLog::builder(dir.path())
        .view::<u64>("count", counter_reducer)
        .open()
        .expect("open");
    append_numbered(&mut log, 0..5);
    log.refresh_all().expect("refresh");
    if !chattr("+i", &log_path) {
        println!("SKIP a_passing_write_fault_is_recovered_in_place: chattr +i is not allowed here");
        return;
    }
    let failed = log.append(&numbered(5));
    let still_immutable = log.recover();
    let restored = chattr("-i", &log_path);
    assert!(restored, "chattr -i");
    assert!(failed.is_err(), "an immutable file refuses the append");
    assert!(
        still_immutable.is_err(),
        "recover fails while the fault lasts"
    );
    assert!(log.is_poisoned());

    assert_poisoned(&mut log, "app.jsonl");
    assert_eq!(*log.view::<u64>("count").expect("view"), 5);
    assert_eq!(history(&log), (0..5).collect::<Vec<_>>());

    log.recover().expect("recover once the fault is gone");
    assert!(!log.is_poisoned());
    log.append(&numbered(5)).expect("append after recovering");
    log.refresh_all().expect("refresh");
    assert_eq!(*log.view::<u64>("count").expect("view"), 6);
    log.save_views().expect("save");
    drop(log);
    let log = EventLog::open(dir.path()).expect("reopen");
    assert_eq!(history(&log), (0..6).collect::<Vec<_>>());
}
