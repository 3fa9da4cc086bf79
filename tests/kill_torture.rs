//! Kill torture: the test re-runs its own binary as a child writer, which
//! appends, batches, refreshes, saves and rotates (with a tiny
//! `max_log_size`, so rotations never stop) and prints the sequence number
//! of every acknowledged event. The parent kills it with SIGKILL at a random
//! moment, many rounds over the same directory, and after each kill checks
//! a copy of the directory as the kill left it:
//!
//! - the history is exactly the events `0..len`, each once, in order, each
//!   byte-identical to what the child appended;
//! - every acknowledged event is there, and nothing beyond the one append or
//!   batch in flight at the kill;
//! - snapshots are never ahead of the log, and every view, once refreshed,
//!   equals a fresh fold of `read_full()`;
//! - the archive decompresses frame by frame with the zstd crate alone, and
//!   archive plus active log are exactly the history, every line carrying
//!   its sequence number; the archive index records exactly those frames,
//!   and every event is read back at its sequence number;
//! - committed frames (the archive as recovery alone leaves it, seen on a
//!   second copy opened without `max_log_size`) never change or disappear:
//!   each kill's committed archive starts, byte for byte, with the
//!   previous kill's;
//! - the open as the child does it keeps the committed frames and adds
//!   exactly one frame if the recovered active log is over `max_log_size`
//!   (it rotates it), none otherwise. That frame exists only in the copy:
//!   the next child draws its own `max_log_size` and may not rotate, so a
//!   copy can legitimately hold one frame more than the directory later
//!   does (the final directory is checked against its last copy);
//! - the next round's child continues from `len`, after recovering the
//!   directory itself.
//!
//! Bounded by `EVENTFOLD_TORTURE_SECS` (default 35) and optionally
//! `EVENTFOLD_TORTURE_ROUNDS`; `EVENTFOLD_TORTURE_SEED` replays the same
//! sequence of operations and delays (the kill moments themselves depend on
//! timing). A failure's message names the seed and the round. Run with
//! `--nocapture` to see the summary.

#![cfg(unix)]

mod common;

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::workload::{Chain, chain_reducer, others_reducer, say, workload_log};
use common::{
    ARCHIVE, INTENT, INTENT_TMP, LOG, Rng, archive_frames, check_index, copy_data_dir,
    counter_reducer, env_u64, mix, random_text, spawn_child_test, stored_line, sum_reducer,
    test_dir,
};
use eventfold::{Event, EventLog};
use serde_json::json;
use tempfile::TempDir;

/// Set in the child's environment: the data directory to write to.
const CHILD_DIR: &str = "EVENTFOLD_TORTURE_CHILD_DIR";
/// The child's first sequence number.
const CHILD_START: &str = "EVENTFOLD_TORTURE_CHILD_START";
/// Seed of the child's choice of operations.
const CHILD_SEED: &str = "EVENTFOLD_TORTURE_CHILD_SEED";
/// The child's `max_log_size`.
const CHILD_MAX_LOG: &str = "EVENTFOLD_TORTURE_CHILD_MAX_LOG";

/// A child never runs longer than this, even if its parent died.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

// ------------------------------------------------------ events and views

/// 4 KiB of random text, the source of event padding.
fn noise() -> &'static str {
    static NOISE: OnceLock<String> = OnceLock::new();
    NOISE.get_or_init(|| random_text(0x5eed, 4096))
}

/// Event number `n`, always the same for the same `n`: the parent
/// regenerates it to check the child's bytes. Sizes vary from about 60 to
/// 300 bytes; one in five has another type.
fn torture_event(n: u64) -> Event {
    let h = mix(n);
    let kind = if h.is_multiple_of(5) {
        "other"
    } else {
        "numbered"
    };
    let len = ((h >> 8) % 240) as usize;
    let start = ((h >> 24) % (4096 - 240)) as usize;
    let pad = &noise()[start..start + len];
    Event::with_ts(kind, json!({"n": n, "pad": pad}), 1_700_000_000 + n)
}

// ----------------------------------------------------------------- child

