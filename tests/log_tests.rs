//! The event log: appending, reading back, offsets, hashes, reopening,
//! full-history reads, corruption, locking and sharing between threads.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use common::{
    active_events, all_events, append_n, append_numbered, assert_events_eq, data_file, dummy_event,
    numbered, stored_line, test_dir,
};
use eventfold::{Error, Event, EventLog};
use serde_json::json;

fn open(dir: &Path) -> EventLog {
    EventLog::open(dir).expect("open")
}

fn log_path(dir: &Path) -> PathBuf {
    data_file(dir, "app.jsonl")
}

/// Byte offsets at which the lines of `app.jsonl` start.
fn line_starts(dir: &Path) -> Vec<u64> {
    let bytes = fs::read(log_path(dir)).expect("read log");
    let mut starts = vec![0];
    starts.extend(
        bytes
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| i as u64 + 1),
    );
    starts.pop(); // the end of the file starts no line
    starts
}

/// The `n` fields of events, in order.
fn numbers(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.data["n"].as_u64().expect("n"))
        .collect()
}

/// All items of `read_from(offset)`, errors included.
fn read_from_items(log: &EventLog, offset: u64) -> Vec<eventfold::Result<(Event, u64, String)>> {
    log.read_from(offset).expect("read_from").collect()
}

/// Writes events numbered `range` to the log in `dir`, then closes it.
fn populate(dir: &Path, range: std::ops::Range<u64>) {
    append_numbered(&mut open(dir), range);
}

/// Inserts `bytes` into the closed log at the start of line `index`;
/// returns the offset where they now start.
fn insert_at_line(dir: &Path, index: usize, bytes: &[u8]) -> u64 {
    let offset = line_starts(dir)[index];
    let mut content = fs::read(log_path(dir)).expect("read log");
    content.splice(offset as usize..offset as usize, bytes.iter().copied());
    fs::write(log_path(dir), content).expect("write log");
    offset
}

/// Checks that `items` are the events numbered `0..good` followed by one
/// `Corrupt` error at `offset` in `app.jsonl`, and nothing after it.
fn assert_corrupt_after<T>(
    items: Vec<eventfold::Result<T>>,
    event_of: impl Fn(&T) -> &Event,
    good: u64,
    offset: u64,
) {
    let (last, first) = items.split_last().expect("at least the error");
    let events: Vec<Event> = first
        .iter()
        .map(|item| event_of(item.as_ref().expect("valid event")).clone())
        .collect();
    assert_eq!(numbers(&events), (0..good).collect::<Vec<_>>());
    match last {
        Err(Error::Corrupt {
            path, offset: at, ..
        }) => {
            assert!(path.ends_with("app.jsonl"), "{}", path.display());
            assert_eq!(*at, offset);
        }
        other => panic!(
            "expected Corrupt at {offset}, got {other:?}",
            other = other.as_ref().err()
        ),
    }
}

// --- Append and read back ---------------------------------------------------

/// One appended event is read back equal, at offset 0.
#[test]
fn append_one_and_read_back() {
    let dir = test_dir();
    let mut log = open(dir.path());
    let event = dummy_event("todo_added");
    assert_eq!(log.append(&event).expect("append"), 0);
    assert_eq!(active_events(&log, 0), std::slice::from_ref(&event));
    assert_eq!(all_events(&log), [event]);
}

/// Many events come back complete and in append order.
#[test]
fn many_events_read_back_in_order() {
    let dir = test_dir();
    let mut log = open(dir.path());
    append_numbered(&mut log, 0..500);
    let expected: Vec<u64> = (0..500).collect();
    assert_eq!(numbers(&active_events(&log, 0)), expected);
    assert_eq!(numbers(&all_events(&log)), expected);
    let types = ["a", "b", "c", "a"];
    let other = test_dir();
    let mut typed = open(other.path());
    for t in types {
        typed.append(&dummy_event(t)).expect("append");
    }
    assert_events_eq(active_events(&typed, 0), types.to_vec());
}

