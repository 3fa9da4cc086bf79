//! `eventfold export`: every event once, in order, with its content; the
//! filters; CSV; a closed output.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use common::*;
use serde_json::Value;

/// Events in the rotated histories of these tests.
const N: u64 = 2000;

#[test]
fn an_empty_directory_exports_nothing() {
    let dir = test_dir();
    on_dir("export", dir.path())
        .assert()
        .success()
        .stdout("")
        .stderr("");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_history_rotated_many_times_exports_every_event_once_in_order() {
    let dir = rotated_history(N);
    assert!(dir.path().join("archive.jsonl.zst").exists());
    let output = on_dir("export", dir.path()).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let lines = parse_jsonl(&output.stdout);
    assert_eq!(seqs(&lines), (0..N).collect::<Vec<_>>());
    for (seq, line) in (0..N).zip(&lines) {
        assert_eq!(line, &expected_line(seq));
    }
    // id and meta appear only on the events that have them.
    assert!(lines[5].get("id").is_some() && lines[6].get("id").is_none());
    assert!(lines[7].get("meta").is_some() && lines[8].get("meta").is_none());
}

#[test]
fn from_and_to_select_an_inclusive_range_of_sequence_numbers() {
    let dir = rotated_history(N);
    let output = on_dir("export", dir.path())
        .args(["--from", "295", "--to", "1210"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let lines = parse_jsonl(&output.stdout);
    assert_eq!(seqs(&lines), (295..=1210).collect::<Vec<_>>());
    assert_eq!(lines[0], expected_line(295));

    // A --to past the end stops at the end; --from at the end gives nothing.
    let tail = on_dir("export", dir.path())
        .args(["--from", "1990", "--to", "999999"])
        .output()
        .unwrap();
    assert_eq!(
        seqs(&parse_jsonl(&tail.stdout)),
        (1990..N).collect::<Vec<_>>()
    );
    on_dir("export", dir.path())
        .args(["--from", &N.to_string()])
        .assert()
        .success()
        .stdout("");
}

#[test]
fn a_from_past_the_end_is_an_error_naming_the_history() {
    let dir = rotated_history(100);
    on_dir("export", dir.path())
        .args(["--from", "500"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicates::str::contains(
            "eventfold: there is no event 500",
        ))
        .stderr(predicates::str::contains("0 to 99"));
}

#[test]
fn since_and_until_select_by_timestamp() {
    let dir = rotated_history(N);
    // The fourth day of the history: events 432 to 575 (144 a day).
    let day = |since: &str, until: &str| {
        let output = on_dir("export", dir.path())
            .args(["--since", since, "--until", until])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        seqs(&parse_jsonl(&output.stdout))
    };
    let third_day: Vec<u64> = (432..576).collect();
    assert_eq!(day("2025-12-04", "2025-12-05"), third_day);
    assert_eq!(
        day("2025-12-04T00:00:00Z", "2025-12-05T00:00:00Z"),
        third_day
    );
    let since = (BASE_TS + 432 * STEP_TS).to_string();
    let until = (BASE_TS + 576 * STEP_TS).to_string();
    assert_eq!(day(&since, &until), third_day);
    // Inclusive start, exclusive end, to the second.
    assert_eq!(
        day("2025-12-04T00:00:00Z", "2025-12-04T00:10:01Z"),
        [432, 433]
    );
    assert_eq!(
        day("2025-12-04T00:00:01Z", "2025-12-04T00:10:00Z"),
        Vec::<u64>::new()
    );
}

#[test]
fn type_filters_combine_with_the_other_filters() {
    let dir = rotated_history(N);
    let output = on_dir("export", dir.path())
        .args(["--type", "order_paid", "--from", "100", "--to", "199"])
        .output()
        .unwrap();
    let lines = parse_jsonl(&output.stdout);
    let expected: Vec<u64> = (100..200).filter(|n| n % 3 == 1).collect();
    assert_eq!(seqs(&lines), expected);
    assert!(lines.iter().all(|l| l["type"] == "order_paid"));

    let output = on_dir("export", dir.path())
        .args([
            "--type",
            "note",
            "--type",
            "order_placed",
            "--until",
            "2025-12-01T01:00:00Z",
        ])
        .output()
        .unwrap();
    assert_eq!(seqs(&parse_jsonl(&output.stdout)), [0, 2, 3, 5]);

    on_dir("export", dir.path())
        .args(["--type", "no_such_type"])
        .assert()
        .success()
        .stdout("");
}

#[test]
fn csv_parses_back_to_the_events() {
    let dir = rotated_history(N);
    let output = on_dir("export", dir.path())
        .args(["--format", "csv"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let records = parse_csv(&output.stdout);
    assert_eq!(records[0], ["seq", "ts", "type", "id", "data"]);
    assert_eq!(records.len() as u64, N + 1);
    for (seq, record) in (0..N).zip(&records[1..]) {
        let event = event(seq);
        assert_eq!(record.len(), 5, "record {seq}: {record:?}");
        assert_eq!(record[0], seq.to_string());
        assert_eq!(record[1], event.ts.to_string());
        assert_eq!(record[2], event.event_type);
        assert_eq!(record[3], event.id.unwrap_or_default());
        let data: Value = serde_json::from_str(&record[4]).expect("data is JSON");
        assert_eq!(data, event.data);
    }
}

#[test]
fn csv_of_an_empty_history_is_the_header_alone() {
    let dir = test_dir();
    on_dir("export", dir.path())
        .args(["--format", "csv"])
        .assert()
        .success()
        .stdout("seq,ts,type,id,data\r\n");
}

#[test]
fn a_closed_output_ends_the_export_quietly() {
    // Far more output than a pipe holds, so that the export is still
    // writing when its reader goes away.
    let dir = rotated_history(6000);
    let mut child = std::process::Command::new(bin_path())
        .arg("export")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("{\"seq\":0,"), "{first}");
    drop(stdout); // as `| head -1` does
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}, stderr: {stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn contradictory_ranges_are_bad_usage() {
    let dir = rotated_history(10);
    on_dir("export", dir.path())
        .args(["--from", "5", "--to", "4"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--from 5 is after --to 4"));
    on_dir("export", dir.path())
        .args(["--since", "2025-12-02", "--until", "2025-12-01"])
        .assert()
        .code(2);
}

#[test]
fn a_long_export_is_whole_and_in_order_across_its_threads() {
    // Over two of the chunks that threads export side by side.
    const LONG: u64 = 70_000;
    let dir = rotated_history(LONG);
    let output = on_dir("export", dir.path()).output().unwrap();
    assert!(output.status.success());
    let lines = parse_jsonl(&output.stdout);
    assert_eq!(seqs(&lines), (0..LONG).collect::<Vec<_>>());
    for line in lines.iter().step_by(1013) {
        assert_eq!(*line, expected_line(line["seq"].as_u64().unwrap()));
    }
    let notes = on_dir("export", dir.path())
        .args(["--type", "note", "--from", "100", "--to", "69000"])
        .output()
        .unwrap();
    let expected: Vec<u64> = (100..=69_000).filter(|n| n % 3 == 2).collect();
    assert_eq!(seqs(&parse_jsonl(&notes.stdout)), expected);
}
