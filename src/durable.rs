//! Durable file-system steps: directory syncs, directory creation, atomic
//! whole-file replacement; and the guarded opening of the files eventfold
//! reads and writes.
//!
//! A file's data is durable after `fsync` on the file; its *name* is durable
//! only after `fsync` on the directory that holds it. Every creation, rename
//! and removal that matters goes through here.
//!
//! Files planted in the data directory must not hang, exhaust or redirect
//! eventfold: whole-file reads ([`read_regular`]) open only regular files,
//! without blocking on a FIFO, and read at most a limit; appends
//! ([`open_append`], [`open_append_own`]) refuse anything but a regular
//! file; temporary files are created exclusively after removing whatever
//! was at their name, so a planted symbolic link is never written through.

use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Suffix of a temporary file being written before it is renamed into place.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// The largest small record file that is read, in bytes: 4 KiB. The
/// rotation record, `rotation.json`, is under 100 bytes; a larger file is
/// not one eventfold wrote.
pub(crate) const MAX_RECORD: u64 = 4096;

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
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::io(
            dir,
            io::Error::new(
                io::ErrorKind::NotADirectory,
                "it exists and is not a directory: give eventfold a directory, or a path \
                 that does not exist yet",
            ),
        )),
        Err(e) => Err(e).at(dir),
    }
}

/// What a file that is not a regular one is, for messages.
fn kind_of(metadata: &Metadata) -> &'static str {
    let kind = metadata.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

/// Fails unless `metadata` is that of a regular file: an I/O error of
/// kind `InvalidInput` naming `path`.
fn check_regular(path: &Path, metadata: &Metadata) -> Result<()> {
    if metadata.is_file() {
        return Ok(());
    }
    let message = format!(
        "not a regular file but {}: eventfold reads and writes only regular files \
         here (move it away)",
        kind_of(metadata)
    );
    Err(Error::io(
        path,
        io::Error::new(io::ErrorKind::InvalidInput, message),
    ))
}

/// Reads the whole file at `path`, `Ok(None)` if there is none, without
/// ever blocking on a FIFO or reading more than `max` bytes.
///
/// Only a regular file is read (a link to one is followed). It is checked
/// by name before it is opened, so that no device is ever opened, and
/// again on the opened handle; the open does not wait for a FIFO's writer.
///
/// # Errors
///
/// [`Error::Corrupt`] naming the file if it is not a regular file (a FIFO,
/// a device, a directory, a link to one of those) or is larger than `max`
/// bytes: nothing of it is read. [`Error::Io`] if it cannot be read.
pub(crate) fn read_regular(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let not_found = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    match fs::metadata(path) {
        Ok(metadata) => refuse_unreadable(path, &metadata, max)?,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    }
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    // The name may have been given to another file in between.
    let metadata = file.metadata().at(path)?;
    refuse_unreadable(path, &metadata, max)?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(metadata.len() as usize + 1)
        .map_err(|_| Error::io(path, io::ErrorKind::OutOfMemory.into()))?;
    file.take(max + 1).read_to_end(&mut bytes).at(path)?;
    if bytes.len() as u64 > max {
        return Err(too_large(path, max, None));
    }
    Ok(Some(bytes))
}

/// The checks of [`read_regular`] on a file's metadata.
fn refuse_unreadable(path: &Path, metadata: &Metadata, max: u64) -> Result<()> {
    if !metadata.is_file() {
        let detail = format!(
            "this is {}, not a regular file: eventfold did not read it (it writes only \
             regular files here, so another program put it there)",
            kind_of(metadata)
        );
        return Err(Error::corrupt(path, 0, detail));
    }
    if metadata.len() > max {
        return Err(too_large(path, max, Some(metadata.len())));
    }
    Ok(())
}

/// The error of [`read_regular`] for a file over its limit of `max`
/// bytes: `len` long, or `None` if it grew past the limit while read.
fn too_large(path: &Path, max: u64, len: Option<u64>) -> Error {
    let size = match len {
        Some(len) => format!("is {len} bytes"),
        None => "grew while it was read".to_owned(),
    };
    Error::corrupt(
        path,
        max,
        format!(
            "the file {size}, over the limit of {max} bytes for this file: eventfold did \
             not read it (it never writes one that large, so another program changed it)"
        ),
    )
}

/// Opens `path` for reading and appending, creating it if missing; a newly
/// created file is made durable by syncing its directory. A symbolic link
/// at `path` is followed (for the active log and the archive, a link is
/// the user's choice).
///
/// # Errors
///
/// [`Error::Io`] naming `path` if it is not a regular file (checked before
/// it is opened, so that no FIFO or device is opened, and again on the
/// opened handle), or cannot be opened or created.
pub(crate) fn open_append(path: &Path) -> Result<File> {
    open_append_with(path, &mut OpenOptions::new())
}