/// `read_from(offset_of_event_n)` yields exactly events `n..`.
#[test]
fn read_from_offset_returns_only_later_events() {
    let dir = test_dir();
    let mut log = open(dir.path());
    let offsets = append_numbered(&mut log, 0..10);
    for (n, &offset) in offsets.iter().enumerate() {
        assert_eq!(
            numbers(&active_events(&log, offset)),
            (n as u64..10).collect::<Vec<_>>()
        );
    }
    assert!(active_events(&log, log.active_len()).is_empty());
}

/// A new log reads as empty, both ways.
#[test]
fn empty_log_reads_nothing() {
    let dir = test_dir();
    let log = open(dir.path());
    assert_eq!(log.read_from(0).expect("read_from").count(), 0);
    assert_eq!(log.read_full().expect("read_full").count(), 0);
}

/// Events with unicode, newlines and quotes come back from disk intact.
#[test]
fn special_characters_round_trip_through_the_log() {
    let dir = test_dir();
    let mut log = open(dir.path());
    let events: Vec<Event> = [
        "日本語 🎉",
        "a\nb\r\nc",
        "tab\t\"q\" \\ \u{0}\u{1f}",
        "\u{2028}",
    ]
    .iter()
    .enumerate()
    .map(|(i, text)| Event::with_ts(*text, json!({ "text": text, "i": i }), i as u64))
    .collect();
    for event in &events {
        log.append(event).expect("append");
    }
    assert_eq!(line_starts(dir.path()).len(), events.len());
    drop(log);
    assert_eq!(active_events(&open(dir.path()), 0), events);
}

// --- Offsets ----------------------------------------------------------------

/// `append` returns the byte position of its line, `read_from` yields the
/// offset where the next event will be appended, and the last one is the
/// file length.
#[test]
fn offsets_are_byte_positions_of_lines() {
    let dir = test_dir();
    let mut log = open(dir.path());
    let mut offsets = append_numbered(&mut log, 0..5);
    offsets.push(
        log.append(&Event::with_ts("long", json!("x".repeat(1000)), 9))
            .expect("append"),
    );
    offsets.extend(append_numbered(&mut log, 5..8));
    assert_eq!(offsets, line_starts(dir.path()));

    let file_len = fs::metadata(log_path(dir.path())).expect("stat").len();
    let nexts: Vec<u64> = read_from_items(&log, 0)
        .into_iter()
        .map(|item| item.expect("valid event").1)
        .collect();
    assert_eq!(nexts[..nexts.len() - 1], offsets[1..]);
    assert_eq!(nexts.last(), Some(&file_len));
    assert_eq!(log.active_len(), file_len);
    assert_eq!(log.append(&numbered(99)).expect("append"), file_len);
}

/// Following the yielded next offsets one at a time walks the log event by
/// event.
#[test]
fn each_next_offset_seeks_to_the_next_event() {
    let dir = test_dir();
    let mut log = open(dir.path());
    append_numbered(&mut log, 0..6);
    let mut offset = 0;
    for n in 0..6 {
        let (event, next, _) = log
            .read_from(offset)
            .expect("read_from")
            .next()
            .expect("an event")
            .expect("valid event");
        assert_eq!(event, numbered(n));
        assert!(next > offset);
        offset = next;
    }
    assert_eq!(log.read_from(offset).expect("read_from").count(), 0);
}

/// An offset past the end, or inside a line, is refused.
#[test]
fn read_from_invalid_offset_is_an_error() {
    let dir = test_dir();
    let mut log = open(dir.path());
    let offsets = append_n(&mut log, 3);
    let len = log.active_len();
    for bad in [
        len + 1,
        len + 1000,
        u64::MAX,
        1,
        offsets[1] - 1,
        offsets[1] + 1,
        len - 1,
    ] {
        match log.read_from(bad) {
            Err(Error::InvalidOffset { offset, len: l, .. }) => {
                assert_eq!((offset, l), (bad, len));
            }
            Err(other) => panic!("offset {bad}: expected InvalidOffset, got {other:?}"),
            Ok(_) => panic!("offset {bad}: expected InvalidOffset, got an iterator"),
        }
    }
    let empty = test_dir();
    assert!(matches!(
        open(empty.path()).read_from(1),
        Err(Error::InvalidOffset {
            offset: 1,
            len: 0,
            ..
        })
    ));
}

