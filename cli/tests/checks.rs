//! `eventfold inspect`, `verify` and `backup` on real directories: sound,
//! damaged in each way a file can be, and beside a live writer.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use eventfold::{EventLog, EventReader};
use predicates::prelude::*;
use serde_json::Value;

/// The JSON that `eventfold COMMAND DIR --json` prints, and its exit code.
fn json_of(command: &str, dir: &Path) -> (Value, i32) {
    let output = on_dir(command, dir).arg("--json").output().unwrap();
    let value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (value, output.status.code().unwrap())
}

/// A rotated history of `n` events with a counter view's snapshot saved.
fn history_with_view(n: u64) -> tempfile::TempDir {
    let dir = rotated_history(n);
    let mut log = EventLog::builder(dir.path())
        .view::<u64>("count", |n, _| n + 1)
        .open()
        .unwrap();
    log.refresh_all().unwrap();
    log.save_views().unwrap();
    dir
}

/// The intent record of a rotation of `log_len` bytes onto an archive of
/// `archive_len`, as eventfold writes it.
fn intent_record(archive_len: u64, log_len: u64) -> String {
    let text = format!("{archive_len}:{log_len}");
    let checksum = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
    format!(r#"{{"archive_len":{archive_len},"log_len":{log_len},"checksum":"{checksum:016x}"}}"#)
}

#[test]
fn a_sound_history_inspects_and_verifies_and_nothing_is_written() {
    let dir = history_with_view(1000);
    let before = tree(dir.path());
    let (inspection, code) = json_of("inspect", dir.path());
    assert_eq!(code, 0);
    assert_eq!(inspection["events"], 1000);
    assert_eq!(inspection["first"]["seq"], 0);
    assert_eq!(inspection["last"]["seq"], 999);
    assert!(inspection["frames"].as_u64().unwrap() >= 3);
    assert_eq!(inspection["views"][0]["name"], "count");
    assert_eq!(inspection["views"][0]["behind"], 0);
    assert_eq!(inspection["pending"], Value::Array(vec![]));
    assert_eq!(inspection["writer"], "closed");
    on_dir("verify", dir.path())
        .assert()
        .success()
        .stdout(predicate::str::starts_with("ok: 1000 events, "));
    let (report, code) = json_of("verify", dir.path());
    assert_eq!((code, report["events"].as_u64()), (0, Some(1000)));
    assert_eq!(tree(dir.path()), before, "inspect and verify wrote nothing");
}

#[test]
fn verify_names_the_file_offset_and_event_of_a_damaged_line() {
    let dir = history_with_view(40);
    let archived = EventReader::open(dir.path())
        .unwrap()
        .inspect()
        .unwrap()
        .archived_events;
    let path = dir.path().join("app.jsonl");
    let text = fs::read_to_string(&path).unwrap();
    let second = text.find('\n').unwrap() + 1;
    let mut bytes = text.into_bytes();
    bytes[second] = b'!';
    fs::write(&path, &bytes).unwrap();
    let (report, code) = json_of("verify", dir.path());
    assert_eq!(code, 1);
    let problems = report["problems"].as_array().unwrap();
    let line = problems
        .iter()
        .find(|p| p["path"] == path.to_str().unwrap())
        .unwrap_or_else(|| panic!("{problems:?}"));
    assert_eq!(line["offset"], second as u64);
    assert_eq!(line["seq"], archived + 1, "the active log's second event");
    assert_eq!(report["events"], 39, "every other event was read");
    on_dir("verify", dir.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains(format!(
            "{} at byte {second}",
            path.display()
        )))
        .stderr(predicate::str::contains("problem"));
}

#[test]
fn verify_names_a_damaged_frame_and_a_snapshot_that_does_not_fit() {
    let dir = history_with_view(1000);
    let inspection = EventReader::open(dir.path()).unwrap().inspect().unwrap();
    assert!(inspection.frames >= 2);
    let archive = dir.path().join("archive.jsonl.zst");
    let mut bytes = fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    fs::write(&archive, &bytes).unwrap();
    // The snapshot made to claim another line before its position.
    let snapshot = dir.path().join("views").join("count.snapshot.json");
    let mut json: Value = serde_json::from_slice(&fs::read(&snapshot).unwrap()).unwrap();
    json["hash"] = Value::from("0123456789abcdef");
    json.as_object_mut().unwrap().remove("checksum");
    fs::write(&snapshot, serde_json::to_vec(&json).unwrap()).unwrap();

    let (report, code) = json_of("verify", dir.path());
    assert_eq!(code, 1);
    let problems = report["problems"].as_array().unwrap();
    let in_archive: Vec<&Value> = problems
        .iter()
        .filter(|p| p["path"] == archive.to_str().unwrap())
        .collect();
    assert_eq!(in_archive.len(), 1, "{problems:?}");
    let offset = in_archive[0]["offset"].as_u64().unwrap();
    assert!(
        offset <= middle as u64,
        "the frame holding byte {middle} starts at {offset}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p["path"] == snapshot.to_str().unwrap()),
        "{problems:?}"
    );
    // Every other frame was read.
    assert!(report["events"].as_u64().unwrap() < 1000);
    assert!(report["events"].as_u64().unwrap() > 500);
    // The snapshot is not called up to date.
    on_dir("inspect", dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("saved at event"))
        .stdout(predicate::str::contains("will replay"))
        .stdout(predicate::str::contains("up to date").not());
}

#[test]
fn a_log_that_lost_acknowledged_events_is_damaged_without_totals() {
    let dir = history_with_view(100);
    let log = dir.path().join("app.jsonl");
    let len = fs::metadata(&log).unwrap().len();
    assert!(len > 10, "the test needs events in app.jsonl");
    fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    on_dir("verify", dir.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains("acknowledged events are missing"))
        .stdout(predicate::str::contains(
            "could not be read past the problem above",
        ))
        .stdout(predicate::str::contains("0 events").not());
}

#[test]
fn inspect_shows_an_interrupted_rotation_and_a_torn_tail() {
    let dir = history_with_view(100);
    let inspection = EventReader::open(dir.path()).unwrap().inspect().unwrap();
    // A crash just after the rotation's record was written.
    let intent = dir.path().join("rotation.json");
    fs::write(
        &intent,
        intent_record(inspection.archive_len, inspection.active_len),
    )
    .unwrap();
    let (json, code) = json_of("inspect", dir.path());
    assert_eq!((code, json["events"].as_u64()), (0, Some(100)));
    assert_eq!(json["pending"][0]["path"], intent.to_str().unwrap());
    on_dir("inspect", dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("interrupted by a crash"));
    on_dir("verify", dir.path()).assert().success();
    fs::remove_file(&intent).unwrap();

    // A crash in the middle of a write.
    let log = dir.path().join("app.jsonl");
    let mut file = fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut file, b"{\"type\":\"half").unwrap();
    drop(file);
    let (json, code) = json_of("inspect", dir.path());
    assert_eq!((code, json["events"].as_u64()), (0, Some(100)));
    assert_eq!(json["unacknowledged_len"], 13);
    assert_eq!(json["pending"][0]["path"], log.to_str().unwrap());
    on_dir("inspect", dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("an incomplete last line"));
    on_dir("verify", dir.path()).assert().success();
}

