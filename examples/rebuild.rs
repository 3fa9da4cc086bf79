//! Changing a reducer and rebuilding its view.
//!
//! Version 1 of an app stores todos as plain text. Version 2 gives every
//! todo a priority. The log is never migrated: the old events stay as they
//! are, the v2 reducer gives them the default priority "normal", and
//! `rebuild_view` replays the whole history through it.
//!
//! ```text
//! $ cargo run --example rebuild
//! data directory: /tmp/eventfold-example-rebuild
//! v1 state: {"items":[{"text":"buy milk"},{"text":"call mum"}]}
//! v2 state loaded from the v1 snapshot: {"items":[{"text":"buy milk","priority":""},{"text":"call mum","priority":""}]}
//! v2 state after rebuild_view: {"items":[{"text":"buy milk","priority":"normal"},{"text":"call mum","priority":"normal"}]}
//! v2 todos after a new event:
//!   [normal] buy milk
//!   [normal] call mum
//!   [high] file taxes
//! ```

use std::error::Error;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::process::ExitCode;

use eventfold::{Event, EventLog};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Version 1: a todo is its text.
#[derive(Default, Clone, Serialize, Deserialize)]
struct TodosV1 {
    items: Vec<TodoV1>,
}

#[derive(Clone, Serialize, Deserialize)]
struct TodoV1 {
    text: String,
}

fn reduce_v1(mut state: TodosV1, event: &Event) -> TodosV1 {
    if event.event_type == "todo_added" {
        let text = event.data["text"].as_str().unwrap_or_default().to_owned();
        state.items.push(TodoV1 { text });
    }
    state
}

/// Version 2: a todo also has a priority. `#[serde(default)]` lets a v1
/// snapshot still load (with an empty priority), which is exactly why the
/// view must be rebuilt: the snapshot is a cache of what the *old* reducer
/// computed.
#[derive(Default, Clone, Serialize, Deserialize)]
struct TodosV2 {
    items: Vec<TodoV2>,
}

#[derive(Clone, Serialize, Deserialize)]
struct TodoV2 {
    text: String,
    #[serde(default)]
    priority: String,
}

/// Old events have no `priority`: the reducer, not a migration, decides
/// what that means.
fn reduce_v2(mut state: TodosV2, event: &Event) -> TodosV2 {
    if event.event_type == "todo_added" {
        state.items.push(TodoV2 {
            text: event.data["text"].as_str().unwrap_or_default().to_owned(),
            priority: event.data["priority"]
                .as_str()
                .unwrap_or("normal")
                .to_owned(),
        });
    }
    state
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rebuild: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    // A fresh directory on every run, so the output is always the same.
    let dir = std::env::temp_dir().join("eventfold-example-rebuild");
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    println!("data directory: {}", dir.display());

    // The two versions of the program run one after the other, each with
    // its own EventLog: the first is closed (dropped) before the second
    // opens the directory, as only one may hold it at a time.
    run_v1(&dir)?;
    run_v2(&dir)
}

fn run_v1(dir: &Path) -> Result<(), Box<dyn Error>> {
    let mut log = EventLog::builder(dir)
        .view::<TodosV1>("todos", reduce_v1)
        .open()?;
    log.append(&Event::new("todo_added", json!({"text": "buy milk"})))?;
    log.append(&Event::new("todo_added", json!({"text": "call mum"})))?;
    // The refresh saves views/todos.snapshot.json in the v1 shape.
    log.refresh_all()?;
    let state = log.view::<TodosV1>("todos")?;
    println!("v1 state: {}", serde_json::to_string(state)?);
    Ok(())
}

fn run_v2(dir: &Path) -> Result<(), Box<dyn Error>> {
    // Same view name, new state type and reducer.
    let mut log = EventLog::builder(dir)
        .view::<TodosV2>("todos", reduce_v2)
        .open()?;

    // Opening loaded the v1 snapshot: it matches the log, and it still
    // deserializes, so a plain refresh would keep its stale priorities.
    log.refresh_all()?;
    let state = serde_json::to_string(log.view::<TodosV2>("todos")?)?;
    println!("v2 state loaded from the v1 snapshot: {state}");

    // Rebuilding throws the snapshot away and replays every event, the
    // archive first and then the active log, through reduce_v2.
    log.rebuild_view("todos")?;
    let state = serde_json::to_string(log.view::<TodosV2>("todos")?)?;
    println!("v2 state after rebuild_view: {state}");

    // New events can carry the new field; old and new live side by side.
    let taxes = json!({"text": "file taxes", "priority": "high"});
    log.append(&Event::new("todo_added", taxes))?;
    log.refresh_all()?;
    println!("v2 todos after a new event:");
    for todo in &log.view::<TodosV2>("todos")?.items {
        println!("  [{}] {}", todo.priority, todo.text);
    }
    Ok(())
}
