//! The command line: commands, their arguments and their help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::time::parse_timestamp;

/// Examples at the end of `eventfold --help`.
const EXAMPLES: &str = "\
Examples:
  eventfold tail data                  the last 10 events
  eventfold tail data -f               ... and every new one, across rotations
  eventfold export data | jq .type     every event as JSON Lines
  eventfold export data --format csv > events.csv
  eventfold stats data                 counts per type and per day
  eventfold inspect data               what is there, and whether a writer has it open
  eventfold verify data                check every frame, line and snapshot
  eventfold backup data /backups/data-2026-12-02

Every command only reads: it takes no lock and writes nothing, so it can run
beside the application that writes the directory.

Exit codes: 0 success, 1 runtime error or problems found, 2 bad usage.";

/// Examples at the end of `eventfold tail --help`.
const TAIL_EXAMPLES: &str = "\
Examples:
  eventfold tail data                  the last 10 events
  eventfold tail data -n 100 --type todo_added
  eventfold tail data -f               follow new events until Ctrl-C
  eventfold tail data --from 5000      every event from sequence number 5000 on
  eventfold tail data -f -n 0 --json   only new events, as JSON Lines

Lines read SEQ  TIMESTAMP  TYPE  DATA, with the timestamp in UTC and the data as
compact JSON; --json writes the lines of `eventfold export` instead.";

/// Examples at the end of `eventfold export --help`.
const EXPORT_EXAMPLES: &str = "\
Examples:
  eventfold export data > events.jsonl
  eventfold export data --from 1000 --to 1999
  eventfold export data --since 2026-12-01 --until 2026-12-02 --type order_paid
  eventfold export data --since 2026-12-01T10:00:00Z | jq -c '.data'
  eventfold export data --format csv > events.csv
  duckdb -c \"SELECT type, count(*) FROM read_json('events.jsonl') GROUP BY type\"

JSON Lines: one object per event, {\"seq\":…,\"type\":…,\"data\":…,\"ts\":…} with
\"id\" and \"meta\" when the event has them. CSV (RFC 4180, with a header):
seq,ts,type,id,data, the data as compact JSON.

Timestamps (TS) are Unix seconds, a date (2026-12-01, midnight UTC) or a UTC
date-time (2026-12-01T10:00:00Z). --since is inclusive and --until exclusive,
so that --since 2026-12-01 --until 2026-12-02 is one whole day; --from and --to
are both inclusive.";

/// Examples at the end of `eventfold inspect --help`.
const INSPECT_EXAMPLES: &str = "\
Examples:
  eventfold inspect data
  eventfold inspect data --json | jq '.views'

Shows the sizes of the active log and the archive, the number of events and
frames, the first and last events, each view's snapshot (its position, how
many events it is behind the log, and whether it can be used), what recovery
would act on when a writer next opens the directory (an interrupted
rotation's record, a torn tail, temporary files), and whether a writer holds
the directory's lock now (read from /proc/locks on Linux: never taken).";

/// Examples at the end of `eventfold verify --help`.
const VERIFY_EXAMPLES: &str = "\
Examples:
  eventfold verify data && echo sound
  eventfold verify data --json | jq '.problems[]'

Checks every zstd frame of the archive (its checksum, every line an event,
its events numbered as the index says), every acknowledged line of the
active log, the sequence numbers' continuity from the first event to the
last, and every view's snapshot (its checksum and its position in the log).
Each problem is printed with its file, byte offset and sequence number, and
the check goes on past it. Exit code 0 when all is well, 1 when a problem
was found.";

/// Examples at the end of `eventfold backup --help`.
const BACKUP_EXAMPLES: &str = "\
Examples:
  eventfold backup data /backups/data-2026-12-02
  eventfold backup data /backups/today --json

The copy holds every event acknowledged before the backup started, with its
sequence number; the archive's frames and the active log's lines are copied
byte for byte, and the views' snapshots that fit the copy come along. The
application may go on writing meanwhile: nothing is locked or written in DIR.
The copy is synced to disk and verified before the command succeeds.

To restore: stop the application, move its data directory aside, and move
(or copy) the backup in its place; then start the application. Views whose
snapshot was left out replay the history on their first refresh.";

/// Examples at the end of `eventfold stats --help`.
const STATS_EXAMPLES: &str = "\
Examples:
  eventfold stats data
  eventfold stats data --json | jq '.types'

Days are UTC days of the events' timestamps.";

/// The `eventfold` command line.
#[derive(Debug, Parser)]
#[command(
    name = "eventfold",
    version,
    about = "Read an eventfold data directory: tail, follow, export and count its events",
    long_about = None,
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the last events, and follow new ones with -f.
    #[command(after_help = TAIL_EXAMPLES)]
    Tail(TailArgs),
    /// Write events as JSON Lines or CSV on stdout.
    #[command(after_help = EXPORT_EXAMPLES)]
    Export(ExportArgs),
    /// Count events per type and per day.
    #[command(after_help = STATS_EXAMPLES)]
    Stats(StatsArgs),
    /// Show what a data directory holds: sizes, events, views, pending recovery, writer.
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect(InspectArgs),
    /// Check every archive frame, every line and every snapshot; exit 1 on a problem.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
    /// Copy a live data directory, consistently, and verify the copy.
    #[command(after_help = BACKUP_EXAMPLES)]
    Backup(BackupArgs),
}

/// Arguments of `eventfold inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The data directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Write what was found as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `eventfold verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The data directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Write the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `eventfold backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The data directory to copy.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Where to put the copy: a directory that does not exist yet, or is empty.
    #[arg(value_name = "DEST")]
    pub dest: PathBuf,
    /// Write what was copied as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `eventfold tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The data directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// How many of the last events to show (of the given types, with --type).
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10)]
    pub lines: u64,
    /// Go on showing new events as they are appended, until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
    /// Start at this sequence number instead of the last N events.
    #[arg(long, value_name = "SEQ", conflicts_with = "lines")]
    pub from: Option<u64>,
    /// Show only events of this type (repeat for several).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Write the lines of `eventfold export` (JSON) instead.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `eventfold export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The data directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The first sequence number to export.
    #[arg(long, value_name = "SEQ")]
    pub from: Option<u64>,
    /// The last sequence number to export (inclusive).
    #[arg(long, value_name = "SEQ")]
    pub to: Option<u64>,
    /// Only events with a timestamp at or after TS.
    #[arg(long, value_name = "TS", value_parser = parse_timestamp)]
    pub since: Option<u64>,
    /// Only events with a timestamp before TS.
    #[arg(long, value_name = "TS", value_parser = parse_timestamp)]
    pub until: Option<u64>,
    /// Only events of this type (repeat for several).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// The output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
}

/// Output formats of `eventfold export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values, RFC 4180, with a header line.
    Csv,
}

/// Arguments of `eventfold stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The data directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Write the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
