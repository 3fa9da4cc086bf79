//! The crate's single error type.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The result type of every fallible eventfold operation.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in eventfold.
///
/// Each variant carries the context a person needs to act on it: the file,
/// the byte offset, the view name. The [`Display`](fmt::Display) text is
/// written to be shown to people as it is.
///
/// # Examples
///
/// Telling a locked directory apart from other failures:
///
/// ```
/// use eventfold::{Error, EventLog};
///
/// # let dir = tempfile::tempdir()?;
/// let _first = EventLog::open(dir.path())?;
/// match EventLog::open(dir.path()) {
///     Err(Error::Locked { path }) => println!("another writer holds {}", path.display()),
///     Err(other) => return Err(other),
///     Ok(_) => unreachable!("the directory is locked"),
/// }
/// # Ok::<(), eventfold::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    Io {
        /// The file or directory being worked on, when known.
        path: Option<PathBuf>,
        /// The underlying error.
        source: io::Error,
    },
    /// A file holds bytes that are not what eventfold wrote there.
    ///
    /// Reading stops here rather than skipping data: the log, the archive
    /// and the rotation record are never silently repaired.
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage. For a line of the archive, the offset
        /// in the file of the frame that holds it; `detail` then names the
        /// frame and the line's offset in the decompressed archive.
        offset: u64,
        /// What is wrong at that place.
        detail: String,
    },
    /// Another [`EventLog`](crate::EventLog), in this process or another,
    /// already has the directory open.
    Locked {
        /// The data directory, whose lock is held.
        path: PathBuf,
    },
    /// An earlier write or sync failed, so the log no longer knows what is
    /// on disk; it refuses to write until
    /// [`EventLog::recover`](crate::EventLog::recover) succeeds or it is
    /// reopened. Reading and refreshing views still work.
    Poisoned {
        /// The file whose write or sync failed.
        path: PathBuf,
    },
    /// A write through a read-only [`EventReader`](crate::EventReader):
    /// saving a view's snapshot from a reader. Snapshots are the writer's
    /// (an [`EventLog`](crate::EventLog)); a reader folds views in memory.
    ReadOnly {
        /// The file that was not written.
        path: PathBuf,
    },
    /// No view of this name is registered with the log.
    UnknownView {
        /// The name asked for.
        name: String,
    },
    /// The view exists, but its state has another type than the one asked for.
    ViewTypeMismatch {
        /// The view's name.
        name: String,
        /// The state type the caller asked for.
        requested: &'static str,
        /// The state type the view was registered with.
        registered: &'static str,
    },
    /// A view name that cannot be used as a file name inside `views/`.
    InvalidViewName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A setting of the builder that cannot stand: an
    /// [`Upcasters`](crate::Upcasters) step from version 0, two steps from
    /// the same type and version, an option for a view that is not
    /// registered or does not take it.
    InvalidConfig {
        /// What is wrong, naming the step or view.
        reason: String,
    },
    /// Two views were registered under the same name.
    DuplicateView {
        /// The name registered twice.
        name: String,
    },
    /// An offset passed to [`EventLog::read_from`](crate::EventLog::read_from)
    /// that is not the start of a line in the active log.
    InvalidOffset {
        /// The active log.
        path: PathBuf,
        /// The offset asked for.
        offset: u64,
        /// The length of the active log.
        len: u64,
    },
    /// A conditional append
    /// ([`EventLog::append_if`](crate::EventLog::append_if)) found that
    /// other events were appended since the caller read the log: nothing
    /// was written.
    Conflict {
        /// The next sequence number the caller expected.
        expected: u64,
        /// The actual next sequence number.
        actual: u64,
    },
    /// A sequence number past the end of the history.
    InvalidSeq {
        /// The sequence number asked for.
        seq: u64,
        /// The next sequence number: the history holds events `0` to
        /// `next_seq - 1`.
        next_seq: u64,
    },
    /// A stored line given from elsewhere (to
    /// [`EventLog::append_lines`](crate::EventLog::append_lines) or
    /// [`View::fold_line`](crate::View::fold_line)) that a reader of the
    /// log would not accept as event `seq`: nothing of it was written or
    /// folded.
    InvalidLine {
        /// The sequence number the line was given for.
        seq: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// An event whose JSON line would be longer than eventfold's limit of
    /// 256 MiB; it is not written.
    EventTooLarge {
        /// The event's type.
        event_type: String,
        /// The size of its JSON, in bytes.
        size: u64,
        /// The limit, in bytes.
        max: u64,
    },
    /// An event that could be written but not read back exactly as it was
    /// given: refused, and nothing of it is written.
    ///
    /// eventfold stores only what every reader parses back identically.
    /// Today that excludes `data` nested more than
    /// [`Event::MAX_DEPTH`](crate::Event::MAX_DEPTH) arrays and objects
    /// deep, and objects with the key `"$serde_json::private::RawValue"`,
    /// which serde_json reserves. Applications that store client-supplied
    /// JSON should expect this error for such input.
    InvalidEvent {
        /// The event's type (for a typed value that does not serialize
        /// with a `"type"`, the name of its Rust type).
        event_type: String,
        /// What in the event cannot be stored.
        reason: String,
    },
    /// A snapshot whose JSON would be larger than the 1 GiB that loading a
    /// snapshot reads; it is not written. A view's own snapshot saves skip
    /// it with a warning instead (the view keeps working from memory).
    SnapshotTooLarge {
        /// The snapshot file that was not written.
        path: PathBuf,
        /// The size of its JSON, in bytes.
        size: u64,
        /// The limit, in bytes.
        max: u64,
    },
    /// An event or a view state could not be turned into JSON.
    Serialize {
        /// What was being serialized.
        what: String,
        /// The underlying error.
        source: serde_json::Error,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        Error::Io {
            path: Some(path.to_path_buf()),
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, offset: u64, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.to_path_buf(),
            offset,
            detail: detail.into(),
        }
    }

    /// The same error once more, for another caller that it failed (every
    /// caller of a group commit whose write failed gets one). An I/O error
    /// keeps its kind and message; an error whose cause cannot be copied
    /// becomes an I/O error with the same message.
    pub(crate) fn copy(&self) -> Error {
        match self {
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::Corrupt {
                path,
                offset,
                detail,
            } => Error::Corrupt {
                path: path.clone(),
                offset: *offset,
                detail: detail.clone(),
            },
            Error::Poisoned { path } => Error::Poisoned { path: path.clone() },
            other => Error::Io {
                path: None,
                source: io::Error::other(other.to_string()),
            },
        }
    }
}

