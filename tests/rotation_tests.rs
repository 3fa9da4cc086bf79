//! Rotation: moving the active log into the zstd archive, by hand and
//! automatically, and what views and readers see afterwards.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use eventfold::{Event, EventLog};
use serde_json::json;

fn archive(dir: &Path) -> PathBuf {
    dir.join("archive.jsonl.zst")
}

fn active(dir: &Path) -> PathBuf {
    dir.join("app.jsonl")
}

/// The stored lines of events numbered `range`, each stored as event `n`
/// of the history (as `append_numbered` from 0 stores them).
fn lines(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|n| stored_line(&numbered(n), n)).collect()
}

/// The `n` of every event `read_full` yields, in order.
fn full_numbers(log: &EventLog) -> Vec<u64> {
    all_events(log)
        .iter()
        .map(|e| e.data["n"].as_u64().unwrap())
        .collect()
}

fn seq(log: &EventLog) -> Vec<u64> {
    log.view::<Vec<u64>>("seq").unwrap().clone()
}

/// The archive split into its zstd frames, found from the frame headers.
fn frames(dir: &Path) -> Vec<Vec<u8>> {
    let bytes = fs::read(archive(dir)).unwrap();
    let mut rest = &bytes[..];
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let size = zstd::zstd_safe::find_frame_compressed_size(rest).expect("a whole frame");
        frames.push(rest[..size].to_vec());
        rest = &rest[size..];
    }
    frames
}

fn decode_lines(frame: &[u8]) -> Vec<String> {
    let text = String::from_utf8(zstd::decode_all(frame).unwrap()).unwrap();
    text.lines().map(str::to_owned).collect()
}

/// Appends events `range` then rotates, once for every range.
fn append_and_rotate(log: &mut EventLog, ranges: impl IntoIterator<Item = std::ops::Range<u64>>) {
    for range in ranges {
        append_numbered(log, range);
        log.rotate().unwrap();
    }
}

// ---------------------------------------------------------------------------
// Manual rotation
// ---------------------------------------------------------------------------

/// Rotation empties `app.jsonl` and moves its lines into the archive.
#[test]
fn rotate_moves_active_log_into_archive() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    append_numbered(&mut log, 0..5);
    assert!(!archive(dir.path()).exists());
    log.rotate().unwrap();
    assert_eq!(file_size(&active(dir.path())), 0);
    assert_eq!(log.active_len(), 0);
    assert_eq!(archive_lines(dir.path()), lines(0..5));
}

/// Every snapshot sits at offset 0 with no hash after a rotation, holding
/// the view's state.
#[test]
fn rotate_resets_snapshots_to_offset_zero() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    append_numbered(&mut log, 0..3);
    log.append(&Event::with_ts("todo_added", json!({"text": "milk"}), 1))
        .unwrap();
    log.rotate().unwrap();
    for view in ["count", "seq", "todos"] {
        let snap = snapshot_json(dir.path(), view);
        assert_eq!(
            (&snap["offset"], &snap["hash"]),
            (&json!(0), &json!("")),
            "{view}"
        );
    }
    assert_eq!(
        snapshot_json(dir.path(), "seq")["state"],
        json!([0, 1, 2, u64::MAX])
    );
    assert_eq!(
        snapshot_json(dir.path(), "todos")["state"]["items"][0]["text"],
        "milk"
    );
}

/// Rotation refreshes the views, and their states then survive it, in
/// memory and through a reopen.
#[test]
fn rotate_keeps_view_states() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    append_numbered(&mut log, 0..2);
    log.refresh_all().unwrap();
    append_numbered(&mut log, 2..4);
    log.rotate().unwrap();
    assert_eq!(
        seq(&log),
        [0, 1, 2, 3],
        "rotation refreshes the views first"
    );
    drop(log);
    let mut log = open_with_views(dir.path());
    assert_eq!(seq(&log), [0, 1, 2, 3]);
    log.refresh_all().unwrap();
    assert_eq!(seq(&log), [0, 1, 2, 3]);
    assert_eq!(*log.view::<u64>("count").unwrap(), 4);
}

/// Events appended after a rotation are folded on top of the old state.
#[test]
fn append_after_rotation_is_folded_in() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    append_and_rotate(&mut log, Some(0..3));
    assert_eq!(append_numbered(&mut log, 3..5)[0], 0);
    log.refresh_all().unwrap();
    assert_eq!(seq(&log), [0, 1, 2, 3, 4]);
    assert_eq!(snapshot_json(dir.path(), "seq")["offset"], 0, "saved later");
    log.save_views().unwrap();
    assert_eq!(snapshot_json(dir.path(), "seq")["offset"], log.active_len());
}

