//! The event log: the data directory, the active log file, the lock and the
//! registry of views.

use std::collections::HashSet;
use std::fmt;
use std::fs::{File, TryLockError};
use std::io::{self, Write};
use std::mem;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::event::{Event, Unnumbered};
use crate::history::{self, History, HistoryRef, LOG_FILE, Paths, Source, VIEWS_DIR};
use crate::index::INDEX_FILE;
use crate::lines::{ReadFrom, ReadFull, ReadSeq};
use crate::publish::{self, Notifier, Outlet};
use crate::reader::EventReader;
use crate::rotation;
use crate::snapshot::SNAPSHOT_SUFFIX;
use crate::tail;
use crate::typed::{TypedReduceFn, TypedReduceSeqFn};
use crate::upcast::Upcasters;
use crate::view::{AnyView, ReduceFn, ReduceSeqFn, View};

/// An append-only event log in a directory, with its registered views.
///
/// The directory holds:
///
/// ```text
/// data/
///   app.jsonl            active log: one JSON event per line, append-only
///   archive.jsonl.zst    closed history: zstd frames of about 1 MiB of lines
///   archive.index.jsonl  where each frame is, and which events it holds
///   views/NAME.snapshot.json
/// ```
///
/// Writing is [`append`](EventLog::append); reading is through views, which
/// fold every event through a reducer ([`view`](EventLog::view) after
/// [`refresh_all`](EventLog::refresh_all)). Refreshing is always explicit:
/// `view` does no I/O. Only one `EventLog` may have a directory open at a
/// time, in any process: `open` takes an exclusive lock (`flock`) on the
/// directory, and a second open gets [`Error::Locked`]. Any number of
/// [`EventReader`]s can read the directory beside it, in any process.
///
/// `EventLog` is `Send`: to share it between threads or request handlers,
/// turn it into a [`SharedLog`](crate::SharedLog) (group commit: threads
/// appending at once share syncs), or put it in an `Arc<Mutex<EventLog>>`.
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
    /// The files and how much of them is acknowledged: what views read.
    history: History,
    /// `app.jsonl`, opened for reading and appending.
    file: File,
    max_log_size: u64,
    views: Vec<Box<dyn AnyView>>,
    /// Holds the directory's lock for as long as the log is open.
    _lock: File,
    /// Wakes the threads of this process that wait for new events.
    notifier: Arc<Notifier>,
    /// Reused serialization buffer for appends.
    line: Vec<u8>,
    /// Bytes at the start of the active log known to hold valid events
    /// (written by this log, or read by a full pass); rotation checks the
    /// rest before moving it into the archive.
    checked_len: u64,
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
    upcasters: Option<Arc<Upcasters>>,
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
    pub fn view<S>(self, name: &str, reducer: ReduceFn<S>) -> Self
    where
        S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
    {
        self.register(name, |dir| View::new(name, reducer, dir))
    }

    /// Registers a view whose reducer also gets each event's sequence
    /// number (see [`ReduceSeqFn`]); otherwise the same as
    /// [`view`](Self::view).
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// /// The sequence number of the last "deposited" event.
    /// fn last_deposit(last: Option<u64>, seq: u64, e: &Event) -> Option<u64> {
    ///     if e.event_type == "deposited" { Some(seq) } else { last }
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::builder(dir.path())
    ///     .view_with_seq::<Option<u64>>("last_deposit", last_deposit)
    ///     .open()?;
    /// log.append(&Event::new("deposited", json!(5)))?;
    /// log.append(&Event::new("withdrawn", json!(2)))?;
    /// log.refresh_all()?;
    /// assert_eq!(*log.view::<Option<u64>>("last_deposit")?, Some(0));
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn view_with_seq<S>(self, name: &str, reducer: ReduceSeqFn<S>) -> Self
    where
        S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
    {
        self.register(name, |dir| View::with_seq(name, reducer, dir))
    }

    /// Registers a view of typed events: its reducer takes your own event
    /// type `E` (an enum with `#[serde(tag = "type", content = "data")]`),
    /// which each line is decoded into directly; see [`View::typed`] for
    /// how event types that `E` does not name are treated. Otherwise the
    /// same as [`view`](Self::view).
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::EventLog;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// #[serde(tag = "type", content = "data", rename_all = "snake_case")]
    /// enum Ledger {
    ///     Deposited { amount: i64 },
    ///     Withdrawn { amount: i64 },
    /// }
    ///
    /// fn balance(balance: i64, event: &Ledger) -> i64 {
    ///     match event {
    ///         Ledger::Deposited { amount } => balance + amount,
    ///         Ledger::Withdrawn { amount } => balance - amount,
    ///     }
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::builder(dir.path()).typed_view("balance", balance).open()?;
    /// log.append_typed(&Ledger::Deposited { amount: 10 })?;
    /// log.refresh_all()?;
    /// assert_eq!(*log.view::<i64>("balance")?, 10);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn typed_view<S, E>(self, name: &str, reducer: TypedReduceFn<S, E>) -> Self
    where
        S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
        E: DeserializeOwned + 'static,
    {
        self.register(name, |dir| View::typed(name, reducer, dir))
    }

    /// Registers a typed view whose reducer also gets each event's sequence
    /// number; otherwise the same as [`typed_view`](Self::typed_view).
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::EventLog;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// #[serde(tag = "type", content = "data")]
    /// enum Doc { Edited(String) }
    ///
    /// fn edits(mut seqs: Vec<u64>, seq: u64, _: &Doc) -> Vec<u64> {
    ///     seqs.push(seq);
    ///     seqs
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::builder(dir.path()).typed_view_with_seq("edits", edits).open()?;
    /// log.append_typed(&Doc::Edited("a".into()))?;
    /// log.refresh_all()?;
    /// assert_eq!(*log.view::<Vec<u64>>("edits")?, [0]);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn typed_view_with_seq<S, E>(self, name: &str, reducer: TypedReduceSeqFn<S, E>) -> Self
    where
        S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
        E: DeserializeOwned + 'static,
    {
        self.register(name, |dir| View::typed_with_seq(name, reducer, dir))
    }

    /// Sets the version of the view registered as `name` (see
    /// [`View::with_version`]): bump it whenever you change the view's
    /// reducer or state, and its old snapshot is rebuilt from the log
    /// instead of being loaded. Call it after registering the view; a name
    /// not registered is an error of [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    /// fn count_pings(n: u64, e: &Event) -> u64 { n + u64::from(e.event_type == "ping") }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// {
    ///     let mut log = EventLog::builder(dir.path()).view("count", count).open()?;
    ///     log.append(&Event::new("ping", json!(null)))?;
    ///     log.append(&Event::new("pong", json!(null)))?;
    ///     log.refresh_all()?; // the snapshot says 2
    /// }
    /// // The reducer changed its meaning: version 1 rebuilds.
    /// let mut log = EventLog::builder(dir.path())
    ///     .view("count", count_pings)
    ///     .view_version("count", 1)
    ///     .open()?;
    /// log.refresh_all()?;
    /// assert_eq!(*log.view::<u64>("count")?, 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn view_version(mut self, name: &str, version: u32) -> Self {
        match self.views.iter_mut().find(|view| view.name() == name) {
            Some(view) => view.set_version(version),
            None => self.refuse_option(name, "view_version"),
        }
        self
    }

    /// Makes the typed view registered as `name` strict (see
    /// [`View::strict`]): an event type its enum does not name is an error
    /// instead of being skipped. A name not registered, or not of a typed
    /// view, is an error of [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Error, Event, EventLog};
    /// use serde::{Deserialize, Serialize};
    /// use serde_json::json;
    ///
    /// #[derive(Serialize, Deserialize)]
    /// #[serde(tag = "type", content = "data")]
    /// enum Known { Ping }
    /// fn count(n: u64, _: &Known) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// EventLog::open(dir.path())?.append(&Event::new("Pong", json!(null)))?;
    /// let mut log = EventLog::builder(dir.path()).typed_view("count", count).strict_view("count").open()?;
    /// assert!(matches!(log.refresh_all(), Err(Error::Corrupt { .. })));
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn strict_view(mut self, name: &str) -> Self {
        match self
            .views
            .iter_mut()
            .find(|view| view.name() == name)
            .map(|view| view.make_strict())
        {
            Some(true) => {}
            Some(false) => {
                if self.error.is_none() {
                    self.error = Some(Error::InvalidConfig {
                        reason: format!(
                            "strict_view({name:?}): the view is not a typed view, and a view of \
                             Events sees every event type"
                        ),
                    });
                }
            }
            None => self.refuse_option(name, "strict_view"),
        }
        self
    }

    /// Reads every event through `upcasters` (see [`Upcasters`]): reducers,
    /// [`read_full`](EventLog::read_full), readers from
    /// [`reader`](EventLog::reader) and rebuilds all see today's shapes,
    /// and new events are written with their types' current versions.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog, Upcasters};
    /// use serde_json::{Value, json};
    ///
    /// fn add_currency(mut data: Value) -> Value {
    ///     data["currency"] = json!("EUR");
    ///     data
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// EventLog::open(dir.path())?.append(&Event::new("paid", json!({"amount": 5})))?;
    /// let upcasters = Upcasters::new().upcast("paid", 1, "paid", add_currency);
    /// let mut log = EventLog::builder(dir.path()).upcasters(upcasters).open()?;
    /// log.append(&Event::new("paid", json!({"amount": 7, "currency": "USD"})))?; // written at version 2
    /// let data: Vec<Value> = log.read_full()?.map(|e| e.map(|(e, _)| e.data)).collect::<Result<_, _>>()?;
    /// assert_eq!(data, [json!({"amount": 5, "currency": "EUR"}), json!({"amount": 7, "currency": "USD"})]);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn upcasters(mut self, upcasters: Upcasters) -> Self {
        if let Err(e) = upcasters.check()
            && self.error.is_none()
        {
            self.error = Some(e);
        }
        self.upcasters = Some(Arc::new(upcasters));
        self
    }

    /// Records that an option names a view that is not registered.
    fn refuse_option(&mut self, name: &str, option: &str) {
        if self.error.is_none() {
            self.error = Some(Error::InvalidConfig {
                reason: format!(
                    "{option}({name:?}): no view of that name is registered before it (register \
                     the view first)"
                ),
            });
        }
    }

    /// Registers the view that `make` creates in the snapshot directory.
    fn register<S>(mut self, name: &str, make: impl FnOnce(PathBuf) -> Result<View<S>>) -> Self
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
        match make(self.dir.join(VIEWS_DIR)) {
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

        let paths = Paths::new(dir);
        durable::create_dir_all(&paths.views)?;
        durable::sweep_tmp(&paths.views, SNAPSHOT_SUFFIX)?;
        durable::sweep_tmp(&paths.dir, rotation::INTENT_FILE)?;
        durable::sweep_tmp(&paths.dir, INDEX_FILE)?;
        durable::sweep_tmp(&paths.dir, LOG_FILE)?;

        let file = durable::open_append(&paths.log)?;
        let mut history = open_history(paths, &file, history::new_id())?;
        history.upcasters = self.upcasters.filter(|u| !u.is_empty());
        let notifier = Notifier::new(history.next_seq);
        history.attach(Outlet::open(&history.paths.dir, Arc::clone(&notifier)));

        let mut log = EventLog {
            history,
            file,
            max_log_size: self.max_log_size,
            views: self.views,
            _lock: lock,
            notifier,
            line: Vec::new(),
            checked_len: 0,
        };
        for view in &mut log.views {
            view.load(&log.history)?;
        }
        if log.needs_rotation()
            && let Err(e) = log.auto_rotate()
        {
            ::log::warn!(
                "eventfold: automatic rotation of {} on open failed, will retry on the next append: {e}",
                log.history.paths.log.display()
            );
        }
        Ok(log)
    }
}

