//! The scenarios of the issues (11 and 12 are in `concurrent`). Each runs eventfold and its peers on
//! the same data in fresh directories on the same disk, `runs` times, and
//! returns one [`Row`] of medians and checks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use eventfold::{Event, EventLog, Snapshot};
use tempfile::TempDir;

use crate::BenchResult;
use crate::child::{self, Replay};
use crate::cli::Params;
use crate::peers::{self, System, ZSTD_LEVEL};
use crate::report::{Goal, Row, Unit};
use crate::workload::{self, Todos};

/// Name of the counter view.
const COUNTER: &str = "count";
/// Name of the todo view.
const TODOS: &str = "todos";
/// Bytes in a MiB, for peak memory.
const MIB: f64 = 1024.0 * 1024.0;

/// The median of some samples (the mean of the middle two for an even
/// count).
pub fn median(mut samples: Vec<f64>) -> f64 {
    assert!(!samples.is_empty(), "a median needs samples");
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    if samples.len() % 2 == 1 {
        samples[mid]
    } else {
        (samples[mid - 1] + samples[mid]) / 2.0
    }
}

/// Seconds taken by `f`.
pub fn timed(f: impl FnOnce() -> BenchResult<()>) -> BenchResult<f64> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed().as_secs_f64())
}

/// A size in bytes as megabytes, for labels.
fn mb(bytes: u64) -> String {
    format!("{} MB", (bytes as f64 / 1e5).round() / 10.0)
}

/// A count of events, short: 1000 → "1k", 1000000 → "1M".
pub(crate) fn short(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// A benchmark run: the parameters and the directory that holds every
/// scenario's data, removed at the end.
pub struct Bench<'a> {
    pub(crate) params: &'a Params,
    root: TempDir,
    /// The large log of scenarios 4 to 7 once written, with its event count.
    large: Option<(PathBuf, u64)>,
}

impl<'a> Bench<'a> {
    /// Creates the data directory under `params.dir`.
    pub fn new(params: &'a Params) -> BenchResult<Bench<'a>> {
        let root = tempfile::Builder::new()
            .prefix("eventfold-bench-")
            .tempdir_in(&params.dir)?;
        Ok(Bench {
            params,
            root,
            large: None,
        })
    }

    /// Runs every scenario; returns the rows in the order.
    ///
    /// Scenarios 6 and 7 need the large log with its history still in the
    /// active log, so they run before scenario 5 rotates it.
    pub fn run_all(&mut self) -> BenchResult<Vec<Row>> {
        let only = self.params.only.clone();
        let wanted = |n: u64| only.is_empty() || only.contains(&n);
        let mut rows = Vec::new();
        if wanted(1) {
            rows.push(self.single_append()?);
        }
        if wanted(2) {
            rows.extend(self.batch_append()?);
        }
        if wanted(3) {
            rows.push(self.append_refresh()?);
        }
        if wanted(4) {
            rows.push(self.replay_active()?);
        }
        if wanted(14) {
            rows.push(self.replay_typed()?);
        }
        if wanted(6) {
            rows.push(self.incremental_refresh()?);
        }
        if wanted(7) {
            rows.push(self.open_with_snapshots()?);
        }
        if wanted(5) {
            rows.push(self.replay_archive()?);
        }
        if wanted(13) {
            rows.push(self.tooling()?);
        }
        if wanted(8) {
            rows.push(self.rotation()?);
        }
        if wanted(9) {
            rows.push(self.snapshot_save()?);
        }
        if wanted(10) {
            rows.push(self.read_tail_by_seq()?);
        }
        if wanted(11) {
            rows.push(self.threads()?);
        }
        if wanted(12) {
            rows.push(self.follow_latency()?);
        }
        rows.sort_by_key(|row| row.number);
        Ok(rows)
    }

    /// A new empty directory inside the run's data directory.
    pub(crate) fn fresh(&self) -> BenchResult<TempDir> {
        Ok(tempfile::tempdir_in(self.root.path())?)
    }

    /// Prints what is about to run.
    pub(crate) fn progress(&self, what: &str) {
        eprintln!("[bench] {what}");
    }

    /// Appends `events` with every writing system, one at a time (`batch`
    /// None) or in batches; returns each system's median events/s.
    fn write_throughput(
        &self,
        events: &[Event],
        batch: Option<usize>,
    ) -> BenchResult<HashMap<&'static str, f64>> {
        let mut samples: HashMap<&'static str, Vec<f64>> = HashMap::new();
        for _ in 0..self.params.runs {
            for system in System::ALL {
                let dir = self.fresh()?;
                let mut writer = system.open(dir.path())?;
                let secs = timed(|| {
                    match batch {
                        None => events.iter().try_for_each(|e| writer.append(e))?,
                        Some(size) => events
                            .chunks(size)
                            .try_for_each(|chunk| writer.append_batch(chunk))?,
                    }
                    Ok(())
                })?;
                samples
                    .entry(system.name())
                    .or_default()
                    .push(events.len() as f64 / secs);
            }
        }
        Ok(samples.into_iter().map(|(k, v)| (k, median(v))).collect())
    }

