//! Positions: every event's sequence number, reading by position,
//! conditional appends, event ids and metadata, reducers that know where
//! an event sits, the state at a point in history, and the checks that
//! keep history from silently shrinking. Directories written before
//! sequence numbers existed (the checked-in fixture) get their positions
//! too.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use eventfold::{Error, Event, EventLog};
use serde_json::json;
use tempfile::TempDir;

use common::*;

/// Every event of the history with its sequence number, read from `seq`.
fn read_seq(log: &EventLog, seq: u64) -> Vec<(u64, Event)> {
    log.read_from_seq(seq)
        .and_then(|items| items.map(|i| i.map(|(seq, e, _)| (seq, e))).collect())
        .unwrap_or_else(|e| panic!("read_from_seq({seq}): {e}"))
}

/// `numbered(n)` for every `n` in `range`, each at sequence number `n`.
fn numbered_at(range: std::ops::Range<u64>) -> Vec<(u64, Event)> {
    range.map(|n| (n, numbered(n))).collect()
}

/// A log of `numbered(0..total)` whose first events are rotated into
/// frames of the given sizes, the rest left in the active log.
fn framed_log(frames: &[u64], total: u64) -> TempDir {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    let mut next = 0;
    for size in frames {
        append_numbered(&mut log, next..next + size);
        log.rotate().unwrap();
        next += size;
    }
    append_numbered(&mut log, next..total);
    dir
}

/// Opening must fail with `Corrupt` naming the file `name`.
fn assert_corrupt_open(dir: &Path, name: &str) -> String {
    match EventLog::open(dir) {
        Err(Error::Corrupt { path, detail, .. }) => {
            assert!(
                path.ends_with(name),
                "the error names {}, not {name}: {detail}",
                path.display()
            );
            detail
        }
        Err(other) => panic!("expected Corrupt naming {name}, got {other}"),
        Ok(_) => panic!("a damaged directory opened without an error ({name})"),
    }
}

// ------------------------------------------------------ sequence numbers

#[test]
fn sequence_numbers_start_at_zero_and_survive_rotation_and_reopen() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    assert_eq!(log.next_seq(), 0);
    log.append(&numbered(0)).unwrap();
    assert_eq!(log.next_seq(), 1);
    log.append_batch(&[numbered(1), numbered(2)]).unwrap();
    assert_eq!(log.next_seq(), 3);
    log.rotate().unwrap();
    assert_eq!(log.next_seq(), 3, "a rotation moves events, not positions");
    log.append(&numbered(3)).unwrap();
    drop(log);
    let log = EventLog::open(dir.path()).unwrap();
    assert_eq!(log.next_seq(), 4);
    assert_eq!(read_seq(&log, 0), numbered_at(0..4));
}

#[test]
fn each_line_carries_its_sequence_number_last() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    append_numbered(&mut log, 0..2);
    log.rotate().unwrap();
    append_numbered(&mut log, 2..4);
    let expected: Vec<String> = (0..4).map(|n| stored_line(&numbered(n), n)).collect();
    let mut lines = archive_lines(dir.path());
    let active = fs::read_to_string(dir.path().join(LOG)).unwrap();
    lines.extend(active.lines().map(str::to_owned));
    assert_eq!(lines, expected);
    assert!(lines[3].ends_with(r#","seq":3}"#), "{}", lines[3]);
}

#[test]
fn positions_survive_fifty_rotations() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    let mut n = 0;
    for round in 0..50u64 {
        // Frames of 1 to 7 events, some rounds through append_if.
        let size = 1 + round % 7;
        if round % 3 == 0 {
            let batch: Vec<Event> = (n..n + size).map(numbered).collect();
            log.append_if(n, &batch).unwrap();
        } else {
            append_numbered(&mut log, n..n + size);
        }
        n += size;
        log.rotate().unwrap();
        if round % 10 == 9 {
            drop(log);
            log = EventLog::open(dir.path()).unwrap();
        }
        assert_eq!(log.next_seq(), n, "round {round}");
    }
    append_numbered(&mut log, n..n + 3);
    n += 3;
    drop(log);
    check_index(dir.path());
    let index = fs::read_to_string(dir.path().join(INDEX)).unwrap();
    assert_eq!(index.lines().count(), 50);
    let log = EventLog::open(dir.path()).unwrap();
    for start in 0..=n {
        assert_eq!(read_seq(&log, start), numbered_at(start..n), "from {start}");
    }
}

// ------------------------------------------------------ reading by position

