//! Durable file-system steps: directory syncs, directory creation, atomic
//! whole-file replacement.
//!
//! A file's data is durable after `fsync` on the file; its *name* is durable
//! only after `fsync` on the directory that holds it. Every creation, rename
//! and removal that matters goes through here.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// Suffix of a temporary file being written before it is renamed into place.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Syncs a directory, making the names created, renamed or removed in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// The directory that holds `path` (`.` for a bare file name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates `dir` and any missing ancestors, syncing the parent of each
/// directory it creates. Returns whether `dir` itself was created.
pub(crate) fn create_dir_all(dir: &Path) -> Result<bool> {
    if dir.is_dir() {
        return Ok(false);
    }
    let parent = parent_of(dir);
    if parent != dir {
        create_dir_all(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {
            sync_dir(parent)?;
            Ok(true)
        }
        // Lost a race with another creator: the directory is there.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(e).at(dir),
    }
}

/// Opens `path` for reading and appending, creating it if missing; a newly
/// created file is made durable by syncing its directory.
pub(crate) fn open_append(path: &Path) -> Result<File> {
    match OpenOptions::new().read(true).append(true).open(path) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let f = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(path)
                .at(path)?;
            sync_dir(parent_of(path))?;
            Ok(f)
        }
        Err(e) => Err(e).at(path),
    }
}

/// The temporary name used while `path` is being replaced.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// Replaces `path` with `bytes` atomically and durably: write a temporary
/// file beside it, sync it, rename it over `path`, sync the directory.
///
/// After a crash, `path` holds either its old content or the new one, never
/// a mix; at worst a stale temporary file is left, which is swept on open.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_nosync_dir(path, bytes)?;
    sync_dir(parent_of(path))
}

/// [`write_atomic`] without the directory sync, for a caller that writes
/// many files and then syncs their directory once: until then, a crash may
/// leave the old content under the name.
pub(crate) fn write_atomic_nosync_dir(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut file = File::create(&tmp).at(&tmp)?;
        file.write_all(bytes).at(&tmp)?;
        file.sync_all().at(&tmp)?;
        fs::rename(&tmp, path).at(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes `path` durably. A missing file is not an error.
pub(crate) fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(parent_of(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(path),
    }
}

/// Removes the temporary files of interrupted [`write_atomic`] calls from
/// `dir`: files whose name ends with `suffix` followed by [`TMP_SUFFIX`].
/// They were never renamed into place, so they hold nothing that was
/// promised to anyone.
pub(crate) fn sweep_tmp(dir: &Path, suffix: &str) -> Result<()> {
    let pattern = format!("{suffix}{TMP_SUFFIX}");
    let mut removed = false;
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(&pattern) && entry.file_type().at(dir)?.is_file() {
            let path = entry.path();
            fs::remove_file(&path).at(&path)?;
            ::log::warn!(
                "eventfold: removed {} left by an interrupted write",
                path.display()
            );
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}
