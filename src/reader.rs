//! Reading a data directory beside its writer, in any process: the
//! read-only [`EventReader`], and following the log as it grows
//! ([`Follow`]).
//!
//! A reader takes no lock and opens every file read-only. Each look at the
//! files (an *observation*) gives a consistent history: the archive's
//! frames as the index records them, then the active log up to the end
//! the writer last published (see [`publish`](crate::publish)), so that a
//! reader never sees a byte the writer has not synced. The writer changes
//! the files while a reader looks, in a known order (see
//! [`rotation`](crate::rotation)); an observation that catches them
//! between two steps is recognized and made again:
//!
//! - a rotation's record present: the history is what recovery would make
//!   of the files (rolled back while `app.jsonl` still holds the rotated
//!   bytes, rolled forward once it is empty), and nothing is written;
//! - the active log's first event is not the one after the archive's last
//!   (the index was read before a rotation, `app.jsonl` after it, or the
//!   other way round), or the published record describes another active
//!   log than the one read: observed again;
//! - an observation that would show fewer events than an earlier one of
//!   the same reader: observed again (and an error if the history really
//!   shrank: restored from an older backup, say).
//!
//! Reading events goes on across rotations: when the active log is emptied
//! under an iterator, it observes the files again and resumes at the next
//! sequence number, now in the archive.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::event::Event;
use crate::history::{self, History, HistoryRef, Paths, Source};
use crate::index::{self, Index};
use crate::lines::{ActiveLines, ArchiveLines, ReadSeq, Reopen};
use crate::publish::{self, COMMITTED_FILE, Notifier, Reading};
use crate::rotation;
use crate::tail;
use crate::upcast::Upcasters;

/// How many times an observation is made again when the files changed
/// while it looked, before the last error is returned.
const ATTEMPTS: u32 = 40;
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(20);
/// How often a reader without file-system notification looks at the
/// files while it waits.
const POLL: Duration = Duration::from_millis(10);
/// How often a reader with notification looks anyway, in case a
/// notification was lost.
const RECHECK: Duration = Duration::from_millis(250);

/// A read-only view of a data directory, usable beside a live writer in
/// another process (or this one), and by any number of readers at once.
///
/// A reader takes no lock and writes nothing, not even a view's snapshot:
/// a directory with no writer, a read-only directory or one owned by
/// another user all work. It is cheap to clone, and `Send` and `Sync`:
/// clones share what they know of the files.
///
/// Every call looks at the files afresh. Reading by sequence number, a
/// reader sees a prefix of the history that only grows: every event the
/// writer acknowledged before the call (none it has not), each once, in
/// order, whatever the writer does meanwhile (appending, rotating,
/// crashing and recovering). Views can be folded from a reader, in
/// memory: [`View::refresh`](crate::View::refresh) takes a reader as it
/// takes a log, and loads the writer's snapshot when it is usable.
///
/// # Examples
///
/// ```
/// use eventfold::{Event, EventLog, EventReader};
/// use serde_json::json;
///
/// # let dir = tempfile::tempdir()?;
/// let mut log = EventLog::open(dir.path())?;
/// let reader = EventReader::open(dir.path())?; // in any process
/// log.append(&Event::new("hello", json!(1)))?;
/// assert_eq!(reader.next_seq()?, 1);
/// let (seq, event, _hash) = reader.read_from_seq(0)?.next().unwrap()?;
/// assert_eq!((seq, event.event_type.as_str()), (0, "hello"));
/// # Ok::<(), eventfold::Error>(())
/// ```
#[derive(Clone)]
pub struct EventReader {
    inner: Arc<Inner>,
    /// What every event read goes through.
    upcasters: Option<Arc<Upcasters>>,
}

