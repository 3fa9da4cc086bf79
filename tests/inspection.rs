//! What an operator's tool builds on: `EventReader::inspect`, `verify` and
//! `backup`, on real directories, beside a live writer or not.

mod common;

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use common::*;
use eventfold::{EventLog, EventReader, WriterState};

/// A log of `n` numbered events rotated every `rotate_every` events, with
/// the standard views saved at the end.
fn rotated_log(dir: &std::path::Path, n: u64, rotate_every: u64) -> EventLog {
    let mut log = open_with_views(dir);
    for start in (0..n).step_by(rotate_every as usize) {
        append_numbered(&mut log, start..(start + rotate_every).min(n));
        if start + rotate_every < n {
            log.rotate().unwrap();
        }
    }
    log.refresh_all().unwrap();
    log.save_views().unwrap();
    log
}

fn verify(dir: &std::path::Path) -> eventfold::Verification {
    EventReader::open(dir)
        .unwrap()
        .verify(&mut |_, _| {})
        .unwrap()
}

#[test]
fn a_sound_directory_verifies_with_every_event_and_frame_counted() {
    let dir = test_dir();
    let log = rotated_log(dir.path(), 500, 100);
    let report = verify(dir.path());
    assert_eq!(report.problems, []);
    assert_eq!(report.events, 500);
    assert_eq!(report.frames, 4);
    assert!(report.snapshots >= 1);
    let inspection = EventReader::open(dir.path()).unwrap().inspect().unwrap();
    assert_eq!((inspection.events, inspection.archived_events), (500, 400));
    assert_eq!(inspection.first.unwrap().seq, 0);
    assert_eq!(inspection.last.unwrap().seq, 499);
    assert!(
        inspection
            .views
            .iter()
            .all(|v| v.problem.is_none() && v.behind == Some(0))
    );
    assert!(inspection.pending.is_empty());
    #[cfg(target_os = "linux")]
    assert_eq!(inspection.writer, WriterState::Open);
    drop(log);
    #[cfg(target_os = "linux")]
    assert_eq!(
        EventReader::open(dir.path())
            .unwrap()
            .inspect()
            .unwrap()
            .writer,
        WriterState::Closed
    );
}

#[test]
fn verify_reports_every_damaged_line_with_its_offset_and_goes_on() {
    let dir = test_dir();
    drop(rotated_log(dir.path(), 20, 100));
    let path = data_file(dir.path(), LOG);
    let text = fs::read_to_string(&path).unwrap();
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    // Two lines damaged in place, keeping their length.
    let mut bytes = text.into_bytes();
    for line in [3, 11] {
        bytes[starts[line]] = b'#';
    }
    fs::write(&path, &bytes).unwrap();
    let report = verify(dir.path());
    let found: Vec<(u64, Option<u64>)> = report
        .problems
        .iter()
        .filter(|p| p.path == path)
        .map(|p| (p.offset, p.seq))
        .collect();
    assert_eq!(
        found,
        [(starts[3] as u64, Some(3)), (starts[11] as u64, Some(11))]
    );
    assert_eq!(report.events, 18, "every other line is read");
}

#[test]
fn verify_reports_a_damaged_frame_and_reads_the_frames_after_it() {
    let dir = test_dir();
    drop(rotated_log(dir.path(), 400, 100));
    let archive = data_file(dir.path(), ARCHIVE);
    let spans = frame_spans(&archive);
    assert_eq!(spans.len(), 3);
    let mut bytes = fs::read(&archive).unwrap();
    let middle = (spans[1].start + spans[1].len / 2) as usize;
    bytes[middle] ^= 0x55;
    fs::write(&archive, &bytes).unwrap();
    let report = verify(dir.path());
    let frame_problems: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.path == archive)
        .collect();
    assert_eq!(frame_problems.len(), 1, "{:?}", report.problems);
    assert_eq!(frame_problems[0].offset, spans[1].start);
    assert_eq!(
        report.events, 300,
        "the other frames and the active log are read"
    );
}

#[test]
fn verify_reports_a_snapshot_that_does_not_fit_the_log() {
    let dir = test_dir();
    drop(rotated_log(dir.path(), 50, 100));
    hand_write_snapshot(dir.path(), "count", |snapshot| {
        snapshot["hash"] = serde_json::json!("0000000000000000");
    });
    let report = verify(dir.path());
    let snapshot = snapshot_file(dir.path(), "count");
    assert!(
        report.problems.iter().any(|p| p.path == snapshot),
        "{:?}",
        report.problems
    );
    let inspection = EventReader::open(dir.path()).unwrap().inspect().unwrap();
    let count = inspection.views.iter().find(|v| v.name == "count").unwrap();
    assert!(count.problem.is_some());
}

