//! Views: lifecycle (refresh, state, rebuild), several views over one log,
//! snapshot correctness, and the errors of naming and looking up views.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use eventfold::{Error, Event, EventLog, EventLogBuilder, View};
use serde_json::json;

/// The todo events of the design's example: add, add, complete, delete, add.
fn todo_events() -> Vec<Event> {
    let event = |t: &str, data| Event::with_ts(t, data, 1_700_000_000);
    vec![
        event("todo_added", json!({"text": "milk"})),
        event("todo_added", json!({"text": "eggs"})),
        event("todo_completed", json!({"id": 0})),
        event("todo_deleted", json!({"id": 1})),
        event("todo_added", json!({"text": "bread"})),
    ]
}

/// The state `todo_events` leads to.
fn expected_todos() -> TodoState {
    let item = |id, text: &str, done| TodoItem {
        id,
        text: text.to_owned(),
        done,
    };
    TodoState {
        items: vec![item(0, "milk", true), item(2, "bread", false)],
        next_id: 3,
    }
}

fn append_todos(log: &mut EventLog) {
    for event in todo_events() {
        log.append(&event).unwrap();
    }
}

fn count(log: &EventLog) -> u64 {
    *log.view::<u64>("count").unwrap()
}

fn seq(log: &EventLog) -> Vec<u64> {
    log.view::<Vec<u64>>("seq").unwrap().clone()
}

fn snapshot_bytes(dir: &Path, view: &str) -> Vec<u8> {
    fs::read(snapshot_file(dir, view)).unwrap()
}

/// The offset and hash recorded in a view's snapshot file.
fn position(dir: &Path, view: &str) -> (u64, String) {
    let json = snapshot_json(dir, view);
    (
        json["offset"].as_u64().unwrap(),
        json["hash"].as_str().unwrap().to_owned(),
    )
}

/// Where a snapshot that has consumed the whole active log must point:
/// its end, and the hash of its last line.
fn end_position(log: &EventLog) -> (u64, String) {
    let last = log.read_from(0).unwrap().last().map(|item| item.unwrap().2);
    (log.active_len(), last.unwrap_or_default())
}

/// Appends `events`, refreshes every view and closes the log.
fn populate(dir: &Path, events: std::ops::Range<u64>) {
    let mut log = open_with_views(dir);
    append_numbered(&mut log, events);
    log.refresh_all().unwrap();
}

// ---------------------------------------------------------------------------
// View lifecycle
// ---------------------------------------------------------------------------

/// A fresh view over an empty log has the default state, and its first
/// refresh records that in a snapshot at offset 0, holding no events
/// (`"seq": 0`, the sequence number of the next event to fold).
#[test]
fn fresh_view_on_empty_log_has_default_state() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    log.refresh_all().unwrap();
    assert_eq!(count(&log), 0);
    assert_eq!(seq(&log), Vec::<u64>::new());
    assert_eq!(
        log.view::<TodoState>("todos").unwrap(),
        &TodoState::default()
    );
    let mut snapshot = snapshot_json(dir.path(), "count");
    let checksum = snapshot.as_object_mut().unwrap().remove("checksum");
    assert!(checksum.is_some_and(|c| c.as_str().is_some_and(|c| c.len() == 16)));
    assert_eq!(
        snapshot,
        json!({"state": 0, "offset": 0, "hash": "", "archive_len": 0, "seq": 0})
    );
}

/// A fresh view over a log written earlier replays every event.
#[test]
fn fresh_view_on_populated_log_replays_it() {
    let dir = test_dir();
    append_todos(&mut EventLog::open(dir.path()).unwrap());
    let mut log = open_with_views(dir.path());
    log.refresh_all().unwrap();
    assert_eq!(log.view::<TodoState>("todos").unwrap(), &expected_todos());
    assert_eq!(count(&log), 5);
    assert_eq!(position(dir.path(), "todos"), end_position(&log));
}

