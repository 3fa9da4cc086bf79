//! Copies of a history elsewhere: lines appended byte for byte to another
//! log (`EventLog::append_lines`), and views folded over lines that do not
//! come from a directory (`View::fold_line`, `load_folded`, `save_folded`),
//! as a replica or a stream consumer uses them.

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use eventfold::{Error, Event, EventLog, EventReader, Snapshot, Upcasters, View};
use serde_json::{Value, json};

use common::ledger::*;
use common::*;

/// The ledger's upcasters, and a second version of `frozen`, so that new
/// `frozen` events are written with `"v":2`.
fn upcasters() -> Upcasters {
    ledger_upcasters().upcast("frozen", 1, "frozen", |data| data)
}

/// A history with every kind of line: version 1 lines without `seq`
/// (the 0.1 fixture), typed events of today, `"v":2` lines, an `id` and a
/// `meta`; rotated twice, with events after the last rotation.
fn varied_history(dir: &Path) -> EventLog {
    copy_data_dir(Path::new("tests/fixtures/v0.1-old-shapes"), dir);
    let mut log = EventLog::builder(dir)
        .upcasters(upcasters())
        .typed_view("balances", balances)
        .open()
        .unwrap();
    for round in 0..3u64 {
        for n in 0..50 {
            log.append_typed(&deposit(&format!("acct-{}", n % 7), round * 100 + n))
                .unwrap();
        }
        log.append_typed(&Ledger::Frozen).unwrap();
        let tagged = Event::new(
            "withdrawn",
            json!({"account": "acct-1", "amount": round + 1}),
        )
        .with_id(format!("w-{round}"))
        .with_meta("by", json!("test"));
        log.append(&tagged).unwrap();
        if round < 2 {
            log.rotate().unwrap();
        }
    }
    log
}

/// Every stored line of `log`, with its sequence number.
fn lines_of(log: &EventLog) -> Vec<(u64, String)> {
    log.read_from_seq(0)
        .unwrap()
        .lines()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The line hash of event `seq`.
fn lines_hash(log: &EventLog, seq: u64) -> String {
    log.read_from_seq(seq).unwrap().next().unwrap().unwrap().2
}

fn texts(lines: &[(u64, String)]) -> Vec<&str> {
    lines.iter().map(|(_, line)| line.as_str()).collect()
}

#[test]
fn lines_appended_make_the_same_history_byte_for_byte() {
    let dir = test_dir();
    let mut original = varied_history(&dir.path().join("original"));
    let lines = lines_of(&original);
    assert!(lines.iter().any(|(_, l)| !l.contains("\"seq\"")));
    assert!(lines.iter().any(|(_, l)| l.contains("\"v\":2")));

    // The copy rotates on its own schedule, in the middle of the batches.
    let copy_dir = dir.path().join("copy");
    let mut copy = EventLog::builder(&copy_dir)
        .upcasters(upcasters())
        .typed_view("balances", balances)
        .max_log_size(4096)
        .open()
        .unwrap();
    for chunk in lines.chunks(37) {
        let next = copy.next_seq();
        let offsets = copy.append_lines(next, &texts(chunk)).unwrap();
        assert_eq!(offsets.len(), chunk.len());
    }
    assert_eq!(copy.next_seq(), original.next_seq());
    assert_eq!(lines_of(&copy), lines);

    // Hashes, versions and upcasting are the original's.
    let hashes = |log: &EventLog| -> Vec<String> {
        log.read_from_seq(0)
            .unwrap()
            .map(|r| r.unwrap().2)
            .collect()
    };
    assert_eq!(hashes(&copy), hashes(&original));
    copy.refresh_all().unwrap();
    original.refresh_all().unwrap();
    assert_eq!(
        *copy.view::<Balances>("balances").unwrap(),
        *original.view::<Balances>("balances").unwrap()
    );
    // And it reopens with every event, and verifies.
    drop(copy);
    let report = EventReader::open(&copy_dir)
        .unwrap()
        .verify(&mut |_, _| {})
        .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.events, lines.len() as u64);
    let copy = EventLog::builder(&copy_dir)
        .upcasters(upcasters())
        .open()
        .unwrap();
    assert_eq!(lines_of(&copy), lines);
}