#[test]
fn inspect_lists_what_recovery_would_act_on() {
    let dir = test_dir();
    drop(rotated_log(dir.path(), 10, 100));
    append_bytes(&data_file(dir.path(), LOG), b"{\"type\":\"torn");
    fs::write(data_file(dir.path(), TORN), b"older torn tail").unwrap();
    let before = dir_contents(dir.path());
    let inspection = EventReader::open(dir.path()).unwrap().inspect().unwrap();
    assert_eq!(inspection.events, 10);
    assert_eq!(inspection.unacknowledged_len, 13);
    let pending: Vec<_> = inspection.pending.iter().map(|p| p.path.clone()).collect();
    assert!(
        pending.contains(&data_file(dir.path(), TORN)),
        "{pending:?}"
    );
    assert!(pending.contains(&data_file(dir.path(), LOG)), "{pending:?}");
    assert_eq!(dir_contents(dir.path()), before, "inspect wrote nothing");
}

#[test]
fn a_backup_beside_a_writer_holds_every_event_acknowledged_before_it_and_verifies() {
    let dir = test_dir();
    let copies = test_dir();
    let log = EventLog::builder(dir.path())
        .max_log_size(4096)
        .open()
        .unwrap();
    let acknowledged = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acknowledged, stop) = (Arc::clone(&acknowledged), Arc::clone(&stop));
        let mut log = log;
        thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                append_numbered(&mut log, n..n + 5);
                n += 5;
                acknowledged.store(n, Ordering::SeqCst);
            }
            log
        })
    };
    while acknowledged.load(Ordering::SeqCst) < 500 {
        thread::sleep(std::time::Duration::from_millis(5));
    }
    let reader = EventReader::open(dir.path()).unwrap();
    let mut backups = Vec::new();
    for i in 0..3 {
        let before = acknowledged.load(Ordering::SeqCst);
        let dest = copies.path().join(format!("copy-{i}"));
        let backup = reader.backup(&dest, &mut |_, _| {}).unwrap();
        assert!(backup.events >= before, "{} < {before}", backup.events);
        backups.push((dest, backup.events));
    }
    stop.store(true, Ordering::Relaxed);
    let log = writer.join().unwrap();
    let all = all_events(&log);
    for (dest, events) in backups {
        let report = verify(&dest);
        assert_eq!(report.problems, [], "{}", dest.display());
        assert_eq!(report.events, events);
        let copy = EventLog::open(&dest).unwrap();
        assert_eq!(copy.next_seq(), events);
        assert_eq!(all_events(&copy), all[..events as usize]);
    }
}

#[test]
fn a_backup_refuses_a_destination_that_is_not_empty() {
    let dir = test_dir();
    drop(rotated_log(dir.path(), 10, 100));
    let dest = test_dir();
    fs::write(dest.path().join("keep.txt"), b"mine").unwrap();
    let refused = EventReader::open(dir.path())
        .unwrap()
        .backup(dest.path(), &mut |_, _| {});
    assert!(refused.unwrap_err().to_string().contains("not empty"));
    assert_eq!(fs::read(dest.path().join("keep.txt")).unwrap(), b"mine");
}

#[test]
fn a_removed_line_is_one_problem_and_the_lines_after_it_are_read() {
    let dir = test_dir();
    drop(rotated_log(dir.path(), 30, 100));
    let path = data_file(dir.path(), LOG);
    let text = fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let removed = lines.remove(10).len();
    // Padded to the same length, so that the writer's record still ends
    // at a newline.
    let padded = lines.join("\n") + "\n" + &" ".repeat(removed) + "\n";
    fs::write(&path, padded.trim_end_matches('\n').to_owned() + "\n").unwrap();
    let report = verify(dir.path());
    let in_log: Vec<_> = report.problems.iter().filter(|p| p.path == path).collect();
    // The gap at event 10, and the blank line at the end.
    assert_eq!(in_log.len(), 2, "{:?}", report.problems);
    assert_eq!(in_log[0].seq, Some(10));
    assert_eq!(report.events, 29, "every line after the gap is read");
}

#[test]
fn a_backup_refuses_a_destination_inside_the_directory_and_names_a_damaged_line() {
    let dir = test_dir();
    drop(rotated_log(dir.path(), 10, 100));
    let reader = EventReader::open(dir.path()).unwrap();
    let before = dir_contents(dir.path());
    let refused = reader.backup(dir.path().join("copy"), &mut |_, _| {});
    assert!(refused.unwrap_err().to_string().contains("inside"));
    assert_eq!(
        dir_contents(dir.path()),
        before,
        "nothing written into the directory"
    );

    let path = data_file(dir.path(), LOG);
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] = b'#';
    fs::write(&path, &bytes).unwrap();
    let copies = test_dir();
    let failed = reader
        .backup(copies.path().join("copy"), &mut |_, _| {})
        .unwrap_err();
    assert!(
        matches!(failed, eventfold::Error::Corrupt { ref path, .. } if path.ends_with(LOG)),
        "{failed}"
    );
}