/// With nothing new, refresh writes nothing: a hand-edited snapshot file
/// (same offset and hash, other state) is left exactly as it is.
#[test]
fn refresh_without_new_events_does_not_rewrite_snapshot() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    append_numbered(&mut log, 0..3);
    log.refresh_all().unwrap();
    let saved = snapshot_bytes(dir.path(), "seq");
    log.refresh_all().unwrap();
    assert_eq!(snapshot_bytes(dir.path(), "seq"), saved);

    edit_snapshot(dir.path(), "seq", |s| s["state"] = json!([7, 7, 7]));
    let edited = snapshot_bytes(dir.path(), "seq");
    log.refresh_all().unwrap();
    log.refresh_view("seq").unwrap();
    assert_eq!(snapshot_bytes(dir.path(), "seq"), edited);
    assert_eq!(seq(&log), [0, 1, 2], "the in-memory state is not reloaded");
}

/// New events are folded in by the next refresh; a few small events do not
/// rewrite the snapshot yet, `save_views` does. Appending alone never
/// touches the snapshot.
#[test]
fn refresh_with_new_events_folds_and_saves_snapshot() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    append_numbered(&mut log, 0..3);
    log.refresh_all().unwrap();
    let before = position(dir.path(), "seq");
    append_numbered(&mut log, 3..5);
    assert_eq!(position(dir.path(), "seq"), before);

    log.refresh_all().unwrap();
    assert_eq!(seq(&log), [0, 1, 2, 3, 4]);
    assert_eq!(position(dir.path(), "seq"), before, "saved later");
    log.save_views().unwrap();
    assert_eq!(position(dir.path(), "seq"), end_position(&log));
    assert_eq!(
        snapshot_json(dir.path(), "seq")["state"],
        json!([0, 1, 2, 3, 4])
    );
}

/// After reopening, a view starts from its snapshot and folds only the
/// events after it: a hand-edited count of 1000 becomes 1001.
#[test]
fn reopened_view_continues_from_snapshot() {
    let dir = test_dir();
    populate(dir.path(), 0..3);
    hand_write_snapshot(dir.path(), "count", |s| s["state"] = json!(1000));
    let mut log = open_with_views(dir.path());
    assert_eq!(count(&log), 1000, "the snapshot is loaded at open");
    append_n(&mut log, 1);
    log.refresh_all().unwrap();
    assert_eq!(count(&log), 1001);
}

/// `view()` and `View::state()` return the in-memory state: no refresh,
/// and no file is needed.
#[test]
fn state_is_in_memory() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    append_n(&mut log, 2);
    log.refresh_all().unwrap();
    append_n(&mut log, 3);
    fs::remove_dir_all(dir.path().join("views")).unwrap();
    assert_eq!(count(&log), 2);

    let mut view = View::new("solo", counter_reducer, dir.path().join("solo")).unwrap();
    assert_eq!(*view.state(), 0);
    fs::create_dir(dir.path().join("solo")).unwrap();
    view.refresh(&log).unwrap();
    append_n(&mut log, 1);
    assert_eq!(*view.state(), 5);
}

/// `rebuild_view` throws the snapshot away and replays: it gives what a
/// brand-new view gives, and saves that.
#[test]
fn rebuild_replays_like_a_fresh_view() {
    let dir = test_dir();
    {
        let mut log = open_with_views(dir.path());
        append_todos(&mut log);
        log.refresh_all().unwrap();
    }
    hand_write_snapshot(dir.path(), "todos", |s| s["state"]["next_id"] = json!(99));
    let mut log = open_with_views(dir.path());
    assert_eq!(log.view::<TodoState>("todos").unwrap().next_id, 99);

    log.rebuild_view("todos").unwrap();
    let mut fresh = View::new("fresh", todo_reducer, dir.path().join("views")).unwrap();
    assert_eq!(
        log.view::<TodoState>("todos").unwrap(),
        fresh.refresh(&log).unwrap()
    );
    assert_eq!(log.view::<TodoState>("todos").unwrap(), &expected_todos());
    assert_eq!(snapshot_json(dir.path(), "todos")["state"]["next_id"], 3);
    assert_eq!(position(dir.path(), "todos"), end_position(&log));
}

