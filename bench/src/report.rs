//! The results: one row per scenario with its checks against the issue's
//! goals, printed as a Markdown table and written as JSON together with
//! the machine, the versions and the parameters.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::json;

use crate::BenchResult;
use crate::cli::Params;

/// What a figure measures, which decides how it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Events per second.
    EventsPerSec,
    /// Seconds per operation.
    Secs,
}

impl Unit {
    /// `value` in this unit, for people.
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::EventsPerSec => format!("{}/s", si(value)),
            Unit::Secs if value >= 1.0 => format!("{value:.2} s"),
            Unit::Secs if value >= 1e-3 => format!("{:.2} ms", value * 1e3),
            Unit::Secs => format!("{:.0} µs", value * 1e6),
        }
    }
}

/// A count with a k/M suffix and three significant digits.
fn si(value: f64) -> String {
    let (scaled, suffix) = match value {
        v if v >= 1e6 => (v / 1e6, "M"),
        v if v >= 1e3 => (v / 1e3, "k"),
        v => (v, ""),
    };
    let digits = match scaled {
        s if s >= 100.0 => 0,
        s if s >= 10.0 => 1,
        _ => 2,
    };
    format!("{scaled:.digits$}{suffix}")
}

/// A goal that a checked value must reach.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// The value must be at least this.
    AtLeast(f64),
    /// The value must be at most this.
    AtMost(f64),
}

impl Goal {
    /// Whether `value` reaches the goal.
    pub fn holds(self, value: f64) -> bool {
        match self {
            Goal::AtLeast(bound) => value >= bound,
            Goal::AtMost(bound) => value <= bound,
        }
    }
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Goal::AtLeast(bound) => write!(f, "≥ {bound}"),
            Goal::AtMost(bound) => write!(f, "≤ {bound}"),
        }
    }
}

/// One figure of one system, the median of the runs.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// The system or the variant measured.
    pub name: String,
    /// The median value, in the row's unit.
    pub value: f64,
}

/// A value compared with a goal of the issue.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is compared, e.g. "throughput eventfold/raw".
    pub what: String,
    /// The value: a ratio of medians, or a size in MiB.
    pub value: f64,
    /// The goal.
    pub goal: Goal,
    /// Whether the value reaches the goal.
    pub pass: bool,
}

/// One scenario's figures and checks.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The scenario's number in the table.
    pub number: u8,
    /// Number and name of the scenario, with its size.
    pub scenario: String,
    /// The unit of every figure of the row.
    pub unit: Unit,
    /// eventfold's figures (usually one; two for a size comparison).
    pub eventfold: Vec<Figure>,
    /// The peers' figures.
    pub peers: Vec<Figure>,
    /// The comparisons with the goals.
    pub checks: Vec<Check>,
    /// Other measured facts, e.g. peak memory.
    pub notes: Vec<String>,
}

impl Row {
    /// A row with no figures yet.
    pub fn new(number: u8, scenario: String, unit: Unit) -> Row {
        Row {
            number,
            scenario,
            unit,
            eventfold: Vec::new(),
            peers: Vec::new(),
            checks: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds one of eventfold's figures.
    pub fn eventfold(&mut self, name: &str, value: f64) {
        self.eventfold.push(Figure {
            name: name.to_owned(),
            value,
        });
    }

    /// Adds a peer's figure.
    pub fn peer(&mut self, name: &str, value: f64) {
        self.peers.push(Figure {
            name: name.to_owned(),
            value,
        });
    }

    /// Adds a check of `value` against `goal`.
    pub fn check(&mut self, what: impl Into<String>, value: f64, goal: Goal) {
        self.checks.push(Check {
            what: what.into(),
            value,
            goal,
            pass: goal.holds(value),
        });
    }

    /// Adds a note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The figures of a list, for a table cell.
    fn cell(&self, figures: &[Figure]) -> String {
        figures
            .iter()
            .map(|f| format!("{} {}", f.name, self.unit.format(f.value)))
            .collect::<Vec<_>>()
            .join(" · ")
    }
}

/// The rows as a Markdown table: one line per check, the scenario's
/// figures on its first line, notes after the checks.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| scenario | eventfold | peers | check | value | goal | result |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for row in rows {
        let mut first = true;
        for check in &row.checks {
            let (scenario, ef, peers) = if first {
                (
                    row.scenario.clone(),
                    row.cell(&row.eventfold),
                    row.cell(&row.peers),
                )
            } else {
                Default::default()
            };
            first = false;
            let _ = writeln!(
                out,
                "| {scenario} | {ef} | {peers} | {} | {:.2} | {} | {} |",
                check.what,
                check.value,
                check.goal,
                if check.pass { "PASS" } else { "MISS" }
            );
        }
        for note in &row.notes {
            let _ = writeln!(out, "| | | | {note} | | | |");
        }
    }
    out
}

