//! Property tests of the design: reducer determinism, rotation invariance,
//! snapshot equivalence, ordering and multi-view consistency; then one
//! model-based test that runs random operations (append, append_batch,
//! conditional appends that win or lose, refresh, rebuild, rotate, reopen,
//! crash, kill, an append cut short in flight) and checks the log after
//! each against a plain `Vec<Event>` and folds of it: every event's
//! sequence number is its index in that `Vec`, read back from any
//! position.
//!
//! A failing case is shrunk to a minimal sequence of operations and saved
//! in `tests/props.proptest-regressions` (keep that file in the
//! repository: proptest replays its cases first on every run); then pin it
//! as a named `#[test]` at the end of this file, with a comment on what it
//! caught.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use eventfold::{Event, EventLog};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};
use serde_json::{Value, json};

use common::*;

/// The registered views: three from `common`, one that keeps every
/// event's type and text, so unicode must survive the snapshots, and one
/// whose reducer gets sequence numbers.
const VIEWS: [&str; 5] = ["count", "seq", "todos", "texts", "at"];

fn open(dir: &Path, max_log_size: u64) -> EventLog {
    builder_with_views(dir)
        .view::<Texts>("texts", texts_reducer)
        .view_with_seq::<Vec<[u64; 2]>>("at", at_reducer)
        .max_log_size(max_log_size)
        .open()
        .expect("open")
}

/// Pairs each event's sequence number with its `n`, the index the test
/// gave it: they must be equal.
fn at_reducer(mut state: Vec<[u64; 2]>, seq: u64, event: &Event) -> Vec<[u64; 2]> {
    state.push([seq, event.data["n"].as_u64().unwrap_or(u64::MAX)]);
    state
}

/// A registered view's current state, as JSON.
fn view_json(log: &EventLog, name: &str) -> Value {
    let value = match name {
        "count" => serde_json::to_value(log.view::<u64>(name).unwrap()),
        "seq" => serde_json::to_value(log.view::<Vec<u64>>(name).unwrap()),
        "todos" => serde_json::to_value(log.view::<TodoState>(name).unwrap()),
        "texts" => serde_json::to_value(log.view::<Texts>(name).unwrap()),
        "at" => serde_json::to_value(log.view::<Vec<[u64; 2]>>(name).unwrap()),
        _ => unreachable!("unknown view {name}"),
    };
    value.expect("state to JSON")
}

/// What view `name`'s reducer folds from `events`, as JSON.
fn fold_json(name: &str, events: &[Event]) -> Value {
    let value = match name {
        "count" => serde_json::to_value(events.iter().fold(0, counter_reducer)),
        "seq" => serde_json::to_value(events.iter().fold(Vec::new(), seq_reducer)),
        "todos" => serde_json::to_value(events.iter().fold(TodoState::default(), todo_reducer)),
        "texts" => serde_json::to_value(events.iter().fold(Texts::new(), texts_reducer)),
        "at" => serde_json::to_value(
            (0..)
                .zip(events)
                .fold(Vec::new(), |s, (seq, e)| at_reducer(s, seq, e)),
        ),
        _ => unreachable!("unknown view {name}"),
    };
    value.expect("state to JSON")
}

fn views_json(log: &EventLog) -> Vec<Value> {
    VIEWS.iter().map(|name| view_json(log, name)).collect()
}

fn folds_json(events: &[Event]) -> Vec<Value> {
    VIEWS.iter().map(|name| fold_json(name, events)).collect()
}

/// Turns an eventfold error into a test failure (so that it shrinks).
fn ok<T>(result: eventfold::Result<T>) -> Result<T, TestCaseError> {
    result.map_err(|e| TestCaseError::fail(e.to_string()))
}

fn read_full(log: &EventLog) -> Result<Vec<Event>, TestCaseError> {
    ok(log
        .read_full()
        .and_then(|items| items.map(|item| item.map(|(e, _)| e)).collect()))
}

// ------------------------------------------------------------- generators

/// Any text: unicode, control characters, quotes and newlines included.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..10).prop_map(String::from_iter)
}

