//! Integrity: snapshots are checked against the log (offset and hash of
//! the last line consumed) and rebuilt when they do not match; corrupt log
//! or archive data is reported, never skipped.

mod common;

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use common::*;
use eventfold::{Error, EventLog, EventReader};
use serde_json::{Value, json};
use tempfile::TempDir;

fn active(dir: &Path) -> PathBuf {
    dir.join("app.jsonl")
}

fn archive(dir: &Path) -> PathBuf {
    dir.join("archive.jsonl.zst")
}

/// Length of the line of `numbered(n)` stored as event `n` of the history
/// (as `append_numbered` from 0 stores it), newline included.
fn line_len(n: u64) -> u64 {
    stored_line(&numbered(n), n).len() as u64 + 1
}

fn seq(log: &EventLog) -> Vec<u64> {
    log.view::<Vec<u64>>("seq").unwrap().clone()
}

/// A closed log of events `range` whose views were refreshed.
fn refreshed_log(range: std::ops::Range<u64>) -> TempDir {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    append_numbered(&mut log, range);
    log.refresh_all().unwrap();
    dir
}

/// Sets the "seq" snapshot's state to a sentinel, `[999]`, and applies
/// `edit`: whether the snapshot is trusted or rebuilt then shows in the
/// state.
fn tamper(dir: &Path, edit: impl FnOnce(&mut Value)) {
    hand_write_snapshot(dir, "seq", |s| {
        s["state"] = json!([999]);
        edit(s);
    });
}

/// Reopens with the standard views and refreshes them.
fn reopen_refreshed(dir: &Path) -> EventLog {
    let mut log = open_with_views(dir);
    log.refresh_all().unwrap();
    log
}

/// Checks that "seq" was rebuilt: it equals a full replay, which is
/// `expected`, and its snapshot was saved again at the end of the log.
fn assert_rebuilt(log: &EventLog, expected: &[u64]) {
    assert_eq!(seq(log), expected);
    assert_eq!(replay(log, seq_reducer), expected);
    let snap = snapshot_json(log.dir(), "seq");
    assert_eq!(snap["state"], json!(expected));
    assert_eq!(snap["offset"], log.active_len());
}

// ---------------------------------------------------------------------------
// Snapshot checks
// ---------------------------------------------------------------------------

/// A snapshot whose offset and hash match the log is trusted as is: its
/// (hand-edited) state is kept and only new events are folded on top.
#[test]
fn matching_snapshot_is_trusted() {
    let dir = refreshed_log(0..3);
    tamper(dir.path(), |_| {});
    let mut log = reopen_refreshed(dir.path());
    assert_eq!(seq(&log), [999]);
    append_numbered(&mut log, 3..4);
    log.refresh_all().unwrap();
    assert_eq!(seq(&log), [999, 3]);
}

/// The hash stored is the xxh3-64 of the last line consumed, in 16 hex
/// digits; a snapshot with another hash is rebuilt.
#[test]
fn mismatched_hash_is_rebuilt() {
    let dir = refreshed_log(0..3);
    let last = stored_line(&numbered(2), 2);
    let xxh3 = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(last.as_bytes()));
    assert_eq!(snapshot_json(dir.path(), "seq")["hash"], xxh3);

    tamper(dir.path(), |s| s["hash"] = json!("0123456789abcdef"));
    let log = reopen_refreshed(dir.path());
    assert_rebuilt(&log, &[0, 1, 2]);
    assert_eq!(snapshot_json(dir.path(), "seq")["hash"], xxh3);
}

/// A log cut short behind a snapshot's back, on purpose (the record of
/// what the writer acknowledged deleted, as the error says to), leaves the
/// offset past the end: the view is rebuilt from what is left.
#[test]
fn offset_beyond_truncated_log_is_rebuilt() {
    let dir = refreshed_log(0..5);
    tamper(dir.path(), |_| {});
    let file = OpenOptions::new()
        .write(true)
        .open(active(dir.path()))
        .unwrap();
    file.set_len(3 * line_len(0)).unwrap();
    forget_acknowledged(dir.path());
    let log = reopen_refreshed(dir.path());
    assert_rebuilt(&log, &[0, 1, 2]);
}

