//! Snapshot persistence: save, load, delete, atomic writes, state shapes,
//! corruption and the on-disk format.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::{counter_reducer, snapshot_file, test_dir};
use eventfold::{Error, EventLog, Snapshot};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The snapshot path of a view called `name` under `dir`, with `views/`
/// created.
fn snap_path(dir: &Path, name: &str) -> PathBuf {
    let path = snapshot_file(dir, name);
    fs::create_dir_all(path.parent().expect("parent")).expect("create views/");
    path
}

fn snap<S>(state: S, offset: u64, hash: &str) -> Snapshot<S> {
    Snapshot {
        state,
        offset,
        hash: hash.to_owned(),
    }
}

fn load<S: DeserializeOwned>(path: &Path) -> Option<Snapshot<S>> {
    Snapshot::<S>::load(path).expect("load")
}

/// Saves `snapshot` and checks that loading gives it back identical.
fn assert_round_trips<S>(snapshot: Snapshot<S>)
where
    S: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let dir = test_dir();
    let path = snap_path(dir.path(), "view");
    snapshot.save(&path).expect("save");
    assert_eq!(load::<S>(&path), Some(snapshot));
}

/// Names of the files in `dir`, sorted.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Writes `bytes` to `path` and checks that loading it as `S` is
/// `Corrupt`, naming `path`.
fn assert_corrupt_as<S: DeserializeOwned + std::fmt::Debug>(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).expect("write");
    match Snapshot::<S>::load(path) {
        Err(Error::Corrupt { path: at, .. }) => assert_eq!(at, path),
        other => panic!(
            "{:?}: expected Corrupt, got {other:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

const HASH: &str = "00c0ffee1234abcd";

// --- Save, load, delete ------------------------------------------------------

/// What is saved is what is loaded.
#[test]
fn save_load_round_trip() {
    assert_round_trips(snap(42u64, 1234, HASH));
    assert_round_trips(snap(
        vec!["milk".to_owned(), "eggs \"large\"\n🥚".to_owned()],
        99,
        HASH,
    ));
}

/// Loading a snapshot that was never saved is `None`, not an error.
#[test]
fn load_nonexistent_is_none() {
    let dir = test_dir();
    assert_eq!(load::<u64>(&snap_path(dir.path(), "missing")), None);
    assert_eq!(
        load::<u64>(&dir.path().join("no").join("such").join("dir.json")),
        None
    );
}

/// A second save replaces the first completely, even when shorter, and
/// leaves no temporary file.
#[test]
fn save_replaces_old_content_completely() {
    let dir = test_dir();
    let path = snap_path(dir.path(), "view");
    snap(vec![7u64; 1000], 5000, HASH)
        .save(&path)
        .expect("save");
    let short = snap(vec![1u64], 10, "0123456789abcdef");
    short.save(&path).expect("save");
    assert_eq!(load::<Vec<u64>>(&path), Some(short));
    assert_eq!(
        fs::read_to_string(&path).expect("read"),
        r#"{"state":[1],"offset":10,"hash":"0123456789abcdef"}"#
    );
    assert_eq!(
        file_names(path.parent().expect("views")),
        ["view.snapshot.json"]
    );
}

/// Delete removes the file; deleting again, or a file never written, is fine.
#[test]
fn delete_removes_the_snapshot() {
    let dir = test_dir();
    let path = snap_path(dir.path(), "view");
    snap(1u64, 0, "").save(&path).expect("save");
    Snapshot::<u64>::delete(&path).expect("delete");
    assert!(!path.exists());
    assert_eq!(load::<u64>(&path), None);
    Snapshot::<u64>::delete(&path).expect("delete of a missing file");
    Snapshot::<u64>::delete(snap_path(dir.path(), "never")).expect("delete of a missing file");
}

// --- Atomic writes -------------------------------------------------------------

/// A stale `.tmp` file full of garbage beside a good snapshot does not
/// affect load.
#[test]
fn stale_tmp_file_is_ignored_by_load() {
    let dir = test_dir();
    let path = snap_path(dir.path(), "view");
    let good = snap(5u64, 77, HASH);
    good.save(&path).expect("save");
    fs::write(
        dir.path().join("views/view.snapshot.json.tmp"),
        b"{\"state\":garb",
    )
    .expect("tmp");
    assert_eq!(load::<u64>(&path), Some(good));
}

/// Opening the log sweeps stale snapshot `.tmp` files from `views/`, and
/// only those.
#[test]
fn open_removes_stale_snapshot_tmp_files() {
    let dir = test_dir();
    let views = dir.path().join("views");
    let count = snap_path(dir.path(), "count");
    let good = snap(3u64, 0, "");
    good.save(&count).expect("save");
    let stale = ["count.snapshot.json.tmp", "other.snapshot.json.tmp"];
    let unrelated = [
        "notes.txt",
        "data.json.tmp",
        "orphan.snapshot.json",
        "x.tmp",
    ];
    for name in stale.iter().chain(&unrelated) {
        fs::write(views.join(name), b"\x00garbage").expect("write");
    }

    let log = EventLog::builder(dir.path())
        .view::<u64>("count", counter_reducer)
        .open()
        .expect("open");
    let mut expected: Vec<&str> = unrelated.to_vec();
    expected.push("count.snapshot.json");
    expected.sort_unstable();
    assert_eq!(file_names(&views), expected);
    assert_eq!(*log.view::<u64>("count").expect("view"), 3);
    assert_eq!(load::<u64>(&count), Some(good));
}

// --- State shapes ------------------------------------------------------------------

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Empty {}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Inner {
    label: String,
    scores: Vec<i64>,
    parent: Option<Box<Inner>>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Nested {
    items: Vec<Inner>,
    by_name: BTreeMap<String, Inner>,
    maybe: Option<u64>,
    nothing: Option<String>,
}

/// Empty, unit, nested and dynamic states all round-trip.
#[test]
fn various_state_types_round_trip() {
    assert_round_trips(snap(Empty {}, 1, HASH));
    assert_round_trips(snap(Unit, 2, HASH));
    assert_round_trips(snap((), 3, HASH));
    assert_round_trips(snap(String::new(), 4, HASH));
    let leaf = Inner {
        label: "leaf ✓".into(),
        scores: vec![-1, 0, i64::MAX],
        parent: None,
    };
    let child = Inner {
        label: "child".into(),
        scores: vec![],
        parent: Some(Box::new(leaf.clone())),
    };
    assert_round_trips(snap(
        Nested {
            items: vec![leaf.clone(), child.clone()],
            by_name: BTreeMap::from([("leaf".into(), leaf), ("child".into(), child)]),
            maybe: Some(u64::MAX),
            nothing: None,
        },
        5,
        HASH,
    ));
    assert_round_trips(snap(json!({"any": [1, {"json": null}]}), 6, HASH));
}

/// A state of 100,000 entries round-trips.
#[test]
fn large_state_round_trips() {
    let state: BTreeMap<String, u64> = (0..100_000u64).map(|i| (format!("key-{i}"), i)).collect();
    assert_round_trips(snap(state, 1 << 40, HASH));
}

/// Offset 0 with an empty hash, and the largest offsets, survive.
#[test]
fn extreme_offsets_round_trip() {
    assert_round_trips(snap(0u64, 0, ""));
    assert_round_trips(snap(0u64, u64::MAX - 1, HASH));
    assert_round_trips(snap(0u64, u64::MAX, HASH));
}

// --- Corruption ----------------------------------------------------------------------

/// Truncated JSON, random bytes, an empty file, missing fields or the
/// wrong state type: load is `Corrupt`, naming the snapshot path.
#[test]
fn garbled_snapshot_is_corrupt() {
    let dir = test_dir();
    let path = snap_path(dir.path(), "view");
    snap(vec![1u64, 2, 3], 64, HASH).save(&path).expect("save");
    let full = fs::read(&path).expect("read");

    assert_corrupt_as::<Vec<u64>>(&path, &full[..full.len() / 2]);
    assert_corrupt_as::<Vec<u64>>(&path, &[0xff, 0x00, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef]);
    assert_corrupt_as::<Vec<u64>>(&path, b"");
    assert_corrupt_as::<Vec<u64>>(&path, br#"{"state":[1],"offset":3}"#);
    assert_corrupt_as::<Vec<u64>>(&path, br#"{"state":[1],"offset":-3,"hash":""}"#);
    assert_corrupt_as::<String>(&path, &full);
    assert_corrupt_as::<Nested>(&path, &full);
}

// --- On-disk format ----------------------------------------------------------------

/// A snapshot file is the plain JSON object `{"state", "offset", "hash"}`.
#[test]
fn on_disk_format_is_plain_json() {
    let dir = test_dir();
    let path = snap_path(dir.path(), "todos");
    snap(json!({"items": ["milk"], "n": 1}), 12840, HASH)
        .save(&path)
        .expect("save");
    let value: Value = serde_json::from_slice(&fs::read(&path).expect("read")).expect("JSON");
    assert_eq!(
        value,
        json!({"state": {"items": ["milk"], "n": 1}, "offset": 12840, "hash": HASH})
    );
    let large: Value = {
        snap(0u64, u64::MAX - 1, HASH).save(&path).expect("save");
        serde_json::from_slice(&fs::read(&path).expect("read")).expect("JSON")
    };
    assert_eq!(large["offset"].as_u64(), Some(u64::MAX - 1));
}