/// An event before it gets its sequence number `n`.
#[derive(Debug, Clone)]
struct EventSpec {
    event_type: String,
    text: String,
    id: u64,
    ts: u64,
}

impl EventSpec {
    fn event(&self, n: usize) -> Event {
        let data = json!({ "n": n, "id": self.id, "text": self.text });
        Event::with_ts(self.event_type.clone(), data, self.ts)
    }
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    let event_type = prop_oneof![
        3 => prop::sample::select(vec!["todo_added", "todo_completed", "todo_deleted"])
            .prop_map(str::to_owned),
        1 => text(),
    ];
    (event_type, text(), 0u64..4, any::<u64>()).prop_map(|(event_type, text, id, ts)| EventSpec {
        event_type,
        text,
        id,
        ts,
    })
}

/// One append, then what happens after it.
#[derive(Debug, Clone)]
struct Step {
    event: EventSpec,
    /// Bit `i` set: refresh view `VIEWS[i]` alone.
    refresh: u8,
    rotate: bool,
    reopen: bool,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = (
        event_spec(),
        0u8..16,
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(event, refresh, rotate, reopen)| Step {
            event,
            refresh,
            rotate,
            reopen,
        });
    prop::collection::vec(step, 1..14)
}

/// Plays `steps` on a log in `dir` (rotations only if `rotate`), checking
/// after each step that every view refreshed then equals the fold of the
/// events so far. Returns the log and the events appended.
fn play(dir: &Path, steps: &[Step], rotate: bool) -> Result<(EventLog, Vec<Event>), TestCaseError> {
    let mut log = open(dir, 0);
    let mut events = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        events.push(step.event.event(n));
        ok(log.append(&events[n]))?;
        for (i, name) in VIEWS.iter().enumerate() {
            if step.refresh & (1 << i) != 0 {
                ok(log.refresh_view(name))?;
                prop_assert_eq!(view_json(&log, name), fold_json(name, &events), "{}", name);
            }
        }
        if rotate && step.rotate {
            ok(log.rotate())?;
        }
        if step.reopen {
            drop(log);
            log = open(dir, 0);
        }
    }
    Ok((log, events))
}

/// 64 cases per property; shrunk failures are saved next to this file,
/// in `tests/props.proptest-regressions`, and replayed first on every run.
/// Named explicitly: proptest's default (`SourceParallel`) looks for a
/// `lib.rs` above `tests/`, finds none, and only falls back to this file
/// with a warning.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------ properties of the design

