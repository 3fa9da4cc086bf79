//! Snapshot files: a view's state with the position in the active log it
//! reflects, saved atomically.

use std::fs;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::durable;
use crate::error::{Error, IoContext, Result, excerpt, shorten};

/// File name suffix of snapshot files inside `views/`.
pub(crate) const SNAPSHOT_SUFFIX: &str = ".snapshot.json";

/// The largest snapshot file that is read, in bytes: 1 GiB. A larger file
/// is treated as damaged (its view is rebuilt) without being read, so that
/// a huge or endless file planted in `views/` cannot exhaust memory; and
/// no larger snapshot is written, since it could not be read back. A
/// view's state must fit in memory anyway, several times over once
/// parsed, so a legitimate snapshot stays far below this.
pub(crate) const MAX_SNAPSHOT: u64 = 1 << 30;

/// A view's state, saved to `views/NAME.snapshot.json` together with the
/// position in the active log that it reflects.
///
/// Snapshots are caches: deleting one only costs a replay of the history the
/// next time the view is refreshed. On disk a snapshot is plain JSON:
///
/// ```text
/// {"state":{"items":[...]},"offset":12840,"hash":"a3f2c0de91b47e65"}
/// ```
///
/// - `offset` is the byte position in `app.jsonl` just after the last event
///   the state includes. A snapshot that exists has always consumed the whole
///   archive, so `0` means "everything in the archive and nothing of the
///   active log" (as right after a rotation).
/// - `hash` is the xxh3-64 hash, in 16 hex digits, of the bytes of the last
///   line consumed (the line that ends at `offset`, without its newline), or
///   the empty string when `offset` is 0. When a view loads its snapshot it
///   hashes that line again; if the log no longer matches (it was edited,
///   truncated or replaced), the snapshot is thrown away and the view is
///   rebuilt from the full history.
///
/// Snapshots are written atomically: to `NAME.snapshot.json.tmp`, synced,
/// renamed over the old file, and the directory synced. A crash leaves the
/// old snapshot or the new one, never a mix. Views save them now and then,
/// not on every refresh (see [`View::refresh`](crate::View::refresh)).
///
/// Only a regular file of at most 1 GiB is read as a snapshot (a link to
/// one is followed); anything else counts as damaged. Saving replaces the
/// name: a link at `NAME.snapshot.json` is replaced by the new file, and
/// one planted at `NAME.snapshot.json.tmp` is removed, never written
/// through.
///
/// A view's snapshot file has three more keys: `archive_len`, the length
/// of the archive its state includes (a snapshot that includes less of the
/// archive than there now is predates a rotation, and is rebuilt), `seq`,
/// the number of events its state holds (the sequence number of the next
/// event to fold, checked against the log's line before `offset`), and
/// `checksum`, which covers the rest (a snapshot changed after it was
/// written is rebuilt too).
///
/// # Examples
///
/// ```
/// use eventfold::Snapshot;
///
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("count.snapshot.json");
/// let snapshot = Snapshot { state: 42u64, offset: 0, hash: String::new() };
/// snapshot.save(&path)?;
/// let loaded = Snapshot::<u64>::load(&path)?.expect("just saved");
/// assert_eq!(loaded.state, 42);
/// # Ok::<(), eventfold::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot<S> {
    /// The view's state after folding every event up to `offset`.
    pub state: S,
    /// Byte position in `app.jsonl` just after the last event consumed.
    pub offset: u64,
    /// Hex xxh3-64 of the last line consumed, or `""` at offset 0.
    pub hash: String,
}

impl<S: Serialize> Snapshot<S> {
    /// Writes the snapshot to `path` atomically and durably.
    ///
    /// The JSON goes to `path` + `.tmp`, which is synced and renamed over
    /// `path`; then the directory is synced.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::Snapshot;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("todos.snapshot.json");
    /// Snapshot { state: vec!["milk"], offset: 64, hash: "00000000deadbeef".into() }.save(&path)?;
    /// let text = std::fs::read_to_string(&path)?;
    /// assert_eq!(text, r#"{"state":["milk"],"offset":64,"hash":"00000000deadbeef"}"#);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] if the state cannot be written as JSON (for
    /// example a map with non-string keys), [`Error::SnapshotTooLarge`] if
    /// the JSON is over 1 GiB (more than [`load`](Snapshot::load) reads),
    /// [`Error::Io`] if the file cannot be written or synced. The old
    /// snapshot, if any, is then untouched.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = serde_json::to_vec(self).map_err(|source| Error::Serialize {
            what: format!("snapshot {}", path.display()),
            source,
        })?;
        check_size(path, &bytes)?;
        durable::write_atomic(path, &bytes)
    }
}