/// A copy of a snapshot taken before a rotation, put back afterwards, has
/// an offset into the new active log: detected, and the view replays the
/// archive and the active log.
#[test]
fn snapshot_from_before_rotation_is_rebuilt() {
    let dir = refreshed_log(0..3);
    let old = fs::read(snapshot_file(dir.path(), "seq")).unwrap();
    {
        let mut log = open_with_views(dir.path());
        log.rotate().unwrap();
        append_numbered(&mut log, 3..8);
        log.refresh_all().unwrap();
    }
    fs::write(snapshot_file(dir.path(), "seq"), old).unwrap();
    let log = reopen_refreshed(dir.path());
    assert_rebuilt(&log, &[0, 1, 2, 3, 4, 5, 6, 7]);
}

/// The same stale copy must not be revived by a rotation of a log that
/// does not know the view, when the active log happens to end exactly at
/// the stale offset.
#[test]
fn stale_snapshot_is_not_revived_by_a_rotation() {
    let dir = refreshed_log(0..3);
    let old = fs::read(snapshot_file(dir.path(), "seq")).unwrap();
    {
        let mut log = open_with_views(dir.path());
        log.rotate().unwrap();
    }
    fs::write(snapshot_file(dir.path(), "seq"), old).unwrap();
    {
        let mut log = EventLog::open(dir.path()).unwrap();
        append_numbered(&mut log, 3..6);
        assert_eq!(log.active_len(), 3 * line_len(0));
        log.rotate().unwrap();
    }
    let log = reopen_refreshed(dir.path());
    assert_eq!(seq(&log), [0, 1, 2, 3, 4, 5]);
}

/// A valid event line inserted in the middle of `app.jsonl` while the log
/// was closed shifts the events after it: their positions would lie, so
/// reading fails with `Corrupt` naming `app.jsonl` and the first line whose
/// `seq` disagrees with its position, every time, instead of folding the
/// edited log; the view keeps its state and refreshing leaves its snapshot
/// as it was (`rebuild_view` deletes the snapshot before it replays).
///
/// Inserted as a stored line (with its own `"seq":7`), the inserted line
/// itself is the first to disagree. Inserted without `"seq"` (as lines
/// written before sequence numbers existed are), it takes its place's
/// position, and the next line, which says it is event 2, is the first to
/// disagree.
#[test]
fn line_inserted_in_log_is_detected() {
    for with_seq in [true, false] {
        let dir = refreshed_log(0..5);
        tamper(dir.path(), |_| {});
        let text = fs::read_to_string(active(dir.path())).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        let inserted = if with_seq {
            stored_line(&numbered(7), 7)
        } else {
            numbered(7).to_json_line().unwrap()
        };
        lines.insert(2, &inserted);
        fs::write(active(dir.path()), lines.join("\n") + "\n").unwrap();
        let bad_at = if with_seq {
            2 * line_len(0)
        } else {
            2 * line_len(0) + inserted.len() as u64 + 1
        };
        let before = fs::read(snapshot_file(dir.path(), "seq")).unwrap();

        let is_shifted = |err: &Error| {
            matches!(err, Error::Corrupt { path, offset, detail }
                if *path == active(dir.path())
                    && *offset == bad_at
                    && detail.contains("says it is event"))
        };
        let mut log = open_with_views(dir.path());
        let opened = seq(&log);
        for _ in 0..2 {
            let err = log.refresh_all().unwrap_err();
            assert!(is_shifted(&err), "with_seq {with_seq}: {err}");
            assert_eq!(seq(&log), opened, "with_seq {with_seq}: no partial state");
        }
        assert_eq!(
            fs::read(snapshot_file(dir.path(), "seq")).unwrap(),
            before,
            "with_seq {with_seq}"
        );
        let err = try_all_events(&log).unwrap_err();
        assert!(is_shifted(&err), "with_seq {with_seq}: {err}");
        let err = log.rebuild_view("seq").unwrap_err();
        assert!(is_shifted(&err), "with_seq {with_seq}: {err}");
        assert_eq!(seq(&log), opened, "with_seq {with_seq}: no partial state");
    }
}

