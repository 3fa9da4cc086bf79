//! `eventfold inspect`: what a data directory holds, as a reader sees it
//! now.

use std::io::Write;

use eventfold::{Inspection, WriterState};

use crate::cli::InspectArgs;
use crate::data_dir;
use crate::failure::Failure;
use crate::output::{Style, Terminal, human_bytes, printable};
use crate::time;

/// Runs `eventfold inspect`, writing to `out`.
///
/// # Errors
///
/// As for [`data_dir::open`]; [`Failure::Read`] if the history cannot be
/// read consistently (`eventfold verify` then lists every problem);
/// [`Failure::Output`] if writing fails.
pub fn run(args: &InspectArgs, terminal: Terminal, out: &mut impl Write) -> Result<(), Failure> {
    let reader = data_dir::open(&args.dir)?;
    let inspection = reader.inspect()?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &inspection).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write_human(out, &inspection, terminal.style())?;
    }
    Ok(out.flush()?)
}

/// Writes `inspection` for people, one fact a line.
fn write_human(out: &mut impl Write, i: &Inspection, style: Style) -> std::io::Result<()> {
    let label = |name: &str| style.bold(&format!("{name:<12}")).into_owned();
    writeln!(out, "{}{}", label("directory"), i.dir.display())?;
    let writer = match i.writer {
        WriterState::Open => "open: a process holds the lock and may be appending",
        WriterState::Closed => "none: no process holds the lock",
        _ => "unknown on this system",
    };
    writeln!(out, "{}{writer}", label("writer"))?;
    let events = match i.events {
        0 => "none yet".to_owned(),
        n => format!(
            "{n} (seq 0 to {}), {} of them in the archive",
            n - 1,
            i.archived_events
        ),
    };
    writeln!(out, "{}{events}", label("events"))?;
    for (name, event) in [("first", &i.first), ("last", &i.last)] {
        if let Some(event) = event {
            writeln!(
                out,
                "{}seq {}  {}  {}",
                label(name),
                event.seq,
                time::rfc3339(event.ts),
                printable(&event.event_type)
            )?;
        }
    }
    writeln!(
        out,
        "{}app.jsonl, {} acknowledged",
        label("active log"),
        human_bytes(i.active_len)
    )?;
    writeln!(
        out,
        "{}archive.jsonl.zst, {} in {} frames",
        label("archive"),
        human_bytes(i.archive_len),
        i.frames
    )?;
    if i.views.is_empty() {
        writeln!(out, "{}no snapshots", label("views"))?;
    }
    for (n, view) in i.views.iter().enumerate() {
        let position = match (view.seq, view.behind) {
            // A snapshot that does not fit the log is not "up to date".
            (Some(seq), _) if view.problem.is_some() => format!("saved at event {seq}"),
            (Some(seq), Some(0)) => format!("at event {seq}, up to date"),
            (Some(seq), Some(behind)) => format!("at event {seq}, {behind} events behind"),
            _ => match view.offset {
                Some(offset) => format!("at byte {offset} of app.jsonl"),
                None => "unreadable".to_owned(),
            },
        };
        let state = match &view.problem {
            None => String::new(),
            Some(problem) => format!("; not usable, the view will replay: {}", printable(problem)),
        };
        let name = if n == 0 { label("views") } else { label("") };
        let version = match view.version {
            Some(version) if version > 0 => format!(", version {version}"),
            _ => String::new(),
        };
        writeln!(
            out,
            "{name}{}  {}{version}, {position}{state}",
            printable(&view.name),
            human_bytes(view.len)
        )?;
    }
    if i.pending.is_empty() {
        writeln!(out, "{}nothing for recovery to do", label("recovery"))?;
    }
    for (n, file) in i.pending.iter().enumerate() {
        let name = if n == 0 { label("recovery") } else { label("") };
        writeln!(
            out,
            "{name}{} ({}): {}",
            file.path.display(),
            human_bytes(file.len),
            file.what
        )?;
    }
    Ok(())
}