// --- Line hashes ---------------------------------------------------------------

/// Hashes are 16 lowercase hex digits, the xxh3-64 of the line's bytes:
/// equal lines hash equal, different ones differently, and `read_from` and
/// `read_full` agree. Two equal events appended one after the other are two
/// different lines, since each line ends with its event's `"seq"`.
#[test]
fn line_hash_is_deterministic() {
    let dir = test_dir();
    let mut log = open(dir.path());
    log.append(&dummy_event("same")).expect("append");
    log.append(&dummy_event("same")).expect("append");
    log.append(&dummy_event("other")).expect("append");
    log.append(&numbered(1)).expect("append");

    let from: Vec<String> = read_from_items(&log, 0)
        .into_iter()
        .map(|item| item.expect("valid event").2)
        .collect();
    let full: Vec<String> = log
        .read_full()
        .expect("read_full")
        .map(|item| item.expect("valid event").1)
        .collect();
    assert_eq!(from, full);
    assert_ne!(from[0], from[1], "\"seq\":0 and \"seq\":1 differ");
    assert_eq!(from.iter().collect::<BTreeSet<_>>().len(), 4);
    for hash in &from {
        assert_eq!(hash.len(), 16, "{hash}");
        assert!(
            hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "{hash}"
        );
    }

    let content = fs::read_to_string(log_path(dir.path())).expect("read log");
    let expected: Vec<String> = content
        .lines()
        .map(|line| format!("{:016x}", xxhash_rust::xxh3::xxh3_64(line.as_bytes())))
        .collect();
    assert_eq!(from, expected);
    let events = [
        dummy_event("same"),
        dummy_event("same"),
        dummy_event("other"),
        numbered(1),
    ];
    let stored: Vec<String> = events
        .iter()
        .zip(0..)
        .map(|(event, seq)| {
            let line = stored_line(event, seq);
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(line.as_bytes()))
        })
        .collect();
    assert_eq!(from, stored);

    // The same bytes in another log give the same hashes.
    let other = test_dir();
    let mut log2 = open(other.path());
    log2.append(&dummy_event("same")).expect("append");
    log2.append(&dummy_event("same")).expect("append");
    let hashes: Vec<String> = read_from_items(&log2, 0)
        .into_iter()
        .map(|item| item.expect("valid").2)
        .collect();
    assert_eq!(hashes, from[..2]);
}

// --- Reopening ---------------------------------------------------------------

/// After close and reopen the events are all there and appends continue
/// at the end of the file.
#[test]
fn reopen_keeps_events_and_continues_appending() {
    let dir = test_dir();
    let mut log = open(dir.path());
    append_numbered(&mut log, 0..5);
    let len = log.active_len();
    drop(log);

    let mut log = open(dir.path());
    assert_eq!(log.active_len(), len);
    assert_eq!(numbers(&active_events(&log, 0)), [0, 1, 2, 3, 4]);
    assert_eq!(log.append(&numbered(5)).expect("append"), len);
    drop(log);

    let log = open(dir.path());
    assert_eq!(numbers(&all_events(&log)), [0, 1, 2, 3, 4, 5]);
    assert_eq!(line_starts(dir.path())[5], len);
}

// --- Full history -------------------------------------------------------------

/// Without an archive, `read_full` is the active log.
#[test]
fn read_full_without_archive() {
    let dir = test_dir();
    let mut log = open(dir.path());
    append_numbered(&mut log, 0..4);
    assert!(!data_file(dir.path(), "archive.jsonl.zst").exists());
    assert_eq!(numbers(&all_events(&log)), [0, 1, 2, 3]);
}