/// The child writer: opens the directory (recovering whatever the last kill
/// left), checks that its views continue from `START`, then writes until it
/// is killed. Before each append or batch it prints `@try A B` (events
/// `A..B` are in flight), after it returned `Ok` `@ack A B`, each flushed.
#[test]
fn torture_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return; // only meaningful as a child of `kill_torture`
    };
    let start = env_u64(CHILD_START);
    let mut rng = Rng(env_u64(CHILD_SEED));

    let mut log = workload_log(Path::new(&dir), env_u64(CHILD_MAX_LOG))
        .open()
        .expect("open");
    let mut next = start;
    let check_views = |log: &EventLog, next: u64| {
        let chain = log.view::<Chain>("chain").expect("chain view");
        assert_eq!(
            (chain.count, chain.disorder),
            (next, 0),
            "the views do not continue from {next}: {chain:?}"
        );
        assert_eq!(*log.view::<u64>("count").expect("count view"), next);
    };
    log.refresh_all().expect("refresh");
    check_views(&log, next);
    say(format!("@ready {start}"));

    let born = Instant::now();
    while born.elapsed() < CHILD_LIFETIME {
        match rng.range(0, 100) {
            0..50 => {
                say(format!("@try {next} {}", next + 1));
                log.append(&torture_event(next)).expect("append");
                say(format!("@ack {next} {}", next + 1));
                next += 1;
            }
            50..75 => {
                let end = next + rng.range(2, 9);
                let batch: Vec<Event> = (next..end).map(torture_event).collect();
                say(format!("@try {next} {end}"));
                log.append_batch(&batch).expect("append_batch");
                say(format!("@ack {next} {end}"));
                next = end;
            }
            75..90 => {
                log.refresh_all().expect("refresh_all");
                check_views(&log, next);
            }
            90..97 => log.save_views().expect("save_views"),
            _ => log.rotate().expect("rotate"),
        }
    }
}

// ---------------------------------------------------------------- parent

/// What the child said before it was killed.
#[derive(Debug, Default)]
struct Transcript {
    /// It finished opening and checked its views.
    ready: bool,
    /// One past the last acknowledged event (the round's start if none).
    acked_end: u64,
    /// One past the last event it started to write.
    tried_end: u64,
    /// Events acknowledged in this round.
    acked: u64,
}

fn parse_transcript(lines: &[String], start: u64) -> Transcript {
    let mut t = Transcript {
        acked_end: start,
        tried_end: start,
        ..Transcript::default()
    };
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let range = || -> (u64, u64) {
            (
                words[1].parse().expect("a number"),
                words[2].parse().expect("a number"),
            )
        };
        match words[0] {
            "@ready" => t.ready = true,
            "@try" => {
                let (a, b) = range();
                assert_eq!(
                    a, t.acked_end,
                    "tried {a} after acknowledging up to {}",
                    t.acked_end
                );
                t.tried_end = b;
            }
            "@ack" => {
                let (a, b) = range();
                assert_eq!(
                    (a, b),
                    (t.acked_end, t.tried_end),
                    "ack of what was not tried"
                );
                t.acked += b - a;
                t.acked_end = b;
            }
            other => panic!("unexpected line from the child: {other}"),
        }
    }
    t
}

/// Figures of the whole run.
#[derive(Debug, Default)]
struct Stats {
    rounds: u64,
    acked: u64,
    in_flight_kept: u64,
    in_flight_dropped: u64,
    kills_during_open: u64,
    kills_in_rotation: u64,
    rolled_back: u64,
    rolled_forward: u64,
    kills_in_snapshot_save: u64,
    torn_tails: u64,
    /// Kills after which the check's open rotated (an active log over
    /// `max_log_size`), adding a frame the next child may not add.
    opens_rotated: u64,
}

/// Notes what the kill interrupted, from the files as it left them.
fn observe_crash_state(dir: &Path, stats: &mut Stats) {
    let log = fs::read(dir.join(LOG)).unwrap_or_default();
    if log.last().is_some_and(|&b| b != b'\n') {
        stats.torn_tails += 1;
    }
    if dir.join(INTENT).exists() || dir.join(INTENT_TMP).exists() {
        stats.kills_in_rotation += 1;
        if dir.join(INTENT).exists() {
            if log.is_empty() {
                stats.rolled_forward += 1;
            } else {
                stats.rolled_back += 1;
            }
        }
    }
    let snapshot_tmp = fs::read_dir(dir.join("views"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        })
        .unwrap_or(false);
    if snapshot_tmp {
        stats.kills_in_snapshot_save += 1;
    }
}