/// Bytes of a message kept from its start by [`shorten`].
const HEAD: usize = 100;
/// Bytes of a message kept from its end by [`shorten`].
const TAIL: usize = 60;

/// A message for an error or a warning, cut to at most [`HEAD`] bytes from
/// its start and [`TAIL`] from its end, with the number of bytes left out
/// between them: serde's messages quote what they failed to parse, which
/// in a damaged file may be megabytes. The message is never held whole,
/// however long it is.
pub(crate) fn shorten(message: impl fmt::Display) -> String {
    let mut kept = Shortened::default();
    fmt::write(&mut kept, format_args!("{message}")).expect("writing to a String succeeds");
    if kept.left_out == 0 && kept.head.len() + kept.tail.len() <= HEAD + TAIL {
        return kept.head + &kept.tail;
    }
    let start = last_bytes(&kept.tail, TAIL);
    format!(
        "{}…[{} bytes left out]…{}",
        kept.head,
        kept.left_out + start,
        &kept.tail[start..]
    )
}

/// The first bytes of `bytes`, escaped and quoted, for a message about a
/// file that does not hold what it should.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(HEAD)]);
    let more = if bytes.len() > HEAD { "…" } else { "" };
    shorten(format_args!("{text:?}{more}"))
}

/// Where the last `n` bytes of `text` start, moved forward to the next
/// character boundary.
fn last_bytes(text: &str, n: usize) -> usize {
    let mut start = text.len().saturating_sub(n);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    start
}

/// What [`shorten`] keeps of a message while it is written.
#[derive(Default)]
struct Shortened {
    head: String,
    /// Set once a character did not fit in `head`: the rest goes to `tail`.
    head_full: bool,
    /// The last bytes written after `head`: at most `2 * TAIL`.
    tail: String,
    /// Bytes dropped between `head` and `tail`.
    left_out: usize,
}