/// After the reducer of a view changes, refresh keeps the old state (the
/// snapshot is still valid) and rebuild computes the new reducer's state.
#[test]
fn rebuild_applies_a_changed_reducer() {
    let dir = test_dir();
    populate(dir.path(), 1..4);
    let mut log = EventLog::builder(dir.path())
        .view::<u64>("count", sum_reducer)
        .open()
        .unwrap();
    log.refresh_all().unwrap();
    assert_eq!(count(&log), 3);
    log.rebuild_view("count").unwrap();
    assert_eq!(count(&log), 1 + 2 + 3);
    assert_eq!(snapshot_json(dir.path(), "count")["state"], 6);
}

/// Refreshing again and again with nothing new gives the same state and
/// writes nothing (no rewrite, no leftover temporary file).
#[test]
fn refresh_is_idempotent() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    append_todos(&mut log);
    log.refresh_all().unwrap();
    let state = log.view::<TodoState>("todos").unwrap().clone();
    let files: Vec<_> = ["count", "seq", "todos"]
        .map(|v| snapshot_bytes(dir.path(), v))
        .into();
    for _ in 0..3 {
        log.refresh_all().unwrap();
        log.refresh_view("todos").unwrap();
    }
    assert_eq!(log.view::<TodoState>("todos").unwrap(), &state);
    let after: Vec<_> = ["count", "seq", "todos"]
        .map(|v| snapshot_bytes(dir.path(), v))
        .into();
    assert_eq!(after, files);
    assert_eq!(fs::read_dir(dir.path().join("views")).unwrap().count(), 3);
}

// ---------------------------------------------------------------------------
// Multiple views over the same log
// ---------------------------------------------------------------------------

/// "count", "seq" and "sum" over numbered events.
fn three_views(dir: &Path) -> EventLogBuilder {
    EventLog::builder(dir)
        .view::<u64>("count", counter_reducer)
        .view::<Vec<u64>>("seq", seq_reducer)
        .view::<u64>("sum", sum_reducer)
}

fn open_three(dir: &Path) -> EventLog {
    three_views(dir).open().unwrap()
}

fn sum(log: &EventLog) -> u64 {
    *log.view::<u64>("sum").unwrap()
}

/// Different reducers over the same events give different states, each in
/// its own snapshot file.
#[test]
fn views_with_different_reducers_have_their_own_state_and_snapshot() {
    let dir = test_dir();
    let mut log = open_three(dir.path());
    append_numbered(&mut log, 1..5);
    log.refresh_all().unwrap();
    assert_eq!(
        (count(&log), seq(&log), sum(&log)),
        (4, vec![1, 2, 3, 4], 10)
    );
    for (view, state) in [
        ("count", json!(4)),
        ("seq", json!([1, 2, 3, 4])),
        ("sum", json!(10)),
    ] {
        assert_eq!(snapshot_json(dir.path(), view)["state"], state, "{view}");
    }
}

/// Losing one view's snapshot costs only that view a replay: the other
/// snapshot is neither needed nor rewritten.
#[test]
fn snapshots_are_independent() {
    let dir = test_dir();
    {
        let mut log = open_three(dir.path());
        append_numbered(&mut log, 1..5);
        log.refresh_all().unwrap();
    }
    fs::remove_file(snapshot_file(dir.path(), "seq")).unwrap();
    hand_write_snapshot(dir.path(), "sum", |s| s["state"] = json!(500));
    let sum_file = snapshot_bytes(dir.path(), "sum");

    let mut log = open_three(dir.path());
    log.refresh_all().unwrap();
    assert_eq!(seq(&log), [1, 2, 3, 4]);
    assert_eq!(sum(&log), 500);
    assert_eq!(snapshot_bytes(dir.path(), "sum"), sum_file);
}

/// `refresh_view("count")` leaves "seq" alone, in memory and on disk.
#[test]
fn refreshing_one_view_leaves_the_others() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    append_numbered(&mut log, 0..2);
    log.refresh_all().unwrap();
    let seq_file = snapshot_bytes(dir.path(), "seq");
    append_numbered(&mut log, 2..4);

    log.refresh_view("count").unwrap();
    assert_eq!(count(&log), 4);
    assert_eq!(seq(&log), [0, 1]);
    assert_eq!(snapshot_bytes(dir.path(), "seq"), seq_file);

    log.refresh_view("seq").unwrap();
    assert_eq!(seq(&log), [0, 1, 2, 3]);
}

