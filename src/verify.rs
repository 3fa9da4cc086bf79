//! Verification: every byte of a data directory checked, as a reader,
//! every problem reported with its file and byte offset.
//!
//! [`EventReader::verify`] reads the history the way recovery and readers
//! do, but does not stop at the first problem: each archive frame is
//! decoded on its own (its zstd checksum checked, every line parsed as an
//! event, its sequence numbers counted against the index), the active log
//! is read line by line, going on after a damaged line, and every view's
//! snapshot is checked (its own checksum, and its position against the
//! log). Nothing is written.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::history::History;
use crate::index::{self, FrameEntry};
use crate::inspect::{self, WriterState};
use crate::lines::{Lines, READ_BUF};
use crate::reader::EventReader;
use crate::snapshot::{self, ViewSnapshot};
use crate::tail;

/// What [`EventReader::verify`] found.
///
/// # Examples
///
/// ```
/// use eventfold::{Event, EventLog, EventReader};
/// use serde_json::json;
///
/// # let dir = tempfile::tempdir()?;
/// let mut log = EventLog::open(dir.path())?;
/// log.append(&Event::new("hello", json!(1)))?;
/// let report = EventReader::open(dir.path())?.verify(&mut |_, _| {})?;
/// assert_eq!(report.events, 1);
/// assert!(report.problems.is_empty());
/// # Ok::<(), eventfold::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Verification {
    /// The events read and found valid.
    pub events: u64,
    /// The archive frames decoded.
    pub frames: u64,
    /// The bytes read: the archive's compressed bytes and the active log's.
    pub bytes: u64,
    /// The view snapshots checked.
    pub snapshots: u64,
    /// Everything that is wrong, in the order found; empty when all is well.
    pub problems: Vec<Problem>,
}

/// One thing [`EventReader::verify`] found wrong.
///
/// # Examples
///
/// ```
/// use eventfold::{Event, EventLog, EventReader};
/// use serde_json::json;
///
/// # let dir = tempfile::tempdir()?;
/// let mut log = EventLog::open(dir.path())?;
/// log.append(&Event::new("hello", json!(1)))?;
/// drop(log);
/// let path = dir.path().join("app.jsonl");
/// let text = std::fs::read_to_string(&path)?.replace("hello", "hel\"o"); // same length
/// std::fs::write(&path, text)?;
/// let report = EventReader::open(dir.path())?.verify(&mut |_, _| {})?;
/// let problem = &report.problems[0];
/// assert_eq!((problem.path.as_path(), problem.offset, problem.seq), (path.as_path(), 0, Some(0)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Problem {
    /// The file that holds it.
    pub path: PathBuf,
    /// Its byte offset in that file (for an archive frame, where the frame
    /// starts).
    pub offset: u64,
    /// The sequence number of the event concerned, when known.
    pub seq: Option<u64>,
    /// What is wrong.
    pub detail: String,
}

impl Problem {
    fn from_error(e: Error, seq: Option<u64>) -> Result<Problem> {
        match e {
            Error::Corrupt {
                path,
                offset,
                detail,
            } => Ok(Problem {
                path,
                offset,
                seq,
                detail,
            }),
            other => Err(other),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.path.display(), self.offset)?;
        if let Some(seq) = self.seq {
            write!(f, " (event {seq})")?;
        }
        write!(f, ": {}", self.detail)
    }
}

impl EventReader {
    /// Checks everything in the directory, beside a live writer or not,
    /// writing nothing: every archive frame (its zstd checksum, every line
    /// an event, its events numbered as the index says), every line of the
    /// active log up to what the writer acknowledged (and, while no writer
    /// has the directory open, the whole lines past that end, which the
    /// next writer takes as events), the sequence
    /// numbers' continuity from the first event to the last, and every
    /// view snapshot (its checksum, and that the log holds the line it
    /// was taken after). `progress` is called with the bytes read so far
    /// and the bytes to read, as the work goes on.
    ///
    /// Problems are reported, not returned as errors, and the check goes
    /// on past each one: an archive frame that fails is skipped for the
    /// next, a damaged line of the active log for the next line.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog, EventReader};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append(&Event::new("a", json!(1)))?;
    /// log.rotate()?;
    /// log.append(&Event::new("b", json!(2)))?;
    /// let mut done = 0;
    /// let report = EventReader::open(dir.path())?.verify(&mut |read, _| done = read)?;
    /// assert_eq!((report.events, report.frames, report.problems.len()), (2, 1, 0));
    /// assert_eq!(done, report.bytes);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a file cannot be read at all (a problem in what it
    /// holds is a [`Problem`] instead).
    pub fn verify(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<Verification> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (report, rotated) = self.verify_once(progress)?;
            // A rotation while the files were read moves lines out of the
            // active log and snapshots to new offsets: what looked wrong
            // may be the writer's progress, so the check is made again.
            if report.problems.is_empty() || !rotated || attempt >= VERIFY_ATTEMPTS {
                return Ok(report);
            }
        }
    }

    /// One pass of [`verify`](EventReader::verify); also says whether the
    /// archive grew meanwhile (a writer rotated).
    fn verify_once(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<(Verification, bool)> {
        let mut report = Verification::default();
        let history = match self.observe() {
            Ok(history) => history,
            Err(e) => {
                report.problems.push(Problem::from_error(e, None)?);
                return Ok((report, false));
            }
        };
        let total = history.index.archive_end() + history.len;
        if let Err(e) =
            index::check_archive(&history.paths.archive, history.archive_len, &history.index)
        {
            report.problems.push(Problem::from_error(e, None)?);
        }
        for frame in &history.index.frames {
            verify_frame(&history, frame, &mut report)?;
            report.frames += 1;
            report.bytes += frame.len;
            progress(report.bytes, total);
        }
        verify_active_log(self, &history, &mut report, &mut |read| {
            progress(read, total)
        })?;
        verify_beyond(&history, &mut report)?;
        // Snapshots are checked against the files as they are now: a live
        // writer may have saved one since the log was read.
        let now = match self.observe() {
            Ok(now) => now,
            Err(e) => {
                report.problems.push(Problem::from_error(e, None)?);
                return Ok((report, false));
            }
        };
        verify_snapshots(&now, &mut report)?;
        progress(report.bytes, total);
        Ok((report, now.archive_len != history.archive_len))
    }
}

