//! Readers in other processes beside a live writer: one writer process
//! appends, batches and rotates every few KB, and is killed with SIGKILL
//! and restarted several times; three reader processes follow it from the
//! start. Each reader must see exactly the events `0..n`, in order, each
//! once, each with the content the writer gave it, without a pause when
//! the writer dies (they wait, then go on with the next writer).
//!
//! `EVENTFOLD_PROCESSES_EVENTS` sets `n` (default 100,000) and
//! `EVENTFOLD_PROCESSES_KILLS` the number of kills (default 5).

#![cfg(unix)]

mod common;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use eventfold::{Event, EventLog, EventReader};
use serde_json::json;

use common::*;

/// Set in a child's environment: the data directory.
const CHILD_DIR: &str = "EVENTFOLD_PROCESSES_DIR";
/// Set in a child's environment: how many events the history will hold.
const CHILD_EVENTS: &str = "EVENTFOLD_PROCESSES_CHILD_EVENTS";
/// Set in a writer child's environment: the seed of its batch sizes.
const CHILD_SEED: &str = "EVENTFOLD_PROCESSES_SEED";

/// Event `seq` of the history: always the same, so that a reader can
/// check what it reads, and a restarted writer can go on.
fn event_at(seq: u64) -> Event {
    let pad = "x".repeat((mix(seq) % 120) as usize);
    Event::with_ts(
        "step",
        json!({ "seq": seq, "pad": pad }),
        1_700_000_000 + seq,
    )
}

fn child_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The writer child: opens the log (recovering what a kill left), then
/// appends the history from where it stands, in batches of 1 to 20,
/// rotating every 8 KB, until it holds all the events.
#[test]
fn child_writer() {
    let (Some(dir), Some(events), Some(seed)) = (
        child_env(CHILD_DIR),
        child_env(CHILD_EVENTS),
        child_env(CHILD_SEED),
    ) else {
        return;
    };
    let events: u64 = events.parse().unwrap();
    let mut rng = Rng(seed.parse().unwrap());
    let mut log = EventLog::builder(&dir)
        .max_log_size(8 * 1024)
        .open()
        .expect("the writer opens the log");
    let mut next = log.next_seq();
    while next < events {
        let size = rng.range(1, 21).min(events - next);
        let batch: Vec<Event> = (next..next + size).map(event_at).collect();
        if size == 1 {
            log.append(&batch[0]).expect("append");
        } else {
            log.append_batch(&batch).expect("append_batch");
        }
        next += size;
    }
    println!("\n@done {next}");
}

/// A reader child: follows the log from event 0 until it has seen all the
/// events, checking each; prints how many it saw.
#[test]
fn child_reader() {
    let (Some(dir), Some(events)) = (child_env(CHILD_DIR), child_env(CHILD_EVENTS)) else {
        return;
    };
    let events: u64 = events.parse().unwrap();
    let reader = EventReader::open(&dir).expect("open a reader");
    let mut follow = reader.follow(0);
    let mut expected = 0;
    while expected < events {
        let (seq, event) = follow
            .next_timeout(Duration::from_secs(120))
            .expect("an event within 120 s")
            .unwrap_or_else(|e| panic!("reading event {expected}: {e}"));
        assert_eq!(seq, expected, "events in order, none missed or repeated");
        assert_eq!(event, event_at(seq), "the content of event {seq}");
        expected += 1;
    }
    println!("\n@seen {expected}");
}

/// Starts a writer child on `dir`.
fn spawn_writer(dir: &Path, events: u64, seed: u64, log: &Path) -> (KillOnDrop, Lines) {
    spawn_child_test(
        "child_writer",
        &[
            (CHILD_DIR, dir.as_os_str()),
            (CHILD_EVENTS, events.to_string().as_ref()),
            (CHILD_SEED, seed.to_string().as_ref()),
        ],
        log,
    )
}

type Lines = thread::JoinHandle<Vec<String>>;

#[test]
fn readers_in_other_processes_follow_a_writer_that_is_killed_and_restarted() {
    let _guard = spawning_test();
    let events = env_u64_or("EVENTFOLD_PROCESSES_EVENTS", 100_000);
    let kills = env_u64_or("EVENTFOLD_PROCESSES_KILLS", 5);
    let work = test_dir();
    let dir = work.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    let started = Instant::now();
    let readers: Vec<(KillOnDrop, Lines)> = (0..3)
        .map(|r| {
            spawn_child_test(
                "child_reader",
                &[
                    (CHILD_DIR, dir.as_os_str()),
                    (CHILD_EVENTS, events.to_string().as_ref()),
                ],
                &work.path().join(format!("reader{r}.stderr")),
            )
        })
        .collect();
    let mut rng = Rng(0x5eed);
    let mut killed_at = Vec::new();
    for round in 0..kills {
        let (mut writer, _) = spawn_writer(
            &dir,
            events,
            rng.next(),
            &work.path().join(format!("writer{round}.stderr")),
        );
        thread::sleep(Duration::from_millis(rng.range(300, 1500)));
        writer.0.kill().expect("SIGKILL the writer");
        writer.0.wait().unwrap();
        let next = EventReader::open(&dir).unwrap().next_seq().unwrap();
        killed_at.push(next);
        // Pause with no writer at all: the readers must simply wait.
        thread::sleep(Duration::from_millis(rng.range(0, 200)));
    }
    let stderr = work.path().join("writer-last.stderr");
    let (mut writer, lines) = spawn_writer(&dir, events, rng.next(), &stderr);
    let status = writer.0.wait().unwrap();
    let lines = lines.join().unwrap();
    assert!(
        status.success() && lines.contains(&format!("@done {events}")),
        "the last writer failed: {}",
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    for (r, (mut reader, lines)) in readers.into_iter().enumerate() {
        let status = reader.0.wait().unwrap();
        let lines = lines.join().unwrap();
        let log = work.path().join(format!("reader{r}.stderr"));
        assert!(
            status.success() && lines.contains(&format!("@seen {events}")),
            "reader {r} failed: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let frames = archive_frames(&dir.join(ARCHIVE)).len();
    println!(
        "{events} events, {frames} frames, writer killed at events {killed_at:?}, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        killed_at.windows(2).any(|w| w[0] < w[1]),
        "the writers made progress between kills: {killed_at:?}"
    );
}
