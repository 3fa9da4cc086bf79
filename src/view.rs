//! Views: a reducer folded over the log, kept up to date incrementally
//! through its snapshot.

use std::any::Any;
use std::io::{self, BufRead};
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::durable;
use crate::error::{Error, Result};
use crate::event::{Event, hash_hex};
use crate::history::{History, Source};
use crate::lines::{LineInfo, Lines};
use crate::snapshot::{self, Snapshot, ViewSnapshot};
use crate::typed::{Typed, TypedFold, TypedReduceFn, TypedReduceSeqFn, TypedReducer, Unknown};
use crate::upcast::Upcasters;

mod external;

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
/// **Bump the view's version when you change its reducer or its state**
/// ([`EventLogBuilder::view_version`](crate::EventLogBuilder::view_version),
/// [`View::with_version`]): a snapshot records the version that wrote it,
/// and one of another version is rebuilt from the log instead of being
/// loaded. Without the bump, a snapshot whose state still deserializes
/// keeps what the old reducer computed. For reducers over your own event
/// types, see [`TypedReduceFn`](crate::TypedReduceFn).
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

/// A reducer that also gets each event's sequence number: its 0-based
/// place in the whole history (see
/// [`EventLog::next_seq`](crate::EventLog::next_seq)), which never changes.
///
/// Register it with
/// [`EventLogBuilder::view_with_seq`](crate::EventLogBuilder::view_with_seq)
/// or [`View::with_seq`]. The same rules as for [`ReduceFn`] apply: keep
/// it pure, and ignore event types you do not know.
///
/// # Examples
///
/// ```
/// use eventfold::{Event, ReduceSeqFn};
/// use serde_json::json;
///
/// /// Which event last renamed the account.
/// fn renamed_at(last: Option<u64>, seq: u64, event: &Event) -> Option<u64> {
///     match event.event_type.as_str() {
///         "renamed" => Some(seq),
///         _ => last,
///     }
/// }
///
/// let reducer: ReduceSeqFn<Option<u64>> = renamed_at;
/// let events = [Event::new("renamed", json!("a")), Event::new("paid", json!(1))];
/// let state = (0..).zip(&events).fold(None, |s, (seq, e)| reducer(s, seq, e));
/// assert_eq!(state, Some(0));
/// ```
pub type ReduceSeqFn<S> = fn(S, u64, &Event) -> S;

/// The reducer of a view, of any kind.
enum Reducer<S> {
    Plain(ReduceFn<S>),
    WithSeq(ReduceSeqFn<S>),
    Typed(Arc<dyn TypedFold<S>>, Unknown),
}

// A derive would ask `S: Clone`.
impl<S> Clone for Reducer<S> {
    fn clone(&self) -> Self {
        match self {
            Reducer::Plain(f) => Reducer::Plain(*f),
            Reducer::WithSeq(f) => Reducer::WithSeq(*f),
            Reducer::Typed(typed, unknown) => Reducer::Typed(Arc::clone(typed), *unknown),
        }
    }
}

impl<S: Default> Reducer<S> {
    /// Folds the next line of `lines` into `state` (`seq` its sequence
    /// number unless the line says); `None` at the end. A typed reducer
    /// decodes the line into its own event type, without building an
    /// [`Event`].
    fn fold_next<R: BufRead>(
        &self,
        lines: &mut Lines<R>,
        state: &mut S,
        seq: u64,
    ) -> Result<Option<LineInfo>> {
        let (typed, unknown) = match self {
            Reducer::Typed(typed, unknown) => (typed, *unknown),
            plain => {
                let Some(line) = lines.next_event()? else {
                    return Ok(None);
                };
                let at = line.seq.unwrap_or(seq);
                *state = match plain {
                    Reducer::Plain(f) => f(mem::take(state), &line.event),
                    Reducer::WithSeq(f) => f(mem::take(state), at, &line.event),
                    Reducer::Typed(..) => unreachable!("matched above"),
                };
                return Ok(Some(LineInfo {
                    seq: line.seq,
                    end: line.end,
                    hash: line.hash,
                }));
            }
        };
        let mut taken = None;
        let result = lines.next_raw(|line, number, upcasters| {
            let mut at = |found| number(found).map(|known| known.unwrap_or(seq));
            match typed.fold(mem::take(state), line, &mut at, upcasters, unknown) {
                Ok(next) => {
                    taken = Some(next);
                    Ok(())
                }
                Err((kept, failure)) => {
                    taken = Some(kept);
                    Err(failure)
                }
            }
        });
        if let Some(next) = taken {
            *state = next;
        }
        Ok(result?.map(|((), info)| info))
    }
}