/// Opens `dir` as the child would and checks everything the module docs
/// list; returns its files as that open left them.
fn check_dir(dir: &Path, max_log_size: u64) -> Files {
    let mut log = workload_log(dir, max_log_size)
        .open()
        .unwrap_or_else(|e| panic!("open after the kill: {e}"));
    for leftover in [INTENT, INTENT_TMP] {
        assert!(!dir.join(leftover).exists(), "{leftover} survived the open");
    }

    // Snapshots are never ahead of the log: what each view loaded is the
    // fold of a prefix of the history.
    let loaded = log.view::<Chain>("chain").expect("chain").clone();
    let mut count = 0u64;
    let mut sum = 0u64;
    let mut chain = Chain::default();
    let mut others = 0u64;
    let mut n = 0u64;
    for item in log.read_full().expect("read_full") {
        let (event, _) = item.unwrap_or_else(|e| panic!("read_full: {e}"));
        if n == loaded.count {
            assert_eq!(loaded, chain, "the chain snapshot is not a prefix fold");
        }
        assert_eq!(event, torture_event(n), "event {n}");
        count = counter_reducer(count, &event);
        sum = sum_reducer(sum, &event);
        chain = chain_reducer(chain, &event);
        others = others_reducer(others, &event);
        n += 1;
    }
    assert!(
        loaded.count <= n,
        "the chain snapshot is ahead of the log: {loaded:?}"
    );
    if loaded.count == n {
        assert_eq!(loaded, chain, "the chain snapshot is not a prefix fold");
    }

    // Positions: the history ends at `n`, and a read from any sequence
    // number starts with that event.
    assert_eq!(log.next_seq(), n, "next_seq");
    for seq in [0, n / 3, n / 2, n.saturating_sub(1)]
        .into_iter()
        .filter(|&s| s < n)
    {
        let (at, event, _) = log
            .read_from_seq(seq)
            .and_then(|mut items| items.next().expect("an event"))
            .unwrap_or_else(|e| panic!("read_from_seq({seq}): {e}"));
        assert_eq!(
            (at, event),
            (seq, torture_event(seq)),
            "read_from_seq({seq})"
        );
    }

    log.refresh_all().expect("refresh_all");
    assert_eq!(
        *log.view::<u64>("count").expect("count"),
        count,
        "count view"
    );
    assert_eq!(*log.view::<u64>("sum").expect("sum"), sum, "sum view");
    assert_eq!(
        *log.view::<Chain>("chain").expect("chain"),
        chain,
        "chain view"
    );
    assert_eq!(
        *log.view::<u64>("others").expect("others"),
        others,
        "others view"
    );
    drop(log);

    let files = check_files(dir);
    assert_eq!(files.events, n, "lines in the files vs read_full");
    files
}

/// The files of a data directory, checked without eventfold.
#[derive(Debug, Default)]
struct Files {
    /// Lines of the archive and the active log: events of the history.
    events: u64,
    /// The archive's bytes.
    archive: Vec<u8>,
    /// The archive's zstd frames.
    frames: usize,
    /// Length of `app.jsonl`.
    active_len: u64,
}

/// Independently of eventfold's reader: every frame decompresses with the
/// zstd crate and holds whole lines; archive then active log is the
/// history `0..`, line for line.
fn check_files(dir: &Path) -> Files {
    let archive_path = dir.join(ARCHIVE);
    let frames = archive_frames(&archive_path);
    let archive = fs::read(&archive_path).unwrap_or_default();
    if !archive.is_empty() {
        assert_eq!(
            zstd::decode_all(&archive[..])
                .expect("zstd::decode_all")
                .len(),
            frames.iter().map(Vec::len).sum::<usize>()
        );
    }
    let active = fs::read(dir.join(LOG)).expect("read app.jsonl");
    let mut line_no = 0u64;
    for (i, part) in frames.iter().chain([&active]).enumerate() {
        let is_frame = i < frames.len();
        assert!(
            (part.is_empty() && !is_frame) || part.last() == Some(&b'\n'),
            "part {i} does not end with a newline"
        );
        for line in part.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let expected = stored_line(&torture_event(line_no), line_no);
            assert_eq!(
                std::str::from_utf8(line).expect("UTF-8"),
                expected,
                "line {line_no} of the files"
            );
            line_no += 1;
        }
    }
    check_index(dir);
    Files {
        events: line_no,
        archive,
        frames: frames.len(),
        active_len: active.len() as u64,
    }
}

/// Opens `dir` without `max_log_size`, so that recovery alone acts on it
/// (no rotation adds a frame), and returns its files: the archive then
/// holds exactly the committed frames, those whose events are in the
/// history, which every later round must keep.
fn recovered_files(dir: &Path) -> Files {
    let log = workload_log(dir, 0)
        .open()
        .unwrap_or_else(|e| panic!("open without rotation after the kill: {e}"));
    drop(log);
    check_files(dir)
}