proptest! {
    #![proptest_config(config())]

    /// Reducer determinism: views refreshed incrementally, with snapshots at
    /// random points and reopens between them, end in the state of one
    /// fold over the full log.
    #[test]
    fn incremental_refreshes_equal_full_replay(steps in steps()) {
        let dir = test_dir();
        let (mut log, events) = play(dir.path(), &steps, false)?;
        ok(log.refresh_all())?;
        prop_assert_eq!(views_json(&log), folds_json(&read_full(&log)?));
        prop_assert_eq!(views_json(&log), folds_json(&events));
    }

    /// Rotation invariance: the same events with rotations at random points
    /// give the same history and the same states as without any rotation.
    #[test]
    fn rotations_change_neither_history_nor_state(steps in steps()) {
        let (rotated, plain) = (test_dir(), test_dir());
        let (mut with, _) = play(rotated.path(), &steps, true)?;
        let (mut without, _) = play(plain.path(), &steps, false)?;
        ok(with.refresh_all())?;
        ok(without.refresh_all())?;
        prop_assert_eq!(read_full(&with)?, read_full(&without)?);
        prop_assert_eq!(views_json(&with), views_json(&without));
    }

    /// Snapshot equivalence: rebuilding every view, or deleting every
    /// snapshot and reopening, gives the incrementally maintained states.
    #[test]
    fn rebuilt_views_equal_incremental_views(steps in steps()) {
        let dir = test_dir();
        let (mut log, _) = play(dir.path(), &steps, true)?;
        ok(log.refresh_all())?;
        let incremental = views_json(&log);
        for name in VIEWS {
            ok(log.rebuild_view(name))?;
        }
        prop_assert_eq!(views_json(&log), incremental.clone());
        drop(log);
        for name in VIEWS {
            fs::remove_file(snapshot_file(dir.path(), name)).expect("remove snapshot");
        }
        let mut log = open(dir.path(), 0);
        ok(log.refresh_all())?;
        prop_assert_eq!(views_json(&log), incremental);
    }

    /// Ordering: after arbitrary rotations, `read_full` (and the raw lines of
    /// archive and active log, read without eventfold) are exactly the
    /// appended events in order.
    #[test]
    fn read_full_is_append_order(steps in steps()) {
        let dir = test_dir();
        let (log, events) = play(dir.path(), &steps, true)?;
        prop_assert_eq!(&read_full(&log)?, &events);
        let mut lines = if dir.path().join("archive.jsonl.zst").exists() {
            archive_lines(dir.path())
        } else {
            Vec::new()
        };
        let active = fs::read_to_string(dir.path().join("app.jsonl")).expect("read log");
        lines.extend(active.lines().map(str::to_owned));
        let expected: Vec<String> = (0..).zip(&events).map(|(seq, e)| stored_line(e, seq)).collect();
        prop_assert_eq!(lines, expected);
    }

    /// Multi-view consistency: after `refresh_all`, every view is the fold
    /// of the full history with its own reducer, however far behind each
    /// one was.
    #[test]
    fn every_view_is_the_fold_of_its_reducer(steps in steps()) {
        let dir = test_dir();
        let (mut log, events) = play(dir.path(), &steps, true)?;
        ok(log.refresh_all())?;
        for name in VIEWS {
            prop_assert_eq!(view_json(&log, name), fold_json(name, &events), "{}", name);
        }
    }
}

// ------------------------------------------------------ model-based test

#[derive(Debug, Clone)]
enum Op {
    Append(EventSpec),
    Refresh,
    RefreshView(usize),
    Rebuild(usize),
    Rotate,
    Reopen,
    /// Drop the log, leave a torn line (no newline) at the end of
    /// `app.jsonl`, and open again.
    Crash(Vec<u8>),
    AppendBatch(Vec<EventSpec>),
    /// A kill: the files stay exactly as they are while the log is open
    /// (no snapshot is saved on the way out), plus a torn line; then open.
    Kill(Vec<u8>),
    /// A crash in the middle of an `append_batch` (or, with one event, an
    /// `append`): the call ran its auto-rotation if one was due, then only
    /// the first `cut` bytes of the batch's lines reached the file (any
    /// byte: none, whole lines, part of a line); then open. The log was
    /// dropped normally (snapshots saved), or killed (`kill`: files as they
    /// were while open).
    InFlight {
        batch: Vec<EventSpec>,
        cut: Index,
        kill: bool,
    },
    /// `append_if` with the next sequence number off by `off` (0, or a
    /// negative offset from 0: the right one, which wins; anything else
    /// loses and writes nothing).
    AppendIf {
        off: i64,
        batch: Vec<EventSpec>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let garbage = prop::collection::vec(
        any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
        1..40,
    );
    prop_oneof![
        6 => event_spec().prop_map(Op::Append),
        2 => Just(Op::Refresh),
        2 => (0..VIEWS.len()).prop_map(Op::RefreshView),
        1 => (0..VIEWS.len()).prop_map(Op::Rebuild),
        2 => Just(Op::Rotate),
        1 => Just(Op::Reopen),
        1 => garbage.clone().prop_map(Op::Crash),
        2 => prop::collection::vec(event_spec(), 0..6).prop_map(Op::AppendBatch),
        1 => garbage.prop_map(Op::Kill),
        2 => (prop::collection::vec(event_spec(), 1..5), any::<Index>(), any::<bool>())
            .prop_map(|(batch, cut, kill)| Op::InFlight { batch, cut, kill }),
        2 => (prop_oneof![2 => Just(0i64), 1 => -2i64..3], prop::collection::vec(event_spec(), 0..4))
            .prop_map(|(off, batch)| Op::AppendIf { off, batch }),
    ]
}

/// What an append in flight leaves in `app.jsonl`: the first `cut` bytes
/// of the batch's lines, events numbered from `first`.
fn in_flight_bytes(batch: &[EventSpec], cut: &Index, first: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, spec) in batch.iter().enumerate() {
        let seq = (first + i) as u64;
        bytes.extend_from_slice(stored_line(&spec.event(first + i), seq).as_bytes());
        bytes.push(b'\n');
    }
    bytes.truncate(cut.index(bytes.len() + 1));
    bytes
}

