//! `eventfold tail`: the last events, and following a live writer across
//! rotations.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{ChildStdout, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// How long a follower may take to show an event the writer appended.
const PATIENCE: Duration = Duration::from_secs(30);

/// The JSON lines of `tail --json` with `args`.
fn tail_json(dir: &std::path::Path, args: &[&str]) -> Vec<Value> {
    let output = on_dir("tail", dir)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    parse_jsonl(&output.stdout)
}

#[test]
fn shows_the_last_ten_events_by_default() {
    let dir = rotated_history(1000);
    let lines = tail_json(dir.path(), &[]);
    assert_eq!(seqs(&lines), (990..1000).collect::<Vec<_>>());
    assert_eq!(lines[9], expected_line(999));
}

#[test]
fn n_sets_how_many() {
    let dir = rotated_history(1000);
    assert_eq!(
        seqs(&tail_json(dir.path(), &["-n", "450"])),
        (550..1000).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&tail_json(dir.path(), &["-n", "5000"])),
        (0..1000).collect::<Vec<_>>()
    );
    assert!(tail_json(dir.path(), &["-n", "0"]).is_empty());
}

#[test]
fn type_shows_the_last_events_of_that_type() {
    let dir = rotated_history(3000);
    // One event in three is an order_paid: the last 700 reach far back.
    let lines = tail_json(dir.path(), &["-n", "700", "--type", "order_paid"]);
    let paid: Vec<u64> = (0..3000).filter(|n| n % 3 == 1).collect();
    let expected = &paid[paid.len() - 700..];
    assert_eq!(seqs(&lines), expected);
    assert!(lines.iter().all(|l| l["type"] == "order_paid"));
    // Fewer than asked for exist: all of them.
    let all = tail_json(dir.path(), &["-n", "5000", "--type", "note"]);
    assert_eq!(all.len(), 1000);
}

#[test]
fn from_starts_at_a_sequence_number() {
    let dir = rotated_history(1000);
    let lines = tail_json(dir.path(), &["--from", "280"]);
    assert_eq!(seqs(&lines), (280..1000).collect::<Vec<_>>());
    on_dir("tail", dir.path())
        .args(["--from", "1001"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("there is no event 1001"));
    on_dir("tail", dir.path())
        .args(["--from", "3", "-n", "4"])
        .assert()
        .code(2);
}

#[test]
fn human_lines_show_seq_time_type_and_compact_data() {
    let dir = rotated_history(3);
    let output = on_dir("tail", dir.path()).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            r#"0  2025-12-01T00:00:00Z  order_placed  {"n":0,"text":"item 0, \"quoted\"\nsecond line"}"#,
            r#"1  2025-12-01T00:10:00Z  order_paid  {"n":1,"text":"item 1, \"quoted\"\nsecond line"}"#,
            r#"2  2025-12-01T00:20:00Z  note  {"n":2,"text":"item 2, \"quoted\"\nsecond line"}"#,
        ]
    );
    // Not a terminal: no colour codes.
    assert!(!text.contains('\x1b'));
}

#[test]
fn an_empty_directory_shows_nothing() {
    let dir = test_dir();
    on_dir("tail", dir.path()).assert().success().stdout("");
}

/// Sends each line the child writes, as it comes.
fn lines_of(stdout: ChildStdout) -> Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// The next `n` lines, each within [`PATIENCE`].
fn take_lines(lines: &Receiver<String>, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let line = lines
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|e| panic!("line {i} of {n} did not come: {e}"));
            parse_jsonl(line.as_bytes()).remove(0)
        })
        .collect()
}

#[test]
fn follow_sees_every_event_once_in_order_across_rotations() {
    const BEFORE: u64 = 40;
    const TOTAL: u64 = 1500;
    let dir = test_dir();
    let mut log = open_rotating(dir.path());
    append_rotating(&mut log, 0..BEFORE);
    // The writer keeps the directory open (and locked) throughout.
    let mut child = std::process::Command::new(bin_path())
        .args(["tail", "-f", "--json", "-n", &BEFORE.to_string()])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    let mut seen = take_lines(&lines, BEFORE as usize);

    let writer = std::thread::spawn(move || {
        for n in BEFORE..TOTAL {
            log.append(&event(n)).expect("append");
            if n % 97 == 0 {
                log.rotate().expect("rotate");
            }
            if n % 50 == 0 {
                std::thread::sleep(Duration::from_millis(20)); // let it catch up
            }
        }
        log
    });
    seen.extend(take_lines(&lines, (TOTAL - BEFORE) as usize));
    let log = writer.join().unwrap();
    assert_eq!(log.next_seq(), TOTAL);
    assert!(dir.path().join("archive.jsonl.zst").exists());

    assert_eq!(seqs(&seen), (0..TOTAL).collect::<Vec<_>>());
    for (seq, line) in (0..TOTAL).zip(&seen) {
        assert_eq!(line, &expected_line(seq));
    }
    // Nothing more: no event twice.
    assert!(lines.recv_timeout(Duration::from_millis(300)).is_err());
    let status = terminate(&mut child, PATIENCE);
    assert!(
        status.success(),
        "SIGTERM should end it cleanly: {status:?}"
    );
}

#[test]
fn follow_from_a_sequence_number_with_a_type_filter() {
    let dir = test_dir();
    let mut log = open_rotating(dir.path());
    append_rotating(&mut log, 0..100);
    let mut child = std::process::Command::new(bin_path())
        .args(["tail", "-f", "--json", "--from", "90", "--type", "note"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    // Notes are every third event from 2: 92, 95, 98 exist already.
    let before = take_lines(&lines, 3);
    assert_eq!(seqs(&before), [92, 95, 98]);
    append_rotating(&mut log, 100..150);
    log.rotate().unwrap();
    let after = take_lines(&lines, 17);
    assert_eq!(seqs(&after), (101..150).step_by(3).collect::<Vec<_>>());
    let status = terminate(&mut child, PATIENCE);
    assert!(status.success(), "{status:?}");
}
