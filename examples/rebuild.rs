//! Changing a reducer: typed events, an upcaster and a view version.
//!
//! Version 1 of an app stores todos as plain text. Version 2 gives every
//! todo a priority. The log is never migrated: the old events stay as they
//! are, an upcaster gives them the default priority "normal" as they are
//! read, and bumping the view's version makes eventfold rebuild the view
//! instead of loading the snapshot the old reducer wrote.
//!
//! ```text
//! $ cargo run --example rebuild
//! data directory: /tmp/eventfold-example-rebuild
//! v1 state: {"items":[{"text":"buy milk"},{"text":"call mum"}]}
//! v2 without a version bump, the v1 snapshot: {"items":[{"text":"buy milk","priority":""},{"text":"call mum","priority":""}]}
//! v2 at version 2, rebuilt: {"items":[{"text":"buy milk","priority":"normal"},{"text":"call mum","priority":"normal"}]}
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

use eventfold::{EventLog, Upcasters};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Version 1's events.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
enum EventV1 {
    TodoAdded { text: String },
}

/// Version 1: a todo is its text.
#[derive(Default, Clone, Serialize, Deserialize)]
struct TodosV1 {
    items: Vec<TodoV1>,
}

#[derive(Clone, Serialize, Deserialize)]
struct TodoV1 {
    text: String,
}

fn reduce_v1(mut state: TodosV1, event: &EventV1) -> TodosV1 {
    match event {
        EventV1::TodoAdded { text } => state.items.push(TodoV1 { text: text.clone() }),
    }
    state
}

/// Version 2's events: a todo has a priority.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
enum EventV2 {
    TodoAdded { text: String, priority: String },
}

/// Version 2: a todo also has a priority. `#[serde(default)]` lets a v1
/// snapshot still load (with an empty priority), which is exactly why the
/// view's version must change: the snapshot is a cache of what the *old*
/// reducer computed.
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

fn reduce_v2(mut state: TodosV2, event: &EventV2) -> TodosV2 {
    match event {
        EventV2::TodoAdded { text, priority } => state.items.push(TodoV2 {
            text: text.clone(),
            priority: priority.clone(),
        }),
    }
    state
}

/// Old events have no `priority`: the upcaster, not a migration, decides
/// what that means.
fn add_priority(mut data: Value) -> Value {
    if let Some(todo) = data.as_object_mut() {
        todo.entry("priority").or_insert(json!("normal"));
    }
    data
}

fn upcasters() -> Upcasters {
    Upcasters::new().upcast("todo_added", 1, "todo_added", add_priority)
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

    // The versions of the program run one after the other, each with its
    // own EventLog: one is closed (dropped) before the next opens the
    // directory, as only one may hold it at a time.
    run_v1(&dir)?;
    run_v2_unversioned(&dir)?;
    run_v2(&dir)
}

fn run_v1(dir: &Path) -> Result<(), Box<dyn Error>> {
    let mut log = EventLog::builder(dir)
        .typed_view("todos", reduce_v1)
        .open()?;
    log.append_typed(&EventV1::TodoAdded {
        text: "buy milk".into(),
    })?;
    log.append_typed(&EventV1::TodoAdded {
        text: "call mum".into(),
    })?;
    // The refresh saves views/todos.snapshot.json in the v1 shape.
    log.refresh_all()?;
    let state = log.view::<TodosV1>("todos")?;
    println!("v1 state: {}", serde_json::to_string(state)?);
    Ok(())
}

/// The mistake the version prevents: a new reducer under the same version
/// loads the old snapshot, which still deserializes.
fn run_v2_unversioned(dir: &Path) -> Result<(), Box<dyn Error>> {
    let mut log = EventLog::builder(dir)
        .upcasters(upcasters())
        .typed_view("todos", reduce_v2)
        .open()?;
    log.refresh_all()?;
    let state = serde_json::to_string(log.view::<TodosV2>("todos")?)?;
    println!("v2 without a version bump, the v1 snapshot: {state}");
    Ok(())
}

fn run_v2(dir: &Path) -> Result<(), Box<dyn Error>> {
    // Same view name, new reducer, version 2: the v1 snapshot is not
    // loaded, and the view is folded again from every event, the old ones
    // upcast.
    let mut log = EventLog::builder(dir)
        .upcasters(upcasters())
        .typed_view("todos", reduce_v2)
        .view_version("todos", 2)
        .open()?;
    log.refresh_all()?;
    let state = serde_json::to_string(log.view::<TodosV2>("todos")?)?;
    println!("v2 at version 2, rebuilt: {state}");

    // New events carry the new field (and "v":2 in their line, so they are
    // not upcast); old and new live side by side.
    log.append_typed(&EventV2::TodoAdded {
        text: "file taxes".into(),
        priority: "high".into(),
    })?;
    log.refresh_all()?;
    println!("v2 todos after a new event:");
    for todo in &log.view::<TodosV2>("todos")?.items {
        println!("  [{}] {}", todo.priority, todo.text);
    }
    Ok(())
}