impl<S: DeserializeOwned> Snapshot<S> {
    /// Reads the snapshot at `path`; `Ok(None)` if there is none.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::Snapshot;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let missing = Snapshot::<u64>::load(dir.path().join("nothing.snapshot.json"))?;
    /// assert!(missing.is_none());
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] with the byte offset of the problem if the file is
    /// not a snapshot of this state type, is not a regular file (a FIFO, a
    /// device, a directory: it is not read) or is larger than 1 GiB (not
    /// read either); [`Error::Io`] if it cannot be read.
    pub fn load(path: impl AsRef<Path>) -> Result<Option<Self>> {
        let path = path.as_ref();
        let Some(bytes) = durable::read_regular(path, MAX_SNAPSHOT)? else {
            return Ok(None);
        };
        parse_object(path, &bytes).map(Some)
    }
}

impl<S> Snapshot<S> {
    /// Deletes the snapshot at `path`, so that the view is rebuilt from the
    /// full history on its next refresh. A missing file is not an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::Snapshot;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("count.snapshot.json");
    /// Snapshot { state: 1u64, offset: 0, hash: String::new() }.save(&path)?;
    /// Snapshot::<u64>::delete(&path)?;
    /// assert!(Snapshot::<u64>::load(&path)?.is_none());
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file exists and cannot be removed.
    pub fn delete(path: impl AsRef<Path>) -> Result<()> {
        durable::remove_file(path.as_ref())
    }
}

/// A `Corrupt` error for a JSON document that failed to parse, with the
/// byte offset computed from serde_json's line and column, and serde's
/// message shortened (it may quote the document).
pub(crate) fn json_error(path: &Path, bytes: &[u8], e: &serde_json::Error) -> Error {
    let line_start: usize = bytes
        .split_inclusive(|&b| b == b'\n')
        .take(e.line().saturating_sub(1))
        .map(<[u8]>::len)
        .sum();
    let offset = (line_start + e.column().saturating_sub(1)).min(bytes.len());
    Error::corrupt(path, offset as u64, shorten(e))
}

/// Parses a snapshot file, which is a JSON object. A file that starts with
/// anything else is refused before serde sees it: serde's message for a
/// top-level string would copy the whole string.
fn parse_object<'a, T: Deserialize<'a>>(path: &Path, bytes: &'a [u8]) -> Result<T> {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if let Some(start) = start
        && bytes[start] != b'{'
    {
        return Err(Error::corrupt(
            path,
            start as u64,
            format!(
                "a snapshot is a JSON object, but the file holds {}",
                excerpt(&bytes[start..])
            ),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| json_error(path, bytes, &e))
}

/// Refuses to write a snapshot of `bytes` that [`MAX_SNAPSHOT`] would
/// keep from being read back.
fn check_size(path: &Path, bytes: &[u8]) -> Result<()> {
    if bytes.len() as u64 > MAX_SNAPSHOT {
        return Err(Error::SnapshotTooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            max: MAX_SNAPSHOT,
        });
    }
    Ok(())
}

/// The longest JSON text read for a view snapshot's offset, hash, archive
/// length or checksum (a number, or 16 hex digits).
const SMALL_FIELD: usize = 64;

/// Deserializes a small field of a view's snapshot file. A longer value
/// is refused unread: serde's message for a wrong type would quote it,
/// however long it is.
fn small<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let text = <&RawValue>::deserialize(deserializer)?.get();
    if text.len() > SMALL_FIELD {
        return Err(de::Error::custom(format_args!(
            "a JSON value of {} bytes where a number or a hash belongs",
            text.len()
        )));
    }
    serde_json::from_str(text).map_err(|e| {
        // The outer parser adds its own position; this one is within `text`.
        let message = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        de::Error::custom(message.strip_suffix(&position).unwrap_or(&message))
    })
}

/// The snapshot file of view `name` inside `views_dir`.
pub(crate) fn path_for(views_dir: &Path, name: &str) -> PathBuf {
    views_dir.join(format!("{name}{SNAPSHOT_SUFFIX}"))
}

