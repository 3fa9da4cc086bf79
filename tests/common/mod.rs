//! Helpers shared by the integration tests: fixtures, temporary
//! directories, reducers and file inspection.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use eventfold::{Event, EventLog, EventLogBuilder};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tempfile::TempDir;

/// A fresh temporary directory, removed when dropped.
pub fn test_dir() -> TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

/// An event with minimal data and a fixed timestamp, so that equal calls
/// give byte-identical lines.
pub fn dummy_event(event_type: &str) -> Event {
    Event::with_ts(event_type, json!({"n": 1}), 1_700_000_000)
}

/// An event carrying a sequence number, to check order and completeness.
pub fn numbered(n: u64) -> Event {
    Event::with_ts("numbered", json!({ "n": n }), 1_700_000_000 + n)
}

/// The simplest reducer: counts events.
pub fn counter_reducer(state: u64, _event: &Event) -> u64 {
    state + 1
}

/// Sums the `n` field of events: depends on the events' content.
pub fn sum_reducer(state: u64, event: &Event) -> u64 {
    state + event.data["n"].as_u64().unwrap_or(0)
}

/// Collects the `n` field of every event, in order: shows the exact
/// sequence a view has consumed.
pub fn seq_reducer(mut state: Vec<u64>, event: &Event) -> Vec<u64> {
    state.push(event.data["n"].as_u64().unwrap_or(u64::MAX));
    state
}

/// State of the todo example.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodoState {
    pub items: Vec<TodoItem>,
    pub next_id: u64,
}

/// One todo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodoItem {
    pub id: u64,
    pub text: String,
    pub done: bool,
}

/// The todo reducer of the design's quick example.
pub fn todo_reducer(mut state: TodoState, event: &Event) -> TodoState {
    match event.event_type.as_str() {
        "todo_added" => {
            let text = event.data["text"].as_str().unwrap_or_default().to_owned();
            state.items.push(TodoItem {
                id: state.next_id,
                text,
                done: false,
            });
            state.next_id += 1;
        }
        "todo_completed" => {
            let id = event.data["id"].as_u64();
            if let Some(item) = state.items.iter_mut().find(|i| Some(i.id) == id) {
                item.done = true;
            }
        }
        "todo_deleted" => {
            let id = event.data["id"].as_u64();
            state.items.retain(|i| Some(i.id) != id);
        }
        _ => {}
    }
    state
}

/// Appends `n` dummy events; returns their offsets.
pub fn append_n(log: &mut EventLog, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| log.append(&dummy_event("dummy")).expect("append"))
        .collect()
}

/// Appends events numbered `range`; returns their offsets.
pub fn append_numbered(log: &mut EventLog, range: std::ops::Range<u64>) -> Vec<u64> {
    range
        .map(|n| log.append(&numbered(n)).expect("append"))
        .collect()
}

/// Checks that events have the expected types, in order.
pub fn assert_events_eq(events: Vec<Event>, expected_types: Vec<&str>) {
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, expected_types);
}

/// Every event of the log, archive first, panicking on error.
pub fn all_events(log: &EventLog) -> Vec<Event> {
    log.read_full()
        .expect("read_full")
        .map(|item| item.expect("valid event").0)
        .collect()
}

/// The events of the active log from `offset`, panicking on error.
pub fn active_events(log: &EventLog, offset: u64) -> Vec<Event> {
    log.read_from(offset)
        .expect("read_from")
        .map(|item| item.expect("valid event").0)
        .collect()
}

/// A builder with the standard test views registered: "count"
/// ([`counter_reducer`], `u64`), "seq" ([`seq_reducer`], `Vec<u64>`) and
/// "todos" ([`todo_reducer`], [`TodoState`]).
pub fn builder_with_views(dir: &Path) -> EventLogBuilder {
    EventLog::builder(dir)
        .view::<u64>("count", counter_reducer)
        .view::<Vec<u64>>("seq", seq_reducer)
        .view::<TodoState>("todos", todo_reducer)
}

/// Opens `dir` with the standard test views.
pub fn open_with_views(dir: &Path) -> EventLog {
    builder_with_views(dir).open().expect("open")
}

/// Path of a file in the data directory.
pub fn data_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Path of a view's snapshot file.
pub fn snapshot_file(dir: &Path, view: &str) -> PathBuf {
    dir.join("views").join(format!("{view}.snapshot.json"))
}

/// Size of a file in bytes (0 if missing).
pub fn file_size(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A snapshot file's JSON.
pub fn snapshot_json(dir: &Path, view: &str) -> serde_json::Value {
    let bytes = fs::read(snapshot_file(dir, view)).expect("read snapshot");
    serde_json::from_slice(&bytes).expect("snapshot is JSON")
}

/// Modification time of a file, to tell whether it was rewritten.
pub fn mtime(path: &Path) -> std::time::SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

/// Decompresses the archive with the zstd crate alone, independently of
/// eventfold's reader, and returns its lines.
pub fn archive_lines(dir: &Path) -> Vec<String> {
    let path = dir.join("archive.jsonl.zst");
    let bytes = fs::read(&path).expect("read archive");
    let text = zstd::decode_all(&bytes[..]).expect("archive decompresses");
    String::from_utf8(text)
        .expect("archive is UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Rewrites a view's snapshot file by hand (as a user or a bug might),
/// applying `edit` to its JSON.
pub fn edit_snapshot(dir: &Path, view: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut json = snapshot_json(dir, view);
    edit(&mut json);
    fs::write(
        snapshot_file(dir, view),
        serde_json::to_vec(&json).expect("JSON"),
    )
    .expect("write snapshot");
}

/// The state a fresh full replay gives: every event of the log (archive,
/// then active) folded through `reducer` from the default state.
pub fn replay<S: Default>(log: &EventLog, reducer: fn(S, &Event) -> S) -> S {
    all_events(log).iter().fold(S::default(), reducer)
}
