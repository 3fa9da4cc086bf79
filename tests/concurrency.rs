//! Concurrency and size: threads sharing one log through
//! `Arc<Mutex<EventLog>>`, an event of 10 MB, every kind of Unicode and
//! every control character, 10,000 views on one log, and (on demand, with
//! `EVENTFOLD_BIG=1`) a log of 10 million events replayed in bounded
//! memory.

mod common;

use std::env;
use std::fs;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use eventfold::{Event, EventLog};
use serde_json::json;

use common::*;

// ----------------------------------------------------------- threads

const THREADS: u64 = 8;
const OPS_PER_THREAD: u64 = 80;

/// One acknowledged event, as its writer saw it under the lock.
#[derive(Debug, Clone, Copy)]
struct Ack {
    /// Sequence number, taken under the lock: the order of acknowledgement.
    seq: u64,
    /// The offset `append` or `append_batch` returned.
    offset: u64,
    /// Its line's length, newline included.
    line_len: u64,
    /// The archive's size right after the call: which generation of the
    /// active log the offset belongs to (offsets restart at 0 after a
    /// rotation).
    archive_len: u64,
}

fn event_of(seq: u64, thread: u64) -> Event {
    Event::with_ts(
        "numbered",
        json!({"n": seq, "thread": thread}),
        1_700_000_000,
    )
}

