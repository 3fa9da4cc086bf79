//! Views folded over lines from elsewhere: another copy of the history
//! (a replica, a stream of messages) rather than a log in a directory,
//! with the same reducers and the same snapshot files.

use std::io::Read;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Status, View};
use crate::error::{Error, Result};
use crate::event::hash_hex;
use crate::lines::{Lines, as_line_error};
use crate::upcast::Upcasters;

impl<S> View<S>
where
    S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
{
    /// Folds one stored line of the history into the view: event `seq`,
    /// given as its line (without its newline) from another copy of the
    /// history than a log in a directory, such as a message of a stream
    /// that the log was replicated into. The same reducer folds the same
    /// lines into the same state as [`refresh`](View::refresh) does over
    /// the log, so a second service computes what the writer's views
    /// compute. Returns the state.
    ///
    /// Lines must come in order, from event 0 or from the position of a
    /// snapshot that [`load_folded`](View::load_folded) loaded: `seq` is
    /// always [`next_seq`](View::next_seq). Each line is checked as a
    /// reader of the log checks it (eventfold's format, and a `seq` field,
    /// when it has one, that says `seq`), and goes through the view's
    /// [upcasters](View::with_upcasters).
    ///
    /// Nothing is written: [`save_folded`](View::save_folded) saves the
    /// snapshot when the caller chooses, which should be only once the
    /// lines it holds are durable where they came from (a snapshot must
    /// never be ahead of its history), and not after every line (each
    /// save is a synced write). The snapshot records the state, the number
    /// of events folded, the line hash of the last one and the bytes
    /// folded, in the format a log's views use, so that
    /// [`load_folded`](View::load_folded) goes on from it.
    ///
    /// A view that folds lines from elsewhere is not also refreshed from a
    /// log; a [`refresh`](View::refresh) of it starts again from its
    /// snapshot, checked against that log.
    ///
    /// # Examples
    ///
    /// A view folded over the lines of another log, as they would arrive
    /// from a stream, gives the writer's state:
    ///
    /// ```
    /// use eventfold::{Event, EventLog, View};
    /// use serde_json::json;
    ///
    /// fn total(sum: i64, event: &Event) -> i64 {
    ///     sum + event.data.as_i64().unwrap_or(0)
    /// }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let (writer_dir, views_dir) = (dir.path().join("writer"), dir.path().join("elsewhere"));
    /// let mut log = EventLog::builder(&writer_dir).view("total", total).open()?;
    /// for amount in [5, 7, -2] {
    ///     log.append(&Event::new("paid", json!(amount)))?;
    /// }
    ///
    /// let mut view = View::new("total", total, &views_dir)?;
    /// for line in log.read_from_seq(0)?.lines() {
    ///     let (seq, line) = line?;
    ///     view.fold_line(seq, line.as_bytes())?;
    /// }
    /// log.refresh_all()?;
    /// assert_eq!(view.state(), &*log.view::<i64>("total")?);
    /// assert_eq!(view.next_seq(), 3);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLine`] if `seq` is not the next event the view
    /// expects, or the line is not an event a reader would accept there
    /// (or, for a typed view, does not decode): the view keeps its state.
    /// [`Error::InvalidConfig`] for a view that was refreshed from a log.
    ///
    /// # Panics
    ///
    /// If the reducer panics, the panic goes on to the caller and the view
    /// starts again from nothing (the state was in the reducer's hands):
    /// [`load_folded`](View::load_folded) goes on from its snapshot.
    pub fn fold_line(&mut self, seq: u64, line: &[u8]) -> Result<&S> {
        self.check_external("fold_line")?;
        if seq != self.seq {
            let holds = match self.seq {
                0 => "no events yet".to_owned(),
                n => format!("events 0 to {}", n - 1),
            };
            return Err(Error::InvalidLine {
                seq,
                detail: format!(
                    "the view expects event {} next (it holds {holds}); lines must come in \
                     order, each once",
                    self.seq
                ),
            });
        }
        if line.contains(&b'\n') {
            return Err(Error::InvalidLine {
                seq,
                detail: "it holds a newline: give each line without its newline".to_owned(),
            });
        }
        let mut lines = Lines::new(
            line.chain(&b"\n"[..]),
            PathBuf::new(),
            self.offset,
            None,
            None,
        )
        .with_seq(Some(seq))
        .with_upcasters(self.upcasters.clone());
        let before = self.status;
        // While the state is in the reducer's hands, the view is marked as
        // holding nothing: a panic takes the state with it.
        self.status = Status::Unloaded;
        let reducer = &self.reducer;
        let state = &mut self.state;
        let folded = panic::catch_unwind(AssertUnwindSafe(|| {
            reducer.fold_next(&mut lines, state, seq)
        }));
        let info = match folded {
            Ok(Ok(Some(info))) => info,
            Ok(Ok(None)) => {
                self.status = before;
                return Err(Error::InvalidLine {
                    seq,
                    detail: "the line is empty".to_owned(),
                });
            }
            Ok(Err(e)) => {
                self.status = before;
                return Err(as_line_error(e, seq));
            }
            Err(payload) => {
                self.start_over();
                panic::resume_unwind(payload);
            }
        };
        self.offset = info.end;
        self.seq = seq + 1;
        self.hash = hash_hex(info.hash);
        self.status = Status::Elsewhere;
        Ok(&self.state)
    }

    /// Loads the view's snapshot to go on folding lines from elsewhere
    /// ([`fold_line`](View::fold_line)) where it stopped; returns the
    /// sequence number of the next line to fold: how many events the
    /// state holds (0 without a snapshot).
    ///
    /// Check the position against the history before going on: the line
    /// of event `next_seq - 1` there must have the line hash
    /// [`last_line_hash`](View::last_line_hash), or the snapshot was made
    /// from another history (then rebuild: delete the snapshot and fold
    /// from event 0). A snapshot of another [version](View::with_version),
    /// a damaged one, one written before sequence numbers existed, or one
    /// that holds events but does not name the line of the last (a log's
    /// view saved just after a rotation) is not loaded (a log message says
    /// why): the fold starts at event 0. So after `load_folded`,
    /// [`last_line_hash`](View::last_line_hash) is `Some` whenever
    /// `next_seq` is above 0.
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
    /// # let (writer_dir, views_dir) = (dir.path().join("writer"), dir.path().join("elsewhere"));
    /// let mut log = EventLog::open(&writer_dir)?;
    /// for n in 0..5 {
    ///     log.append(&Event::new("n", json!(n)))?;
    /// }
    /// let lines: Vec<(u64, String)> = log.read_from_seq(0)?.lines().collect::<Result<_, _>>()?;
    ///
    /// let mut view = View::new("count", count, &views_dir)?;
    /// for (seq, line) in &lines[..3] {
    ///     view.fold_line(*seq, line.as_bytes())?;
    /// }
    /// view.save_folded()?;
    ///
    /// // Later, in another process: go on from the snapshot.
    /// let mut view = View::new("count", count, &views_dir)?;
    /// let next = view.load_folded()?;
    /// assert_eq!((next, *view.state()), (3, 3));
    /// // The history there still holds the event the snapshot ends with.
    /// let (_, _, hash) = log.read_from_seq(next - 1)?.next().expect("event 2")?;
    /// assert_eq!(view.last_line_hash(), Some(hash.as_str()));
    /// for (seq, line) in &lines[next as usize..] {
    ///     view.fold_line(*seq, line.as_bytes())?;
    /// }
    /// assert_eq!(*view.state(), 5);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the snapshot exists but cannot be read;
    /// [`Error::InvalidConfig`] for a view that was refreshed from a log.
    pub fn load_folded(&mut self) -> Result<u64> {
        self.check_external("load_folded")?;
        self.start_over();
        if let Some((snap, len)) = self.read_snapshot()? {
            match snap.seq {
                // A position after events whose last line is not named (a
                // log's view at the start of its active log, after a
                // rotation) cannot be checked against the history.
                Some(seq) if seq > 0 && snap.hash.is_empty() => ::log::info!(
                    "eventfold: view {:?}: its snapshot {} does not name the line of its last \
                     event (it was saved by a log's view just after a rotation), so its place \
                     in another copy of the history cannot be checked; folding from event 0",
                    self.name,
                    self.snapshot_path.display()
                ),
                Some(seq) => {
                    self.seq = seq;
                    self.state = snap.state;
                    self.offset = snap.offset;
                    self.hash = snap.hash;
                    self.status = Status::Elsewhere;
                    self.saved_offset = Some(snap.offset);
                    self.saved_len = len;
                }
                None => ::log::info!(
                    "eventfold: view {:?}: its snapshot {} was written before sequence \
                     numbers existed and does not say how many events it holds; folding from \
                     event 0",
                    self.name,
                    self.snapshot_path.display()
                ),
            }
        }
        Ok(self.seq)
    }

    /// Saves the snapshot of a view folded from lines given by
    /// [`fold_line`](View::fold_line), if the state is ahead of it,
    /// atomically and durably (as a log's views are saved). Call it once
    /// the lines folded are durable where they came from.
    ///
    /// # Examples
    ///
    /// See [`load_folded`](View::load_folded).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Serialize`] if the snapshot cannot be
    /// written (the old one is then untouched), and
    /// [`Error::SnapshotTooLarge`] for a state over 1 GiB of JSON;
    /// [`Error::InvalidConfig`] for a view that was refreshed from a log.
    pub fn save_folded(&mut self) -> Result<()> {
        self.check_external("save_folded")?;
        if self.status == Status::Elsewhere && self.saved_offset != Some(self.offset) {
            self.write_snapshot(None)?;
        }
        Ok(())
    }

    /// This view, reading the lines given to [`fold_line`](View::fold_line)
    /// through `upcasters` (see [`Upcasters`]): give it the writer's, so
    /// that it folds events in today's shape as the writer's views do. A
    /// refresh from a log uses the log's upcasters instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, Upcasters, View};
    /// use serde_json::{Value, json};
    ///
    /// fn cents(mut data: Value) -> Value {
    ///     data["cents"] = json!(data["euros"].as_i64().unwrap_or(0) * 100);
    ///     data
    /// }
    /// fn total(sum: i64, event: &Event) -> i64 { sum + event.data["cents"].as_i64().unwrap_or(0) }
    ///
    /// let upcasters = Upcasters::new().upcast("paid", 1, "paid", cents);
    /// # let dir = tempfile::tempdir()?;
    /// let mut view = View::new("total", total, dir.path())?.with_upcasters(upcasters)?;
    /// // A line of version 1 (no "v"), written before the upcaster existed.
    /// view.fold_line(0, br#"{"type":"paid","data":{"euros":3},"ts":1,"seq":0}"#)?;
    /// assert_eq!(*view.state(), 300);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if a step of `upcasters` cannot stand.
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Result<Self> {
        upcasters.check()?;
        self.upcasters = Some(Arc::new(upcasters));
        Ok(self)
    }

    /// Fails unless the view holds nothing yet or was folded from lines
    /// from elsewhere.
    fn check_external(&self, call: &str) -> Result<()> {
        match self.status {
            Status::Unloaded | Status::Elsewhere => Ok(()),
            Status::Stale | Status::Current { .. } => Err(Error::InvalidConfig {
                reason: format!(
                    "view {:?} was refreshed from a log, so {call} cannot fold lines from \
                     elsewhere into it: use another View for them",
                    self.name
                ),
            }),
        }
    }

    /// Back to the state of a new view: nothing folded.
    fn start_over(&mut self) {
        drop(mem::take(&mut self.state));
        self.seq = 0;
        self.offset = 0;
        self.hash.clear();
        self.status = Status::Unloaded;
        self.saved_offset = None;
        self.saved_len = 0;
    }
}

impl<S> View<S> {
    /// The sequence number of the next event the view folds: how many
    /// events its state holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, View};
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut view = View::new("count", count, dir.path())?;
    /// assert_eq!(view.next_seq(), 0);
    /// view.fold_line(0, br#"{"type":"ping","data":null,"ts":1,"seq":0}"#)?;
    /// assert_eq!(view.next_seq(), 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    /// The line hash (xxh3-64 of the line, 16 hex digits) of the last
    /// event the state holds, when the view knows it: after
    /// [`fold_line`](View::fold_line), or a snapshot loaded at a line.
    /// `None` before any event, and for a log's view at the start of its
    /// active log (after a rotation).
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, View};
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut view = View::new("count", count, dir.path())?;
    /// assert_eq!(view.last_line_hash(), None);
    /// view.fold_line(0, br#"{"type":"ping","data":null,"ts":1,"seq":0}"#)?;
    /// assert_eq!(view.last_line_hash().map(str::len), Some(16));
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn last_line_hash(&self) -> Option<&str> {
        (!self.hash.is_empty()).then_some(self.hash.as_str())
    }
}