struct Inner {
    paths: Paths,
    /// Tells this reader's observations from any log's, for views.
    id: u64,
    /// The most events an observation showed: a later one never shows
    /// fewer.
    seen: AtomicU64,
    /// The writer's, when it is in this process: waiting needs no polling.
    notifier: Option<Arc<Notifier>>,
    /// The index as last read, with the hash of the file's bytes it was
    /// read from.
    index: Mutex<Option<(Index, u64)>>,
    /// File-system notification of changes in the directory, started by
    /// the first wait; `None` inside once it could not be.
    watch: Mutex<Option<Option<Arc<Watch>>>>,
}

impl fmt::Debug for EventReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventReader")
            .field("dir", &self.inner.paths.dir)
            .field("seen", &self.inner.seen.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl EventReader {
    /// Opens a reader on the data directory `dir`. Nothing is written or
    /// created, and no lock is taken: the directory need not have a
    /// writer, nor even an `app.jsonl` yet (the history is then empty).
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::EventReader;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let reader = EventReader::open(dir.path())?;
    /// assert_eq!(reader.next_seq()?, 0);
    /// assert_eq!(std::fs::read_dir(dir.path())?.count(), 0); // nothing created
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `dir` is not a directory that can be read.
    pub fn open(dir: impl AsRef<Path>) -> Result<EventReader> {
        let dir = dir.as_ref();
        let metadata = fs::metadata(dir).at(dir)?;
        if !metadata.is_dir() {
            return Err(Error::io(
                dir,
                io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        fs::read_dir(dir).at(dir)?;
        Ok(EventReader::with_notifier(dir, None))
    }

    /// A reader of `dir`, woken by `notifier` when the writer is in this
    /// process.
    pub(crate) fn with_notifier(dir: &Path, notifier: Option<Arc<Notifier>>) -> EventReader {
        EventReader {
            inner: Arc::new(Inner {
                paths: Paths::new(dir.to_path_buf()),
                id: history::new_id(),
                seen: AtomicU64::new(0),
                notifier,
                index: Mutex::new(None),
                watch: Mutex::new(None),
            }),
            upcasters: None,
        }
    }

    /// This reader, reading every event through `upcasters`: in today's
    /// shape, as the writer's [`EventLogBuilder::upcasters`] reads them.
    /// Give a reader the same upcasters as the writer, so that both fold
    /// the same events.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog, EventReader, Upcasters};
    /// use serde_json::{Value, json};
    ///
    /// fn add_unit(mut data: Value) -> Value {
    ///     data["unit"] = json!("celsius");
    ///     data
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// EventLog::open(dir.path())?.append(&Event::new("measured", json!({"value": 20})))?;
    /// let upcasters = Upcasters::new().upcast("measured", 1, "measured", add_unit);
    /// let reader = EventReader::open(dir.path())?.with_upcasters(upcasters)?;
    /// let (_, event, _) = reader.read_from_seq(0)?.next().expect("one event")?;
    /// assert_eq!(event.data, json!({"value": 20, "unit": "celsius"}));
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if a step of `upcasters` cannot stand.
    ///
    /// [`EventLogBuilder::upcasters`]: crate::EventLogBuilder::upcasters
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Result<EventReader> {
        upcasters.check()?;
        self.upcasters = Some(Arc::new(upcasters));
        Ok(self)
    }

    /// This reader with the writer's upcasters, shared.
    pub(crate) fn upcast_by(mut self, upcasters: Option<Arc<Upcasters>>) -> EventReader {
        self.upcasters = upcasters;
        self
    }

    /// The upcasters events are read through, if any.
    pub(crate) fn upcasters(&self) -> Option<&Upcasters> {
        self.upcasters.as_deref()
    }

    /// The data directory.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::EventReader;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let reader = EventReader::open(dir.path())?;
    /// assert_eq!(reader.dir(), dir.path());
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn dir(&self) -> &Path {
        &self.inner.paths.dir
    }

    /// The sequence number the next event will get: how many events the
    /// writer has acknowledged, now.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog, EventReader};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// let reader = EventReader::open(dir.path())?;
    /// log.append_batch(&[Event::new("a", json!(1)), Event::new("b", json!(2))])?;
    /// assert_eq!(reader.next_seq()?, 2);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if the files are damaged (naming the file and
    /// the byte offset), or do not hold events this reader already saw;
    /// [`Error::Io`] if one cannot be read.
    pub fn next_seq(&self) -> Result<u64> {
        Ok(self.observe()?.next_seq)
    }

    /// Reads the history from event `seq` on, up to the last event
    /// acknowledged now: yields `(seq, event, line_hash)` as
    /// [`EventLog::read_from_seq`](crate::EventLog::read_from_seq) does.
    /// A rotation while it reads does not disturb it.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog, EventReader};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// let reader = EventReader::open(dir.path())?;
    /// log.append_batch(&[Event::new("a", json!(1)), Event::new("b", json!(2))])?;
    /// log.rotate()?;
    /// log.append(&Event::new("c", json!(3)))?;
    /// let types: Vec<String> = reader
    ///     .read_from_seq(1)?
    ///     .map(|item| item.map(|(_, event, _)| event.event_type))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(types, ["b", "c"]);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSeq`] if `seq` is past the next sequence number;
    /// otherwise as for [`next_seq`](Self::next_seq). Each item is an
    /// [`Error::Corrupt`] for a damaged line; the iterator ends after an
    /// error.
    pub fn read_from_seq(&self, seq: u64) -> Result<ReadSeq> {
        let (archive_len, (archive, active)) = self.lines_from_seq(seq, None)?;
        let reopen = Reopening {
            reader: self.clone(),
            archive_len,
        };
        Ok(ReadSeq::new(seq, archive, active).reopening(Box::new(reopen)))
    }

    /// The lines from event `seq` on in a new observation, and the
    /// archive's length in it. Finding where `seq` is reads the files: if
    /// that fails because a rotation moved them meanwhile (the archive
    /// grew), the lines are looked for again. With `after`, an archive of
    /// that length means the files did not change since an error, which
    /// then stands (`None`).
    fn lines_from_seq(
        &self,
        seq: u64,
        mut after: Option<(u64, Error)>,
    ) -> Result<(u64, (Option<ArchiveLines>, ActiveLines))> {
        for _ in 0..ATTEMPTS {
            let history = self.observe()?;
            if let Some((archive_len, e)) = after.take()
                && history.archive_len == archive_len
            {
                return Err(e);
            }
            match history.lines_from_seq(seq) {
                Ok(lines) => return Ok((history.archive_len, lines)),
                Err(e @ Error::InvalidSeq { .. }) => return Err(e),
                Err(e) => after = Some((history.archive_len, e)),
            }
        }
        // The writer rotated again every time: give the last error.
        Err(after.map_or_else(
            || moving(&self.inner.paths.log, "the files kept changing".to_owned()),
            |(_, e)| e,
        ))
    }

    /// Folds the whole history, up to and including event `seq`, into a
    /// state, as [`EventLog::state_at`](crate::EventLog::state_at) does.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog, EventReader};
    /// use serde_json::json;
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append_batch(&[Event::new("a", json!(1)), Event::new("b", json!(2))])?;
    /// let reader = EventReader::open(dir.path())?;
    /// assert_eq!(reader.state_at(count, 0)?, 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSeq`] if there is no event `seq` yet; otherwise as
    /// for [`read_from_seq`](Self::read_from_seq).
    pub fn state_at<S: Default>(&self, reducer: crate::ReduceFn<S>, seq: u64) -> Result<S> {
        let next_seq = self.next_seq()?;
        if seq >= next_seq {
            return Err(Error::InvalidSeq { seq, next_seq });
        }
        self.read_from_seq(0)?.fold_through(reducer, seq)
    }

    /// Blocks until event `seq` exists (the next sequence number is past
    /// it) or `timeout` passes; returns the next sequence number then, so
    /// that a result `<= seq` means the time ran out. `Duration::MAX`
    /// waits for as long as it takes.
    ///
    /// Beside a writer in this process (a reader from
    /// [`EventLog::reader`](crate::EventLog::reader)), the writer wakes the
    /// waiter when it acknowledges an append. Beside a writer in another
    /// process, the reader is woken by file-system notification (inotify
    /// on Linux, through the `notify` crate), and looks at the files every
    /// 10 ms where there is none.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use eventfold::{Event, EventLog, EventReader};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// let reader = EventReader::open(dir.path())?;
    /// let waiter = std::thread::spawn(move || reader.wait_for(0, Duration::from_secs(10)));
    /// log.append(&Event::new("hello", json!(1)))?;
    /// assert_eq!(waiter.join().unwrap()?, 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`next_seq`](Self::next_seq).
    pub fn wait_for(&self, seq: u64, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now().checked_add(timeout);
        if let Some(notifier) = &self.inner.notifier
            && notifier.wait_past(seq, deadline).is_some()
        {
            // The files say the same, unless the writer could not update
            // its record: then wait as a reader in another process does.
            let next = self.next_seq()?;
            if next > seq || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(next);
            }
        }
        let watch = self.watch();
        loop {
            let seen = watch.as_ref().map(|w| w.changes());
            let next = self.next_seq()?;
            let now = Instant::now();
            if next > seq || deadline.is_some_and(|d| now >= d) {
                return Ok(next);
            }
            let slice = if watch.is_some() { RECHECK } else { POLL };
            let until = deadline.map_or(now + slice, |d| d.min(now + slice));
            match (&watch, seen) {
                (Some(watch), Some(seen)) => watch.wait_change(seen, until),
                _ => thread::sleep(until - now),
            }
        }
    }

    /// Follows the log from event `seq` on: an iterator that yields every
    /// event, `(seq, event)`, in order, and at the end of the history
    /// waits for the next one, for as long as the caller goes on (across
    /// rotations, and restarts of the writer).
    ///
    /// The iterator's [`next_seq`](Follow::next_seq) is its cursor. A
    /// follower that keeps its state and its cursor together (in one
    /// file, written atomically, or as the state of a view) processes each
    /// event exactly once, even across crashes: after a restart it follows
    /// again from the cursor it saved. Effects outside that state (sending
    /// mail, writing to another system) happen at least once: a crash
    /// after the effect and before the cursor is saved repeats the effect
    /// on restart, so make them idempotent (the event's sequence number,
    /// or its [`id`](Event::id), is a good key).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use eventfold::{Event, EventLog, EventReader};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// let reader = EventReader::open(dir.path())?;
    /// let follower = std::thread::spawn(move || {
    ///     let mut follow = reader.follow(0);
    ///     let mut seen = Vec::new();
    ///     while seen.len() < 3 {
    ///         let (seq, event) = follow.next().expect("follows forever")?;
    ///         seen.push((seq, event.event_type));
    ///     }
    ///     Ok::<_, eventfold::Error>(seen)
    /// });
    /// for name in ["a", "b", "c"] {
    ///     log.append(&Event::new(name, json!(null)))?;
    /// }
    /// let seen = follower.join().unwrap()?;
    /// assert_eq!(seen, [(0, "a".to_owned()), (1, "b".to_owned()), (2, "c".to_owned())]);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn follow(&self, seq: u64) -> Follow {
        Follow {
            reader: self.clone(),
            next: seq,
            batch: None,
        }
    }

    /// The next sequence number as the writer in this process last
    /// published it, without looking at the files; for a reader of the
    /// writer's own.
    pub(crate) fn published_next_seq(&self) -> u64 {
        match &self.inner.notifier {
            Some(notifier) => notifier.next_seq(),
            None => self.inner.seen.load(Ordering::Relaxed),
        }
    }

    /// The file-system watch of the directory, started on first use.
    fn watch(&self) -> Option<Arc<Watch>> {
        let mut watch = self
            .inner
            .watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        watch
            .get_or_insert_with(|| match Watch::start(&self.inner.paths.dir) {
                Ok(watch) => Some(Arc::new(watch)),
                Err(e) => {
                    ::log::debug!(
                        "eventfold: no file-system notification for {} ({e}); polling",
                        self.inner.paths.dir.display()
                    );
                    None
                }
            })
            .clone()
    }

    /// Looks at the files: a consistent history, no shorter than any this
    /// reader saw before. See the module docs.
    pub(crate) fn observe(&self) -> Result<Box<History>> {
        let mut backoff = Duration::from_micros(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            // A record still torn after many looks is not being written:
            // it was damaged, and is taken as absent.
            let outcome = self.try_observe(attempt > ATTEMPTS / 2);
            let retry = match outcome {
                Ok(Observed::Ready(mut history)) => {
                    history.upcasters.clone_from(&self.upcasters);
                    let seen = self.inner.seen.load(Ordering::Relaxed);
                    if history.next_seq >= seen {
                        self.inner
                            .seen
                            .fetch_max(history.next_seq, Ordering::Relaxed);
                        return Ok(history);
                    }
                    Error::corrupt(
                        &history.paths.log,
                        history.len,
                        format!(
                            "the history now ends before event {}, but this reader already \
                             read up to event {}: events were removed (the files were \
                             restored from an older copy?)",
                            history.next_seq,
                            seen - 1
                        ),
                    )
                }
                Ok(Observed::Moving(e)) | Err(e) => e,
            };
            if attempt >= ATTEMPTS {
                return Err(retry);
            }
            thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One look at the files.
    fn try_observe(&self, torn_is_absent: bool) -> Result<Observed> {
        let paths = &self.inner.paths;
        let before = match publish::read(&paths.dir.join(COMMITTED_FILE))? {
            Reading::Torn if torn_is_absent => Reading::Absent,
            reading => reading,
        };
        let pending = rotation::pending(paths)?;
        let mut file = match File::open(&paths.log) {
            Ok(file) => Some(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&paths.log, e)),
        };
        let file_len = match &file {
            Some(file) => file.metadata().at(&paths.log)?.len(),
            None => 0,
        };
        let (archive_len, index) = match pending {
            Some(pending) => self.pending_archive(pending, file_len)?,
            None => self.archive()?,
        };
        let base = index.events();
        let len = match (pending, before) {
            // Recovery would roll the rotation back: the active log holds
            // the rotated bytes, all acknowledged.
            (Some(p), _) if file_len == p.log_len && p.log_len > 0 => p.log_len,
            (Some(_), _) if file_len == 0 => 0,
            (Some(p), _) => {
                return Ok(Observed::Moving(Error::corrupt(
                    &paths.log,
                    file_len,
                    format!(
                        "{} records a rotation of {} bytes, but the active log is neither \
                         that long nor empty",
                        rotation::INTENT_FILE,
                        p.log_len
                    ),
                )));
            }
            // A writer never cuts what it acknowledged: a shorter file
            // lost events, unless all it lost is the last newline, which
            // the next writer puts back (see `publish::check_kept`).
            (None, Reading::Committed(c)) if c.base == base && file_len < c.len => {
                let repaired = match &file {
                    Some(_) => tail::next_open(&paths.log, 0, file_len)?.repaired_len(),
                    None => 0,
                };
                if repaired < c.len {
                    let record = paths.dir.join(COMMITTED_FILE);
                    let what = "the log ends here";
                    return Err(publish::missing(&record, &paths.log, file_len, c.len, what));
                }
                file_len
            }
            (None, Reading::Committed(c)) if c.base == base => c.len,
            // Published before the last rotation, and not since: nothing
            // was appended after it yet.
            (None, Reading::Committed(c)) if c.base < base => 0,
            (None, Reading::Committed(c)) => {
                return Ok(Observed::Moving(moving(
                    &paths.index,
                    format!(
                        "the writer's record says the active log starts at event {}, but the \
                         index ends at event {base}",
                        c.base
                    ),
                )));
            }
            (None, Reading::Torn) => {
                return Ok(Observed::Moving(moving(
                    &paths.dir.join(COMMITTED_FILE),
                    "the record was being written".to_owned(),
                )));
            }
            (None, Reading::Absent) => match &mut file {
                Some(file) => tail::complete_len(file, file_len).at(&paths.log)?,
                None => 0,
            },
        };
        // The committed end is the end of a line; after a hand edit it
        // might not be, and then only whole lines count.
        let len = match &mut file {
            Some(file) if len > 0 => crate::lines::line_start_before(file, len).at(&paths.log)?,
            _ => 0,
        };
        let history =
            match History::observed(paths.clone(), len, (archive_len, index), self.inner.id) {
                Ok(history) => history,
                Err(e) => return Ok(Observed::Moving(e)),
            };
        // A rotation that started or ended meanwhile may have been seen in
        // part (the index with its frames, the active log without its
        // truncation): look again. Any other change under the
        // observation shows in the sequence numbers that History checks.
        if rotation::pending(paths)? != pending {
            return Ok(Observed::Moving(moving(
                &paths.log,
                "a rotation ran while the files were read".to_owned(),
            )));
        }
        Ok(Observed::Ready(Box::new(history)))
    }

    /// The archive and its frames when no rotation is under way: the index
    /// (parsing only the lines added since it was last read), and in
    /// memory the frames
    /// it does not record yet (a directory from before the index).
    fn archive(&self) -> Result<(u64, Index)> {
        let paths = &self.inner.paths;
        let mut cached = self
            .inner
            .index
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (known, hash) = cached.take().unwrap_or_default();
        let (mut index, hash) = known.reload(&paths.index, hash)?;
        *cached = Some((index.clone(), hash));
        drop(cached);
        let archive_len = durable::file_len(&paths.archive)?;
        index::check_archive(&paths.archive, archive_len, &index)?;
        if archive_len > index.archive_end() {
            let new = index::catch_up(&paths.archive, archive_len, &index)?;
            index.extend_unwritten(&new);
        }
        Ok((archive_len, index))
    }

    /// The archive and its frames while a rotation's record is there: as
    /// recovery would leave them, without the rotation's frames while the
    /// active log still holds the rotated bytes, with them once it is
    /// empty.
    fn pending_archive(&self, pending: rotation::Pending, log_len: u64) -> Result<(u64, Index)> {
        let paths = &self.inner.paths;
        let (mut index, _) = Index::load(&paths.index, Some(pending.archive_len))?;
        index::check_archive(&paths.archive, pending.archive_len, &index)?;
        if index.archive_end() < pending.archive_len {
            let new = index::catch_up(&paths.archive, pending.archive_len, &index)?;
            index.extend_unwritten(&new);
        }
        if log_len > 0 {
            return Ok((pending.archive_len, index));
        }
        let frames = rotation::rotated_frames(paths, pending)?;
        let entries = index.next_frames(pending.archive_len, &frames);
        index.extend_unwritten(&entries);
        Ok((index.archive_end(), index))
    }
}

/// The error an observation gives if the files keep changing under it.
fn moving(path: &Path, detail: String) -> Error {
    Error::corrupt(
        path,
        0,
        format!(
            "{detail}, and the files did not settle into a consistent state while they were \
             read again"
        ),
    )
}

/// What one look at the files found.
enum Observed {
    /// A consistent history.
    Ready(Box<History>),
    /// The files changed while they were read: look again.
    Moving(Error),
}

impl Source for EventReader {
    fn history(&self) -> Result<HistoryRef<'_>> {
        self.observe().map(HistoryRef::Owned)
    }
}

/// How a reader's [`ReadSeq`] resumes after a rotation moved the events
/// it was reading into the archive.
struct Reopening {
    reader: EventReader,
    /// The archive's length in the observation being read.
    archive_len: u64,
}

impl Reopen for Reopening {
    fn reopen(&mut self, seq: u64, error: Error) -> Result<(Option<ArchiveLines>, ActiveLines)> {
        let (archive_len, lines) = self
            .reader
            .lines_from_seq(seq, Some((self.archive_len, error)))?;
        self.archive_len = archive_len;
        Ok(lines)
    }
}

/// The iterator returned by [`EventReader::follow`]: every event from a
/// sequence number on, waiting at the end of the history for the next.
///
/// [`Iterator::next`] blocks until there is an event (it returns `None`
/// never); [`next_timeout`](Follow::next_timeout) gives up after a while.
/// After an error the iterator can be used again: it starts over from
/// its cursor.
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
/// log.append(&Event::new("a", json!(1)))?;
/// let mut follow = log.reader().follow(0);
/// let (seq, event) = follow.next_timeout(Duration::from_secs(1)).expect("there is one")?;
/// assert_eq!((seq, event.event_type.as_str()), (0, "a"));
/// assert!(follow.next_timeout(Duration::from_millis(10)).is_none()); // nothing more yet
/// assert_eq!(follow.next_seq(), 1);
/// # Ok::<(), eventfold::Error>(())
/// ```
pub struct Follow {
    reader: EventReader,
    /// The sequence number of the next event to yield.
    next: u64,
    /// The events known to exist, being read.
    batch: Option<ReadSeq>,
}

impl fmt::Debug for Follow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Follow")
            .field("dir", &self.reader.dir())
            .field("next_seq", &self.next)
            .finish_non_exhaustive()
    }
}

