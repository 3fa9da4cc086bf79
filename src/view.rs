//! Views: a reducer folded over the log, kept up to date incrementally
//! through its snapshot.

use std::any::Any;
use std::io;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::durable;
use crate::error::{Error, Result};
use crate::event::{Event, hash_hex};
use crate::log::EventLog;
use crate::snapshot::{self, Snapshot, ViewSnapshot};

/// A reducer: a pure function from the state so far and one event to the
/// next state.
///
/// A view's state is `events.fold(S::default(), reducer)`. The reducer gets
/// the state by value and returns it, so it can mutate in place without
/// cloning. Keep it pure (no I/O, no clock, no randomness): it is run again
/// over the same events whenever a view is rebuilt, and must give the same
/// result every time. Ignore event types you do not know (`_ => {}`), so
/// that old reducers keep working when new kinds of event appear.
///
/// # Examples
///
/// ```
/// use eventfold::{Event, ReduceFn};
/// use serde_json::json;
///
/// fn count_added(count: u64, event: &Event) -> u64 {
///     match event.event_type.as_str() {
///         "todo_added" => count + 1,
///         _ => count, // unknown types are ignored
///     }
/// }
///
/// let reducer: ReduceFn<u64> = count_added;
/// let events = [
///     Event::new("todo_added", json!({"text": "milk"})),
///     Event::new("something_else", json!(null)),
/// ];
/// assert_eq!(events.iter().fold(0, reducer), 1);
/// ```
pub type ReduceFn<S> = fn(S, &Event) -> S;

/// Whether a view's in-memory state can be trusted, and against what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// The snapshot has not been looked at yet.
    Unloaded,
    /// No usable snapshot: the next refresh replays the full history.
    Stale,
    /// `state` reflects the archive of this length plus the active log up
    /// to `offset`, in the log whose [`EventLog::id`] is `log`.
    Current { log: u64, archive_len: u64 },
}

/// A named, derived state: a [`ReduceFn`] folded over every event in the
/// log, with a snapshot on disk so that a refresh only reads new events.
///
/// Views are normally registered with
/// [`EventLogBuilder::view`](crate::EventLogBuilder::view) and read through
/// [`EventLog::view`]; the log then keeps them through rotations. A view can
/// also be used on its own with [`View::new`] and [`View::refresh`], but the
/// log does not know about such a view: after a rotation it can only be
/// rebuilt from the full history (which `refresh` then does by itself).
///
/// # Examples
///
/// ```
/// use eventfold::{Event, EventLog, View};
/// use serde_json::json;
///
/// fn count(n: u64, _: &Event) -> u64 { n + 1 }
///
/// # let dir = tempfile::tempdir()?;
/// let mut log = EventLog::open(dir.path())?;
/// log.append(&Event::new("ping", json!(null)))?;
///
/// let mut view = View::new("count", count, dir.path().join("views"))?;
/// assert_eq!(*view.refresh(&log)?, 1);
/// # Ok::<(), eventfold::Error>(())
/// ```
pub struct View<S> {
    name: String,
    reducer: ReduceFn<S>,
    snapshot_path: PathBuf,
    state: S,
    offset: u64,
    hash: String,
    status: Status,
    /// The offset of the snapshot on disk, when it belongs to the current
    /// state and log (`None`: no such snapshot); or of the last save
    /// skipped because the snapshot was over the size limit.
    saved_offset: Option<u64>,
    /// The size of the last snapshot read, written or skipped, in bytes.
    saved_len: u64,
}

/// Log bytes a view folds before its snapshot is saved again, at least.
/// A crash loses at most this much progress, which costs a fraction of a
/// millisecond to fold again; saving less often keeps a refresh cheap.
pub(crate) const SAVE_AFTER: u64 = 64 * 1024;

impl<S> std::fmt::Debug for View<S>
where
    S: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("name", &self.name)
            .field("snapshot_path", &self.snapshot_path)
            .field("state", &self.state)
            .field("offset", &self.offset)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl<S> View<S>