/// How many events a view has folded.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    Exactly(usize),
    /// After a kill: the view restarted from its snapshot, which may be
    /// behind what it had folded (snapshots are saved now and then).
    AtMost(usize),
}

impl Default for Seen {
    fn default() -> Self {
        Seen::Exactly(0)
    }
}

/// What the log should hold, kept in memory.
#[derive(Debug, Default)]
struct Model {
    events: Vec<Event>,
    /// How many events each view has folded.
    seen: [Seen; VIEWS.len()],
    /// How many events are in the archive.
    archived: usize,
    /// Bytes of the active log.
    active_len: u64,
    /// Expected content of `app.jsonl.torn`.
    torn: Vec<u8>,
    max_log_size: u64,
}

impl Model {
    fn needs_rotation(&self) -> bool {
        self.max_log_size > 0 && self.active_len > self.max_log_size
    }

    /// A rotation refreshes every view first; it does nothing at all on an
    /// empty active log.
    fn rotate(&mut self) {
        if self.active_len > 0 {
            self.seen = [Seen::Exactly(self.events.len()); VIEWS.len()];
            self.archived = self.events.len();
            self.active_len = 0;
        }
    }

    /// Auto-rotation, on open and before an append.
    fn auto_rotate(&mut self) {
        if self.needs_rotation() {
            self.rotate();
        }
    }

    /// After a kill a view restarts from its snapshot, which may be behind.
    fn forget_unsaved(&mut self) {
        for seen in &mut self.seen {
            if let Seen::Exactly(n) = *seen {
                *seen = Seen::AtMost(n);
            }
        }
    }

    /// Adds one event whose line is `line_len` bytes, newline included.
    fn push(&mut self, event: Event, line_len: usize) {
        self.active_len += line_len as u64;
        self.events.push(event);
    }

    /// Appends the events of `specs`, as one append or batch does.
    fn append(&mut self, specs: &[EventSpec]) {
        if !specs.is_empty() {
            self.auto_rotate();
        }
        for spec in specs {
            let n = self.events.len();
            let event = spec.event(n);
            let len = stored_line(&event, n as u64).len() + 1;
            self.push(event, len);
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(spec) => self.append(std::slice::from_ref(spec)),
            Op::AppendBatch(specs) => self.append(specs),
            Op::AppendIf { off, batch } => {
                let next = self.events.len() as u64;
                if next.saturating_add_signed(*off) == next {
                    self.append(batch);
                }
            }
            Op::Refresh => self.seen = [Seen::Exactly(self.events.len()); VIEWS.len()],
            Op::RefreshView(i) | Op::Rebuild(i) => self.seen[*i] = Seen::Exactly(self.events.len()),
            Op::Rotate => self.rotate(),
            Op::Reopen => self.auto_rotate(),
            Op::Crash(garbage) => {
                self.torn.extend_from_slice(garbage);
                self.torn.push(b'\n');
                self.auto_rotate();
            }
            Op::Kill(garbage) => {
                self.forget_unsaved();
                self.torn.extend_from_slice(garbage);
                self.torn.push(b'\n');
                self.auto_rotate();
            }
            Op::InFlight { batch, cut, kill } => {
                // The call rotated first if it was due, then crashed.
                self.auto_rotate();
                if *kill {
                    self.forget_unsaved();
                }
                let first = self.events.len();
                let mut left = in_flight_bytes(batch, cut, first).len();
                for (i, spec) in batch.iter().enumerate() {
                    let event = spec.event(first + i);
                    let line = stored_line(&event, (first + i) as u64);
                    if left > line.len() {
                        // A whole line reached the file before the crash:
                        // in flight, never acknowledged, and kept.
                        left -= line.len() + 1;
                        self.push(event, line.len() + 1);
                        continue;
                    }
                    if left == line.len() {
                        // A whole event without its newline: open adds it.
                        self.push(event, line.len() + 1);
                    } else if left > 0 {
                        // A partial line: cut on open, kept in the side file.
                        self.torn.extend_from_slice(&line.as_bytes()[..left]);
                        self.torn.push(b'\n');
                    }
                    break;
                }
                self.auto_rotate();
            }
        }
    }
}

