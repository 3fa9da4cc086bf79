//! Group commit: threads appending through one `SharedLog` at once. Every
//! acknowledged event is in the log exactly once, at the sequence number
//! its call returned, in the order of acknowledgement; conditional appends
//! see the appends committed before them; a SIGKILL loses nothing
//! acknowledged. (A failed write of a group is in `tests/write_failures.rs`.)

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use eventfold::{Error, Event, EventLog};
use serde_json::json;

use common::*;

const THREADS: u64 = 8;

/// Event `i` of thread `t`.
fn event_of(t: u64, i: u64) -> Event {
    Event::with_ts("appended", json!({ "t": t, "i": i }), 1_700_000_000)
}

#[test]
fn eight_threads_append_through_one_handle_and_every_event_is_there_once() {
    let _guard = in_process_test();
    const PER_THREAD: u64 = 300;
    let dir = test_dir();
    let log = EventLog::builder(dir.path())
        .max_log_size(8 * 1024)
        .view::<u64>("count", counter_reducer)
        .open()
        .unwrap();
    let shared = log.into_shared();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let shared = shared.clone();
            thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..PER_THREAD {
                    let seq = if i % 3 == 0 {
                        let seqs = shared
                            .append_batch(&[event_of(t, i), event_of(t, i + 1000)])
                            .unwrap();
                        assert_eq!(seqs.end - seqs.start, 2);
                        acked.push((seqs.start + 1, event_of(t, i + 1000)));
                        seqs.start
                    } else {
                        shared.append(&event_of(t, i)).unwrap()
                    };
                    acked.push((seq, event_of(t, i)));
                }
                acked
            })
        })
        .collect();
    let mut acked = BTreeMap::new();
    for thread in threads {
        let mine = thread.join().unwrap();
        let seqs: Vec<u64> = mine.iter().map(|(seq, _)| *seq).collect();
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(seqs.len(), sorted.len());
        for (seq, event) in mine {
            assert!(acked.insert(seq, event).is_none(), "seq {seq} given twice");
        }
    }
    let total = THREADS * (PER_THREAD + PER_THREAD.div_ceil(3));
    assert_eq!(acked.len() as u64, total);
    assert_eq!(shared.next_seq(), total);
    let history: Vec<(u64, Event)> = shared.with_log(|log| {
        log.read_from_seq(0)
            .unwrap()
            .map(|item| item.map(|(seq, event, _)| (seq, event)).unwrap())
            .collect()
    });
    assert_eq!(history, acked.into_iter().collect::<Vec<_>>());
    let count = shared.with_log(|log| {
        log.refresh_all().unwrap();
        *log.view::<u64>("count").unwrap()
    });
    assert_eq!(count, total);
    assert!(
        dir.path().join(ARCHIVE).exists(),
        "the log rotated while the threads appended"
    );
}

#[test]
fn conditional_appends_through_one_handle_see_every_append_before_them() {
    let _guard = in_process_test();
    const PER_THREAD: u64 = 50;
    let dir = test_dir();
    let shared = EventLog::open(dir.path()).unwrap().into_shared();
    let conflicts = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let shared = shared.clone();
            let conflicts = Arc::clone(&conflicts);
            thread::spawn(move || {
                // Each thread claims the next sequence number for itself,
                // PER_THREAD times: only one claim per number can win.
                let mut won = Vec::new();
                while (won.len() as u64) < PER_THREAD {
                    let seen = shared.next_seq();
                    match shared.append_if(seen, &[event_of(t, seen)]) {
                        Ok(seqs) => {
                            assert_eq!(seqs, seen..seen + 1);
                            won.push(seen);
                        }
                        Err(Error::Conflict { expected, actual }) => {
                            assert_eq!(expected, seen);
                            assert!(actual > seen);
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                won
            })
        })
        .collect();
    let mut winner = BTreeMap::new();
    for (t, thread) in threads.into_iter().enumerate() {
        for seq in thread.join().unwrap() {
            assert!(winner.insert(seq, t as u64).is_none(), "{seq} won twice");
        }
    }
    let events = shared.with_log(|log| all_events(log));
    assert_eq!(events.len() as u64, THREADS * PER_THREAD);
    for (seq, event) in events.iter().enumerate() {
        let seq = seq as u64;
        assert_eq!(*event, event_of(winner[&seq], seq), "event {seq}");
    }
    println!("{} conflicts refused", conflicts.load(Ordering::Relaxed));
}

/// Set in the child's environment: the data directory to append to.
const CHILD_DIR: &str = "EVENTFOLD_GROUP_CHILD_DIR";

/// The child: eight threads append through one handle until killed,
/// printing `@SEQ T I` for every acknowledged event.
#[test]
fn child_appends_from_eight_threads() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let shared = EventLog::builder(&dir)
        .max_log_size(16 * 1024)
        .open()
        .expect("open")
        .into_shared();
    let start = shared.next_seq();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let shared = shared.clone();
            thread::spawn(move || {
                for i in start.. {
                    let seq = shared.append(&event_of(t, i)).expect("append");
                    println!("@{seq} {t} {i}");
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(60));
    drop(threads);
}

#[cfg(unix)]
#[test]
fn a_kill_loses_no_event_acknowledged_through_the_shared_handle() {
    let _guard = spawning_test();
    let dir = test_dir();
    let mut acked = BTreeMap::new();
    for round in 0..4_u64 {
        let stderr = dir.path().join("child.stderr");
        let (mut child, lines) = spawn_child_test(
            "child_appends_from_eight_threads",
            &[(CHILD_DIR, dir.path().join("data").as_os_str())],
            &stderr,
        );
        thread::sleep(Duration::from_millis(300 + 150 * round));
        child.0.kill().expect("SIGKILL the child");
        child.0.wait().unwrap();
        for line in lines.join().unwrap() {
            let mut parts = line[1..].split(' ').map(|p| p.parse::<u64>().unwrap());
            let (seq, t, i) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            assert!(acked.insert(seq, event_of(t, i)).is_none(), "{seq} twice");
        }
        let log = EventLog::open(dir.path().join("data")).unwrap();
        let history = all_events(&log);
        for (seq, event) in &acked {
            assert_eq!(
                history.get(*seq as usize),
                Some(event),
                "round {round}: acknowledged event {seq}"
            );
        }
        // Unacknowledged events (in flight at the kill) may be there too,
        // each once: every (t, i) at most once.
        let mut seen = std::collections::HashSet::new();
        for event in &history {
            assert!(seen.insert(event.data.clone()), "{event:?} twice");
        }
        // What the child did not print but the log kept counts from now.
        for (seq, event) in history.into_iter().enumerate() {
            acked.entry(seq as u64).or_insert(event);
        }
    }
    assert!(
        acked.len() > 100,
        "only {} events acknowledged",
        acked.len()
    );
}
