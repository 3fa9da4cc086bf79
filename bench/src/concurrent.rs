//! The scenarios of several moving parts: eight threads appending at once
//! (eventfold's group commit against `Arc<Mutex<EventLog>>`, SQLite and
//! fjall), and how soon a reader in another process sees an acknowledged
//! append.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eventfold::{Event, EventLog, EventReader};

use crate::BenchResult;
use crate::report::{Goal, Row, Unit};
use crate::scenarios::{Bench, median, timed};
use crate::workload;

/// Threads appending at once in scenario 11.
const THREADS: u64 = 8;

/// The hidden subcommand of the follower child of scenario 12.
pub const FOLLOW_SUBCOMMAND: &str = "__follow";

/// The ways of appending from eight threads that scenario 11 compares.
#[derive(Debug, Clone, Copy)]
enum Shared {
    /// eventfold's `SharedLog`: group commit.
    Eventfold,
    /// One `EventLog` behind a mutex: one append, and one sync, at a time.
    Mutex,
    /// SQLite in WAL mode, `synchronous=FULL`, one connection per thread
    /// with a busy timeout, one transaction per event.
    Sqlite,
    /// fjall: one keyspace shared by the threads, `persist(SyncAll)` after
    /// each event.
    Fjall,
}

impl Shared {
    const ALL: [Shared; 4] = [
        Shared::Eventfold,
        Shared::Mutex,
        Shared::Sqlite,
        Shared::Fjall,
    ];

    fn name(self) -> &'static str {
        match self {
            Shared::Eventfold => "eventfold",
            Shared::Mutex => "Arc<Mutex<EventLog>>",
            Shared::Sqlite => "sqlite",
            Shared::Fjall => "fjall",
        }
    }

    /// Appends `per_thread` events from each of eight threads, each event
    /// durable before its call returns; returns events/s.
    fn run(self, dir: &Path, per_thread: u64) -> BenchResult<f64> {
        let events: Vec<Vec<Event>> = (0..THREADS)
            .map(|t| workload::events(t * per_thread, per_thread))
            .collect();
        let total = (THREADS * per_thread) as f64;
        let secs = match self {
            Shared::Eventfold => {
                let shared = EventLog::open(dir)?.into_shared();
                timed(|| {
                    on_threads(events, |events| {
                        events.iter().try_for_each(|e| shared.append(e).map(drop))?;
                        Ok(())
                    })
                })?
            }
            Shared::Mutex => {
                let log = Mutex::new(EventLog::open(dir)?);
                timed(|| {
                    on_threads(events, |events| {
                        for event in events {
                            log.lock().map_err(|_| "poisoned")?.append(event)?;
                        }
                        Ok(())
                    })
                })?
            }
            Shared::Sqlite => {
                let path = dir.join("events.db");
                crate::peers::Sqlite::open(&path)?;
                timed(|| {
                    on_threads(events, |events| {
                        let conn = rusqlite::Connection::open(&path)?;
                        conn.busy_timeout(Duration::from_secs(30))?;
                        conn.execute_batch("PRAGMA synchronous=FULL;")?;
                        let mut insert = conn
                            .prepare("INSERT INTO events (type, data, ts) VALUES (?1, ?2, ?3)")?;
                        for event in events {
                            let data = serde_json::to_string(&event.data)?;
                            insert.execute((&event.event_type, data, i64::try_from(event.ts)?))?;
                        }
                        Ok(())
                    })
                })?
            }
            Shared::Fjall => {
                let keyspace = fjall::Config::new(dir.join("fjall")).open()?;
                let partition =
                    keyspace.open_partition("events", fjall::PartitionCreateOptions::default())?;
                let next = AtomicU64::new(0);
                timed(|| {
                    on_threads(events, |events| {
                        for event in events {
                            let key = next.fetch_add(1, Ordering::Relaxed).to_be_bytes();
                            let mut value = serde_json::to_vec(event)?;
                            value.push(b'\n');
                            partition.insert(key, value)?;
                            keyspace.persist(fjall::PersistMode::SyncAll)?;
                        }
                        Ok(())
                    })
                })?
            }
        };
        Ok(total / secs)
    }
}

/// Runs `work` on each thread's events, on eight threads at once.
fn on_threads(
    events: Vec<Vec<Event>>,
    work: impl Fn(&[Event]) -> BenchResult<()> + Sync,
) -> BenchResult<()> {
    thread::scope(|scope| {
        let handles: Vec<_> = events
            .iter()
            .map(|mine| scope.spawn(|| work(mine).map_err(|e| e.to_string())))
            .collect();
        for handle in handles {
            handle.join().map_err(|_| "a thread panicked")??;
        }
        Ok(())
    })
}

