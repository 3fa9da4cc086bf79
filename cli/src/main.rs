//! `eventfold`, the operator's tool for eventfold data directories: tail
//! and follow the log, export it as JSON Lines or CSV, count its events,
//! inspect and verify a directory, and back it up.
//!
//! Every command reads through the library's read-only `EventReader`: it
//! takes no lock and writes nothing, so it runs beside a live writer, on
//! a copy, or on a directory it may only read.
//!
//! Exit codes: 0 when the command did what was asked, 1 for a runtime
//! error (or, for checking commands, problems found), 2 for bad usage.
#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::missing_docs_in_private_items)]

mod backup;
mod cli;
mod data_dir;
mod export;
mod failure;
mod filter;
mod inspect;
mod output;
mod stats;
mod tail;
mod time;
mod verify;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::failure::Failure;
use crate::output::Terminal;

/// How much output is gathered before it is written.
const OUTPUT_BUFFER: usize = 64 * 1024;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let terminal = Terminal::detect();
    let mut out = BufWriter::with_capacity(OUTPUT_BUFFER, io::stdout().lock());
    let result = run(&cli.command, terminal, &mut out);
    // What was read before a failure is written before its message.
    let flushed = out.flush();
    let result = match (result, flushed) {
        (Ok(()), Err(e)) => Err(Failure::Output(e)),
        (result, _) => result,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) if failure.is_closed_output() => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("eventfold: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

/// Runs one command.
fn run(command: &Command, terminal: Terminal, out: &mut impl Write) -> Result<(), Failure> {
    match command {
        Command::Tail(args) => tail::run(args, terminal, out),
        Command::Export(args) => export::run(args, terminal, out),
        Command::Stats(args) => stats::run(args, terminal, out),
        Command::Inspect(args) => inspect::run(args, terminal, out),
        Command::Verify(args) => verify::run(args, terminal, out),
        Command::Backup(args) => backup::run(args, terminal, out),
    }
}