#[test]
fn reading_from_every_kind_of_position() {
    // Frames of events 0..40 and 40..70, then 70..85 in the active log.
    let dir = framed_log(&[40, 30], 85);
    let log = EventLog::open(dir.path()).unwrap();
    for (what, start) in [
        ("the first event", 0),
        ("inside the first frame", 17),
        ("the last event of a frame", 39),
        ("a frame boundary", 40),
        ("inside the second frame", 55),
        ("the first event of the active log", 70),
        ("inside the active log", 78),
        ("the last event", 84),
        ("the end", 85),
    ] {
        assert_eq!(read_seq(&log, start), numbered_at(start..85), "{what}");
    }
    match log.read_from_seq(86) {
        Err(Error::InvalidSeq {
            seq: 86,
            next_seq: 85,
        }) => {}
        other => panic!("past the end: {:?}", other.map(|_| ())),
    }
}

#[test]
fn reading_from_a_later_frame_does_not_decompress_the_ones_before() {
    let dir = framed_log(&[40, 30], 85);
    let frames = frame_spans(&dir.path().join(ARCHIVE));
    // Damage the middle of the first frame's compressed blocks: its header
    // (and so the open) is intact, but decoding it fails.
    let at = frames[0].start + frames[0].len / 2;
    let mut bytes = fs::read(dir.path().join(ARCHIVE)).unwrap();
    bytes[at as usize] ^= 0xff;
    fs::write(dir.path().join(ARCHIVE), &bytes).unwrap();

    let log = EventLog::open(dir.path()).unwrap();
    assert!(
        try_all_events(&log).is_err(),
        "the first frame is damaged: a full read fails"
    );
    assert_eq!(
        read_seq(&log, 40),
        numbered_at(40..85),
        "from the second frame"
    );
    assert_eq!(
        read_seq(&log, 72),
        numbered_at(72..85),
        "from the active log"
    );
}

#[test]
fn a_cursor_kept_as_a_sequence_number_misses_nothing_across_rotations() {
    let dir = test_dir();
    let mut log = EventLog::builder(dir.path())
        .max_log_size(300)
        .open()
        .unwrap();
    let mut cursor = 0;
    let mut seen = Vec::new();
    for n in 0..60 {
        log.append(&numbered(n)).unwrap();
        if n % 7 == 0 {
            for (seq, event) in read_seq(&log, cursor) {
                seen.push(event.data["n"].as_u64().unwrap());
                cursor = seq + 1;
            }
        }
    }
    for (seq, event) in read_seq(&log, cursor) {
        seen.push(event.data["n"].as_u64().unwrap());
        cursor = seq + 1;
    }
    assert!(dir.path().join(ARCHIVE).exists(), "the log rotated");
    assert_eq!(seen, (0..60).collect::<Vec<_>>());
    assert_eq!(cursor, 60);
}

#[test]
fn a_line_whose_sequence_number_is_wrong_is_reported() {
    let dir = framed_log(&[], 4);
    let text = fs::read_to_string(dir.path().join(LOG)).unwrap();
    let edited = text.replace(r#""seq":1}"#, r#""seq":7}"#);
    fs::write(dir.path().join(LOG), &edited).unwrap();
    let offset = text.find(&stored_line(&numbered(1), 1)).unwrap() as u64;
    let log = EventLog::open(dir.path()).unwrap();
    match try_all_events(&log) {
        Err(Error::Corrupt {
            path,
            offset: at,
            detail,
        }) => {
            assert!(path.ends_with(LOG), "{}", path.display());
            assert_eq!(at, offset, "{detail}");
            assert!(
                detail.contains("event 7") && detail.contains("event 1"),
                "{detail}"
            );
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|e| e.len())),
    }
}

// ------------------------------------------------------ conditional appends

#[test]
fn append_if_appends_only_at_the_expected_position() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    let offsets = log.append_if(0, &[numbered(0), numbered(1)]).unwrap();
    assert_eq!(offsets.len(), 2);
    for stale in [0, 1, 3, 100] {
        let before = fs::read(dir.path().join(LOG)).unwrap();
        match log.append_if(stale, &[numbered(9)]) {
            Err(Error::Conflict {
                expected,
                actual: 2,
            }) => assert_eq!(expected, stale),
            other => panic!("append_if({stale}): {other:?}"),
        }
        assert_eq!(
            fs::read(dir.path().join(LOG)).unwrap(),
            before,
            "nothing written"
        );
    }
    assert_eq!(log.append_if(2, &[]).unwrap(), Vec::<u64>::new());
    log.append_if(2, &[numbered(2)]).unwrap();
    assert_eq!(read_seq(&log, 0), numbered_at(0..3));
}

#[test]
fn conflict_error_says_what_was_expected_and_what_is() {
    let text = Error::Conflict {
        expected: 4,
        actual: 6,
    }
    .to_string();
    assert!(
        text.contains("event 4") && text.contains("6 events"),
        "{text}"
    );
    assert!(text.contains("nothing was written"), "{text}");
}