impl Follow {
    /// The sequence number of the next event this iterator yields: the
    /// cursor to save, and to follow from after a restart.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::EventLog;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let log = EventLog::open(dir.path())?;
    /// assert_eq!(log.reader().follow(0).next_seq(), 0);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// The next event, waiting for it at most `timeout`; `None` if none
    /// came in that time.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use eventfold::EventLog;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let log = EventLog::open(dir.path())?;
    /// let mut follow = log.reader().follow(0);
    /// assert!(follow.next_timeout(Duration::from_millis(5)).is_none());
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Each item is an error as for [`EventReader::read_from_seq`]; the
    /// next call starts over from the same cursor.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<(u64, Event)>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(batch) = &mut self.batch {
                match batch.next() {
                    Some(Ok((seq, event, _))) => {
                        self.next = seq + 1;
                        return Some(Ok((seq, event)));
                    }
                    Some(Err(e)) => {
                        self.batch = None;
                        return Some(Err(e));
                    }
                    None => self.batch = None,
                }
            }
            let left = match deadline {
                None => Duration::MAX,
                Some(d) => d.saturating_duration_since(Instant::now()),
            };
            match self.reader.wait_for(self.next, left) {
                Err(e) => return Some(Err(e)),
                Ok(next) if next > self.next => match self.reader.read_from_seq(self.next) {
                    Ok(batch) => self.batch = Some(batch),
                    Err(e) => return Some(Err(e)),
                },
                Ok(_) => return None,
            }
        }
    }
}

