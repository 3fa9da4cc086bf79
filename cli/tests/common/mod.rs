//! Helpers shared by the command-line tests: data directories written
//! with the library, the binary, and parsers for what it prints.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use eventfold::{Event, EventLog};
use serde_json::{Value, json};
use tempfile::TempDir;

/// 2025-12-01T00:00:00Z, the timestamp of event 0 of [`event`].
pub const BASE_TS: u64 = 1_764_547_200;
/// Seconds between two events of [`event`]: 144 events a day.
pub const STEP_TS: u64 = 600;
/// The types [`event`] cycles through.
pub const TYPES: [&str; 3] = ["order_placed", "order_paid", "note"];

/// The path of the `eventfold` binary under test.
pub fn bin_path() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_eventfold"))
}

/// A command running the `eventfold` binary with `args`.
pub fn eventfold<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(bin_path());
    command.args(args).env_remove("NO_COLOR");
    command
}

/// A command running `eventfold COMMAND DIR`, to which more arguments
/// can be added.
pub fn on_dir(command: &str, dir: &Path) -> Command {
    let mut command = eventfold([command]);
    command.arg(dir);
    command
}

/// A fresh temporary directory, removed when dropped.
pub fn test_dir() -> TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

/// Event number `n` of the histories the tests write: its type cycles
/// through [`TYPES`], its timestamp is `BASE_TS + n * STEP_TS`, its data
/// holds `n` and text that CSV must quote; every fifth has an id, every
/// seventh metadata.
pub fn event(n: u64) -> Event {
    let event_type = TYPES[(n % 3) as usize];
    let data = json!({"n": n, "text": format!("item {n}, \"quoted\"\nsecond line")});
    let mut event = Event::with_ts(event_type, data, BASE_TS + n * STEP_TS);
    if n.is_multiple_of(5) {
        event = event.with_id(format!("id-{n}"));
    }
    if n.is_multiple_of(7) {
        event = event.with_meta("actor", json!("ana"));
    }
    event
}

/// A data directory holding events `0..n` of [`event`], rotated into the
/// archive many times: by hand every 300 events, and automatically past
/// 16 KiB of active log.
pub fn rotated_history(n: u64) -> TempDir {
    let dir = test_dir();
    let mut log = open_rotating(dir.path());
    append_rotating(&mut log, 0..n);
    dir
}

/// A writer on `dir` that rotates automatically past 16 KiB of active log.
pub fn open_rotating(dir: &Path) -> EventLog {
    EventLog::builder(dir)
        .max_log_size(16 * 1024)
        .open()
        .expect("open the log")
}

/// Appends events `range` of [`event`] to `log` in batches of 50,
/// rotating by hand at every multiple of 300.
pub fn append_rotating(log: &mut EventLog, range: std::ops::Range<u64>) {
    let events: Vec<Event> = range.clone().map(event).collect();
    for (chunk, start) in events.chunks(50).zip(range.step_by(50)) {
        log.append_batch(chunk).expect("append");
        if (start + 50).is_multiple_of(300) {
            log.rotate().expect("rotate");
        }
    }
}

/// The export line that event `seq` of [`event`] should give, as JSON.
pub fn expected_line(seq: u64) -> Value {
    let event = event(seq);
    let mut line = json!({
        "seq": seq,
        "type": event.event_type,
        "data": event.data,
        "ts": event.ts,
    });
    if let Some(id) = event.id {
        line["id"] = json!(id);
    }
    if let Some(meta) = event.meta {
        line["meta"] = Value::Object(meta);
    }
    line
}

/// Parses JSON Lines output, checking that every line is one object whose
/// first key is `seq`.
pub fn parse_jsonl(output: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(output).expect("UTF-8 output");
    text.lines()
        .map(|line| {
            assert!(line.starts_with("{\"seq\":"), "seq is not first: {line}");
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
        })
        .collect()
}

/// The `seq` of each JSON line.
pub fn seqs(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .map(|line| line["seq"].as_u64().expect("seq is a number"))
        .collect()
}

/// Parses CSV as RFC 4180 defines it (CRLF between records, fields with
/// commas, quotes or line breaks in double quotes, quotes doubled), into
/// records of fields.
pub fn parse_csv(output: &[u8]) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(output).expect("UTF-8 output");
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "a CR not followed by LF");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, '"' | '\n') => panic!("a bare {c:?} outside quotes in {text:?}"),
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted, "an unterminated quoted field");
    assert!(field.is_empty() && record.is_empty(), "no CRLF at the end");
    records
}

/// Every file under `dir` with its bytes and permissions: what a
/// read-only command must leave exactly as it was.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, fs::Permissions)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in fs::read_dir(&at).expect("list a directory") {
            let path = entry.expect("read an entry").path();
            let metadata = fs::symlink_metadata(&path).expect("stat a file");
            if metadata.is_dir() {
                stack.push(path.clone());
                files.insert(path, (Vec::new(), metadata.permissions()));
            } else {
                let bytes = fs::read(&path).expect("read a file");
                files.insert(path, (bytes, metadata.permissions()));
            }
        }
    }
    files
}

/// Sends SIGTERM to `child`, as `kill` does, and waits up to `timeout`
/// for it to exit.
pub fn terminate(child: &mut Child, timeout: Duration) -> ExitStatus {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM failed");
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().expect("kill the child");
            panic!("the child did not exit within {timeout:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A thread appending events of [`event`] to a log on a directory in
/// batches of 50, rotating as [`append_rotating`] does, until stopped.
pub struct LiveWriter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl LiveWriter {
    /// Starts a writer on `dir`; returns once it has acknowledged
    /// `at_least` events.
    pub fn start(dir: &Path, at_least: u64) -> LiveWriter {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let thread = {
            let (stop, written) = (stop.clone(), written.clone());
            let path = dir.to_path_buf();
            std::thread::spawn(move || {
                let mut log = open_rotating(&path);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    append_rotating(&mut log, n..n + 50);
                    n += 50;
                    written.store(n, Ordering::SeqCst);
                }
            })
        };
        while written.load(Ordering::SeqCst) < at_least {
            std::thread::sleep(Duration::from_millis(5));
        }
        LiveWriter {
            stop,
            written,
            thread,
        }
    }

    /// The events acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.written.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops the writer and waits for it.
    pub fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the writer thread");
    }
}
