//! Group commit: [`SharedLog`], a handle that many threads append
//! through at once, sharing writes and syncs.
//!
//! Each append is checked and serialized by its own thread, then queued.
//! The first thread to find the log free takes it, with everything queued
//! so far (its own append included): it writes the group's lines with one
//! write and one `fdatasync`, numbering them in the order they were
//! queued, then hands every append of the group its outcome and gives the
//! log back. Meanwhile new appends queue up for the next group, so the
//! busier the log, the larger the groups, and one sync serves them all.

use std::collections::HashMap;
use std::fmt;
use std::mem;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};
use crate::event::{Event, Unnumbered};
use crate::log::EventLog;
use crate::reader::EventReader;

/// A handle on an [`EventLog`] that any number of threads append through
/// at once: `Clone`, `Send` and `Sync`, with `append(&self, ..)`.
///
/// Appends that arrive while the log is busy writing are committed
/// together, as one group, with one write and one `fdatasync`: eight
/// threads appending one event at a time get about the throughput of
/// batches of eight. Each call still returns only once its own events are
/// synced; the log's order is the order in which the calls are
/// acknowledged; if the write or the sync of a group fails, every call of
/// that group fails, and none of their events is in the log (the log is
/// then [poisoned](Error::Poisoned), as after any failed write).
///
/// Make one with [`EventLog::into_shared`]. Views are read through
/// [`with_log`](SharedLog::with_log), which lends the log itself; readers
/// of the same directory come from [`reader`](SharedLog::reader).
/// `Arc<Mutex<EventLog>>` works too, but serializes the syncs: one
/// append's sync at a time.
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
/// let log = EventLog::builder(dir.path()).view::<u64>("count", count).open()?;
/// let shared = log.into_shared();
/// let threads: Vec<_> = (0..4)
///     .map(|t| {
///         let shared = shared.clone();
///         std::thread::spawn(move || shared.append(&Event::new("ping", json!(t))))
///     })
///     .collect();
/// for thread in threads {
///     thread.join().unwrap()?;
/// }
/// let count = shared.with_log(|log| -> eventfold::Result<u64> {
///     log.refresh_all()?;
///     Ok(*log.view::<u64>("count")?)
/// })?;
/// assert_eq!(count, 4);
/// # Ok::<(), eventfold::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedLog {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    state: Mutex<State>,
    /// Signalled when a group is done or the log is given back.
    turn: Condvar,
    reader: EventReader,
}

struct State {
    /// `None` while a thread writes a group or holds the log in
    /// [`SharedLog::with_log`].
    log: Option<EventLog>,
    /// Appends waiting for the next group.
    queue: Vec<Request>,
    next_ticket: u64,
    /// Outcomes of committed groups, by ticket, until their callers take
    /// them.
    done: HashMap<u64, Result<Range<u64>>>,
}

struct Request {
    ticket: u64,
    expected: Option<u64>,
    events: Unnumbered,
}

impl fmt::Debug for SharedLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedLog")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl EventLog {
    /// Turns this log into a [`SharedLog`], which many threads can append
    /// through at once, with group commit.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let shared = EventLog::open(dir.path())?.into_shared();
    /// assert_eq!(shared.append(&Event::new("hello", json!(1)))?, 0);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn into_shared(self) -> SharedLog {
        SharedLog {
            inner: Arc::new(Inner {
                dir: self.dir().to_path_buf(),
                reader: self.reader(),
                state: Mutex::new(State {
                    log: Some(self),
                    queue: Vec::new(),
                    next_ticket: 0,
                    done: HashMap::new(),
                }),
                turn: Condvar::new(),
            }),
        }
    }
}

impl SharedLog {
    /// Appends an event and returns its sequence number, once it is
    /// synced: [`EventLog::append`] through the group commit.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let shared = EventLog::open(dir.path())?.into_shared();
    /// assert_eq!(shared.append(&Event::new("a", json!(1)))?, 0);
    /// assert_eq!(shared.append(&Event::new("b", json!(2)))?, 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`EventLog::append`]; when the group's write or sync fails,
    /// every append of the group gets the error.
    pub fn append(&self, event: &Event) -> Result<u64> {
        self.append_event(event)
    }