/// A view's snapshot file as views write it: a [`Snapshot`] plus the
/// length of the archive its state includes and a checksum of the whole.
/// `Snapshot::load` ignores the extra keys; a file without them (written by
/// `Snapshot::save`, or by hand) is accepted on its offset and hash alone.
#[derive(Serialize, Deserialize)]
pub(crate) struct ViewSnapshot<S> {
    pub(crate) state: S,
    #[serde(deserialize_with = "small")]
    pub(crate) offset: u64,
    #[serde(deserialize_with = "small")]
    pub(crate) hash: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "small"
    )]
    pub(crate) archive_len: Option<u64>,
    /// The number of events the state holds: the sequence number of the
    /// next event to fold. Absent in files written before sequence
    /// numbers existed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "small"
    )]
    pub(crate) seq: Option<u64>,
    /// The version of the view that wrote it (see
    /// [`View::with_version`](crate::View::with_version)); absent for
    /// version 0, and in files written before versions existed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "small"
    )]
    pub(crate) version: Option<u32>,
    /// xxh3-64 in hex of the other fields, the state as its JSON text; see
    /// [`checksum`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "small"
    )]
    pub(crate) checksum: Option<String>,
}

/// The checksum of a view's snapshot: xxh3-64 of the state's exact JSON
/// text, seeded with a hash of the offset, hash and archive length. It
/// catches any change to the file that still parses (a flipped digit, an
/// edited state or offset), which the log-side checks cannot see.
fn checksum(
    state: &RawValue,
    offset: u64,
    hash: &str,
    archive_len: Option<u64>,
    seq: Option<u64>,
    version: Option<u32>,
) -> String {
    // Files without `seq` or `version` keep the checksum they were
    // written with.
    let mut header = match seq {
        Some(seq) => format!("{offset}:{hash}:{archive_len:?}:{seq}"),
        None => format!("{offset}:{hash}:{archive_len:?}"),
    };
    if let Some(version) = version {
        header.push_str(&format!(":v{version}"));
    }
    let seed = xxhash_rust::xxh3::xxh3_64(header.as_bytes());
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64_with_seed(state.get().as_bytes(), seed)
    )
}

impl ViewSnapshot<&RawValue> {
    /// Writes the snapshot file, with its checksum, atomically and
    /// durably (the directory is synced unless `sync_dir` is false, for a
    /// caller that syncs it once after many files); returns its size.
    /// [`Error::SnapshotTooLarge`] if it is over [`MAX_SNAPSHOT`], and
    /// then nothing is written.
    fn write(mut self, path: &Path, sync_dir: bool) -> Result<u64> {
        self.checksum = Some(checksum(
            self.state,
            self.offset,
            &self.hash,
            self.archive_len,
            self.seq,
            self.version,
        ));
        let bytes = serde_json::to_vec(&self).map_err(|source| Error::Serialize {
            what: format!("snapshot {}", path.display()),
            source,
        })?;
        check_size(path, &bytes)?;
        if sync_dir {
            durable::write_atomic(path, &bytes)?;
        } else {
            durable::write_atomic_nosync_dir(path, &bytes)?;
        }
        Ok(bytes.len() as u64)
    }

    /// Whether the checksum, if the file has one, matches its content.
    fn intact(&self) -> bool {
        self.checksum.as_ref().is_none_or(|c| {
            *c == checksum(
                self.state,
                self.offset,
                &self.hash,
                self.archive_len,
                self.seq,
                self.version,
            )
        })
    }
}

impl<S: Serialize> ViewSnapshot<S> {
    /// Writes the snapshot file atomically and durably; returns its size.
    pub(crate) fn save(&self, path: &Path) -> Result<u64> {
        let state =
            serde_json::value::to_raw_value(&self.state).map_err(|source| Error::Serialize {
                what: format!("snapshot {}", path.display()),
                source,
            })?;
        ViewSnapshot {
            state: &*state,
            offset: self.offset,
            hash: self.hash.clone(),
            archive_len: self.archive_len,
            seq: self.seq,
            version: self.version,
            checksum: None,
        }
        .write(path, true)
    }
}

impl<S: DeserializeOwned> ViewSnapshot<S> {
    /// Reads a snapshot file and its size; `Ok(None)` if there is none.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if it is not a regular file or is over
    /// [`MAX_SNAPSHOT`] (it is then not read), does not parse, fails its
    /// checksum, or its state is not an `S`.
    pub(crate) fn load(path: &Path) -> Result<Option<(Self, u64)>> {
        let Some(bytes) = durable::read_regular(path, MAX_SNAPSHOT)? else {
            return Ok(None);
        };
        let raw: ViewSnapshot<&RawValue> = parse_object(path, &bytes)?;
        if !raw.intact() {
            return Err(Error::corrupt(
                path,
                0,
                "the snapshot does not match its checksum: it was changed after it was written",
            ));
        }
        let state_at = raw.state.get().as_ptr() as usize - bytes.as_ptr() as usize;
        let state = serde_json::from_str(raw.state.get()).map_err(|e| {
            let offset = state_at + e.column().saturating_sub(1);
            Error::corrupt(
                path,
                offset as u64,
                format!("the state does not fit its view: {}", shorten(e)),
            )
        })?;
        let snapshot = ViewSnapshot {
            state,
            offset: raw.offset,
            hash: raw.hash,
            archive_len: raw.archive_len,
            seq: raw.seq,
            version: raw.version,
            checksum: raw.checksum,
        };
        Ok(Some((snapshot, bytes.len() as u64)))
    }
}

