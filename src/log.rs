//! The event log: the data directory, the active log file, the lock and the
//! registry of views.

use std::collections::HashSet;
use std::fmt;
use std::fs::{File, TryLockError};
use std::io::{self, BufReader, Read, Seek, Write};
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::archive::{self, ARCHIVE_FILE};
use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::event::{Event, MAX_LINE, hash_hex, line_hash};
use crate::reader::{
    self, ActiveLines, ArchiveLines, Lines, READ_BUF, ReadFrom, ReadFull, line_start_before,
};
use crate::snapshot::SNAPSHOT_SUFFIX;
use crate::view::{AnyView, ReduceFn, View};

/// Source of [`EventLog::id`]s.
static NEXT_LOG_ID: AtomicU64 = AtomicU64::new(1);

/// File name of the active log inside the data directory.
pub(crate) const LOG_FILE: &str = "app.jsonl";
/// File that keeps the bytes of torn tails cut from the active log.
pub(crate) const TORN_FILE: &str = "app.jsonl.torn";
/// Name of the snapshot directory inside the data directory.
pub(crate) const VIEWS_DIR: &str = "views";

/// An append-only event log in a directory, with its registered views.
///
/// The directory holds:
///
/// ```text
/// data/
///   app.jsonl            active log: one JSON event per line, append-only
///   archive.jsonl.zst    closed history: one zstd frame per rotation
///   views/NAME.snapshot.json
/// ```
///
/// Writing is [`append`](EventLog::append); reading is through views, which
/// fold every event through a reducer ([`view`](EventLog::view) after
/// [`refresh_all`](EventLog::refresh_all)). Refreshing is always explicit:
/// `view` does no I/O. Only one `EventLog` may have a directory open at a
/// time, in any process: `open` takes an exclusive lock (`flock`) on the
/// directory, and a second open gets [`Error::Locked`].
///
/// `EventLog` is `Send`: to share it between threads or request handlers,
/// put it in an `Arc<Mutex<EventLog>>`.
///
/// # Examples
///
/// ```
/// use eventfold::{Event, EventLog};
/// use serde_json::json;
///
/// fn count(n: u64, _: &Event) -> u64 { n + 1 }
///
/// # let dir = tempfile::tempdir()?;
/// let mut log = EventLog::builder(dir.path())
///     .view::<u64>("count", count)
///     .open()?;
/// log.append(&Event::new("ping", json!(null)))?;
/// log.refresh_all()?;
/// assert_eq!(*log.view::<u64>("count")?, 1);
/// # Ok::<(), eventfold::Error>(())
/// ```
pub struct EventLog {
    pub(crate) dir: PathBuf,
    pub(crate) log_path: PathBuf,
    pub(crate) archive_path: PathBuf,
    pub(crate) views_dir: PathBuf,
    /// `app.jsonl`, opened for reading and appending.
    pub(crate) file: File,
    /// Bytes of `app.jsonl` written and synced: the acknowledged log.
    pub(crate) len: u64,
    /// Bytes of `archive.jsonl.zst`; 0 when there is none.
    pub(crate) archive_len: u64,
    pub(crate) max_log_size: u64,
    pub(crate) views: Vec<Box<dyn AnyView>>,
    /// Set after a failed write or sync: the file that failed.
    pub(crate) poisoned: Option<PathBuf>,
    /// Holds the directory's lock for as long as the log is open.
    _lock: File,
    /// Reused serialization buffer for appends.
    line: Vec<u8>,
    /// Bytes at the start of the active log known to hold valid events
    /// (written by this log, or read by a full pass); rotation checks the
    /// rest before moving it into the archive.
    pub(crate) checked_len: u64,
    /// Distinguishes this open log from any other, so that a view knows
    /// whether its in-memory position refers to this log.
    pub(crate) id: u64,
}

/// Configures and opens an [`EventLog`]: the directory, the auto-rotation
/// threshold and the views to register.
///
/// # Examples
///
/// ```
/// use eventfold::{Event, EventLog};
///
/// fn count(n: u64, _: &Event) -> u64 { n + 1 }
/// fn count_pings(n: u64, e: &Event) -> u64 { n + u64::from(e.event_type == "ping") }
///
/// # let dir = tempfile::tempdir()?;
/// let log = EventLog::builder(dir.path())
///     .max_log_size(10_000_000)
///     .view::<u64>("all", count)
///     .view::<u64>("pings", count_pings)
///     .open()?;
/// # Ok::<(), eventfold::Error>(())
/// ```
#[must_use = "a builder does nothing until open() is called"]
pub struct EventLogBuilder {
    dir: PathBuf,
    max_log_size: u64,
    views: Vec<Box<dyn AnyView>>,
    /// The registered names in lower case, to refuse duplicates quickly.
    names: HashSet<String>,
    error: Option<Error>,
}

