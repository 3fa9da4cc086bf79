//! One event log, two views: the todo list itself, and statistics about it.
//!
//! Both views read the same events, but each has its own reducer, its own
//! state type and its own snapshot, and each reducer looks only at the
//! events it cares about. Refreshing one view never touches the other.
//!
//! ```text
//! $ cargo run --example multi_view
//! data directory: /tmp/eventfold-example-multi_view
//! todos:
//!   [x] #0 buy milk
//!   [ ] #1 call mum
//!   [x] #2 write report
//! stats: 4 added, 2 completed, 50% done
//! after "call mum" is completed, refreshing only the stats view:
//! stats: 4 added, 3 completed, 75% done
//! todos: 1 open (not refreshed yet)
//! after refresh_all:
//! todos: 0 open
//! snapshots: stats.snapshot.json, todos.snapshot.json
//! views/stats.snapshot.json: {"state":{"added":4,"completed":3},"offset":590,"hash":"d7e64e9577abf8fe","archive_len":0,"seq":8,"checksum":"70428ada1e8137fe"}
//! ```

use std::error::Error;
use std::fs;
use std::io::ErrorKind;
use std::process::ExitCode;

use eventfold::{Event, EventLog};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The first view: the current todo list.
#[derive(Default, Clone, Serialize, Deserialize)]
struct Todos {
    items: Vec<Todo>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Todo {
    id: u64,
    text: String,
    done: bool,
}

/// The events carry their ids, so that every view agrees on them.
fn todos(mut state: Todos, event: &Event) -> Todos {
    let id = event.data["id"].as_u64().unwrap_or(u64::MAX);
    match event.event_type.as_str() {
        "todo_added" => state.items.push(Todo {
            id,
            text: event.data["text"].as_str().unwrap_or_default().to_owned(),
            done: false,
        }),
        "todo_completed" => {
            if let Some(todo) = state.items.iter_mut().find(|t| t.id == id) {
                todo.done = true;
            }
        }
        "todo_deleted" => state.items.retain(|t| t.id != id),
        _ => {}
    }
    state
}

/// The second view: running totals. It ignores `todo_deleted` (a deleted
/// todo was still added) and never looks at the text.
#[derive(Default, Clone, Serialize, Deserialize)]
struct Stats {
    added: u64,
    completed: u64,
}

impl Stats {
    /// Derived numbers need not be stored: compute them from the state.
    fn completion_rate(&self) -> u64 {
        (self.completed * 100).checked_div(self.added).unwrap_or(0)
    }
}

fn stats(mut state: Stats, event: &Event) -> Stats {
    match event.event_type.as_str() {
        "todo_added" => state.added += 1,
        "todo_completed" => state.completed += 1,
        _ => {}
    }
    state
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("multi_view: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    // A fresh directory on every run, so the output is always the same.
    let dir = std::env::temp_dir().join("eventfold-example-multi_view");
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    println!("data directory: {}", dir.display());

    // Two views on one log. Each is a name, a state type and a reducer.
    let mut log = EventLog::builder(&dir)
        .view::<Todos>("todos", todos)
        .view::<Stats>("stats", stats)
        .open()?;

    // Fixed timestamps make the log's bytes, and so the snapshot's offset
    // and hash printed at the end, the same on every run.
    let events = [
        ("todo_added", json!({"id": 0, "text": "buy milk"})),
        ("todo_added", json!({"id": 1, "text": "call mum"})),
        ("todo_added", json!({"id": 2, "text": "write report"})),
        ("todo_added", json!({"id": 3, "text": "water plants"})),
        ("todo_completed", json!({"id": 0})),
        ("todo_completed", json!({"id": 2})),
        ("todo_deleted", json!({"id": 3})),
    ];
    for (ts, (event_type, data)) in (1_700_000_000..).zip(events) {
        log.append(&Event::with_ts(event_type, data, ts))?;
    }
    log.refresh_all()?;

    // The same seven events, seen through two lenses. The deleted todo is
    // gone from the list but still counts as added.
    println!("todos:");
    for t in &log.view::<Todos>("todos")?.items {
        let mark = if t.done { "x" } else { " " };
        println!("  [{mark}] #{} {}", t.id, t.text);
    }
    print_stats(log.view::<Stats>("stats")?);

    // Refresh only the stats view: it reads the new event and saves its
    // snapshot; the todos view keeps the state of its last refresh.
    let call_mum_done = Event::with_ts("todo_completed", json!({"id": 1}), 1_700_000_007);
    log.append(&call_mum_done)?;
    log.refresh_view("stats")?;
    println!("after \"call mum\" is completed, refreshing only the stats view:");
    print_stats(log.view::<Stats>("stats")?);
    println!("todos: {} open (not refreshed yet)", open_count(&log)?);

    // refresh_all catches the todos view up too.
    log.refresh_all()?;
    println!("after refresh_all:");
    println!("todos: {} open", open_count(&log)?);

    // Snapshots are saved as events pile up (every 64 KiB of log or so),
    // by `save_views`, and when the log is closed. Save them now to look.
    log.save_views()?;
    // Each view has its own snapshot file: its state, and the offset and
    // hash of the last line it folded. A new run would start from there.
    let mut snapshots: Vec<String> = fs::read_dir(dir.join("views"))?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    snapshots.sort();
    println!("snapshots: {}", snapshots.join(", "));
    let stats_snapshot = fs::read_to_string(dir.join("views/stats.snapshot.json"))?;
    println!("views/stats.snapshot.json: {}", stats_snapshot.trim_end());
    Ok(())
}

fn print_stats(stats: &Stats) {
    println!(
        "stats: {} added, {} completed, {}% done",
        stats.added,
        stats.completed,
        stats.completion_rate()
    );
}

fn open_count(log: &EventLog) -> eventfold::Result<usize> {
    Ok(log
        .view::<Todos>("todos")?
        .items
        .iter()
        .filter(|t| !t.done)
        .count())
}