impl Bench<'_> {
    /// Scenario 11: eight threads appending one event at a time.
    pub fn threads(&self) -> BenchResult<Row> {
        let per_thread = self.params.thread_events;
        let n = per_thread * THREADS;
        self.progress(&format!("11. 8 threads appending, {n} events"));
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); Shared::ALL.len()];
        for _ in 0..self.params.runs {
            for (i, way) in Shared::ALL.into_iter().enumerate() {
                let dir = self.fresh()?;
                samples[i].push(way.run(dir.path(), per_thread)?);
            }
        }
        let rates: Vec<f64> = samples.into_iter().map(median).collect();
        let mut row = Row::new(
            11,
            format!("11. 8 threads appending one event at a time, {n} events"),
            Unit::EventsPerSec,
        );
        row.eventfold("SharedLog::append", rates[0]);
        for (way, rate) in Shared::ALL.iter().zip(&rates).skip(1) {
            row.peer(way.name(), *rate);
        }
        row.check(
            "throughput SharedLog/Arc<Mutex<EventLog>>",
            rates[0] / rates[1],
            Goal::AtLeast(3.0),
        );
        row.check(
            "throughput SharedLog/sqlite",
            rates[0] / rates[2],
            Goal::AtLeast(1.0),
        );
        row.check(
            "throughput SharedLog/fjall",
            rates[0] / rates[3],
            Goal::AtLeast(1.0),
        );
        Ok(row)
    }

    /// Scenario 12: from an append's acknowledgement to a reader in
    /// another process seeing the event.
    pub fn follow_latency(&self) -> BenchResult<Row> {
        let n = self.params.follow_events;
        self.progress(&format!("12. follow latency, another process, {n} events"));
        let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
        for _ in 0..self.params.runs {
            let dir = self.fresh()?;
            let mut latencies = follow_once(dir.path(), n)?;
            latencies.sort_by(f64::total_cmp);
            p50s.push(percentile(&latencies, 0.50));
            p99s.push(percentile(&latencies, 0.99));
        }
        let (p50, p99) = (median(p50s), median(p99s));
        let mut row = Row::new(
            12,
            format!("12. follow latency, reader in another process, {n} appends"),
            Unit::Secs,
        );
        row.eventfold("p50 ack → seen", p50);
        row.eventfold("p99 ack → seen", p99);
        row.check("p50 latency (ms)", p50 * 1e3, Goal::AtMost(5.0));
        Ok(row)
    }
}

/// The value below which a fraction `q` of the sorted `values` lie.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Nanoseconds of the system clock, which both processes read.
fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One run of scenario 12: a child follows the log in `dir`, printing
/// when it saw each event; this process appends `n` events, 2 ms apart,
/// noting when each was acknowledged. Returns the latencies in seconds.
fn follow_once(dir: &Path, n: u64) -> BenchResult<Vec<f64>> {
    let mut log = EventLog::open(dir)?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg(FOLLOW_SUBCOMMAND)
        .arg(dir)
        .arg(n.to_string())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    if lines.next().transpose()?.as_deref() != Some("ready") {
        return Err("the follower did not start".into());
    }
    let mut acked = Vec::with_capacity(n as usize);
    for event in workload::events(0, n) {
        log.append(&event)?;
        acked.push(now_nanos());
        thread::sleep(Duration::from_millis(2));
    }
    let mut latencies = Vec::with_capacity(n as usize);
    for line in lines {
        let line = line?;
        let mut parts = line.split(' ');
        let seq: usize = parts.next().ok_or("no seq")?.parse()?;
        let seen: u64 = parts.next().ok_or("no time")?.parse()?;
        latencies.push(seen.saturating_sub(acked[seq]) as f64 / 1e9);
    }
    if !child.wait()?.success() || latencies.len() as u64 != n {
        return Err(format!("the follower saw {} of {n} events", latencies.len()).into());
    }
    Ok(latencies)
}

/// The follower child: `DIR N`. Follows the log in DIR from event 0 with an
/// `EventReader` (file-system notification), printing `SEQ NANOS` as soon
/// as it sees each event, until it has seen N.
pub fn follow_child(args: &[String]) -> BenchResult<()> {
    let [dir, n] = args else {
        return Err(format!("usage: {FOLLOW_SUBCOMMAND} DIR N").into());
    };
    let n: u64 = n.parse()?;
    let reader = EventReader::open(dir)?;
    let mut follow = reader.follow(0);
    // The watch starts with the first wait: start it before saying ready.
    reader.wait_for(0, Duration::from_millis(1))?;
    let stdout = std::io::stdout();
    writeln!(stdout.lock(), "ready")?;
    let timeout = Duration::from_secs(30);
    while follow.next_seq() < n {
        let (seq, _) = follow
            .next_timeout(timeout)
            .ok_or("no event within 30 s")??;
        writeln!(stdout.lock(), "{seq} {}", now_nanos())?;
    }
    Ok(())
}