/// Runs `op` on the real log.
fn run(log: EventLog, dir: &Path, model: &Model, op: &Op) -> Result<EventLog, TestCaseError> {
    let mut log = log;
    match op {
        Op::Append(spec) => ok(log.append(&spec.event(model.events.len())).map(drop))?,
        Op::Refresh => ok(log.refresh_all())?,
        Op::RefreshView(i) => ok(log.refresh_view(VIEWS[*i]))?,
        Op::Rebuild(i) => ok(log.rebuild_view(VIEWS[*i]))?,
        Op::Rotate => ok(log.rotate())?,
        Op::Reopen => {
            drop(log);
            log = open(dir, model.max_log_size);
        }
        Op::Crash(garbage) => {
            drop(log);
            append_torn(dir, garbage);
            log = open(dir, model.max_log_size);
        }
        Op::AppendBatch(specs) => {
            let first = model.events.len();
            let batch: Vec<Event> = specs
                .iter()
                .enumerate()
                .map(|(i, s)| s.event(first + i))
                .collect();
            ok(log.append_batch(&batch).map(drop))?;
        }
        Op::Kill(garbage) => {
            let image = files_of(dir);
            drop(log);
            restore(dir, &image);
            append_torn(dir, garbage);
            log = open(dir, model.max_log_size);
        }
        Op::InFlight { batch, cut, kill } => {
            // What `append_batch` does before it writes.
            if model.needs_rotation() {
                ok(log.rotate())?;
            }
            let image = kill.then(|| files_of(dir));
            drop(log);
            if let Some(image) = image {
                restore(dir, &image);
            }
            append_torn(dir, &in_flight_bytes(batch, cut, model.events.len()));
            log = open(dir, model.max_log_size);
        }
        Op::AppendIf { off, batch } => {
            let next = model.events.len() as u64;
            let expected = next.saturating_add_signed(*off);
            let first = model.events.len();
            let events: Vec<Event> = (first..).zip(batch).map(|(n, s)| s.event(n)).collect();
            match log.append_if(expected, &events) {
                Ok(offsets) => {
                    prop_assert_eq!(expected, next, "append_if accepted a wrong position");
                    prop_assert_eq!(offsets.len(), events.len());
                }
                Err(eventfold::Error::Conflict {
                    expected: e,
                    actual,
                }) => {
                    prop_assert_ne!(expected, next, "append_if refused the right position");
                    prop_assert_eq!((e, actual), (expected, next));
                }
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            }
        }
    }
    Ok(log)
}

/// Appends bytes to `app.jsonl` behind the log's back: a torn or
/// unacknowledged write.
fn append_torn(dir: &Path, garbage: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(dir.join("app.jsonl"))
        .and_then(|mut f| f.write_all(garbage))
        .expect("write torn line");
}

/// Every file of the data directory and `views/`, with its bytes.
fn files_of(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    [dir.to_path_buf(), dir.join("views")]
        .iter()
        .flat_map(|d| fs::read_dir(d).expect("read dir"))
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = fs::read(&path).expect("read file");
            (path, bytes)
        })
        .collect()
}

/// Puts the files back exactly as `image` has them, removing any other.
fn restore(dir: &Path, image: &[(std::path::PathBuf, Vec<u8>)]) {
    for (path, _) in files_of(dir) {
        fs::remove_file(path).expect("remove file");
    }
    for (path, bytes) in image {
        fs::write(path, bytes).expect("restore file");
    }
}