/// Round after round of appends and refreshes, each view matches a full
/// replay with its own reducer.
#[test]
fn views_stay_correct_independently() {
    let dir = test_dir();
    let mut log = open_three(dir.path());
    for round in 0..4 {
        append_numbered(&mut log, round * 3..round * 3 + 3);
        log.refresh_all().unwrap();
        assert_eq!(count(&log), replay(&log, counter_reducer));
        assert_eq!(seq(&log), replay(&log, seq_reducer));
        assert_eq!(sum(&log), replay(&log, sum_reducer));
    }
    assert_eq!(sum(&log), (0..12).sum::<u64>());
}

/// A view registered once events exist replays the whole history, also
/// when part of it is in the archive.
#[test]
fn view_added_later_replays_full_history() {
    let dir = test_dir();
    populate(dir.path(), 1..4);
    let mut log = open_three(dir.path());
    log.refresh_all().unwrap();
    assert_eq!(sum(&log), 6);

    append_numbered(&mut log, 4..6);
    log.rotate().unwrap();
    append_numbered(&mut log, 6..8);
    drop(log);
    let mut log = three_views(dir.path())
        .view::<Vec<u64>>("late", seq_reducer)
        .open()
        .unwrap();
    log.refresh_all().unwrap();
    assert_eq!(
        log.view::<Vec<u64>>("late").unwrap(),
        &(1..8).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------
// Snapshot correctness
// ---------------------------------------------------------------------------

/// Dropping the log with events not yet refreshed loses nothing: reopened,
/// the view starts from its snapshot and catches up.
#[test]
fn reopen_after_unclean_drop_is_correct() {
    let dir = test_dir();
    {
        let mut log = open_with_views(dir.path());
        append_numbered(&mut log, 0..4);
        log.refresh_all().unwrap();
        append_numbered(&mut log, 4..6);
    }
    let mut log = open_with_views(dir.path());
    assert_eq!(seq(&log), [0, 1, 2, 3]);
    log.refresh_all().unwrap();
    assert_eq!(seq(&log), [0, 1, 2, 3, 4, 5]);
    drop(log); // closing saves the snapshots that are behind
    let log = open_with_views(dir.path());
    assert_eq!(position(dir.path(), "seq"), end_position(&log));
}

/// Incremental refreshes, across reopens, always equal a full replay.
#[test]
fn incremental_refreshes_equal_full_replay() {
    let dir = test_dir();
    for round in 0..3 {
        let mut log = open_with_views(dir.path());
        for part in 0..2 {
            let start = round * 10 + part * 5;
            append_numbered(&mut log, start..start + 5);
            log.refresh_all().unwrap();
            assert_eq!(count(&log), replay(&log, counter_reducer));
            assert_eq!(seq(&log), replay(&log, seq_reducer));
        }
    }
}

/// Opens the standard views over a log of events 0..5 whose "seq" snapshot
/// was damaged by `damage(snapshot_path, dir)` while closed, and checks that a refresh
/// rebuilds the right state and saves a valid snapshot.
fn assert_rebuilt_after(damage: impl FnOnce(&Path, &Path)) {
    let dir = test_dir();
    populate(dir.path(), 0..5);
    damage(&snapshot_file(dir.path(), "seq"), dir.path());
    let mut log = open_with_views(dir.path());
    log.refresh_all().unwrap();
    assert_eq!(seq(&log), [0, 1, 2, 3, 4]);
    assert_eq!(
        snapshot_json(dir.path(), "seq")["state"],
        json!([0, 1, 2, 3, 4])
    );
    assert_eq!(position(dir.path(), "seq"), end_position(&log));
}

/// A deleted snapshot file means a full replay.
#[test]
fn deleted_snapshot_is_rebuilt() {
    assert_rebuilt_after(|path, _| fs::remove_file(path).unwrap());
}

/// A truncated snapshot file is detected and rebuilt.
#[test]
fn truncated_snapshot_is_rebuilt() {
    assert_rebuilt_after(|path, _| {
        let bytes = fs::read(path).unwrap();
        fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
    });
}

/// A snapshot file of garbage bytes is detected and rebuilt.
#[test]
fn garbled_snapshot_is_rebuilt() {
    assert_rebuilt_after(|path, _| fs::write(path, b"\x00\xff garbage {{{").unwrap());
}

/// A snapshot of the wrong shape (another state type) is rebuilt.
#[test]
fn snapshot_of_another_shape_is_rebuilt() {
    assert_rebuilt_after(|path, _| {
        fs::write(path, br#"{"state":{"items":[]},"offset":0,"hash":""}"#).unwrap()
    });
}

/// A snapshot whose offset is past the end of the log is rebuilt.
#[test]
fn snapshot_offset_beyond_eof_is_rebuilt() {
    assert_rebuilt_after(|_, dir| {
        hand_write_snapshot(dir, "seq", |s| {
            s["offset"] = json!(1_000_000);
            s["state"] = json!([9]);
        });
    });
}

// ---------------------------------------------------------------------------
// Looking views up, naming them
// ---------------------------------------------------------------------------

/// An unknown name is `UnknownView`, for reading, refreshing or rebuilding.
#[test]
fn unknown_view_is_an_error() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    let unknown =
        |r: Result<(), Error>| matches!(r, Err(Error::UnknownView { name }) if name == "nope");
    assert!(unknown(log.view::<u64>("nope").map(|_| ())));
    assert!(unknown(log.refresh_view("nope")));
    assert!(unknown(log.rebuild_view("nope")));
}

/// Asking for the wrong state type is `ViewTypeMismatch`, and its text
/// names the view and both types.
#[test]
fn wrong_state_type_is_an_error() {
    let dir = test_dir();
    let log = open_with_views(dir.path());
    let err = log.view::<String>("count").unwrap_err();
    assert!(matches!(&err, Error::ViewTypeMismatch { name, .. } if name == "count"));
    let text = err.to_string();
    for part in ["\"count\"", "u64", "String"] {
        assert!(text.contains(part), "{text:?} should mention {part}");
    }
}

/// A name that is not a plain file name is rejected by `open`, before
/// anything is created on disk; and by `View::new`.
#[test]
fn invalid_view_names_are_rejected_before_touching_disk() {
    let long = "x".repeat(200);
    let names = ["", "a/b", "..", ".", ".hidden", "a\\b", "a b", &long, "é"];
    for bad in names {
        let root = test_dir();
        let data = root.path().join("data");
        let result = EventLog::builder(&data)
            .view::<u64>("fine", counter_reducer)
            .view::<u64>(bad, counter_reducer)
            .open();
        assert!(
            matches!(&result, Err(Error::InvalidViewName { name, .. }) if name == bad),
            "{bad:?}: {:?}",
            result.err()
        );
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0, "{bad:?}");
        let view = View::new(bad, counter_reducer, root.path());
        assert!(
            matches!(view, Err(Error::InvalidViewName { .. })),
            "{bad:?}"
        );
    }
}

/// Registering one name twice is `DuplicateView`, and nothing is created.
#[test]
fn duplicate_view_name_is_rejected() {
    let root = test_dir();
    let data = root.path().join("data");
    let result = EventLog::builder(&data)
        .view::<u64>("twice", counter_reducer)
        .view::<Vec<u64>>("twice", seq_reducer)
        .open();
    assert!(matches!(result, Err(Error::DuplicateView { name }) if name == "twice"));
    assert!(!data.exists());
}

// ---------------------------------------------------------------------------
// Standalone views
// ---------------------------------------------------------------------------

/// A view used on its own refreshes and saves its snapshot like a
/// registered one.
#[test]
fn standalone_view_refreshes_and_saves() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    append_numbered(&mut log, 0..3);
    let mut view = View::new("solo", seq_reducer, dir.path().join("views")).unwrap();
    assert_eq!(view.refresh(&log).unwrap(), &[0, 1, 2]);
    assert_eq!(view.snapshot_path(), snapshot_file(dir.path(), "solo"));
    assert_eq!(position(dir.path(), "solo"), end_position(&log));
    assert_eq!(view.offset(), log.active_len());
}

