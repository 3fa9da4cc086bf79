//! Inspection: what a data directory holds, as a reader sees it now.
//!
//! [`EventReader::inspect`] sums up the files (the active log, the
//! archive and its frames, the first and last events), the views'
//! snapshots and how far each is behind the log, anything recovery would
//! act on when a writer next opens the directory, and whether a writer
//! has it open now. Nothing is written and no lock is taken.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::durable::{self, TMP_SUFFIX};
use crate::error::{Error, Result};
use crate::history::History;
use crate::reader::EventReader;
use crate::rotation::INTENT_FILE;
use crate::snapshot::{self, ViewSnapshot};
use crate::tail;

/// What [`EventReader::inspect`] found in a data directory.
///
/// # Examples
///
/// ```
/// use eventfold::{Event, EventLog, EventReader, WriterState};
/// use serde_json::json;
///
/// # let dir = tempfile::tempdir()?;
/// let mut log = EventLog::open(dir.path())?;
/// log.append(&Event::with_ts("hello", json!(1), 1_700_000_000))?;
/// let inspection = EventReader::open(dir.path())?.inspect()?;
/// assert_eq!(inspection.events, 1);
/// assert_eq!(inspection.last.as_ref().map(|e| e.ts), Some(1_700_000_000));
/// # #[cfg(target_os = "linux")]
/// assert_eq!(inspection.writer, WriterState::Open);
/// # Ok::<(), eventfold::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Inspection {
    /// The data directory.
    pub dir: PathBuf,
    /// The acknowledged bytes of `app.jsonl`.
    pub active_len: u64,
    /// The bytes of `app.jsonl` past them: a write under way, or what a
    /// crash or a hand edit left, which the next writer to open the
    /// directory takes as events (whole lines) or moves aside (a torn
    /// tail); [`pending`](Inspection::pending) says which.
    pub unacknowledged_len: u64,
    /// The bytes of `archive.jsonl.zst` that hold the history.
    pub archive_len: u64,
    /// The archive's frames.
    pub frames: u64,
    /// The events of the whole history (the next sequence number).
    pub events: u64,
    /// Of them, the events in the archive.
    pub archived_events: u64,
    /// The first event, if any.
    pub first: Option<EventSummary>,
    /// The last event, if any.
    pub last: Option<EventSummary>,
    /// The views' snapshots in `views/`, by name.
    pub views: Vec<ViewSummary>,
    /// Files that recovery would act on when a writer opens the directory.
    pub pending: Vec<PendingFile>,
    /// Whether a writer has the directory open now.
    pub writer: WriterState,
}

/// One event, in short, for an [`Inspection`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct EventSummary {
    /// Its sequence number.
    pub seq: u64,
    /// Its timestamp, in seconds since the Unix epoch.
    pub ts: u64,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
}

/// A view's snapshot file, for an [`Inspection`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ViewSummary {
    /// The view's name (the file name without `.snapshot.json`).
    pub name: String,
    /// The file's size in bytes.
    pub len: u64,
    /// The offset in `app.jsonl` the state was taken at, if readable.
    pub offset: Option<u64>,
    /// The events the state holds (the next sequence number to fold),
    /// when the snapshot records it.
    pub seq: Option<u64>,
    /// The events the log holds past the snapshot, when known.
    pub behind: Option<u64>,
    /// The version of the view that wrote it (see
    /// [`View::with_version`](crate::View::with_version)): 0 unless the
    /// view has one, `None` if the file is unreadable.
    pub version: Option<u32>,
    /// Why the snapshot cannot be used (the view then replays the log),
    /// or `None` when it can.
    pub problem: Option<String>,
}

/// A file that recovery would act on, for an [`Inspection`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PendingFile {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub len: u64,
    /// What it is and what recovery does with it.
    pub what: String,
}

/// Whether a writer has a directory open, for an [`Inspection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WriterState {
    /// An [`EventLog`](crate::EventLog) holds the directory's lock.
    Open,
    /// Nobody holds the lock.
    Closed,
    /// This system cannot tell without taking the lock (only Linux can).
    Unknown,
}

impl EventReader {
    /// Sums up the directory: sizes, events, frames, first and last
    /// events, the views' snapshots, what recovery would act on, and
    /// whether a writer has it open. Writes nothing and takes no lock (on
    /// Linux the lock is looked up in `/proc/locks`; elsewhere
    /// [`WriterState::Unknown`]).
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
    /// let inspection = EventReader::open(dir.path())?.inspect()?;
    /// assert_eq!((inspection.events, inspection.archived_events, inspection.frames), (2, 1, 1));
    /// assert_eq!(inspection.first.map(|e| e.event_type), Some("a".to_owned()));
    /// assert!(inspection.pending.is_empty());
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`EventReader::next_seq`]: a history that cannot be read
    /// consistently ([`EventReader::verify`] reports every problem).
    pub fn inspect(&self) -> Result<Inspection> {
        let history = self.observe()?;
        let events = history.next_seq;
        let summary = |seq: u64| -> Result<Option<EventSummary>> {
            Ok(match self.read_from_seq(seq)?.next().transpose()? {
                Some((seq, event, _)) => Some(EventSummary {
                    seq,
                    ts: event.ts,
                    event_type: event.event_type,
                }),
                None => None,
            })
        };
        let (first, last) = match events {
            0 => (None, None),
            n => (summary(0)?, summary(n - 1)?),
        };
        let file_len = match fs::metadata(&history.paths.log) {
            Ok(metadata) => metadata.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io(&history.paths.log, e)),
        };
        Ok(Inspection {
            dir: history.paths.dir.clone(),
            active_len: history.len,
            unacknowledged_len: file_len.saturating_sub(history.len),
            archive_len: history.index.archive_end(),
            frames: history.index.frames.len() as u64,
            events,
            archived_events: history.base_seq(),
            first,
            last,
            views: views(&history)?,
            pending: pending(&history)?,
            writer: writer_state(&history.paths.dir),
        })
    }
}