    /// Appends a typed event (see [`Event::from_typed`]) through the group
    /// commit, as [`append`](Self::append) does.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::EventLog;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// #[serde(tag = "type", content = "data")]
    /// enum Metric { Sampled(f64) }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let shared = EventLog::open(dir.path())?.into_shared();
    /// assert_eq!(shared.append_typed(&Metric::Sampled(0.5))?, 0);
    /// assert!(shared.append_typed(&Metric::Sampled(f64::NAN)).is_err());
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`Event::from_typed`] (nothing is written), then as for
    /// [`append`](Self::append).
    pub fn append_typed<E>(&self, event: &E) -> Result<u64>
    where
        E: serde::Serialize + serde::de::DeserializeOwned,
    {
        self.append_event(&Event::from_typed(event)?)
    }

    fn append_event(&self, event: &Event) -> Result<u64> {
        self.commit(None, std::slice::from_ref(event))
            .map(|range| range.start)
    }

    /// Appends events together, their sequence numbers consecutive, and
    /// returns those numbers: [`EventLog::append_batch`] through the group
    /// commit.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let shared = EventLog::open(dir.path())?.into_shared();
    /// let seqs = shared.append_batch(&[Event::new("a", json!(1)), Event::new("b", json!(2))])?;
    /// assert_eq!(seqs, 0..2);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`append`](Self::append).
    pub fn append_batch(&self, events: &[Event]) -> Result<Range<u64>> {
        self.commit(None, events)
    }

    /// Appends events only if the next sequence number is still
    /// `expected_next_seq`, as [`EventLog::append_if`] does, through the
    /// group commit: the appends committed before it, in its group or an
    /// earlier one, count.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Error, Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let shared = EventLog::open(dir.path())?.into_shared();
    /// let seen = shared.next_seq();
    /// shared.append(&Event::new("someone else's", json!(1)))?;
    /// let late = shared.append_if(seen, &[Event::new("mine", json!(2))]);
    /// assert!(matches!(late, Err(Error::Conflict { expected: 0, actual: 1 })));
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when another append got there first: nothing is
    /// written. Otherwise as for [`append`](Self::append).
    pub fn append_if(&self, expected_next_seq: u64, events: &[Event]) -> Result<Range<u64>> {
        self.commit(Some(expected_next_seq), events)
    }

    /// The sequence number the next event will get: how many events are
    /// acknowledged.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let shared = EventLog::open(dir.path())?.into_shared();
    /// shared.append(&Event::new("a", json!(1)))?;
    /// assert_eq!(shared.next_seq(), 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn next_seq(&self) -> u64 {
        self.inner.reader.published_next_seq()
    }

    /// Lends the log itself to `f`, once no group is being written: to
    /// refresh and read views, read events, rotate or recover. Appends
    /// from other threads wait meanwhile (and are then committed
    /// together). Inside `f`, use the log it is given: a call to this
    /// `SharedLog` (or a clone) from `f` would wait for `f` to return, for
    /// ever.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let shared = EventLog::open(dir.path())?.into_shared();
    /// shared.append(&Event::new("a", json!(1)))?;
    /// let events = shared.with_log(|log| log.read_full().map(|events| events.count()))?;
    /// assert_eq!(events, 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn with_log<R>(&self, f: impl FnOnce(&mut EventLog) -> R) -> R {
        let mut state = self.lock();
        let mut log = loop {
            if let Some(log) = state.log.take() {
                break log;
            }
            state = self.wait(state);
        };
        drop(state);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(&mut log)));
        self.give_back(log);
        match outcome {
            Ok(value) => value,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// A read-only reader of the log's directory, woken by this log's
    /// appends: [`EventReader::wait_for`] and [`EventReader::follow`].
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let shared = EventLog::open(dir.path())?.into_shared();
    /// shared.append(&Event::new("a", json!(1)))?;
    /// assert_eq!(shared.reader().next_seq()?, 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn reader(&self) -> EventReader {
        self.inner.reader.clone()
    }

    /// The data directory.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::EventLog;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let shared = EventLog::open(dir.path())?.into_shared();
    /// assert_eq!(shared.dir(), dir.path());
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Queues an append and waits for its group's outcome, writing the
    /// group itself if the log is free.
    fn commit(&self, expected: Option<u64>, events: &[Event]) -> Result<Range<u64>> {
        // Checked and serialized by this thread, before it queues.
        let upcasters = self.inner.reader.upcasters();
        let events = Unnumbered::prepare(events, |event_type| {
            upcasters.map_or(1, |u| u.version_of(event_type))
        })?;
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push(Request {
            ticket,
            expected,
            events,
        });
        loop {
            if let Some(outcome) = state.done.remove(&ticket) {
                return outcome;
            }
            if let Some(log) = state.log.take() {
                let group = mem::take(&mut state.queue);
                drop(state);
                self.write_group(log, group);
                state = self.lock();
                continue;
            }
            state = self.wait(state);
        }
    }

    /// Commits `group` with `log`, then records every outcome and gives
    /// the log back.
    fn write_group(&self, mut log: EventLog, group: Vec<Request>) {
        let written = panic::catch_unwind(AssertUnwindSafe(|| {
            let appends: Vec<(Option<u64>, &Unnumbered)> =
                group.iter().map(|r| (r.expected, &r.events)).collect();
            log.append_group(&appends)
        }));
        let outcomes = match written {
            Ok(outcomes) => outcomes,
            // A reducer of a view panicked in the rotation before the
            // write: nothing was written.
            Err(_) => group
                .iter()
                .map(|_| {
                    Err(Error::Io {
                        path: None,
                        source: std::io::Error::other(
                            "a view's reducer panicked while the log rotated before this \
                             append; the append was not written",
                        ),
                    })
                })
                .collect(),
        };
        let mut state = self.lock();
        for (request, outcome) in group.iter().zip(outcomes) {
            state.done.insert(request.ticket, outcome);
        }
        state.log = Some(log);
        drop(state);
        self.inner.turn.notify_all();
    }

    fn give_back(&self, log: EventLog) {
        self.lock().log = Some(log);
        self.inner.turn.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.inner
            .turn
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
    }
}
