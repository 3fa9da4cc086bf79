//! Rotation: moving the active log into the compressed archive, both
//! automatically (`max_log_size`) and by hand (`rotate`), without the views
//! losing a single event.
//!
//! ```text
//! $ cargo run --example rotation
//! data directory: /tmp/eventfold-example-rotation
//! directory: app.jsonl  app.jsonl.committed  views/
//! event 8: app.jsonl was 406 bytes, over 400, so append rotated it first
//! directory: app.jsonl  app.jsonl.committed  archive.index.jsonl  archive.jsonl.zst  views/
//! event 15: app.jsonl was 415 bytes, over 400, so append rotated it first
//! view: 20 readings, last #20, 0 out of sequence
//! after rotate(): app.jsonl is 0 bytes
//! view: 25 readings, last #25, 0 out of sequence
//! read_full: 25 events, 1 to 25 in order: true
//! after rebuild_view, which read the archive and app.jsonl:
//! view: 25 readings, last #25, 0 out of sequence
//! ```

use std::error::Error;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::process::ExitCode;

use eventfold::{Event, EventLog};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What the view has seen: how many readings, the last number, and how
/// many arrived out of sequence. If rotation lost, duplicated or reordered
/// an event, `out_of_sequence` would not be 0.
#[derive(Default, Clone, Serialize, Deserialize)]
struct Seen {
    count: u64,
    last: u64,
    out_of_sequence: u64,
}

fn seen(mut state: Seen, event: &Event) -> Seen {
    if event.event_type == "reading" {
        let n = event.data["n"].as_u64().unwrap_or(0);
        if n != state.last + 1 {
            state.out_of_sequence += 1;
        }
        state.count += 1;
        state.last = n;
    }
    state
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rotation: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    // A fresh directory on every run, so the output is always the same.
    let dir = std::env::temp_dir().join("eventfold-example-rotation");
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    println!("data directory: {}", dir.display());

    // A tiny threshold so that rotation happens after a few events; real
    // applications use megabytes (see the guide, "Rotation and archival").
    let mut log = EventLog::builder(&dir)
        .max_log_size(400)
        .view::<Seen>("seen", seen)
        .open()?;

    // Every line is `{"type":"reading","data":{"n":N},"ts":T,"seq":S}`, about
    // 60 bytes (fixed timestamps keep the sizes the same on every run). An
    // append that finds app.jsonl over 400 bytes rotates it first, then
    // writes its event at offset 0 of the fresh log.
    for n in 1..=7 {
        append(&mut log, n)?;
    }
    list(&dir)?;
    for n in 8..=12 {
        append(&mut log, n)?;
    }
    list(&dir)?;

    // Appending goes on as before, rotating again when needed.
    for n in 13..=20 {
        append(&mut log, n)?;
    }
    log.refresh_all()?;
    print_seen(&log)?;

    // A manual rotation: for example at a quiet moment, or before a backup.
    // The view's state is kept; its snapshot now points at offset 0.
    log.rotate()?;
    println!("after rotate(): app.jsonl is {} bytes", log.active_len());
    for n in 21..=25 {
        append(&mut log, n)?;
    }
    log.refresh_all()?;
    print_seen(&log)?;

    // The full history is the archive's frames followed by app.jsonl.
    // read_full streams both, in order.
    let numbers: Vec<u64> = log
        .read_full()?
        .map(|item| item.map(|(event, _hash)| event.data["n"].as_u64().unwrap_or(0)))
        .collect::<Result<_, _>>()?;
    let continuous = numbers.iter().copied().eq(1..=25);
    println!(
        "read_full: {} events, 1 to 25 in order: {continuous}",
        numbers.len()
    );

    // Rebuilding replays that whole history from scratch: same state.
    log.rebuild_view("seen")?;
    println!("after rebuild_view, which read the archive and app.jsonl:");
    print_seen(&log)?;
    Ok(())
}

fn append(log: &mut EventLog, n: u64) -> eventfold::Result<()> {
    let event = Event::with_ts("reading", json!({ "n": n }), 1_700_000_000 + n);
    let before = log.active_len();
    let offset = log.append(&event)?;
    if offset < before {
        println!("event {n}: app.jsonl was {before} bytes, over 400, so append rotated it first");
    }
    Ok(())
}

/// Prints the data directory's entries in name order.
fn list(dir: &Path) -> std::io::Result<()> {
    let mut names: Vec<String> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let mut name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() {
            name.push('/');
        }
        names.push(name);
    }
    names.sort();
    println!("directory: {}", names.join("  "));
    Ok(())
}

fn print_seen(log: &EventLog) -> eventfold::Result<()> {
    let seen = log.view::<Seen>("seen")?;
    println!(
        "view: {} readings, last #{}, {} out of sequence",
        seen.count, seen.last, seen.out_of_sequence
    );
    Ok(())
}