/// Eight threads share one log, each appending single events and batches
/// and refreshing the views, with a small `max_log_size` so that
/// rotations happen all along. Afterwards: `read_full` holds every
/// acknowledged event exactly once, in the order they were acknowledged;
/// within a generation every offset is the previous one plus its line,
/// and a new generation starts at offset 0 behind a grown archive; views
/// equal a fold, before and after a reopen.
#[test]
fn threads_sharing_a_log_lose_nothing_and_keep_order() {
    let dir = test_dir();
    let log = builder_with_views(dir.path())
        .max_log_size(2_000)
        .open()
        .expect("open");
    let log = Arc::new(Mutex::new(log));
    let next = Arc::new(AtomicU64::new(0));
    let acks = Arc::new(Mutex::new(Vec::<Ack>::new()));
    let refreshes = Arc::new(AtomicU64::new(0));
    let archive = dir.path().join("archive.jsonl.zst");
    let started = Instant::now();

    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (log, next, acks, refreshes) =
                (log.clone(), next.clone(), acks.clone(), refreshes.clone());
            let archive = archive.clone();
            thread::spawn(move || {
                let mut rng = 0x2545_f491_4f6c_dd1d ^ (thread + 1);
                for _ in 0..OPS_PER_THREAD {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let mut log = log.lock().unwrap();
                    match rng % 10 {
                        0..=4 => {
                            let seq = next.fetch_add(1, Ordering::SeqCst);
                            let event = event_of(seq, thread);
                            let offset = log.append(&event).expect("append");
                            let ack = Ack {
                                seq,
                                offset,
                                // `seq` is also the event's position in the
                                // history: the number its stored line ends with.
                                line_len: stored_line(&event, seq).len() as u64 + 1,
                                archive_len: file_size(&archive),
                            };
                            acks.lock().unwrap().push(ack);
                        }
                        5..=7 => {
                            let k = 2 + (rng >> 8) % 5;
                            let first = next.fetch_add(k, Ordering::SeqCst);
                            let batch: Vec<Event> = (first..first + k)
                                .map(|seq| event_of(seq, thread))
                                .collect();
                            let offsets = log.append_batch(&batch).expect("append_batch");
                            let archive_len = file_size(&archive);
                            let mut acks = acks.lock().unwrap();
                            for ((seq, event), offset) in (first..).zip(&batch).zip(offsets) {
                                acks.push(Ack {
                                    seq,
                                    offset,
                                    line_len: stored_line(event, seq).len() as u64 + 1,
                                    archive_len,
                                });
                            }
                        }
                        _ => {
                            log.refresh_all().expect("refresh_all");
                            // Under the lock, the views have seen exactly
                            // what was acknowledged so far.
                            let acked = next.load(Ordering::SeqCst);
                            assert_eq!(*log.view::<u64>("count").unwrap(), acked);
                            let seen = log.view::<Vec<u64>>("seq").unwrap();
                            assert!(seen.iter().copied().eq(0..acked), "seq view in order");
                            refreshes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    let elapsed = started.elapsed();

    let mut log = Arc::try_unwrap(log).unwrap().into_inner().unwrap();
    let total = next.load(Ordering::SeqCst);
    let events = all_events(&log);
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (0..total).collect::<Vec<_>>(),
        "every event once, in order"
    );

    let mut acks = acks.lock().unwrap().clone();
    acks.sort_by_key(|a| a.seq);
    assert_eq!(acks.len() as u64, total);
    assert_eq!((acks[0].offset, acks[0].archive_len), (0, 0));
    let mut rotations = 0;
    for pair in acks.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.archive_len == a.archive_len {
            assert_eq!(
                b.offset,
                a.offset + a.line_len,
                "offsets follow each other: {a:?} {b:?}"
            );
        } else {
            assert!(
                b.archive_len > a.archive_len,
                "the archive only grows: {a:?} {b:?}"
            );
            assert_eq!(b.offset, 0, "a new generation starts at 0: {a:?} {b:?}");
            rotations += 1;
        }
    }
    assert!(rotations >= 5, "only {rotations} rotations");

    log.refresh_all().expect("refresh_all");
    assert_eq!(standard_views_json(&log), standard_folds_json(&events));
    drop(log);
    let mut log = open_with_views(dir.path());
    log.refresh_all().expect("refresh_all");
    assert_eq!(all_events(&log), events);
    assert_eq!(standard_views_json(&log), standard_folds_json(&events));
    println!(
        "{THREADS} threads: {total} events acknowledged, {} refreshes checked, {rotations} rotations, {:.2} s",
        refreshes.load(Ordering::Relaxed),
        elapsed.as_secs_f64()
    );
}

// -------------------------------------------------------------- sizes

fn last_text(_: String, event: &Event) -> String {
    event.data["text"].as_str().unwrap_or_default().to_owned()
}

/// An event of 10 MB goes in, comes back from `read_full`, through a view
/// (whose 10 MB snapshot is saved and loaded again), and through the
/// archive after a rotation, byte for byte.
#[test]
fn an_event_of_10_mb_round_trips() {
    let unit = "ten megabytes \"quoted\" \\ tab\t newline\n é 😀 \u{0}";
    let text = unit.repeat(10_000_000 / unit.len() + 1);
    assert!(text.len() >= 10_000_000);
    let event = Event::with_ts("big", json!({ "text": text }), 1_700_000_000);
    let small = Event::with_ts("small", json!({ "text": "after" }), 1_700_000_000);
    let dir = test_dir();
    let open = || {
        EventLog::builder(dir.path())
            .view::<String>("text", last_text)
            .view::<u64>("count", counter_reducer)
            .open()
            .expect("open")
    };
    let started = Instant::now();
    {
        let mut log = open();
        assert_eq!(log.append(&event).expect("append"), 0);
        assert_eq!(all_events(&log), std::slice::from_ref(&event));
        log.refresh_all().expect("refresh_all");
        assert!(*log.view::<String>("text").unwrap() == text);
    }
    let snapshot = fs::metadata(snapshot_file(dir.path(), "text"))
        .unwrap()
        .len();
    assert!(snapshot > 10_000_000, "the snapshot holds the text");
    {
        let mut log = open();
        assert!(
            *log.view::<String>("text").unwrap() == text,
            "loaded from the snapshot"
        );
        log.rotate().expect("rotate");
        log.append(&small).expect("append");
    }
    let mut log = open();
    assert_eq!(all_events(&log), [event.clone(), small.clone()]);
    log.rebuild_view("text").expect("rebuild");
    log.rebuild_view("count").expect("rebuild");
    assert_eq!(*log.view::<String>("text").unwrap(), "after");
    assert_eq!(*log.view::<u64>("count").unwrap(), 2);
    let archived = archive_lines(dir.path());
    assert_eq!(archived, [stored_line(&event, 0)]);
    println!(
        "10 MB event: append, read, view, snapshot, rotate, rebuild in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

/// Strings that are hard to store as JSON Lines. (Lone surrogates cannot
/// be in a Rust `String`, so they cannot reach the log: not tried.)
fn hard_strings() -> Vec<String> {
    let mut strings: Vec<String> = vec![
        // Every control character, together and each alone.
        (0u8..0x20).map(char::from).chain(['\u{7f}']).collect(),
        // C1 controls, NEL.
        ('\u{80}'..='\u{9f}').collect(),
        // Astral plane: emoji, musical symbol, Gothic, the last code point.
        "😀𝄞𐍈\u{10FFFF}\u{1F1EB}\u{1F1F7}".to_owned(),
        // Zero-width joiner sequences and zero-width characters.
        "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466} \u{200B}\u{200C}\u{200D}\u{2060}"
            .to_owned(),
        // Combining marks, stacked.
        "e\u{301} a\u{308} Z\u{337}\u{322}\u{348}a\u{338}l\u{336}g\u{335}o \u{20DD}".to_owned(),
        // Right to left, with explicit overrides and marks.
        "שלום عربي \u{202E}override\u{202C} \u{200F}\u{200E}\u{2067}iso\u{2069}".to_owned(),
        // Byte order marks at the start, the middle and the end.
        "\u{FEFF}bom\u{FEFF}mid\u{FEFF}".to_owned(),
        // Line and paragraph separators (raw line breaks in JavaScript).
        "a\u{2028}b\u{2029}c\u{85}d".to_owned(),
        // Noncharacters, the replacement character, around the surrogates.
        "\u{FFFE}\u{FFFF}\u{FFFD}\u{D7FF}\u{E000}\u{FDD0}".to_owned(),
        // JSON's own syntax.
        r#""quoted" \backslash\ /slash/ {"a":[1]}"#.to_owned(),
        String::new(),
    ];
    strings.extend((0u8..0x20).map(|c| format!("{}x{}", char::from(c), char::from(c))));
    strings.push("\u{7f}x\u{7f}".to_owned());
    strings
}

/// Every string above, as event type, as data and as an object key,
/// round-trips byte for byte through the log, `read_full`, a view and its
/// snapshot, the archive and a rebuild; the file has one line per event
/// and no raw control character but the newlines that end them.
#[test]
fn every_kind_of_unicode_and_control_character_round_trips() {
    let events: Vec<Event> = hard_strings()
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            Event::with_ts(
                s.clone(),
                json!({"text": s, "map": {s.clone(): s}, "i": i}),
                1_700_000_000,
            )
        })
        .collect();
    let expected: Texts = events.iter().fold(Texts::new(), texts_reducer);
    let dir = test_dir();
    let open = || {
        EventLog::builder(dir.path())
            .view::<Texts>("texts", texts_reducer)
            .open()
            .expect("open")
    };
    {
        let mut log = open();
        let (single, batch) = events.split_at(events.len() / 2);
        for event in single {
            log.append(event).expect("append");
        }
        log.append_batch(batch).expect("append_batch");
        assert_eq!(all_events(&log), events);
        log.refresh_all().expect("refresh_all");
        assert_eq!(*log.view::<Texts>("texts").unwrap(), expected);
    }
    let bytes = fs::read(dir.path().join("app.jsonl")).unwrap();
    assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), events.len());
    assert!(bytes.ends_with(b"\n"));
    assert!(
        bytes.iter().all(|&b| b >= 0x20 || b == b'\n'),
        "control characters are escaped"
    );
    for ((line, event), seq) in bytes.split(|&b| b == b'\n').zip(&events).zip(0..) {
        assert_eq!(line, stored_line(event, seq).as_bytes());
    }
    {
        let mut log = open();
        assert_eq!(
            *log.view::<Texts>("texts").unwrap(),
            expected,
            "from the snapshot"
        );
        log.rotate().expect("rotate");
    }
    let mut log = open();
    log.rebuild_view("texts").expect("rebuild");
    assert_eq!(
        *log.view::<Texts>("texts").unwrap(),
        expected,
        "from the archive"
    );
    let read: Vec<Event> = all_events(&log);
    assert_eq!(read, events);
    for (a, b) in read.iter().zip(&events) {
        assert_eq!(a.event_type.as_bytes(), b.event_type.as_bytes());
        assert_eq!(
            a.data["text"].as_str().unwrap().as_bytes(),
            b.data["text"].as_str().unwrap().as_bytes()
        );
    }
    let archived: Vec<Event> = archive_lines(dir.path())
        .iter()
        .map(|line| Event::from_json_line(line).unwrap())
        .collect();
    assert_eq!(
        archived, events,
        "the archive, read by the zstd crate alone"
    );
}

/// Views registered on one log, for the test below.
const MANY_VIEWS: usize = 10_000;

/// 10,000 views on one log: open, refresh_all (each replays the log and
/// saves its snapshot), reopen (each loads and checks its snapshot),
/// rotate (each snapshot moved to offset 0), more events, refresh_all:
/// every view right at every step. Timings are printed; the snapshots'
/// durable writes (two fsyncs each) are most of it, so the test runs in
/// `/dev/shm` where there is one, to measure eventfold rather than the
/// disk (`EVENTFOLD_BIG=1` runs it on the ordinary temporary directory).
#[test]
fn ten_thousand_views_on_one_log() {
    let names: Vec<String> = (0..MANY_VIEWS).map(|i| format!("v{i:05}")).collect();
    let on_disk =
        env::var_os("EVENTFOLD_BIG").is_some() || !fs::exists("/dev/shm").unwrap_or(false);
    let dir = if on_disk {
        test_dir()
    } else {
        tempfile::tempdir_in("/dev/shm").expect("temporary directory in /dev/shm")
    };
    let builder = || {
        let mut builder = EventLog::builder(dir.path());
        for (i, name) in names.iter().enumerate() {
            let reducer = if i % 2 == 0 {
                counter_reducer
            } else {
                sum_reducer
            };
            builder = builder.view::<u64>(name, reducer);
        }
        builder
    };
    let check = |log: &EventLog, count: u64, sum: u64| {
        for (i, name) in names.iter().enumerate() {
            let expected = if i % 2 == 0 { count } else { sum };
            assert_eq!(*log.view::<u64>(name).unwrap(), expected, "view {name}");
        }
    };
    let mut times = Vec::new();
    let mut timed = |what: &'static str, started: Instant| times.push((what, started.elapsed()));

    let started = Instant::now();
    let registered = builder();
    timed("register 10k views with the builder", started);
    let started = Instant::now();
    let mut log = registered.open().expect("open");
    timed("open (no snapshots)", started);
    append_numbered(&mut log, 0..20);
    let started = Instant::now();
    log.refresh_all().expect("refresh_all");
    timed("refresh_all (full replay, 10k snapshots saved)", started);
    check(&log, 20, (0..20).sum());
    drop(log);

    let registered = builder();
    let started = Instant::now();
    let mut log = registered.open().expect("open");
    timed("open (10k snapshots loaded and checked)", started);
    let started = Instant::now();
    log.refresh_all().expect("refresh_all");
    timed("refresh_all (nothing new)", started);
    check(&log, 20, (0..20).sum());
    let started = Instant::now();
    log.rotate().expect("rotate");
    timed("rotate (10k snapshots moved to offset 0)", started);
    append_numbered(&mut log, 20..30);
    let started = Instant::now();
    log.refresh_all().expect("refresh_all");
    timed("refresh_all (10 new events)", started);
    check(&log, 30, (0..30).sum());
    let started = Instant::now();
    drop(log);
    timed("drop (10k snapshots saved)", started);
    let mut log = builder().open().expect("open");
    log.refresh_all().expect("refresh_all");
    check(&log, 30, (0..30).sum());
    assert_eq!(all_events(&log).len(), 30);

    let place = if on_disk {
        "temporary directory"
    } else {
        "/dev/shm"
    };
    println!("{MANY_VIEWS} views, in {place}:");
    for (what, time) in &times {
        println!("  {what}: {:.2} s", time.as_secs_f64());
    }
}

/// The peak resident set size of this process (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

const BIG_EVENTS: u64 = 10_000_000;
const BIG_BATCH: u64 = 10_000;

/// On demand (`EVENTFOLD_BIG=1`, best with `--release`): 10 million small
/// events written with `append_batch` (rotating every 64 MiB), then
/// replayed from nothing into a counter and a sum view. The count and the
/// sum must be right and the peak RSS must stay within 64 MiB of the
/// start: the archive and the log are streamed, never loaded. Runs itself
/// again in a child process, alone, so that the peak is its own.
#[test]
fn ten_million_events_replay_in_bounded_memory() {
    if env::var_os("EVENTFOLD_BIG").is_none() {
        println!("skipped: set EVENTFOLD_BIG=1 to run");
        return;
    }
    if env::var_os("EVENTFOLD_BIG_CHILD").is_none() {
        let status = Command::new(env::current_exe().unwrap())
            .args([
                "ten_million_events_replay_in_bounded_memory",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("EVENTFOLD_BIG_CHILD", "1")
            .status()
            .expect("run the child");
        assert!(status.success(), "the child failed");
        return;
    }
    let start_rss = peak_rss_kib();
    let dir = test_dir();
    let started = Instant::now();
    {
        let mut log = EventLog::builder(dir.path())
            .max_log_size(64 << 20)
            .open()
            .expect("open");
        let mut batch = Vec::with_capacity(BIG_BATCH as usize);
        for first in (0..BIG_EVENTS).step_by(BIG_BATCH as usize) {
            batch.clear();
            batch.extend((first..first + BIG_BATCH).map(|n| Event::with_ts("e", json!(n), 1)));
            log.append_batch(&batch).expect("append_batch");
        }
    }
    let written = started.elapsed();
    let archive = file_size(&dir.path().join("archive.jsonl.zst"));
    let active = file_size(&dir.path().join("app.jsonl"));
    let after_write_rss = peak_rss_kib();

    fn sum_data(sum: u64, event: &Event) -> u64 {
        sum + event.data.as_u64().unwrap_or(0)
    }
    let started = Instant::now();
    let mut log = EventLog::builder(dir.path())
        .view::<u64>("count", counter_reducer)
        .view::<u64>("sum", sum_data)
        .open()
        .expect("open");
    log.refresh_all().expect("refresh_all");
    let replayed = started.elapsed();
    assert_eq!(*log.view::<u64>("count").unwrap(), BIG_EVENTS);
    assert_eq!(
        *log.view::<u64>("sum").unwrap(),
        BIG_EVENTS * (BIG_EVENTS - 1) / 2
    );
    let peak_rss = peak_rss_kib();
    println!(
        "{BIG_EVENTS} events: written in {:.1} s ({} MiB archive + {} MiB active log), \
         replayed into two views in {:.1} s; peak RSS {} MiB at start, {} MiB after writing, {} MiB after replay",
        written.as_secs_f64(),
        archive >> 20,
        active >> 20,
        replayed.as_secs_f64(),
        start_rss >> 10,
        after_write_rss >> 10,
        peak_rss >> 10
    );
    assert!(
        peak_rss - start_rss < 64 << 10,
        "peak RSS grew by {} MiB",
        (peak_rss - start_rss) >> 10
    );
}
