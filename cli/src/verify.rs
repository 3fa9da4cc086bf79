//! `eventfold verify`: every frame, line and snapshot of a data directory
//! checked, every problem reported with its file and byte offset.

use std::io::Write;

use eventfold::Verification;

use crate::cli::VerifyArgs;
use crate::data_dir;
use crate::failure::Failure;
use crate::output::{Style, Terminal, human_bytes};

/// Runs `eventfold verify`, writing the report to `out`.
///
/// # Errors
///
/// As for [`data_dir::open`]; [`Failure::Problems`] when problems were
/// found (they are written first); [`Failure::Read`] if a file cannot be
/// read at all; [`Failure::Output`] if writing fails.
pub fn run(args: &VerifyArgs, terminal: Terminal, out: &mut impl Write) -> Result<(), Failure> {
    let reader = data_dir::open(&args.dir)?;
    let report = check(&reader, terminal, "verifying")?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write_human(out, &report, terminal.style())?;
    }
    out.flush()?;
    outcome(&report)
}

/// Verifies what `reader` reads, with a progress bar labelled `what`.
///
/// # Errors
///
/// [`Failure::Read`] if a file cannot be read at all.
pub fn check(
    reader: &eventfold::EventReader,
    terminal: Terminal,
    what: &'static str,
) -> Result<Verification, Failure> {
    let mut bar = None;
    let report = reader.verify(&mut |done, total| {
        let bar = bar.get_or_insert_with(|| terminal.byte_progress(total, what));
        bar.set_position(done);
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(report)
}

/// `Ok` when `report` found nothing wrong, else the failure that sums it up.
///
/// # Errors
///
/// [`Failure::Problems`] naming how many problems there are.
pub fn outcome(report: &Verification) -> Result<(), Failure> {
    match report.problems.len() {
        0 => Ok(()),
        1 => Err(Failure::Problems("1 problem found".to_owned())),
        n => Err(Failure::Problems(format!("{n} problems found"))),
    }
}

/// Writes `report` for people: each problem, then the totals.
pub fn write_human(
    out: &mut impl Write,
    report: &Verification,
    style: Style,
) -> std::io::Result<()> {
    for problem in &report.problems {
        writeln!(out, "{} {problem}", style.bold("problem:"))?;
    }
    let verdict = if report.problems.is_empty() {
        "ok"
    } else {
        "damaged"
    };
    let read_nothing = report.events == 0 && report.bytes == 0 && report.snapshots == 0;
    if !report.problems.is_empty() && read_nothing {
        // The files could not be opened as a history: no totals to give.
        return writeln!(
            out,
            "{}: the history could not be read past the problem above; once it is fixed, \
             verify again",
            style.bold(verdict)
        );
    }
    writeln!(
        out,
        "{}: {} events, {} archive frames, {} snapshots, {} read",
        style.bold(verdict),
        report.events,
        report.frames,
        report.snapshots,
        human_bytes(report.bytes)
    )
}