/// Two threads read the position, then both try to append there: exactly
/// one wins each round, and the loser's event is nowhere.
#[test]
fn two_threads_racing_append_if_exactly_one_wins_each_round() {
    const ROUNDS: u64 = 200;
    let dir = test_dir();
    let log = Arc::new(Mutex::new(EventLog::open(dir.path()).unwrap()));
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let (log, barrier) = (Arc::clone(&log), Arc::clone(&barrier));
            thread::spawn(move || {
                let mut won = Vec::new();
                for round in 0..ROUNDS {
                    barrier.wait();
                    let seen = log.lock().unwrap().next_seq();
                    barrier.wait(); // both have read before either appends
                    let event = Event::with_ts("claim", json!({"round": round, "thread": t}), 1);
                    match log.lock().unwrap().append_if(seen, &[event]) {
                        Ok(_) => won.push(round),
                        Err(Error::Conflict { expected, actual }) => {
                            assert_eq!((expected, actual), (seen, seen + 1));
                        }
                        Err(e) => panic!("append_if: {e}"),
                    }
                }
                won
            })
        })
        .collect();
    let wins: Vec<Vec<u64>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let log = log.lock().unwrap();
    assert_eq!(log.next_seq(), ROUNDS, "one event per round");
    let mut claims: BTreeMap<u64, u64> = BTreeMap::new();
    for (seq, event) in read_seq(&log, 0) {
        let round = event.data["round"].as_u64().unwrap();
        assert_eq!(seq, round, "round {round} is at its own position");
        *claims.entry(round).or_default() += 1;
        let thread = event.data["thread"].as_u64().unwrap() as usize;
        assert!(
            wins[thread].contains(&round),
            "the log holds a loser's event"
        );
    }
    assert_eq!(claims.len() as u64, ROUNDS);
    assert!(claims.values().all(|&c| c == 1));
    assert_eq!(wins[0].len() + wins[1].len(), ROUNDS as usize);
}

/// The documented recipe: a retry with `append_if` at the position first
/// meant, checking the id found there on a conflict.
fn append_once(log: &mut EventLog, seq: u64, event: &Event) -> eventfold::Result<bool> {
    match log.append_if(seq, std::slice::from_ref(event)) {
        Ok(_) => Ok(true),
        Err(Error::Conflict { .. }) => {
            let (_, there, _) = log.read_from_seq(seq)?.next().expect("seq < next_seq")?;
            Ok(there.id == event.id)
        }
        Err(e) => Err(e),
    }
}

#[test]
fn retried_append_after_a_lost_acknowledgement_is_exactly_once() {
    let dir = test_dir();
    let payment = Event::with_ts("paid", json!({"invoice": 7}), 1).with_id("pay-7-a");
    let seq = {
        let mut log = EventLog::open(dir.path()).unwrap();
        append_numbered(&mut log, 0..2);
        let seq = log.next_seq();
        log.append_if(seq, std::slice::from_ref(&payment)).unwrap();
        seq
        // The process dies here: the caller never saw the Ok.
    };
    let mut log = EventLog::open(dir.path()).unwrap();
    assert!(
        append_once(&mut log, seq, &payment).unwrap(),
        "the first attempt landed"
    );
    assert!(
        append_once(&mut log, seq, &payment).unwrap(),
        "and a second retry too"
    );
    let ids: Vec<Option<String>> = read_seq(&log, 0).into_iter().map(|(_, e)| e.id).collect();
    assert_eq!(ids, [None, None, Some("pay-7-a".to_owned())]);

    // An attempt that never reached the disk is appended by its retry.
    let refund = Event::with_ts("refunded", json!({"invoice": 7}), 2).with_id("refund-7");
    let seq = log.next_seq();
    assert!(append_once(&mut log, seq, &refund).unwrap());
    assert_eq!(log.next_seq(), seq + 1);

    // Someone else's event at the position: not ours, decide again.
    let late = Event::with_ts("paid", json!({"invoice": 8}), 3).with_id("pay-8");
    log.append(&numbered(99)).unwrap();
    assert!(!append_once(&mut log, seq + 1, &late).unwrap());
    assert!(
        read_seq(&log, 0)
            .iter()
            .all(|(_, e)| e.id.as_deref() != Some("pay-8"))
    );
}

// ------------------------------------------------------ ids and metadata