/// The log does not know a standalone view, yet after rotations the view
/// still gets the right state: whether it was up to date at the rotation
/// or behind, and whether it is the same object or a new one.
#[test]
fn standalone_view_survives_rotation() {
    let dir = test_dir();
    let views = dir.path().join("views");
    let mut log = EventLog::open(dir.path()).unwrap();
    let mut view = View::new("solo", seq_reducer, &views).unwrap();
    append_numbered(&mut log, 0..3);
    view.refresh(&log).unwrap();
    log.rotate().unwrap();
    append_numbered(&mut log, 3..5);
    assert_eq!(view.refresh(&log).unwrap(), &[0, 1, 2, 3, 4]);

    append_numbered(&mut log, 5..7);
    log.rotate().unwrap();
    append_numbered(&mut log, 7..8);
    let expected: Vec<u64> = (0..8).collect();
    assert_eq!(view.refresh(&log).unwrap(), &expected);
    let mut again = View::new("solo", seq_reducer, &views).unwrap();
    assert_eq!(again.refresh(&log).unwrap(), &expected);
}

/// A standalone view used with one log and then another gets each log's
/// own state: its in-memory position is never applied to the wrong log.
#[test]
fn standalone_view_moved_between_logs_follows_each() {
    let (a, b) = (test_dir(), test_dir());
    let mut log_a = EventLog::open(a.path()).unwrap();
    let mut log_b = EventLog::open(b.path()).unwrap();
    append_n(&mut log_a, 5);
    append_n(&mut log_b, 1);
    let mut view = View::new("count", counter_reducer, a.path().join("views")).unwrap();
    assert_eq!(*view.refresh(&log_a).unwrap(), 5);
    assert_eq!(*view.refresh(&log_b).unwrap(), 1);
    append_n(&mut log_b, 9);
    assert_eq!(*view.refresh(&log_b).unwrap(), 10);
}