    /// Scenario 1: single durable appends: eventfold, the raw loop, SQLite, fjall.
    fn single_append(&self) -> BenchResult<Row> {
        let n = self.params.append_events;
        self.progress(&format!("1. single durable append, {n} events"));
        let rate = self.write_throughput(&workload::events(0, n), None)?;
        let title = format!("1. single durable append, {} events", short(n));
        Ok(write_row(
            1,
            title,
            "append",
            &rate,
            &[("raw", 0.95), ("sqlite", 1.0)],
        ))
    }

    /// Scenario 2: `append_batch` of each batch size: one write and one sync per batch, against the
    /// same batches in the peers.
    fn batch_append(&self) -> BenchResult<Vec<Row>> {
        let n = self.params.batch_events;
        let events = workload::events(0, n);
        let mut rows = Vec::new();
        for &size in &self.params.batch_sizes {
            self.progress(&format!("2. append_batch of {size}, {n} events"));
            let rate = self.write_throughput(&events, Some(size as usize))?;
            let title = format!("2. append_batch of {size}, {} events", short(n));
            let goals = [("raw", 0.8), ("sqlite", 1.0), ("fjall", 1.0)];
            rows.push(write_row(2, title, "append_batch", &rate, &goals));
        }
        Ok(rows)
    }

    /// Scenario 3: append + `refresh_all` with a counter and a todo view, per event, against a
    /// plain durable append.
    fn append_refresh(&self) -> BenchResult<Row> {
        let n = self.params.refresh_events;
        self.progress(&format!("3. append + refresh_all (2 views), {n} events"));
        let events = workload::events(0, n);
        let (mut plain, mut refreshed) = (Vec::new(), Vec::new());
        for _ in 0..self.params.runs {
            let dir = self.fresh()?;
            let mut log = EventLog::open(dir.path())?;
            let secs = timed(|| {
                for event in &events {
                    log.append(event)?;
                }
                Ok(())
            })?;
            plain.push(secs / n as f64);

            let dir = self.fresh()?;
            let mut log = EventLog::builder(dir.path())
                .view::<u64>(COUNTER, workload::count)
                .view::<Todos>(TODOS, workload::todos)
                .open()?;
            log.refresh_all()?;
            let secs = timed(|| {
                for event in &events {
                    log.append(event)?;
                    log.refresh_all()?;
                }
                Ok(())
            })?;
            refreshed.push(secs / n as f64);
        }
        let (plain, refreshed) = (median(plain), median(refreshed));
        let mut row = Row::new(
            3,
            format!("3. append + refresh_all, 2 views, {} events", short(n)),
            Unit::Secs,
        );
        row.eventfold("append+refresh_all", refreshed);
        row.peer("eventfold append alone", plain);
        row.check(
            "time (append+refresh_all)/append",
            refreshed / plain,
            Goal::AtMost(1.5),
        );
        Ok(row)
    }

    /// The large log of scenarios 4 to 7, written on first use.
    pub(crate) fn large_log(&mut self) -> BenchResult<(PathBuf, u64)> {
        if let Some(large) = &self.large {
            return Ok(large.clone());
        }
        let n = self.params.replay_events;
        self.progress(&format!("   writing a log of {n} events"));
        let dir = self.root.path().join("large");
        let secs = timed(|| workload::fill_log(&dir, 0, n))?;
        let bytes = std::fs::metadata(dir.join("app.jsonl"))?.len();
        self.progress(&format!("   {} in {secs:.1} s", mb(bytes)));
        self.large = Some((dir, n));
        Ok((self.root.path().join("large"), n))
    }