#[test]
fn ids_and_metadata_round_trip_and_are_absent_when_unset() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    let plain = Event::with_ts("plain", json!(1), 5);
    let rich = Event::with_ts("rich", json!({"a": [1, 2]}), 6)
        .with_id("01JF8Z3K9Q")
        .with_meta("actor", json!("ana"))
        .with_meta("correlation_id", json!("req-19"))
        .with_meta("causation", json!({"seq": 0}));
    log.append(&plain).unwrap();
    log.append(&rich).unwrap();
    let text = fs::read_to_string(dir.path().join(LOG)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], r#"{"type":"plain","data":1,"ts":5,"seq":0}"#);
    assert_eq!(
        lines[1],
        r#"{"type":"rich","data":{"a":[1,2]},"ts":6,"id":"01JF8Z3K9Q","meta":{"actor":"ana","causation":{"seq":0},"correlation_id":"req-19"},"seq":1}"#
    );
    log.rotate().unwrap();
    drop(log);
    let log = EventLog::open(dir.path()).unwrap();
    assert_eq!(read_seq(&log, 0), vec![(0, plain), (1, rich)]);
}

#[test]
fn metadata_that_would_not_read_back_is_refused() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    let reserved =
        Event::new("x", json!(null)).with_meta("$serde_json::private::RawValue", json!("{}"));
    assert!(matches!(
        log.append(&reserved),
        Err(Error::InvalidEvent { .. })
    ));
    let mut deep = json!(1);
    for _ in 0..Event::MAX_DEPTH + 1 {
        deep = json!([deep]);
    }
    let deep = Event::new("x", json!(null)).with_meta("deep", deep);
    assert!(matches!(log.append(&deep), Err(Error::InvalidEvent { .. })));
    assert_eq!(log.active_len(), 0);
    assert_eq!(log.next_seq(), 0);
}

// ------------------------------------------------------ reducers and history

fn with_seq_reducer(mut state: Vec<[u64; 2]>, seq: u64, event: &Event) -> Vec<[u64; 2]> {
    state.push([seq, event.data["n"].as_u64().unwrap()]);
    state
}

#[test]
fn a_reducer_with_sequence_numbers_sees_each_events_position() {
    let dir = test_dir();
    let open = |dir: &Path| {
        EventLog::builder(dir)
            .view_with_seq::<Vec<[u64; 2]>>("at", with_seq_reducer)
            .max_log_size(200)
            .open()
            .unwrap()
    };
    let expected = |n: u64| (0..n).map(|i| [i, i]).collect::<Vec<_>>();
    let mut log = open(dir.path());
    append_numbered(&mut log, 0..10);
    log.refresh_all().unwrap();
    assert_eq!(*log.view::<Vec<[u64; 2]>>("at").unwrap(), expected(10));
    drop(log);
    // From its snapshot, across the rotations that happen meanwhile.
    let mut log = open(dir.path());
    append_numbered(&mut log, 10..25);
    log.refresh_all().unwrap();
    assert_eq!(*log.view::<Vec<[u64; 2]>>("at").unwrap(), expected(25));
    log.rebuild_view("at").unwrap();
    assert_eq!(*log.view::<Vec<[u64; 2]>>("at").unwrap(), expected(25));
    assert!(dir.path().join(ARCHIVE).exists());
}

#[test]
fn state_at_folds_up_to_and_including_the_position() {
    let dir = framed_log(&[5, 5], 14);
    let log = EventLog::open(dir.path()).unwrap();
    for seq in 0..14 {
        let expected: Vec<u64> = (0..=seq).collect();
        assert_eq!(
            log.state_at(seq_reducer, seq).unwrap(),
            expected,
            "at {seq}"
        );
    }
    assert!(matches!(
        log.state_at(seq_reducer, 14),
        Err(Error::InvalidSeq {
            seq: 14,
            next_seq: 14
        })
    ));
}

// ------------------------------------------------------ history cannot shrink

#[test]
fn a_deleted_archive_is_reported_not_hidden() {
    let dir = framed_log(&[3, 3], 8);
    fs::remove_file(dir.path().join(ARCHIVE)).unwrap();
    let detail = assert_corrupt_open(dir.path(), ARCHIVE);
    assert!(detail.contains("lost"), "{detail}");
}

#[test]
fn an_archive_that_lost_its_last_frame_is_reported() {
    let dir = framed_log(&[3, 3], 8);
    let frames = frame_spans(&dir.path().join(ARCHIVE));
    let archive = OpenOptions::new()
        .write(true)
        .open(dir.path().join(ARCHIVE))
        .unwrap();
    archive.set_len(frames[1].start).unwrap();
    assert_corrupt_open(dir.path(), ARCHIVE);
}

#[test]
fn a_lost_archive_and_index_are_caught_by_the_active_logs_first_position() {
    let dir = framed_log(&[3, 3], 8);
    fs::remove_file(dir.path().join(ARCHIVE)).unwrap();
    fs::remove_file(dir.path().join(INDEX)).unwrap();
    let detail = assert_corrupt_open(dir.path(), LOG);
    assert!(detail.contains("event 6"), "{detail}");
}