/// With an archive and an active log, the archive comes first; several
/// rotations keep their order.
#[test]
fn read_full_with_archive_and_active() {
    let dir = test_dir();
    let mut log = open(dir.path());
    append_numbered(&mut log, 0..3);
    log.rotate().expect("rotate");
    append_numbered(&mut log, 3..5);
    log.rotate().expect("rotate");
    append_numbered(&mut log, 5..7);
    assert!(data_file(dir.path(), "archive.jsonl.zst").exists());
    assert_eq!(numbers(&active_events(&log, 0)), [5, 6]);
    assert_eq!(numbers(&all_events(&log)), (0..7).collect::<Vec<_>>());
    drop(log);
    assert_eq!(
        numbers(&all_events(&open(dir.path()))),
        (0..7).collect::<Vec<_>>()
    );
}

/// Right after a rotation the active log is empty and `read_full` is the
/// archive alone.
#[test]
fn read_full_with_archive_and_empty_active() {
    let dir = test_dir();
    let mut log = open(dir.path());
    append_numbered(&mut log, 0..3);
    log.rotate().expect("rotate");
    assert_eq!(fs::metadata(log_path(dir.path())).expect("stat").len(), 0);
    assert!(active_events(&log, 0).is_empty());
    assert_eq!(numbers(&all_events(&log)), [0, 1, 2]);
}

/// With neither archive nor events, `read_full` is empty even after a
/// rotation that had nothing to do.
#[test]
fn read_full_with_neither() {
    let dir = test_dir();
    let mut log = open(dir.path());
    log.rotate().expect("rotate of an empty log");
    assert!(all_events(&log).is_empty());
}

// --- Corruption ----------------------------------------------------------------

/// A garbage line in the middle is reported as `Corrupt` at its exact
/// offset, after every event before it.
#[test]
fn garbage_line_in_the_middle_is_corrupt() {
    let dir = test_dir();
    populate(dir.path(), 0..4);
    let garbage = insert_at_line(dir.path(), 2, b"not json\n");
    let log = open(dir.path());
    assert_corrupt_after(read_from_items(&log, 0), |(e, _, _)| e, 2, garbage);
    let full: Vec<_> = log.read_full().expect("read_full").collect();
    assert_corrupt_after(full, |(e, _)| e, 2, garbage);
    // Reading from the garbage line itself fails straight away.
    assert_corrupt_after(read_from_items(&log, garbage), |(e, _, _)| e, 0, garbage);
}

/// An empty line in the middle is corrupt too.
#[test]
fn empty_line_in_the_middle_is_corrupt() {
    let dir = test_dir();
    populate(dir.path(), 0..3);
    let empty = insert_at_line(dir.path(), 1, b"\n");
    let log = open(dir.path());
    assert_corrupt_after(read_from_items(&log, 0), |(e, _, _)| e, 1, empty);
    let full: Vec<_> = log.read_full().expect("read_full").collect();
    assert_corrupt_after(full, |(e, _)| e, 1, empty);
}

/// A line that is valid JSON but not an event is corrupt as well.
#[test]
fn json_that_is_not_an_event_is_corrupt() {
    let dir = test_dir();
    populate(dir.path(), 0..2);
    let bad = insert_at_line(dir.path(), 1, b"{\"type\":\"x\"}\n");
    let log = open(dir.path());
    assert_corrupt_after(read_from_items(&log, 0), |(e, _, _)| e, 1, bad);
}

// --- Locking and opening ---------------------------------------------------------

/// A second open of a live log's directory is `Locked` and leaves
/// `app.jsonl` alone; once the first is dropped, open succeeds.
#[test]
fn second_open_is_locked() {
    let dir = test_dir();
    let mut first = open(dir.path());
    append_n(&mut first, 3);
    let before = fs::read(log_path(dir.path())).expect("read log");

    assert!(matches!(
        EventLog::open(dir.path()),
        Err(Error::Locked { .. })
    ));
    assert_eq!(fs::read(log_path(dir.path())).expect("read log"), before);

    first
        .append(&numbered(7))
        .expect("the first log still works");
    drop(first);
    let second = EventLog::open(dir.path()).expect("open after drop");
    assert_eq!(active_events(&second, 0).len(), 4);
}