fn explode(n: u64, event: &Event) -> u64 {
    assert_ne!(event.event_type, "boom", "the reducer rejects this event");
    n + 1
}

/// A reducer that panics (caught by the application, as a web server
/// does) leaves the registry intact: views are still there, and a rebuild
/// after a fix gives the right state.
#[test]
fn panicking_reducer_leaves_the_registry_intact() {
    let dir = test_dir();
    let mut log = EventLog::builder(dir.path())
        .view::<u64>("n", explode)
        .open()
        .unwrap();
    append_n(&mut log, 2);
    log.refresh_all().unwrap();
    log.append(&dummy_event("boom")).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| log.refresh_all()));
    assert!(caught.is_err(), "the reducer panicked");
    assert!(log.view::<u64>("n").is_ok(), "the view is still registered");
    drop(log);
    let mut log = EventLog::builder(dir.path())
        .view::<u64>("n", counter_reducer)
        .open()
        .unwrap();
    log.rebuild_view("n").unwrap();
    assert_eq!(*log.view::<u64>("n").unwrap(), 3);
}

/// Reliability rule 9: a reducer that panics inside a refresh used to
/// leave its view showing `S::default()` (the state had gone into the
/// reducer). The view now shows the fold of every event before the one
/// that failed, whether its snapshot is behind or absent, and folds the
/// rest once the poison-pill event is gone from its path.
#[test]
fn panicking_reducer_leaves_the_last_good_state_visible() {
    for saved_first in [true, false] {
        let dir = test_dir();
        let mut log = EventLog::builder(dir.path())
            .view::<u64>("n", explode)
            .open()
            .unwrap();
        append_n(&mut log, 2);
        if saved_first {
            log.refresh_all().unwrap(); // a snapshot at 2 events
        }
        append_n(&mut log, 3);
        log.refresh_all().unwrap(); // 5, not saved yet (under 64 KiB)
        append_n(&mut log, 4);
        log.append(&dummy_event("boom")).unwrap();
        append_n(&mut log, 1);
        for _ in 0..2 {
            let caught =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| log.refresh_all()));
            assert!(caught.is_err(), "the reducer panicked");
            assert_eq!(
                *log.view::<u64>("n").unwrap(),
                9,
                "the state before the failing event (snapshot first: {saved_first})"
            );
        }
    }
}

