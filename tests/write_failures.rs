//! Real write failures: the test re-runs itself as a child process whose
//! file-size limit (`ulimit -f`) makes writes to the log fail with `EFBIG`,
//! with `SIGXFSZ` ignored so that the process sees the error.

#![cfg(unix)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{all_events, numbered, test_dir};
use eventfold::{Error, Event, EventLog};
use serde_json::json;

/// Set in the child's environment to the data directory it must use.
const CHILD_DIR: &str = "EVENTFOLD_WRITE_FAILURE_DIR";

/// An event of about 1 KiB, so that a few fill the allowed file size.
fn big_event(n: u64) -> Event {
    let mut event = numbered(n);
    event.data["pad"] = json!("x".repeat(1000));
    event
}

/// Runs this test binary's `name` test in a child process with a file size
/// limit of `blocks` 512-byte blocks; returns its standard output.
fn run_limited_child(name: &str, dir: &Path, blocks: u32) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let script = format!(
        "trap '' XFSZ; ulimit -f {blocks} && exec \"$0\" --exact {name} --nocapture --test-threads=1"
    );
    let output = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(exe)
        .env(CHILD_DIR, dir)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "child failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
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
    for refused in [Err(again), log.refresh_all(), log.rotate()] {
        assert!(
            matches!(&refused, Err(Error::Poisoned { path }) if path.ends_with("app.jsonl")),
            "{refused:?}"
        );
    }
    let line = big_event(0).to_json_line().expect("serializes").len() as u64 + 1;
    assert_eq!(
        log.active_len(),
        acked * line,
        "failed appends acknowledge nothing"
    );
    println!("acked={acked}");
}

/// A write that fails half way poisons the log; a reopen (without the
/// limit) cuts the partial line and finds exactly the acknowledged events.
#[test]
fn failed_write_poisons_the_log_and_reopen_recovers() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return;
    }
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
        dir.path().join("app.jsonl.torn").exists(),
        "the partial line was kept aside"
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
    if std::env::var_os(CHILD_DIR).is_some() {
        return;
    }
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