/// The snapshots in `views/`, by name.
fn views(history: &History) -> Result<Vec<ViewSummary>> {
    let mut views = Vec::new();
    for (name, path) in snapshot::snapshot_files(&history.paths.views)? {
        let len = fs::symlink_metadata(&path).map_or(0, |m| m.len());
        let mut view = ViewSummary {
            name: name.to_owned(),
            len,
            offset: None,
            seq: None,
            behind: None,
            version: None,
            problem: None,
        };
        match ViewSnapshot::<serde::de::IgnoredAny>::load(&path) {
            Ok(Some((snapshot, _))) => {
                view.offset = Some(snapshot.offset);
                view.seq = snapshot.seq;
                view.version = Some(snapshot.version.unwrap_or(0));
                view.behind = snapshot.seq.map(|seq| history.next_seq.saturating_sub(seq));
                view.problem = if snapshot.offset > history.len {
                    Some(format!(
                        "it is at byte {}, past the log's {} acknowledged bytes",
                        snapshot.offset, history.len
                    ))
                } else {
                    history.check_position(snapshot.offset, &snapshot.hash, snapshot.seq)?
                };
            }
            Ok(None) => continue,
            Err(e) => view.problem = Some(e.to_string()),
        }
        views.push(view);
    }
    Ok(views)
}

/// What recovery would act on: an interrupted rotation's record, a torn
/// tail moved aside, bytes past the acknowledged end, temporary files.
fn pending(history: &History) -> Result<Vec<PendingFile>> {
    let paths = &history.paths;
    let mut pending = Vec::new();
    let add = |pending: &mut Vec<PendingFile>, path: &Path, what: &str| {
        if let Ok(metadata) = fs::symlink_metadata(path) {
            pending.push(PendingFile {
                path: path.to_path_buf(),
                len: metadata.len(),
                what: what.to_owned(),
            });
        }
    };
    add(
        &mut pending,
        &paths.dir.join(INTENT_FILE),
        "the record of a rotation under way, or interrupted by a crash: the next writer rolls it back or forward",
    );
    add(
        &mut pending,
        &paths.torn,
        "a torn tail that a writer moved aside after a crash: kept for you to look at, never read",
    );
    let len = durable::file_len(&paths.log)?;
    if len > history.len {
        pending.push(PendingFile {
            path: paths.log.clone(),
            len: len - history.len,
            what: past_the_end(history, len)?,
        });
    }
    for dir in [&paths.dir, &paths.views] {
        for path in durable::entries(dir)? {
            if path.to_string_lossy().ends_with(TMP_SUFFIX) {
                add(
                    &mut pending,
                    &path,
                    "a temporary file of a write under way, or interrupted by a crash: the next writer removes it",
                );
            }
        }
    }
    Ok(pending)
}

/// What the bytes of `app.jsonl` past the acknowledged end are, `len`
/// bytes in all: a write under way while a writer has the directory
/// open; otherwise what the next writer does with them (see
/// [`tail::next_open`]).
fn past_the_end(history: &History, len: u64) -> Result<String> {
    let acked = history.len;
    let head = format!("{} bytes past the {acked} acknowledged", len - acked);
    if writer_state(&history.paths.dir) == WriterState::Open {
        return Ok(format!(
            "{head}: a write under way, which its writer acknowledges or takes back"
        ));
    }
    let next = tail::next_open(&history.paths.log, acked, len)?;
    let mut parts = Vec::new();
    if next.lines_end > acked {
        parts.push(format!(
            "{} bytes of whole lines, which the next writer keeps if they are events that \
             follow{} and refuses the log at the first that is not (verify checks them)",
            next.lines_end - acked,
            if next.completes.is_some() {
                " (adding the last one's newline)"
            } else {
                ""
            }
        ));
    }
    if let Some((at, what)) = next.cut {
        parts.push(format!(
            "{} bytes of {what}, which the next writer moves into {}",
            len - at,
            history.paths.torn.display()
        ));
    }
    Ok(format!("{head}: {}", parts.join("; ")))
}

/// Whether an `EventLog` holds the lock on `dir`, read from the kernel's
/// table of locks rather than by taking it.
pub(crate) fn writer_state(dir: &Path) -> WriterState {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;

        let (Ok(metadata), Ok(locks)) = (
            File::open(dir).and_then(|d| d.metadata()),
            fs::read_to_string("/proc/locks"),
        ) else {
            return WriterState::Unknown;
        };
        let dev = metadata.dev();
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        let wanted = format!("{major:02x}:{minor:02x}:{}", metadata.ino());
        let held = locks.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&wanted.as_str())
        });
        if held {
            WriterState::Open
        } else {
            WriterState::Closed
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        WriterState::Unknown
    }
}