/// Removing `views/` while the log is open costs nothing but a rebuild:
/// the next refresh creates it again.
#[test]
fn removed_views_dir_is_created_again() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    append_n(&mut log, 2);
    log.refresh_all().unwrap();
    fs::remove_dir_all(dir.path().join("views")).unwrap();
    append_n(&mut log, 1);
    log.refresh_all().unwrap();
    log.save_views().unwrap();
    assert_eq!(snapshot_json(dir.path(), "count")["state"], json!(3));
}

/// Names that differ only in case would share a snapshot file on some
/// file systems, so they count as duplicates.
#[test]
fn view_names_differing_in_case_are_duplicates() {
    let dir = test_dir();
    let result = EventLog::builder(dir.path())
        .view::<u64>("todos", counter_reducer)
        .view::<u64>("Todos", counter_reducer)
        .open();
    assert!(matches!(result, Err(Error::DuplicateView { name }) if name == "Todos"));
}

/// A batch of `n` numbered events starting at `start`.
fn numbered_batch(start: u64, n: u64) -> Vec<Event> {
    (start..start + n).map(numbered).collect()
}

/// Snapshot policy: a refresh saves the snapshot once the log bytes folded
/// since the last save reach 64 KiB (or the snapshot's own size, if that
/// is larger); below that, the save waits for `save_views` or the drop.
#[test]
fn snapshot_is_saved_once_64_kib_of_log_was_folded() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    log.refresh_all().unwrap();
    log.append_batch(&numbered_batch(0, 10)).unwrap();
    log.refresh_all().unwrap();
    assert_eq!(position(dir.path(), "count").0, 0, "10 events: not yet");
    while log.active_len() < 64 * 1024 {
        let start = count(&log);
        log.append_batch(&numbered_batch(start, 500)).unwrap();
        log.refresh_view("count").unwrap();
    }
    assert_eq!(position(dir.path(), "count"), end_position(&log));
    assert_eq!(
        snapshot_json(dir.path(), "count")["state"],
        json!(count(&log))
    );
}

/// A large state is saved less often: only once the log folded since its
/// last save is as large as the snapshot itself, so that saving never
/// costs more than folding the same events again would.
#[test]
fn large_snapshot_waits_for_as_much_log_as_its_own_size() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    log.append_batch(&numbered_batch(0, 40_000)).unwrap();
    log.refresh_view("seq").unwrap(); // a full replay: always saved
    let snapshot_size = file_size(&snapshot_file(dir.path(), "seq"));
    let saved_at = position(dir.path(), "seq").0;
    assert!(snapshot_size > 128 * 1024, "{snapshot_size}");
    let mut next = 40_000;
    while log.active_len() - saved_at < snapshot_size {
        assert_eq!(position(dir.path(), "seq").0, saved_at, "saved too early");
        log.append_batch(&numbered_batch(next, 1000)).unwrap();
        next += 1000;
        log.refresh_view("seq").unwrap();
    }
    assert_eq!(position(dir.path(), "seq"), end_position(&log));
}

/// A crash (the files as they are while the log is open, without the save
/// that closing does) after refreshes that were not saved loses nothing:
/// the view folds again what its snapshot does not have.
#[test]
fn crash_with_unsaved_snapshots_loses_nothing() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    append_numbered(&mut log, 0..3);
    log.refresh_all().unwrap();
    append_numbered(&mut log, 3..8);
    log.refresh_all().unwrap();
    let crashed = test_dir();
    fs::create_dir(crashed.path().join("views")).unwrap();
    for name in [
        "app.jsonl",
        "views/seq.snapshot.json",
        "views/count.snapshot.json",
    ] {
        fs::copy(dir.path().join(name), crashed.path().join(name)).unwrap();
    }
    assert_eq!(
        snapshot_json(crashed.path(), "seq")["state"],
        json!([0, 1, 2])
    );
    let mut log = open_with_views(crashed.path());
    log.refresh_all().unwrap();
    assert_eq!(seq(&log), (0..8).collect::<Vec<_>>());
    assert_eq!(count(&log), 8);
}
