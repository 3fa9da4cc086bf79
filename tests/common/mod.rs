//! Helpers shared by the integration tests: fixtures, temporary
//! directories, reducers and file inspection.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use eventfold::{Event, EventLog, EventLogBuilder};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tempfile::TempDir;

pub mod ledger;
pub mod workload;

/// The active log's file name in a data directory.
pub const LOG: &str = "app.jsonl";
/// The archive's file name.
pub const ARCHIVE: &str = "archive.jsonl.zst";
/// The archive index's file name.
pub const INDEX: &str = "archive.index.jsonl";
/// The rotation intent record's file name.
pub const INTENT: &str = "rotation.json";
/// The temporary file an intent record is written to before its rename.
pub const INTENT_TMP: &str = "rotation.json.tmp";
/// Where the open keeps the bytes it cut from a torn tail.
pub const TORN: &str = "app.jsonl.torn";
/// The writer's record of how much of the active log it acknowledged.
pub const COMMITTED: &str = "app.jsonl.committed";

/// Forgets what the writer acknowledged, as a reboot does: removes its
/// record, `app.jsonl.committed`, which counts only until then. The next
/// open takes every line of `app.jsonl` as the log's, as it does after a
/// reboot or in a directory written before the record existed; with the
/// record, it refuses lines past the acknowledged end that are not events.
pub fn forget_acknowledged(dir: &Path) {
    fs::remove_file(dir.join(COMMITTED)).expect("remove app.jsonl.committed");
}

/// A fresh temporary directory, removed when dropped.
pub fn test_dir() -> TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

/// An event with minimal data and a fixed timestamp, so that equal calls
/// give byte-identical lines.
pub fn dummy_event(event_type: &str) -> Event {
    Event::with_ts(event_type, json!({"n": 1}), 1_700_000_000)
}

/// An event carrying a sequence number, to check order and completeness.
pub fn numbered(n: u64) -> Event {
    Event::with_ts("numbered", json!({ "n": n }), 1_700_000_000 + n)
}

/// The simplest reducer: counts events.
pub fn counter_reducer(state: u64, _event: &Event) -> u64 {
    state + 1
}

/// Sums the `n` field of events: depends on the events' content.
pub fn sum_reducer(state: u64, event: &Event) -> u64 {
    state + event.data["n"].as_u64().unwrap_or(0)
}

/// Collects the `n` field of every event, in order: shows the exact
/// sequence a view has consumed.
pub fn seq_reducer(mut state: Vec<u64>, event: &Event) -> Vec<u64> {
    state.push(event.data["n"].as_u64().unwrap_or(u64::MAX));
    state
}

/// State of the todo example.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodoState {
    pub items: Vec<TodoItem>,
    pub next_id: u64,
}

/// One todo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodoItem {
    pub id: u64,
    pub text: String,
    pub done: bool,
}

/// The todo reducer of the design's quick example.
pub fn todo_reducer(mut state: TodoState, event: &Event) -> TodoState {
    match event.event_type.as_str() {
        "todo_added" => {
            let text = event.data["text"].as_str().unwrap_or_default().to_owned();
            state.items.push(TodoItem {
                id: state.next_id,
                text,
                done: false,
            });
            state.next_id += 1;
        }
        "todo_completed" => {
            let id = event.data["id"].as_u64();
            if let Some(item) = state.items.iter_mut().find(|i| Some(i.id) == id) {
                item.done = true;
            }
        }
        "todo_deleted" => {
            let id = event.data["id"].as_u64();
            state.items.retain(|i| Some(i.id) != id);
        }
        _ => {}
    }
    state
}

/// Appends `n` dummy events; returns their offsets.
pub fn append_n(log: &mut EventLog, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| log.append(&dummy_event("dummy")).expect("append"))
        .collect()
}

/// Appends events numbered `range`; returns their offsets.
pub fn append_numbered(log: &mut EventLog, range: std::ops::Range<u64>) -> Vec<u64> {
    range
        .map(|n| log.append(&numbered(n)).expect("append"))
        .collect()
}

/// Checks that events have the expected types, in order.
pub fn assert_events_eq(events: Vec<Event>, expected_types: Vec<&str>) {
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, expected_types);
}