impl Iterator for Follow {
    type Item = Result<(u64, Event)>;

    /// The next event, waiting for it as long as it takes.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.next_timeout(Duration::MAX) {
                return Some(item);
            }
        }
    }
}

/// Notification of changes in a directory: a counter that goes up on
/// each, and a condition variable to wait for it.
struct Watch {
    _watcher: notify::RecommendedWatcher,
    changes: Arc<(Mutex<u64>, Condvar)>,
}

impl Watch {
    fn start(dir: &Path) -> notify::Result<Watch> {
        use notify::Watcher;

        let changes = Arc::new((Mutex::new(0_u64), Condvar::new()));
        let signal = Arc::clone(&changes);
        let mut watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
            let (count, changed) = &*signal;
            *count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            changed.notify_all();
        })?;
        watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
        Ok(Watch {
            _watcher: watcher,
            changes,
        })
    }

    /// How many changes were seen so far.
    fn changes(&self) -> u64 {
        *self
            .changes
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until more than `seen` changes were seen, or `until`.
    fn wait_change(&self, seen: u64, until: Instant) {
        let (count, changed) = &*self.changes;
        let mut guard = count.lock().unwrap_or_else(PoisonError::into_inner);
        while *guard <= seen {
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return;
            };
            if left.is_zero() {
                return;
            }
            guard = changed
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}