/// An `app.jsonl` emptied on purpose (its record deleted too) with a
/// snapshot at offset > 0: rebuilt from the archive alone.
#[test]
fn emptied_log_with_snapshot_past_zero_is_rebuilt() {
    let dir = test_dir();
    {
        let mut log = open_with_views(dir.path());
        append_numbered(&mut log, 0..2);
        log.rotate().unwrap();
        append_numbered(&mut log, 2..5);
        log.refresh_all().unwrap();
    }
    tamper(dir.path(), |_| {});
    fs::write(active(dir.path()), b"").unwrap();
    forget_acknowledged(dir.path());
    let log = reopen_refreshed(dir.path());
    assert_rebuilt(&log, &[0, 1]);
    assert_eq!(snapshot_json(dir.path(), "seq")["hash"], "");
}

/// An offset inside a line (not just after a newline) is rebuilt, even
/// with the hash of a real line.
#[test]
fn offset_not_at_line_boundary_is_rebuilt() {
    let dir = refreshed_log(0..4);
    tamper(dir.path(), |s| s["offset"] = json!(2 * line_len(0) + 5));
    let log = reopen_refreshed(dir.path());
    assert_rebuilt(&log, &[0, 1, 2, 3]);
}

// ---------------------------------------------------------------------------
// Corrupt data is reported
// ---------------------------------------------------------------------------

/// A line that is not an event, in the middle of `app.jsonl`: refresh
/// fails with `Corrupt` naming the file and the line's byte offset, every
/// time, and the view and its snapshot keep their previous state.
#[test]
fn corrupt_log_line_is_reported_not_skipped() {
    let dir = refreshed_log(0..3);
    let bad_at = file_size(&active(dir.path()));
    append_bytes(&active(dir.path()), b"this is not an event\n");
    append_bytes(
        &active(dir.path()),
        format!("{}\n", stored_line(&numbered(3), 3)).as_bytes(),
    );
    // As after a reboot, when the writer's record says nothing: every
    // line is the log's (see the test below for what the record adds).
    forget_acknowledged(dir.path());
    let before = fs::read(snapshot_file(dir.path(), "seq")).unwrap();

    let mut log = open_with_views(dir.path());
    for _ in 0..2 {
        let err = log.refresh_all().unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { path, offset, .. }
                if *path == active(dir.path()) && *offset == bad_at),
            "{err}"
        );
        assert_eq!(seq(&log), [0, 1, 2]);
    }
    assert_eq!(fs::read(snapshot_file(dir.path(), "seq")).unwrap(), before);
    let err = log.rebuild_view("seq").unwrap_err();
    assert!(matches!(err, Error::Corrupt { offset, .. } if offset == bad_at));
}

/// Lines past what the writer acknowledged were never read back by any
/// writer: the next open checks them, and refuses a line that is not an
/// event there, naming it, before anything is appended after it. Without
/// the record (after a reboot), a last line that is not an event is
/// refused the same way.
#[test]
fn lines_past_the_acknowledged_end_are_checked_on_open() {
    for with_record in [true, false] {
        let dir = refreshed_log(0..3);
        let bad_at = file_size(&active(dir.path()));
        append_bytes(&active(dir.path()), b"this is not an event\n");
        if with_record {
            let line = format!("{}\n", stored_line(&numbered(3), 3));
            append_bytes(&active(dir.path()), line.as_bytes());
        } else {
            forget_acknowledged(dir.path());
        }
        // A torn tail after it, which the open would otherwise cut.
        append_bytes(&active(dir.path()), b"{\"type\":\"to");
        let before = dir_contents(dir.path());
        let err = builder_with_views(dir.path()).open().expect_err("opened");
        assert!(
            matches!(&err, Error::Corrupt { path, offset, .. }
                if *path == active(dir.path()) && *offset == bad_at),
            "record {with_record}: {err}"
        );
        assert_eq!(dir_contents(dir.path()), before, "record {with_record}");
    }
}

/// Events past the acknowledged end must follow the acknowledged ones:
/// numbers that leave a gap (events 10 and 11 after events 0 to 2) are
/// refused at the first of them, before anything is appended after them.
#[test]
fn a_gap_past_the_acknowledged_end_is_refused() {
    let dir = refreshed_log(0..3);
    let bad_at = file_size(&active(dir.path()));
    for n in [10, 11] {
        let line = format!("{}\n", stored_line(&numbered(n), n));
        append_bytes(&active(dir.path()), line.as_bytes());
    }
    let before = dir_contents(dir.path());
    let err = builder_with_views(dir.path()).open().expect_err("opened");
    assert!(
        matches!(&err, Error::Corrupt { path, offset, .. }
            if *path == active(dir.path()) && *offset == bad_at),
        "{err}"
    );
    assert_eq!(dir_contents(dir.path()), before);
    // The right numbers are taken.
    let mut bytes = fs::read(active(dir.path())).unwrap();
    bytes.truncate(bad_at as usize);
    for n in [3, 4] {
        bytes.extend_from_slice(format!("{}\n", stored_line(&numbered(n), n)).as_bytes());
    }
    fs::write(active(dir.path()), bytes).unwrap();
    assert_eq!(open_with_views(dir.path()).next_seq(), 5);
}