/// What every open of the files does before it reads the history: an
/// interrupted rotation is completed or undone, the archive's index made
/// to cover the archive, the active log (open as `file`) checked against
/// what its writer acknowledged, then its torn tail repaired, and the
/// history read from them, every line past what was acknowledged checked.
///
/// Whatever refuses the files is found before the repair writes: the
/// history is read first from the lines it keeps that end in a newline.
fn open_history(paths: Paths, file: &File, id: u64) -> Result<History> {
    rotation::recover(&paths)?;
    let archive = History::open_archive(&paths)?;
    let found = file.metadata().at(&paths.log)?.len();
    let next = tail::next_open(&paths.log, 0, found)?;
    let kept = (found, next.repaired_len());
    let acked = publish::check_kept(&paths.dir, &paths.log, archive.1.events(), kept)?;
    let whole = next.whole_end();
    let history = History::open(paths.clone(), whole, archive.clone(), id)?;
    if let Some(acked) = acked.filter(|&acked| acked < whole) {
        history.check_lines_from(acked)?;
    }
    let len = tail::repair(file, &paths.log, &paths.torn)?;
    if len == whole {
        return Ok(history);
    }
    // A last event whose newline was added: read again with it.
    let history = History::open(paths, len, archive, id)?;
    if let Some(acked) = acked.filter(|&acked| acked < len) {
        history.check_lines_from(acked)?;
    }
    Ok(history)
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
            upcasters: None,
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
    /// assert_eq!(second, 40); // {"type":"a","data":null,"ts":1,"seq":0} and its newline
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
        self.history.check_usable()?;
        let mut line = mem::take(&mut self.line);
        line.clear();
        // The event is checked and serialized first: one that cannot be
        // stored changes nothing, not even by rotating.
        let result = event
            .write_line(
                &mut line,
                self.history.next_seq,
                self.history.version_of(&event.event_type),
            )
            .and_then(|()| {
                self.auto_rotate()?;
                self.write_synced(&line, 1)
            });
        self.line = line;
        result
    }

    /// Appends a typed event (see [`Event::from_typed`]: any value that
    /// serializes as `{"type": ..., "data": ...}`, such as an enum with
    /// `#[serde(tag = "type", content = "data")]`) durably, as
    /// [`append`](Self::append) does; returns its sequence number.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::EventLog;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// #[serde(tag = "type", content = "data", rename_all = "snake_case")]
    /// enum Todo {
    ///     Added { text: String },
    ///     Completed { id: u64 },
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// assert_eq!(log.append_typed(&Todo::Added { text: "buy milk".into() })?, 0);
    /// let (event, _) = log.read_full()?.next().expect("one event")?;
    /// assert_eq!(event.event_type, "added");
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`Event::from_typed`] (nothing is written), then as for
    /// [`append`](Self::append). `E` must also be `Deserialize`: the
    /// event is decoded again from what would be stored, so that nothing
    /// that reads back differently is written.
    pub fn append_typed<E: Serialize + DeserializeOwned>(&mut self, event: &E) -> Result<u64> {
        self.append(&Event::from_typed(event)?)
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
    /// // each line is {"type":"n","data":N,"ts":1,"seq":N} and its newline
    /// assert_eq!(offsets, [0, 37, 74]);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`append`](Self::append). If an event cannot be serialized,
    /// nothing of the batch is written.
    pub fn append_batch(&mut self, events: &[Event]) -> Result<Vec<u64>> {
        self.history.check_usable()?;
        self.append_events(events)
    }

    /// Appends `events` only if the next sequence number is still
    /// `expected_next_seq`, that is, if nothing was appended since the
    /// caller read the log up to there; returns the offset of each event's
    /// line, as [`append_batch`](Self::append_batch) does. The events get
    /// the sequence numbers from `expected_next_seq` on.
    ///
    /// This makes "read the state, decide, append" safe however many
    /// threads share the log (through an `Arc<Mutex<EventLog>>`): a
    /// decision taken on a state that another append has overtaken is
    /// refused with [`Error::Conflict`], and nothing is written. Read the
    /// state again (refresh the view) and decide again.
    ///
    /// # Examples
    ///
    /// Withdraw only what the balance allows:
    ///
    /// ```
    /// use eventfold::{Error, Event, EventLog};
    /// use serde_json::json;
    ///
    /// fn balance(b: i64, e: &Event) -> i64 {
    ///     b + e.data["amount"].as_i64().unwrap_or(0)
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::builder(dir.path()).view::<i64>("balance", balance).open()?;
    /// log.append(&Event::new("deposited", json!({"amount": 10})))?;
    ///
    /// log.refresh_all()?;
    /// let seen = log.next_seq(); // the state below is the fold of events before `seen`
    /// assert!(*log.view::<i64>("balance")? >= 7);
    ///
    /// // Meanwhile another request withdraws 5.
    /// log.append(&Event::new("withdrawn", json!({"amount": -5})))?;
    ///
    /// let late = log.append_if(seen, &[Event::new("withdrawn", json!({"amount": -7}))]);
    /// assert!(matches!(late, Err(Error::Conflict { expected: 1, actual: 2 })));
    /// log.refresh_all()?;
    /// assert_eq!(*log.view::<i64>("balance")?, 5); // the 7 were not withdrawn
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// ## Exactly once, when the first attempt's outcome is unknown
    ///
    /// A crash (of the process, or of the connection to it) after the
    /// sync but before the caller saw `Ok` leaves the caller unsure whether
    /// its event is in the log. Give the event an [`id`](Event::id), and
    /// keep the position it was meant for: retrying with `append_if` at
    /// that position either appends it (the first attempt did not land) or
    /// fails with a conflict, and then the event at that position tells
    /// whether it is ours.
    ///
    /// ```
    /// use eventfold::{Error, Event, EventLog};
    /// use serde_json::json;
    ///
    /// /// Appends `event` at `seq` exactly once, however often it is called.
    /// fn append_once(log: &mut EventLog, seq: u64, event: &Event) -> eventfold::Result<bool> {
    ///     match log.append_if(seq, std::slice::from_ref(event)) {
    ///         Ok(_) => Ok(true),
    ///         Err(Error::Conflict { .. }) => {
    ///             let (_, there, _) = log.read_from_seq(seq)?.next().expect("seq < next_seq")?;
    ///             if there.id == event.id {
    ///                 Ok(true) // the earlier attempt landed
    ///             } else {
    ///                 Ok(false) // someone else's event is there: decide again
    ///             }
    ///         }
    ///         Err(e) => Err(e),
    ///     }
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// let event = Event::new("paid", json!({"invoice": 42})).with_id("pay-42-1");
    /// let seq = log.next_seq();
    /// log.append_if(seq, std::slice::from_ref(&event))?; // its Ok was lost
    /// assert!(append_once(&mut log, seq, &event)?); // the retry sees it landed
    /// assert_eq!(log.next_seq(), 1); // and the event is there once
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`], with the expected and the actual next sequence
    /// numbers, when they differ: nothing is written. Otherwise as for
    /// [`append_batch`](Self::append_batch).
    pub fn append_if(&mut self, expected_next_seq: u64, events: &[Event]) -> Result<Vec<u64>> {
        self.history.check_usable()?;
        if expected_next_seq != self.history.next_seq {
            return Err(Error::Conflict {
                expected: expected_next_seq,
                actual: self.history.next_seq,
            });
        }
        self.append_events(events)
    }

    /// Appends stored lines as they are, byte for byte, only if the next
    /// sequence number is still `expected_next_seq`; returns the offset of
    /// each line, as [`append_if`](Self::append_if) does. The lines get
    /// the sequence numbers from `expected_next_seq` on, with one write
    /// and one sync.
    ///
    /// This is for copying a history from another copy of it: a replica,
    /// a stream, a backup. The lines of
    /// [`ReadSeq::lines`](crate::ReadSeq::lines) of one log appended to
    /// another give the same lines, with the same line hashes, sequence
    /// numbers and schema versions (`"v"`), which appending their events
    /// would not: each event would be written at this log's versions, and
    /// a line written before sequence numbers would get one. So a copy
    /// made this way is the original, line for line, and a snapshot of
    /// one matches the other.
    ///
    /// Each line is given without its newline, and checked first as a
    /// reader of the log checks the line at its place: one line of
    /// eventfold's format (a JSON object with a string `type`, any `data`,
    /// an integer `ts`, and `id`, `meta`, `v` if present), a `seq` field
    /// (if it has one) that says its sequence number, at most 256 MiB. A
    /// line without `seq` (written before sequence numbers existed) is
    /// kept without: its place gives its number, as in the original.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let (original, copy) = (dir.path().join("original"), dir.path().join("copy"));
    /// let mut original = EventLog::open(&original)?;
    /// original.append(&Event::new("opened", json!({"account": 7})))?;
    /// original.append(&Event::new("paid", json!(30)))?;
    ///
    /// let mut copy = EventLog::open(&copy)?;
    /// let lines: Vec<(u64, String)> = original.read_from_seq(0)?.lines().collect::<Result<_, _>>()?;
    /// let texts: Vec<&str> = lines.iter().map(|(_, line)| line.as_str()).collect();
    /// copy.append_lines(0, &texts)?;
    /// let copied: Vec<(u64, String)> = copy.read_from_seq(0)?.lines().collect::<Result<_, _>>()?;
    /// assert_eq!(copied, lines);
    ///
    /// // A line that is not an event at its place is refused, and nothing is written.
    /// assert!(copy.append_lines(2, &[r#"{"type":"paid","data":1,"ts":1,"seq":5}"#]).is_err());
    /// assert_eq!(copy.next_seq(), 2);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when the next sequence number is not
    /// `expected_next_seq`, and [`Error::InvalidLine`] for a line that is
    /// not an event at its place: nothing is written. Otherwise as for
    /// [`append_batch`](Self::append_batch).
    pub fn append_lines<L: AsRef<[u8]>>(
        &mut self,
        expected_next_seq: u64,
        lines: &[L],
    ) -> Result<Vec<u64>> {
        self.history.check_usable()?;
        if expected_next_seq != self.history.next_seq {
            return Err(Error::Conflict {
                expected: expected_next_seq,
                actual: self.history.next_seq,
            });
        }
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let mut buf = mem::take(&mut self.line);
        buf.clear();
        let mut offsets = Vec::with_capacity(lines.len());
        // Every line is checked before anything changes, rotation included.
        let checked = (expected_next_seq..)
            .zip(lines)
            .try_for_each(|(seq, line)| {
                let line = line.as_ref();
                crate::lines::check_line(line, seq)?;
                offsets.push(buf.len() as u64);
                buf.extend_from_slice(line);
                buf.push(b'\n');
                Ok(())
            });
        let result = checked.and_then(|()| {
            self.auto_rotate()?;
            self.write_synced(&buf, lines.len() as u64)
        });
        self.line = buf;
        let start = result?;
        offsets.iter_mut().for_each(|offset| *offset += start);
        Ok(offsets)
    }

    /// The work of [`append_batch`](Self::append_batch).
    fn append_events(&mut self, events: &[Event]) -> Result<Vec<u64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut lines = mem::take(&mut self.line);
        lines.clear();
        // Offsets within the batch first; the whole batch is checked and
        // serialized before anything changes, rotation included.
        let mut offsets = Vec::with_capacity(events.len());
        let first_seq = self.history.next_seq;
        let serialized = (first_seq..).zip(events).try_for_each(|(seq, event)| {
            offsets.push(lines.len() as u64);
            event.write_line(&mut lines, seq, self.history.version_of(&event.event_type))
        });
        let result = serialized.and_then(|()| {
            self.auto_rotate()?;
            self.write_synced(&lines, events.len() as u64)
        });
        self.line = lines;
        let start = result?;
        offsets.iter_mut().for_each(|offset| *offset += start);
        Ok(offsets)
    }

    /// A group commit: the appends of `group`, in order, with one write and
    /// one sync; each gets the sequence numbers of its events, or its own
    /// error. An append with an expected next sequence number (an
    /// [`append_if`](Self::append_if)) is checked against the appends
    /// before it in the group. When the write or the sync fails, every
    /// append of the group that was to be written fails with it, and none
    /// of their events is in the log.
    pub(crate) fn append_group(
        &mut self,
        group: &[(Option<u64>, &Unnumbered)],
    ) -> Vec<Result<Range<u64>>> {
        let failed = |e: &Error| group.iter().map(|_| Err(e.copy())).collect();
        if let Err(e) = self
            .history
            .check_usable()
            .and_then(|()| self.auto_rotate())
        {
            return failed(&e);
        }
        let mut lines = mem::take(&mut self.line);
        lines.clear();
        let mut next = self.history.next_seq;
        let mut results: Vec<Result<Range<u64>>> = group
            .iter()
            .map(|(expected, events)| match expected {
                Some(expected) if *expected != next => Err(Error::Conflict {
                    expected: *expected,
                    actual: next,
                }),
                _ => {
                    events.write_numbered(&mut lines, next)?;
                    let range = next..next + events.len();
                    next = range.end;
                    Ok(range)
                }
            })
            .collect();
        let start = self.history.next_seq;
        let events = next - start;
        if events > 0
            && let Err(e) = self.write_synced(&lines, events)
        {
            // Nothing of the group is in the log: a conflict with an append
            // of the group is no conflict, and fails as the write did.
            for result in &mut results {
                let undone = match result {
                    Ok(_) => true,
                    Err(Error::Conflict { actual, .. }) => *actual != start,
                    Err(_) => false,
                };
                if undone {
                    *result = Err(e.copy());
                }
            }
        }
        self.line = lines;
        results
    }

    /// Writes and syncs `events` complete lines; poisons the log on
    /// failure. Returns the offset where they start.
    fn write_synced(&mut self, lines: &[u8], events: u64) -> Result<u64> {
        let path = &self.history.paths.log;
        let len = self.history.len;
        let written = self
            .file
            .write_all(lines)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Take back whatever part of the lines reached the file, so that
            // an append that failed is not in the log. If even that fails,
            // `recover` cuts the file back to the acknowledged length (a
            // reopen cuts a partial line; a complete one may remain). Either
            // way the log refuses writes until recovered or reopened.
            let rolled_back = self.file.set_len(len).and_then(|()| self.file.sync_all());
            if let Err(undo) = rolled_back {
                ::log::warn!(
                    "eventfold: could not cut the failed write off {}: {undo}",
                    path.display()
                );
            }
            let e = Error::io(path, e);
            self.history.poison(&e);
            return Err(e);
        }
        if self.checked_len == len {
            self.checked_len += lines.len() as u64;
        }
        self.history.appended(lines.len() as u64, events);
        Ok(len)
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
        let history = &self.history;
        if !history.is_line_start(offset)? {
            return Err(Error::InvalidOffset {
                path: history.paths.log.clone(),
                offset,
                len: history.len,
            });
        }
        Ok(ReadFrom::new(history.active_lines(offset, None)?))
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
        let history = &self.history;
        let active = history.active_lines(0, Some(history.base_seq()))?;
        Ok(ReadFull::new(history.archive_lines()?, active))
    }

    /// Reads the history from the event with sequence number `seq` on,
    /// through the archive and the active log; yields `(seq, event,
    /// line_hash)`.
    ///
    /// Nothing before the event is decompressed or parsed: in the archive,
    /// reading starts at the frame that holds it (found in the archive
    /// index), so that reading the last events costs the same on a long
    /// history as on a short one, up to one frame; in the active log, the
    /// event is found by bisecting on the lines' sequence numbers (a few
    /// reads of one line each). `seq` may be [`next_seq`](Self::next_seq):
    /// the iterator is then empty, a cursor that is up to date.
    ///
    /// # Examples
    ///
    /// A subscriber whose cursor is a sequence number, which stays right
    /// across rotations:
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// for n in 0..5 {
    ///     log.append(&Event::new("n", json!(n)))?;
    /// }
    /// log.rotate()?; // events 0 to 4 move into the archive
    /// log.append(&Event::new("n", json!(5)))?;
    ///
    /// let mut cursor = 3;
    /// for item in log.read_from_seq(cursor)? {
    ///     let (seq, event, _hash) = item?;
    ///     assert_eq!(event.data, json!(seq));
    ///     cursor = seq + 1;
    /// }
    /// assert_eq!(cursor, log.next_seq());
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSeq`] if `seq` is past [`next_seq`](Self::next_seq);
    /// [`Error::Io`] if a file cannot be opened. Each item is an
    /// [`Error::Corrupt`] if a line is not a valid event or its sequence
    /// number is not the one its place gives it; the iterator ends after
    /// an error.
    pub fn read_from_seq(&self, seq: u64) -> Result<ReadSeq> {
        let (archive, active) = self.history.lines_from_seq(seq)?;
        Ok(ReadSeq::new(seq, archive, active))
    }

    /// The sequence number the next appended event gets: the number of
    /// events in the whole history. It never goes back, and survives
    /// rotations, crashes and reopening; the event just appended is
    /// `next_seq() - 1`.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// assert_eq!(log.next_seq(), 0);
    /// log.append(&Event::new("a", json!(null)))?;
    /// log.append_batch(&[Event::new("b", json!(null)), Event::new("c", json!(null))])?;
    /// log.rotate()?;
    /// assert_eq!(log.next_seq(), 3);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn next_seq(&self) -> u64 {
        self.history.next_seq
    }

    /// The state after folding the history through `reducer` from the
    /// first event up to and including event `seq`: the state as it was
    /// back then. Reads the history from the start; views are not used.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// fn sum(n: i64, e: &Event) -> i64 { n + e.data.as_i64().unwrap_or(0) }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// for n in [5, 7, 11] {
    ///     log.append(&Event::new("add", json!(n)))?;
    /// }
    /// assert_eq!(log.state_at(sum, 1)?, 12);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSeq`] if there is no event `seq` yet; otherwise as
    /// for [`read_from_seq`](Self::read_from_seq).
    pub fn state_at<S: Default>(&self, reducer: ReduceFn<S>, seq: u64) -> Result<S> {
        if seq >= self.history.next_seq {
            return Err(Error::InvalidSeq {
                seq,
                next_seq: self.history.next_seq,
            });
        }
        self.read_from_seq(0)?.fold_through(reducer, seq)
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
        self.history.check_usable()?;
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
        &self.history.paths.dir
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
    /// assert_eq!(log.active_len(), 40);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn active_len(&self) -> u64 {
        self.history.len
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
        self.history.is_poisoned()
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
            Ok(()) => {}
            Err(e) => {
                if !self.history.is_poisoned() {
                    self.history.poison(e);
                }
            }
        }
        result
    }

    /// The file work of [`recover`](Self::recover). The history is
    /// replaced only when all of it succeeds.
    fn recover_files(&mut self) -> Result<()> {
        let paths = self.history.paths.clone();
        durable::sweep_tmp(&paths.views, SNAPSHOT_SUFFIX)?;
        durable::sweep_tmp(&paths.dir, rotation::INTENT_FILE)?;
        durable::sweep_tmp(&paths.dir, INDEX_FILE)?;
        durable::sweep_tmp(&paths.dir, LOG_FILE)?;
        if !paths.dir.join(rotation::INTENT_FILE).exists() {
            // No rotation was under way: anything past the acknowledged
            // length was written by a call that failed.
            tail::cut_unacknowledged(&paths.log, self.history.len, &paths.torn)?;
        }
        let file = durable::open_append(&paths.log)?;
        // Views hold positions in the files as they were: a new identity
        // makes each reload its (checked) snapshot on its next refresh,
        // showing its present state until then.
        let mut history = open_history(paths, &file, history::new_id())?;
        history.upcasters = self.history.upcasters.clone();
        if history.next_seq < self.history.next_seq {
            return Err(Error::corrupt(
                &history.paths.log,
                history.len,
                format!(
                    "the history ends before event {}, but {} events were acknowledged: \
                     another program removed some (restore the files from a backup)",
                    history.next_seq, self.history.next_seq
                ),
            ));
        }
        let outlet = self.history.detach();
        self.history = history;
        if let Some(outlet) = outlet {
            self.history.attach(outlet);
        }
        self.file = file;
        self.checked_len = 0;
        Ok(())
    }

    /// Moves the active log into the compressed archive. The guide's
    /// crash-safety section describes the protocol step by step.
    ///
    /// Step by step: every registered view is refreshed (so each snapshot
    /// has consumed the whole active log); the active log is compressed as
    /// zstd frames of about 1 MiB of lines each and appended to
    /// `archive.jsonl.zst`, which is created on the first rotation and
    /// synced; the frames are recorded in the archive index,
    /// `archive.index.jsonl`; `app.jsonl` is truncated to
    /// zero bytes; every snapshot's offset is reset to 0. An intent record
    /// makes each step recoverable: after a crash, the next open finishes
    /// or undoes the rotation, so that no event is lost or duplicated.
    /// Sequence numbers do not change.
    ///
    /// Views' states do not change. A snapshot that does not reflect the
    /// whole active log (typically that of a view not registered with this
    /// log) cannot follow its events into the archive: it is deleted, and
    /// that view replays the archive when next used.
    ///
    /// The call blocks until everything is on disk. With an empty active
    /// log it does nothing.
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
    /// log.rotate()?;
    /// assert_eq!(std::fs::metadata(dir.path().join("app.jsonl"))?.len(), 0);
    /// assert!(dir.path().join("archive.jsonl.zst").exists());
    /// assert_eq!(*log.view::<u64>("count")?, 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Any error of [`refresh_all`](EventLog::refresh_all), and
    /// [`Error::Corrupt`] if a line of the active log is not a valid event
    /// or another program changed the file: these leave the files as they
    /// were. An [`Error::Io`] once the archive is being
    /// written leaves the rotation half done on disk: the log is then
    /// [poisoned](Error::Poisoned) and [`recover`](EventLog::recover) or the
    /// next open completes or undoes it.
    pub fn rotate(&mut self) -> Result<()> {
        self.history.check_usable()?;
        if self.history.len == 0 {
            return Ok(());
        }
        self.refresh_all()?;
        self.save_views()?;
        rotation::rotate(&mut self.history, &mut self.file, &mut self.checked_len)?;
        let (id, archive_len) = (self.history.id, self.history.archive_len);
        for view in &mut self.views {
            view.rotated(id, archive_len);
        }
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
                self.dir().display()
            );
        }
        rotated
    }

    fn needs_rotation(&self) -> bool {
        self.max_log_size > 0 && self.history.len > self.max_log_size
    }

    fn view_index(&self, name: &str) -> Result<usize> {
        self.views
            .iter()
            .position(|v| v.name() == name)
            .ok_or_else(|| Error::UnknownView {
                name: name.to_owned(),
            })
    }

    /// Lends the registry to `f` together with the history, which views
    /// read from.
    fn with_views<T>(
        &mut self,
        f: impl FnOnce(&mut [Box<dyn AnyView>], &History) -> Result<T>,
    ) -> Result<T> {
        f(&mut self.views, &self.history)
    }
}