/// Checks the log and its files against the model.
fn check(log: &EventLog, dir: &Path, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(&read_full(log)?, &model.events);
    let active: Vec<Event> = ok(log
        .read_from(0)
        .and_then(|items| items.map(|item| item.map(|(e, _, _)| e)).collect()))?;
    prop_assert_eq!(&active[..], &model.events[model.archived..]);
    prop_assert_eq!(log.active_len(), model.active_len);
    prop_assert_eq!(file_size(&dir.join("app.jsonl")), model.active_len);
    for (i, name) in VIEWS.iter().enumerate() {
        let actual = view_json(log, name);
        match model.seen[i] {
            Seen::Exactly(n) => {
                prop_assert_eq!(actual, fold_json(name, &model.events[..n]), "view {}", name);
            }
            Seen::AtMost(n) => prop_assert!(
                (0..=n).any(|k| actual == fold_json(name, &model.events[..k])),
                "view {} is not the fold of a prefix of the {} events it had seen",
                name,
                n
            ),
        }
    }
    let archived: Vec<String> = match model.archived {
        0 => Vec::new(),
        _ => archive_lines(dir),
    };
    let expected: Vec<String> = (0..)
        .zip(&model.events[..model.archived])
        .map(|(seq, e)| stored_line(e, seq))
        .collect();
    prop_assert_eq!(archived, expected, "archive content");
    check_positions(log, model)?;
    let torn = fs::read(dir.join("app.jsonl.torn")).unwrap_or_default();
    prop_assert_eq!(torn, model.torn.clone(), "app.jsonl.torn");
    prop_assert!(!dir.join("rotation.json").exists());
    Ok(())
}

/// Every event is at its index in the model, read from any position:
/// the first, the first of the active log, one inside each part, the end.
fn check_positions(log: &EventLog, model: &Model) -> Result<(), TestCaseError> {
    let n = model.events.len() as u64;
    prop_assert_eq!(log.next_seq(), n);
    let archived = model.archived as u64;
    let starts = [0, archived / 2, archived, (archived + n) / 2, n];
    for start in starts {
        let read: Vec<(u64, Event)> = ok(log
            .read_from_seq(start)
            .and_then(|items| items.map(|item| item.map(|(seq, e, _)| (seq, e))).collect()))?;
        let expected: Vec<(u64, Event)> = (start..)
            .zip(model.events[start as usize..].iter().cloned())
            .collect();
        prop_assert_eq!(read, expected, "read_from_seq({})", start);
    }
    let past_end = matches!(
        log.read_from_seq(n + 1),
        Err(eventfold::Error::InvalidSeq { .. })
    );
    prop_assert!(past_end, "read_from_seq past the end");
    if n > 0 {
        let at = n / 2;
        let state = ok(log.state_at(counter_reducer, at))?;
        prop_assert_eq!(state, at + 1, "state_at({})", at);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Random operations, with or without auto-rotation, checked against
    /// the model after every one; at the end every view, refreshed, rebuilt
    /// or replayed without snapshots, is the fold of the whole history.
    #[test]
    fn log_behaves_like_a_vec_of_events(
        ops in prop::collection::vec(op(), 1..40),
        max_log_size in prop_oneof![Just(0u64), 150u64..600],
    ) {
        let dir = test_dir();
        let dir = dir.path();
        let mut model = Model { max_log_size, ..Model::default() };
        let mut log = open(dir, max_log_size);
        for op in &ops {
            log = run(log, dir, &model, op)?;
            model.apply(op);
            check(&log, dir, &model)?;
        }
        ok(log.refresh_all())?;
        let full = folds_json(&model.events);
        prop_assert_eq!(views_json(&log), full.clone(), "refresh_all");
        for name in VIEWS {
            ok(log.rebuild_view(name))?;
        }
        prop_assert_eq!(views_json(&log), full, "rebuild_view");
    }
}
