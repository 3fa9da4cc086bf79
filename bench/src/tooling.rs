//! The scenario of the operator's tool: verifying and exporting the large
//! history, against the library's own full replay of it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use eventfold::{EventLog, EventReader};

use crate::BenchResult;
use crate::report::{Goal, Row, Unit};
use crate::scenarios::{Bench, median, timed};
use crate::workload;

impl Bench<'_> {
    /// Scenario 13: `EventReader::verify` and `eventfold export` (the
    /// command-line tool's binary, its output to `/dev/null`) over the large
    /// history (in the archive once scenario 5 has rotated it), against
    /// `rebuild_view` of a counter over the same history, in turns.
    pub fn tooling(&mut self) -> BenchResult<Row> {
        let (dir, _) = self.large_log()?;
        let events = EventReader::open(&dir)?.next_seq()?;
        self.progress(&format!("13. verify and export of {events} events"));
        let cli = build_cli()?;
        let (mut replay, mut verify, mut export) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..self.params.runs {
            replay.push(timed(|| {
                let mut log = EventLog::builder(&dir)
                    .view::<u64>("bench_count", workload::count)
                    .open()?;
                log.rebuild_view("bench_count")?;
                if *log.view::<u64>("bench_count")? != events {
                    return Err("the replay folded another number of events".into());
                }
                Ok(())
            })?);
            verify.push(timed(|| {
                let report = EventReader::open(&dir)?.verify(&mut |_, _| {})?;
                if report.events != events || !report.problems.is_empty() {
                    return Err(format!("verify found {:?}", report.problems).into());
                }
                Ok(())
            })?);
            export.push(timed(|| run_export(&cli, &dir))?);
        }
        let rate = |secs: Vec<f64>| events as f64 / median(secs);
        let (replay, verify, export) = (rate(replay), rate(verify), rate(export));
        let mut row = Row::new(
            13,
            format!(
                "13. verify and export, {} events",
                crate::scenarios::short(events)
            ),
            Unit::EventsPerSec,
        );
        row.eventfold("verify", verify);
        row.eventfold("eventfold export", export);
        row.peer("rebuild_view", replay);
        row.check(
            "throughput verify/replay",
            verify / replay,
            Goal::AtLeast(0.8),
        );
        row.check(
            "throughput export/replay",
            export / replay,
            Goal::AtLeast(0.8),
        );
        let archived = EventReader::open(&dir)?.inspect()?.archived_events;
        row.note(format!(
            "{archived} of the {events} events in the archive; export writes every event as a \
             JSON line to /dev/null, on every core (chunks of events side by side), the replay \
             and verify on one"
        ));
        Ok(row)
    }
}

/// Builds the command-line tool in release mode; returns its binary.
fn build_cli() -> BenchResult<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/Cargo.toml");
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/target");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .status()?;
    if !status.success() {
        return Err(format!("building {} failed: {status}", manifest.display()).into());
    }
    Ok(target.join("release").join("eventfold"))
}

/// `eventfold export DIR > /dev/null`.
fn run_export(cli: &Path, dir: &Path) -> BenchResult<()> {
    let status = Command::new(cli)
        .arg("export")
        .arg(dir)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("eventfold export failed: {status}").into());
    }
    Ok(())
}