/// Each rotation appends one zstd frame: the archive only grows, holds
/// every event, and decodes as one stream with the zstd crate and the
/// `zstd` tool.
#[test]
fn multiple_rotations_append_frames_to_archive() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    let ranges = [0..4, 4..5, 5..12];
    let mut previous = Vec::new();
    for range in &ranges {
        append_and_rotate(&mut log, Some(range.clone()));
        let bytes = fs::read(archive(dir.path())).unwrap();
        assert!(bytes.starts_with(&previous), "the archive is append-only");
        previous = bytes;
    }
    let frames = frames(dir.path());
    assert_eq!(frames.len(), ranges.len());
    for (frame, range) in frames.iter().zip(&ranges) {
        assert_eq!(decode_lines(frame), lines(range.clone()));
    }
    assert_eq!(archive_lines(dir.path()), lines(0..12));
    assert_eq!(full_numbers(&log), (0..12).collect::<Vec<_>>());

    match Command::new("zstd")
        .arg("-d")
        .arg("-c")
        .arg(archive(dir.path()))
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).unwrap();
            assert_eq!(text.lines().collect::<Vec<_>>(), lines(0..12));
        }
        Err(e) => eprintln!("skipping the zstd command-line check: {e}"),
    }
}

/// `read_full` after several rotations yields archive then active events,
/// in the order they were appended.
#[test]
fn read_full_after_rotations_is_in_order() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    append_and_rotate(&mut log, [0..3, 3..7, 7..8]);
    append_numbered(&mut log, 8..11);
    assert_eq!(full_numbers(&log), (0..11).collect::<Vec<_>>());
}

/// A view first registered after rotations replays archive and active log.
#[test]
fn new_view_after_rotation_replays_archive_and_active() {
    let dir = test_dir();
    {
        let mut log = EventLog::open(dir.path()).unwrap();
        append_and_rotate(&mut log, [1..4, 4..6]);
        append_numbered(&mut log, 6..8);
    }
    let mut log = EventLog::builder(dir.path())
        .view::<u64>("sum", sum_reducer)
        .open()
        .unwrap();
    log.refresh_all().unwrap();
    assert_eq!(*log.view::<u64>("sum").unwrap(), (1..8).sum::<u64>());
}

/// Rotating an empty active log changes nothing: no archive is created,
/// and an existing archive and the snapshots are left byte for byte.
#[test]
fn rotating_empty_active_log_is_a_no_op() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    log.refresh_all().unwrap();
    let snapshot = || fs::read(snapshot_file(dir.path(), "seq")).unwrap();
    let before = snapshot();
    log.rotate().unwrap();
    assert!(!archive(dir.path()).exists());
    assert_eq!(snapshot(), before);

    append_and_rotate(&mut log, Some(0..3));
    let (archive_before, before) = (fs::read(archive(dir.path())).unwrap(), snapshot());
    log.rotate().unwrap();
    assert_eq!(fs::read(archive(dir.path())).unwrap(), archive_before);
    assert_eq!(snapshot(), before);
    assert_eq!(seq(&log), [0, 1, 2]);
}

// ---------------------------------------------------------------------------
// Auto-rotation
// ---------------------------------------------------------------------------

/// Length of one `dummy_event` line, newline included, for events 0 to 9
/// of the history (whose `"seq"` has one digit).
fn dummy_len() -> u64 {
    stored_line(&dummy_event("dummy"), 0).len() as u64 + 1
}

/// With `max_log_size(2 lines)`, the append that finds three lines in the
/// log rotates first and then writes at offset 0 of a fresh `app.jsonl`.
#[test]
fn append_rotates_when_log_is_over_threshold() {
    let dir = test_dir();
    let l = dummy_len();
    let mut log = builder_with_views(dir.path())
        .max_log_size(2 * l)
        .open()
        .unwrap();
    assert_eq!(append_n(&mut log, 3), [0, l, 2 * l]);
    assert!(!archive(dir.path()).exists());
    assert_eq!(append_n(&mut log, 4), [0, l, 2 * l, 0]);
    assert_eq!(frames(dir.path()).len(), 2);
    assert_eq!(archive_lines(dir.path()).len(), 6);
    assert_eq!(file_size(&active(dir.path())), l);
    assert_eq!(active_events(&log, 0), [dummy_event("dummy")]);
}

