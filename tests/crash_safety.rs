//! Crash safety: the files a crash leaves behind at each point of an append,
//! a snapshot write or a rotation are built by hand with `std::fs`; then the
//! log is opened and must recover with every committed event exactly once,
//! in order, and with views that agree with the history.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use eventfold::{Error, Event, EventLog, EventReader};
use tempfile::TempDir;

use common::*;

const VIEWS: [&str; 3] = ["count", "seq", "todos"];

// ---------------------------------------------------------------- helpers

fn events_of(ns: &[u64]) -> Vec<Event> {
    ns.iter().map(|&n| numbered(n)).collect()
}

fn range(r: std::ops::Range<u64>) -> Vec<u64> {
    r.collect()
}

/// The stored line of `numbered(n)`, without its newline.
fn line_of(n: u64) -> Vec<u8> {
    stored_line(&numbered(n), n).into_bytes()
}

/// Every file of the data directory and of `views/`, with its bytes.
fn dir_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for sub in [dir.to_path_buf(), dir.join("views")] {
        for entry in fs::read_dir(&sub).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_file() {
                let name = path.strip_prefix(dir).expect("inside dir").to_path_buf();
                files.insert(name, fs::read(&path).expect("read file"));
            }
        }
    }
    files
}

/// A log with events `0..n` committed and every view refreshed, after a
/// rotation of `0..rotated` if `rotated > 0`; closed without any shutdown.
fn committed_log(rotated: u64, n: u64) -> TempDir {
    let dir = test_dir();
    let mut log = open_with_views(dir.path());
    append_numbered(&mut log, 0..rotated);
    if rotated > 0 {
        log.rotate().expect("rotate");
    }
    append_numbered(&mut log, rotated..n);
    log.refresh_all().expect("refresh");
    dir
}

/// The views' current states are those of the history `expected`.
fn assert_views(log: &EventLog, expected: &[u64]) {
    let events = events_of(expected);
    let count = events.iter().fold(0, counter_reducer);
    let seq = events.iter().fold(Vec::new(), seq_reducer);
    assert_eq!(*log.view::<u64>("count").unwrap(), count, "count view");
    assert_eq!(*log.view::<Vec<u64>>("seq").unwrap(), seq, "seq view");
    assert_eq!(
        *log.view::<TodoState>("todos").unwrap(),
        TodoState::default()
    );
}

/// Opens a crashed directory and checks a full recovery: no intent record
/// is left, `read_full` is exactly `expected`, the views agree with it, a
/// second open changes no file, and appending continues the history.
fn assert_recovers(dir: &Path, expected: &[u64]) {
    let mut log = open_with_views(dir);
    assert!(!dir.join(INTENT).exists(), "intent record left behind");
    assert!(
        !dir.join(INTENT_TMP).exists(),
        "intent temporary left behind"
    );
    assert_eq!(all_events(&log), events_of(expected), "read_full");
    assert_eq!(log.next_seq(), expected.len() as u64, "next_seq");
    for start in 0..=expected.len() {
        let read: Vec<(u64, Event)> = log
            .read_from_seq(start as u64)
            .and_then(|items| items.map(|i| i.map(|(seq, e, _)| (seq, e))).collect())
            .expect("read_from_seq");
        let wanted: Vec<(u64, Event)> = (start as u64..)
            .zip(events_of(&expected[start..]))
            .collect();
        assert_eq!(read, wanted, "read_from_seq({start})");
    }
    log.refresh_all().expect("refresh");
    assert_views(&log, expected);
    drop(log);
    check_index(dir);

    let settled = dir_files(dir);
    let mut log = open_with_views(dir);
    assert_views(&log, expected); // straight from the snapshots
    log.refresh_all().expect("refresh");
    drop(log);
    assert!(dir_files(dir) == settled, "a second open changed files");

    let mut log = open_with_views(dir);
    let next = expected.iter().max().map_or(0, |n| n + 1);
    let end = log.active_len();
    assert_eq!(log.append(&numbered(next)).expect("append"), end);
    log.refresh_all().expect("refresh");
    let mut more = expected.to_vec();
    more.push(next);
    assert_eq!(all_events(&log), events_of(&more), "read_full after append");
    assert_views(&log, &more);
}