    /// Runs `ours` and `floor` in children `runs` times each; returns the
    /// medians of events/s and of peak RSS (MiB), eventfold's first.
    fn replays(&self, ours: &Path, floor: (Replay, &Path)) -> BenchResult<[(f64, f64); 2]> {
        self.replay_pair((Replay::Eventfold, ours), floor)
    }

    /// As [`replays`](Self::replays), for any two kinds of replay.
    fn replay_pair(
        &self,
        ours: (Replay, &Path),
        floor: (Replay, &Path),
    ) -> BenchResult<[(f64, f64); 2]> {
        let mut figures = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
        for _ in 0..self.params.runs {
            let ef = child::spawn(ours.0, ours.1)?;
            let base = child::spawn(floor.0, floor.1)?;
            if ef.events != base.events {
                return Err(format!(
                    "eventfold folded {} events, the floor {}",
                    ef.events, base.events
                )
                .into());
            }
            for (slot, report) in figures.iter_mut().zip([ef, base]) {
                slot.0.push(report.events as f64 / report.secs);
                slot.1.push(report.peak_rss_kib as f64 * 1024.0 / MIB);
            }
        }
        Ok(figures.map(|(rate, rss)| (median(rate), median(rss))))
    }

    /// Scenario 4: full replay of the large log from the active log into a fresh counter view,
    /// against reading and parsing the same file.
    fn replay_active(&mut self) -> BenchResult<Row> {
        let (dir, n) = self.large_log()?;
        self.progress(&format!("4. full replay of {n} events from the active log"));
        let [(ef, ef_rss), (raw, raw_rss)] =
            self.replays(&dir, (Replay::RawFile, &dir.join("app.jsonl")))?;
        let mut row = Row::new(
            4,
            format!("4. full replay, active log, {} events", short(n)),
            Unit::EventsPerSec,
        );
        row.eventfold("rebuild_view", ef);
        row.peer("raw read+parse", raw);
        row.check("throughput eventfold/raw", ef / raw, Goal::AtLeast(0.9));
        row.check("eventfold peak RSS, MiB", ef_rss, Goal::AtMost(32.0));
        row.note(format!(
            "peak RSS of the whole child: eventfold {ef_rss:.1} MiB, raw {raw_rss:.1} MiB"
        ));
        Ok(row)
    }

    /// Scenario 14: full replay of the large log into a typed view (each
    /// line decoded into an enum) against the same view over `Event`s,
    /// which builds a `serde_json::Value` for every event's data.
    fn replay_typed(&mut self) -> BenchResult<Row> {
        let (dir, n) = self.large_log()?;
        self.progress(&format!(
            "14. full replay of {n} events, typed and Value views"
        ));
        let [(typed, typed_rss), (value, value_rss)] =
            self.replay_pair((Replay::Typed, &dir), (Replay::Value, &dir))?;
        let mut row = Row::new(
            14,
            format!("14. full replay, typed vs Value view, {} events", short(n)),
            Unit::EventsPerSec,
        );
        row.eventfold("typed view", typed);
        row.peer("Value view", value);
        row.check("throughput typed/Value", typed / value, Goal::AtLeast(1.5));
        row.note(format!(
            "the same tally of every field, from the active log; peak RSS of the whole child: \
             typed {typed_rss:.1} MiB, Value {value_rss:.1} MiB"
        ));
        Ok(row)
    }

    /// Scenario 5: full replay of the large log after a rotation: everything comes from the
    /// archive. The floor decompresses the same archive file.
    fn replay_archive(&mut self) -> BenchResult<Row> {
        let (dir, n) = self.large_log()?;
        self.progress(&format!(
            "5. rotating, then full replay of {n} events from the archive"
        ));
        let rotate_secs = timed(|| {
            EventLog::open(&dir)?.rotate()?;
            Ok(())
        })?;
        let [(ef, ef_rss), (zstd, zstd_rss)] =
            self.replays(&dir, (Replay::ZstdFile, &dir.join("archive.jsonl.zst")))?;
        let mut row = Row::new(
            5,
            format!("5. full replay, archive, {} events", short(n)),
            Unit::EventsPerSec,
        );
        row.eventfold("rebuild_view", ef);
        row.peer("zstd decode+parse", zstd);
        row.check("throughput eventfold/zstd", ef / zstd, Goal::AtLeast(0.85));
        row.note(format!(
            "peak RSS of the whole child: eventfold {ef_rss:.1} MiB, zstd {zstd_rss:.1} MiB"
        ));
        row.note(format!("rotating this log first took {rotate_secs:.2} s"));
        Ok(row)
    }