/// After auto-rotations the views hold every event; the ones rotated away
/// were folded in by the rotation itself.
#[test]
fn views_are_consistent_after_auto_rotation() {
    let dir = test_dir();
    let mut log = builder_with_views(dir.path())
        .max_log_size(150)
        .open()
        .unwrap();
    append_numbered(&mut log, 0..6);
    let archived: Vec<u64> = archive_lines(dir.path())
        .iter()
        .map(|line| {
            Event::from_json_line(line).unwrap().data["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(!archived.is_empty());
    assert_eq!(seq(&log), archived, "rotation folded in what it archived");
    log.refresh_all().unwrap();
    assert_eq!(seq(&log), [0, 1, 2, 3, 4, 5]);
    assert_eq!(*log.view::<u64>("count").unwrap(), 6);
    log.save_views().unwrap();
    assert_eq!(snapshot_json(dir.path(), "seq")["offset"], log.active_len());
}

/// `max_log_size(0)` never rotates, even past a megabyte.
#[test]
fn zero_threshold_never_rotates() {
    let dir = test_dir();
    let mut log = builder_with_views(dir.path())
        .max_log_size(0)
        .open()
        .unwrap();
    let big = Event::with_ts("big", json!({"pad": "x".repeat(64 * 1024)}), 1);
    let mut appended = 0;
    while log.active_len() <= 1024 * 1024 {
        log.append(&big).unwrap();
        appended += 1;
    }
    assert!(!archive(dir.path()).exists());
    assert_eq!(file_size(&active(dir.path())), log.active_len());
    log.refresh_all().unwrap();
    assert_eq!(*log.view::<u64>("count").unwrap(), appended);
}

/// 100 events with a tiny threshold: many rotations, and still exactly
/// events 0..100 in order, with every view equal to a sequential replay.
#[test]
fn many_auto_rotations_match_sequential_replay() {
    let dir = test_dir();
    let mut log = builder_with_views(dir.path())
        .max_log_size(200)
        .open()
        .unwrap();
    append_numbered(&mut log, 0..100);
    log.refresh_all().unwrap();
    assert!(frames(dir.path()).len() > 10);
    let expected: Vec<u64> = (0..100).collect();
    assert_eq!(full_numbers(&log), expected);
    assert_eq!(seq(&log), expected);
    assert_eq!(*log.view::<u64>("count").unwrap(), 100);
    assert_eq!(seq(&log), replay(&log, seq_reducer));
}

/// Opening a log larger than `max_log_size` rotates it, refreshing the
/// registered views first; a log under the threshold is left alone.
#[test]
fn open_rotates_an_oversized_log() {
    let dir = test_dir();
    append_numbered(&mut EventLog::open(dir.path()).unwrap(), 0..10);
    let size = file_size(&active(dir.path()));

    drop(
        builder_with_views(dir.path())
            .max_log_size(size)
            .open()
            .unwrap(),
    );
    assert!(!archive(dir.path()).exists());

    let log = builder_with_views(dir.path())
        .max_log_size(size - 1)
        .open()
        .unwrap();
    assert_eq!(file_size(&active(dir.path())), 0);
    assert_eq!(archive_lines(dir.path()), lines(0..10));
    assert_eq!(seq(&log), (0..10).collect::<Vec<_>>());
    assert_eq!(snapshot_json(dir.path(), "seq")["offset"], 0);
}

/// A snapshot of a view not registered with the rotating log cannot follow
/// its events into the archive: rotation removes it, and the view, when
/// registered again, replays the archive once (no double counting).
#[test]
fn rotation_removes_snapshots_of_unregistered_views() {
    let dir = test_dir();
    {
        let mut log = open_with_views(dir.path());
        append_numbered(&mut log, 0..3);
        log.refresh_all().unwrap();
    }
    {
        let mut log = EventLog::open(dir.path()).unwrap();
        append_numbered(&mut log, 3..5);
        log.rotate().unwrap();
        assert!(!snapshot_file(dir.path(), "seq").exists());
        assert!(!snapshot_file(dir.path(), "count").exists());
    }
    let mut log = open_with_views(dir.path());
    log.refresh_all().unwrap();
    assert_eq!(seq(&log), [0, 1, 2, 3, 4]);
    assert_eq!(*log.view::<u64>("count").unwrap(), 5);
}

/// An unregistered view whose snapshot was up to date at the rotation
/// still ends with every event exactly once.
#[test]
fn unregistered_up_to_date_view_is_not_double_counted() {
    let dir = test_dir();
    {
        let mut log = open_with_views(dir.path());
        append_numbered(&mut log, 0..3);
        log.refresh_all().unwrap();
    }
    {
        let mut log = EventLog::open(dir.path()).unwrap();
        log.rotate().unwrap();
        append_numbered(&mut log, 3..5);
    }
    let mut log = open_with_views(dir.path());
    log.refresh_all().unwrap();
    assert_eq!(seq(&log), [0, 1, 2, 3, 4]);
}

/// Damages line `n` of `app.jsonl` in place, keeping its length (its
/// first byte made `#`): the line is no event. Returns its offset.
fn damage_line(dir: &Path, n: usize) -> u64 {
    let mut bytes = fs::read(active(dir)).unwrap();
    let start = std::iter::once(0)
        .chain(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .nth(n)
        .expect("the line");
    bytes[start] = b'#';
    fs::write(active(dir), &bytes).unwrap();
    start as u64
}

/// A corrupt line in the active log stops a rotation before anything is
/// written: the damage stays in `app.jsonl`, where it can be repaired by
/// hand, instead of moving into the compressed archive.
#[test]
fn corrupt_line_blocks_rotation_and_stays_in_the_active_log() {
    let dir = test_dir();
    append_numbered(&mut EventLog::open(dir.path()).unwrap(), 0..3);
    // Line 1 damaged in place (bit rot): the open reads only the ends.
    let offset = damage_line(dir.path(), 1);
    let mut log = EventLog::open(dir.path()).unwrap();
    append_numbered(&mut log, 3..4);
    match log.rotate() {
        Err(eventfold::Error::Corrupt {
            path, offset: at, ..
        }) => {
            assert_eq!(path, active(dir.path()));
            assert_eq!(at, offset);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(!archive(dir.path()).exists());
    assert!(!dir.path().join("rotation.json").exists());
    log.append(&numbered(4)).expect("the log is still writable");
}

/// With a corrupt line, auto-rotation on open fails; the log opens anyway
/// so that its events can still be read up to the damage.
#[test]
fn open_survives_a_failed_auto_rotation() {
    let dir = test_dir();
    append_numbered(&mut EventLog::open(dir.path()).unwrap(), 0..6);
    damage_line(dir.path(), 4);
    let log = builder_with_views(dir.path())
        .max_log_size(10)
        .open()
        .expect("opens");
    let read: Vec<_> = log.read_from(0).unwrap().collect();
    assert_eq!(read.len(), 5);
    assert!(read[..4].iter().all(Result::is_ok));
    assert!(matches!(read[4], Err(eventfold::Error::Corrupt { .. })));
    assert!(!archive(dir.path()).exists());
}

/// Bytes added to `app.jsonl` by another program while the log is open are
/// never truncated away by a rotation.
#[test]
fn rotation_refuses_when_another_program_appended() {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    append_numbered(&mut log, 0..3);
    // A well-formed line, even with the right "seq" for its place.
    let foreign = stored_line(&numbered(99), 3) + "\n";
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(active(dir.path()))
        .unwrap();
    std::io::Write::write_all(&mut file, foreign.as_bytes()).unwrap();
    assert!(matches!(
        log.rotate(),
        Err(eventfold::Error::Corrupt { .. })
    ));
    assert!(!archive(dir.path()).exists());
    assert!(
        fs::read_to_string(active(dir.path()))
            .unwrap()
            .ends_with(&foreign)
    );
}

/// A state JSON cannot represent as a plain number (a u128 beyond u64)
/// keeps its exact text through the rotation's snapshot rewrite.
#[test]
fn rotation_keeps_snapshot_state_text_exactly() {
    fn big(n: u128, _: &Event) -> u128 {
        n + u128::from(u64::MAX)
    }
    let dir = test_dir();
    let mut log = EventLog::builder(dir.path())
        .view::<u128>("big", big)
        .open()
        .unwrap();
    append_n(&mut log, 3);
    log.rotate().unwrap();
    let text = fs::read_to_string(snapshot_file(dir.path(), "big")).unwrap();
    assert!(
        text.contains(&format!("\"state\":{}", 3 * u128::from(u64::MAX))),
        "{text}"
    );
    drop(log);
    let log = EventLog::builder(dir.path())
        .view::<u128>("big", big)
        .open()
        .unwrap();
    assert_eq!(*log.view::<u128>("big").unwrap(), 3 * u128::from(u64::MAX));
}

/// Rotation empties `app.jsonl` by renaming an empty file over it: the new
/// file keeps the old one's permissions (a reader in another account may
/// depend on them), and a hard link to the log stays the log.
#[cfg(unix)]
#[test]
fn the_emptied_log_keeps_its_permissions_and_its_links() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = test_dir();
    let log_path = dir.path().join(LOG);
    let mut log = EventLog::open(dir.path()).unwrap();
    append_numbered(&mut log, 0..5);
    fs::set_permissions(&log_path, fs::Permissions::from_mode(0o640)).unwrap();
    log.rotate().unwrap();
    let mode = fs::metadata(&log_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert_eq!(file_size(&log_path), 0);

    let link = dir.path().join("hard-link-to-the-log");
    fs::hard_link(&log_path, &link).unwrap();
    append_numbered(&mut log, 5..10);
    log.rotate().unwrap();
    let (a, b) = (
        fs::metadata(&log_path).unwrap(),
        fs::metadata(&link).unwrap(),
    );
    assert_eq!(
        (a.ino(), a.len()),
        (b.ino(), 0),
        "the link is still the log, emptied"
    );
    append_numbered(&mut log, 10..11);
    assert_eq!(fs::read(&link).unwrap(), fs::read(&log_path).unwrap());
    assert_eq!(numbers(&all_events(&log)), (0..11).collect::<Vec<_>>());
}