/// Opening `dir` fails with `Error::Corrupt` naming `file`, and touches
/// nothing: the files stay as the crash left them, for a person to look at.
fn assert_open_refused(dir: &Path, file: &str) {
    let files = dir_files(dir);
    for _ in 0..2 {
        let err = builder_with_views(dir)
            .open()
            .expect_err("open must refuse");
        assert!(
            matches!(&err, Error::Corrupt { path, .. } if *path == dir.join(file)),
            "expected Error::Corrupt on {file}, got {err:?}"
        );
        assert!(err.to_string().contains(file), "{err}");
        assert!(dir_files(dir) == files, "a refused open changed files");
    }
}

// ------------------------------------------------------- crash in append

/// The file and byte offset of an `Error::Corrupt`.
fn corrupt_at<T>(result: &eventfold::Result<T>) -> Option<(PathBuf, u64)> {
    match result {
        Err(Error::Corrupt { path, offset, .. }) => Some((path.clone(), *offset)),
        _ => None,
    }
}

/// Appends `tail` (a torn line: no newline) to the log of `dir`, whose
/// committed history is `0..n`, and checks the cut on open.
fn check_torn_tail(dir: &Path, n: u64, tail: &[u8]) {
    let log_path = dir.join(LOG);
    let good = file_size(&log_path);
    let torn_before = fs::read(dir.join(TORN)).unwrap_or_default();
    append_bytes(&log_path, tail);

    let mut log = open_with_views(dir);
    assert_eq!(file_size(&log_path), good, "torn tail cut off app.jsonl");
    assert_eq!(log.active_len(), good);
    let kept = fs::read(dir.join(TORN)).expect("app.jsonl.torn");
    assert_eq!(
        kept,
        [&torn_before[..], tail, b"\n"].concat(),
        "cut bytes kept"
    );
    assert_eq!(all_events(&log), events_of(&range(0..n)));
    assert_views(&log, &range(0..n)); // snapshots at the good prefix still hold

    assert_eq!(
        log.append(&numbered(n)).expect("append"),
        good,
        "fresh line"
    );
    assert_eq!(active_events(&log, good), [numbered(n)]);
    drop(log);
    assert_recovers(dir, &range(0..n + 1));
}

#[test]
fn torn_half_line_is_cut_and_kept_aside() {
    let dir = committed_log(0, 3);
    let line = line_of(3);
    check_torn_tail(dir.path(), 3, &line[..line.len() / 2]);
}

/// A last line that is a complete event and lacks only its newline (a
/// crash between the two, or a file saved by an editor without a final
/// newline) is kept: the newline is added, nothing is cut.
#[test]
fn complete_event_missing_only_its_newline_is_kept() {
    let dir = committed_log(0, 3);
    let log_path = dir.path().join(LOG);
    append_bytes(&log_path, &line_of(3));
    let mut log = open_with_views(dir.path());
    assert!(!dir.path().join(TORN).exists(), "nothing was cut");
    assert_eq!(log.active_len(), file_size(&log_path));
    assert_eq!(all_events(&log), events_of(&range(0..4)));
    let next = log.append(&numbered(4)).expect("append");
    assert_eq!(active_events(&log, next), [numbered(4)], "not glued");
    drop(log);
    assert_recovers(dir.path(), &range(0..5));
}

#[test]
fn torn_tail_that_is_the_whole_file_leaves_an_empty_log() {
    let dir = committed_log(0, 0);
    check_torn_tail(dir.path(), 0, b"{\"type\":\"numbered\",\"da");
}

#[test]
fn torn_tail_after_a_rotation_keeps_archive_and_active_events() {
    let dir = committed_log(3, 5);
    let archive = fs::read(dir.path().join(ARCHIVE)).expect("archive");
    check_torn_tail(dir.path(), 5, b"{\"type\":\"caf\xc3");
    assert_eq!(archive_lines(dir.path()).len(), 3);
    assert!(
        fs::read(dir.path().join(ARCHIVE))
            .unwrap()
            .starts_with(&archive)
    );
}

