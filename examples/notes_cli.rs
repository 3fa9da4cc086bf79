//! A note-taking CLI with tags: a richer state than `todo_cli`, and two
//! views that work together.
//!
//! - the `notes` view is the current notes, each with its text and tags;
//! - the `tags` view is an index from each tag to the notes that carry it,
//!   which gives both the tag filter and the tag statistics.
//!
//! Each command is a separate run; the notes live in `./notes-data` (or the
//! directory in `NOTES_DIR`):
//!
//! ```text
//! $ cargo run --example notes_cli -- add "buy milk" --tag home --tag errands
//! added note #0: buy milk [home, errands]
//! $ cargo run --example notes_cli -- add fix the bike -t home
//! added note #1: fix the bike [home]
//! $ cargo run --example notes_cli -- add "quarterly report" --tag work
//! added note #2: quarterly report [work]
//! $ cargo run --example notes_cli -- add "call the bank" --tag errands --tag home
//! added note #3: call the bank [errands, home]
//! $ cargo run --example notes_cli -- tag 2 urgent
//! tagged note #2 with urgent
//! $ cargo run --example notes_cli -- list --tag errands
//! #0 buy milk [home, errands]
//! #3 call the bank [errands, home]
//! $ cargo run --example notes_cli -- delete 0
//! deleted note #0
//! $ cargo run --example notes_cli -- list
//! #1 fix the bike [home]
//! #2 quarterly report [work, urgent]
//! #3 call the bank [errands, home]
//! $ cargo run --example notes_cli -- tags
//! home: 2 notes
//! errands: 1 note
//! urgent: 1 note
//! work: 1 note
//! most used: home
//! ```
//!
//! Bad arguments print the usage to stderr and exit with status 1.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::process::ExitCode;

use eventfold::{Event, EventLog};
use serde::{Deserialize, Serialize};
use serde_json::json;

const USAGE: &str = "\
usage: notes_cli COMMAND
  add TEXT... [--tag TAG]...   add a note (-t is short for --tag)
  tag ID TAG                   add a tag to a note
  delete ID                    delete a note
  list [--tag TAG]             list the notes, or only those tagged TAG
  tags                         tag statistics, most used first";

// Events, as the log stores them. Each carries the note's id, so that both
// views agree on it without sharing any state:
//   note_added   {"id": 0, "text": "buy milk", "tags": ["home"]}
//   note_tagged  {"id": 0, "tag": "errands"}
//   note_deleted {"id": 0}

/// The `notes` view: the notes that exist now.
#[derive(Default, Clone, Serialize, Deserialize)]
struct Notes {
    notes: BTreeMap<u64, Note>,
    next_id: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Note {
    text: String,
    tags: Vec<String>,
}

fn notes_view(mut state: Notes, event: &Event) -> Notes {
    let Some(id) = event.data["id"].as_u64() else {
        return state; // not a note event, or a malformed one: skip it
    };
    match event.event_type.as_str() {
        "note_added" => {
            let text = event.data["text"].as_str().unwrap_or_default().to_owned();
            let tags = strings(&event.data["tags"]);
            state.notes.insert(id, Note { text, tags });
            state.next_id = state.next_id.max(id + 1);
        }
        "note_tagged" => {
            let tag = event.data["tag"].as_str().unwrap_or_default();
            if let Some(note) = state.notes.get_mut(&id)
                && !note.tags.iter().any(|t| t == tag)
            {
                note.tags.push(tag.to_owned());
            }
        }
        "note_deleted" => {
            state.notes.remove(&id);
        }
        _ => {}
    }
    state
}

/// The `tags` view: tag -> ids of the notes that have it. It never looks
/// at a note's text.
type Tags = BTreeMap<String, BTreeSet<u64>>;

fn tags_view(mut state: Tags, event: &Event) -> Tags {
    let Some(id) = event.data["id"].as_u64() else {
        return state;
    };
    match event.event_type.as_str() {
        "note_added" => {
            for tag in strings(&event.data["tags"]) {
                state.entry(tag).or_default().insert(id);
            }
        }
        "note_tagged" => {
            if let Some(tag) = event.data["tag"].as_str() {
                state.entry(tag.to_owned()).or_default().insert(id);
            }
        }
        "note_deleted" => {
            // A deleted note leaves every tag; unused tags disappear.
            state.retain(|_, ids| {
                ids.remove(&id);
                !ids.is_empty()
            });
        }
        _ => {}
    }
    state
}

/// The strings of a JSON array; anything else counts as empty.
fn strings(value: &serde_json::Value) -> Vec<String> {
    let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
    items
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

enum Command {
    Add { text: String, tags: Vec<String> },
    Tag { id: u64, tag: String },
    Delete { id: u64 },
    List { tag: Option<String> },
    Tags,
}

/// Parses the arguments; `None` means they are not valid.
fn parse(args: &[String]) -> Option<Command> {
    let (command, rest) = args.split_first()?;
    let id = |s: &String| s.parse::<u64>().ok();
    Some(match (command.as_str(), rest) {
        ("add", _) => {
            let (mut words, mut tags) = (Vec::new(), Vec::new());
            let mut rest = rest.iter();
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--tag" | "-t" => push_tag(&mut tags, valid_tag(rest.next()?)?),
                    option if option.starts_with('-') => return None,
                    word => words.push(word),
                }
            }
            let text = words.join(" ").trim().to_owned();
            if text.is_empty() {
                return None;
            }
            Command::Add { text, tags }
        }
        ("tag", [note, tag]) => Command::Tag {
            id: id(note)?,
            tag: valid_tag(tag)?,
        },
        ("delete", [note]) => Command::Delete { id: id(note)? },
        ("list", []) => Command::List { tag: None },
        ("list", [flag, tag]) if flag == "--tag" || flag == "-t" => Command::List {
            tag: Some(valid_tag(tag)?),
        },
        ("tags", []) => Command::Tags,
        _ => return None,
    })
}