/// Whether a view's in-memory state can be trusted, and against what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// The snapshot has not been looked at yet.
    Unloaded,
    /// No usable snapshot: the next refresh replays the full history.
    Stale,
    /// `state` reflects the archive of this length plus the active log up
    /// to `offset`, in the log whose history has the identity `log`.
    Current { log: u64, archive_len: u64 },
    /// `state` is the fold of events `0..seq` given by
    /// [`View::fold_line`], or loaded by [`View::load_folded`]; `offset`
    /// counts their bytes. A refresh from a log starts again from the
    /// snapshot, checked against that log.
    Elsewhere,
}

/// A named, derived state: a [`ReduceFn`] folded over every event in the
/// log, with a snapshot on disk so that a refresh only reads new events.
///
/// Views are normally registered with
/// [`EventLogBuilder::view`](crate::EventLogBuilder::view) and read through
/// [`EventLog::view`](crate::EventLog::view); the log then keeps them
/// through rotations. A view can also be used on its own with
/// [`View::new`] and [`View::refresh`], but the log does not know about
/// such a view: after a rotation it can only be rebuilt from the full
/// history (which `refresh` then does by itself).
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
    reducer: Reducer<S>,
    snapshot_path: PathBuf,
    state: S,
    offset: u64,
    hash: String,
    /// The sequence number of the next event to fold: how many the state
    /// holds.
    seq: u64,
    status: Status,
    /// The offset of the snapshot on disk, when it belongs to the current
    /// state and log (`None`: no such snapshot); or of the last save
    /// skipped because the snapshot was over the size limit.
    saved_offset: Option<u64>,
    /// The size of the last snapshot read, written or skipped, in bytes.
    saved_len: u64,
    /// The version of the reducer and state, as the snapshot records it.
    version: u32,
    /// Applied to the lines given to [`View::fold_line`] (a refresh uses
    /// the log's).
    upcasters: Option<Arc<Upcasters>>,
}

/// Log bytes a view folds before its snapshot is saved again, at least.
/// A crash loses at most this much progress, which costs a fraction of a
/// millisecond to fold again; saving less often keeps a refresh cheap.
pub(crate) const SAVE_AFTER: u64 = 64 * 1024;