/// Every event of the log, archive first, panicking on error.
pub fn all_events(log: &EventLog) -> Vec<Event> {
    log.read_full()
        .expect("read_full")
        .map(|item| item.expect("valid event").0)
        .collect()
}

/// The events of the active log from `offset`, panicking on error.
pub fn active_events(log: &EventLog, offset: u64) -> Vec<Event> {
    log.read_from(offset)
        .expect("read_from")
        .map(|item| item.expect("valid event").0)
        .collect()
}

/// A builder with the standard test views registered: "count"
/// ([`counter_reducer`], `u64`), "seq" ([`seq_reducer`], `Vec<u64>`) and
/// "todos" ([`todo_reducer`], [`TodoState`]).
pub fn builder_with_views(dir: &Path) -> EventLogBuilder {
    EventLog::builder(dir)
        .view::<u64>("count", counter_reducer)
        .view::<Vec<u64>>("seq", seq_reducer)
        .view::<TodoState>("todos", todo_reducer)
}

/// Opens `dir` with the standard test views.
pub fn open_with_views(dir: &Path) -> EventLog {
    builder_with_views(dir).open().expect("open")
}

/// Path of a file in the data directory.
pub fn data_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Path of a view's snapshot file.
pub fn snapshot_file(dir: &Path, view: &str) -> PathBuf {
    dir.join("views").join(format!("{view}.snapshot.json"))
}

/// Size of a file in bytes (0 if missing).
pub fn file_size(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A snapshot file's JSON.
pub fn snapshot_json(dir: &Path, view: &str) -> serde_json::Value {
    let bytes = fs::read(snapshot_file(dir, view)).expect("read snapshot");
    serde_json::from_slice(&bytes).expect("snapshot is JSON")
}

/// Modification time of a file, to tell whether it was rewritten.
pub fn mtime(path: &Path) -> std::time::SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

/// Decompresses the archive with the zstd crate alone, independently of
/// eventfold's reader, and returns its lines.
pub fn archive_lines(dir: &Path) -> Vec<String> {
    let path = dir.join("archive.jsonl.zst");
    let bytes = fs::read(&path).expect("read archive");
    let text = zstd::decode_all(&bytes[..]).expect("archive decompresses");
    String::from_utf8(text)
        .expect("archive is UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Changes a view's snapshot file in place (as damage or a careless edit
/// would), applying `edit` to its JSON; the checksum stays as it was.
pub fn edit_snapshot(dir: &Path, view: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut json = snapshot_json(dir, view);
    edit(&mut json);
    fs::write(
        snapshot_file(dir, view),
        serde_json::to_vec(&json).expect("JSON"),
    )
    .expect("write snapshot");
}

/// The state a fresh full replay gives: every event of the log (archive,
/// then active) folded through `reducer` from the default state.
pub fn replay<S: Default>(log: &EventLog, reducer: fn(S, &Event) -> S) -> S {
    all_events(log).iter().fold(S::default(), reducer)
}

/// Every entry under `dir`, recursively, by path relative to `dir`: a
/// file's bytes, or `None` for a directory. Two equal results mean nothing
/// was created, removed or written.
pub fn dir_contents(dir: &Path) -> std::collections::BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut std::collections::BTreeMap<PathBuf, Option<Vec<u8>>>,
    ) {
        for entry in fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            let name = path.strip_prefix(root).expect("inside root").to_path_buf();
            if path.is_dir() {
                out.insert(name, None);
                walk(root, &path, out);
            } else {
                out.insert(name, Some(fs::read(&path).expect("read file")));
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The frames of an archive file, each decompressed on its own with
/// `zstd::decode_all` (independently of eventfold's reader); empty if the
/// file does not exist. Panics if a frame is damaged or incomplete.
pub fn archive_frames(path: &Path) -> Vec<Vec<u8>> {
    frame_spans(path).into_iter().map(|f| f.content).collect()
}

/// One zstd frame of an archive, found with the zstd crate alone.
pub struct FrameSpan {
    /// Where it starts in the file.
    pub start: u64,
    /// Its compressed length.
    pub len: u64,
    /// What it decompresses to.
    pub content: Vec<u8>,
}

/// The frames of the archive at `path`, in order (none if it is missing).
pub fn frame_spans(path: &Path) -> Vec<FrameSpan> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("read {}: {e}", path.display()),
    };
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let size = zstd::zstd_safe::find_frame_compressed_size(rest).unwrap_or_else(|code| {
            panic!(
                "{}: no complete zstd frame at byte {} (error {code})",
                path.display(),
                bytes.len() - rest.len()
            )
        });
        let content = zstd::decode_all(&rest[..size]).expect("frame decompresses");
        frames.push(FrameSpan {
            start: (bytes.len() - rest.len()) as u64,
            len: size as u64,
            content,
        });
        rest = &rest[size..];
    }
    frames
}

/// The line of `archive.index.jsonl` that records a frame, checksum
/// included, as the guide documents it.
pub fn index_line(start: u64, len: u64, bytes: u64, first_seq: u64, events: u64) -> String {
    let text = format!("{start}:{len}:{bytes}:{first_seq}:{events}");
    let checksum = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
    format!(
        "{{\"start\":{start},\"len\":{len},\"bytes\":{bytes},\"first_seq\":{first_seq},\
         \"events\":{events},\"checksum\":\"{checksum:016x}\"}}"
    )
}

/// Checks, without eventfold, that `archive.index.jsonl` records exactly
/// the archive's frames: one line per frame, in order, with its place,
/// sizes, first sequence number and number of events (lines). No index
/// is right only for a directory that was never rotated.
pub fn check_index(dir: &Path) {
    let frames = frame_spans(&dir.join(ARCHIVE));
    let index = fs::read_to_string(dir.join(INDEX)).unwrap_or_default();
    let mut expected = String::new();
    let mut first_seq = 0;
    for frame in &frames {
        let events = frame.content.iter().filter(|&&b| b == b'\n').count() as u64;
        expected.push_str(&index_line(
            frame.start,
            frame.len,
            frame.content.len() as u64,
            first_seq,
            events,
        ));
        expected.push('\n');
        first_seq += events;
    }
    assert_eq!(
        index, expected,
        "archive.index.jsonl against the archive's frames"
    );
}

/// The `n` field of each event.
pub fn numbers(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.data["n"].as_u64().expect("a numbered event"))
        .collect()
}