/// A tag is a non-empty word that does not look like an option.
fn valid_tag(tag: &str) -> Option<String> {
    let tag = tag.trim();
    let ok = !tag.is_empty() && !tag.starts_with('-') && !tag.contains(char::is_whitespace);
    ok.then(|| tag.to_owned())
}

fn push_tag(tags: &mut Vec<String>, tag: String) {
    if !tags.contains(&tag) {
        tags.push(tag);
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag] = &args[..]
        && ["help", "--help", "-h"].contains(&flag.as_str())
    {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    // Check the arguments before touching the disk.
    let Some(command) = parse(&args) else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("notes_cli: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), Box<dyn Error>> {
    let dir = std::env::var_os("NOTES_DIR").unwrap_or_else(|| "notes-data".into());
    let mut log = EventLog::builder(dir)
        .view::<Notes>("notes", notes_view)
        .view::<Tags>("tags", tags_view)
        .open()?;
    log.refresh_all()?;
    let notes = log.view::<Notes>("notes")?.clone();
    let note = |id: u64| notes.notes.get(&id).ok_or_else(|| format!("no note #{id}"));

    // Commands that change something check against the current state, then
    // append one event. Commands that read only look at the views.
    match command {
        Command::Add { text, tags } => {
            let id = notes.next_id;
            let data = json!({ "id": id, "text": text, "tags": tags });
            log.append(&Event::new("note_added", data))?;
            println!("added note #{id}: {}", show(&Note { text, tags }));
        }
        Command::Tag { id, tag } => {
            if note(id)?.tags.contains(&tag) {
                println!("note #{id} is already tagged {tag}");
            } else {
                log.append(&Event::new("note_tagged", json!({ "id": id, "tag": tag })))?;
                println!("tagged note #{id} with {tag}");
            }
        }
        Command::Delete { id } => {
            note(id)?;
            log.append(&Event::new("note_deleted", json!({ "id": id })))?;
            println!("deleted note #{id}");
        }
        Command::List { tag: None } => {
            for (id, note) in &notes.notes {
                println!("#{id} {}", show(note));
            }
        }
        Command::List { tag: Some(tag) } => {
            // The index answers "which notes?", the notes view "what do
            // they say?".
            let ids = log.view::<Tags>("tags")?.get(&tag).cloned();
            for id in ids.unwrap_or_default() {
                println!("#{id} {}", show(note(id)?));
            }
        }
        Command::Tags => {
            let mut counts: Vec<(&String, usize)> = log
                .view::<Tags>("tags")?
                .iter()
                .map(|(tag, ids)| (tag, ids.len()))
                .collect();
            // Most used first; ties in name order (the sort is stable).
            counts.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
            for &(tag, n) in &counts {
                println!("{tag}: {n} note{}", if n == 1 { "" } else { "s" });
            }
            if let Some(&(_, top)) = counts.first() {
                let most: Vec<&str> = counts
                    .iter()
                    .filter(|&&(_, n)| n == top)
                    .map(|(tag, _)| tag.as_str())
                    .collect();
                println!("most used: {}", most.join(", "));
            }
        }
    }
    // Fold any new event into both views, saving their snapshots.
    Ok(log.refresh_all()?)
}

/// A note as one line: its text, then its tags in brackets.
fn show(note: &Note) -> String {
    if note.tags.is_empty() {
        note.text.clone()
    } else {
        format!("{} [{}]", note.text, note.tags.join(", "))
    }
}