/// How many times [`EventReader::verify`] looks again when a rotation
/// happened while it read and it found problems.
const VERIFY_ATTEMPTS: u32 = 5;

/// One archive frame, decoded on its own.
fn verify_frame(history: &History, frame: &FrameEntry, report: &mut Verification) -> Result<()> {
    let path = &history.paths.archive;
    let mut file = File::open(path).at(path)?;
    file.seek(io::SeekFrom::Start(frame.start)).at(path)?;
    let compressed = BufReader::with_capacity(READ_BUF, file.take(frame.len));
    let decoder = zstd::Decoder::with_buffer(compressed)
        .at(path)?
        .single_frame();
    let mut lines = Lines::new(
        BufReader::with_capacity(READ_BUF, decoder),
        path.clone(),
        frame.content_start,
        None,
        Some(history.archive_len),
    )
    .with_seq(Some(frame.first_seq));
    let mut events = 0;
    loop {
        match lines.next_event() {
            Ok(Some(_)) => events += 1,
            Ok(None) => break,
            Err(e) => {
                let problem = Problem::from_error(e, Some(frame.first_seq + events))?;
                report.problems.push(problem);
                return Ok(());
            }
        }
    }
    report.events += events;
    let decoded = lines.pos() - frame.content_start;
    if events != frame.events || decoded != frame.bytes {
        report.problems.push(Problem {
            path: path.clone(),
            offset: frame.start,
            seq: Some(frame.first_seq),
            detail: format!(
                "the frame holds {events} events in {decoded} bytes, but the index says \
                 {} events in {} bytes",
                frame.events, frame.bytes
            ),
        });
    }
    Ok(())
}