#[test]
fn inspect_beside_a_live_writer_sees_it_and_a_growing_history() {
    let dir = test_dir();
    let writer = LiveWriter::start(dir.path(), 300);
    let mut last = 0;
    for _ in 0..5 {
        let before = writer.acknowledged();
        let (json, code) = json_of("inspect", dir.path());
        assert_eq!(code, 0);
        let events = json["events"].as_u64().unwrap();
        assert!(events >= before.max(last), "{events} < {before}");
        assert_eq!(json["last"]["seq"], events - 1);
        assert_eq!(json["writer"], "open");
        last = events;
    }
    writer.stop();
}

#[test]
fn a_backup_during_heavy_appends_holds_what_was_acknowledged_and_verifies() {
    let dir = test_dir();
    let copies = test_dir();
    let writer = LiveWriter::start(dir.path(), 600);
    let before = writer.acknowledged();
    let dest = copies.path().join("copy");
    let output = eventfold(["backup", "--json"])
        .arg(dir.path())
        .arg(&dest)
        .output()
        .unwrap();
    writer.stop();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let events = report["backup"]["events"].as_u64().unwrap();
    assert!(events >= before, "{events} < {before}");
    assert_eq!(report["verification"]["problems"], Value::Array(vec![]));
    // The copy opens with eventfold and holds exactly those events.
    let export = on_dir("export", &dest).output().unwrap();
    let lines = parse_jsonl(&export.stdout);
    assert_eq!(seqs(&lines), (0..events).collect::<Vec<_>>());
    for line in lines.iter().step_by(97) {
        assert_eq!(*line, expected_line(line["seq"].as_u64().unwrap()));
    }
    let copy = EventLog::open(&dest).unwrap();
    assert_eq!(copy.next_seq(), events);
    drop(copy);
    on_dir("verify", &dest).assert().success();
}

#[test]
fn a_backup_into_a_directory_that_is_not_empty_is_refused() {
    let dir = history_with_view(10);
    let dest = test_dir();
    fs::write(dest.path().join("mine.txt"), b"keep").unwrap();
    eventfold(["backup"])
        .arg(dir.path())
        .arg(dest.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not empty"));
    assert_eq!(fs::read(dest.path().join("mine.txt")).unwrap(), b"keep");
}

#[test]
fn the_new_commands_refuse_bad_arguments() {
    eventfold(["backup"]).arg("only-one").assert().code(2);
    eventfold(["verify"]).assert().code(2);
    eventfold(["inspect", "--bogus", "x"]).assert().code(2);
    let missing = test_dir().path().join("nowhere");
    on_dir("verify", &missing)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no such directory"));
}

#[test]
fn verify_beside_a_writer_that_rotates_finds_nothing_wrong() {
    let dir = test_dir();
    let writer = LiveWriter::start(dir.path(), 300);
    for _ in 0..5 {
        let before = writer.acknowledged();
        let (report, code) = json_of("verify", dir.path());
        assert_eq!(report["problems"], Value::Array(vec![]), "{report}");
        assert_eq!(code, 0);
        assert!(report["events"].as_u64().unwrap() >= before);
    }
    writer.stop();
}