#[test]
fn torn_tails_of_successive_crashes_accumulate_one_line_each() {
    let dir = committed_log(0, 2);
    check_torn_tail(dir.path(), 2, b"{\"type\"");
    // check_torn_tail appended 2 and 3 since.
    check_torn_tail(dir.path(), 4, b"{\"type\":\"numbered\",\"data\":{\"n\":4}");
    let kept = fs::read_to_string(dir.path().join(TORN)).unwrap();
    assert_eq!(kept.lines().count(), 2, "{kept:?}");
}

/// Zeros from the end of the log of `dir` up to the next 4 KiB page
/// boundary: the unsynced part of the page a power cut lost.
fn zeros_to_page_end(dir: &Path) -> Vec<u8> {
    let len = file_size(&dir.join(LOG)) as usize;
    vec![0; 4096 - len % 4096]
}

/// Reliability rule 4, found by the power-loss test: a file system that
/// writes pages back out of order can lose the first page of an unsynced
/// append (zeros) while keeping its last page, newline included. The log
/// then opened and every read failed. The hole and all after it are now
/// cut and kept aside like any torn tail.
#[test]
fn zeroed_page_before_the_end_of_an_unsynced_line_is_cut() {
    let dir = committed_log(0, 3);
    let line = line_of(3);
    let tail = [
        zeros_to_page_end(dir.path()),
        line[line.len() / 2..].to_vec(),
        b"\n".to_vec(),
    ]
    .concat();
    check_torn_tail(dir.path(), 3, &tail);
}

/// The same with whole events of an unsynced batch after the hole, and
/// whole zero pages between them: none was acknowledged, all are cut.
#[test]
fn zeroed_pages_inside_an_unsynced_batch_cut_the_whole_batch() {
    let dir = committed_log(0, 3);
    let mut tail = zeros_to_page_end(dir.path());
    tail.extend(vec![0; 4096]);
    for n in 4..40 {
        tail.extend(line_of(n));
        tail.push(b'\n');
    }
    let pad = 4096 - (file_size(&dir.path().join(LOG)) as usize + tail.len()) % 4096;
    tail.extend(vec![0; pad]);
    tail.extend(line_of(40));
    tail.push(b'\n');
    tail.extend(&line_of(41)[..10]);
    check_torn_tail(dir.path(), 3, &tail);
}