    /// A small log of `small_events` events, written in a new directory.
    fn small_log(&self) -> BenchResult<TempDir> {
        let dir = self.fresh()?;
        workload::fill_log(dir.path(), 0, self.params.small_events)?;
        Ok(dir)
    }

    /// Scenario 6: refresh after one new event, views up to date, on the small and the large log.
    fn incremental_refresh(&mut self) -> BenchResult<Row> {
        let (large, n) = self.large_log()?;
        let small_n = self.params.small_events;
        self.progress(&format!(
            "6. incremental refresh after 1 event, {small_n} vs {n} events"
        ));
        let small = self.small_log()?;
        let open = |dir: &Path| -> BenchResult<EventLog> {
            let mut log = EventLog::builder(dir)
                .view::<u64>(COUNTER, workload::count)
                .open()?;
            log.refresh_all()?;
            Ok(log)
        };
        let mut logs = [open(small.path())?, open(&large)?];
        let mut samples = [Vec::new(), Vec::new()];
        let mut next = n;
        for _ in 0..self.params.runs * self.params.samples {
            for (log, samples) in logs.iter_mut().zip(&mut samples) {
                log.append(&workload::event(next))?;
                next += 1;
                samples.push(timed(|| Ok(log.refresh_all()?))?);
            }
        }
        let [small_secs, large_secs] = samples.map(median);
        let mut row = Row::new(
            6,
            format!(
                "6. refresh_all after 1 new event, {} vs {} events",
                short(small_n),
                short(n)
            ),
            Unit::Secs,
        );
        row.eventfold(&format!("{} log", short(small_n)), small_secs);
        row.eventfold(&format!("{} log", short(n)), large_secs);
        row.check(
            format!("time {}/{}", short(n), short(small_n)),
            large_secs / small_secs,
            Goal::AtMost(2.0),
        );
        row.note("one counter view; snapshots are saved every 64 KiB of log, so most refreshes write nothing");
        Ok(row)
    }

    /// Scenario 7: open with up-to-date snapshots, on an empty log and on the large log.
    fn open_with_snapshots(&mut self) -> BenchResult<Row> {
        let (large, n) = self.large_log()?;
        self.progress(&format!(
            "7. open with up-to-date snapshots, empty vs {n} events"
        ));
        let empty = self.fresh()?;
        let open = |dir: &Path| -> BenchResult<EventLog> {
            Ok(EventLog::builder(dir)
                .view::<u64>(COUNTER, workload::count)
                .open()?)
        };
        let mut expected = [0, 0];
        for (dir, count) in [empty.path(), large.as_path()]
            .into_iter()
            .zip(&mut expected)
        {
            let mut log = open(dir)?;
            log.refresh_all()?;
            *count = *log.view::<u64>(COUNTER)?;
        }
        let mut samples = [Vec::new(), Vec::new()];
        for _ in 0..self.params.runs * self.params.samples {
            for ((dir, samples), count) in [empty.path(), large.as_path()]
                .into_iter()
                .zip(&mut samples)
                .zip(expected)
            {
                let start = Instant::now();
                let log = open(dir)?;
                samples.push(start.elapsed().as_secs_f64());
                if *log.view::<u64>(COUNTER)? != count {
                    return Err("open did not load the up-to-date snapshot".into());
                }
            }
        }
        let [empty_secs, large_secs] = samples.map(median);
        let mut row = Row::new(
            7,
            format!(
                "7. open with up-to-date snapshot, empty vs {} events",
                short(n)
            ),
            Unit::Secs,
        );
        row.eventfold("empty log", empty_secs);
        row.eventfold(&format!("{} log", short(n)), large_secs);
        row.check(
            format!("time {}/empty", short(n)),
            large_secs / empty_secs,
            Goal::AtMost(2.0),
        );
        Ok(row)
    }