/// A file system mounted over a directory for one test (as root, where
/// the sandbox allows it), unmounted when dropped.
pub struct TestMount {
    path: PathBuf,
}

impl TestMount {
    /// Mounts a `tmpfs` of `size` (as `mount -o size=` takes it, e.g.
    /// `"256k"`) on the existing directory `path`; `Err` says why not.
    pub fn tmpfs(path: &Path, size: &str) -> Result<TestMount, String> {
        mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            path,
        )?;
        Ok(TestMount {
            path: path.to_path_buf(),
        })
    }

    /// Makes the directory `path` read-only for everyone, root included,
    /// by bind-mounting it over itself read-only; `Err` says why not.
    pub fn read_only(path: &Path) -> Result<TestMount, String> {
        mount(&["--bind"], path)?;
        // From here on, dropping the guard undoes the bind mount.
        let bound = TestMount {
            path: path.to_path_buf(),
        };
        mount(&["-o", "remount,bind,ro"], path)?;
        Ok(bound)
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Runs `mount ARGS [path] path` (the bind source is the target itself).
fn mount(args: &[&str], path: &Path) -> Result<(), String> {
    let mut command = std::process::Command::new("mount");
    command.args(args);
    if args.first() == Some(&"--bind") {
        command.arg(path);
    }
    let output = command
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount {args:?} {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.path)
                .status();
        }
    }
}

/// Every event of the log, archive first, or the first error.
pub fn try_all_events(log: &EventLog) -> eventfold::Result<Vec<Event>> {
    log.read_full()?.map(|item| item.map(|(e, _)| e)).collect()
}

/// The states of the views of [`builder_with_views`] as JSON: "count",
/// "seq", "todos", in that order.
pub fn standard_views_json(log: &EventLog) -> Vec<serde_json::Value> {
    vec![
        json!(log.view::<u64>("count").expect("view count")),
        json!(log.view::<Vec<u64>>("seq").expect("view seq")),
        json!(log.view::<TodoState>("todos").expect("view todos")),
    ]
}

