//! `eventfold stats`: counts per type and per day, first and last, sizes.

mod common;

use common::*;
use serde_json::{Value, json};

#[test]
fn json_counts_types_days_and_the_ends() {
    // 1000 events, 144 a day from 2025-12-01: six whole days and 136.
    let dir = rotated_history(1000);
    let output = on_dir("stats", dir.path()).arg("--json").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stats: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stats["total"], 1000);
    // The sizes are the files' own.
    let archive = std::fs::metadata(dir.path().join("archive.jsonl.zst")).unwrap();
    let active = std::fs::metadata(dir.path().join("app.jsonl")).unwrap();
    assert_eq!(stats["sizes"]["archive_bytes"], archive.len());
    assert_eq!(stats["sizes"]["active_log_bytes"], active.len());
    assert_eq!(
        stats["types"],
        json!({"order_placed": 334, "order_paid": 333, "note": 333})
    );
    assert_eq!(
        stats["days"],
        json!({
            "2025-12-01": 144, "2025-12-02": 144, "2025-12-03": 144,
            "2025-12-04": 144, "2025-12-05": 144, "2025-12-06": 144,
            "2025-12-07": 136,
        })
    );
    assert_eq!(
        stats["first"],
        json!({"seq": 0, "ts": BASE_TS, "time": "2025-12-01T00:00:00Z"})
    );
    assert_eq!(
        stats["last"],
        json!({"seq": 999, "ts": BASE_TS + 999 * STEP_TS, "time": "2025-12-07T22:30:00Z"})
    );
}

#[test]
fn human_output_lists_types_by_count_and_days_in_order() {
    let dir = rotated_history(1000);
    let output = on_dir("stats", dir.path()).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "events  1000");
    let inspection = eventfold::EventReader::open(dir.path())
        .unwrap()
        .inspect()
        .unwrap();
    assert!(lines[1].starts_with("sizes   active log "), "{}", lines[1]);
    assert!(
        lines[1].ends_with(&format!(" in {} frames", inspection.frames)),
        "{}",
        lines[1]
    );
    let lines: Vec<&str> = [&lines[..1], &lines[2..]].concat();
    assert_eq!(lines[1], "first   seq 0  2025-12-01T00:00:00Z");
    assert_eq!(lines[2], "last    seq 999  2025-12-07T22:30:00Z");
    let types: Vec<Vec<&str>> = lines[5..8]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        types,
        [
            ["order_placed", "334"],
            ["note", "333"],
            ["order_paid", "333"]
        ]
    );
    assert_eq!(lines[9], "by day (UTC)");
    assert_eq!(
        lines[10].split_whitespace().collect::<Vec<_>>(),
        ["2025-12-01", "144"]
    );
    assert_eq!(
        lines.last().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["2025-12-07", "136"]
    );
}

#[test]
fn an_empty_history_has_no_first_or_last() {
    let dir = test_dir();
    let output = on_dir("stats", dir.path()).arg("--json").output().unwrap();
    assert!(output.status.success());
    let stats: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        stats,
        json!({
            "total": 0, "first": null, "last": null, "types": {}, "days": {},
            "sizes": {"active_log_bytes": 0, "archive_bytes": 0, "archive_frames": 0}
        })
    );
    on_dir("stats", dir.path())
        .assert()
        .success()
        .stdout("events  0\nsizes   active log 0 B, archive 0 B in 0 frames\n");
}
