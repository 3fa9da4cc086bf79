//! Replays run in child processes, so that each one's peak memory (the
//! kernel's `VmHWM`, the high-water mark of its resident set) is its own.
//!
//! The parent re-runs its own binary as `__child KIND PATH`; the child does
//! the replay, times it, and prints one JSON line with the time, the number
//! of events folded and its peak RSS.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use eventfold::EventLog;
use serde::{Deserialize, Serialize};

use crate::BenchResult;
use crate::peers;
use crate::workload::{self, Tally, TodoEvent};

/// The hidden subcommand that makes the binary a child.
pub const SUBCOMMAND: &str = "__child";

/// The name of the counter view the eventfold replays fold into.
const COUNTER: &str = "count";
/// The view of the typed and `Value` replays.
const TALLY: &str = "tally";

/// What a child replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// eventfold: open the log in a directory and rebuild a counter view
    /// from the full history (archive, then active log).
    Eventfold,
    /// The floor for the active log: read and parse a JSON Lines file.
    RawFile,
    /// The floor for the archive: decompress a zstd file, read and parse.
    ZstdFile,
    /// eventfold: rebuild a typed view (events decoded into an enum).
    Typed,
    /// eventfold: rebuild the same view over `Event`s (`Value` data).
    Value,
}

impl Replay {
    /// The name on the child's command line.
    fn arg(self) -> &'static str {
        match self {
            Replay::Eventfold => "eventfold",
            Replay::RawFile => "raw-file",
            Replay::ZstdFile => "zstd-file",
            Replay::Typed => "typed",
            Replay::Value => "value",
        }
    }
}

/// What a child reports.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Report {
    /// Wall-clock time of the replay, in seconds.
    pub secs: f64,
    /// Events folded.
    pub events: u64,
    /// Peak resident set of the whole child process, in KiB.
    pub peak_rss_kib: u64,
}

/// Runs `kind` on `path` in a child process and returns its report.
pub fn spawn(kind: Replay, path: &Path) -> BenchResult<Report> {
    let output = Command::new(std::env::current_exe()?)
        .arg(SUBCOMMAND)
        .arg(kind.arg())
        .arg(path)
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "child {} {} failed ({}): {}",
            kind.arg(),
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The child's side: `args` are what follows the subcommand.
pub fn run(args: &[String]) -> BenchResult<()> {
    let [kind, path] = args else {
        return Err(
            format!("usage: {SUBCOMMAND} eventfold|typed|value|raw-file|zstd-file PATH").into(),
        );
    };
    let path = Path::new(path);
    let start = Instant::now();
    let events = match kind.as_str() {
        "eventfold" => {
            let mut log = EventLog::builder(path)
                .view::<u64>(COUNTER, workload::count)
                .open()?;
            log.rebuild_view(COUNTER)?;
            *log.view::<u64>(COUNTER)?
        }
        "typed" => {
            let mut log = EventLog::builder(path)
                .typed_view::<Tally, TodoEvent>(TALLY, workload::tally_typed)
                .open()?;
            log.rebuild_view(TALLY)?;
            let tally = log.view::<Tally>(TALLY)?;
            tally.added + tally.done
        }
        "value" => {
            let mut log = EventLog::builder(path)
                .view::<Tally>(TALLY, workload::tally_value)
                .open()?;
            log.rebuild_view(TALLY)?;
            let tally = log.view::<Tally>(TALLY)?;
            tally.added + tally.done
        }
        "raw-file" => peers::replay_file(path)?,
        "zstd-file" => peers::replay_zstd(path)?,
        other => return Err(format!("unknown replay {other:?}").into()),
    };
    let secs = start.elapsed().as_secs_f64();
    let report = Report {
        secs,
        events,
        peak_rss_kib: peak_rss_kib()?,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// This process's peak resident set, from `/proc/self/status`.
fn peak_rss_kib() -> BenchResult<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM in /proc/self/status".into())
}