impl fmt::Write for Shortened {
    fn write_str(&mut self, mut s: &str) -> fmt::Result {
        if !self.head_full {
            let mut n = s.len().min(HEAD - self.head.len());
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            self.head.push_str(&s[..n]);
            s = &s[n..];
            self.head_full = !s.is_empty();
        }
        if s.len() > TAIL {
            // Only the end of `s` can be kept: the rest is never copied.
            let start = last_bytes(s, TAIL);
            self.left_out += self.tail.len() + start;
            self.tail.clear();
            s = &s[start..];
        }
        self.tail.push_str(s);
        if self.tail.len() > 2 * TAIL {
            let start = last_bytes(&self.tail, TAIL);
            self.left_out += start;
            self.tail.drain(..start);
        }
        Ok(())
    }
}

/// Attaches a path to a bare [`io::Error`].
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                path: Some(path),
                source,
            } => write!(f, "I/O error on {}: {source}", path.display()),
            Error::Io { path: None, source } => write!(f, "I/O error: {source}"),
            Error::Corrupt {
                path,
                offset,
                detail,
            } => write!(
                f,
                "corrupt data in {} at byte {offset}: {detail}",
                path.display()
            ),
            Error::Locked { path } => write!(
                f,
                "the event log in {} is already open elsewhere (its directory is locked)",
                path.display()
            ),
            Error::Poisoned { path } => write!(
                f,
                "an earlier write or sync of {} failed, so the log refuses to write; once the \
                 fault is gone, call EventLog::recover (or reopen the log)",
                path.display()
            ),
            Error::ReadOnly { path } => write!(
                f,
                "{} was not written: this view is refreshed from a read-only EventReader, and \
                 snapshots are saved by the writer (the EventLog that has the directory open)",
                path.display()
            ),
            Error::UnknownView { name } => write!(f, "no view named {name:?} is registered"),
            Error::ViewTypeMismatch {
                name,
                requested,
                registered,
            } => write!(
                f,
                "view {name:?} holds {registered}, but {requested} was requested"
            ),
            Error::InvalidViewName { name, reason } => {
                write!(f, "invalid view name {name:?}: {reason}")
            }
            Error::InvalidConfig { reason } => write!(f, "{reason}"),
            Error::DuplicateView { name } => {
                write!(f, "a view named {name:?} is registered twice")
            }
            Error::InvalidOffset { path, offset, len } if offset > len => write!(
                f,
                "offset {offset} is past the end of {} ({len} bytes): offsets count from the \
                 start of the active log and start again at 0 after every rotation, so an \
                 offset kept from before one can point past the end; read from 0, or from an \
                 offset that append or read_from returned since",
                path.display()
            ),
            Error::InvalidOffset { path, offset, len } => write!(
                f,
                "offset {offset} is inside a line of {} (length {len}), not at its start: \
                 pass 0, or an offset that append or read_from returned",
                path.display()
            ),
            Error::Conflict { expected, actual } => write!(
                f,
                "conditional append refused: it expected event {expected} to be the next, but \
                 the log already holds {actual} events; nothing was written (read the state \
                 again and decide again)"
            ),
            Error::InvalidSeq { seq, next_seq: 0 } => {
                write!(f, "there is no event {seq}: the history is empty")
            }
            Error::InvalidSeq { seq, next_seq } => write!(
                f,
                "there is no event {seq}: the history holds events 0 to {}",
                next_seq - 1
            ),
            Error::InvalidLine { seq, detail } => write!(
                f,
                "the line given as event {seq} is not one a reader of the log accepts there: \
                 {detail}; nothing of it was used"
            ),
            Error::EventTooLarge {
                event_type,
                size,
                max,
            } => write!(
                f,
                "event of type {event_type:?} is {size} bytes of JSON, over the limit of {max}"
            ),
            Error::InvalidEvent { event_type, reason } => write!(
                f,
                "event of type {event_type:?} cannot be stored: {reason}; nothing was written"
            ),
            Error::SnapshotTooLarge { path, size, max } => write!(
                f,
                "the snapshot {} would be {size} bytes of JSON, over the limit of {max} that \
                 loading reads back; it was not written",
                path.display()
            ),
            Error::Serialize { what, source } => {
                write!(f, "could not serialize {what} to JSON: {source}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Serialize { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(source: io::Error) -> Self {
        Error::Io { path: None, source }
    }
}