where
    S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
{
    /// Creates a view whose snapshot lives at `views_dir/NAME.snapshot.json`.
    ///
    /// Nothing is read or written yet: the state starts as `S::default()`
    /// at offset 0, and the first [`refresh`](View::refresh) loads the
    /// snapshot or replays the history.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, View};
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// let view = View::new("count", count, "data/views")?;
    /// assert_eq!(view.name(), "count");
    /// assert_eq!(*view.state(), 0);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidViewName`] unless the name is 1 to 128 ASCII letters,
    /// digits, `_`, `-` or `.`, not starting with `.`: the name becomes a
    /// file name and must not leave `views/`.
    pub fn new(name: &str, reducer: ReduceFn<S>, views_dir: impl AsRef<Path>) -> Result<Self> {
        validate_name(name)?;
        Ok(View {
            name: name.to_owned(),
            reducer,
            snapshot_path: snapshot::path_for(views_dir.as_ref(), name),
            state: S::default(),
            offset: 0,
            hash: String::new(),
            status: Status::Unloaded,
            saved_offset: None,
            saved_len: 0,
        })
    }

    /// Brings the view up to date with the log and returns its state.
    ///
    /// The first call loads the snapshot. If there is none, or it no longer
    /// matches the log (see [`Snapshot`]), the view replays the full history:
    /// the archive, then the active log. Otherwise it reads only the events
    /// after the snapshot's offset.
    ///
    /// If there is nothing new, the call does no I/O at all.
    ///
    /// Saving the snapshot is a side effect of refreshing: a replay of the
    /// full history is always saved; an incremental refresh saves once the
    /// log folded since the last save reaches 64 KiB, or the snapshot's own
    /// size if that is larger, so that a snapshot is never rewritten for
    /// less work than it would save. [`EventLog::save_views`], a rotation
    /// and closing the log save the rest. Every save is atomic and durable
    /// (written to a `.tmp` file, synced, renamed, directory synced). A
    /// crash can therefore leave a snapshot behind its view, by at most
    /// that much log, which the next refresh folds again: nothing is lost,
    /// and a snapshot is never ahead of the acknowledged log. A snapshot
    /// over 1 GiB of JSON is not saved (it could not be read back): a
    /// warning says so, and the view goes on from memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog, View};
    /// use serde_json::json;
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// let mut view = View::new("count", count, dir.path().join("views"))?;
    /// assert_eq!(*view.refresh(&log)?, 0);
    /// log.append(&Event::new("ping", json!(null)))?;
    /// log.append(&Event::new("ping", json!(null)))?;
    /// assert_eq!(*view.refresh(&log)?, 2);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if a line of the log or the archive is not a valid
    /// event (the view keeps its previous state), [`Error::Io`] if a file
    /// cannot be read.
    ///
    /// A snapshot that cannot be saved (a full disk, say) is not an error
    /// of the refresh: the state is up to date in memory, the failure is
    /// logged as a warning (through the `log` crate), and a later refresh
    /// or [`save`](View::save) tries again. After a failed write the log is
    /// [poisoned](Error::Poisoned): a refresh still folds every
    /// acknowledged event, but saves nothing until the log is
    /// [recovered](EventLog::recover).
    ///
    /// # Panics
    ///
    /// If the reducer panics, the panic goes on to the caller, and the view
    /// keeps the state it had after the last event before the one the
    /// reducer failed on (folded again from its snapshot); the next refresh
    /// starts from that event again.
    pub fn refresh(&mut self, log: &EventLog) -> Result<&S> {
        let current = match self.status {
            Status::Current { log: id, .. } if id != log.id => {
                // Another log (or the same directory reopened): the
                // in-memory position means nothing there. Start again from
                // the snapshot, which is checked against this log.
                self.load(log)?;
                self.status
            }
            Status::Unloaded => {
                self.load(log)?;
                self.status
            }
            status => status,
        };
        match current {
            Status::Current { archive_len, .. } if archive_len == log.archive_len() => {
                self.catch_up(log)?
            }
            _ => self.replay_all(log)?,
        }
        Ok(&self.state)
    }

    /// Throws the snapshot away and replays the full history (archive, then
    /// active log) through the reducer.
    ///
    /// Use it after changing a reducer: the log is unchanged, only the
    /// derived state is computed anew.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog, View};
    /// use serde_json::json;
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    /// fn count_twice(n: u64, _: &Event) -> u64 { n + 2 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append(&Event::new("ping", json!(null)))?;
    /// let mut view = View::new("count", count, dir.path().join("views"))?;
    /// assert_eq!(*view.refresh(&log)?, 1);
    ///
    /// let mut changed = View::new("count", count_twice, dir.path().join("views"))?;
    /// assert_eq!(*changed.rebuild(&log)?, 2);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`refresh`](View::refresh), and [`Error::Io`] if the snapshot
    /// cannot be deleted. After an error the view keeps its previous state
    /// and replays the full history on its next refresh.
    pub fn rebuild(&mut self, log: &EventLog) -> Result<&S> {
        // A poisoned log writes nothing: the old snapshot stays until the
        // rebuilt state can be saved over it.
        if !log.is_poisoned() {
            Snapshot::<S>::delete(&self.snapshot_path)?;
        }
        // The replay starts from the default state; until it succeeds the
        // view keeps showing its previous state.
        self.status = Status::Stale;
        self.refresh(log)
    }

    /// Loads and checks the snapshot; without a usable one the view is
    /// marked for a full replay.
    fn load(&mut self, log: &EventLog) -> Result<()> {
        self.status = Status::Stale;
        self.saved_offset = None;
        let (snap, len) = match ViewSnapshot::<S>::load(&self.snapshot_path) {
            Ok(Some(loaded)) => loaded,
            Ok(None) => return Ok(()),
            Err(e @ Error::Corrupt { .. }) => {
                ::log::warn!("eventfold: view {:?}: {e}; rebuilding", self.name);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let problem = match snap.archive_len {
            Some(a) if a < log.archive_len() => Some(format!(
                "it predates a rotation: it includes {a} bytes of the archive, which now has {}",
                log.archive_len()
            )),
            Some(a) if a > log.archive_len() => {
                // The archive lost bytes it had when this snapshot was
                // saved: archived history is gone, and a rebuild would
                // silently drop it. Say so instead.
                return Err(Error::corrupt(
                    log.archive_path(),
                    log.archive_len(),
                    format!(
                        "the archive ends here, but {} was built from {a} bytes of it: \
                         archived events are missing (restore the archive, or delete the \
                         snapshot to rebuild from what is left)",
                        self.snapshot_path.display()
                    ),
                ));
            }
            Some(_) => log.check_position(snap.offset, &snap.hash)?,
            None => log.check_position(snap.offset, &snap.hash)?,
        };
        if let Some(problem) = problem {
            ::log::warn!(
                "eventfold: snapshot {} does not match the log ({problem}); rebuilding",
                self.snapshot_path.display()
            );
            return Ok(());
        }
        self.state = snap.state;
        self.offset = snap.offset;
        self.hash = snap.hash;
        self.status = Status::Current {
            log: log.id,
            archive_len: log.archive_len(),
        };
        self.saved_offset = Some(snap.offset);
        self.saved_len = len;
        Ok(())
    }

    /// Folds the events after `offset`, and saves the snapshot if the
    /// policy says so (see [`refresh`](View::refresh)).
    ///
    /// Progress is kept event by event, so if a line turns out corrupt the
    /// view still holds a consistent state for the events before it.
    fn catch_up(&mut self, log: &EventLog) -> Result<()> {
        if self.offset == log.active_len() {
            return Ok(()); // nothing new: no I/O at all
        }
        let mut lines = log.active_lines(self.offset)?;
        let current = self.status;
        // While the state is out of the view's hands (a reducer may panic),
        // the view is marked for a full replay.
        self.status = Status::Stale;
        let mut last_hash = None;
        let folded = panic::catch_unwind(AssertUnwindSafe(|| {
            loop {
                match lines.next_event() {
                    Ok(Some(line)) => {
                        self.state = (self.reducer)(mem::take(&mut self.state), &line.event);
                        self.offset = line.end;
                        last_hash = Some(line.hash);
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            }
        }));
        let result = match folded {
            Ok(result) => result,
            Err(payload) => {
                // The state went into the reducer and was lost with the
                // panic: fold it again up to the event that failed.
                self.restore(log, self.offset);
                panic::resume_unwind(payload);
            }
        };
        self.status = current;
        if let Some(hash) = last_hash {
            self.hash = hash_hex(hash);
        }
        if last_hash.is_some() && self.save_due() {
            self.save_quietly(log);
        }
        result
    }

    /// After a reducer panicked at the event starting at `until`: makes the
    /// state the fold of every event before it again, from the snapshot
    /// if it is usable, else from the start of the history. If that fails
    /// too, the view is left for a full replay on its next refresh.
    fn restore(&mut self, log: &EventLog, until: u64) {
        let hash = self.hash.clone();
        let start = ViewSnapshot::<S>::load(&self.snapshot_path)
            .ok()
            .flatten()
            .map(|(snap, _)| snap)
            .filter(|snap| {
                snap.offset <= until
                    && snap.archive_len.is_none_or(|a| a == log.archive_len())
                    && matches!(log.check_position(snap.offset, &snap.hash), Ok(None))
            });
        let restored = panic::catch_unwind(AssertUnwindSafe(|| -> Result<(S, u64, String)> {
            let (mut state, mut offset, mut hash) = match start {
                Some(snap) => (snap.state, snap.offset, snap.hash),
                None => {
                    let mut state = S::default();
                    if let Some(mut lines) = log.archive_lines()? {
                        while let Some(line) = lines.next_event()? {
                            state = (self.reducer)(state, &line.event);
                        }
                    }
                    (state, 0, String::new())
                }
            };
            let mut lines = log.active_lines(offset)?;
            while offset < until {
                let Some(line) = lines.next_event()? else {
                    break;
                };
                state = (self.reducer)(state, &line.event);
                offset = line.end;
                hash = hash_hex(line.hash);
            }
            Ok((state, offset, hash))
        }));
        match restored {
            Ok(Ok((state, offset, restored_hash))) if offset == until => {
                self.state = state;
                self.offset = offset;
                self.hash = if offset == 0 {
                    String::new()
                } else {
                    restored_hash
                };
                self.status = Status::Current {
                    log: log.id,
                    archive_len: log.archive_len(),
                };
                if self.saved_offset.is_some_and(|saved| saved > offset) {
                    self.saved_offset = None;
                }
            }
            _ => {
                self.hash = hash;
                self.status = Status::Stale;
            }
        }
    }

    /// Saves the snapshot as part of a refresh, unless the log is
    /// poisoned; a failure is a warning, since the snapshot is a cache and
    /// the state in memory is right.
    fn save_quietly(&mut self, log: &EventLog) {
        if log.is_poisoned() {
            return;
        }
        if let Err(e) = self.write_snapshot(log) {
            ::log::warn!(
                "eventfold: view {:?}: could not save its snapshot, will try again later: {e}",
                self.name
            );
        }
    }

    /// Replays the archive and the whole active log from the default state,
    /// then saves the snapshot. On error the view keeps its previous state.
    fn replay_all(&mut self, log: &EventLog) -> Result<()> {
        let mut state = S::default();
        if let Some(mut lines) = log.archive_lines()? {
            while let Some(line) = lines.next_event()? {
                state = (self.reducer)(state, &line.event);
            }
        }
        let mut offset = 0;
        let mut last_hash = None;
        let mut lines = log.active_lines(0)?;
        while let Some(line) = lines.next_event()? {
            state = (self.reducer)(state, &line.event);
            offset = line.end;
            last_hash = Some(line.hash);
        }
        self.state = state;
        self.offset = offset;
        self.hash = last_hash.map(hash_hex).unwrap_or_default();
        self.status = Status::Current {
            log: log.id,
            archive_len: log.archive_len(),
        };
        self.save_quietly(log);
        Ok(())
    }

    /// Whether the log bytes folded since the snapshot on disk reach the
    /// larger of [`SAVE_AFTER`] and the snapshot's own size: saving is then
    /// never more work than what it saves from being folded again.
    fn save_due(&self) -> bool {
        self.saved_offset
            .is_none_or(|saved| self.offset.saturating_sub(saved) >= SAVE_AFTER.max(self.saved_len))
    }

    /// Saves the snapshot now if the in-memory state is ahead of it
    /// (see [`refresh`](View::refresh) for when that happens).
    ///
    /// Registered views are saved by [`EventLog::save_views`] and when the
    /// log is dropped; a view used on its own is saved only by its
    /// refreshes and by this method.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog, Snapshot, View};
    /// use serde_json::json;
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// let mut view = View::new("count", count, dir.path().join("views"))?;
    /// view.refresh(&log)?;
    /// log.append(&Event::new("ping", json!(null)))?;
    /// view.refresh(&log)?; // one small event: not saved yet
    /// view.save(&log)?;
    /// assert_eq!(Snapshot::<u64>::load(view.snapshot_path())?.unwrap().state, 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Serialize`] if the snapshot cannot be
    /// written; the old one is then untouched. [`Error::Poisoned`] after a
    /// failed write of the log, until it is [recovered](EventLog::recover).
    pub fn save(&mut self, log: &EventLog) -> Result<()> {
        log.check_usable()?;
        let current = matches!(self.status, Status::Current { log: id, .. } if id == log.id);
        if current && self.saved_offset != Some(self.offset) {
            self.write_snapshot(log)?;
        }
        Ok(())
    }

    /// Writes the in-memory state as the view's snapshot, atomically and
    /// durably. If `views/` was removed while the log was open, it is
    /// created again. A snapshot over the size limit (1 GiB of JSON) is
    /// not written, with a warning: it could not be read back.
    fn write_snapshot(&mut self, log: &EventLog) -> Result<()> {
        let snapshot = ViewSnapshot {
            state: &self.state,
            offset: self.offset,
            hash: self.hash.clone(),
            archive_len: Some(log.archive_len()),
            checksum: None,
        };
        let len = match snapshot.save(&self.snapshot_path) {
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                durable::create_dir_all(durable::parent_of(&self.snapshot_path))?;
                snapshot.save(&self.snapshot_path)
            }
            result => result,
        };
        let len = match len {
            Err(e @ Error::SnapshotTooLarge { size, .. }) => {
                // The snapshot on disk, if any, is older but still valid.
                // Counted as saved: the next attempt waits until as much
                // log has been folded as it would have cost.
                ::log::warn!(
                    "eventfold: view {:?}: {e}; the view works from memory, and folds the \
                     log from its last snapshot when the log is opened again",
                    self.name
                );
                size
            }
            result => result?,
        };
        self.saved_offset = Some(self.offset);
        self.saved_len = len;
        Ok(())
    }
}

impl<S> View<S> {
    /// The state as of the last refresh, without any I/O.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, View};
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// let view = View::new("count", count, "data/views")?;
    /// assert_eq!(*view.state(), 0);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The view's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, View};
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// assert_eq!(View::new("count", count, "views")?.name(), "count");
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the view's snapshot lives: `views_dir/NAME.snapshot.json`.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, View};
    /// use std::path::Path;
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// let view = View::new("count", count, "data/views")?;
    /// assert_eq!(view.snapshot_path(), Path::new("data/views/count.snapshot.json"));
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn snapshot_path(&self) -> &Path {
        &self.snapshot_path
    }

    /// The byte offset in the active log that the state reflects.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog, View};
    /// use serde_json::json;
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append(&Event::with_ts("ping", json!(null), 1))?;
    /// let mut view = View::new("count", count, dir.path().join("views"))?;
    /// view.refresh(&log)?;
    /// assert_eq!(view.offset(), 35); // the length of the one line
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// Checks that a view name is usable as a file name inside `views/`.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("the name is empty")
    } else if name.len() > 128 {
        Some("the name is longer than 128 bytes")
    } else if name.starts_with('.') {
        Some("the name starts with '.'")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        Some("only ASCII letters, digits, '_', '-' and '.' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidViewName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A registered view with its state type erased, as the log's registry
/// holds it.
pub(crate) trait AnyView: Send {
    fn name(&self) -> &str;
    fn load(&mut self, log: &EventLog) -> Result<()>;
    fn refresh(&mut self, log: &EventLog) -> Result<()>;
    fn rebuild(&mut self, log: &EventLog) -> Result<()>;
    /// The active log moved into the archive, which is now `archive_len`
    /// bytes long; the view had consumed all of it.
    fn rotated(&mut self, log: u64, archive_len: u64);
    /// Saves the snapshot if the in-memory state is ahead of it.
    fn save_pending(&mut self, log: &EventLog) -> Result<()>;
    fn as_any(&self) -> &dyn Any;
    fn state_type(&self) -> &'static str;
}

impl<S> AnyView for View<S>
where
    S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }
    fn load(&mut self, log: &EventLog) -> Result<()> {
        View::load(self, log)
    }
    fn refresh(&mut self, log: &EventLog) -> Result<()> {
        View::refresh(self, log).map(|_| ())
    }
    fn rebuild(&mut self, log: &EventLog) -> Result<()> {
        View::rebuild(self, log).map(|_| ())
    }
    fn rotated(&mut self, log: u64, archive_len: u64) {
        self.offset = 0;
        self.hash.clear();
        self.status = Status::Current { log, archive_len };
        self.saved_offset = Some(0);
    }
    fn save_pending(&mut self, log: &EventLog) -> Result<()> {
        View::save(self, log)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn state_type(&self) -> &'static str {
        std::any::type_name::<S>()
    }
}
