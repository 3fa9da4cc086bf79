//! Backup: a consistent, durable copy of a data directory, taken by a
//! reader beside a live writer.
//!
//! [`EventReader::backup`] copies the history as one observation saw it:
//! the archive's frames up to the end its index records (bytes a writer
//! never changes once written), the index lines of those frames, and the
//! active log's acknowledged lines, checked line by line against what the
//! reader reads at the same sequence numbers (a rotation that replaced
//! `app.jsonl` meanwhile makes it look again). The views' snapshots that
//! fit the copy are copied too; the others are left out (those views
//! replay the history when the copy is opened). Every file is synced, and
//! the directories that name them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use serde::Serialize;

use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::event::hash_hex;
use crate::history::{ARCHIVE_FILE, History, LOG_FILE, VIEWS_DIR};
use crate::index::{INDEX_FILE, Index};
use crate::lines::{Lines, READ_BUF};
use crate::reader::EventReader;
use crate::snapshot::{SNAPSHOT_SUFFIX, ViewSnapshot};

/// How many times the active log is copied again because a rotation
/// replaced it while it was copied.
const ATTEMPTS: u32 = 20;

/// What [`EventReader::backup`] copied.
///
/// # Examples
///
/// ```
/// use eventfold::{Event, EventLog, EventReader};
/// use serde_json::json;
///
/// # let dir = tempfile::tempdir()?;
/// # let copy = tempfile::tempdir()?;
/// let mut log = EventLog::open(dir.path())?;
/// log.append(&Event::new("hello", json!(1)))?;
/// let backup = EventReader::open(dir.path())?.backup(copy.path().join("backup"), &mut |_, _| {})?;
/// assert_eq!(backup.events, 1);
/// assert_eq!(EventReader::open(copy.path().join("backup"))?.next_seq()?, 1);
/// # Ok::<(), eventfold::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Backup {
    /// The events copied: every one the writer had acknowledged when the
    /// copy was taken.
    pub events: u64,
    /// The archive frames copied.
    pub frames: u64,
    /// The archive's bytes copied.
    pub archive_len: u64,
    /// The active log's bytes copied.
    pub active_len: u64,
    /// The view snapshots copied.
    pub snapshots: u64,
    /// The view snapshots left out because they did not fit the copy (a
    /// writer had moved on since, or they were damaged).
    pub snapshots_left_out: Vec<String>,
}

impl EventReader {
    /// Copies the directory's history into `dest`, a directory that does
    /// not exist yet or is empty, as a data directory that eventfold opens
    /// (with [`EventLog::open`](crate::EventLog::open) or a reader). Every
    /// event the writer acknowledged before the call is in the copy, with
    /// its sequence number; the bytes of the archive and of the active
    /// log are copied as they are. Writes nothing into this directory.
    /// `progress` is called with the bytes copied so far and the bytes to
    /// copy.
    ///
    /// To restore, stop the application, move its directory aside and put
    /// the copy in its place (or point the application at the copy).
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog, EventReader};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let copies = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append(&Event::new("a", json!(1)))?;
    /// log.rotate()?;
    /// log.append(&Event::new("b", json!(2)))?;
    /// let dest = copies.path().join("2026-12-02");
    /// let backup = EventReader::open(dir.path())?.backup(&dest, &mut |_, _| {})?;
    /// assert_eq!((backup.events, backup.frames), (2, 1));
    /// let copy = EventLog::open(&dest)?;
    /// let types: Vec<String> = copy
    ///     .read_from_seq(0)?
    ///     .map(|item| item.map(|(_, event, _)| event.event_type))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(types, ["a", "b"]);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `dest` exists and is not an empty directory, or a
    /// file cannot be read or written; [`Error::Corrupt`] if this
    /// directory's history cannot be read (run
    /// [`verify`](EventReader::verify) to see every problem).
    pub fn backup(
        &self,
        dest: impl AsRef<Path>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Backup> {
        let dest = dest.as_ref();
        refuse_inside(self.dir(), dest)?;
        prepare_dest(dest)?;
        let dest_log = dest.join(LOG_FILE);
        let mut attempt = 0;
        let (history, active_len) = loop {
            attempt += 1;
            let history = self.observe()?;
            if let Some(len) = copy_active_log(self, &history, &dest_log)? {
                break (history, len);
            }
            // Not the file observed, or a damaged line: only a rotation
            // since the observation makes looking again worth it.
            if self.observe()?.archive_len == history.archive_len {
                let mut lines = history.active_lines(0, Some(history.base_seq()))?;
                while lines.next_event()?.is_some() {}
                return Err(Error::corrupt(
                    &history.paths.log,
                    0,
                    "the active log changed while it was copied, though no rotation happened: \
                     another program wrote to it (run verify)",
                ));
            }
            if attempt >= ATTEMPTS {
                return Err(Error::io(
                    &history.paths.log,
                    io::Error::other(format!(
                        "the log rotated during each of {ATTEMPTS} attempts to copy it: try \
                         again when it rotates less often"
                    )),
                ));
            }
        };
        let archive_len = history.index.archive_end();
        let total = archive_len + active_len;
        progress(active_len, total);
        if !history.index.frames.is_empty() {
            let path = &history.paths.archive;
            let source = File::open(path).at(path)?.take(archive_len);
            let dest_archive = dest.join(ARCHIVE_FILE);
            let mut out = create(&dest_archive)?;
            let copied = copy_with_progress(source, &mut out, path, &dest_archive, &mut |n| {
                progress(active_len + n, total);
            })?;
            if copied != archive_len {
                return Err(Error::corrupt(
                    path,
                    copied,
                    format!(
                        "the archive ends here, before the {archive_len} bytes its index \
                         records: frames were lost (run verify)"
                    ),
                ));
            }
            out.sync_all().at(&dest_archive)?;
            Index::default().rewrite(&dest.join(INDEX_FILE), history.index.frames.clone())?;
        }
        let mut backup = Backup {
            events: history.next_seq,
            frames: history.index.frames.len() as u64,
            archive_len,
            active_len,
            ..Backup::default()
        };
        copy_snapshots(&history.paths.views, dest, &mut backup)?;
        durable::sync_dir(dest)?;
        progress(total, total);
        Ok(backup)
    }
}