#[test]
fn an_old_copy_of_the_active_log_is_reported() {
    let dir = framed_log(&[], 3);
    let old = fs::read(dir.path().join(LOG)).unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    log.rotate().unwrap();
    drop(log);
    // The active log's events are already in the archive.
    fs::write(dir.path().join(LOG), &old).unwrap();
    let detail = assert_corrupt_open(dir.path(), LOG);
    assert!(detail.contains("older than the archive"), "{detail}");
}

#[test]
fn an_archive_replaced_by_another_is_reported() {
    let dir = framed_log(&[3, 3], 8);
    let len = file_size(&dir.path().join(ARCHIVE));
    fs::write(dir.path().join(ARCHIVE), vec![b'x'; len as usize]).unwrap();
    assert_corrupt_open(dir.path(), ARCHIVE);
}

#[test]
fn a_damaged_index_is_reported_with_its_offset() {
    let dir = framed_log(&[3, 3], 8);
    let index = fs::read_to_string(dir.path().join(INDEX)).unwrap();
    let second = index.find('\n').unwrap() as u64 + 1;
    fs::write(
        dir.path().join(INDEX),
        index.replacen(r#""events":3"#, r#""events":4"#, 2),
    )
    .unwrap();
    match EventLog::open(dir.path()) {
        Err(Error::Corrupt { path, offset, .. }) => {
            assert!(path.ends_with(INDEX));
            assert_eq!(offset, 0, "the first line fails its checksum");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    // A torn last line, with no rotation under way, is damage too.
    fs::write(dir.path().join(INDEX), &index[..index.len() - 5]).unwrap();
    match EventLog::open(dir.path()) {
        Err(Error::Corrupt { path, offset, .. }) => {
            assert!(path.ends_with(INDEX));
            assert_eq!(offset, second);
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn a_removed_index_is_rebuilt_from_the_archive() {
    capture_warnings();
    let dir = framed_log(&[3, 4], 9);
    let index = fs::read(dir.path().join(INDEX)).unwrap();
    fs::remove_file(dir.path().join(INDEX)).unwrap();
    let log = EventLog::open(dir.path()).unwrap();
    assert_eq!(read_seq(&log, 0), numbered_at(0..9));
    assert_eq!(fs::read(dir.path().join(INDEX)).unwrap(), index);
    assert!(
        warnings_about(dir.path())
            .iter()
            .any(|w| w.contains("created")),
        "the rebuild is logged"
    );
}

// ------------------------------------------------------ directories from before

/// The events of `tests/fixtures/v0.1-two-frames`, as the program that
/// wrote it (eventfold 0.1.0, before sequence numbers) made them.
fn fixture_event(i: u64) -> Event {
    let ts = 1_764_547_200 + i * 60;
    match i % 4 {
        0 => Event::with_ts(
            "todo_added",
            json!({"id": i, "text": format!("task {i} — ünïcødé \"quoted\"\nline")}),
            ts,
        ),
        1 => Event::with_ts("todo_done", json!({"id": i - 1}), ts),
        2 => Event::with_ts(
            "tagged",
            json!({"id": i, "tags": ["a", {"nested": [i, 1.5, null, true]}]}),
            ts,
        ),
        _ => Event::with_ts("ping", json!(null), ts),
    }
}

fn by_type(mut m: BTreeMap<String, u64>, e: &Event) -> BTreeMap<String, u64> {
    *m.entry(e.event_type.clone()).or_default() += 1;
    m
}

/// A copy of the fixture, opened with the views it was written with.
fn open_fixture() -> (TempDir, EventLog) {
    let dir = test_dir();
    copy_data_dir(Path::new("tests/fixtures/v0.1-two-frames"), dir.path());
    let log = fixture_log(dir.path());
    (dir, log)
}

fn fixture_log(dir: &Path) -> EventLog {
    EventLog::builder(dir)
        .view::<u64>("count", counter_reducer)
        .view::<BTreeMap<String, u64>>("by_type", by_type)
        .open()
        .unwrap()
}

fn fixture_events(range: std::ops::Range<u64>) -> Vec<(u64, Event)> {
    range.map(|i| (i, fixture_event(i))).collect()
}

#[test]
fn a_directory_from_before_positions_opens_with_every_event_numbered() {
    capture_warnings();
    let (dir, mut log) = open_fixture();
    assert_eq!(log.next_seq(), 85);
    let all: Vec<Event> = all_events(&log);
    assert_eq!(all, (0..85).map(fixture_event).collect::<Vec<_>>());
    for start in [0, 20, 39, 40, 69, 70, 77, 84, 85] {
        assert_eq!(
            read_seq(&log, start),
            fixture_events(start..85),
            "from {start}"
        );
    }
    // The snapshots were loaded as they are, not rebuilt.
    assert_eq!(*log.view::<u64>("count").unwrap(), 85);
    assert!(
        !warnings_about(dir.path())
            .iter()
            .any(|w| w.contains("rebuilding")),
        "{:?}",
        warnings_about(dir.path())
    );
    // The archive's two frames were indexed.
    check_index(dir.path());
    assert_eq!(
        fs::read_to_string(dir.path().join(INDEX))
            .unwrap()
            .lines()
            .count(),
        2
    );
    // Old lines stay as they were; new ones carry their number.
    log.append_if(85, &[fixture_event(85)]).unwrap();
    assert!(matches!(
        log.append_if(85, &[fixture_event(86)]),
        Err(Error::Conflict {
            expected: 85,
            actual: 86
        })
    ));
    log.refresh_all().unwrap();
    assert_eq!(*log.view::<u64>("count").unwrap(), 86);
    assert_eq!(read_seq(&log, 71), fixture_events(71..86));
    assert_eq!(log.state_at(counter_reducer, 80).unwrap(), 81);
    let text = fs::read_to_string(dir.path().join(LOG)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 16);
    assert_eq!(lines[0], fixture_event(70).to_json_line().unwrap());
    assert_eq!(lines[15], stored_line(&fixture_event(85), 85));
    // Rotating the mixed active log keeps every position.
    log.rotate().unwrap();
    drop(log);
    let log = fixture_log(dir.path());
    assert_eq!(read_seq(&log, 0), fixture_events(0..86));
    check_index(dir.path());
}

#[test]
fn a_view_with_sequence_numbers_on_a_directory_from_before() {
    let (dir, log) = open_fixture();
    drop(log);
    let mut log = EventLog::builder(dir.path())
        .view::<u64>("count", counter_reducer)
        .view_with_seq::<Vec<u64>>("seqs", |mut s, seq, _| {
            s.push(seq);
            s
        })
        .open()
        .unwrap();
    log.refresh_all().unwrap();
    assert_eq!(
        *log.view::<Vec<u64>>("seqs").unwrap(),
        (0..85).collect::<Vec<_>>()
    );
}

/// A rotation that the old version was doing when it crashed, after it
/// truncated `app.jsonl`: the new version finishes it and indexes every
/// frame.
#[test]
fn a_rotation_interrupted_by_the_old_version_is_completed() {
    let dir = test_dir();
    copy_data_dir(Path::new("tests/fixtures/v0.1-two-frames"), dir.path());
    let d = dir.path();
    let archive_len = file_size(&d.join(ARCHIVE));
    let active = fs::read(d.join(LOG)).unwrap();
    fs::write(
        d.join(INTENT),
        intent_record(archive_len, active.len() as u64),
    )
    .unwrap();
    let frame = zstd::encode_all(&active[..], 1).unwrap();
    append_bytes(&d.join(ARCHIVE), &frame);
    fs::write(d.join(LOG), b"").unwrap();

    let log = fixture_log(d);
    assert_eq!(log.next_seq(), 85);
    assert_eq!(read_seq(&log, 60), fixture_events(60..85));
    assert!(!d.join(INTENT).exists());
    drop(log);
    check_index(d);
    assert_eq!(
        fs::read_to_string(d.join(INDEX)).unwrap().lines().count(),
        3
    );
}

// ------------------------------------------------------ frames of a rotation

/// Event `n` with about 1 KiB of data, so that a few thousand of them
/// make a rotation write several frames.
fn padded(n: u64) -> Event {
    Event::with_ts("padded", json!({"n": n, "pad": "p".repeat(1000)}), 1)
}

/// A directory whose active log holds `padded(0..n)`, and a copy of it
/// rotated.
fn large_rotation(n: u64) -> (TempDir, TempDir) {
    let before = test_dir();
    let mut log = EventLog::open(before.path()).unwrap();
    let batch: Vec<Event> = (0..n).map(padded).collect();
    log.append_batch(&batch).unwrap();
    drop(log);
    let after = test_dir();
    copy_data_dir(before.path(), after.path());
    EventLog::open(after.path()).unwrap().rotate().unwrap();
    (before, after)
}

#[test]
fn a_large_rotation_writes_frames_of_whole_lines_each_indexed() {
    let (_, after) = large_rotation(3000);
    let frames = frame_spans(&after.path().join(ARCHIVE));
    assert!(frames.len() >= 3, "{} frames for 3 MB", frames.len());
    for frame in &frames {
        assert_eq!(frame.content.last(), Some(&b'\n'), "a frame ends a line");
        assert!(
            frame.content.len() <= 1024 * 1024 + 1100,
            "{}",
            frame.content.len()
        );
    }
    check_index(after.path());
    let log = EventLog::open(after.path()).unwrap();
    for start in [0, 999, 1000, 1500, 2999, 3000] {
        let read = read_seq(&log, start);
        let expected: Vec<(u64, Event)> = (start..3000).map(|n| (n, padded(n))).collect();
        assert_eq!(read, expected, "from {start}");
    }
}

#[test]
fn a_crash_between_the_frames_of_a_rotation_rolls_back() {
    let (before, after) = large_rotation(3000);
    let frames = frame_spans(&after.path().join(ARCHIVE));
    let archive = fs::read(after.path().join(ARCHIVE)).unwrap();
    let log_len = file_size(&before.path().join(LOG));
    let cuts = [
        frames[1].start,                     // one whole frame written
        frames[1].start + frames[1].len / 2, // and half of the next
        archive.len() as u64,                // all of them, not yet indexed
    ];
    for cut in cuts {
        let dir = test_dir();
        copy_data_dir(before.path(), dir.path());
        fs::write(dir.path().join(INTENT), intent_record(0, log_len)).unwrap();
        fs::write(dir.path().join(ARCHIVE), &archive[..cut as usize]).unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.next_seq(), 3000, "cut at {cut}");
        assert_eq!(
            log.active_len(),
            log_len,
            "rolled back: the active log kept"
        );
        drop(log);
        assert!(
            !dir.path().join(ARCHIVE).exists(),
            "a first rotation's archive removed"
        );
        assert!(!dir.path().join(INTENT).exists());
    }
}

#[test]
fn a_crash_after_truncation_records_every_frame_of_the_rotation() {
    let (before, after) = large_rotation(3000);
    let log_len = file_size(&before.path().join(LOG));
    let index = fs::read_to_string(after.path().join(INDEX)).unwrap();
    let first_line = index.find('\n').unwrap() + 1;
    for written in [0, first_line, first_line + 10, index.len()] {
        let dir = test_dir();
        copy_data_dir(after.path(), dir.path());
        fs::write(dir.path().join(INTENT), intent_record(0, log_len)).unwrap();
        fs::write(dir.path().join(INDEX), &index[..written]).unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.next_seq(), 3000, "{written} bytes of the index written");
        assert_eq!(read_seq(&log, 2990).len(), 10);
        drop(log);
        assert_eq!(fs::read_to_string(dir.path().join(INDEX)).unwrap(), index);
        check_index(dir.path());
    }
}

// ------------------------------------------------------ found by review
//
// Each of these was found by a review of the change that brought sequence
// numbers, and failed before its fix.

/// Replaces the last occurrence of `from` in the file at `path`.
fn replace_last(path: &Path, from: &str, to: &str) {
    let mut text = fs::read_to_string(path).unwrap();
    let i = text.rfind(from).expect("the text to replace");
    text.replace_range(i..i + from.len(), to);
    fs::write(path, text).unwrap();
}

/// A one-bit flip in the last line's `seq` was taken as the next position:
/// appends were then numbered wrong for ever.
#[test]
fn a_damaged_last_position_is_reported_not_trusted() {
    let dir = framed_log(&[], 10);
    let text = fs::read_to_string(dir.path().join(LOG)).unwrap();
    let last = text.trim_end().rfind('\n').unwrap() as u64 + 1;
    replace_last(&dir.path().join(LOG), r#""seq":9}"#, r#""seq":1}"#);
    match EventLog::open(dir.path()) {
        Err(Error::Corrupt {
            path,
            offset,
            detail,
        }) => {
            assert!(path.ends_with(LOG));
            assert_eq!(offset, last, "{detail}");
            assert!(
                detail.contains("event 1") && detail.contains("event 9"),
                "{detail}"
            );
        }
        other => panic!("{:?}", other.map(|l| l.next_seq())),
    }
    // The line before the last, damaged: the two disagree, and the open
    // names the line that is out of place.
    let dir = framed_log(&[], 10);
    let text = fs::read_to_string(dir.path().join(LOG)).unwrap();
    let eighth = text.find(&stored_line(&numbered(8), 8)).unwrap() as u64;
    replace_last(&dir.path().join(LOG), r#""seq":8}"#, r#""seq":6}"#);
    match EventLog::open(dir.path()) {
        Err(Error::Corrupt { offset, detail, .. }) => {
            assert_eq!(offset, eighth, "{detail}");
            assert!(
                detail.contains("event 6") && detail.contains("event 8"),
                "{detail}"
            );
        }
        other => panic!("{:?}", other.map(|l| l.next_seq())),
    }
}

/// A `seq` of `u64::MAX` overflowed (a panic in debug builds).
#[test]
fn the_largest_position_is_an_error_not_an_overflow() {
    let dir = framed_log(&[], 2);
    replace_last(
        &dir.path().join(LOG),
        r#""seq":1}"#,
        &format!(r#""seq":{}}}"#, u64::MAX),
    );
    assert_corrupt_open(dir.path(), LOG);

    let dir = framed_log(&[], 1);
    append_bytes(
        &dir.path().join(LOG),
        format!("{}\n", stored_line(&numbered(1), u64::MAX)).as_bytes(),
    );
    append_bytes(
        &dir.path().join(LOG),
        format!("{}\n", stored_line(&numbered(2), 2)).as_bytes(),
    );
    let log = EventLog::open(dir.path());
    // Either the open or the read reports it; neither panics.
    if let Ok(log) = log {
        let read: eventfold::Result<Vec<_>> = log.read_from(0).unwrap().collect();
        assert!(matches!(read, Err(Error::Corrupt { .. })));
    }
}

/// The index that opening writes for an archive it had not indexed was
/// appended in place: cut short by a crash or a full disk, it kept every
/// later open from working. It is now written beside and renamed: a crash
/// leaves at most a temporary file, which the next open removes.
#[test]
fn an_interrupted_rebuild_of_the_index_is_done_again() {
    let dir = framed_log(&[1; 10], 10);
    let index = fs::read(dir.path().join(INDEX)).unwrap();
    fs::remove_file(dir.path().join(INDEX)).unwrap();
    fs::write(
        dir.path().join(format!("{INDEX}.tmp")),
        &index[..index.len() / 2],
    )
    .unwrap();
    let log = EventLog::open(dir.path()).unwrap();
    assert_eq!(read_seq(&log, 0), numbered_at(0..10));
    drop(log);
    assert_eq!(fs::read(dir.path().join(INDEX)).unwrap(), index);
    assert!(!dir.path().join(format!("{INDEX}.tmp")).exists());
}

/// A symbolic link at the index was read through, then replaced by a file
/// holding only the next rotation's line: the next open failed.
#[cfg(unix)]
#[test]
fn a_link_at_the_index_is_replaced_by_a_whole_index() {
    let dir = framed_log(&[3, 3], 6);
    let outside = test_dir();
    let target = outside.path().join("index.jsonl");
    fs::rename(dir.path().join(INDEX), &target).unwrap();
    let original = fs::read(&target).unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join(INDEX)).unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    append_numbered(&mut log, 6..9);
    log.rotate().unwrap();
    drop(log);
    let meta = fs::symlink_metadata(dir.path().join(INDEX)).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the link was replaced by a file"
    );
    assert_eq!(
        fs::read(&target).unwrap(),
        original,
        "the link's target is untouched"
    );
    check_index(dir.path());
    let log = EventLog::open(dir.path()).unwrap();
    assert_eq!(read_seq(&log, 0), numbered_at(0..9));
}

/// Recovery cut the index through a symbolic link planted there, changing
/// a file outside the data directory.
#[cfg(unix)]
#[test]
fn recovery_never_cuts_through_a_link_at_the_index() {
    let dir = framed_log(&[3], 6);
    let outside = test_dir();
    let archive_len = file_size(&dir.path().join(ARCHIVE));
    let log_len = file_size(&dir.path().join(LOG));
    fs::write(dir.path().join(INTENT), intent_record(archive_len, log_len)).unwrap();
    let target = outside.path().join("precious.txt");
    let mut content = fs::read(dir.path().join(INDEX)).unwrap();
    content.extend_from_slice(b"bytes that are not eventfold's\n");
    fs::write(&target, &content).unwrap();
    fs::remove_file(dir.path().join(INDEX)).unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join(INDEX)).unwrap();
    let log = EventLog::open(dir.path()).unwrap();
    assert_eq!(read_seq(&log, 0), numbered_at(0..6));
    drop(log);
    assert_eq!(
        fs::read(&target).unwrap(),
        content,
        "the target is untouched"
    );
    check_index(dir.path());
}

/// Indexing an archive counted its lines without looking at their own
/// numbers: an archive that lost its first frame, with its index gone too,
/// was numbered from 0 again.
#[test]
fn indexing_an_archive_checks_the_numbers_its_lines_carry() {
    let dir = framed_log(&[3, 3], 6);
    let frames = frame_spans(&dir.path().join(ARCHIVE));
    let bytes = fs::read(dir.path().join(ARCHIVE)).unwrap();
    fs::write(dir.path().join(ARCHIVE), &bytes[frames[0].len as usize..]).unwrap();
    fs::remove_file(dir.path().join(INDEX)).unwrap();
    let detail = assert_corrupt_open(dir.path(), ARCHIVE);
    assert!(
        detail.contains("event 3") && detail.contains("event 0"),
        "{detail}"
    );
}