/// The machine and the run, as printed above the table and stored in the
/// JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// When the run started (UTC).
    pub date: String,
    /// CPU model from `/proc/cpuinfo`.
    pub cpu: String,
    /// Logical cores available to the process.
    pub cores: usize,
    /// Total memory from `/proc/meminfo`.
    pub memory: String,
    /// Kernel release.
    pub kernel: String,
    /// The directory the data went to.
    pub data_dir: String,
    /// Its file system, device and mount point, from `/proc/mounts`.
    pub filesystem: String,
    /// Versions that ran: crates from `bench/Cargo.lock`, SQLite's library.
    pub versions: Vec<(String, String)>,
}

impl Machine {
    /// Gathers what the machine says about itself.
    pub fn probe(data_dir: &Path) -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let field = |text: &str, key: &str| {
            text.lines()
                .find(|line| line.starts_with(key))
                .and_then(|line| line.split_once(':'))
                .map(|(_, value)| value.trim().to_owned())
                .unwrap_or_else(|| "unknown".to_owned())
        };
        Machine {
            date: utc_now(),
            cpu: field(&read("/proc/cpuinfo"), "model name"),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory: gib(&field(&read("/proc/meminfo"), "MemTotal")),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            data_dir: data_dir.display().to_string(),
            filesystem: filesystem(data_dir),
            versions: versions(),
        }
    }

    /// The lines printed above the table.
    pub fn describe(&self) -> String {
        let versions = self
            .versions
            .iter()
            .map(|(name, version)| format!("{name} {version}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "machine: {} × {} cores, {} RAM, Linux {}\n\
             data: {} on {}\n\
             versions: {versions}\n\
             date: {}",
            self.cpu,
            self.cores,
            self.memory,
            self.kernel,
            self.data_dir,
            self.filesystem,
            self.date
        )
    }
}

/// A `/proc/meminfo` size ("24683656 kB") in GiB.
fn gib(kib: &str) -> String {
    kib.trim_end_matches("kB")
        .trim()
        .parse::<f64>()
        .map_or_else(
            |_| kib.to_owned(),
            |k| format!("{:.1} GiB", k / 1024.0 / 1024.0),
        )
}

/// The file system holding `dir`: the mount in `/proc/mounts` whose mount
/// point is the longest prefix of the directory's real path.
fn filesystem(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            let point = point.replace("\\040", " ");
            dir.starts_with(&point)
                .then(|| (point.len(), format!("{kind} ({device} at {point})")))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown".to_owned(), |(_, fs)| fs)
}

/// Versions of the crates that ran, from the bench's `Cargo.lock`, and of
/// the SQLite library linked in.
fn versions() -> Vec<(String, String)> {
    const LOCK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock");
    const CRATES: [&str; 5] = ["eventfold", "rusqlite", "fjall", "zstd", "serde_json"];
    let lock = std::fs::read_to_string(LOCK).unwrap_or_default();
    let mut found: Vec<(String, String)> = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(value) = line.strip_prefix("name = ") {
            name = Some(value.trim_matches('"').to_owned());
        } else if let (Some(value), Some(n)) = (line.strip_prefix("version = "), name.take())
            && CRATES.contains(&n.as_str())
        {
            found.push((n, value.trim_matches('"').to_owned()));
        }
    }
    found.sort_by_key(|(n, _)| CRATES.iter().position(|c| c == n));
    found.push(("SQLite".to_owned(), rusqlite::version().to_owned()));
    found
}

/// The current time, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Writes the figures, the machine and the parameters to `path` as JSON.
pub fn write_json(
    path: &Path,
    machine: &Machine,
    params: &Params,
    rows: &[Row],
    total_secs: f64,
) -> BenchResult<()> {
    let doc = json!({
        "machine": machine,
        "params": params,
        "total_secs": total_secs,
        "rows": rows,
    });
    std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")?;
    Ok(())
}