/// [`open_append`] for a file that is eventfold's alone (`app.jsonl.torn`):
/// a symbolic link at `path` is not followed but removed, with a warning,
/// and a regular file created in its place; the file it pointed to is
/// never opened.
///
/// # Errors
///
/// As for [`open_append`], and [`Error::Io`] if the link cannot be
/// removed (or another one appears at `path` meanwhile).
pub(crate) fn open_append_own(path: &Path) -> Result<File> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::remove_file(path).at(path)?;
            ::log::warn!(
                "eventfold: removed the symbolic link {}: eventfold never writes through a \
                 link to a file of its own",
                path.display()
            );
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    open_append_with(path, &mut options)
}

/// [`open_append`] with extra `options` (open flags).
fn open_append_with(path: &Path, options: &mut OpenOptions) -> Result<File> {
    match fs::metadata(path) {
        Ok(metadata) => check_regular(path, &metadata)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    options.read(true).append(true);
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let file = options.create(true).open(path).at(path)?;
            sync_dir(parent_of(path))?;
            file
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    check_regular(path, &file.metadata().at(path)?)?;
    Ok(file)
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
///
/// The temporary file is created exclusively (`O_CREAT | O_EXCL`, which
/// never follows a link) after removing whatever is at its name: a
/// symbolic link planted there is removed, never written through. The
/// rename replaces `path` itself: if `path` is a link, the link is
/// replaced by the new file and the file it pointed to is left alone.
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
        clear_tmp(&tmp)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .at(&tmp)?;
        file.write_all(bytes).at(&tmp)?;
        file.sync_all().at(&tmp)?;
        fs::rename(&tmp, path).at(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Prepares the replacement of the file at `path`, whose metadata is
/// `old`, by an empty file with the same permissions: an empty file is
/// created beside it (exclusively, after removing whatever was at its
/// temporary name), given the old file's permissions and synced; its path
/// is returned, for [`install_empty`]. Returns `None`, leaving nothing
/// behind, when the new file could not be the same to others: the old one
/// has other hard links, or another owner or group than a file this
/// process creates (the caller then truncates the file instead).
pub(crate) fn prepare_empty(path: &Path, old: &Metadata) -> Result<Option<PathBuf>> {
    #[cfg(unix)]
    if std::os::unix::fs::MetadataExt::nlink(old) > 1 {
        return Ok(None);
    }
    let tmp = tmp_path(path);
    clear_tmp(&tmp)?;
    let result = (|| -> Result<bool> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .at(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let new = file.metadata().at(&tmp)?;
            if (new.uid(), new.gid()) != (old.uid(), old.gid()) {
                return Ok(false);
            }
        }
        file.set_permissions(old.permissions()).at(&tmp)?;
        file.sync_all().at(&tmp)?;
        Ok(true)
    })();
    if !matches!(result, Ok(true)) {
        let _ = fs::remove_file(&tmp);
    }
    Ok(result?.then_some(tmp))
}

/// Replaces the file at `path` by the empty file that [`prepare_empty`]
/// made at `tmp`, atomically and durably: `tmp` is renamed over `path` and
/// the directory synced.
pub(crate) fn install_empty(tmp: &Path, path: &Path) -> Result<()> {
    if let Err(e) = fs::rename(tmp, path) {
        let _ = fs::remove_file(tmp);
        return Err(Error::io(path, e));
    }
    sync_dir(parent_of(path))
}

/// Removes whatever is at the temporary name `tmp` (a file left by an
/// interrupted write, or anything planted there), never following it.
fn clear_tmp(tmp: &Path) -> Result<()> {
    match fs::remove_file(tmp) {
        Ok(()) => ::log::warn!(
            "eventfold: removed {}, which was in the way of a write",
            tmp.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(tmp, e)),
    }
    Ok(())
}

/// The entries of `dir`, sorted by name; none when it does not exist.
pub(crate) fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut paths = Vec::new();
    for entry in listing {
        paths.push(entry.map_err(|e| Error::io(dir, e))?.path());
    }
    paths.sort();
    Ok(paths)
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
/// `dir`: entries whose name ends with `suffix` followed by
/// [`TMP_SUFFIX`]. They were never renamed into place, so they hold
/// nothing that was promised to anyone. Anything else planted at such a
/// name (a symbolic link, a FIFO) is removed too, never followed or
/// opened; a directory is left alone with a warning (the next write to
/// that name fails with an error naming it).
pub(crate) fn sweep_tmp(dir: &Path, suffix: &str) -> Result<()> {
    let pattern = format!("{suffix}{TMP_SUFFIX}");
    let mut removed = false;
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        if !name.to_string_lossy().ends_with(&pattern) {
            continue;
        }
        let path = entry.path();
        // The type of the entry itself: a link is not followed.
        let kind = entry.file_type().at(&path)?;
        if kind.is_dir() {
            ::log::warn!(
                "eventfold: left the directory {} alone; remove it, or saving to its name fails",
                path.display()
            );
            continue;
        }
        fs::remove_file(&path).at(&path)?;
        let what = if kind.is_file() {
            "left by an interrupted write"
        } else {
            "(not a regular file: planted, never written by eventfold)"
        };
        ::log::warn!("eventfold: removed {} {what}", path.display());
        removed = true;
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Length of the file at `path`, 0 if it does not exist.
pub(crate) fn file_len(path: &Path) -> Result<u64> {
    match fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(Error::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        )),
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).at(path),
    }
}