/// What the views of [`builder_with_views`] fold from `events`, as JSON,
/// in the order of [`standard_views_json`].
pub fn standard_folds_json(events: &[Event]) -> Vec<serde_json::Value> {
    vec![
        json!(events.iter().fold(0, counter_reducer)),
        json!(events.iter().fold(Vec::new(), seq_reducer)),
        json!(events.iter().fold(TodoState::default(), todo_reducer)),
    ]
}

/// `len` pseudo-random letters, digits, `+` and `/` (6 bits of entropy a
/// character), the same for the same `seed`: text that zstd compresses
/// only to about three quarters of its size.
pub fn random_text(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
    let mut rng = Rng(seed);
    (0..len)
        .map(|_| ALPHABET[(rng.next() % 64) as usize] as char)
        .collect()
}

/// SplitMix64: small, seedable, good enough to pick operations, delays
/// and damage, the same sequence for the same seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next number of the sequence.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// The SplitMix64 finalizer: a well-spread hash of `x`.
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Orders the tests of one test binary around child processes.
///
/// The directory lock is a `flock` on an open file description. While a
/// thread spawns a child (between `fork` and `exec`), the child holds a
/// copy of every descriptor of the process, lock included: a log dropped
/// in that window stays locked until the child's `exec`, and an open of
/// the same directory just then fails with `Error::Locked`. A test that
/// spawns children takes [`spawning_test`] (it then runs alone); every
/// other test of such a binary that drops and reopens a log takes
/// [`in_process_test`] (they run side by side).
static SPAWNS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// For a test that spawns child processes: excludes every other test of
/// the binary that holds a guard; see [`SPAWNS`].
pub fn spawning_test() -> std::sync::RwLockWriteGuard<'static, ()> {
    SPAWNS.write().unwrap_or_else(|e| e.into_inner())
}

/// For a test that reopens logs in-process in a binary whose other tests
/// spawn children; see [`SPAWNS`].
pub fn in_process_test() -> std::sync::RwLockReadGuard<'static, ()> {
    SPAWNS.read().unwrap_or_else(|e| e.into_inner())
}

/// The bytes of a rotation intent record (`rotation.json`), as a rotation
/// writes them, for tests that build the files a crash leaves.
pub fn intent_record(archive_len: u64, log_len: u64) -> String {
    let text = format!("{archive_len}:{log_len}");
    let checksum = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
    format!(r#"{{"archive_len":{archive_len},"log_len":{log_len},"checksum":"{checksum:016x}"}}"#)
}

/// Writes a view's snapshot by hand, as a person who means it would:
/// `edit` is applied and the checksum removed, so the file is trusted on
/// its offset and hash alone (like one written by `Snapshot::save`).
pub fn hand_write_snapshot(dir: &Path, view: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    edit_snapshot(dir, view, |json| {
        json.as_object_mut()
            .expect("a snapshot is an object")
            .remove("checksum");
        edit(json);
    });
}

/// Appends raw bytes to a file, creating it if needed (what a crashed
/// writer leaves behind).
pub fn append_bytes(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}

/// Replaces `to` with a copy of the data directory `from`: its files and
/// those of `views/` (created even if `from` has none, as after a kill
/// before the first snapshot).
pub fn copy_data_dir(from: &Path, to: &Path) {
    if to.exists() {
        fs::remove_dir_all(to).expect("remove old copy");
    }
    for sub in ["", "views"] {
        fs::create_dir_all(to.join(sub)).expect("create copy");
        let Ok(entries) = fs::read_dir(from.join(sub)) else {
            continue; // killed before views/ was created
        };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_file() {
                let name = path.file_name().expect("a file name");
                fs::copy(&path, to.join(sub).join(name)).expect("copy file");
            }
        }
    }
}

/// State of a view that keeps every event's type and `text` field, in
/// order: text that must survive snapshots byte for byte.
pub type Texts = Vec<(String, String)>;

/// The reducer of [`Texts`].
pub fn texts_reducer(mut state: Texts, event: &Event) -> Texts {
    let text = event.data["text"].as_str().unwrap_or_default().to_owned();
    state.push((event.event_type.clone(), text));
    state
}