/// `dest` must not be `source` or inside it: the backup writes nothing
/// into the directory it copies.
fn refuse_inside(source: &Path, dest: &Path) -> Result<()> {
    let source = fs::canonicalize(source).at(source)?;
    // The nearest existing ancestor of `dest` says where it would be.
    let mut existing = dest;
    let resolved = loop {
        match fs::canonicalize(existing) {
            Ok(path) => break path,
            Err(_) => match existing.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
                _ => break std::env::current_dir().at(dest)?,
            },
        }
    };
    if resolved.starts_with(&source) {
        return Err(Error::io(
            dest,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the backup's destination is inside the directory it copies: give a place \
                 outside it",
            ),
        ));
    }
    Ok(())
}

/// `dest` must be an empty directory or not exist; it is created, durably.
fn prepare_dest(dest: &Path) -> Result<()> {
    match fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::io(
                    dest,
                    io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "the backup's destination is not empty: give a new or empty directory",
                    ),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            durable::create_dir_all(dest)?;
            Ok(())
        }
        Err(e) => Err(Error::io(dest, e)),
    }
}

/// Copies the acknowledged lines of the active log that `history` saw into
/// `dest_log`, each checked against the line the reader reads at its
/// sequence number; returns the bytes copied, or `None` (`dest_log`
/// removed) when the file was no longer the one `history` saw.
fn copy_active_log(
    reader: &EventReader,
    history: &History,
    dest_log: &Path,
) -> Result<Option<u64>> {
    let path = &history.paths.log;
    let out = create(dest_log)?;
    let source = match File::open(path) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound && history.len == 0 => None,
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut same = true;
    if let Some(source) = source {
        let mut expected = reader.read_from_seq(history.base_seq())?;
        let tee = Tee {
            inner: source.take(history.len),
            out: &out,
        };
        let mut lines = Lines::new(
            BufReader::with_capacity(READ_BUF, tee),
            path.clone(),
            0,
            Some(history.len),
            None,
        )
        .with_seq(Some(history.base_seq()));
        loop {
            let line = match lines.next_event() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                // Another file than the one observed (a rotation replaced
                // it), or a damaged line, which the reader then reports.
                Err(Error::Corrupt { .. }) => {
                    same = false;
                    break;
                }
                Err(e) => return Err(e),
            };
            match expected.next().transpose()? {
                Some((_, _, hash)) if hash == hash_hex(line.hash) => {}
                _ => {
                    same = false;
                    break;
                }
            }
        }
    }
    if !same {
        drop(out);
        durable::remove_file(dest_log)?;
        return Ok(None);
    }
    out.sync_all().at(dest_log)?;
    Ok(Some(history.len))
}

/// A reader that writes what it reads to `out`.
struct Tee<'a, R> {
    inner: R,
    out: &'a File,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Creates the file `path`, which must not exist.
fn create(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .at(path)
}

/// Copies `source` into `out`; returns the bytes copied. `progress` gets
/// the bytes copied so far.
fn copy_with_progress(
    mut source: impl Read,
    out: &mut File,
    path: &Path,
    dest: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<u64> {
    let mut buf = vec![0; 1024 * 1024];
    let mut copied = 0;
    loop {
        let n = source.read(&mut buf).at(path)?;
        if n == 0 {
            return Ok(copied);
        }
        out.write_all(&buf[..n]).at(dest)?;
        copied += n as u64;
        progress(copied);
    }
}

/// Copies the snapshots of `views` that fit the copy in `dest`; the others
/// are named in `backup.snapshots_left_out`.
fn copy_snapshots(views: &Path, dest: &Path, backup: &mut Backup) -> Result<()> {
    let snapshots = crate::snapshot::snapshot_files(views)?;
    let dest_views = dest.join(VIEWS_DIR);
    durable::create_dir_all(&dest_views)?;
    let copy = EventReader::open(dest)?.observe()?;
    for (view, path) in snapshots {
        let name = format!("{view}{SNAPSHOT_SUFFIX}");
        let Some(bytes) = durable::read_regular(&path, crate::snapshot::MAX_SNAPSHOT)
            .ok()
            .flatten()
        else {
            backup.snapshots_left_out.push(name);
            continue;
        };
        let target = dest_views.join(&name);
        let mut out = create(&target)?;
        out.write_all(&bytes).at(&target)?;
        // The copy itself is checked: the writer may have replaced the
        // snapshot since it was read.
        let fits = match ViewSnapshot::<serde::de::IgnoredAny>::load(&target) {
            Ok(Some((snapshot, _))) => {
                snapshot
                    .archive_len
                    .is_none_or(|len| len == copy.archive_len)
                    && snapshot.offset <= copy.len
                    && copy
                        .check_position(snapshot.offset, &snapshot.hash, snapshot.seq)?
                        .is_none()
            }
            _ => false,
        };
        if !fits {
            drop(out);
            durable::remove_file(&target)?;
            backup.snapshots_left_out.push(name);
            continue;
        }
        out.sync_all().at(&target)?;
        backup.snapshots += 1;
    }
    durable::sync_dir(&dest_views)
}