/// What opening a kill state as the child does (with `max_log_size`) did
/// to the archive, `opened` against `recovered` (the same kill state after
/// recovery alone): it kept the committed frames, in order, and added one
/// frame, the recovered active log, if that is over `max_log_size` (the
/// open rotates it), none otherwise. That extra frame exists only where
/// this open ran: the next child, with its own `max_log_size`, may not
/// rotate, so a later kill can leave fewer frames than this open did.
/// Returns whether the open rotated.
fn check_open_frames(opened: &Files, recovered: &Files, max_log_size: u64) -> bool {
    let rotates = recovered.active_len > max_log_size;
    let expected = recovered.frames + usize::from(rotates);
    assert!(
        opened.frames == expected && opened.archive.starts_with(&recovered.archive),
        "after the open with max_log_size {max_log_size}, the archive must hold the {} \
         committed frames ({} bytes) in order, plus {} (the recovered active log is {} bytes): \
         it holds {} frames ({} bytes){}",
        recovered.frames,
        recovered.archive.len(),
        if rotates {
            "the frame of the open's rotation"
        } else {
            "nothing"
        },
        recovered.active_len,
        opened.frames,
        opened.archive.len(),
        if opened.archive.starts_with(&recovered.archive) {
            ""
        } else {
            ", which do not start with the committed ones"
        }
    );
    rotates
}

/// Committed frames never change or disappear: the archive as recovery
/// leaves it after this kill starts, byte for byte, with the one after the
/// previous kill.
fn check_committed_kept(previous: &Files, recovered: &Files) {
    assert!(
        recovered.archive.starts_with(&previous.archive),
        "committed frames disappeared or changed: the previous kill left {} committed frames \
         ({} bytes); this one leaves {} frames ({} bytes), which must start with them",
        previous.frames,
        previous.archive.len(),
        recovered.frames,
        recovered.archive.len()
    );
}

/// Runs `step`; if it panics, panics again with `context` (the seed and
/// the round, to replay it) in front of the message, keeping `root` on
/// disk as evidence.
fn in_context<T>(context: &str, root: &mut TempDir, step: impl FnOnce() -> T) -> T {
    match panic::catch_unwind(AssertUnwindSafe(step)) {
        Ok(value) => value,
        Err(payload) => {
            root.disable_cleanup(true);
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("a panic without a message");
            panic!(
                "{context}: {message}\n(directory kept at {})",
                root.path().display()
            );
        }
    }
}

/// Reads the environment's bound on the run.
fn budget() -> (Duration, u64) {
    let secs = std::env::var("EVENTFOLD_TORTURE_SECS")
        .ok()
        .map(|s| {
            s.parse()
                .expect("EVENTFOLD_TORTURE_SECS is a number of seconds")
        })
        .unwrap_or(35);
    let rounds = std::env::var("EVENTFOLD_TORTURE_ROUNDS")
        .ok()
        .map(|s| s.parse().expect("EVENTFOLD_TORTURE_ROUNDS is a number"))
        .unwrap_or(u64::MAX);
    (Duration::from_secs(secs), rounds)
}

/// A kill delay: a third very early (the child is still starting or
/// recovering), the rest spread up to 200 ms.
fn kill_delay(rng: &mut Rng) -> Duration {
    let ms = match rng.range(0, 10) {
        0..3 => rng.range(1, 20),
        3..7 => rng.range(20, 100),
        _ => rng.range(100, 200),
    };
    Duration::from_millis(ms)
}

