//! The data every system gets: todo-app events of 110 to 140 bytes of JSON,
//! the two reducers of the views, and helpers that fill a log quickly.

use std::collections::BTreeMap;
use std::path::Path;

use eventfold::{Event, EventLog};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::BenchResult;

/// Events written per `append_batch` call when filling a log.
const FILL_CHUNK: u64 = 10_000;

/// The `n`th event of the workload: mostly `todo_added`, every fourth a
/// `todo_done` of the todo added just before.
pub fn event(n: u64) -> Event {
    let ts = 1_700_000_000 + n;
    if n % 4 == 3 {
        Event::with_ts("todo_done", json!({ "id": n - 1 }), ts)
    } else {
        let text = format!("todo {n}: buy milk, eggs and bread at the corner shop");
        Event::with_ts("todo_added", json!({ "id": n, "text": text }), ts)
    }
}

/// Events `first .. first + count` of the workload.
pub fn events(first: u64, count: u64) -> Vec<Event> {
    (first..first + count).map(event).collect()
}

/// The counter view's reducer.
pub fn count(n: u64, _: &Event) -> u64 {
    n + 1
}

/// The workload's events as a typed enum: the line format, decoded
/// straight from each line by a typed view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum TodoEvent {
    /// A todo was added.
    TodoAdded {
        /// Its id.
        id: u64,
        /// What to do.
        text: String,
    },
    /// A todo was done.
    TodoDone {
        /// Its id.
        id: u64,
    },
}

/// What the typed and the `Value` replays compute: both read every field.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Todos added.
    pub added: u64,
    /// Todos done.
    pub done: u64,
    /// The sum of ids and text lengths, so that nothing goes unread.
    pub sum: u64,
}

/// The tally over typed events.
pub fn tally_typed(mut t: Tally, event: &TodoEvent) -> Tally {
    match event {
        TodoEvent::TodoAdded { id, text } => {
            t.added += 1;
            t.sum += id + text.len() as u64;
        }
        TodoEvent::TodoDone { id } => {
            t.done += 1;
            t.sum += id;
        }
    }
    t
}

/// The same tally over `Event`s.
pub fn tally_value(mut t: Tally, event: &Event) -> Tally {
    let id = event.data["id"].as_u64().unwrap_or_default();
    match event.event_type.as_str() {
        "todo_added" => {
            t.added += 1;
            t.sum += id + event.data["text"].as_str().map_or(0, str::len) as u64;
        }
        "todo_done" => {
            t.done += 1;
            t.sum += id;
        }
        _ => {}
    }
    t
}

/// One todo of the todo view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Todo {
    /// What to do.
    pub text: String,
    /// Whether it is done.
    pub done: bool,
}

/// The todo view's state: todos by id.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Todos {
    /// Every todo, by id.
    pub items: BTreeMap<u64, Todo>,
}

/// The todo view's reducer.
pub fn todos(mut state: Todos, event: &Event) -> Todos {
    let id = event.data["id"].as_u64().unwrap_or_default();
    match event.event_type.as_str() {
        "todo_added" => {
            let text = event.data["text"].as_str().unwrap_or_default().to_owned();
            state.items.insert(id, Todo { text, done: false });
        }
        "todo_done" => {
            if let Some(todo) = state.items.get_mut(&id) {
                todo.done = true;
            }
        }
        _ => {}
    }
    state
}

/// A todo state of `n` todos (every fourth one done), shaped as the todo
/// view holds it.
pub fn todo_state(n: u64) -> Todos {
    let items = (0..n)
        .map(|id| {
            let text = format!("todo {id}: buy milk, eggs and bread at the corner shop");
            (
                id,
                Todo {
                    text,
                    done: id % 4 == 3,
                },
            )
        })
        .collect();
    Todos { items }
}

/// Appends events `first .. first + count` to the log in `dir` (no
/// auto-rotation), in large batches.
pub fn fill_log(dir: &Path, first: u64, count: u64) -> BenchResult<()> {
    let mut log = EventLog::builder(dir).max_log_size(0).open()?;
    let mut n = first;
    while n < first + count {
        let chunk = FILL_CHUNK.min(first + count - n);
        log.append_batch(&events(n, chunk))?;
        n += chunk;
    }
    Ok(())
}

/// Appends events to the log in `dir` until its active log holds at least
/// `bytes` bytes; returns the number of events written.
pub fn fill_to_bytes(dir: &Path, bytes: u64) -> BenchResult<u64> {
    fill_bytes(&mut EventLog::builder(dir).max_log_size(0).open()?, bytes)
}

/// Appends events to `log` until its active log holds at least `bytes`
/// bytes; returns the number of events written.
pub fn fill_bytes(log: &mut EventLog, bytes: u64) -> BenchResult<u64> {
    let mut n = 0;
    while log.active_len() < bytes {
        // Events are at least 100 bytes: never overshoot by much.
        let chunk = FILL_CHUNK.min((bytes - log.active_len()).div_ceil(100));
        log.append_batch(&events(n, chunk))?;
        n += chunk;
    }
    Ok(n)
}