#[test]
fn lines_that_are_not_events_at_their_place_are_refused_and_nothing_is_written() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    log.append(&numbered(0)).unwrap();
    let good = r#"{"type":"n","data":1,"ts":5,"seq":1}"#;
    let before = dir_contents(dir.path());

    let refused = |log: &mut EventLog, expected: u64, lines: &[&str]| {
        let result = log.append_lines(expected, lines);
        assert_eq!(dir_contents(dir.path()), before, "{lines:?} changed files");
        assert_eq!(log.next_seq(), 1);
        result.unwrap_err()
    };
    let detail = |e: Error| match e {
        Error::InvalidLine { seq, detail } => (seq, detail),
        other => panic!("expected InvalidLine, got {other:?}"),
    };

    assert!(matches!(
        refused(&mut log, 0, &[good]),
        Error::Conflict {
            expected: 0,
            actual: 1
        }
    ));
    let cases: [(&[&str], u64, &str); 10] = [
        (&[r#"{"type":"n","data":1,"ts":5,"seq":2}"#], 1, "event 2"),
        (&[good, good], 2, "event 1"),
        (&[good, "{\"type\":\"n\""], 2, "not a valid event"),
        (&[r#"{"type":"n","data":1}"#], 1, "not a valid event"),
        (&["{\"type\":\"n\",\"data\":1,\"ts\":5}\n{}"], 1, "newline"),
        (&["  "], 1, "empty"),
        (
            &[r#"{"type":"n","data":1e400,"ts":5}"#],
            1,
            "not a valid event",
        ),
        // Schema versions readers refuse, also in lines of another key
        // order than eventfold's (which the fast check does not take).
        (
            &[r#"{"data":1,"type":"n","ts":5,"v":"x"}"#],
            1,
            "not a valid event",
        ),
        (
            &[r#"{"data":1,"type":"n","ts":5,"v":4294967296}"#],
            1,
            "not a valid event",
        ),
        (
            &[r#"{"type":"n","data":1,"ts":5,"v":-1,"seq":1}"#],
            1,
            "not a valid event",
        ),
    ];
    for (lines, seq, says) in cases {
        let (at, why) = detail(refused(&mut log, 1, lines));
        assert_eq!(at, seq, "{lines:?}");
        assert!(why.contains(says), "{lines:?}: {why}");
    }
    let e = refused(&mut log, 1, &[r#"{"type":"n","data":1,"ts":5,"seq":2}"#]);
    assert!(e.to_string().contains("nothing of it was used"), "{e}");

    // The same lines at their place are fine, with or without `seq`.
    log.append_lines(1, &[good, r#"{"type":"n","data":2,"ts":5}"#])
        .unwrap();
    assert_eq!(log.next_seq(), 3);
    let (seq, event, _) = log.read_from_seq(2).unwrap().next().unwrap().unwrap();
    assert_eq!((seq, event.data), (2, json!(2)));
}

/// The ledger's typed view and the same fold over `Event`s, folded over
/// the lines of a history with rotations, upcasts and `"v"` lines, give the
/// writer's state; their snapshots go on where they stopped.
#[test]
fn views_folded_over_lines_from_elsewhere_equal_the_writers() {
    let dir = test_dir();
    let mut original = varied_history(&dir.path().join("original"));
    original.refresh_all().unwrap();
    let expected = original.view::<Balances>("balances").unwrap().clone();
    assert!(expected.events > 150);
    let lines = lines_of(&original);
    let views = dir.path().join("elsewhere");

    let typed = || {
        View::typed("balances", balances, &views)
            .unwrap()
            .with_upcasters(upcasters())
            .unwrap()
    };
    let of_values = || {
        View::new("by_value", balances_of_values, &views)
            .unwrap()
            .with_upcasters(upcasters())
            .unwrap()
    };
    let (mut a, mut b) = (typed(), of_values());
    let half = lines.len() / 2;
    for (seq, line) in &lines[..half] {
        a.fold_line(*seq, line.as_bytes()).unwrap();
        b.fold_line(*seq, line.as_bytes()).unwrap();
    }
    a.save_folded().unwrap();
    b.save_folded().unwrap();
    drop((a, b));

    // The snapshot is a view snapshot like any other.
    let path = views.join("balances.snapshot.json");
    let snap = Snapshot::<Balances>::load(&path).unwrap().unwrap();
    assert_eq!(snap.state.events, half as u64);
    let json: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["seq"], json!(half));
    assert_eq!(json["hash"], json!(lines_hash(&original, half as u64 - 1)));

    let (mut a, mut b) = (typed(), of_values());
    for view in [&mut a, &mut b] {
        let next = view.load_folded().unwrap();
        assert_eq!(next, half as u64);
        assert_eq!(
            view.last_line_hash(),
            Some(lines_hash(&original, next - 1).as_str())
        );
    }
    for (seq, line) in &lines[half..] {
        a.fold_line(*seq, line.as_bytes()).unwrap();
        b.fold_line(*seq, line.as_bytes()).unwrap();
    }
    assert_eq!(*a.state(), expected);
    assert_eq!(*b.state(), expected);
    assert_eq!(a.next_seq(), original.next_seq());
}

#[test]
fn a_view_refuses_lines_out_of_order_or_damaged_and_keeps_its_state() {
    let dir = test_dir();
    let mut view = View::new("sum", sum_reducer, dir.path()).unwrap();
    let line = |n: u64| format!(r#"{{"type":"n","data":{{"n":{n}}},"ts":1,"seq":{n}}}"#);
    view.fold_line(0, line(0).as_bytes()).unwrap();
    view.fold_line(1, line(1).as_bytes()).unwrap();
    let state = *view.state();

    let bad: [(u64, String, &str); 5] = [
        (3, line(3), "expects event 2 next"),
        (1, line(1), "expects event 2 next"),
        (2, line(5), "event 5"),
        (2, "{\"type\":\"n\"".to_owned(), "not a valid event"),
        (2, format!("{}\n{}", line(2), line(3)), "newline"),
    ];
    for (seq, text, says) in bad {
        match view.fold_line(seq, text.as_bytes()) {
            Err(Error::InvalidLine { detail, .. }) => {
                assert!(detail.contains(says), "{text}: {detail}")
            }
            other => panic!("{text}: expected InvalidLine, got {other:?}"),
        }
        assert_eq!((*view.state(), view.next_seq()), (state, 2));
    }
    assert_eq!(*view.fold_line(2, line(2).as_bytes()).unwrap(), state + 2);

    // Its snapshot is saved with save_folded, not against a log.
    let log = EventLog::open(dir.path().join("log")).unwrap();
    assert!(matches!(view.save(&log), Err(Error::InvalidConfig { .. })));
    drop(log);

    // A view refreshed from a log does not take lines from elsewhere.
    let log = EventLog::open(dir.path().join("log")).unwrap();
    let mut refreshed = View::new("count", counter_reducer, dir.path()).unwrap();
    refreshed.refresh(&log).unwrap();
    assert!(matches!(
        refreshed.fold_line(0, line(0).as_bytes()),
        Err(Error::InvalidConfig { .. })
    ));
}

/// Calls to [`counted`], to see whether a refresh folded anything.
static FOLDS: AtomicU64 = AtomicU64::new(0);

fn counted(n: u64, _: &Event) -> u64 {
    FOLDS.fetch_add(1, Ordering::SeqCst);
    n + 1
}

/// A standby copy that never rotated holds the lines at the offsets the
/// fold counted: the snapshot folded from elsewhere is loaded by a view of
/// the copy without folding anything again.
#[test]
fn a_snapshot_folded_from_elsewhere_is_loaded_by_a_view_of_a_copy() {
    let dir = test_dir();
    let mut original = EventLog::open(dir.path().join("original")).unwrap();
    append_numbered(&mut original, 0..300);
    let lines = lines_of(&original);

    let copy_dir = dir.path().join("copy");
    let mut copy = EventLog::open(&copy_dir).unwrap();
    copy.append_lines(0, &texts(&lines)).unwrap();
    let mut folded = View::new("count", counted, copy_dir.join("views")).unwrap();
    for (seq, line) in &lines {
        folded.fold_line(*seq, line.as_bytes()).unwrap();
    }
    folded.save_folded().unwrap();
    assert_eq!(
        folded.offset(),
        common::file_size(&data_file(&copy_dir, LOG))
    );

    let before = FOLDS.load(Ordering::SeqCst);
    let mut view = View::new("count", counted, copy_dir.join("views")).unwrap();
    assert_eq!(*view.refresh(&copy).unwrap(), 300);
    assert_eq!(
        FOLDS.load(Ordering::SeqCst),
        before,
        "the refresh folded again"
    );
}

#[test]
fn a_reducer_that_panics_leaves_the_view_to_go_on_from_its_snapshot() {
    fn fragile(n: u64, event: &Event) -> u64 {
        assert!(event.data != json!("boom"), "the reducer fails on boom");
        n + 1
    }
    let dir = test_dir();
    let line = |seq: u64, data: &str| {
        format!(
            r#"{{"type":"t","data":{},"ts":1,"seq":{seq}}}"#,
            Value::from(data)
        )
    };
    let mut view = View::new("fragile", fragile, dir.path()).unwrap();
    view.fold_line(0, line(0, "a").as_bytes()).unwrap();
    view.save_folded().unwrap();
    view.fold_line(1, line(1, "b").as_bytes()).unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = view.fold_line(2, line(2, "boom").as_bytes());
    }));
    assert!(panicked.is_err());
    // Nothing half-folded is kept: the view starts over, or from its snapshot.
    assert_eq!((*view.state(), view.next_seq()), (0, 0));
    assert_eq!(view.load_folded().unwrap(), 1);
    assert_eq!(*view.state(), 1);
    view.fold_line(1, line(1, "b").as_bytes()).unwrap();
    view.fold_line(2, line(2, "c").as_bytes()).unwrap();
    assert_eq!(*view.state(), 3);
}

#[test]
fn a_snapshot_of_another_version_is_not_loaded_for_folding() {
    let dir = test_dir();
    let line = br#"{"type":"t","data":null,"ts":1,"seq":0}"#;
    let mut view = View::new("count", counter_reducer, dir.path()).unwrap();
    view.fold_line(0, line).unwrap();
    view.save_folded().unwrap();
    let path = view.snapshot_path().to_owned();
    assert!(fs::metadata(&path).is_ok());

    let mut newer = View::new("count", counter_reducer, dir.path())
        .unwrap()
        .with_version(2);
    assert_eq!(newer.load_folded().unwrap(), 0);
    assert_eq!(*newer.state(), 0);
    assert_eq!(newer.last_line_hash(), None);
}

/// A log's view saved just after a rotation holds events but does not
/// name the line of the last one: its place in another copy of the
/// history cannot be checked, so folding starts from event 0.
#[test]
fn a_snapshot_that_does_not_name_its_last_line_is_not_loaded_for_folding() {
    let dir = test_dir();
    let mut log = EventLog::builder(dir.path())
        .view("count", counter_reducer)
        .open()
        .unwrap();
    append_numbered(&mut log, 0..5);
    log.rotate().unwrap();
    drop(log);
    let json = snapshot_json(dir.path(), "count");
    assert_eq!(
        (json["seq"].clone(), json["hash"].clone()),
        (json!(5), json!(""))
    );

    let mut view = View::new("count", counter_reducer, dir.path().join("views")).unwrap();
    assert_eq!(view.load_folded().unwrap(), 0);
    assert_eq!((*view.state(), view.last_line_hash()), (0, None));
}