/// A last event whose final newline was lost or changed is what the next
/// writer completes and keeps (it adds the newline): `verify` counts it
/// and finds nothing wrong, and a writer then opens with it.
#[test]
fn verify_counts_a_last_event_whose_newline_was_lost_or_changed_as_the_writer_does() {
    // (how the file's end was changed, whether the writer's record of the
    // acknowledged length is still there)
    type Change = fn(&mut Vec<u8>);
    let cases: [(&str, Change, bool); 4] = [
        (
            "newline removed",
            |b| {
                b.pop();
            },
            true,
        ),
        (
            "newline removed",
            |b| {
                b.pop();
            },
            false,
        ),
        (
            "newline turned into a space",
            |b| *b.last_mut().unwrap() = b' ',
            true,
        ),
        (
            "newline turned into a space",
            |b| *b.last_mut().unwrap() = b' ',
            false,
        ),
    ];
    for (what, change, with_record) in cases {
        let dir = test_dir();
        let mut log = EventLog::open(dir.path()).unwrap();
        append_numbered(&mut log, 0..3);
        drop(log);
        let path = data_file(dir.path(), "app.jsonl");
        let mut bytes = fs::read(&path).unwrap();
        let last_line_start = bytes[..bytes.len() - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .unwrap() as u64
            + 1;
        change(&mut bytes);
        fs::write(&path, &bytes).unwrap();
        if !with_record {
            // As in a directory written before the record existed.
            fs::remove_file(data_file(dir.path(), "app.jsonl.committed")).unwrap();
        }
        let report = verify(dir.path());
        assert!(
            report.problems.is_empty(),
            "{what}, record {with_record}: {:?}",
            report.problems
        );
        assert_eq!(report.events, 3, "{what}, record {with_record}");
        assert_eq!(
            report.bytes,
            bytes.len() as u64,
            "{what}, record {with_record}"
        );
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.next_seq(), 3, "{what}, record {with_record}");
        assert_eq!(
            fs::read(&path).unwrap()[last_line_start as usize..].last(),
            Some(&b'\n'),
            "{what}"
        );
    }
}

/// What is past the acknowledged end while no writer runs is judged as
/// the next writer will judge it: a line that is not an event is a
/// problem at its offset (the writer refuses the log there), a hand-added
/// event that follows the history is counted, and `inspect` says which.
#[test]
fn verify_and_inspect_judge_lines_past_the_acknowledged_end_as_the_writer_does() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    append_numbered(&mut log, 0..3);
    drop(log);
    let path = data_file(dir.path(), LOG);
    let acked = file_size(&path);

    // `echo garbage >> app.jsonl`
    append_bytes(&path, b"garbage\n");
    let report = verify(dir.path());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = &report.problems[0];
    assert_eq!((&problem.path, problem.offset), (&path, acked), "{problem}");
    assert!(problem.detail.contains("past the"), "{problem}");
    let refused = EventLog::open(dir.path()).expect_err("the writer refuses it");
    match refused {
        eventfold::Error::Corrupt {
            path: p, offset, ..
        } => {
            assert_eq!((p, offset), (path.clone(), acked));
        }
        other => panic!("{other}"),
    }
    let pending = EventReader::open(dir.path())
        .unwrap()
        .inspect()
        .unwrap()
        .pending;
    assert!(
        pending[0].what.contains(
            "8 bytes of whole lines, which the next writer keeps if they are events that follow"
        ),
        "{pending:?}"
    );

    // The next event, written by hand after the acknowledged end.
    let mut bytes = fs::read(&path).unwrap();
    bytes.truncate(acked as usize);
    bytes.extend_from_slice(format!("{}\n", stored_line(&numbered(3), 3)).as_bytes());
    fs::write(&path, &bytes).unwrap();
    let report = verify(dir.path());
    assert_eq!((report.problems.len(), report.events), (0, 4));
    assert_eq!(EventLog::open(dir.path()).unwrap().next_seq(), 4);
}

/// A log that lost acknowledged events is what `verify` reports, at the
/// byte where the writer's open reports it, and readers refuse to read it.
#[test]
fn verify_reports_acknowledged_events_cut_from_the_log() {
    let dir = test_dir();
    let mut log = EventLog::open(dir.path()).unwrap();
    append_numbered(&mut log, 0..3);
    drop(log);
    let path = data_file(dir.path(), LOG);
    let cut = file_size(&path) - 10;
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let report = verify(dir.path());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = &report.problems[0];
    assert_eq!((&problem.path, problem.offset), (&path, cut), "{problem}");
    assert!(
        problem.detail.contains("acknowledged events are missing"),
        "{problem}"
    );
    let read = EventReader::open(dir.path()).unwrap().next_seq();
    assert!(
        read.is_err(),
        "a reader read a log that lost events: {read:?}"
    );
    match EventLog::open(dir.path()).expect_err("the writer refuses it") {
        eventfold::Error::Corrupt {
            path: p, offset, ..
        } => assert_eq!((p, offset), (path, cut)),
        other => panic!("{other}"),
    }
}
