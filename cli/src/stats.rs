//! `eventfold stats`: how many events there are, of which types, on which
//! days, and the first and last of them.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::cli::StatsArgs;
use crate::data_dir;
use crate::failure::Failure;
use crate::output::{PROGRESS_STEP, Style, Terminal, human_bytes, printable};
use crate::time::{self, Date};

/// The figures of a history.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    /// How many events there are.
    pub total: u64,
    /// The first event, if any.
    pub first: Option<Mark>,
    /// The last event, if any.
    pub last: Option<Mark>,
    /// Events per type, by type name.
    pub types: BTreeMap<String, u64>,
    /// Events per UTC day of their timestamps, `YYYY-MM-DD`, in order.
    pub days: BTreeMap<String, u64>,
    /// The sizes of the files that hold them.
    pub sizes: Sizes,
}

/// The sizes of the files that hold a history.
#[derive(Debug, Default, Serialize)]
pub struct Sizes {
    /// The acknowledged bytes of the active log, `app.jsonl`.
    pub active_log_bytes: u64,
    /// The bytes of the archive, `archive.jsonl.zst`.
    pub archive_bytes: u64,
    /// The archive's zstd frames.
    pub archive_frames: u64,
}

/// Where an event stands: its sequence number and timestamp.
#[derive(Debug, Serialize)]
pub struct Mark {
    /// The sequence number.
    pub seq: u64,
    /// The timestamp, in Unix seconds.
    pub ts: u64,
    /// The timestamp, RFC 3339 in UTC.
    pub time: String,
}

impl Mark {
    /// The mark of event `seq`, stamped `ts`.
    fn new(seq: u64, ts: u64) -> Mark {
        Mark {
            seq,
            ts,
            time: time::rfc3339(ts),
        }
    }
}

/// Runs `eventfold stats`, writing to `out`.
///
/// # Errors
///
/// As for [`data_dir::open`]; [`Failure::Read`] if reading fails;
/// [`Failure::Output`] if writing fails.
pub fn run(args: &StatsArgs, terminal: Terminal, out: &mut impl Write) -> Result<(), Failure> {
    let reader = data_dir::open(&args.dir)?;
    let inspection = reader.inspect()?;
    let end = inspection.events;
    let progress = terminal.progress(end, "counting");
    let mut stats = Stats::default();
    // Days are counted by number, and named once at the end.
    let mut days: BTreeMap<Date, u64> = BTreeMap::new();
    let mut last = None;
    for item in reader.read_from_seq(0)? {
        let (seq, event, _) = item?;
        if seq >= end {
            break;
        }
        if stats.first.is_none() {
            stats.first = Some(Mark::new(seq, event.ts));
        }
        last = Some((seq, event.ts));
        stats.total += 1;
        *days.entry(Date::of(event.ts)).or_default() += 1;
        match stats.types.get_mut(&event.event_type) {
            Some(count) => *count += 1,
            None => {
                stats.types.insert(event.event_type, 1);
            }
        }
        if (seq + 1).is_multiple_of(PROGRESS_STEP) {
            progress.inc(PROGRESS_STEP);
        }
    }
    progress.finish_and_clear();
    stats.last = last.map(|(seq, ts)| Mark::new(seq, ts));
    stats.sizes = Sizes {
        active_log_bytes: inspection.active_len,
        archive_bytes: inspection.archive_len,
        archive_frames: inspection.frames,
    };
    stats.days = days
        .into_iter()
        .map(|(day, count)| (day.to_string(), count))
        .collect();
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &stats).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write_human(out, &stats, terminal.style())?;
    }
    Ok(out.flush()?)
}

/// Writes `stats` for people: totals, then types by count, then days.
fn write_human(out: &mut impl Write, stats: &Stats, style: Style) -> std::io::Result<()> {
    writeln!(out, "{}  {}", style.bold("events"), stats.total)?;
    let sizes = &stats.sizes;
    writeln!(
        out,
        "{}   active log {}, archive {} in {} frames",
        style.bold("sizes"),
        human_bytes(sizes.active_log_bytes),
        human_bytes(sizes.archive_bytes),
        sizes.archive_frames
    )?;
    let (Some(first), Some(last)) = (&stats.first, &stats.last) else {
        return Ok(());
    };
    writeln!(
        out,
        "{}   seq {}  {}",
        style.bold("first"),
        first.seq,
        first.time
    )?;
    writeln!(
        out,
        "{}    seq {}  {}",
        style.bold("last"),
        last.seq,
        last.time
    )?;
    let mut types: Vec<(&String, &u64)> = stats.types.iter().collect();
    types.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let names: Vec<_> = types.iter().map(|(name, _)| printable(name)).collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    writeln!(out, "\n{}", style.bold("by type"))?;
    for (name, (_, count)) in names.iter().zip(&types) {
        writeln!(out, "  {name:<width$}  {count:>10}")?;
    }
    writeln!(out, "\n{}", style.bold("by day (UTC)"))?;
    for (day, count) in &stats.days {
        writeln!(out, "  {day}  {count:>10}")?;
    }
    Ok(())
}
