//! Typed events: appended from Rust enums, folded by typed views straight
//! from the lines, old shapes upcast to today's, view versions that
//! rebuild stale snapshots, and values that would not read back refused.

mod common;

use std::fs;
use std::path::Path;

use eventfold::{Error, Event, EventLog, EventReader, Upcasters, View};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use common::ledger::*;
use common::*;

fn active_lines(dir: &Path) -> Vec<String> {
    fs::read_to_string(data_file(dir, "app.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn typed_appends_are_the_line_format_and_typed_views_fold_them() {
    let dir = test_dir();
    let mut log = EventLog::builder(dir.path())
        .typed_view("balances", balances)
        .view("by_value", balances_of_values)
        .max_log_size(600)
        .open()
        .unwrap();
    for i in 0..30 {
        log.append_typed(&deposit("alice", i)).unwrap();
        log.append_typed(&Ledger::Withdrawn {
            account: "alice".into(),
            amount: 1,
        })
        .unwrap();
    }
    log.append_typed(&Ledger::Frozen).unwrap();
    assert!(
        data_file(dir.path(), "archive.jsonl.zst").exists(),
        "rotated"
    );
    log.refresh_all().unwrap();
    let typed = log.view::<Balances>("balances").unwrap().clone();
    assert_eq!(typed.accounts["alice"], (0..30).sum::<i64>() - 30);
    assert_eq!(typed.events, 61);
    assert_eq!(&typed, log.view::<Balances>("by_value").unwrap());

    // The line is the design's format, with ts and seq added.
    let last = active_lines(dir.path()).pop().unwrap();
    let line: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(line["type"], "frozen");
    assert_eq!(line["data"], Value::Null);
    assert_eq!(line["seq"], 60);
    assert!(line["ts"].as_u64().unwrap() > 1_700_000_000);

    // Reopened, the typed view loads its snapshot and goes on.
    drop(log);
    let mut log = EventLog::builder(dir.path())
        .typed_view("balances", balances)
        .open()
        .unwrap();
    log.append_typed(&deposit("bob", 7)).unwrap();
    log.refresh_all().unwrap();
    assert_eq!(log.view::<Balances>("balances").unwrap().accounts["bob"], 7);
    assert_eq!(log.view::<Balances>("balances").unwrap().events, 62);
}

#[test]
fn unknown_types_are_skipped_or_refused_and_undecodable_data_is_an_error() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    log.append_typed(&deposit("alice", 5)).unwrap();
    // A newer program's event type.
    log.append(&Event::new("interest_paid", json!({"amount": 1})))
        .unwrap();
    log.append_typed(&deposit("alice", 2)).unwrap();
    let views = dir.path().join("views");
    let lenient = View::typed("lenient", balances, &views)
        .unwrap()
        .refresh(&log)
        .unwrap()
        .clone();
    assert_eq!((lenient.events, lenient.accounts["alice"]), (2, 7));

    let unknown_at = active_lines(dir.path())[0].len() as u64 + 1;
    let mut strict = View::typed("strict", balances, &views).unwrap().strict();
    match strict.refresh(&log) {
        Err(Error::Corrupt {
            path,
            offset,
            detail,
        }) => {
            assert_eq!(path, data_file(dir.path(), "app.jsonl"));
            assert_eq!(offset, unknown_at);
            assert!(detail.contains("\"interest_paid\""), "{detail}");
        }
        other => panic!("expected the unknown type refused, got {other:?}"),
    }

    // A known type whose data does not decode is never skipped.
    log.append(&Event::new(
        "deposited",
        json!({"account": "alice", "amount": "lots"}),
    ))
    .unwrap();
    let bad_at: u64 = active_lines(dir.path())[..3]
        .iter()
        .map(|l| l.len() as u64 + 1)
        .sum();
    let mut view = View::typed("lenient", balances, &views).unwrap();
    match view.refresh(&log) {
        Err(Error::Corrupt { offset, detail, .. }) => {
            assert_eq!(offset, bad_at);
            assert!(
                detail.contains("\"deposited\"") && detail.contains("lots"),
                "{detail}"
            );
        }
        other => panic!("expected the undecodable event refused, got {other:?}"),
    }
    // The builder's strict views fail to open the same way.
    drop(log);
    let mut strict = EventLog::builder(dir.path())
        .typed_view("s", balances)
        .strict_view("s")
        .open()
        .unwrap();
    let refreshed = strict.refresh_all();
    assert!(
        matches!(refreshed, Err(Error::Corrupt { .. })),
        "{refreshed:?}"
    );
    drop(strict);
    let opened = EventLog::builder(dir.path())
        .view("v", counter_reducer)
        .strict_view("v")
        .open();
    assert!(
        matches!(opened, Err(Error::InvalidConfig { .. })),
        "{opened:?}"
    );
    let opened = EventLog::builder(dir.path()).view_version("nope", 1).open();
    assert!(
        matches!(opened, Err(Error::InvalidConfig { .. })),
        "{opened:?}"
    );
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum Odd {
    Reading {
        value: f64,
        history: Vec<f32>,
    },
    /// Leaves out a zero count, which reads back as one.
    Counted {
        #[serde(skip_serializing_if = "is_zero", default = "one")]
        count: u64,
    },
    Internally(std::collections::BTreeMap<String, f64>),
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn one() -> u64 {
    1
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
enum InternallyTagged {
    Flat { x: u64 },
}

#[test]
fn values_that_would_not_read_back_are_refused_and_nothing_is_written() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    let cases: Vec<(Result<u64, Error>, &str, &str)> = vec![
        (
            log.append_typed(&Odd::Reading {
                value: f64::NAN,
                history: vec![],
            }),
            "Reading",
            "data.value is NaN",
        ),
        (
            log.append_typed(&Odd::Reading {
                value: 1.0,
                history: vec![0.5, f32::INFINITY],
            }),
            "Reading",
            "data.history[1] is inf",
        ),
        (
            log.append_typed(&Odd::Internally(
                [("k".to_owned(), f64::NEG_INFINITY)].into(),
            )),
            "Internally",
            "data.k is -inf",
        ),
        (
            log.append_typed(&Odd::Counted { count: 0 }),
            "Counted",
            "read back",
        ),
        (
            log.append_typed(&InternallyTagged::Flat { x: 1 }),
            "Flat",
            "beside \"type\" and \"data\"",
        ),
    ];
    for (result, event_type, reason) in cases.into_iter() {
        match result {
            Err(Error::InvalidEvent {
                event_type: t,
                reason: r,
            }) => {
                assert_eq!(t, event_type);
                assert!(r.contains(reason), "{r}");
            }
            other => panic!("expected {event_type} refused, got {other:?}"),
        }
    }
    assert_eq!(fs::read(data_file(dir.path(), "app.jsonl")).unwrap(), b"");
    match Event::from_data("measured", &[1.0, f64::NAN]) {
        Err(Error::InvalidEvent { event_type, reason }) => {
            assert_eq!(event_type, "measured");
            assert!(reason.contains("data[1] is NaN"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // What does read back is stored.
    log.append_typed(&Odd::Counted { count: 3 }).unwrap();
    log.append_typed(&Odd::Reading {
        value: 0.1,
        history: vec![0.1, 1e-40],
    })
    .unwrap();
    drop(log);
    let back: Vec<Odd> = EventReader::open(dir.path())
        .unwrap()
        .read_from_seq(0)
        .unwrap()
        .map(|item| {
            let (_, event, _) = item.unwrap();
            serde_json::from_value(json!({"type": event.event_type, "data": event.data})).unwrap()
        })
        .collect();
    assert!(matches!(back[0], Odd::Counted { count: 3 }));
    assert!(
        matches!(&back[1], Odd::Reading { value, history } if *value == 0.1 && history == &[0.1, 1e-40])
    );
}

#[test]
fn old_shapes_are_read_in_todays_everywhere_and_the_file_keeps_them() {
    let dir = test_dir();
    copy_data_dir(Path::new("tests/fixtures/v0.1-old-shapes"), dir.path());
    let before = fs::read(data_file(dir.path(), "app.jsonl")).unwrap();

    let mut log = EventLog::builder(dir.path())
        .upcasters(ledger_upcasters())
        .typed_view("balances", balances)
        .view("by_value", balances_of_values)
        .strict_view("balances")
        .open()
        .unwrap();
    log.refresh_all().unwrap();
    let expected = [("alice", 7), ("robert", 5)]
        .map(|(a, b)| (a.to_owned(), b))
        .into();
    assert_eq!(log.view::<Balances>("balances").unwrap().accounts, expected);
    assert_eq!(log.view::<Balances>("by_value").unwrap().accounts, expected);
    let events: Vec<Event> = log.read_full().unwrap().map(|e| e.unwrap().0).collect();
    assert_eq!(events[0].event_type, "deposited");
    assert_eq!(
        events[0].data,
        json!({"account": "alice", "amount": 10, "currency": "EUR"})
    );
    assert_eq!(events[2].event_type, "withdrawn");
    assert_eq!(events[3].event_type, "account_renamed");

    // New events are written at today's version, and are not upcast again.
    log.append_typed(&deposit("alice", 1)).unwrap();
    log.append(&Event::new(
        "deposited",
        json!({"account": "x", "amount": 1, "currency": "USD"}),
    ))
    .unwrap();
    let lines = active_lines(dir.path());
    assert!(lines[4].contains(r#""v":2"#), "{}", lines[4]);
    assert_eq!(
        fs::read(data_file(dir.path(), "app.jsonl")).unwrap()[..before.len()],
        before[..]
    );

    // Readers with the same upcasters, and rebuilds, see the same.
    let reader = log.reader();
    let (_, first, _) = reader.read_from_seq(0).unwrap().next().unwrap().unwrap();
    assert_eq!(first, events[0]);
    let mut from_reader = View::typed("balances", balances, dir.path().join("views")).unwrap();
    assert_eq!(from_reader.refresh(&reader).unwrap().accounts["alice"], 8);
    let plain = EventReader::open(dir.path()).unwrap();
    let (_, raw, _) = plain.read_from_seq(0).unwrap().next().unwrap().unwrap();
    assert_eq!(
        raw.event_type, "deposit",
        "a reader without upcasters reads the file as it is"
    );
    log.rotate().unwrap();
    log.rebuild_view("balances").unwrap();
    assert_eq!(
        log.view::<Balances>("balances").unwrap().accounts["alice"],
        8
    );
    assert_eq!(log.view::<Balances>("balances").unwrap().accounts["x"], 1);
    let archived: Vec<String> = archive_lines(dir.path());
    assert_eq!(
        archived[0].as_bytes(),
        &before[..before.iter().position(|&b| b == b'\n').unwrap()]
    );

    // Two steps from one version cannot stand.
    let twice = ledger_upcasters().upcast("deposit", 1, "deposited", deposit_v1);
    drop(log);
    assert!(matches!(
        EventLog::builder(dir.path())
            .upcasters(twice.clone())
            .open(),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        EventReader::open(dir.path()).unwrap().with_upcasters(twice),
        Err(Error::InvalidConfig { .. })
    ));
}

fn count(n: u64, _: &Event) -> u64 {
    n + 1
}

fn count_deposits(n: u64, event: &Event) -> u64 {
    n + u64::from(event.event_type == "deposited")
}

#[test]
fn a_snapshot_of_another_view_version_is_rebuilt_and_of_the_same_is_loaded() {
    let dir = test_dir();
    {
        let mut log = EventLog::builder(dir.path())
            .view("n", count)
            .open()
            .unwrap();
        log.append_typed(&deposit("a", 1)).unwrap();
        log.append_typed(&Ledger::Frozen).unwrap();
        log.refresh_all().unwrap();
        log.save_views().unwrap();
    }
    assert!(
        snapshot_json(dir.path(), "n").get("version").is_none(),
        "version 0 is not written"
    );
    // Same version (0), a changed reducer: the old snapshot is loaded.
    let log = EventLog::builder(dir.path())
        .view("n", count_deposits)
        .open()
        .unwrap();
    assert_eq!(*log.view::<u64>("n").unwrap(), 2);
    drop(log);
    // The version bumped: rebuilt, and the snapshot records it.
    let mut log = EventLog::builder(dir.path())
        .view("n", count_deposits)
        .view_version("n", 1)
        .open()
        .unwrap();
    log.refresh_all().unwrap();
    assert_eq!(*log.view::<u64>("n").unwrap(), 1);
    log.save_views().unwrap();
    assert_eq!(snapshot_json(dir.path(), "n")["version"], 1);
    log.rotate().unwrap();
    assert_eq!(
        snapshot_json(dir.path(), "n")["version"],
        1,
        "kept through a rotation"
    );
    drop(log);
    let log = EventLog::builder(dir.path())
        .view("n", count_deposits)
        .view_version("n", 1)
        .open()
        .unwrap();
    assert_eq!(*log.view::<u64>("n").unwrap(), 1);
    // An edited version fails the snapshot's checksum: rebuilt, not trusted.
    drop(log);
    let path = snapshot_file(dir.path(), "n");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("\"version\":1", "\"version\":2");
    fs::write(&path, text).unwrap();
    let mut log = EventLog::builder(dir.path())
        .view("n", count)
        .view_version("n", 2)
        .open()
        .unwrap();
    log.refresh_all().unwrap();
    assert_eq!(*log.view::<u64>("n").unwrap(), 2);
}

#[test]
fn appends_through_a_shared_log_are_written_at_todays_version_too() {
    let dir = test_dir();
    let shared = EventLog::builder(dir.path())
        .upcasters(ledger_upcasters())
        .open()
        .unwrap()
        .into_shared();
    shared
        .append(&Event::from_typed(&deposit("a", 1)).unwrap())
        .unwrap();
    shared
        .append(&Event::new("deposit", json!({"acct": "b", "amt": 2})))
        .unwrap();
    let lines = active_lines(dir.path());
    assert!(lines[0].contains(r#""v":2"#), "{}", lines[0]);
    assert!(
        !lines[1].contains(r#""v":"#),
        "deposit has no upcaster into it: {}",
        lines[1]
    );
    let events: Vec<Event> = shared
        .reader()
        .read_from_seq(0)
        .unwrap()
        .map(|item| item.unwrap().1)
        .collect();
    assert_eq!(
        events[0].data,
        json!({"account": "a", "amount": 1, "currency": "EUR"})
    );
    assert_eq!(events[1].event_type, "deposited", "the old type is upcast");
}

mod same_as_values {
    //! A typed view folds exactly what a view of `Event`s decoding each
    //! event itself folds, whatever the lines hold: any text, lines
    //! written by hand in another key order or spacing, unknown types.

    use super::*;
    use proptest::prelude::*;

    /// One line to put in the log, by hand or through `append_typed`.
    #[derive(Debug, Clone)]
    enum Line {
        Typed(Ledger),
        /// A hand-written line of a known type: key order, spaces, escapes.
        Hand {
            reorder: bool,
            account: String,
            amount: u64,
        },
        Unknown(String),
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z ]{0,12}",
            any::<String>(),
            Just(r#"","ts":5,"seq":1}"#.to_owned()),
            Just("\\\"\u{e9}\u{1F600}\n\t".to_owned()),
        ]
    }

    fn line() -> impl Strategy<Value = Line> {
        prop_oneof![
            (text(), any::<u32>()).prop_map(|(account, amount)| Line::Typed(Ledger::Deposited {
                account,
                amount: u64::from(amount),
                currency: "EUR".into(),
            })),
            (text(), any::<u32>()).prop_map(|(account, amount)| Line::Typed(Ledger::Withdrawn {
                account,
                amount: u64::from(amount),
            })),
            (text(), text())
                .prop_map(|(from, to)| Line::Typed(Ledger::AccountRenamed { from, to })),
            Just(Line::Typed(Ledger::Frozen)),
            (any::<bool>(), text(), any::<u32>()).prop_map(|(reorder, account, amount)| {
                Line::Hand {
                    reorder,
                    account,
                    amount: u64::from(amount),
                }
            }),
            "[a-z_]{1,10}".prop_map(Line::Unknown),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn typed_and_value_views_agree(lines in prop::collection::vec(line(), 1..40), rotate_at in 0usize..40) {
            let dir = test_dir();
            let path = data_file(dir.path(), "app.jsonl");
            for (i, line) in lines.iter().enumerate() {
                let mut log = EventLog::open(dir.path()).unwrap();
                if i == rotate_at {
                    log.rotate().unwrap();
                }
                match line {
                    Line::Typed(event) => {
                        log.append_typed(event).unwrap();
                    }
                    Line::Unknown(t) => {
                        log.append(&Event::new(format!("x_{t}"), json!({"t": t}))).unwrap();
                    }
                    Line::Hand { reorder, account, amount } => {
                        let seq = log.next_seq();
                        drop(log);
                        let account = serde_json::to_string(account).unwrap();
                        let text = if *reorder {
                            format!(r#"{{ "seq": {seq}, "ts": 9, "data": {{"currency": "EUR", "amount": {amount}, "account": {account}}}, "type": "deposited" }}"#)
                        } else {
                            format!(r#"{{"type":"deposited","data":{{"account":{account},"amount":{amount},"currency":"EUR"}},"ts":9,"seq":{seq}}}"#)
                        };
                        append_bytes(&path, format!("{text}\n").as_bytes());
                    }
                }
            }
            let mut log = EventLog::builder(dir.path())
                .typed_view("typed", balances)
                .view("values", balances_of_values)
                .open()
                .unwrap();
            log.refresh_all().unwrap();
            let typed = log.view::<Balances>("typed").unwrap();
            let values = log.view::<Balances>("values").unwrap();
            prop_assert_eq!(typed, values);
            let known = lines.iter().filter(|l| !matches!(l, Line::Unknown(_))).count() as u64;
            prop_assert_eq!(typed.events, known);
        }
    }
}

#[test]
fn a_line_a_view_of_events_refuses_is_refused_by_a_typed_view_too() {
    let bad_lines = [
        r#"{"type":"frozen","data":null,"ts":1,"meta":5,"seq":0}"#,
        r#"{"type":"frozen","data":null,"ts":-1,"seq":0}"#,
        r#"{"type":"frozen","ts":1,"seq":0}"#,
        r#"{"type":"frozen","data":null,"ts":1,"id":7,"seq":0}"#,
        r#"{"type":"frozen","data":[1,],"ts":1,"seq":0}"#,
        r#"{"type":7,"data":null,"ts":1,"seq":0}"#,
        r#"{"type":"frozen","data":null,"ts":1,"seq":3}"#,
        // Keys twice: the reader of Events refuses them.
        r#"{"type":"deposited","data":{"account":"a","amount":5,"currency":"EUR"},"ts":1,"type":"frozen","seq":0}"#,
        r#"{"type":"frozen","data":null,"ts":1,"seq":7,"seq":0}"#,
        // A control character in the type; data the typed view passes over
        // that is not a valid value (out of range, a lone surrogate).
        "{\"type\":\"x\u{1}y\",\"data\":null,\"ts\":1,\"seq\":0}",
        r#"{"type":"interest","data":{"x":1e400},"ts":1,"seq":0}"#,
        r#"{"type":"interest","data":"\ud800","ts":1,"seq":0}"#,
        r#"{"type":"interest","data":{"x":1e400},"ts":1,"id":"i","seq":0}"#,
    ];
    let mut read_by_views = 0;
    for bad in bad_lines {
        let dir = test_dir();
        // The damaged line, then a good one.
        let good = r#"{"type":"frozen","data":null,"ts":2,"seq":1}"#;
        append_bytes(
            &data_file(dir.path(), "app.jsonl"),
            format!("{bad}\n{good}\n").as_bytes(),
        );
        let views = dir.path().join("views");
        let log = EventLog::open(dir.path());
        // The writer refuses it at open, or the views do when they read it.
        let Ok(log) = log else { continue };
        read_by_views += 1;
        let typed = View::typed("t", balances, &views)
            .unwrap()
            .refresh(&log)
            .map(|s| s.events);
        let values = View::new("v", balances_of_values, &views)
            .unwrap()
            .refresh(&log)
            .map(|s| s.events);
        assert!(
            matches!(
                (&typed, &values),
                (Err(Error::Corrupt { .. }), Err(Error::Corrupt { .. }))
            ),
            "{bad}: typed {typed:?}, values {values:?}"
        );
    }
    assert!(
        read_by_views >= 10,
        "only {read_by_views} lines reached the views"
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
enum Strict {
    Set { value: u64 },
}

fn last_set(_: u64, event: &Strict) -> u64 {
    match event {
        Strict::Set { value } => *value,
    }
}

#[test]
fn an_enum_that_denies_unknown_fields_appends_and_folds() {
    let dir = test_dir();
    let mut log = EventLog::builder(dir.path())
        .typed_view("last", last_set)
        .open()
        .unwrap();
    log.append_typed(&Strict::Set { value: 3 }).unwrap();
    // Written by hand with an id and metadata, in another key order: the
    // slow path too gives the enum only its type and data.
    let seq = log.next_seq();
    drop(log);
    let line = format!(
        r#"{{"seq":{seq},"id":"x","meta":{{"k":1}},"ts":1,"data":{{"value":9}},"type":"Set"}}"#
    );
    append_bytes(
        &data_file(dir.path(), "app.jsonl"),
        format!("{line}\n").as_bytes(),
    );
    let mut log = EventLog::builder(dir.path())
        .typed_view("last", last_set)
        .open()
        .unwrap();
    log.refresh_all().unwrap();
    assert_eq!(*log.view::<u64>("last").unwrap(), 9);
}

fn same(data: Value) -> Value {
    data
}

#[test]
fn upcasters_that_cannot_stand_are_refused_by_name() {
    let dir = test_dir();
    let cases = [
        (Upcasters::new().upcast("a", 0, "a", same), "version 0"),
        (
            Upcasters::new().upcast("a", u32::MAX, "a", same),
            "no version after it",
        ),
        (
            Upcasters::new()
                .upcast("a", 1, "a", same)
                .upcast("a", 3, "a", same),
            "from version 3 is not reached",
        ),
        (
            Upcasters::new()
                .upcast("a", 1, "b", same)
                .upcast("a", 1, "c", same),
            "two upcasters",
        ),
    ];
    for (upcasters, reason) in cases {
        match EventLog::builder(dir.path()).upcasters(upcasters).open() {
            Err(Error::InvalidConfig { reason: r }) => assert!(r.contains(reason), "{r}"),
            other => panic!("expected {reason:?}, got {other:?}"),
        }
    }
    // A chain through a rename is reached.
    let renamed = Upcasters::new()
        .upcast("a", 1, "b", same)
        .upcast("b", 2, "b", same);
    EventLog::builder(dir.path())
        .upcasters(renamed)
        .open()
        .unwrap();
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Renamed {
    total_events: u64,
}

fn count_renamed(mut state: Renamed, _: &Event) -> Renamed {
    state.total_events += 1;
    state
}

#[test]
fn a_version_bump_with_a_new_state_type_rebuilds_without_a_warning() {
    capture_warnings();
    let dir = test_dir();
    {
        let mut log = EventLog::builder(dir.path())
            .view("n", count)
            .open()
            .unwrap();
        log.append_typed(&Ledger::Frozen).unwrap();
        log.refresh_all().unwrap();
        log.save_views().unwrap();
    }
    let mut log = EventLog::builder(dir.path())
        .view("n", count_renamed)
        .view_version("n", 1)
        .open()
        .unwrap();
    log.refresh_all().unwrap();
    assert_eq!(log.view::<Renamed>("n").unwrap().total_events, 1);
    assert_eq!(warnings_about(dir.path()), Vec::<String>::new());
}