    /// Scenario 8: rotation of a small and a large active log, against compressing the same file
    /// with the zstd crate at the same level, plus a sync.
    fn rotation(&self) -> BenchResult<Row> {
        let sizes = &self.params.rotate_bytes;
        self.progress(&format!(
            "8. rotation of {} and {}",
            mb(sizes[0]),
            mb(sizes[1])
        ));
        let mut ours = vec![Vec::new(); sizes.len()];
        let mut reopened = vec![Vec::new(); sizes.len()];
        let mut floor = vec![Vec::new(); sizes.len()];
        let mut lens = vec![0; sizes.len()];
        for _ in 0..self.params.runs {
            for (i, &bytes) in sizes.iter().enumerate() {
                // As auto-rotation runs: the log that wrote the events
                // rotates them.
                let dir = self.fresh()?;
                let mut log = EventLog::open(dir.path())?;
                workload::fill_bytes(&mut log, bytes)?;
                let log_path = dir.path().join("app.jsonl");
                lens[i] = std::fs::metadata(&log_path)?.len();
                let copy = dir.path().join("zstd-floor.zst");
                floor[i].push(timed(|| peers::compress(&log_path, &copy))?);
                peers::remove_if_exists(&copy)?;
                ours[i].push(timed(|| Ok(log.rotate()?))?);
                drop(log);
                // The first rotation after an open also checks the lines
                // this process has not read or written.
                let dir = self.fresh()?;
                workload::fill_to_bytes(dir.path(), bytes)?;
                let mut log = EventLog::open(dir.path())?;
                reopened[i].push(timed(|| Ok(log.rotate()?))?);
            }
        }
        let ours: Vec<f64> = ours.into_iter().map(median).collect();
        let reopened: Vec<f64> = reopened.into_iter().map(median).collect();
        let floor: Vec<f64> = floor.into_iter().map(median).collect();
        let mut row = Row::new(
            8,
            format!("8. rotation of {} and {}", mb(sizes[0]), mb(sizes[1])),
            Unit::Secs,
        );
        for i in 0..sizes.len() {
            row.eventfold(&mb(sizes[i]), ours[i]);
            row.peer(&format!("zstd -{ZSTD_LEVEL} {}", mb(sizes[i])), floor[i]);
        }
        for i in 0..sizes.len() {
            row.check(
                format!("throughput eventfold/zstd, {}", mb(sizes[i])),
                floor[i] / ours[i],
                Goal::AtLeast(0.8),
            );
            row.check(
                format!(
                    "throughput eventfold/zstd, {}, first rotation after an open",
                    mb(sizes[i])
                ),
                floor[i] / reopened[i],
                Goal::AtLeast(0.8),
            );
        }
        let scale = lens[1] as f64 / lens[0] as f64;
        row.check(
            format!(
                "time {}/{} (linear: {scale:.1})",
                mb(sizes[1]),
                mb(sizes[0])
            ),
            ours[1] / ours[0],
            Goal::AtMost((1.2 * scale * 10.0).round() / 10.0),
        );
        for i in 0..sizes.len() {
            row.note(format!(
                "{}: eventfold {:.0} MB/s, zstd alone {:.0} MB/s; first rotation after an open, which also checks every line (on a second thread): {:.0} MB/s",
                mb(sizes[i]),
                lens[i] as f64 / 1e6 / ours[i],
                lens[i] as f64 / 1e6 / floor[i],
                lens[i] as f64 / 1e6 / reopened[i]
            ));
        }
        Ok(row)
    }