/// Opening a path that is a regular file is an error, and the file is kept.
#[test]
fn open_on_a_regular_file_fails() {
    let dir = test_dir();
    let file = dir.path().join("not_a_dir");
    fs::write(&file, b"precious").expect("write file");
    assert!(matches!(EventLog::open(&file), Err(Error::Io { .. })));
    assert_eq!(fs::read(&file).expect("read file"), b"precious");
}

/// Open creates every missing directory on the path, with `views/` and
/// `app.jsonl` inside.
#[test]
fn open_creates_missing_nested_directories() {
    let dir = test_dir();
    let nested = dir.path().join("a").join("b").join("c");
    let mut log = open(&nested);
    assert!(nested.join("views").is_dir());
    assert!(nested.join("app.jsonl").is_file());
    log.append(&numbered(0)).expect("append");
    assert_eq!(numbers(&active_events(&log, 0)), [0]);
}

// --- Threads ------------------------------------------------------------------------

/// `EventLog` can move between threads.
#[test]
fn event_log_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<EventLog>();
}

/// Four threads appending through an `Arc<Mutex<EventLog>>` lose nothing.
#[test]
fn concurrent_appends_through_a_mutex_lose_nothing() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 50;
    let dir = test_dir();
    let log = Arc::new(Mutex::new(open(dir.path())));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let event = numbered(t * PER_THREAD + i);
                    log.lock().expect("lock").append(&event).expect("append");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    let log = log.lock().expect("lock");
    let seen = numbers(&all_events(&log));
    assert_eq!(seen.len(), (THREADS * PER_THREAD) as usize);
    let distinct: BTreeSet<u64> = seen.into_iter().collect();
    assert_eq!(distinct, (0..THREADS * PER_THREAD).collect());
}

/// A batch is written as consecutive lines; the offsets returned are where
/// each line starts, and the events read back in order.
#[test]
fn append_batch_returns_the_offset_of_each_line() {
    let dir = test_dir();
    let mut log = open(dir.path());
    append_numbered(&mut log, 0..2);
    let batch: Vec<Event> = (2..7).map(numbered).collect();
    let offsets = log.append_batch(&batch).expect("append_batch");
    assert_eq!(offsets, line_starts(dir.path())[2..]);
    assert_eq!(numbers(&all_events(&log)), (0..7).collect::<Vec<_>>());
    let end = fs::metadata(log_path(dir.path())).expect("stat").len();
    assert_eq!(log.append(&numbered(7)).expect("append"), end);
}

/// An empty batch writes nothing and returns no offsets.
#[test]
fn empty_batch_writes_nothing() {
    let dir = test_dir();
    let mut log = open(dir.path());
    append_numbered(&mut log, 0..1);
    let before = fs::read(log_path(dir.path())).expect("read");
    assert!(log.append_batch(&[]).expect("empty batch").is_empty());
    assert_eq!(fs::read(log_path(dir.path())).expect("read"), before);
}

/// Auto-rotation is checked once before a batch: the whole batch lands in
/// the fresh active log.
#[test]
fn append_batch_rotates_first_when_over_the_threshold() {
    let dir = test_dir();
    let mut log = EventLog::builder(dir.path())
        .max_log_size(100)
        .open()
        .expect("open");
    append_numbered(&mut log, 0..4);
    let batch: Vec<Event> = (4..10).map(numbered).collect();
    assert_eq!(log.append_batch(&batch).expect("append_batch")[0], 0);
    assert_eq!(
        numbers(&active_events(&log, 0)),
        (4..10).collect::<Vec<_>>()
    );
    assert_eq!(numbers(&all_events(&log)), (0..10).collect::<Vec<_>>());
}
