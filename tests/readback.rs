//! Nothing accepted may become unreadable: whatever `append` and
//! `append_batch` accept, every reader path (refresh, `read_full`,
//! rebuild, rotation) parses back identically, bit for bit; whatever could
//! not be read back is refused with `Error::InvalidEvent` and nothing is
//! written. And rotation moves a line into the archive only if the full
//! reader accepts it.

mod common;

use std::fs;

use eventfold::{Error, Event, EventLog};
use proptest::prelude::*;
use serde_json::{Number, Value, json};

use common::*;

/// `data` nested `depth` arrays deep around a number.
fn nested(depth: usize) -> Value {
    let mut data = json!(1);
    for _ in 0..depth {
        data = json!([data]);
    }
    data
}

/// `data` nested `depth` objects deep.
fn nested_objects(depth: usize) -> Value {
    let mut data = json!(null);
    for _ in 0..depth {
        data = json!({ "k": data });
    }
    data
}

/// Appends `event` to a fresh log and returns what every reader path then
/// sees: a view's state after a refresh, `read_full`, a rebuild,
/// `read_full` after a rotation, and a view loaded from its snapshot after
/// a reopen (its state is the event's data, one level under the snapshot's
/// own object, as deep as the data is in the line).
fn every_reader_sees(event: &Event) -> Vec<Vec<Event>> {
    fn collect(mut events: Vec<Event>, e: &Event) -> Vec<Event> {
        events.push(e.clone());
        events
    }
    fn last_data(_: Value, e: &Event) -> Value {
        e.data.clone()
    }
    let builder = |dir: &std::path::Path| {
        EventLog::builder(dir)
            .view::<Vec<Event>>("all", collect)
            .view::<Value>("last", last_data)
    };
    let dir = test_dir();
    let mut log = builder(dir.path()).open().expect("open");
    log.append(event).expect("append");
    log.refresh_all().expect("refresh_all");
    let refreshed = log.view::<Vec<Event>>("all").unwrap().clone();
    let full = all_events(&log);
    log.rebuild_view("all").expect("rebuild");
    let rebuilt = log.view::<Vec<Event>>("all").unwrap().clone();
    log.rotate().expect("rotate");
    let archived = all_events(&log);
    drop(log);
    let log = builder(dir.path()).open().expect("reopen");
    let loaded = log.view::<Value>("last").unwrap().clone();
    let from_snapshot = vec![Event::with_ts(event.event_type.clone(), loaded, event.ts)];
    vec![refreshed, full, rebuilt, archived, from_snapshot]
}

#[test]
fn the_deepest_accepted_data_reads_back_everywhere() {
    for data in [nested(Event::MAX_DEPTH), nested_objects(Event::MAX_DEPTH)] {
        let event = Event::with_ts("deep", data, 1);
        for seen in every_reader_sees(&event) {
            assert_eq!(seen, std::slice::from_ref(&event));
        }
    }
}

#[test]
fn data_nested_too_deep_is_refused_and_nothing_is_written() {
    let dir = test_dir();
    let mut log = EventLog::builder(dir.path())
        .max_log_size(1)
        .view::<u64>("count", counter_reducer)
        .open()
        .unwrap();
    log.append(&dummy_event("before")).unwrap();
    let len = log.active_len();
    for data in [
        nested(Event::MAX_DEPTH + 1),
        nested_objects(Event::MAX_DEPTH + 1),
        nested(1_000),
        json!({"ok": nested(Event::MAX_DEPTH)}),
    ] {
        let event = Event::with_ts("deep", data, 1);
        match log.append(&event) {
            Err(Error::InvalidEvent { event_type, reason }) => {
                assert_eq!(event_type, "deep");
                assert!(reason.contains("126"), "{reason}");
            }
            other => panic!("expected InvalidEvent, got {other:?}"),
        }
        let batch = [dummy_event("fine"), event];
        assert!(matches!(
            log.append_batch(&batch),
            Err(Error::InvalidEvent { .. })
        ));
        assert_eq!(log.active_len(), len, "nothing written");
    }
    // The log is not poisoned: later appends, refreshes and rotations work.
    log.append(&dummy_event("after")).unwrap();
    log.refresh_all().unwrap();
    assert_eq!(*log.view::<u64>("count").unwrap(), 2);
    assert_eq!(all_events(&log).len(), 2);
}

