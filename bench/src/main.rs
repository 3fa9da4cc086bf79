//! eventfold's benchmark: every scenario of the performance issue, run
//! side by side with the raw file floor, SQLite and fjall on the same data
//! and the same disk, in one process run.
//!
//! `cargo run --release` in this crate prints one Markdown table of medians,
//! ratios and PASS/MISS against the goals, and writes the same figures as
//! JSON (`bench/results.json`). `--smoke` runs tiny sizes for CI; `--help`
//! lists the sizes that can be changed.

mod child;
mod cli;
mod concurrent;
mod peers;
mod report;
mod scenarios;
mod tooling;
mod workload;

use std::process::ExitCode;
use std::time::Instant;

use crate::cli::Params;
use crate::report::Machine;
use crate::scenarios::Bench;

/// The result type of everything in the benchmark: any error ends the run.
pub type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let subcommand = args.first().map(String::as_str);
    let result = if subcommand == Some(child::SUBCOMMAND) {
        child::run(&args[1..])
    } else if subcommand == Some(concurrent::FOLLOW_SUBCOMMAND) {
        concurrent::follow_child(&args[1..])
    } else {
        match Params::parse(&args) {
            Ok(Some(params)) => run(&params),
            Ok(None) => {
                print!("{}", cli::USAGE);
                Ok(())
            }
            Err(message) => Err(message.into()),
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eventfold-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every scenario, prints the table and writes the JSON.
fn run(params: &Params) -> BenchResult<()> {
    let start = Instant::now();
    let machine = Machine::probe(&params.dir);
    eprintln!("{}", machine.describe());
    eprintln!(
        "runs: {}{}",
        params.runs,
        if params.smoke { " (smoke sizes)" } else { "" }
    );
    let rows = Bench::new(params)?.run_all()?;
    let total = start.elapsed().as_secs_f64();

    println!("{}", machine.describe());
    println!(
        "runs: {} (medians){}; total {total:.0} s\n",
        params.runs,
        if params.smoke { ", smoke sizes" } else { "" }
    );
    print!("{}", report::table(&rows));
    let missed: Vec<String> = rows
        .iter()
        .flat_map(|row| {
            row.checks
                .iter()
                .filter(|c| !c.pass)
                .map(move |c| format!("{} — {}", row.scenario, c.what))
        })
        .collect();
    let checks: usize = rows.iter().map(|row| row.checks.len()).sum();
    println!("\n{} of {checks} goals met", checks - missed.len());
    for miss in &missed {
        println!("MISS: {miss}");
    }
    report::write_json(&params.json, &machine, params, &rows, total)?;
    eprintln!("figures written to {}", params.json.display());
    Ok(())
}
