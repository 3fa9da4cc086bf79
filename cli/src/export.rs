//! `eventfold export`: events as JSON Lines or CSV on stdout, by
//! sequence number, timestamp and type.
//!
//! The export is of the history as it is when the command starts: events
//! appended while it runs are left for the next export (`--from` the
//! sequence number after the last line).

use std::io::Write;
use std::sync::mpsc;
use std::thread;

use eventfold::{Event, EventReader};

use crate::cli::{ExportArgs, Format};
use crate::data_dir;
use crate::failure::Failure;
use crate::filter::Filter;
use crate::output::{self, EventFormat, Terminal};

/// Events exported as one piece of work.
const CHUNK: u64 = 32 * 1024;
/// Threads an export uses, at most.
const MAX_WORKERS: usize = 4;

/// The CSV header line.
const CSV_HEADER: &str = "seq,ts,type,id,data\r\n";

/// Runs `eventfold export`, writing to `out`.
///
/// # Errors
///
/// [`Failure::Usage`] if `--from` is past `--to`, or `--since` not before
/// `--until`; as for [`data_dir::open`]; [`Failure::Read`] if reading
/// fails (a `--from` past the end of the history included);
/// [`Failure::Output`] if writing fails.
pub fn run(args: &ExportArgs, terminal: Terminal, out: &mut impl Write) -> Result<(), Failure> {
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return Err(Failure::Usage(format!(
            "--from {from} is after --to {to}: there is nothing between them"
        )));
    }
    if let (Some(since), Some(until)) = (args.since, args.until)
        && since >= until
    {
        return Err(Failure::Usage(
            "--since is not before --until: no timestamp is at or after the one and before \
             the other"
                .to_owned(),
        ));
    }
    let reader = data_dir::open(&args.dir)?;
    let filter = Filter {
        types: args.types.clone(),
        since: args.since,
        until: args.until,
    };
    let from = args.from.unwrap_or(0);
    let end = reader.next_seq()?;
    if from > end {
        // The library's error, which names the history's end.
        reader.read_from_seq(from)?;
    }
    let end = args.to.map_or(end, |to| end.min(to.saturating_add(1)));
    let progress = terminal.progress(end.saturating_sub(from), "exporting");
    if args.format == Format::Csv {
        out.write_all(CSV_HEADER.as_bytes())?;
    }
    let chunks: Vec<(u64, u64)> = (from..end)
        .step_by(CHUNK as usize)
        .map(|start| (start, end.min(start + CHUNK)))
        .collect();
    let workers = thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS));
    if chunks.len() < 2 || workers < 2 {
        for &(start, stop) in &chunks {
            out.write_all(&render(&reader, (start, stop), &filter, args.format)?)?;
            progress.inc(stop - start);
        }
    } else {
        // Chunks are read and written out on `workers` threads, each
        // taking every `workers`-th chunk, and written here in order: an
        // export uses every core, and each thread frees what it parsed.
        thread::scope(|scope| {
            let mut rendered = Vec::new();
            for worker in 0..workers {
                let (sender, receiver) = mpsc::sync_channel(1);
                rendered.push(receiver);
                let (reader, filter, chunks) = (&reader, &filter, &chunks);
                scope.spawn(move || {
                    for &range in chunks.iter().skip(worker).step_by(workers) {
                        let chunk = render(reader, range, filter, args.format);
                        let failed = chunk.is_err();
                        if sender.send(chunk).is_err() || failed {
                            return;
                        }
                    }
                });
            }
            for (i, &(start, stop)) in chunks.iter().enumerate() {
                match rendered[i % workers].recv() {
                    Ok(chunk) => out.write_all(&chunk?)?,
                    Err(_) => {
                        return Err(Failure::Other(
                            "a thread of the export stopped early".to_owned(),
                        ));
                    }
                }
                progress.inc(stop - start);
            }
            Ok::<(), Failure>(())
        })?;
    }
    progress.finish_and_clear();
    Ok(out.flush()?)
}

/// The output lines of the events `range.0 .. range.1` that `filter` lets
/// through, in `format`.
fn render(
    reader: &EventReader,
    (start, stop): (u64, u64),
    filter: &Filter,
    format: Format,
) -> Result<Vec<u8>, Failure> {
    let mut lines = Vec::new();
    for item in reader.read_from_seq(start)?.events() {
        let (seq, event) = item?;
        if seq >= stop {
            break;
        }
        if filter.matches(&event) {
            match format {
                Format::Jsonl => EventFormat::Json.write(&mut lines, seq, &event)?,
                Format::Csv => write_csv(&mut lines, seq, &event)?,
            }
        }
        if seq + 1 == stop {
            break;
        }
    }
    Ok(lines)
}

/// Writes event `seq` as one CSV record.
fn write_csv(out: &mut impl Write, seq: u64, event: &Event) -> std::io::Result<()> {
    let data = output::compact_json(&event.data);
    write!(out, "{seq},{},", event.ts)?;
    write_field(out, &event.event_type)?;
    out.write_all(b",")?;
    write_field(out, event.id.as_deref().unwrap_or(""))?;
    out.write_all(b",")?;
    write_field(out, &data)?;
    out.write_all(b"\r\n")
}

/// Writes one CSV field, quoted as RFC 4180 asks when it holds a comma, a
/// double quote, a line break, or space at an end (which some readers
/// trim), with its double quotes doubled.
fn write_field(out: &mut impl Write, field: &str) -> std::io::Result<()> {
    let needs_quotes = field.contains([',', '"', '\r', '\n'])
        || field.starts_with(char::is_whitespace)
        || field.ends_with(char::is_whitespace);
    if !needs_quotes {
        return out.write_all(field.as_bytes());
    }
    out.write_all(b"\"")?;
    for (i, part) in field.split('"').enumerate() {
        if i > 0 {
            out.write_all(b"\"\"")?;
        }
        out.write_all(part.as_bytes())?;
    }
    out.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(text: &str) -> String {
        let mut out = Vec::new();
        write_field(&mut out, text).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field(""), "");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field(r#"{"k":"v"}"#), r#""{""k"":""v""}""#);
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field(" padded"), "\" padded\"");
    }

    #[test]
    fn a_record_has_the_five_columns() {
        let event = Event::with_ts("paid", json!({"amount": 5, "to": "a,b"}), 7).with_id("x");
        let mut out = Vec::new();
        write_csv(&mut out, 3, &event).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "3,7,paid,x,\"{\"\"amount\"\":5,\"\"to\"\":\"\"a,b\"\"}\"\r\n"
        );
    }
}