/// The active log's acknowledged lines, read on past each damaged one.
fn verify_active_log(
    reader: &EventReader,
    history: &History,
    report: &mut Verification,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    const STEP: u64 = 1024 * 1024;
    let path = &history.paths.log;
    let start = report.bytes;
    let mut offset = 0;
    // The sequence number of the next line, when known: after a damaged
    // line it is taken from the next line's own `seq`, so that one lost or
    // doubled line is one problem, not one for every line after it.
    let mut seq = Some(history.base_seq());
    let mut reported = 0;
    // The line being read again after a problem, not to report it twice.
    let mut retried = None;
    while offset < history.len {
        let mut lines = history.active_lines(offset, seq)?;
        let failed = loop {
            match lines.next_event() {
                Ok(Some(line)) => {
                    report.events += 1;
                    seq = line.seq.map(|s| s + 1).or(seq.map(|s| s + 1));
                    if lines.pos() - reported >= STEP {
                        reported = lines.pos();
                        progress(start + reported);
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        let Some(e) = failed else {
            break;
        };
        if let Some(next) = seq
            && reader.observe()?.archive_len != history.archive_len
        {
            // A rotation replaced the file since it was observed: the
            // rest is read by sequence number, as a reader reads across
            // rotations, and only what fails there is a problem.
            verify_moved(reader, next, history.next_seq, report)?;
            break;
        }
        let problem = Problem::from_error(e, seq)?;
        let again = retried == Some(problem.offset);
        retried = None;
        if seq.is_some() && problem.offset >= offset {
            retried = Some(problem.offset);
            // The same line is read again without an expected number: if
            // only its number was wrong (lines missing or doubled before
            // it), it counts, and the lines after it are numbered from it.
            offset = problem.offset;
        } else {
            // A damaged line: on from the line after it.
            offset = next_line_start(path, problem.offset, history.len)?.unwrap_or(history.len);
        }
        if !again {
            report.problems.push(problem);
        }
        seq = None;
    }
    report.bytes = start + history.len;
    Ok(())
}

/// The lines of `app.jsonl` past the acknowledged end, while no writer
/// has the directory open: the next writer checks the whole lines there
/// as events that follow the acknowledged ones and keeps them (completing
/// a last one that lacks its newline) or refuses the log at the first
/// that fails, and moves a torn tail aside (see [`tail::next_open`]). So
/// they are checked the same way here, each one that fails a problem; a
/// torn tail is not one (nothing acknowledged was in it).
fn verify_beyond(history: &History, report: &mut Verification) -> Result<()> {
    let path = &history.paths.log;
    let len = durable::file_len(path)?;
    if len <= history.len || inspect::writer_state(&history.paths.dir) != WriterState::Closed {
        return Ok(());
    }
    let next = tail::next_open(path, history.len, len)?;
    let mut offset = history.len;
    let mut seq = Some(history.next_seq);
    while offset < next.lines_end {
        let mut file = File::open(path).at(path)?;
        file.seek(io::SeekFrom::Start(offset)).at(path)?;
        let newline: &[u8] = if next.completes.is_some() { b"\n" } else { b"" };
        let bytes = file.take(next.lines_end - offset).chain(newline);
        let mut lines = Lines::new(
            BufReader::with_capacity(READ_BUF, bytes),
            path.clone(),
            offset,
            None,
            None,
        )
        .with_seq(seq)
        .with_upcasters(history.upcasters.clone());
        let failed = loop {
            match lines.next_event() {
                Ok(Some(line)) => {
                    report.events += 1;
                    seq = line.seq.map(|s| s + 1).or(seq.map(|s| s + 1));
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        let Some(e) = failed else {
            break;
        };
        let mut problem = Problem::from_error(e, seq)?;
        problem.detail = format!(
            "{}; the line is past the {} bytes its writer acknowledged, and the next writer to \
             open the log refuses it there (remove it, and the lines after it, if eventfold did \
             not write them)",
            problem.detail, history.len
        );
        offset = next_line_start(path, problem.offset, next.lines_end)?.unwrap_or(next.lines_end);
        report.problems.push(problem);
        seq = None;
    }
    report.bytes += next.lines_end - history.len;
    Ok(())
}

/// The events `next .. end`, which a rotation moved out of the active log
/// while it was read: read through the reader, which follows them.
fn verify_moved(
    reader: &EventReader,
    next: u64,
    end: u64,
    report: &mut Verification,
) -> Result<()> {
    if next >= end {
        return Ok(());
    }
    for item in reader.read_from_seq(next)?.events() {
        match item {
            Ok((seq, _)) => {
                report.events += 1;
                if seq + 1 >= end {
                    break;
                }
            }
            Err(e) => {
                report.problems.push(Problem::from_error(e, None)?);
                break;
            }
        }
    }
    Ok(())
}

/// The offset after the first newline at or after `at`, before `end`.
fn next_line_start(path: &Path, at: u64, end: u64) -> Result<Option<u64>> {
    let mut file = File::open(path).at(path)?;
    file.seek(io::SeekFrom::Start(at)).at(path)?;
    let mut reader = BufReader::with_capacity(READ_BUF, file.take(end - at));
    let mut skipped = Vec::new();
    let n = reader.read_until(b'\n', &mut skipped).at(path)?;
    Ok((skipped.last() == Some(&b'\n')).then_some(at + n as u64))
}

/// Every snapshot in `views/`: intact, and at a position the log holds.
fn verify_snapshots(history: &History, report: &mut Verification) -> Result<()> {
    for (_, path) in snapshot::snapshot_files(&history.paths.views)? {
        report.snapshots += 1;
        let snapshot = match ViewSnapshot::<serde::de::IgnoredAny>::load(&path) {
            Ok(Some((snapshot, _))) => snapshot,
            Ok(None) => continue,
            Err(e) => {
                report.problems.push(Problem::from_error(e, None)?);
                continue;
            }
        };
        let wrong = if let Some(archive_len) = snapshot.archive_len
            && archive_len != history.archive_len
        {
            Some(format!(
                "it was taken when the archive was {archive_len} bytes long, and it is {} now",
                history.archive_len
            ))
        } else if snapshot.offset > history.len {
            Some(format!(
                "the snapshot is at byte {} of {}, which holds only {} acknowledged bytes",
                snapshot.offset,
                history.paths.log.display(),
                history.len
            ))
        } else {
            history.check_position(snapshot.offset, &snapshot.hash, snapshot.seq)?
        };
        if let Some(detail) = wrong {
            report.problems.push(Problem {
                path,
                offset: 0,
                seq: snapshot.seq,
                detail: format!("the snapshot does not fit the log: {detail}"),
            });
        }
    }
    Ok(())
}