/// Runs `f` on a thread of its own and returns what it returns (or
/// re-raises its panic); panics if it has not returned within `limit`,
/// for a call that must not hang (opening a FIFO to read it waits for a
/// writer). A call that hangs is left behind on its thread.
pub fn within<T: Send + 'static>(
    limit: std::time::Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = sender.send(outcome);
    });
    match receiver.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!("{what} did not return within {limit:?}"),
    }
}

/// Creates a FIFO (named pipe) at `path` with mkfifo(1). It runs a child
/// process: take [`spawning_test`] in a test that calls it.
pub fn make_fifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {} failed", path.display());
}

/// One entry of a directory as [`dir_entries`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A directory (its entries are listed under their own paths).
    Dir,
    /// A symbolic link and what it points to (never followed).
    Link(PathBuf),
    /// Anything else (a FIFO, a device, a socket), never opened.
    Special,
}

/// Every entry under `dir`, recursively, by path relative to `dir`, like
/// [`dir_contents`] but safe among planted files: links are not followed
/// and only regular files are read.
pub fn dir_entries(dir: &Path) -> std::collections::BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, Entry>) {
        for entry in fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            let name = path.strip_prefix(root).expect("inside root").to_path_buf();
            let kind = fs::symlink_metadata(&path).expect("lstat").file_type();
            let entry = if kind.is_dir() {
                walk(root, &path, out);
                Entry::Dir
            } else if kind.is_symlink() {
                Entry::Link(fs::read_link(&path).expect("read link"))
            } else if kind.is_file() {
                Entry::File(fs::read(&path).expect("read file"))
            } else {
                Entry::Special
            };
            out.insert(name, entry);
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Warnings logged through the `log` crate in this test binary since
/// [`capture_warnings`] installed its logger.
static WARNINGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The logger of [`capture_warnings`].
struct WarningCapture;

impl log::Log for WarningCapture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let text = record.args().to_string();
            WARNINGS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(text);
        }
    }

    fn flush(&self) {}
}

/// Installs a logger that keeps every warning, for [`warnings_about`]; the
/// first call in a test binary installs it, later ones do nothing.
pub fn capture_warnings() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        if log::set_logger(&WarningCapture).is_ok() {
            log::set_max_level(log::LevelFilter::Warn);
        }
    });
}

/// The warnings captured so far whose text names `path` (a test's own
/// temporary directory keeps tests running side by side apart).
pub fn warnings_about(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy();
    WARNINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|w| w.contains(&*needle))
        .cloned()
        .collect()
}

/// The number in the environment variable `name` (as a child process
/// reads its orders); panics if it is missing or not a number.
pub fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

/// The number in the environment variable `name`, `default` when it is
/// not set (a size a user may raise for a longer run); panics if it is not
/// a number.
pub fn env_u64_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name} is not a number: {value:?}")),
        Err(_) => default,
    }
}

/// Kills a child process when dropped, so that a failing test leaves none
/// behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Re-runs this test binary as a child that runs only its test `test`,
/// with the environment `envs`, its stderr in the file `stderr`. Returns
/// the child (killed when dropped) and a thread that collects the lines
/// of its stdout that start with `@`, up to its end.
pub fn spawn_child_test(
    test: &str,
    envs: &[(&str, &std::ffi::OsStr)],
    stderr: &Path,
) -> (KillOnDrop, std::thread::JoinHandle<Vec<String>>) {
    use std::io::BufRead;
    use std::process::Stdio;
    let exe = std::env::current_exe().expect("test binary path");
    let stderr = fs::File::create(stderr).expect("create the child's stderr file");
    let child = std::process::Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn the child writer");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter(|line| line.starts_with('@'))
            .collect::<Vec<_>>()
    });
    (child, reader)
}

/// The line the log stores for `event` as event `seq` of the history,
/// without its newline: the event's JSON with `"seq"` as its last key.
pub fn stored_line(event: &Event, seq: u64) -> String {
    let json = event.to_json_line().expect("a storable event");
    format!("{},\"seq\":{seq}}}", &json[..json.len() - 1])
}
