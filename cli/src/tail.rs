//! `eventfold tail`: the last events of the history, and with `-f` every
//! new one as the writer appends it, across rotations, until Ctrl-C or
//! SIGTERM.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eventfold::{Event, EventReader};

use crate::cli::TailArgs;
use crate::data_dir;
use crate::failure::Failure;
use crate::filter::Filter;
use crate::output::{EventFormat, Terminal};

/// How long a follower waits for an event before it looks whether it was
/// asked to stop: the longest a Ctrl-C waits for an answer.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// The first window of events read back from the end when looking for
/// the last events of some types; it doubles until enough are found.
const FIRST_WINDOW: u64 = 256;
/// The largest window read back at once.
const MAX_WINDOW: u64 = 1 << 20;

/// Runs `eventfold tail`, writing to `out`.
///
/// # Errors
///
/// As for [`data_dir::open`]; [`Failure::Read`] if reading or following
/// fails; [`Failure::Output`] if writing fails.
pub fn run(args: &TailArgs, terminal: Terminal, out: &mut impl Write) -> Result<(), Failure> {
    let reader = data_dir::open(&args.dir)?;
    let filter = Filter::types(&args.types);
    let format = if args.json {
        EventFormat::Json
    } else {
        EventFormat::Human(terminal.style())
    };
    // Stop on a signal from the first moment: a Ctrl-C while the last
    // events are read then ends the command as cleanly as one later.
    let stop = if args.follow {
        Some(stop_on_signal()?)
    } else {
        None
    };
    let next = match args.from {
        Some(from) if args.follow => from,
        Some(from) => {
            for item in reader.read_from_seq(from)? {
                let (seq, event, _) = item?;
                if filter.matches(&event) {
                    format.write(out, seq, &event)?;
                }
            }
            return Ok(out.flush()?);
        }
        None => {
            let end = reader.next_seq()?;
            for (seq, event) in last_events(&reader, end, args.lines, &filter)? {
                format.write(out, seq, &event)?;
            }
            end
        }
    };
    out.flush()?;
    match stop {
        Some(stop) => follow(&reader, next, &filter, format, &stop, out),
        None => Ok(()),
    }
}

/// The last `n` events before sequence number `end` that pass `filter`,
/// in order. Without a filter that reads `n` events; with one, windows
/// of events before `end`, each twice the last, until `n` are found.
fn last_events(
    reader: &EventReader,
    end: u64,
    n: u64,
    filter: &Filter,
) -> Result<Vec<(u64, Event)>, Failure> {
    let mut found = VecDeque::new();
    let mut hi = end;
    let mut window = if filter.is_all() {
        n
    } else {
        n.saturating_mul(4).clamp(FIRST_WINDOW, MAX_WINDOW)
    };
    while hi > 0 && (found.len() as u64) < n {
        let lo = hi.saturating_sub(window);
        let need = n - found.len() as u64;
        let mut chunk = VecDeque::new();
        for item in reader.read_from_seq(lo)? {
            let (seq, event, _) = item?;
            if seq >= hi {
                break;
            }
            if filter.matches(&event) {
                if chunk.len() as u64 == need {
                    chunk.pop_front();
                }
                chunk.push_back((seq, event));
            }
        }
        chunk.extend(found);
        found = chunk;
        hi = lo;
        window = window.saturating_mul(2).min(MAX_WINDOW);
    }
    Ok(found.into())
}

/// Writes every event from `next` on that passes `filter`, as the writer
/// appends them, until `stop` is set.
fn follow(
    reader: &EventReader,
    next: u64,
    filter: &Filter,
    format: EventFormat,
    stop: &AtomicBool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut follow = reader.follow(next);
    while !stop.load(Ordering::Relaxed) {
        // The events already there come one after the other; the output
        // is flushed only when there are no more, before waiting.
        let item = match follow.next_timeout(Duration::ZERO) {
            Some(item) => Some(item),
            None => {
                out.flush()?;
                follow.next_timeout(STOP_CHECK)
            }
        };
        if let Some(item) = item {
            let (seq, event) = item?;
            if filter.matches(&event) {
                format.write(out, seq, &event)?;
            }
        }
    }
    Ok(out.flush()?)
}

/// A flag set by Ctrl-C (SIGINT), SIGTERM or SIGHUP.
fn stop_on_signal() -> Result<Arc<AtomicBool>, Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .map_err(|e| Failure::Other(format!("cannot handle Ctrl-C: {e}")))?;
    Ok(stop)
}
