//! The "hello world" of eventfold: a todo list kept as a fold over events.
//!
//! Each command is a separate run of the program; the list survives between
//! runs because it lives in `./todo-data` (or the directory in `TODO_DIR`):
//!
//! ```text
//! $ cargo run --example todo_cli -- add "buy milk"
//! added #0: buy milk
//! $ cargo run --example todo_cli -- add "call mum"
//! added #1: call mum
//! $ cargo run --example todo_cli -- done 0
//! completed #0
//! $ cargo run --example todo_cli -- list
//! [x] #0 buy milk
//! [ ] #1 call mum
//! ```
//!
//! Look at the events with `cat todo-data/app.jsonl`. `--help` prints the
//! usage; bad arguments print it to stderr and exit with status 1.

use std::error::Error;
use std::process::ExitCode;

use eventfold::EventLog;
use serde::{Deserialize, Serialize};

const USAGE: &str = "usage: todo_cli add TEXT | done ID | list";

enum Command<'a> {
    Add(&'a str),
    Done(u64),
    List,
}

/// The events: what happened, one enum. Stored as one JSON line each,
/// `{"type":"todo_added","data":{"text":"buy milk"},...}`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
enum TodoEvent {
    TodoAdded { text: String },
    TodoCompleted { id: u64 },
}

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

/// The reducer: how one event changes the state. Pure; event types the
/// enum does not name are skipped by the view before it is called.
fn reduce(mut state: Todos, event: &TodoEvent) -> Todos {
    match event {
        TodoEvent::TodoAdded { text } => {
            state.items.push(Todo {
                id: state.next_id,
                text: text.clone(),
                done: false,
            });
            state.next_id += 1;
        }
        TodoEvent::TodoCompleted { id } => {
            if let Some(item) = state.items.iter_mut().find(|i| i.id == *id) {
                item.done = true;
            }
        }
    }
    state
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag] = &args[..]
        && ["help", "--help", "-h"].contains(&flag.as_str())
    {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("todo_cli: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn Error>> {
    // Check the arguments before touching the disk.
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let command = match args[..] {
        ["add", text] if !text.trim().is_empty() => Command::Add(text),
        ["done", id] => Command::Done(id.parse().map_err(|_| USAGE)?),
        ["list"] => Command::List,
        _ => return Err(USAGE.into()),
    };

    // Open the log (creating the directory on first run) with one view,
    // and bring the view up to date: its snapshot makes that cheap.
    let dir = std::env::var_os("TODO_DIR").unwrap_or_else(|| "todo-data".into());
    let mut log = EventLog::builder(dir)
        .typed_view::<Todos, TodoEvent>("todos", reduce)
        .open()?;
    log.refresh_all()?;
    let todos = log.view::<Todos>("todos")?.clone();

    match command {
        Command::Add(text) => {
            // Writing is appending an event; the state follows from it.
            log.append_typed(&TodoEvent::TodoAdded { text: text.into() })?;
            println!("added #{}: {text}", todos.next_id);
        }
        Command::Done(id) => {
            if !todos.items.iter().any(|t| t.id == id) {
                return Err(format!("no todo #{id}").into());
            }
            log.append_typed(&TodoEvent::TodoCompleted { id })?;
            println!("completed #{id}");
        }
        Command::List => {
            for t in &todos.items {
                println!("[{}] #{} {}", if t.done { "x" } else { " " }, t.id, t.text);
            }
        }
    }
    // Fold the new event in, which also saves the snapshot for next time.
    Ok(log.refresh_all()?)
}
