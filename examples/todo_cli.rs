//! The "hello world" of eventfold: a todo list kept as a fold over events.
//!
//! ```text
//! cargo run --example todo_cli -- add "buy milk"    # added #0: buy milk
//! cargo run --example todo_cli -- add "call mum"    # added #1: call mum
//! cargo run --example todo_cli -- done 0            # completed #0
//! cargo run --example todo_cli -- list              # [x] #0 buy milk
//!                                                   # [ ] #1 call mum
//! ```
//!
//! Data lives in `./todo-data` (or the directory in `TODO_DIR`), so the list
//! survives between runs. Look at it with `cat todo-data/app.jsonl`.

use std::process::ExitCode;

use eventfold::{Event, EventLog};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The state: everything the app knows, derived from the events.
#[derive(Default, Clone, Serialize, Deserialize)]
struct Todos {
    items: Vec<Todo>,
    next_id: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Todo {
    id: u64,
    text: String,
    done: bool,
}

/// The reducer: how one event changes the state. Pure, and it ignores
/// event types it does not know.
fn reduce(mut state: Todos, event: &Event) -> Todos {
    match event.event_type.as_str() {
        "todo_added" => {
            let text = event.data["text"].as_str().unwrap_or_default().to_owned();
            state.items.push(Todo {
                id: state.next_id,
                text,
                done: false,
            });
            state.next_id += 1;
        }
        "todo_completed" => {
            let id = event.data["id"].as_u64();
            if let Some(item) = state.items.iter_mut().find(|i| Some(i.id) == id) {
                item.done = true;
            }
        }
        _ => {}
    }
    state
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    const USAGE: &str = "usage: todo_cli add TEXT | done ID | list";
    let dir = std::env::var("TODO_DIR").unwrap_or_else(|_| "todo-data".into());
    // Open the log (creating the directory on first run) with one view.
    let mut log = EventLog::builder(&dir)
        .view::<Todos>("todos", reduce)
        .open()
        .map_err(|e| e.to_string())?;
    log.refresh_all().map_err(|e| e.to_string())?;
    let todos = log
        .view::<Todos>("todos")
        .map_err(|e| e.to_string())?
        .clone();

    match args {
        [cmd, text] if cmd == "add" && !text.trim().is_empty() => {
            // Writing is appending an event; the state follows from it.
            log.append(&Event::new("todo_added", json!({ "text": text })))
                .map_err(|e| e.to_string())?;
            println!("added #{}: {text}", todos.next_id);
        }
        [cmd, id] if cmd == "done" => {
            let id: u64 = id
                .parse()
                .map_err(|_| format!("not a todo id: {id}\n{USAGE}"))?;
            if !todos.items.iter().any(|t| t.id == id) {
                return Err(format!("no todo #{id}"));
            }
            log.append(&Event::new("todo_completed", json!({ "id": id })))
                .map_err(|e| e.to_string())?;
            println!("completed #{id}");
        }
        [cmd] if cmd == "list" => {
            for t in &todos.items {
                println!("[{}] #{} {}", if t.done { "x" } else { " " }, t.id, t.text);
            }
        }
        _ => return Err(USAGE.into()),
    }
    // Fold the new event in, which also saves the snapshot.
    log.refresh_all().map_err(|e| e.to_string())
}
