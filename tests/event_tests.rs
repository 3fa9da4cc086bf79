//! Event serialization: JSON round trips, field names, edge-case data and
//! the one-line guarantee.

mod common;

use std::fs;

use common::{data_file, dummy_event, stored_line, test_dir};
use eventfold::{Event, EventLog};
use serde_json::{Value, json};

/// Serializes with the log's own line format and parses it back.
fn round_trip(event: &Event) -> Event {
    let line = event.to_json_line().expect("serialize");
    Event::from_json_line(&line).expect("deserialize")
}

/// Asserts that `event` survives both the log's line format and plain serde_json.
fn assert_round_trips(event: &Event) {
    assert_eq!(&round_trip(event), event);
    let via_serde: Event =
        serde_json::from_str(&serde_json::to_string(event).expect("serialize")).expect("parse");
    assert_eq!(&via_serde, event);
}

/// An event whose `text` field holds `text`.
fn text_event(text: &str) -> Event {
    Event::with_ts("note", json!({ "text": text }), 42)
}

/// The error message of parsing `line` as an event, which must fail.
fn parse_error(line: &str) -> String {
    Event::from_json_line(line)
        .expect_err("an incomplete event must not parse")
        .to_string()
}

// --- Round trips -----------------------------------------------------------

/// serialize → deserialize gives an equal event.
#[test]
fn event_round_trips_through_json() {
    assert_round_trips(&dummy_event("todo_added"));
    assert_round_trips(&Event::new("created_now", json!({"text": "buy milk"})));
}

/// The type and timestamp come back exactly, including the extremes of `ts`.
#[test]
fn type_and_timestamp_are_preserved() {
    for ts in [0, 1, 1_700_000_000, u64::MAX] {
        let back = round_trip(&Event::with_ts("user.signed_up", json!(null), ts));
        assert_eq!(back.event_type, "user.signed_up");
        assert_eq!(back.ts, ts);
    }
}

/// Any JSON value is accepted as `data` and comes back unchanged.
#[test]
fn arbitrary_json_data_survives() {
    let values = [
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(-1),
        json!(0.5),
        json!(-2.25),
        json!(1.5e300),
        json!(""),
        json!([]),
        json!({}),
        json!([1, "two", null, [3.5, {"four": false}]]),
        json!({
            "user": {"id": 7, "tags": ["a", "b"], "address": {"city": "Oslo", "zip": null}},
            "big": u64::MAX,
            "neg": -9_007_199_254_740_993i64,
            "ratio": 0.125,
            "flags": [true, false],
        }),
    ];
    for data in values {
        let event = Event::with_ts("anything", data.clone(), 1);
        assert_round_trips(&event);
        assert_eq!(round_trip(&event).data, data);
    }
}

// --- Missing fields --------------------------------------------------------

/// Each of `type`, `data` and `ts` is required; a line lacking one is an
/// error naming the field.
#[test]
fn missing_fields_fail_to_deserialize() {
    let cases = [
        (r#"{"data":{},"ts":1}"#, "type"),
        (r#"{"type":"x","ts":1}"#, "data"),
        (r#"{"type":"x","data":{}}"#, "ts"),
    ];
    for (line, field) in cases {
        let message = parse_error(line);
        assert!(
            message.contains(&format!("missing field `{field}`")),
            "{line}: {message}"
        );
        assert!(serde_json::from_str::<Event>(line).is_err());
    }
    assert!(parse_error("{}").contains("missing field"));
}

/// Wrong types and non-JSON are errors too, not panics or defaults.
#[test]
fn malformed_lines_fail_to_deserialize() {
    for line in [
        r#"{"type":1,"data":{},"ts":1}"#,
        r#"{"type":"x","data":{},"ts":-1}"#,
        r#"{"type":"x","data":{},"ts":"now"}"#,
        "not json",
        "",
    ] {
        assert!(Event::from_json_line(line).is_err(), "{line:?} parsed");
    }
}

// --- Special characters ----------------------------------------------------

const SPECIAL_TEXTS: &[&str] = &[
    "héllo wörld — ñ, 日本語, Ελληνικά, עברית",
    "emoji 🎉👩‍👩‍👧 and 𝄞",
    "line one\nline two\r\nline three",
    "tab\there",
    r#"she said "hi" \"escaped\""#,
    r"back\slash \\ double C:\path\n",
    "control \u{0} \u{1} \u{8} \u{b} \u{c} \u{1b} \u{1f} \u{7f}",
    "separators \u{2028} \u{2029}",
    "",
];

/// Unicode, newlines, tabs, quotes, backslashes and control characters
/// round-trip in the data, in nested positions and in the type itself.
#[test]
fn special_characters_round_trip() {
    for &text in SPECIAL_TEXTS {
        let event = Event::with_ts(text, json!({ "text": text, "nested": [{ text: text }] }), 3);
        let back = round_trip(&event);
        assert_eq!(back, event);
        assert_eq!(back.data["text"], text);
        assert_eq!(back.event_type, text);
    }
}

// --- One line ----------------------------------------------------------------

/// `to_json_line` is compact JSON with no newline of any kind, whatever
/// the data holds.
#[test]
fn serialized_event_is_exactly_one_line() {
    for &text in SPECIAL_TEXTS {
        let line = text_event(text).to_json_line().expect("serialize");
        assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        assert_eq!(line.lines().count(), 1);
    }
    let nested = Event::with_ts("deep", json!({"a": {"b": [1, {"c": "x\ny"}]}}), 7);
    assert_eq!(
        nested.to_json_line().expect("serialize"),
        r#"{"type":"deep","data":{"a":{"b":[1,{"c":"x\ny"}]}},"ts":7}"#
    );
}

/// On disk, an event full of newlines is still one line of `app.jsonl`,
/// identical to `to_json_line` with the event's sequence number (`"seq":0`
/// for the first event) as its last key, plus its newline.
#[test]
fn appended_event_is_one_line_on_disk() {
    let dir = test_dir();
    let event = text_event("first\nsecond\n\nthird\r\n\ttabbed \"quoted\" \\");
    {
        let mut log = EventLog::open(dir.path()).expect("open");
        log.append(&event).expect("append");
    }
    let bytes = fs::read(data_file(dir.path(), "app.jsonl")).expect("read log");
    assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
    assert_eq!(bytes.last(), Some(&b'\n'));
    let line = std::str::from_utf8(&bytes[..bytes.len() - 1]).expect("UTF-8");
    assert_eq!(line, stored_line(&event, 0));
    assert_eq!(Event::from_json_line(line).expect("parse"), event);
}

// --- Field names ---------------------------------------------------------------

/// The type is stored under `"type"`; `"event_type"` is neither written
/// nor accepted in its place.
#[test]
fn type_is_stored_under_the_key_type() {
    let line = dummy_event("todo_added").to_json_line().expect("serialize");
    let value: Value = serde_json::from_str(&line).expect("JSON");
    let object = value.as_object().expect("an object");
    assert_eq!(object["type"], "todo_added");
    assert!(!object.contains_key("event_type"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["data", "ts", "type"]);

    let message = parse_error(r#"{"event_type":"x","data":null,"ts":1}"#);
    assert!(message.contains("missing field `type`"), "{message}");
}