#[test]
fn the_reserved_raw_value_key_is_refused() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    for data in [
        json!({"$serde_json::private::RawValue": "[1,2]"}),
        json!({"$serde_json::private::RawValue": 5}),
        json!({"a": [{"$serde_json::private::RawValue": "7", "b": 1}]}),
    ] {
        let err = log.append(&Event::with_ts("raw", data, 1)).unwrap_err();
        assert!(matches!(err, Error::InvalidEvent { .. }), "{err}");
        assert!(err.to_string().contains("nothing was written"), "{err}");
    }
    assert_eq!(log.active_len(), 0);
    // Other keys that look like serde_json's are ordinary data.
    let fine = Event::with_ts("n", json!({"$serde_json::private::Number": "7"}), 1);
    log.append(&fine).unwrap();
    assert_eq!(all_events(&log), [fine]);
}

/// Before the `float_roundtrip` feature, about 28% of f64 values read
/// back 1 ulp off, so a view loaded from its snapshot differed from the
/// same view rebuilt.
#[test]
fn extreme_floats_read_back_bit_for_bit() {
    let values = [
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        f64::MIN_POSITIVE / 3.0, // subnormal
        5e-324,                  // the smallest subnormal
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        0.1 + 0.2,
        1.0 / 3.0,
        std::f64::consts::PI,
        9007199254740993.0,
        2.225_073_858_507_201e-308,
    ];
    check_floats(&values);
}

