//! `eventfold backup`: a consistent copy of a live data directory,
//! synced and verified.

use std::io::Write;

use eventfold::{Backup, EventReader, Verification};
use serde::Serialize;

use crate::cli::BackupArgs;
use crate::data_dir;
use crate::failure::Failure;
use crate::output::{Terminal, human_bytes};
use crate::verify;

/// What `eventfold backup --json` writes.
#[derive(Debug, Serialize)]
struct Report<'a> {
    /// What was copied.
    backup: &'a Backup,
    /// The check of the copy.
    verification: &'a Verification,
}

/// Runs `eventfold backup`, writing what was copied to `out`.
///
/// # Errors
///
/// As for [`data_dir::open`]; [`Failure::Read`] if the copy cannot be made
/// (the destination exists and is not empty, a file cannot be read or
/// written); [`Failure::Problems`] if the copy does not verify;
/// [`Failure::Output`] if writing fails.
pub fn run(args: &BackupArgs, terminal: Terminal, out: &mut impl Write) -> Result<(), Failure> {
    let reader = data_dir::open(&args.dir)?;
    let mut bar = None;
    let backup = reader.backup(&args.dest, &mut |done, total| {
        let bar = bar.get_or_insert_with(|| terminal.byte_progress(total, "copying"));
        bar.set_position(done);
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let copy = EventReader::open(&args.dest)?;
    let verification = verify::check(&copy, terminal, "verifying the copy")?;
    if args.json {
        let report = Report {
            backup: &backup,
            verification: &verification,
        };
        serde_json::to_writer_pretty(&mut *out, &report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        let style = terminal.style();
        writeln!(
            out,
            "{} {} events into {}: {} of archive in {} frames, {} of active log, {} snapshots",
            style.bold("copied"),
            backup.events,
            args.dest.display(),
            human_bytes(backup.archive_len),
            backup.frames,
            human_bytes(backup.active_len),
            backup.snapshots
        )?;
        if !backup.snapshots_left_out.is_empty() {
            writeln!(
                out,
                "left out (they did not fit the copy; those views replay on first refresh): {}",
                backup.snapshots_left_out.join(", ")
            )?;
        }
        verify::write_human(out, &verification, style)?;
    }
    out.flush()?;
    verify::outcome(&verification)
}
