//! Command-line parameters: the sizes of every scenario, the number of runs
//! and where the data goes.

use std::path::PathBuf;

/// Where the JSON figures go unless `--json` says otherwise.
const RESULTS_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/results.json");
/// Where a smoke run writes, so that it never overwrites a real run.
const SMOKE_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/results-smoke.json");

/// The usage text printed by `--help`.
pub const USAGE: &str = "\
eventfold-bench: eventfold side by side with the raw file, SQLite and fjall

USAGE:
    cargo run --release --manifest-path bench/Cargo.toml -- [OPTIONS]

OPTIONS:
    --dir PATH            parent of the temporary data directories [system temp dir]
    --runs N              repetitions of every measurement; medians are reported [5]
    --smoke               tiny sizes (about 1/100) and 2 runs, for CI
    --json PATH           where to write the figures [bench/results.json,
                          bench/results-smoke.json with --smoke]
    --only LIST           run only these scenarios, as in 3,8 [all]
    --append-events N     scenario 1: single durable appends [10000]
    --batch-events N      scenario 2: events per run, in batches of 100 and 1000 [100000]
    --refresh-events N    scenario 3: append + refresh_all operations [2000]
    --replay-events N     scenarios 4-7, 10: events of the large log [1000000]
    --small-events N      scenarios 6-7, 10: events of the small log [1000]
    --samples N           scenarios 6, 7, 9, 10: timed operations per run [20]
    --rotate-mb A,B       scenario 8: sizes of the active log to rotate, MB [10,100]
    --todos N             scenario 9: todos in the snapshot's state [10000]
    --thread-events N     scenario 11: appends by each of the 8 threads [250]
    --follow-events N     scenario 12: appends a reader in another process follows [500]
    -h, --help            this text
";

/// Every parameter of a benchmark run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Params {
    /// Parent of the temporary data directories.
    pub dir: PathBuf,
    /// Repetitions of each measurement.
    pub runs: usize,
    /// The scenarios to run (numbers 1 to 10); empty for all.
    pub only: Vec<u64>,
    /// Whether this is a smoke run (tiny sizes).
    pub smoke: bool,
    /// Where the JSON figures are written.
    pub json: PathBuf,
    /// Scenario 1: number of single appends.
    pub append_events: u64,
    /// Scenario 2: number of events appended in batches, per run.
    pub batch_events: u64,
    /// Scenario 2: the batch sizes.
    pub batch_sizes: Vec<u64>,
    /// Scenario 3: number of append + refresh_all operations.
    pub refresh_events: u64,
    /// Scenarios 4 to 7 and 10: events in the large log.
    pub replay_events: u64,
    /// Scenarios 6, 7 and 10: events in the small log.
    pub small_events: u64,
    /// Scenarios 6, 7, 9 and 10: timed operations per run.
    pub samples: usize,
    /// Scenario 8: sizes of the active logs to rotate, in bytes.
    pub rotate_bytes: Vec<u64>,
    /// Scenario 9: todos in the snapshot's state.
    pub todos: u64,
    /// Scenario 11: appends by each of the 8 threads.
    pub thread_events: u64,
    /// Scenario 12: appends the reader in another process follows.
    pub follow_events: u64,
}

impl Params {
    /// The default sizes, or the smoke sizes.
    fn defaults(smoke: bool) -> Params {
        let scale = if smoke { 100 } else { 1 };
        Params {
            dir: std::env::temp_dir(),
            runs: if smoke { 2 } else { 5 },
            only: Vec::new(),
            smoke,
            json: PathBuf::from(if smoke { SMOKE_JSON } else { RESULTS_JSON }),
            append_events: 10_000 / scale,
            batch_events: 100_000 / scale,
            batch_sizes: vec![100, 1000],
            refresh_events: 2_000 / scale,
            replay_events: 1_000_000 / scale,
            small_events: 1_000 / scale.min(10),
            samples: if smoke { 5 } else { 20 },
            rotate_bytes: vec![10_000_000 / scale, 100_000_000 / scale],
            todos: 10_000 / scale,
            thread_events: 250 / scale.min(25),
            follow_events: 500 / scale.min(25),
        }
    }

    /// Parses the command line (without the program name); `None` when
    /// help was asked for.
    ///
    /// `--smoke` sets the smoke defaults first, wherever it appears, so
    /// that explicit sizes given with it still apply.
    pub fn parse(args: &[String]) -> Result<Option<Params>, String> {
        let mut params = Params::defaults(args.iter().any(|a| a == "--smoke"));
        let mut json = None;
        let mut iter = args.iter();
        while let Some(flag) = iter.next() {
            if flag == "--smoke" {
                continue;
            }
            if flag == "-h" || flag == "--help" {
                return Ok(None);
            }
            let value = iter
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))?;
            match flag.as_str() {
                "--dir" => params.dir = PathBuf::from(value),
                "--only" => {
                    params.only = value
                        .split(',')
                        .map(|n| number(flag, n))
                        .collect::<Result<_, _>>()?;
                }
                "--json" => json = Some(PathBuf::from(value)),
                "--runs" => params.runs = number(flag, value)?.max(1) as usize,
                "--append-events" => params.append_events = number(flag, value)?,
                "--batch-events" => params.batch_events = number(flag, value)?,
                "--refresh-events" => params.refresh_events = number(flag, value)?,
                "--replay-events" => params.replay_events = number(flag, value)?,
                "--small-events" => params.small_events = number(flag, value)?,
                "--samples" => params.samples = number(flag, value)?.max(1) as usize,
                "--todos" => params.todos = number(flag, value)?,
                "--thread-events" => params.thread_events = number(flag, value)?,
                "--follow-events" => params.follow_events = number(flag, value)?,
                "--rotate-mb" => {
                    params.rotate_bytes = value
                        .split(',')
                        .map(|mb| number(flag, mb).map(|mb| mb * 1_000_000))
                        .collect::<Result<_, _>>()?;
                    if params.rotate_bytes.len() != 2 {
                        return Err(format!(
                            "--rotate-mb takes two sizes, as in 10,100; got {value}"
                        ));
                    }
                }
                _ => return Err(format!("unknown option {flag}\n\n{USAGE}")),
            }
        }
        if let Some(json) = json {
            params.json = json;
        }
        Ok(Some(params))
    }
}

/// Parses a positive count.
fn number(flag: &str, value: &str) -> Result<u64, String> {
    match value.replace('_', "").parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{flag} takes a positive whole number, not {value:?}"
        )),
    }
}