/// Appends one event per value, then checks every reader path and a view
/// whose state holds the values, loaded from its snapshot and rebuilt.
fn check_floats(values: &[f64]) {
    fn floats(mut state: Vec<f64>, e: &Event) -> Vec<f64> {
        state.push(e.data.as_f64().expect("a number"));
        state
    }
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let dir = test_dir();
    {
        let mut log = EventLog::builder(dir.path())
            .view::<Vec<f64>>("floats", floats)
            .open()
            .unwrap();
        let events: Vec<Event> = values
            .iter()
            .map(|&x| Event::with_ts("f", Value::Number(Number::from_f64(x).unwrap()), 1))
            .collect();
        log.append_batch(&events).unwrap();
        log.refresh_all().unwrap();
        log.save_views().unwrap();
        let read: Vec<f64> = all_events(&log)
            .iter()
            .map(|e| e.data.as_f64().unwrap())
            .collect();
        assert_eq!(bits(&read), bits(values), "read_full");
    }
    let mut log = EventLog::builder(dir.path())
        .view::<Vec<f64>>("floats", floats)
        .open()
        .unwrap();
    let loaded = log.view::<Vec<f64>>("floats").unwrap().clone();
    assert_eq!(bits(&loaded), bits(values), "view loaded from its snapshot");
    log.rotate().unwrap();
    log.rebuild_view("floats").unwrap();
    let rebuilt = log.view::<Vec<f64>>("floats").unwrap().clone();
    assert_eq!(
        bits(&rebuilt),
        bits(values),
        "view rebuilt from the archive"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any finite f64, subnormals and extremes included.
    #[test]
    fn any_finite_float_reads_back_bit_for_bit(
        values in prop::collection::vec(
            prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
            1..64,
        )
    ) {
        check_floats(&values);
    }
}

// ------------------------------------------------ rotation's line check

/// Writes `lines` as the whole active log, opens it and rotates. Returns
/// whether the full reader accepts every line, and the rotation's result.
fn rotate_hand_written(lines: &[&[u8]]) -> (bool, eventfold::Result<()>, tempfile::TempDir) {
    let dir = test_dir();
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    // A sound last line: the open refuses a last line that is no event
    // (see `tests/integrity_tests.rs`), and the rotation's check is what
    // is tested here.
    bytes.extend_from_slice(b"{\"type\":\"end\",\"data\":null,\"ts\":0}\n");
    fs::write(dir.path().join("app.jsonl"), &bytes).unwrap();
    let reader_accepts = lines
        .iter()
        .all(|line| serde_json::from_slice::<Event>(line).is_ok());
    let mut log = EventLog::open(dir.path()).expect("open");
    let rotated = log.rotate();
    (reader_accepts, rotated, dir)
}

/// The check before a rotation used to skip `data` unparsed, so lines the
/// reader refuses were sealed into the archive, where every replay then
/// failed. Each line here is refused by the reader and must be refused by
/// the rotation, leaving the files as they were.
#[test]
fn rotation_refuses_every_line_the_reader_refuses() {
    let deep = format!(
        r#"{{"type":"x","data":{}1{},"ts":1}}"#,
        "[".repeat(127),
        "]".repeat(127)
    );
    let cases: Vec<Vec<u8>> = vec![
        b"{\"type\":\"x\",\"data\":\"\xff\xfe\",\"ts\":1}".to_vec(),
        br#"{"type":"x","data":"\ud800","ts":1}"#.to_vec(),
        br#"{"type":"x","data":{"k":"\udc00x"},"ts":1}"#.to_vec(),
        br#"{"type":"x","data":1e999,"ts":1}"#.to_vec(),
        br#"{"type":"x","data":[-1e400],"ts":1}"#.to_vec(),
        deep.into_bytes(),
        b"{\"type\":\"x\",\"data\":{\"\xc3\x28\":1},\"ts\":1}".to_vec(),
        br#"{"type":"x","data":{"$serde_json::private::RawValue":5},"ts":1}"#.to_vec(),
        br#"{"type":"x","data":{"$serde_json::private::RawValue":"[1,"},"ts":1}"#.to_vec(),
        br#"{"type":"x","data":[1,],"ts":1}"#.to_vec(),
        br#"{"type":"x","data":01,"ts":1}"#.to_vec(),
    ];
    for case in &cases {
        let good = br#"{"type":"ok","data":null,"ts":1}"#;
        let (accepts, rotated, dir) = rotate_hand_written(&[good, case]);
        let shown = String::from_utf8_lossy(case);
        assert!(!accepts, "the reader accepts {shown}");
        match rotated {
            Err(Error::Corrupt { path, offset, .. }) => {
                assert_eq!(path, dir.path().join("app.jsonl"), "{shown}");
                assert_eq!(offset, good.len() as u64 + 1, "{shown}");
            }
            other => panic!("{shown}: expected Corrupt, got {other:?}"),
        }
        assert!(!dir.path().join("archive.jsonl.zst").exists(), "{shown}");
        assert!(!dir.path().join("rotation.json").exists(), "{shown}");
    }
}

/// A schema version `"v"` that is not a u32 makes a line the reader
/// refuses; the rotation refuses it too, also in a line of another key
/// order than eventfold's (which only the slower check reads).
#[test]
fn rotation_refuses_a_schema_version_the_reader_refuses() {
    let cases: [&[u8]; 4] = [
        br#"{"data":1,"type":"x","ts":1,"v":"2"}"#,
        br#"{"data":1,"type":"x","ts":1,"v":4294967296}"#,
        br#"{"type":"x","data":1,"ts":1,"v":-1}"#,
        br#"{"type":"x","data":1,"ts":1,"v":1.5}"#,
    ];
    for case in cases {
        let good = br#"{"type":"ok","data":null,"ts":1}"#;
        let (_, rotated, dir) = rotate_hand_written(&[good, case]);
        let shown = String::from_utf8_lossy(case);
        match rotated {
            Err(Error::Corrupt { offset, .. }) => {
                assert_eq!(offset, good.len() as u64 + 1, "{shown}")
            }
            other => panic!("{shown}: expected Corrupt, got {other:?}"),
        }
        let log = EventLog::open(dir.path()).unwrap();
        let read: Vec<_> = log.read_full().unwrap().collect();
        assert!(read[1].is_err(), "the reader accepts {shown}");
        assert!(!dir.path().join("archive.jsonl.zst").exists(), "{shown}");
    }
}

/// The damaged line is found on a second thread while the rotation
/// compresses: the frames already appended to an existing archive are
/// cut off again, and every file is as it was.
#[test]
fn a_damaged_line_found_while_compressing_leaves_every_file_as_it_was() {
    let dir = test_dir();
    {
        let mut log = EventLog::open(dir.path()).unwrap();
        append_numbered(&mut log, 0..50);
        log.rotate().unwrap();
        append_numbered(&mut log, 50..3000);
    }
    // A line in the middle, damaged after it was written.
    let path = dir.path().join("app.jsonl");
    let text = fs::read_to_string(&path).unwrap();
    let damaged = text.replacen(r#"{"n":1500}"#, r#"{"n":1e999}"#, 1);
    assert_ne!(text, damaged);
    fs::write(&path, &damaged).unwrap();
    let before = dir_contents(dir.path());
    let mut log = EventLog::open(dir.path()).unwrap();
    let offset = damaged
        .find("1e999")
        .map(|i| damaged[..i].rfind('\n').unwrap() + 1);
    match log.rotate() {
        Err(Error::Corrupt {
            path: p,
            offset: at,
            ..
        }) => {
            assert_eq!(p, path);
            assert_eq!(Some(at as usize), offset);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(!log.is_poisoned(), "the roll-back succeeded");
    drop(log);
    let mut after = dir_contents(dir.path());
    let mut before = before;
    // The writer's record of the committed end is rewritten on open.
    after.remove(std::path::Path::new("app.jsonl.committed"));
    before.remove(std::path::Path::new("app.jsonl.committed"));
    assert_eq!(after, before, "every file as it was");
}

/// And the check accepts what the reader accepts, including serde_json's
/// reading of its reserved key as JSON text, so a valid log still rotates.
#[test]
fn rotation_accepts_every_line_the_reader_accepts() {
    let deep = format!(
        r#"{{"type":"x","data":{}1{},"ts":1}}"#,
        "[".repeat(126),
        "]".repeat(126)
    );
    let cases: Vec<Vec<u8>> = vec![
        br#"{"type":"x","data":"\ud83d\ude00 \u0000","ts":1}"#.to_vec(),
        br#"{"type":"x","data":1.7976931348623157e308,"ts":1}"#.to_vec(),
        br#"{"type":"x","data":5e-324,"ts":1,"extra":[1,{"a":2}]}"#.to_vec(),
        deep.into_bytes(),
        br#"{"type":"x","data":{"$serde_json::private::RawValue":"[1,2]"},"ts":1}"#.to_vec(),
        br#"{"data":{"a":1,"a":2},"ts":3,"type":"y"}"#.to_vec(),
        "{\"type\":\"é\",\"data\":\"日本\",\"ts\":1}"
            .as_bytes()
            .to_vec(),
    ];
    for case in &cases {
        let (accepts, rotated, dir) = rotate_hand_written(&[case]);
        let shown = String::from_utf8_lossy(case);
        assert!(accepts, "the reader refuses {shown}");
        rotated.unwrap_or_else(|e| panic!("{shown}: {e}"));
        let log = EventLog::open(dir.path()).unwrap();
        let expected: Event = serde_json::from_slice(case).unwrap();
        assert_eq!(all_events(&log)[..1], [expected], "{shown}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A valid line with a few bytes changed: the rotation's check and the
    /// full reader always agree.
    #[test]
    fn rotation_check_agrees_with_the_reader(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut line = br#"{"type":"x","data":{"s":"a\u00e9\"b","n":[1.5e3,-2,true,null]},"ts":9}"#.to_vec();
        for (at, byte) in edits {
            let i = at.index(line.len());
            line[i] = if byte == b'\n' { b' ' } else { byte };
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let (accepts, rotated, _dir) = rotate_hand_written(&[&line]);
        prop_assert_eq!(accepts, rotated.is_ok(), "{}", String::from_utf8_lossy(&line));
    }
}