impl EventLog {
    /// A read-only reader of this log's directory that the log wakes when
    /// it acknowledges an append: [`EventReader::wait_for`] and
    /// [`EventReader::follow`] then need no polling. It can move to
    /// another thread, and outlive the log (it then waits as a reader in
    /// another process does).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// let reader = log.reader();
    /// let waiter = std::thread::spawn(move || reader.wait_for(0, Duration::from_secs(10)));
    /// log.append(&Event::new("hello", json!(1)))?;
    /// assert_eq!(waiter.join().unwrap()?, 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn reader(&self) -> EventReader {
        EventReader::with_notifier(self.dir(), Some(Arc::clone(&self.notifier)))
            .upcast_by(self.history.upcasters.clone())
    }
}

impl Source for EventLog {
    fn history(&self) -> Result<HistoryRef<'_>> {
        Ok(HistoryRef::Borrowed(&self.history))
    }
}

impl Drop for EventLog {
    /// Saves the snapshots that are behind their views' states (see
    /// [`EventLog::save_views`]). Errors are logged as warnings: a snapshot
    /// is a cache, and nothing is lost without it.
    fn drop(&mut self) {
        if !self.is_poisoned()
            && let Err(e) = self.save_views()
        {
            ::log::warn!(
                "eventfold: saving snapshots when closing {} failed: {e}",
                self.dir().display()
            );
        }
        self.notifier.close();
    }
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("dir", &self.dir())
            .field("active_len", &self.history.len)
            .field("archive_len", &self.history.archive_len)
            .field("next_seq", &self.history.next_seq)
            .field("max_log_size", &self.max_log_size)
            .field(
                "views",
                &self.views.iter().map(|v| v.name()).collect::<Vec<_>>(),
            )
            .field("poisoned", &self.history.poisoned)
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