/// Zeros that a lost page cannot explain (three bytes in the middle of
/// the last line) are damage of another kind: nothing is cut, and reading
/// reports the line with its offset.
#[test]
fn zeros_of_another_shape_in_the_last_line_are_reported_not_cut() {
    let dir = committed_log(0, 3);
    let log_path = dir.path().join(LOG);
    let mut bytes = fs::read(&log_path).unwrap();
    let last = bytes[..bytes.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    bytes[last + 5..last + 8].fill(0);
    fs::write(&log_path, &bytes).unwrap();
    // The last line is no event: the writer refuses to append after it.
    let opened = builder_with_views(dir.path()).open();
    assert_eq!(corrupt_at(&opened), Some((log_path.clone(), last as u64)));
    assert_eq!(fs::read(&log_path).unwrap(), bytes, "open cut nothing");
    assert!(!dir.path().join(TORN).exists());
    let reader = EventReader::open(dir.path()).unwrap();
    let items: Vec<_> = reader.read_from_seq(0).unwrap().events().collect();
    assert_eq!(corrupt_at(&items[2]), Some((log_path, last as u64)));
}

#[test]
fn complete_corrupt_line_mid_log_is_an_error_not_a_torn_tail() {
    let dir = committed_log(0, 2);
    let log_path = dir.path().join(LOG);
    let bad_at = file_size(&log_path);
    append_bytes(&log_path, b"not an event\n");
    append_bytes(&log_path, &[line_of(2), b"\n".to_vec()].concat());
    let bytes = fs::read(&log_path).unwrap();
    // Past what the writer acknowledged, the lines are checked on open.
    let opened = builder_with_views(dir.path()).open();
    assert_eq!(corrupt_at(&opened), Some((log_path.clone(), bad_at)));
    assert_eq!(fs::read(&log_path).unwrap(), bytes, "open repaired the log");

    // After a reboot they are the log's: read up to the damage.
    forget_acknowledged(dir.path());
    let mut log = open_with_views(dir.path());
    assert_eq!(fs::read(&log_path).unwrap(), bytes, "open repaired the log");
    assert!(!dir.path().join(TORN).exists());
    let items: Vec<_> = log.read_full().unwrap().collect();
    assert_eq!(items.len(), 3, "two events, then the error, then nothing");
    assert_eq!(corrupt_at(&items[2]), Some((log_path.clone(), bad_at)));
    assert_eq!(corrupt_at(&log.refresh_all()), Some((log_path, bad_at)));
    assert_views(&log, &[0, 1]); // views keep the events before the damage
}

// ------------------------------------------------ crash in snapshot write

/// The temporary file a snapshot is written to before its rename.
fn snapshot_tmp(dir: &Path, view: &str) -> PathBuf {
    let mut name = snapshot_file(dir, view).into_os_string();
    name.push(".tmp");
    name.into()
}

#[test]
fn crash_during_snapshot_write_keeps_the_old_snapshot() {
    let dir = committed_log(0, 3); // snapshots cover 0..3
    append_numbered(&mut open_with_views(dir.path()), 3..5);
    let seq_snapshot = fs::read(snapshot_file(dir.path(), "seq")).unwrap();
    let tmp = |view| snapshot_tmp(dir.path(), view);
    // A new snapshot half written, and one fully written but never renamed.
    fs::write(tmp("count"), br#"{"state":5,"off"#).unwrap();
    fs::write(tmp("seq"), br#"{"state":[42],"offset":0,"hash":""}"#).unwrap();

    let mut log = open_with_views(dir.path());
    assert!(!tmp("count").exists() && !tmp("seq").exists(), ".tmp swept");
    assert_eq!(
        fs::read(snapshot_file(dir.path(), "seq")).unwrap(),
        seq_snapshot
    );
    assert_views(&log, &[0, 1, 2]); // the old snapshots, loaded on open
    log.refresh_all().unwrap();
    assert_views(&log, &range(0..5)); // old snapshots plus the new events
    log.save_views().unwrap();
    assert_eq!(
        snapshot_json(dir.path(), "seq")["offset"],
        file_size(&dir.path().join(LOG))
    );
    drop(log);
    assert_recovers(dir.path(), &range(0..5));
}

#[test]
fn crash_during_first_snapshot_write_replays_history() {
    let dir = test_dir();
    append_numbered(&mut open_with_views(dir.path()), 0..3);
    let tmp = snapshot_tmp(dir.path(), "seq");
    fs::write(&tmp, b"{\"state\":[0,1").unwrap();

    let log = open_with_views(dir.path());
    assert!(!tmp.exists());
    assert_views(&log, &[]); // no snapshot: nothing loaded until a refresh
    drop(log);
    assert_recovers(dir.path(), &range(0..3));
}

// ------------------------------------------------------ crash in rotation

/// The point of a rotation a crash interrupted; see `src/rotation.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// Step 1 done: views refreshed, snapshots at `M`; no intent yet.
    Refreshed,
    /// Step 2 done: `rotation.json` written; the archive untouched.
    IntentWritten,
    /// The archive opened for appending (created empty on a first rotation).
    ArchiveOpened,
    /// Step 3 half done: part of the compressed frame appended.
    PartialFrame,
    /// Step 3 done: frame complete and synced; `app.jsonl` not truncated.
    FrameWritten,
    /// Step 4 half done: part of the frame's line appended to the index.
    IndexTorn,
    /// Step 4 done: the index records the frame; `app.jsonl` not truncated.
    IndexWritten,
    /// Step 5 done: `app.jsonl` truncated; snapshots still at `M`.
    Truncated,
    /// Step 6 half done: the "count" snapshot at 0, the others still at `M`.
    SomeShifted,
    /// Step 6 done: every snapshot at 0; `rotation.json` not yet removed.
    Shifted,
}

/// One rotation captured as real files: `before` is the directory once
/// step 1 is done, `after` the same directory once `rotate` has returned.
struct Rotation {
    before: TempDir,
    after: TempDir,
    /// `A`: archive length before the rotation.
    archive_len: u64,
    /// `M`: length of the active log being rotated.
    log_len: u64,
    /// The whole history, archive and active log.
    history: Vec<u64>,
}

impl Rotation {
    /// A first rotation, or a second one (an earlier rotation of three
    /// events already left a frame in the archive).
    fn new(second: bool) -> Self {
        let archived = if second { 3 } else { 0 };
        let before = committed_log(archived, archived + 3);
        let after = test_dir();
        copy_data_dir(before.path(), after.path());
        open_with_views(after.path()).rotate().expect("rotate");
        Rotation {
            archive_len: file_size(&before.path().join(ARCHIVE)),
            log_len: file_size(&before.path().join(LOG)),
            history: range(0..archived + 3),
            before,
            after,
        }
    }

    fn both() -> [Self; 2] {
        [Rotation::new(false), Rotation::new(true)]
    }

    fn intent(&self) -> String {
        intent_record(self.archive_len, self.log_len)
    }

    /// A directory holding what a crash at `step` leaves on disk.
    fn crash_at(&self, step: Step) -> TempDir {
        let dir = test_dir();
        copy_data_dir(self.before.path(), dir.path());
        let (d, after) = (dir.path(), self.after.path());
        if step >= Step::IntentWritten {
            fs::write(d.join(INTENT), self.intent()).unwrap();
        }
        let archive = fs::read(after.join(ARCHIVE)).unwrap();
        let a = self.archive_len as usize;
        match step {
            Step::Refreshed | Step::IntentWritten => {}
            Step::ArchiveOpened => append_bytes(&d.join(ARCHIVE), b""),
            Step::PartialFrame => {
                fs::write(d.join(ARCHIVE), &archive[..a + (archive.len() - a) / 2]).unwrap()
            }
            _ => fs::write(d.join(ARCHIVE), &archive).unwrap(),
        }
        let index_before = fs::read(self.before.path().join(INDEX)).unwrap_or_default();
        let index_after = fs::read(after.join(INDEX)).unwrap();
        match step {
            Step::IndexTorn => {
                let half = index_before.len() + (index_after.len() - index_before.len()) / 2;
                fs::write(d.join(INDEX), &index_after[..half]).unwrap();
            }
            _ if step >= Step::IndexWritten => fs::write(d.join(INDEX), &index_after).unwrap(),
            _ => {}
        }
        if step >= Step::Truncated {
            fs::write(d.join(LOG), b"").unwrap();
        }
        let shifted: &[&str] = match step {
            Step::SomeShifted => &["count"],
            Step::Shifted => &VIEWS,
            _ => &[],
        };
        for view in shifted {
            fs::copy(snapshot_file(after, view), snapshot_file(d, view)).unwrap();
        }
        dir
    }

    /// Opens a crash at `step` and checks that it was undone: the archive
    /// cut back to `A` bytes, the active log and snapshots as before.
    fn check_rolled_back(&self, step: Step) {
        let dir = self.crash_at(step);
        let d = dir.path();
        let log = open_with_views(d);
        let archive = d.join(ARCHIVE);
        if self.archive_len == 0 {
            assert!(
                !archive.exists(),
                "{step:?}: first rotation's archive removed"
            );
        } else {
            assert_eq!(
                fs::read(&archive).unwrap(),
                fs::read(self.before.path().join(ARCHIVE)).unwrap(),
                "{step:?}: archive cut back to exactly A bytes"
            );
        }
        assert_eq!(file_size(&d.join(LOG)), self.log_len, "{step:?}");
        assert_eq!(
            fs::read(d.join(INDEX)).unwrap_or_default(),
            fs::read(self.before.path().join(INDEX)).unwrap_or_default(),
            "{step:?}: the index cut back to the frames before the rotation"
        );
        check_index(d);
        for view in VIEWS {
            assert_eq!(snapshot_json(d, view)["offset"], self.log_len, "{step:?}");
        }
        assert_views(&log, &self.history); // snapshots accepted as they are
        drop(log);
        assert_recovers(d, &self.history);
    }

    /// Opens a crash at `step` and checks that it was finished: the archive
    /// holds the new frame, the active log is empty and every snapshot has
    /// its state at offset 0.
    fn check_rolled_forward(&self, step: Step) {
        let dir = self.crash_at(step);
        let (d, after) = (dir.path(), self.after.path());
        let log = open_with_views(d);
        assert_eq!(
            fs::read(d.join(ARCHIVE)).unwrap(),
            fs::read(after.join(ARCHIVE)).unwrap(),
            "{step:?}: archive kept"
        );
        assert_eq!(file_size(&d.join(LOG)), 0, "{step:?}");
        assert_eq!(
            fs::read(d.join(INDEX)).unwrap(),
            fs::read(after.join(INDEX)).unwrap(),
            "{step:?}: the index records the new frame"
        );
        check_index(d);
        for view in VIEWS {
            let snapshot = snapshot_json(d, view);
            assert_eq!(snapshot, snapshot_json(after, view), "{step:?}: {view}");
            assert_eq!(snapshot["offset"], 0, "{step:?}: {view}");
        }
        assert_views(&log, &self.history); // snapshots accepted at offset 0
        drop(log);
        assert_recovers(d, &self.history);
    }
}

/// A reader of the files a crash at any step of a rotation leaves (no
/// writer has recovered them) sees the whole history, as recovery will
/// make it, and changes nothing; views fold from it in memory.
#[test]
fn a_reader_of_every_crash_state_sees_the_whole_history_and_writes_nothing() {
    use eventfold::{EventReader, View};
    let steps = [
        Step::Refreshed,
        Step::IntentWritten,
        Step::ArchiveOpened,
        Step::PartialFrame,
        Step::FrameWritten,
        Step::IndexTorn,
        Step::IndexWritten,
        Step::Truncated,
        Step::SomeShifted,
        Step::Shifted,
    ];
    for r in Rotation::both() {
        for step in steps {
            let dir = r.crash_at(step);
            let d = dir.path();
            let before = dir_contents(d);
            let reader = EventReader::open(d).unwrap();
            assert_eq!(
                reader.next_seq().unwrap(),
                r.history.len() as u64,
                "{step:?}"
            );
            for start in 0..=r.history.len() {
                let read: Vec<(u64, Event)> = reader
                    .read_from_seq(start as u64)
                    .and_then(|items| items.map(|i| i.map(|(seq, e, _)| (seq, e))).collect())
                    .unwrap_or_else(|e| panic!("{step:?}: read_from_seq({start}): {e}"));
                let wanted: Vec<(u64, Event)> = (start as u64..)
                    .zip(events_of(&r.history[start..]))
                    .collect();
                assert_eq!(read, wanted, "{step:?}: read_from_seq({start})");
            }
            let mut view = View::new("seq", seq_reducer, d.join("views")).unwrap();
            let folded = view.refresh(&reader).unwrap().clone();
            assert_eq!(folded, r.history, "{step:?}: a view folded from the reader");
            assert_eq!(
                dir_contents(d),
                before,
                "{step:?}: the reader changed a file"
            );
            assert_recovers(d, &r.history);
        }
    }
}

#[test]
fn rotation_crash_before_intent_needs_no_recovery() {
    for r in Rotation::both() {
        let dir = r.crash_at(Step::Refreshed);
        drop(open_with_views(dir.path()));
        assert!(
            dir_files(dir.path()) == dir_files(r.before.path()),
            "open changed files"
        );
        assert_recovers(dir.path(), &r.history);
    }
}

#[test]
fn rotation_crash_while_writing_intent_sweeps_its_tmp() {
    for r in Rotation::both() {
        let dir = r.crash_at(Step::Refreshed);
        let intent = r.intent();
        fs::write(dir.path().join(INTENT_TMP), &intent[..intent.len() / 2]).unwrap();
        drop(open_with_views(dir.path()));
        assert!(
            !dir.path().join(INTENT_TMP).exists(),
            "rotation.json.tmp removed"
        );
        assert!(
            dir_files(dir.path()) == dir_files(r.before.path()),
            "nothing else changed"
        );
        assert_recovers(dir.path(), &r.history);
    }
}

#[test]
fn rotation_crash_after_intent_before_archive_write_rolls_back() {
    for r in Rotation::both() {
        r.check_rolled_back(Step::IntentWritten);
        r.check_rolled_back(Step::ArchiveOpened);
    }
}

#[test]
fn rotation_crash_mid_frame_cuts_the_partial_frame() {
    for r in Rotation::both() {
        r.check_rolled_back(Step::PartialFrame);
    }
}

/// The design's "after compress, before truncate": the archive has the new
/// frame and `app.jsonl` still has the same events.
#[test]
fn rotation_crash_after_compress_before_truncate_rolls_back() {
    for r in Rotation::both() {
        r.check_rolled_back(Step::FrameWritten);
    }
}

/// The frame is in the archive and its line in the index, whole or in
/// part, but `app.jsonl` still has its events: both are cut back.
#[test]
fn rotation_crash_while_recording_the_frame_rolls_back_the_index_too() {
    for r in Rotation::both() {
        r.check_rolled_back(Step::IndexTorn);
        r.check_rolled_back(Step::IndexWritten);
    }
}

/// A crash of a version of eventfold from before the archive index, after
/// `app.jsonl` was truncated: the index has no line for the new frame (or
/// does not exist). The roll-forward records it, counting its events.
#[test]
fn rotation_crash_without_the_index_line_rolls_forward_and_records_the_frame() {
    for r in Rotation::both() {
        for index_kept in [true, false] {
            let dir = r.crash_at(Step::FrameWritten);
            fs::write(dir.path().join(LOG), b"").unwrap();
            if !index_kept {
                let _ = fs::remove_file(dir.path().join(INDEX));
            }
            let log = open_with_views(dir.path());
            assert_eq!(log.next_seq(), r.history.len() as u64);
            drop(log);
            assert_eq!(
                fs::read(dir.path().join(INDEX)).unwrap(),
                fs::read(r.after.path().join(INDEX)).unwrap(),
                "index kept: {index_kept}"
            );
            assert_recovers(dir.path(), &r.history);
        }
    }
}

/// The design's "after truncate, before snapshot offset reset": `app.jsonl`
/// is empty, the snapshots still point at its old end.
#[test]
fn rotation_crash_after_truncate_before_snapshot_offset_reset_rolls_forward() {
    for r in Rotation::both() {
        r.check_rolled_forward(Step::Truncated);
    }
}

#[test]
fn rotation_crash_mid_snapshot_reset_finishes_the_reset() {
    for r in Rotation::both() {
        r.check_rolled_forward(Step::SomeShifted);
    }
}

#[test]
fn rotation_crash_before_intent_removal_is_harmless() {
    for r in Rotation::both() {
        r.check_rolled_forward(Step::Shifted);
    }
}

/// Even without the intent record, snapshots pointing past the end of an
/// emptied log are not trusted: the views are rebuilt from the archive.
#[test]
fn snapshots_past_end_of_emptied_log_are_rebuilt_from_archive() {
    for r in Rotation::both() {
        let dir = r.crash_at(Step::Truncated);
        fs::remove_file(dir.path().join(INTENT)).unwrap();
        let log = open_with_views(dir.path());
        assert_views(&log, &[]); // stale snapshots rejected on load
        drop(log);
        assert_recovers(dir.path(), &r.history);
    }
}

// ------------------------------------- inconsistent states are not guessed

/// A damaged intent record (cut short, or failing its checksum) is
/// refused, with what to do; once `app.jsonl` is empty the record is all
/// that is left of the rotation, and deleting it, as the error says,
/// completes it.
#[test]
fn garbled_intent_record_is_corrupt() {
    let damaged: [&[u8]; 2] = [
        br#"{"archive_len":12,"log_"#,
        br#"{"archive_len":12,"log_len":5,"checksum":"0"}"#,
    ];
    for r in Rotation::both() {
        for record in damaged {
            let dir = r.crash_at(Step::FrameWritten);
            fs::write(dir.path().join(INTENT), record).unwrap();
            assert_open_refused(dir.path(), INTENT);
            let err = builder_with_views(dir.path()).open().err().unwrap();
            let text = err.to_string();
            assert!(
                text.contains("Restore it from a backup") && text.contains("if app.jsonl is empty"),
                "{text}"
            );

            let dir = r.crash_at(Step::Truncated);
            fs::write(dir.path().join(INTENT), record).unwrap();
            assert_open_refused(dir.path(), INTENT);
            fs::remove_file(dir.path().join(INTENT)).unwrap();
            assert_recovers(dir.path(), &r.history);
        }
    }
}

#[test]
fn intent_log_len_matching_neither_log_nor_empty_is_corrupt() {
    for r in Rotation::both() {
        let longer = r.crash_at(Step::FrameWritten);
        append_bytes(
            &longer.path().join(LOG),
            &[line_of(99), b"\n".to_vec()].concat(),
        );
        assert_open_refused(longer.path(), LOG);

        let shorter = r.crash_at(Step::FrameWritten);
        let log = OpenOptions::new()
            .write(true)
            .open(shorter.path().join(LOG))
            .unwrap();
        log.set_len(r.log_len - 10).unwrap();
        assert_open_refused(shorter.path(), LOG);
    }
}

#[test]
fn archive_shorter_than_intent_records_is_corrupt() {
    let r = Rotation::new(true);
    let dir = r.crash_at(Step::IntentWritten);
    let archive = OpenOptions::new()
        .write(true)
        .open(dir.path().join(ARCHIVE))
        .unwrap();
    archive.set_len(r.archive_len - 1).unwrap();
    assert_open_refused(dir.path(), ARCHIVE);
}

#[test]
fn emptied_log_with_archive_that_did_not_grow_is_corrupt() {
    for r in Rotation::both() {
        let dir = r.crash_at(Step::IntentWritten);
        fs::write(dir.path().join(LOG), b"").unwrap();
        assert_open_refused(dir.path(), ARCHIVE);
    }
}

// ---------------------------------------------------------------- poison

// Real write failures, and the poisoning that follows, are provoked in
// `tests/write_failures.rs` with a file-size limit.

#[test]
fn poisoned_error_tells_to_reopen() {
    let err = Error::Poisoned {
        path: PathBuf::from("data/app.jsonl"),
    };
    let text = err.to_string();
    assert!(text.contains("data/app.jsonl"), "{text}");
    assert!(text.contains("reopen"), "{text}");
}

// ---------------------------------------------------------------- batch

/// A crash in the middle of `append_batch` leaves a prefix of the batch's
/// bytes: the whole lines in it are kept, in order, and the partial line
/// after them is cut (or completed, if only its newline is missing). Cut
/// points all through a batch of 4 are tried.
#[test]
fn crash_mid_batch_leaves_a_prefix_of_whole_events() {
    let batch: Vec<u8> = (3..7)
        .flat_map(|n| [line_of(n), b"\n".to_vec()].concat())
        .collect();
    let newlines: Vec<usize> = (0..batch.len()).filter(|&i| batch[i] == b'\n').collect();
    let cuts = (0..batch.len()).step_by(7).chain(newlines.iter().copied());
    for cut in cuts {
        let dir = committed_log(0, 3);
        append_bytes(&dir.path().join(LOG), &batch[..cut]);
        let complete = newlines.iter().filter(|&&i| i < cut).count();
        let whole = (complete + usize::from(newlines.contains(&cut))) as u64;
        let log = open_with_views(dir.path());
        assert_eq!(
            all_events(&log),
            events_of(&range(0..3 + whole)),
            "cut at byte {cut} of the batch"
        );
        drop(log);
        assert_recovers(dir.path(), &range(0..3 + whole));
    }
}