    /// Scenario 9: saving a snapshot of a todo state, against serializing it and writing it with
    /// one sync.
    fn snapshot_save(&self) -> BenchResult<Row> {
        let n = self.params.todos;
        self.progress(&format!("9. snapshot save of {n} todos"));
        let snapshot = Snapshot {
            state: workload::todo_state(n),
            offset: 0,
            hash: String::new(),
        };
        let (mut ours, mut floor) = (Vec::new(), Vec::new());
        let mut bytes = 0;
        for _ in 0..self.params.runs {
            let dir = self.fresh()?;
            let path = dir.path().join("todos.snapshot.json");
            let plain = dir.path().join("plain.json");
            for _ in 0..self.params.samples {
                ours.push(timed(|| Ok(snapshot.save(&path)?))?);
                floor.push(timed(|| peers::save_plain(&snapshot, &plain))?);
            }
            bytes = std::fs::metadata(&path)?.len();
        }
        let (ours, floor) = (median(ours), median(floor));
        let mut row = Row::new(
            9,
            format!("9. snapshot save, {} todos", short(n)),
            Unit::Secs,
        );
        row.eventfold("Snapshot::save", ours);
        row.peer("to_vec+write+sync_all", floor);
        row.check("time eventfold/plain", ours / floor, Goal::AtMost(1.2));
        row.note(format!("snapshot file: {:.0} kB", bytes as f64 / 1e3));
        Ok(row)
    }
}

/// A row of write throughputs (`rate`, events/s by system) with a check of
/// eventfold against each peer in `goals` (peer, least acceptable ratio).
impl Bench<'_> {
    /// Scenario 10: read the last events by sequence number, on a short
    /// history and on a long one, both entirely in the archive: the long
    /// one's frames before the last are skipped, not decompressed.
    fn read_tail_by_seq(&self) -> BenchResult<Row> {
        let (small_n, large_n) = (self.params.small_events, self.params.replay_events);
        let tail = TAIL_EVENTS.min(small_n);
        self.progress(&format!(
            "10. read the last {tail} events by position, {small_n} vs {large_n} events"
        ));
        let small = self.fresh()?;
        workload::fill_log(small.path(), 0, small_n)?;
        EventLog::open(small.path())?.rotate()?;
        let large = self.fresh()?;
        let per_rotation = large_n / ROTATIONS;
        for r in 0..ROTATIONS {
            workload::fill_log(large.path(), r * per_rotation, per_rotation)?;
            EventLog::open(large.path())?.rotate()?;
        }
        let frames = std::fs::read_to_string(large.path().join("archive.index.jsonl"))?
            .lines()
            .count();
        let logs = [EventLog::open(small.path())?, EventLog::open(large.path())?];
        let mut samples = [Vec::new(), Vec::new()];
        for _ in 0..self.params.runs * self.params.samples {
            for (log, samples) in logs.iter().zip(&mut samples) {
                let from = log.next_seq() - tail;
                let start = Instant::now();
                let mut read = 0;
                for item in log.read_from_seq(from)? {
                    let (seq, _, _) = item?;
                    if seq != from + read {
                        return Err(
                            format!("event {seq} read where {} was due", from + read).into()
                        );
                    }
                    read += 1;
                }
                samples.push(start.elapsed().as_secs_f64());
                if read != tail {
                    return Err(format!("read {read} events, not the last {tail}").into());
                }
            }
        }
        let [small_secs, large_secs] = samples.map(median);
        let mut row = Row::new(
            10,
            format!(
                "10. last {} events by position, {} vs {} events",
                short(tail),
                short(small_n),
                short(large_n)
            ),
            Unit::Secs,
        );
        row.eventfold(&format!("{} history", short(small_n)), small_secs);
        row.eventfold(&format!("{} history", short(large_n)), large_secs);
        row.check(
            format!("time {}/{}", short(large_n), short(small_n)),
            large_secs / small_secs,
            Goal::AtMost(2.0),
        );
        row.note(format!(
            "the long history is {ROTATIONS} rotations, {frames} zstd frames of up to 1 MiB \
             of events each; both histories are entirely in the archive"
        ));
        Ok(row)
    }
}

/// Scenario 10: how many of the last events are read.
const TAIL_EVENTS: u64 = 1_000;
/// Scenario 10: rotations that make the long history.
const ROTATIONS: u64 = 10;

fn write_row(
    number: u8,
    title: String,
    operation: &str,
    rate: &HashMap<&'static str, f64>,
    goals: &[(&str, f64)],
) -> Row {
    let mut row = Row::new(number, title, Unit::EventsPerSec);
    row.eventfold(operation, rate["eventfold"]);
    for peer in ["raw", "sqlite", "fjall"] {
        row.peer(peer, rate[peer]);
    }
    for &(peer, goal) in goals {
        row.check(
            format!("throughput eventfold/{peer}"),
            rate["eventfold"] / rate[peer],
            Goal::AtLeast(goal),
        );
    }
    row
}