/// The snapshot files in `views_dir` (the names ending in
/// [`SNAPSHOT_SUFFIX`]), sorted, each with its view's name (the file name
/// without the suffix); none when the directory does not exist.
pub(crate) fn snapshot_files(views_dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    Ok(durable::entries(views_dir)?
        .into_iter()
        .filter_map(|path| {
            let file_name = path.file_name()?.to_string_lossy().into_owned();
            let name = file_name.strip_suffix(SNAPSHOT_SUFFIX)?.to_owned();
            Some((name, path))
        })
        .collect())
}

/// Calls `f` with the path and content of every snapshot file in
/// `views_dir`, whatever its state type (kept as raw JSON text, so that
/// rewriting a file changes nothing but its position); `None` for a
/// damaged file (one that is not a regular file or is too large counts as
/// damaged, and is not read).
fn for_each_snapshot(
    views_dir: &Path,
    mut f: impl FnMut(&Path, Option<ViewSnapshot<&RawValue>>) -> Result<()>,
) -> Result<()> {
    for (_, path) in snapshot_files(views_dir)? {
        let bytes = match durable::read_regular(&path, MAX_SNAPSHOT) {
            Ok(Some(bytes)) => Some(bytes),
            Ok(None) => continue,
            Err(Error::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        };
        let snap = bytes
            .as_deref()
            .and_then(|bytes| parse_object::<ViewSnapshot<&RawValue>>(&path, bytes).ok())
            .filter(ViewSnapshot::intact);
        f(&path, snap)?;
    }
    Ok(())
}

/// Before a rotation of an active log of `log_len` bytes whose last line
/// has hash `last_hash`, with an archive of `archive_len` bytes: deletes
/// every snapshot that does not reflect exactly that (a view not
/// registered with the rotating log, a stale copy, a damaged file). Once
/// the log's bytes move into the archive such a snapshot could not catch
/// up, and after the shift to offset 0 its hash could no longer tell; that
/// view is rebuilt from the archive when next used. The deletions are made
/// durable before the rotation goes on.
pub(crate) fn prune_before_rotation(
    views_dir: &Path,
    log_len: u64,
    last_hash: &str,
    archive_len: u64,
) -> Result<()> {
    let mut removed = false;
    for_each_snapshot(views_dir, |path, snap| match snap {
        Some(snap)
            if snap.offset == log_len
                && snap.hash == last_hash
                && snap.archive_len.is_none_or(|a| a == archive_len) =>
        {
            Ok(())
        }
        _ => {
            removed = true;
            fs::remove_file(path).at(path)
        }
    })?;
    if removed {
        durable::sync_dir(views_dir)?;
    }
    Ok(())
}

/// The last step of a rotation: the active log of `rotated_len` bytes has
/// moved into the archive, now `archive_len` bytes long, so every snapshot
/// at `rotated_len` (and after [`prune_before_rotation`] there are no
/// others) now sits at offset 0 of the new active log. Running it again
/// after an interruption finishes the job: a snapshot already at 0 was
/// shifted by the earlier run. Each rewrite is durable.
pub(crate) fn shift_after_rotation(
    views_dir: &Path,
    rotated_len: u64,
    archive_len: u64,
) -> Result<()> {
    let mut changed = false;
    for_each_snapshot(views_dir, |path, snap| {
        let changes = match snap {
            Some(snap) if snap.offset == rotated_len => {
                let moved = ViewSnapshot {
                    state: snap.state,
                    offset: 0,
                    hash: String::new(),
                    archive_len: Some(archive_len),
                    seq: snap.seq,
                    version: snap.version,
                    checksum: None,
                };
                match moved.write(path, false) {
                    Ok(_) => Ok(()),
                    // A file written by hand just under the limit, which the
                    // added keys push over it: a cache, dropped.
                    Err(Error::SnapshotTooLarge { .. }) => fs::remove_file(path).at(path),
                    Err(e) => Err(e),
                }
            }
            Some(snap) if snap.offset == 0 => return Ok(()),
            _ => fs::remove_file(path).at(path),
        };
        changed = true;
        changes
    })?;
    // One directory sync makes every rename and removal above durable
    // (none is needed when nothing changed).
    if changed {
        durable::sync_dir(views_dir)?;
    }
    Ok(())
}