/// A log rotated three times, closed, with its archive then damaged by
/// `damage`: rebuilding a view, or refreshing one that has no snapshot,
/// fails with `Corrupt` naming the archive.
fn assert_archive_corruption_reported(damage: impl FnOnce(&mut Vec<u8>)) {
    let dir = test_dir();
    {
        let mut log = open_with_views(dir.path());
        for start in [0, 40, 80] {
            append_numbered(&mut log, start..start + 40);
            log.rotate().unwrap();
        }
    }
    let mut bytes = fs::read(archive(dir.path())).unwrap();
    damage(&mut bytes);
    fs::write(archive(dir.path()), bytes).unwrap();

    let is_archive_corrupt = |r: eventfold::Result<()>| matches!(r, Err(Error::Corrupt { path, .. }) if path == archive(dir.path()));
    // The snapshots were built from a longer archive: open itself may tell.
    let opened = builder_with_views(dir.path())
        .view::<u64>("sum", sum_reducer)
        .open();
    let mut log = match opened {
        Ok(log) => log,
        Err(e) => return assert!(is_archive_corrupt(Err(e))),
    };
    assert!(is_archive_corrupt(log.refresh_view("sum")));
    assert!(is_archive_corrupt(log.rebuild_view("seq")));
    assert!(
        is_archive_corrupt(log.refresh_view("seq")),
        "no partial state is served"
    );
}

/// Bytes flipped in the middle of the archive.
#[test]
fn flipped_archive_bytes_are_reported() {
    assert_archive_corruption_reported(|bytes| {
        let mid = bytes.len() / 2;
        bytes[mid..mid + 8].iter_mut().for_each(|b| *b ^= 0xff);
    });
}

/// An archive cut short in its last frame.
#[test]
fn truncated_archive_is_reported() {
    assert_archive_corruption_reported(|bytes| bytes.truncate(bytes.len() - 10));
}

/// Every archive frame carries a checksum: a bit flipped anywhere in the
/// archive is reported as corruption of the archive, or (in bytes zstd
/// does not use for the data) changes nothing. It never changes events.
#[test]
fn every_bit_flip_in_the_archive_is_caught() {
    let dir = refreshed_log(0..8);
    open_with_views(dir.path()).rotate().unwrap();
    let original = fs::read(archive(dir.path())).unwrap();
    let expected = events_of_range(0..8);
    let mut caught = 0;
    for i in 0..original.len() {
        let mut damaged = original.clone();
        damaged[i] ^= 0x04;
        fs::write(archive(dir.path()), &damaged).unwrap();
        // Open checks the frame the archive index records: damage there is
        // caught before any read.
        let read = EventLog::open(dir.path()).and_then(|log| try_all_events(&log));
        match read {
            Ok(events) => assert_eq!(events, expected, "flip at byte {i} changed events"),
            Err(Error::Corrupt { path, .. }) => {
                assert_eq!(path, archive(dir.path()), "flip at byte {i}");
                caught += 1;
            }
            Err(other) => panic!("flip at byte {i}: {other:?}"),
        }
    }
    assert!(
        caught > original.len() / 2,
        "{caught} of {} flips caught",
        original.len()
    );
}

fn events_of_range(range: std::ops::Range<u64>) -> Vec<eventfold::Event> {
    range.map(numbered).collect()
}

/// A snapshot at offset 0 records how much of the archive it includes: a
/// stale copy restored after a later rotation is rebuilt, not trusted.
#[test]
fn stale_offset_zero_snapshot_after_a_later_rotation_is_rebuilt() {
    let dir = refreshed_log(0..3);
    open_with_views(dir.path()).rotate().unwrap();
    let stale = fs::read(snapshot_file(dir.path(), "seq")).unwrap();
    {
        let mut log = open_with_views(dir.path());
        append_numbered(&mut log, 3..6);
        log.rotate().unwrap();
    }
    fs::write(snapshot_file(dir.path(), "seq"), &stale).unwrap();
    let mut log = open_with_views(dir.path());
    log.refresh_all().unwrap();
    assert_eq!(seq(&log), (0..6).collect::<Vec<_>>());
}