/// Runs one child for `delay`, then SIGKILLs it; returns its transcript
/// lines. Panics with the child's stderr if it exited by itself.
fn run_and_kill(
    data: &Path,
    stderr_path: &Path,
    start: u64,
    seed: u64,
    max_log: u64,
    delay: Duration,
) -> Vec<String> {
    let (start, seed, max_log) = (start.to_string(), seed.to_string(), max_log.to_string());
    let (mut child, reader) = spawn_child_test(
        "torture_child_writer",
        &[
            (CHILD_DIR, data.as_os_str()),
            (CHILD_START, start.as_ref()),
            (CHILD_SEED, seed.as_ref()),
            (CHILD_MAX_LOG, max_log.as_ref()),
        ],
        stderr_path,
    );

    let deadline = Instant::now() + delay;
    loop {
        if let Some(status) = child.0.try_wait().expect("poll the child") {
            panic!(
                "the child exited by itself ({status}) before the kill:\n{}",
                fs::read_to_string(stderr_path).unwrap_or_default()
            );
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        thread::sleep((deadline - now).min(Duration::from_millis(2)));
    }
    child.0.kill().expect("SIGKILL the child");
    child.0.wait().expect("reap the child");
    reader.join().expect("stdout reader")
}

/// The torture itself; see the module docs.
#[test]
fn kill_torture() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return;
    }
    let (time_budget, max_rounds) = budget();
    let seed = std::env::var("EVENTFOLD_TORTURE_SEED")
        .ok()
        .map(|s| s.parse().expect("EVENTFOLD_TORTURE_SEED is a number"))
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!(
        "kill torture: seed {seed} (replay with EVENTFOLD_TORTURE_SEED={seed}), budget {}s",
        time_budget.as_secs()
    );
    let mut root = test_dir();
    let data = root.path().join("data");
    let copy = root.path().join("copy");
    let stderr_path: PathBuf = root.path().join("child.stderr");
    let mut rng = Rng(seed);
    let mut stats = Stats::default();
    let mut history = 0u64;
    // The files as recovery alone left them after the last kill.
    let mut committed = Files::default();
    let mut max_log = 4096;
    let began = Instant::now();

    while began.elapsed() < time_budget && stats.rounds < max_rounds {
        let round = stats.rounds;
        let child_seed = rng.next();
        let delay = kill_delay(&mut rng);
        max_log = [2048, 3072, 4096, 8192][rng.range(0, 4) as usize];
        let context = format!(
            "round {round} (seed {seed}, replay with EVENTFOLD_TORTURE_SEED={seed}; \
             child seed {child_seed}, delay {delay:?}, max_log_size {max_log}, history {history})"
        );
        let len = in_context(&context, &mut root, || {
            let lines = run_and_kill(&data, &stderr_path, history, child_seed, max_log, delay);
            let transcript = parse_transcript(&lines, history);
            observe_crash_state(&data, &mut stats);

            // The kill state opened as the child would, then once more
            // with recovery alone, to tell committed frames from one the
            // check's own open may add.
            copy_data_dir(&data, &copy);
            let opened = check_dir(&copy, max_log);
            copy_data_dir(&data, &copy);
            let recovered = recovered_files(&copy);
            assert_eq!(
                recovered.events, opened.events,
                "events after recovery alone vs after the open with max_log_size"
            );
            check_committed_kept(&committed, &recovered);
            stats.opens_rotated += u64::from(check_open_frames(&opened, &recovered, max_log));
            committed = recovered;

            let len = opened.events;
            let lost = transcript.acked_end.saturating_sub(len);
            assert_eq!(
                lost, 0,
                "acknowledged events lost: {len} < {}",
                transcript.acked_end
            );
            assert!(
                len <= transcript.tried_end,
                "events {}..{len} appeared but were never started",
                transcript.tried_end
            );
            let in_flight = transcript.tried_end - transcript.acked_end;
            stats.in_flight_kept += len - transcript.acked_end;
            stats.in_flight_dropped += in_flight - (len - transcript.acked_end);
            stats.acked += transcript.acked;
            stats.kills_during_open += u64::from(!transcript.ready);
            len
        });
        stats.rounds += 1;
        history = len;
    }

    // The real directory, recovered in place by a last open: it must end
    // as its last copy did.
    let context = format!(
        "the final check after {} rounds (seed {seed}, replay with EVENTFOLD_TORTURE_SEED={seed}; \
         max_log_size {max_log}, history {history})",
        stats.rounds
    );
    let files = in_context(&context, &mut root, || {
        let files = check_dir(&data, max_log);
        assert_eq!(
            files.events, history,
            "the directory and its last copy disagree"
        );
        check_open_frames(&files, &committed, max_log);
        files
    });
    let (len, frames) = (files.events, files.frames);
    let s = &stats;
    println!(
        "kill torture summary: seed={seed} secs={} rounds={} kills_during_open={} events_acked={} \
         history={len} in_flight_kept={} in_flight_dropped={} rotations(frames)={frames} \
         kills_in_rotation={} (rolled_back={} rolled_forward={}) kills_in_snapshot_save={} \
         torn_tails={} opens_rotated={} events_lost=0",
        began.elapsed().as_secs(),
        s.rounds,
        s.kills_during_open,
        s.acked,
        s.in_flight_kept,
        s.in_flight_dropped,
        s.kills_in_rotation,
        s.rolled_back,
        s.rolled_forward,
        s.kills_in_snapshot_save,
        s.torn_tails,
        s.opens_rotated,
    );
    assert!(stats.rounds > 0, "no round ran (seed {seed})");
}