impl fmt::Debug for EventLogBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLogBuilder")
            .field("dir", &self.dir)
            .field("max_log_size", &self.max_log_size)
            .field(
                "views",
                &self.views.iter().map(|v| v.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl EventLogBuilder {
    /// Sets the size, in bytes, above which the active log is rotated into
    /// the archive.
    ///
    /// The check happens when the log is opened and at the start of every
    /// [`append`](EventLog::append): if `app.jsonl` holds more than
    /// `bytes`, it is rotated first (and that append waits for it). So the
    /// active log never exceeds the threshold by more than one event, and
    /// an append that returns an error never wrote its event.
    ///
    /// The default is 0, which disables auto-rotation: the active log grows
    /// until you call [`rotate`](EventLog::rotate) yourself.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::builder(dir.path()).max_log_size(100).open()?;
    /// for _ in 0..10 {
    ///     log.append(&Event::new("ping", json!(null)))?;
    /// }
    /// assert!(dir.path().join("archive.jsonl.zst").exists());
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn max_log_size(mut self, bytes: u64) -> Self {
        self.max_log_size = bytes;
        self
    }

    /// Registers a view: a name and a reducer whose state has type `S`.
    ///
    /// The view's snapshot is `views/NAME.snapshot.json`. Calls can be
    /// chained to register several views, each with its own state type.
    /// A registered view is kept through rotations and refreshed by
    /// [`refresh_all`](EventLog::refresh_all).
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use std::collections::BTreeMap;
    ///
    /// fn by_type(mut m: BTreeMap<String, u64>, e: &Event) -> BTreeMap<String, u64> {
    ///     *m.entry(e.event_type.clone()).or_default() += 1;
    ///     m
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let log = EventLog::builder(dir.path())
    ///     .view::<BTreeMap<String, u64>>("by_type", by_type)
    ///     .open()?;
    /// assert!(log.view::<BTreeMap<String, u64>>("by_type")?.is_empty());
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// An invalid or repeated name is reported by [`open`](Self::open).
    pub fn view<S>(mut self, name: &str, reducer: ReduceFn<S>) -> Self
    where
        S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
    {
        if self.error.is_some() {
            return self;
        }
        // Case-insensitively: on some file systems `Todos` and `todos`
        // would share one snapshot file.
        if !self.names.insert(name.to_ascii_lowercase()) {
            self.error = Some(Error::DuplicateView {
                name: name.to_owned(),
            });
            return self;
        }
        match View::new(name, reducer, self.dir.join(VIEWS_DIR)) {
            Ok(view) => self.views.push(Box::new(view)),
            Err(e) => self.error = Some(e),
        }
        self
    }

    /// Opens the log, creating what is missing.
    ///
    /// On a new directory this creates the directory, `views/` and `app.jsonl`,
    /// each made durable by syncing its parent directory. On an existing one it
    /// keeps every file and, in order: takes the lock on the directory; removes
    /// temporary files of interrupted snapshot and rotation-record writes (and
    /// anything else planted at their names, such as a symbolic link, which is
    /// removed, never followed); checks that `app.jsonl` is a regular file;
    /// completes or undoes a rotation a crash interrupted; cuts a torn last
    /// line (a line without its newline, left by a crash in the middle of an
    /// append) off `app.jsonl`, keeping its bytes in `app.jsonl.torn` (a
    /// complete event that only lacks its newline gets the newline instead),
    /// and syncs `app.jsonl`; loads every registered view's snapshot (checked
    /// against the log, no event is read). Finally, if the active log is larger
    /// than [`max_log_size`](Self::max_log_size), it is rotated; if that
    /// rotation fails (a full disk, say), it is undone in place (see
    /// [`EventLog::recover`]), the error is logged as a warning (through the
    /// `log` crate) and the log opens anyway, usable: it can be read, and the
    /// next append tries the rotation again. Should even undoing it fail, the
    /// log opens [poisoned](Error::Poisoned): it can be read, and writes wait
    /// for a successful `recover`.
    ///
    /// # Symbolic links
    ///
    /// The data directory, `app.jsonl`, `archive.jsonl.zst` and `views/`
    /// may be symbolic links: they are followed, as the user's choice (to
    /// keep the archive on another disk, say), and a dangling link to
    /// `app.jsonl` or the archive creates the file it names. Every other
    /// name eventfold writes is its own and is never followed: temporary
    /// files are created exclusively after removing whatever is at their
    /// name, a link at `app.jsonl.torn` is removed and a regular file
    /// created instead, and a snapshot or `rotation.json` that is a link is
    /// read through it (if it leads to a regular file) but replaced or
    /// removed as a name, never written through.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::EventLog;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let data = dir.path().join("data");
    /// let log = EventLog::builder(&data).open()?;
    /// assert!(data.join("app.jsonl").exists());
    /// assert!(data.join("views").is_dir());
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::Locked`] if another `EventLog` has the directory open
    ///   (nothing is touched);
    /// - [`Error::InvalidViewName`] or [`Error::DuplicateView`] for a bad
    ///   registration;
    /// - [`Error::Corrupt`] if an interrupted rotation's record does not
    ///   match the files, or `rotation.json` is not a regular file of at
    ///   most 4 KiB (it is then not read, and nothing is changed);
    /// - [`Error::Io`] if the directory or a file cannot be created, read,
    ///   written or synced, the path is not a directory, or `app.jsonl`,
    ///   `archive.jsonl.zst` or `app.jsonl.torn` is not a regular file (a
    ///   FIFO or a device is never opened).
    pub fn open(self) -> Result<EventLog> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let dir = self.dir;
        if dir.as_os_str().is_empty() {
            return Err(Error::Io {
                path: None,
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the data directory's path is empty: give a directory, such as \"./data\"",
                ),
            });
        }
        durable::create_dir_all(&dir)?;
        let lock = lock_dir(&dir)?;

        let views_dir = dir.join(VIEWS_DIR);
        durable::create_dir_all(&views_dir)?;
        durable::sweep_tmp(&views_dir, SNAPSHOT_SUFFIX)?;
        durable::sweep_tmp(&dir, archive::INTENT_FILE)?;

        let log_path = dir.join(LOG_FILE);
        let archive_path = dir.join(ARCHIVE_FILE);
        let file = durable::open_append(&log_path)?;
        archive::recover(&dir, &log_path, &views_dir)?;
        let len = repair_tail(&file, &log_path, &dir.join(TORN_FILE))?;
        let archive_len = archive::file_len(&archive_path)?;

        let mut log = EventLog {
            dir,
            log_path,
            archive_path,
            views_dir,
            file,
            len,
            archive_len,
            max_log_size: self.max_log_size,
            views: Vec::new(),
            poisoned: None,
            _lock: lock,
            line: Vec::new(),
            checked_len: 0,
            id: NEXT_LOG_ID.fetch_add(1, Ordering::Relaxed),
        };
        let mut views = self.views;
        for view in &mut views {
            view.load(&log)?;
        }
        log.views = views;
        if log.needs_rotation()
            && let Err(e) = log.auto_rotate()
        {
            ::log::warn!(
                "eventfold: automatic rotation of {} on open failed, will retry on the next append: {e}",
                log.log_path.display()
            );
        }
        Ok(log)
    }
}

impl EventLog {
    /// Starts configuring a log in `dir`; see [`EventLogBuilder`].
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let log = EventLog::builder(dir.path())
    ///     .max_log_size(1_000_000)
    ///     .view::<u64>("count", count)
    ///     .open()?;
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn builder(dir: impl AsRef<Path>) -> EventLogBuilder {
        EventLogBuilder {
            dir: dir.as_ref().to_path_buf(),
            max_log_size: 0,
            views: Vec::new(),
            names: HashSet::new(),
            error: None,
        }
    }

    /// Opens the log in `dir` with no views and no auto-rotation; the same
    /// as `EventLog::builder(dir).open()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// assert_eq!(log.append(&Event::new("hello", json!({})))?, 0);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`EventLogBuilder::open`].
    pub fn open(dir: impl AsRef<Path>) -> Result<EventLog> {
        EventLog::builder(dir).open()
    }

    /// Appends an event and returns the byte offset in `app.jsonl` where
    /// its line starts.
    ///
    /// The event is written as one line of JSON and synced to disk
    /// (`fdatasync`) before the call returns: once it returns `Ok`, the
    /// event survives a process crash or a power loss.
    ///
    /// With [`max_log_size`](EventLogBuilder::max_log_size) set, an append
    /// that finds the active log over the threshold first runs
    /// [`rotate`](EventLog::rotate), and blocks until it is done. Offsets
    /// count from the start of the current active log, so they start again
    /// at 0 after a rotation.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// let first = log.append(&Event::with_ts("a", json!(null), 1))?;
    /// let second = log.append(&Event::with_ts("b", json!(null), 1))?;
    /// assert_eq!(first, 0);
    /// assert_eq!(second, 32); // {"type":"a","data":null,"ts":1} and its newline
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] for an event that could not be read back
    /// exactly; nothing is written. [`Error::Io`] if the write or the sync
    /// fails: eventfold then cuts the file back to its acknowledged length,
    /// so the event is not in the log (should that cut fail too,
    /// [`recover`](Self::recover) or a reopen cuts it), and the log is
    /// [poisoned](Error::Poisoned): every later write fails until
    /// [`recover`](Self::recover) succeeds or the log is reopened.
    /// [`Error::Poisoned`] after such a failure. Errors of
    /// [`rotate`](EventLog::rotate) when auto-rotation runs; the event is
    /// then not written, and the rotation is undone in place so that the
    /// next append tries again.
    pub fn append(&mut self, event: &Event) -> Result<u64> {
        self.check_usable()?;
        let mut line = mem::take(&mut self.line);
        line.clear();
        // The event is checked and serialized first: one that cannot be
        // stored changes nothing, not even by rotating.
        let result = event.write_line(&mut line).and_then(|()| {
            self.auto_rotate()?;
            self.write_synced(&line)
        });
        self.line = line;
        result
    }

    /// Appends several events with one write and one sync; returns the
    /// offset of each event's line, in order.
    ///
    /// This is much faster than appending the events one by one, because
    /// the cost of an append is the sync. The batch is acknowledged as a
    /// whole: when the call returns `Ok`, every event of it is durable.
    /// A crash in the middle of the call leaves a prefix of the batch on
    /// disk: some whole events, possibly followed by a partial line that
    /// the next open cuts off (see [`EventLogBuilder::open`]); never a
    /// glued or damaged event. An empty batch writes nothing.
    ///
    /// Auto-rotation is checked once, before the batch is written.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// let batch: Vec<Event> = (0..3).map(|n| Event::with_ts("n", json!(n), 1)).collect();
    /// let offsets = log.append_batch(&batch)?;
    /// assert_eq!(offsets, [0, 29, 58]); // each line is {"type":"n","data":N,"ts":1} + newline
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`append`](Self::append). If an event cannot be serialized,
    /// nothing of the batch is written.
    pub fn append_batch(&mut self, events: &[Event]) -> Result<Vec<u64>> {
        self.check_usable()?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut lines = mem::take(&mut self.line);
        lines.clear();
        // Offsets within the batch first; the whole batch is checked and
        // serialized before anything changes, rotation included.
        let mut offsets = Vec::with_capacity(events.len());
        let serialized = events.iter().try_for_each(|event| {
            offsets.push(lines.len() as u64);
            event.write_line(&mut lines)
        });
        let result = serialized.and_then(|()| {
            self.auto_rotate()?;
            self.write_synced(&lines)
        });
        self.line = lines;
        let start = result?;
        offsets.iter_mut().for_each(|offset| *offset += start);
        Ok(offsets)
    }

    /// Writes and syncs complete lines; poisons the log on failure.
    fn write_synced(&mut self, lines: &[u8]) -> Result<u64> {
        let written = self
            .file
            .write_all(lines)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Take back whatever part of the lines reached the file, so that
            // an append that failed is not in the log. If even that fails,
            // `recover` cuts the file back to `self.len` (a reopen cuts a
            // partial line; a complete one may remain). Either way the log
            // refuses writes until recovered or reopened.
            let rolled_back = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_all());
            if let Err(undo) = rolled_back {
                ::log::warn!(
                    "eventfold: could not cut the failed write off {}: {undo}",
                    self.log_path.display()
                );
            }
            self.poisoned = Some(self.log_path.clone());
            return Err(Error::io(&self.log_path, e));
        }
        let offset = self.len;
        if self.checked_len == self.len {
            self.checked_len += lines.len() as u64;
        }
        self.len += lines.len() as u64;
        Ok(offset)
    }

    /// Reads the events of the active log from `offset` on.
    ///
    /// `offset` must be 0 or an offset returned by [`append`](Self::append)
    /// or by this iterator; the iterator yields `(event, next_offset,
    /// line_hash)`. This is what views use for an incremental refresh; you
    /// rarely need it yourself, except to inspect or export recent events.
    /// Seeking is direct: the bytes before `offset` are not read.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append(&Event::new("a", json!(1)))?;
    /// log.append(&Event::new("b", json!(2)))?;
    /// let mut offset = 0;
    /// for item in log.read_from(0)? {
    ///     let (event, next, _hash) = item?;
    ///     println!("{} at {offset}", event.event_type);
    ///     offset = next;
    /// }
    /// assert_eq!(log.read_from(offset)?.count(), 0);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOffset`] if `offset` is past the end or not at the
    /// start of a line; [`Error::Io`] if the file cannot be opened. Each
    /// item is an [`Error::Corrupt`] (naming the byte offset) if its line is
    /// not a valid event; the iterator ends after an error.
    pub fn read_from(&self, offset: u64) -> Result<ReadFrom> {
        if !self.is_line_start(offset)? {
            return Err(Error::InvalidOffset {
                path: self.log_path.clone(),
                offset,
                len: self.len,
            });
        }
        Ok(ReadFrom::new(self.active_lines(offset)?))
    }

    /// Reads every event ever appended: the archive's, oldest first, then
    /// the active log's.
    ///
    /// The archive is decompressed as a stream, never held in memory. Views
    /// use this to build from scratch; use it yourself to export, debug or
    /// replay history up to a point. Yields `(event, line_hash)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// for n in 0..3 {
    ///     log.append(&Event::new("n", json!(n)))?;
    /// }
    /// // Replay only the first two events: the state as it was back then.
    /// let sum: i64 = log
    ///     .read_full()?
    ///     .take(2)
    ///     .map(|item| item.map(|(event, _)| event.data.as_i64().unwrap_or(0)))
    ///     .sum::<Result<i64, _>>()?;
    /// assert_eq!(sum, 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a file cannot be opened. Each item is an
    /// [`Error::Corrupt`] if the archive cannot be decompressed or a line is
    /// not a valid event; the iterator ends after an error.
    pub fn read_full(&self) -> Result<ReadFull> {
        Ok(ReadFull::new(self.archive_lines()?, self.active_lines(0)?))
    }

    /// Refreshes every registered view, in the order they were registered;
    /// each saves its snapshot if it folded new events.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    /// fn sum(n: i64, e: &Event) -> i64 { n + e.data.as_i64().unwrap_or(0) }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::builder(dir.path())
    ///     .view::<u64>("count", count)
    ///     .view::<i64>("sum", sum)
    ///     .open()?;
    /// log.append(&Event::new("add", json!(5)))?;
    /// log.append(&Event::new("add", json!(7)))?;
    /// log.refresh_all()?;
    /// assert_eq!(*log.view::<u64>("count")?, 2);
    /// assert_eq!(*log.view::<i64>("sum")?, 12);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// Refreshing works on a [poisoned](Error::Poisoned) log too: views
    /// fold every acknowledged event, so an application keeps reading
    /// while its disk refuses writes (snapshots are saved again once the
    /// log is [recovered](Self::recover)).
    ///
    /// # Errors
    ///
    /// The first error of [`View::refresh`]; the views refreshed before it
    /// keep their new state.
    pub fn refresh_all(&mut self) -> Result<()> {
        self.with_views(|views, log| views.iter_mut().try_for_each(|v| v.refresh(log)))
    }

    /// Saves the snapshot of every registered view whose state is ahead of
    /// it, durably.
    ///
    /// Refreshes save snapshots only now and then (see [`View::refresh`]);
    /// this writes the rest now, for example before a planned shutdown.
    /// Dropping the log does the same. Never needed for correctness: a
    /// snapshot that is behind only costs folding the events after it
    /// again.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog, Snapshot};
    /// use serde_json::json;
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::builder(dir.path()).view::<u64>("count", count).open()?;
    /// log.refresh_all()?;
    /// log.append(&Event::new("ping", json!(null)))?;
    /// log.refresh_all()?;
    /// log.save_views()?;
    /// let path = dir.path().join("views/count.snapshot.json");
    /// assert_eq!(Snapshot::<u64>::load(&path)?.unwrap().state, 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] after a failed write of the log; otherwise the
    /// first error of saving a snapshot.
    pub fn save_views(&mut self) -> Result<()> {
        self.check_usable()?;
        self.with_views(|views, log| views.iter_mut().try_for_each(|v| v.save_pending(log)))
    }

    /// Refreshes one registered view by name; the others are untouched.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::builder(dir.path())
    ///     .view::<u64>("a", count)
    ///     .view::<u64>("b", count)
    ///     .open()?;
    /// log.append(&Event::new("ping", json!(null)))?;
    /// log.refresh_view("a")?;
    /// assert_eq!(*log.view::<u64>("a")?, 1);
    /// assert_eq!(*log.view::<u64>("b")?, 0);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::UnknownView`] if no view has this name; otherwise as for
    /// [`View::refresh`].
    pub fn refresh_view(&mut self, name: &str) -> Result<()> {
        let index = self.view_index(name)?;
        self.with_views(|views, log| views[index].refresh(log))
    }

    /// Rebuilds one registered view from the full history; see
    /// [`View::rebuild`].
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::builder(dir.path()).view::<u64>("count", count).open()?;
    /// log.append(&Event::new("ping", json!(null)))?;
    /// log.rebuild_view("count")?;
    /// assert_eq!(*log.view::<u64>("count")?, 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::UnknownView`] if no view has this name; otherwise as for
    /// [`View::rebuild`].
    pub fn rebuild_view(&mut self, name: &str) -> Result<()> {
        let index = self.view_index(name)?;
        self.with_views(|views, log| views[index].rebuild(log))
    }

    /// The state of a registered view as of its last refresh (or as loaded
    /// from its snapshot at open). No I/O: call
    /// [`refresh_all`](Self::refresh_all) or
    /// [`refresh_view`](Self::refresh_view) first to include new events.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Error, Event, EventLog};
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let log = EventLog::builder(dir.path()).view::<u64>("count", count).open()?;
    /// assert_eq!(*log.view::<u64>("count")?, 0);
    /// assert!(matches!(log.view::<String>("count"), Err(Error::ViewTypeMismatch { .. })));
    /// assert!(matches!(log.view::<u64>("nope"), Err(Error::UnknownView { .. })));
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::UnknownView`] if no view has this name;
    /// [`Error::ViewTypeMismatch`] if it was registered with another state
    /// type than `S`.
    pub fn view<S: 'static>(&self, name: &str) -> Result<&S> {
        let view = &self.views[self.view_index(name)?];
        match view.as_any().downcast_ref::<View<S>>() {
            Some(view) => Ok(view.state()),
            None => Err(Error::ViewTypeMismatch {
                name: name.to_owned(),
                requested: std::any::type_name::<S>(),
                registered: view.state_type(),
            }),
        }
    }

    /// The data directory.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::EventLog;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let log = EventLog::open(dir.path())?;
    /// assert_eq!(log.dir(), dir.path());
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The number of acknowledged bytes in the active log, `app.jsonl`:
    /// where the next event will start.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// assert_eq!(log.active_len(), 0);
    /// log.append(&Event::with_ts("a", json!(null), 1))?;
    /// assert_eq!(log.active_len(), 32);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn active_len(&self) -> u64 {
        self.len
    }

    /// Whether an earlier write or sync failed, so that the log refuses
    /// to write (appends, rotations, snapshot saves) until
    /// [`recover`](Self::recover) succeeds or the log is reopened.
    /// Reading and refreshing views still work.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::EventLog;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let log = EventLog::open(dir.path())?;
    /// assert!(!log.is_poisoned());
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Recovers from a failed write in place, without dropping the log:
    /// runs again what [`open`](EventLogBuilder::open) does to the files
    /// and, if that succeeds, clears the [poison](Error::Poisoned).
    ///
    /// Call it once the fault is gone (space freed, the disk back). In
    /// order: temporary files are swept; bytes after the acknowledged end
    /// of `app.jsonl` (what a failed append may have left, when cutting
    /// them off failed too) are cut and kept in `app.jsonl.torn`; an
    /// interrupted rotation is completed or undone, exactly as on open;
    /// `app.jsonl` is synced and reopened. Nothing acknowledged is lost,
    /// and what a failed call wrote is not in the log. Views keep showing
    /// their states and reload from their snapshots on their next refresh.
    ///
    /// A log that is not poisoned can be recovered too; that only checks
    /// the files again.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append(&Event::new("a", json!(1)))?;
    /// // ... an append fails on a full disk, then space is freed:
    /// if log.is_poisoned() {
    ///     log.recover()?;
    /// }
    /// log.append(&Event::new("b", json!(2)))?;
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The errors of [`open`](EventLogBuilder::open) (an [`Error::Io`]
    /// while the fault lasts, [`Error::Corrupt`] for files that recovery
    /// cannot trust); the log then stays poisoned, and `recover` can be
    /// called again.
    pub fn recover(&mut self) -> Result<()> {
        let result = self.recover_files();
        match &result {
            Ok(()) => self.poisoned = None,
            Err(e) => {
                if self.poisoned.is_none() {
                    self.poison(e);
                }
            }
        }
        result
    }

    /// The file work of [`recover`](Self::recover).
    fn recover_files(&mut self) -> Result<()> {
        durable::sweep_tmp(&self.views_dir, SNAPSHOT_SUFFIX)?;
        durable::sweep_tmp(&self.dir, archive::INTENT_FILE)?;
        if !self.dir.join(archive::INTENT_FILE).exists() {
            // No rotation was under way: anything past the acknowledged
            // length was written by a call that failed.
            cut_unacknowledged(&self.log_path, self.len, &self.dir.join(TORN_FILE))?;
        }
        let file = durable::open_append(&self.log_path)?;
        archive::recover(&self.dir, &self.log_path, &self.views_dir)?;
        let len = repair_tail(&file, &self.log_path, &self.dir.join(TORN_FILE))?;
        self.archive_len = archive::file_len(&self.archive_path)?;
        self.file = file;
        self.len = len;
        self.checked_len = 0;
        // Views hold positions in the files as they were: a new identity
        // makes each reload its (checked) snapshot on its next refresh,
        // showing its present state until then.
        self.id = NEXT_LOG_ID.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The automatic rotation before an append, if the active log is over
    /// [`max_log_size`](EventLogBuilder::max_log_size). If it fails, the
    /// files are recovered in place at once (the rotation rolled back or
    /// forward), so that a passing fault costs this append and not the
    /// log: the error is returned either way, and the next append tries
    /// the rotation again.
    fn auto_rotate(&mut self) -> Result<()> {
        if !self.needs_rotation() {
            return Ok(());
        }
        let rotated = self.rotate();
        if rotated.is_err()
            && self.is_poisoned()
            && let Err(e) = self.recover()
        {
            ::log::warn!(
                "eventfold: recovering {} after a failed rotation failed too: {e}",
                self.dir.display()
            );
        }
        rotated
    }

    /// Marks the log poisoned by the failure `e`.
    pub(crate) fn poison(&mut self, e: &Error) {
        self.poisoned = Some(failed_path(e, &self.log_path));
    }

    /// Fails with [`Error::Poisoned`] after an earlier write failure.
    pub(crate) fn check_usable(&self) -> Result<()> {
        match &self.poisoned {
            Some(path) => Err(Error::Poisoned { path: path.clone() }),
            None => Ok(()),
        }
    }

    pub(crate) fn archive_len(&self) -> u64 {
        self.archive_len
    }

    pub(crate) fn archive_path(&self) -> &Path {
        &self.archive_path
    }

    fn needs_rotation(&self) -> bool {
        self.max_log_size > 0 && self.len > self.max_log_size
    }

    fn view_index(&self, name: &str) -> Result<usize> {
        self.views
            .iter()
            .position(|v| v.name() == name)
            .ok_or_else(|| Error::UnknownView {
                name: name.to_owned(),
            })
    }

    /// Lends the registry to `f` together with the log, which views need
    /// to read from.
    fn with_views<T>(
        &mut self,
        f: impl FnOnce(&mut [Box<dyn AnyView>], &EventLog) -> Result<T>,
    ) -> Result<T> {
        let mut views = mem::take(&mut self.views);
        // A reducer may panic; the registry must be back in place even then.
        let result = panic::catch_unwind(AssertUnwindSafe(|| f(&mut views, self)));
        self.views = views;
        result.unwrap_or_else(|payload| panic::resume_unwind(payload))
    }

    /// Lines of the active log from `offset` to the acknowledged end.
    pub(crate) fn active_lines(&self, offset: u64) -> Result<ActiveLines> {
        let Some(remaining) = self.len.checked_sub(offset) else {
            return Err(Error::InvalidOffset {
                path: self.log_path.clone(),
                offset,
                len: self.len,
            });
        };
        let mut file = File::open(&self.log_path).at(&self.log_path)?;
        file.seek(io::SeekFrom::Start(offset)).at(&self.log_path)?;
        let reader = BufReader::with_capacity(READ_BUF, file.take(remaining));
        Ok(Lines::new(
            reader,
            self.log_path.clone(),
            offset,
            Some(self.len),
            None,
        ))
    }

    /// Lines of the archive, `None` if there is none.
    pub(crate) fn archive_lines(&self) -> Result<Option<ArchiveLines>> {
        archive::open_lines(&self.archive_path, self.archive_len)
    }

    /// Whether `offset` is 0 or just after a newline, within the log.
    fn is_line_start(&self, offset: u64) -> Result<bool> {
        if offset == 0 {
            return Ok(true);
        }
        if offset > self.len {
            return Ok(false);
        }
        let mut file = File::open(&self.log_path).at(&self.log_path)?;
        let byte = reader::read_range(&mut file, offset - 1, offset).at(&self.log_path)?;
        Ok(byte == b"\n")
    }

    /// Checks a snapshot's position against the active log: `None` if the
    /// line ending at `offset` has hash `hash`, or else what is wrong.
    pub(crate) fn check_position(&self, offset: u64, hash: &str) -> Result<Option<String>> {
        if offset > self.len {
            return Ok(Some(format!(
                "offset {offset} is past the end of {} ({} bytes)",
                self.log_path.display(),
                self.len
            )));
        }
        if offset == 0 {
            return Ok((!hash.is_empty()).then(|| "a hash at offset 0".to_owned()));
        }
        let Some(actual) = self.hash_before(offset)? else {
            return Ok(Some(format!("offset {offset} is not at the end of a line")));
        };
        Ok((actual != hash).then(|| {
            format!("the line before offset {offset} has hash {actual}, the snapshot says {hash:?}")
        }))
    }

    /// The hash of the line that ends just before `offset` (0 < `offset` <=
    /// the log's length), as a snapshot at `offset` records it; `None` if
    /// `offset` is not just after a newline.
    pub(crate) fn hash_before(&self, offset: u64) -> Result<Option<String>> {
        if !self.is_line_start(offset)? {
            return Ok(None);
        }
        let mut file = File::open(&self.log_path).at(&self.log_path)?;
        let start = line_start_before(&mut file, offset - 1).at(&self.log_path)?;
        let line = reader::read_range(&mut file, start, offset - 1).at(&self.log_path)?;
        Ok(Some(hash_hex(line_hash(&line))))
    }
}

impl Drop for EventLog {
    /// Saves the snapshots that are behind their views' states (see
    /// [`EventLog::save_views`]). Errors are logged as warnings: a snapshot
    /// is a cache, and nothing is lost without it.
    fn drop(&mut self) {
        if self.poisoned.is_none()
            && let Err(e) = self.save_views()
        {
            ::log::warn!(
                "eventfold: saving snapshots when closing {} failed: {e}",
                self.dir.display()
            );
        }
    }
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("dir", &self.dir)
            .field("active_len", &self.len)
            .field("archive_len", &self.archive_len)
            .field("max_log_size", &self.max_log_size)
            .field(
                "views",
                &self.views.iter().map(|v| v.name()).collect::<Vec<_>>(),
            )
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

/// Takes the exclusive lock on the data directory.
///
/// A lock that is busy is tried again for a short while: a child process
/// that another thread is starting holds a copy of the descriptor, and
/// with it the lock, until it runs its program; that window must not look
/// like another writer.
///
/// The lock is on the directory itself, not on a file in it: a lock file
/// can be deleted by a cleanup tool while the log is open, which would let
/// a second writer in. The directory cannot go away while it holds the log.
fn lock_dir(dir: &Path) -> Result<File> {
    const PATIENCE: Duration = Duration::from_millis(250);
    let handle = File::open(dir).at(dir)?;
    let start = Instant::now();
    loop {
        match handle.try_lock() {
            Ok(()) => return Ok(handle),
            Err(TryLockError::WouldBlock) if start.elapsed() < PATIENCE => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(dir, e)),
        }
    }
}

/// Repairs the end of the active log after a crash and syncs it, so that
/// every byte it holds from now on is durable. Returns its length.
///
/// The bytes after the last newline are a torn line: an append that a
/// crash cut short, never acknowledged. If they are a complete, valid
/// event that only lacks its newline (a crash between the two, or a
/// file edited by hand), the newline is added and the event kept.
/// Otherwise they are cut off, after being appended, as one line, to
/// `torn_path` and synced there, so that nothing is destroyed. A symbolic
/// link at `torn_path` is removed, not followed (see
/// [`durable::open_append_own`]); anything else that is not a regular
/// file there is an error, and the log is left as it was.
fn repair_tail(file: &File, log_path: &Path, torn_path: &Path) -> Result<u64> {
    let len = file.metadata().at(log_path)?.len();
    let mut reader = File::open(log_path).at(log_path)?;
    if let Some(hole) = unsynced_hole(&mut reader, len).at(log_path)? {
        let what = "an unsynced write that a power cut left with zeroed pages";
        return cut_tail(file, &mut reader, (log_path, torn_path), hole, len, what);
    }
    let keep = line_start_before(&mut reader, len).at(log_path)?;
    if keep == len {
        file.sync_data().at(log_path)?;
        return Ok(len);
    }
    let tail_len = len - keep;
    if tail_len <= MAX_LINE {
        let tail = reader::read_range(&mut reader, keep, len).at(log_path)?;
        if serde_json::from_slice::<Event>(&tail).is_ok() {
            (&*file).write_all(b"\n").at(log_path)?;
            file.sync_data().at(log_path)?;
            ::log::warn!(
                "eventfold: the last event of {} (offset {keep}) lacked its newline; added it",
                log_path.display()
            );
            return Ok(len + 1);
        }
    }
    let what = "an incomplete last line";
    cut_tail(file, &mut reader, (log_path, torn_path), keep, len, what)
}

/// Cuts `app.jsonl` (open as `file`, and as `reader`) at `keep`, after
/// appending the bytes from there to `len`, as one line, to the torn-tail
/// file and syncing them there, so that nothing is destroyed. Returns
/// `keep`.
fn cut_tail(
    file: &File,
    reader: &mut File,
    (log_path, torn_path): (&Path, &Path),
    keep: u64,
    len: u64,
    what: &str,
) -> Result<u64> {
    let tail_len = len - keep;
    let mut side = durable::open_append_own(torn_path)?;
    reader.seek(io::SeekFrom::Start(keep)).at(log_path)?;
    io::copy(&mut reader.take(tail_len), &mut side).at(torn_path)?;
    side.write_all(b"\n").at(torn_path)?;
    side.sync_data().at(torn_path)?;
    file.set_len(keep).at(log_path)?;
    file.sync_all().at(log_path)?;
    ::log::warn!(
        "eventfold: cut {what} ({tail_len} bytes at offset {keep}) from {}; its bytes are kept in {}",
        log_path.display(),
        torn_path.display()
    );
    Ok(keep)
}

/// The page size that file systems write back in: a page of a write that
/// was not synced before a power cut can come back as zeros, whatever
/// happened to the pages around it.
const PAGE: u64 = 4096;
/// The end of the log that every open looks at for zeros.
const HOLE_PROBE: u64 = 64 * 1024;
/// How far back from the end a hole is looked for once the probe finds
/// zeros: the largest unsynced write that is repaired this way.
const HOLE_WINDOW: u64 = 64 * 1024 * 1024;

/// Finds where the unsynced end of the log starts when a power cut left
/// a hole in it: the start of the line in which the hole begins.
///
/// The log's lines never hold a zero byte (JSON escapes control
/// characters), and every byte up to the last successful `fdatasync` is
/// durable, so only the write in flight at the cut (one append or batch,
/// never acknowledged) can come back with some of its pages zeroed while
/// later pages, and the file's new length, reached the disk. Such a hole
/// is a run of zeros that ends at a page boundary or at the end of the
/// file, and starts at a page boundary or just after a newline. When the
/// last [`HOLE_PROBE`] bytes hold a zero, the last [`HOLE_WINDOW`] bytes
/// are searched; if every run of zeros there has that shape, the earliest
/// one marks the start of the unsynced write. Zeros of any other shape are
/// damage of another kind (`None`): the reader reports them, with their
/// offset, and nothing is cut.
fn unsynced_hole(reader: &mut File, len: u64) -> io::Result<Option<u64>> {
    let probe_start = len.saturating_sub(HOLE_PROBE);
    let probe = reader::read_range(reader, probe_start, len)?;
    if !probe.contains(&0) {
        return Ok(None);
    }
    let start = len.saturating_sub(HOLE_WINDOW) / PAGE * PAGE;
    let bytes = if start == probe_start {
        probe
    } else {
        reader::read_range(reader, start, len)?
    };
    let mut earliest = None;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != 0 {
            i += 1;
            continue;
        }
        let run = i;
        while i < bytes.len() && bytes[i] == 0 {
            i += 1;
        }
        let (from, to) = (start + run as u64, start + i as u64);
        let starts_clean = from % PAGE == 0 || (run > 0 && bytes[run - 1] == b'\n');
        let ends_clean = to % PAGE == 0 || to == len;
        if !(starts_clean && ends_clean) {
            return Ok(None);
        }
        earliest.get_or_insert(from);
    }
    match earliest {
        Some(from) => line_start_before(reader, from).map(Some),
        None => Ok(None),
    }
}

/// The file named by a failure, for the poison record.
fn failed_path(e: &Error, default: &Path) -> PathBuf {
    match e {
        Error::Io {
            path: Some(path), ..
        }
        | Error::Corrupt { path, .. } => path.clone(),
        _ => default.to_path_buf(),
    }
}

/// Cuts `app.jsonl` back to its acknowledged length `len`, keeping what
/// is cut in `torn_path`: the bytes of a failed append that could not be
/// taken back when it failed. A file shorter than `len` lost acknowledged
/// events, which is reported, never hidden.
fn cut_unacknowledged(log_path: &Path, len: u64, torn_path: &Path) -> Result<()> {
    let actual = std::fs::metadata(log_path).at(log_path)?.len();
    if actual < len {
        return Err(Error::corrupt(
            log_path,
            actual,
            format!(
                "the file ends here, but {len} bytes of it were acknowledged: another \
                 program cut it (restore it from a backup)"
            ),
        ));
    }
    if actual == len {
        return Ok(());
    }
    let mut source = File::open(log_path).at(log_path)?;
    source.seek(io::SeekFrom::Start(len)).at(log_path)?;
    let mut side = durable::open_append_own(torn_path)?;
    io::copy(&mut (&mut source).take(actual - len), &mut side).at(torn_path)?;
    side.write_all(b"\n").at(torn_path)?;
    side.sync_data().at(torn_path)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(log_path)
        .at(log_path)?;
    file.set_len(len).at(log_path)?;
    file.sync_all().at(log_path)?;
    ::log::warn!(
        "eventfold: cut {} bytes that a failed write left after the acknowledged end of {} \
         (offset {len}); they are kept in {}",
        actual - len,
        log_path.display(),
        torn_path.display()
    );
    Ok(())
}