/// A snapshot written by `Snapshot::save` (without `archive_len`) is still
/// accepted on its offset and hash.
#[test]
fn snapshot_without_archive_len_is_accepted() {
    let dir = refreshed_log(0..3);
    hand_write_snapshot(dir.path(), "count", |json| {
        json.as_object_mut().unwrap().remove("archive_len");
        json["state"] = json!(100);
    });
    let mut log = open_with_views(dir.path());
    append_numbered(&mut log, 3..4);
    log.refresh_all().unwrap();
    assert_eq!(*log.view::<u64>("count").unwrap(), 101);
}

/// Reliability rule 10: a damaged archive frame was reported "at byte 0"
/// of the decompressed stream, with no hint which frame. The error now
/// names the frame and gives its offset in the compressed file, for every
/// damaged frame of a three-frame archive, whether the damage is in its
/// data or its header. Damage to the start of the frame the archive index
/// records as the last is caught by `EventLog::open` itself, with the same
/// file, offset and frame number.
#[test]
fn damaged_archive_frame_is_named_with_its_compressed_offset() {
    let dir = test_dir();
    {
        let mut log = EventLog::open(dir.path()).unwrap();
        for batch in 0..3 {
            append_numbered(&mut log, batch * 20..batch * 20 + 20);
            log.rotate().unwrap();
        }
    }
    let archive_path = dir.path().join("archive.jsonl.zst");
    let archive = fs::read(&archive_path).unwrap();
    let mut starts = vec![0];
    while *starts.last().unwrap() < archive.len() {
        let at = *starts.last().unwrap();
        starts.push(at + zstd::zstd_safe::find_frame_compressed_size(&archive[at..]).unwrap());
    }
    starts.pop();
    assert_eq!(starts.len(), 3);
    for (i, &start) in starts.iter().enumerate() {
        for damage_at in [start, start + 12, start + 30] {
            let mut damaged = archive.clone();
            damaged[damage_at] ^= 0x55;
            fs::write(&archive_path, &damaged).unwrap();
            let error = match EventLog::open(dir.path()) {
                Ok(log) => log
                    .read_full()
                    .unwrap()
                    .find_map(Result::err)
                    .expect("the damage is reported"),
                Err(error) => error,
            };
            match &error {
                Error::Corrupt {
                    path,
                    offset,
                    detail,
                } => {
                    assert_eq!(path, &archive_path);
                    assert_eq!(*offset, start as u64, "{detail}");
                    assert!(detail.contains(&format!("frame {}", i + 1)), "{detail}");
                }
                other => panic!("expected Corrupt, got {other}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Acknowledged events cannot vanish
// ---------------------------------------------------------------------------

/// Cuts the log at the path, given its length and where its last line
/// starts; returns where the error names the damage.
type Cut = fn(&Path, u64, u64) -> u64;

/// Ways to lose the end of `app.jsonl` by hand, each with how many of its
/// events survive it.
const CUTS: [(&str, Cut, u64); 4] = [
    (
        "emptied (`: > app.jsonl`)",
        |path, _, _| {
            fs::write(path, b"").unwrap();
            0
        },
        0,
    ),
    (
        "last line deleted (`sed -i '$d'`)",
        |path, _, last| {
            fs::OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(last)
                .unwrap();
            last
        },
        4,
    ),
    (
        "cut mid-line (`truncate -s -20`)",
        |path, len, _| {
            fs::OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(len - 20)
                .unwrap();
            len - 20
        },
        4,
    ),
    (
        "its end zeroed",
        |path, _, last| {
            let mut bytes = fs::read(path).unwrap();
            bytes[last as usize..].fill(0);
            fs::write(path, bytes).unwrap();
            last
        },
        4,
    ),
];

/// An `app.jsonl` that lost acknowledged events since its writer last
/// wrote (emptied, its last line deleted, cut mid-line, its end zeroed):
/// the next open is `Error::Corrupt` naming the file, the byte where the
/// loss starts and the record that tells, and changes no file; deleting
/// the record, as the error says for a cut made on purpose, opens what is
/// left. The log has been rotated once, so the archive holds events too.
#[test]
fn acknowledged_events_cut_from_the_log_are_reported() {
    for (how, cut, kept) in CUTS {
        let dir = test_dir();
        {
            let mut log = open_with_views(dir.path());
            append_numbered(&mut log, 0..3);
            log.rotate().unwrap();
            append_numbered(&mut log, 3..8);
            log.refresh_all().unwrap();
        }
        let path = active(dir.path());
        let len = file_size(&path);
        let last = len - line_len(7);
        let at = cut(&path, len, last);
        let before = dir_contents(dir.path());

        let err = builder_with_views(dir.path())
            .open()
            .err()
            .unwrap_or_else(|| panic!("{how}: opened"));
        match &err {
            Error::Corrupt {
                path: p,
                offset,
                detail,
            } => {
                assert_eq!((p, *offset), (&path, at), "{how}: {err}");
                assert!(
                    detail.contains(&format!("acknowledged {len} bytes"))
                        && detail.contains(COMMITTED),
                    "{how}: {err}"
                );
            }
            other => panic!("{how}: {other}"),
        }
        assert_eq!(
            dir_contents(dir.path()),
            before,
            "{how}: the failed open changed files"
        );

        forget_acknowledged(dir.path());
        let mut log = open_with_views(dir.path());
        log.refresh_all().unwrap();
        let left: Vec<u64> = (0..3 + kept).collect();
        assert_eq!(numbers(&all_events(&log)), left, "{how}");
        assert_eq!(seq(&log), left, "{how}");
        // The next event takes the next number of what is left.
        append_numbered(&mut log, 3 + kept..3 + kept + 1);
        assert_eq!(log.next_seq(), 4 + kept, "{how}");
    }
}

/// What the writer may cut is not mistaken for a loss: a torn tail after
/// the acknowledged end (a crash in an append); and a record that does
/// not describe the log (written before a rotation, damaged, or a
/// directory in its place) says nothing.
#[test]
fn what_a_writer_may_cut_still_opens() {
    let dir = refreshed_log(0..4);
    append_bytes(&active(dir.path()), b"{\"type\":\"torn");
    let log = reopen_refreshed(dir.path());
    assert_eq!(log.next_seq(), 4);
    drop(log);
    assert!(data_file(dir.path(), "app.jsonl.torn").exists());

    // A record written for the log before a rotation says nothing about
    // the new, empty one.
    let old_record = fs::read(data_file(dir.path(), COMMITTED)).unwrap();
    open_with_views(dir.path()).rotate().unwrap();
    fs::write(data_file(dir.path(), COMMITTED), &old_record).unwrap();
    let mut log = open_with_views(dir.path());
    assert_eq!(log.next_seq(), 4);
    append_numbered(&mut log, 4..6);
    drop(log);

    // A record damaged, or not a file at all, is replaced.
    fs::write(
        data_file(dir.path(), COMMITTED),
        b"{\"base\":4,\"len\":99999}",
    )
    .unwrap();
    assert_eq!(open_with_views(dir.path()).next_seq(), 6);
    forget_acknowledged(dir.path());
    fs::create_dir(data_file(dir.path(), COMMITTED)).unwrap();
    assert_eq!(open_with_views(dir.path()).next_seq(), 6);
}

/// `app.jsonl` deleted while its writer's record says it held events: the
/// writer's open and readers report the loss at byte 0, rather than
/// starting an empty log after the archive.
#[test]
fn a_deleted_active_log_is_reported() {
    let dir = refreshed_log(0..3);
    fs::remove_file(active(dir.path())).unwrap();
    let read = EventReader::open(dir.path()).unwrap().next_seq();
    match read {
        Err(Error::Corrupt { path, offset, .. }) => {
            assert_eq!((path, offset), (active(dir.path()), 0));
        }
        other => panic!("a reader read a deleted log: {other:?}"),
    }
    let err = builder_with_views(dir.path()).open().expect_err("opened");
    assert!(
        matches!(&err, Error::Corrupt { path, offset: 0, .. } if *path == active(dir.path())),
        "{err}"
    );
    assert!(
        err.to_string().contains("acknowledged events are missing"),
        "{err}"
    );
}