/// How many times a refresh from a reader starts again when the files
/// changed under it (each time because the writer rotated meanwhile).
const RETRIES: u32 = 8;

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
            .field("seq", &self.seq)
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
        View::with_reducer(name, Reducer::Plain(reducer), views_dir.as_ref())
    }

    /// Creates a view whose reducer also gets each event's sequence number
    /// (see [`ReduceSeqFn`]); otherwise the same as [`View::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog, View};
    /// use serde_json::json;
    ///
    /// fn seqs(mut all: Vec<u64>, seq: u64, _: &Event) -> Vec<u64> {
    ///     all.push(seq);
    ///     all
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append(&Event::new("a", json!(null)))?;
    /// log.rotate()?;
    /// log.append(&Event::new("b", json!(null)))?;
    /// let mut view = View::with_seq("seqs", seqs, dir.path().join("views"))?;
    /// assert_eq!(*view.refresh(&log)?, [0, 1]);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`View::new`].
    pub fn with_seq(
        name: &str,
        reducer: ReduceSeqFn<S>,
        views_dir: impl AsRef<Path>,
    ) -> Result<Self> {
        View::with_reducer(name, Reducer::WithSeq(reducer), views_dir.as_ref())
    }

    /// Creates a view whose reducer folds typed events: each line is
    /// decoded straight into `E` (no `serde_json::Value` is built), which
    /// should be an enum with `#[serde(tag = "type", content = "data")]`,
    /// the line format. Otherwise the same as [`View::new`].
    ///
    /// An event type that `E` does not name is skipped (a newer program's
    /// events; see [`strict`](View::strict) to refuse them); an event of a
    /// type it names whose `data` does not decode is an error naming the
    /// file, the byte offset and the type, never skipped. When `E` is not
    /// such an enum (a struct, an untagged enum), every event is decoded
    /// and one that does not decode is an error. Do not give `E` a
    /// catch-all `#[serde(other)]` variant: unknown types are skipped
    /// already, and with one eventfold cannot tell which types `E` names,
    /// so an unknown event with data becomes an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog, View};
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
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append_typed(&Ledger::Deposited { amount: 10 })?;
    /// log.append_typed(&Ledger::Withdrawn { amount: 3 })?;
    /// let mut view = View::typed("balance", balance, dir.path().join("views"))?;
    /// assert_eq!(*view.refresh(&log)?, 7);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`View::new`].
    pub fn typed<E>(
        name: &str,
        reducer: TypedReduceFn<S, E>,
        views_dir: impl AsRef<Path>,
    ) -> Result<Self>
    where
        E: DeserializeOwned + 'static,
    {
        let typed = Typed::new(TypedReducer::Plain(reducer));
        View::with_reducer(
            name,
            Reducer::Typed(Arc::new(typed), Unknown::Skip),
            views_dir.as_ref(),
        )
    }

    /// Creates a typed view whose reducer also gets each event's sequence
    /// number; otherwise the same as [`View::typed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{EventLog, View};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// #[serde(tag = "type", content = "data")]
    /// enum Doc { Edited(String) }
    ///
    /// fn last_edit(_: Option<u64>, seq: u64, _: &Doc) -> Option<u64> {
    ///     Some(seq)
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append_typed(&Doc::Edited("a".into()))?;
    /// log.append_typed(&Doc::Edited("b".into()))?;
    /// let mut view = View::typed_with_seq("last_edit", last_edit, dir.path().join("views"))?;
    /// assert_eq!(*view.refresh(&log)?, Some(1));
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`View::new`].
    pub fn typed_with_seq<E>(
        name: &str,
        reducer: TypedReduceSeqFn<S, E>,
        views_dir: impl AsRef<Path>,
    ) -> Result<Self>
    where
        E: DeserializeOwned + 'static,
    {
        let typed = Typed::new(TypedReducer::WithSeq(reducer));
        View::with_reducer(
            name,
            Reducer::Typed(Arc::new(typed), Unknown::Skip),
            views_dir.as_ref(),
        )
    }

    /// This view at `version`: a number you bump whenever you change the
    /// reducer or the state type, so that snapshots of the old code are
    /// not loaded. Its snapshots record it; a snapshot of another version
    /// is rebuilt from the log (with a log message saying why). Views
    /// start at version 0, which snapshots written before versions
    /// existed have too.
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
    /// let views = dir.path().join("views");
    /// let mut old = View::new("count", count, &views)?;
    /// old.refresh(&log)?;
    /// old.save(&log)?;
    ///
    /// // The reducer changed, and so did the version: the old snapshot is rebuilt.
    /// let mut new = View::new("count", count_twice, &views)?.with_version(2);
    /// assert_eq!(*new.refresh(&log)?, 2);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    #[must_use = "with_version returns the view at that version"]
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// For a typed view: an event type that its enum does not name is an
    /// error (naming the file, byte offset and type) instead of being
    /// skipped. For a view of [`Event`]s, which sees every event, it
    /// changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Error, Event, EventLog, View};
    /// use serde::{Deserialize, Serialize};
    /// use serde_json::json;
    ///
    /// #[derive(Serialize, Deserialize)]
    /// #[serde(tag = "type", content = "data")]
    /// enum Known { Ping }
    /// fn count(n: u64, _: &Known) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append(&Event::new("Pong", json!(null)))?;
    /// let views = dir.path().join("views");
    /// assert_eq!(*View::typed("lenient", count, &views)?.refresh(&log)?, 0);
    /// let strict = View::typed("strict", count, &views)?.strict().refresh(&log).map(|n| *n);
    /// assert!(matches!(strict, Err(Error::Corrupt { offset: 0, .. })));
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    #[must_use = "strict returns the strict view"]
    pub fn strict(mut self) -> Self {
        if let Reducer::Typed(_, unknown) = &mut self.reducer {
            *unknown = Unknown::Fail;
        }
        self
    }

    fn with_reducer(name: &str, reducer: Reducer<S>, views_dir: &Path) -> Result<Self> {
        validate_name(name)?;
        Ok(View {
            name: name.to_owned(),
            reducer,
            snapshot_path: snapshot::path_for(views_dir, name),
            state: S::default(),
            offset: 0,
            hash: String::new(),
            seq: 0,
            status: Status::Unloaded,
            saved_offset: None,
            saved_len: 0,
            version: 0,
            upcasters: None,
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
    /// less work than it would save.
    /// [`EventLog::save_views`](crate::EventLog::save_views), a rotation
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
    /// [recovered](crate::EventLog::recover).
    ///
    /// # Panics
    ///
    /// If the reducer panics, the panic goes on to the caller, and the view
    /// keeps the state it had after the last event before the one the
    /// reducer failed on (folded again from its snapshot); the next refresh
    /// starts from that event again.
    pub fn refresh(&mut self, log: &impl Source) -> Result<&S> {
        let mut history = log.history()?;
        let mut tries = 0;
        loop {
            match self.refresh_in(&history) {
                Ok(()) => return Ok(&self.state),
                // A reader's files may change under it while it reads (a
                // rotation empties the active log): when they did, the
                // refresh starts again from where it stopped.
                Err(e) if history.read_only && tries < RETRIES => {
                    let fresh = log.history()?;
                    if fresh.archive_len == history.archive_len {
                        return Err(e);
                    }
                    history = fresh;
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// [`refresh`](View::refresh) on the history of a log.
    fn refresh_in(&mut self, log: &History) -> Result<()> {
        let current = match self.status {
            Status::Current { log: id, .. } if id != log.id => {
                // Another log (or the same directory reopened): the
                // in-memory position means nothing there. Start again from
                // the snapshot, which is checked against this log.
                self.load(log)?;
                self.status
            }
            Status::Unloaded | Status::Elsewhere => {
                self.load(log)?;
                self.status
            }
            status => status,
        };
        match current {
            Status::Current { archive_len, .. } if archive_len == log.archive_len => {
                self.catch_up(log)
            }
            // The history moved into the archive since: go on from the
            // next event, wherever it is now.
            Status::Current { archive_len, .. } if archive_len < log.archive_len => {
                self.catch_up_seq(log)
            }
            _ => self.replay_all(log),
        }
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
    pub fn rebuild(&mut self, log: &impl Source) -> Result<&S> {
        {
            let history = log.history()?;
            self.forget_snapshot(&history)?;
        }
        self.refresh(log)
    }

    /// [`rebuild`](View::rebuild) on the history of a log.
    fn rebuild_in(&mut self, log: &History) -> Result<()> {
        self.forget_snapshot(log)?;
        self.refresh_in(log)
    }

    /// The first half of a rebuild: the snapshot is deleted, and the next
    /// refresh replays the history from the default state (until it
    /// succeeds the view keeps showing its previous state).
    fn forget_snapshot(&mut self, log: &History) -> Result<()> {
        // A poisoned log writes nothing: the old snapshot stays until the
        // rebuilt state can be saved over it. A reader's snapshots are
        // the writer's.
        if !log.is_poisoned() && !log.read_only {
            Snapshot::<S>::delete(&self.snapshot_path)?;
        }
        self.status = Status::Stale;
        Ok(())
    }

    /// Loads and checks the snapshot; without a usable one the view is
    /// marked for a full replay.
    fn load(&mut self, log: &History) -> Result<()> {
        self.status = Status::Stale;
        self.saved_offset = None;
        let Some((snap, len)) = self.read_snapshot()? else {
            return Ok(());
        };
        let problem = match snap.archive_len {
            Some(a) if a < log.archive_len => Some(format!(
                "it predates a rotation: it includes {a} bytes of the archive, which now has {}",
                log.archive_len
            )),
            Some(a) if a > log.archive_len => {
                // The archive lost bytes it had when this snapshot was
                // saved: archived history is gone, and a rebuild would
                // silently drop it. Say so instead.
                return Err(Error::corrupt(
                    &log.paths.archive,
                    log.archive_len,
                    format!(
                        "the archive ends here, but {} was built from {a} bytes of it: \
                         archived events are missing (restore the archive, or delete the \
                         snapshot to rebuild from what is left)",
                        self.snapshot_path.display()
                    ),
                ));
            }
            _ => log.check_position(snap.offset, &snap.hash, snap.seq)?,
        };
        if let Some(problem) = problem {
            // A reader may catch the writer's snapshot between a rotation
            // and its update: nothing is wrong with either.
            let level = if log.read_only {
                ::log::Level::Debug
            } else {
                ::log::Level::Warn
            };
            ::log::log!(
                level,
                "eventfold: snapshot {} does not match the log ({problem}); rebuilding",
                self.snapshot_path.display()
            );
            return Ok(());
        }
        // A snapshot written before sequence numbers existed does not say
        // how many events it holds: its place in the log does.
        self.seq = match snap.seq {
            Some(seq) => seq,
            None => log.seq_at(snap.offset)?,
        };
        self.state = snap.state;
        self.offset = snap.offset;
        self.hash = snap.hash;
        self.status = Status::Current {
            log: log.id,
            archive_len: log.archive_len,
        };
        self.saved_offset = Some(snap.offset);
        self.saved_len = len;
        Ok(())
    }

    /// The view's snapshot, if there is one of this version that can be
    /// read; a damaged one, or one of another version, is `None` with a
    /// log message saying why (the view is then folded again).
    fn read_snapshot(&self) -> Result<Option<(ViewSnapshot<S>, u64)>> {
        let (snap, len) = match ViewSnapshot::<S>::load(&self.snapshot_path) {
            Ok(Some(loaded)) => loaded,
            Ok(None) => return Ok(None),
            Err(e @ Error::Corrupt { .. }) => {
                // A state that no longer fits is what a new version of the
                // view is for: say that, when it is the reason.
                let written_by = ViewSnapshot::<serde::de::IgnoredAny>::load(&self.snapshot_path)
                    .ok()
                    .flatten()
                    .map(|(snap, _)| snap.version.unwrap_or(0));
                match written_by {
                    Some(version) if version != self.version => {
                        self.log_other_version(version);
                    }
                    _ => ::log::warn!("eventfold: view {:?}: {e}; rebuilding", self.name),
                }
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let version = snap.version.unwrap_or(0);
        if version != self.version {
            self.log_other_version(version);
            return Ok(None);
        }
        Ok(Some((snap, len)))
    }

    /// Says why a snapshot of another version of the view is not loaded.
    fn log_other_version(&self, version: u32) {
        ::log::info!(
            "eventfold: view {:?}: its snapshot {} was written by version {version} of the \
             view, and this is version {}; rebuilding from the log",
            self.name,
            self.snapshot_path.display(),
            self.version
        );
    }

    /// Folds the events after `offset`, and saves the snapshot if the
    /// policy says so (see [`refresh`](View::refresh)).
    ///
    /// Progress is kept event by event, so if a line turns out corrupt the
    /// view still holds a consistent state for the events before it.
    fn catch_up(&mut self, log: &History) -> Result<()> {
        if self.offset == log.len {
            return Ok(()); // nothing new: no I/O at all
        }
        let mut lines = log.active_lines(self.offset, Some(self.seq))?;
        let current = self.status;
        // While the state is out of the view's hands (a reducer may panic),
        // the view is marked for a full replay.
        self.status = Status::Stale;
        let mut last_hash = None;
        let folded = panic::catch_unwind(AssertUnwindSafe(|| {
            loop {
                match self
                    .reducer
                    .fold_next(&mut lines, &mut self.state, self.seq)
                {
                    Ok(Some(line)) => {
                        self.offset = line.end;
                        self.seq = line.seq.unwrap_or(self.seq) + 1;
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

    /// Folds the events from the view's next sequence number on, after the
    /// history it had folded moved into the archive (a rotation): the
    /// rest of the archive from there, then the active log.
    fn catch_up_seq(&mut self, log: &History) -> Result<()> {
        let (archive, mut active) = log.lines_from_seq(self.seq)?;
        // The fold works on a copy: after an error or a panic of the
        // reducer the view keeps its state, and the next refresh starts
        // from the same event again.
        let mut folded = Folded {
            state: self.state.clone(),
            offset: 0,
            hash: String::new(),
            last: None,
            seq: self.seq,
        };
        if let Some(mut archive) = archive {
            while folded.fold_next(&self.reducer, &mut archive)? {}
            archive.check_end(active.next_seq())?;
            folded.last = None;
        }
        // Positions in the active log start at 0, with no line before,
        // unless the view was already past its start.
        if folded.seq > log.base_seq() {
            folded.offset = log.offset_of_seq(folded.seq)?;
            folded.hash = log.hash_before(folded.offset)?.unwrap_or_default();
        }
        while folded.fold_next(&self.reducer, &mut active)? {}
        self.take_folded(folded, log);
        self.saved_offset = None;
        self.save_quietly(log);
        Ok(())
    }

    /// After a reducer panicked at the event starting at `until`: makes the
    /// state the fold of every event before it again, from the snapshot
    /// if it is usable, else from the start of the history. If that fails
    /// too, the view is left for a full replay on its next refresh.
    fn restore(&mut self, log: &History, until: u64) {
        let hash = self.hash.clone();
        let start = ViewSnapshot::<S>::load(&self.snapshot_path)
            .ok()
            .flatten()
            .map(|(snap, _)| snap)
            .filter(|snap| {
                snap.version.unwrap_or(0) == self.version
                    && snap.offset <= until
                    && snap.archive_len.is_none_or(|a| a == log.archive_len)
                    && matches!(
                        log.check_position(snap.offset, &snap.hash, snap.seq),
                        Ok(None)
                    )
            });
        let restored = panic::catch_unwind(AssertUnwindSafe(|| -> Result<Folded<S>> {
            let mut folded = match start {
                Some(snap) => Folded {
                    seq: match snap.seq {
                        Some(seq) => seq,
                        None => log.seq_at(snap.offset)?,
                    },
                    state: snap.state,
                    offset: snap.offset,
                    hash: snap.hash,
                    last: None,
                },
                None => self.fold_archive(log)?,
            };
            let mut lines = log.active_lines(folded.offset, Some(folded.seq))?;
            while folded.offset < until && folded.fold_next(&self.reducer, &mut lines)? {}
            Ok(folded)
        }));
        match restored {
            Ok(Ok(folded)) if folded.offset == until => {
                self.hash = folded.hash();
                self.state = folded.state;
                self.offset = folded.offset;
                self.seq = folded.seq;
                self.status = Status::Current {
                    log: log.id,
                    archive_len: log.archive_len,
                };
                if self.saved_offset.is_some_and(|saved| saved > folded.offset) {
                    self.saved_offset = None;
                }
            }
            _ => {
                self.hash = hash;
                self.status = Status::Stale;
            }
        }
    }

    /// Folds every event of the archive into the default state: the
    /// state at offset 0 of the active log.
    fn fold_archive(&self, log: &History) -> Result<Folded<S>> {
        let mut folded = Folded {
            state: S::default(),
            offset: 0,
            hash: String::new(),
            last: None,
            seq: 0,
        };
        if let Some(mut lines) = log.archive_lines()? {
            while folded.fold_next(&self.reducer, &mut lines)? {}
            lines.check_end(Some(log.base_seq()))?;
        }
        // Positions in the active log start at 0, with no line before.
        folded.offset = 0;
        folded.last = None;
        Ok(folded)
    }

    /// Saves the snapshot as part of a refresh, unless the log is
    /// poisoned; a failure is a warning, since the snapshot is a cache and
    /// the state in memory is right.
    fn save_quietly(&mut self, log: &History) {
        if log.is_poisoned() || log.read_only {
            return;
        }
        if let Err(e) = self.write_snapshot(Some(log.archive_len)) {
            ::log::warn!(
                "eventfold: view {:?}: could not save its snapshot, will try again later: {e}",
                self.name
            );
        }
    }

    /// Replays the archive and the whole active log from the default state,
    /// then saves the snapshot. On error the view keeps its previous state.
    fn replay_all(&mut self, log: &History) -> Result<()> {
        let mut folded = self.fold_archive(log)?;
        let mut lines = log.active_lines(0, Some(folded.seq))?;
        while folded.fold_next(&self.reducer, &mut lines)? {}
        self.take_folded(folded, log);
        self.save_quietly(log);
        Ok(())
    }

    /// Makes `folded`, the fold of the whole history of `log`, the view's
    /// state.
    fn take_folded(&mut self, folded: Folded<S>, log: &History) {
        self.hash = folded.hash();
        self.state = folded.state;
        self.offset = folded.offset;
        self.seq = folded.seq;
        self.status = Status::Current {
            log: log.id,
            archive_len: log.archive_len,
        };
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
    /// Registered views are saved by
    /// [`EventLog::save_views`](crate::EventLog::save_views) and when the
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
    /// failed write of the log, until it is [recovered](crate::EventLog::recover).
    /// [`Error::InvalidConfig`] for a view folded from lines given by
    /// [`fold_line`](View::fold_line): [`save_folded`](View::save_folded)
    /// saves those.
    pub fn save(&mut self, log: &impl Source) -> Result<()> {
        self.save_in(&*log.history()?)
    }

    /// [`save`](View::save) on the history of a log.
    fn save_in(&mut self, log: &History) -> Result<()> {
        log.check_usable()?;
        if log.read_only {
            return Err(Error::ReadOnly {
                path: self.snapshot_path.clone(),
            });
        }
        if self.status == Status::Elsewhere {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "view {:?} folds lines from elsewhere (fold_line): save it with save_folded, \
                     not with a log",
                    self.name
                ),
            });
        }
        let current = matches!(self.status, Status::Current { log: id, .. } if id == log.id);
        if current && self.saved_offset != Some(self.offset) {
            self.write_snapshot(Some(log.archive_len))?;
        }
        Ok(())
    }

    /// Writes the in-memory state as the view's snapshot, atomically and
    /// durably, recording the archive's length (`None` for a state folded
    /// from lines given from elsewhere). If `views/` was removed while the
    /// log was open, it is created again. A snapshot over the size limit
    /// (1 GiB of JSON) is not written, with a warning: it could not be
    /// read back.
    fn write_snapshot(&mut self, archive_len: Option<u64>) -> Result<()> {
        let snapshot = ViewSnapshot {
            state: &self.state,
            offset: self.offset,
            hash: self.hash.clone(),
            archive_len,
            seq: Some(self.seq),
            version: (self.version > 0).then_some(self.version),
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

    /// The byte offset in the active log that the state reflects. For a
    /// view folded from lines given by [`fold_line`](View::fold_line), the
    /// bytes of those lines and their newlines, counted from the snapshot
    /// it was loaded from (from event 0: the offset the position would
    /// have in a log that never rotated).
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
    /// assert_eq!(view.offset(), 43); // the length of the one line
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// A state being folded, with the position after the last event in it.
struct Folded<S> {
    state: S,
    /// Offset in the active log after the last event (0 in the archive).
    offset: u64,
    /// Hash of the line before `offset`; empty at 0. Once a line is
    /// folded, `last` holds it instead, turned into text only at the end.
    hash: String,
    last: Option<u64>,
    /// The sequence number of the next event.
    seq: u64,
}

impl<S> Folded<S> {
    /// Folds one more event.
    fn fold_next<R: BufRead>(&mut self, reducer: &Reducer<S>, lines: &mut Lines<R>) -> Result<bool>
    where
        S: Default,
    {
        let Some(line) = reducer.fold_next(lines, &mut self.state, self.seq)? else {
            return Ok(false);
        };
        self.seq = line.seq.unwrap_or(self.seq) + 1;
        self.offset = line.end;
        self.last = Some(line.hash);
        Ok(true)
    }

    fn hash(&self) -> String {
        self.last.map_or_else(|| self.hash.clone(), hash_hex)
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
    fn load(&mut self, log: &History) -> Result<()>;
    fn refresh(&mut self, log: &History) -> Result<()>;
    fn rebuild(&mut self, log: &History) -> Result<()>;
    /// The active log moved into the archive, which is now `archive_len`
    /// bytes long; the view had consumed all of it.
    fn rotated(&mut self, log: u64, archive_len: u64);
    /// Saves the snapshot if the in-memory state is ahead of it.
    fn save_pending(&mut self, log: &History) -> Result<()>;
    fn as_any(&self) -> &dyn Any;
    fn state_type(&self) -> &'static str;
    /// Sets the view's version (see [`View::with_version`]).
    fn set_version(&mut self, version: u32);
    /// Makes a typed view strict; false if the view is not typed.
    fn make_strict(&mut self) -> bool;
}

impl<S> AnyView for View<S>
where
    S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }
    fn load(&mut self, log: &History) -> Result<()> {
        View::load(self, log)
    }
    fn refresh(&mut self, log: &History) -> Result<()> {
        View::refresh_in(self, log).map(|_| ())
    }
    fn rebuild(&mut self, log: &History) -> Result<()> {
        View::rebuild_in(self, log).map(|_| ())
    }
    fn rotated(&mut self, log: u64, archive_len: u64) {
        self.offset = 0;
        self.hash.clear();
        self.status = Status::Current { log, archive_len };
        self.saved_offset = Some(0);
    }
    fn save_pending(&mut self, log: &History) -> Result<()> {
        View::save_in(self, log)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn set_version(&mut self, version: u32) {
        self.version = version;
    }
    fn make_strict(&mut self) -> bool {
        match &mut self.reducer {
            Reducer::Typed(_, unknown) => {
                *unknown = Unknown::Fail;
                true
            }
            _ => false,
        }
    }
    fn state_type(&self) -> &'static str {
        std::any::type_name::<S>()
    }
}
