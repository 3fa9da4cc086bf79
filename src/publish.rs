//! The committed end of the history, as the writer publishes it to
//! readers: to those in its own process through a condition variable
//! ([`Notifier`]), to those in other processes through
//! `app.jsonl.committed` ([`Publisher`]).
//!
//! A reader in another process sees `app.jsonl` as the page cache holds
//! it, which includes bytes the writer has written but not yet synced, or
//! is about to cut because their sync failed. So after every successful
//! `fdatasync` (and after opening, rotating and recovering) the writer
//! overwrites this small file with how much of the active log is
//! acknowledged, and readers read no further. The file is not data: it is
//! never synced, and every writer rewrites it when it opens the log.
//!
//! It holds one line of JSON, padded with spaces to a fixed length so that
//! each update is one write at offset 0:
//! `{"base":B,"len":L,"boot":"…","checksum":"…"}`, where `B` is the
//! sequence number of the first event of the active log (which tells one
//! rotation's log from the next), `L` the acknowledged length, `boot` the
//! identity of the running system (a reader ignores a record written
//! before the last reboot: a power cut may have kept the log's synced
//! bytes but lost the record's unsynced update), and the checksum guards
//! the rest (a reader that catches an update half written retries).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::durable;
use crate::error::{Error, IoContext, Result};

/// File name of the committed-length record inside the data directory.
pub(crate) const COMMITTED_FILE: &str = "app.jsonl.committed";

/// Length of the record on disk: the JSON line, padded with spaces, and a
/// newline.
const RECORD_LEN: usize = 160;

/// What the writer last published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Committed {
    /// Sequence number of the first event of the active log.
    pub(crate) base: u64,
    /// Acknowledged length of the active log.
    pub(crate) len: u64,
}

#[derive(Serialize, Deserialize)]
struct Record {
    base: u64,
    len: u64,
    boot: String,
    checksum: String,
}

fn checksum_of(base: u64, len: u64, boot: &str) -> String {
    let text = format!("{base}:{len}:{boot}");
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// The identity of the running system: the same until the next reboot.
/// Empty where the system does not tell it (a record is then trusted
/// whenever it was written).
fn boot_id() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|id| id.trim().to_owned())
            .unwrap_or_default()
    })
}

/// Where the writer publishes its committed end: both ways.
#[derive(Debug)]
pub(crate) struct Outlet {
    path: PathBuf,
    /// `None` if the record could not be opened (a warning was given).
    publisher: Option<Publisher>,
    notifier: Arc<Notifier>,
}

impl Outlet {
    /// The outlet of the writer of `dir`, which holds its lock, with the
    /// in-process waiters of `notifier`.
    pub(crate) fn open(dir: &Path, notifier: Arc<Notifier>) -> Outlet {
        let path = dir.join(COMMITTED_FILE);
        let publisher = match Publisher::open(&path) {
            Ok(publisher) => Some(publisher),
            Err(e) => {
                ::log::warn!(
                    "eventfold: {e}; readers in other processes will read every complete line                      of the log, including any not yet synced"
                );
                None
            }
        };
        Outlet {
            path,
            publisher,
            notifier,
        }
    }

    /// Publishes the committed end of the history: the active log from
    /// event `committed.base` on is acknowledged up to `committed.len`,
    /// and the history holds `next_seq` events.
    pub(crate) fn publish(&mut self, committed: Committed, next_seq: u64) {
        if let Some(publisher) = &mut self.publisher {
            publisher.publish(&self.path, committed);
        }
        self.notifier.publish(next_seq);
    }
}

/// Wakes the threads of the writer's process that wait for new events.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    state: Mutex<Published>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Published {
    /// The next sequence number: how many events are acknowledged.
    next_seq: u64,
    /// Whether the writer closed the log: it publishes nothing more.
    closed: bool,
}

impl Notifier {
    /// A notifier whose history holds `next_seq` events.
    pub(crate) fn new(next_seq: u64) -> Arc<Notifier> {
        Arc::new(Notifier {
            state: Mutex::new(Published {
                next_seq,
                closed: false,
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Published> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that the history now holds `next_seq` events, and wakes
    /// every waiter.
    pub(crate) fn publish(&self, next_seq: u64) {
        self.lock().next_seq = next_seq;
        self.changed.notify_all();
    }

    /// The last published next sequence number.
    pub(crate) fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Records that the writer closed the log, and wakes every waiter:
    /// from now on they must look at the files themselves.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Blocks until the history holds more than `seq` events or
    /// `deadline` passes (`None`: no deadline); returns the next sequence
    /// number then, or `None` if the writer closed the log.
    pub(crate) fn wait_past(&self, seq: u64, deadline: Option<Instant>) -> Option<u64> {
        let mut guard = self.lock();
        while guard.next_seq <= seq && !guard.closed {
            let wait = match deadline {
                None => Duration::from_secs(3600),
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => break,
                },
            };
            guard = self
                .changed
                .wait_timeout(guard, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        (!guard.closed).then_some(guard.next_seq)
    }
}

/// The writer's handle on the record.
#[derive(Debug)]
pub(crate) struct Publisher {
    file: File,
    /// Set once an update failed, so that the warning is given once.
    failed: bool,
}

impl Publisher {
    /// Opens (creating it if needed) the record at `path`, for the writer,
    /// which holds the directory's lock. The name is eventfold's own: a
    /// symbolic link there is removed and a regular file created instead.
    pub(crate) fn open(path: &Path) -> Result<Publisher> {
        if fs::symlink_metadata(path).is_ok_and(|m| !m.is_file()) {
            fs::remove_file(path).at(path)?;
            ::log::warn!(
                "eventfold: removed {}, which was not a regular file",
                path.display()
            );
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        }
        let file = options.open(path).at(path)?;
        Ok(Publisher {
            file,
            failed: false,
        })
    }

    /// Publishes `committed`. A failure is a warning, not an error: the
    /// events are durable whatever readers are told, and readers then lag
    /// until an update succeeds.
    pub(crate) fn publish(&mut self, path: &Path, committed: Committed) {
        let boot = boot_id().to_owned();
        let record = Record {
            base: committed.base,
            len: committed.len,
            checksum: checksum_of(committed.base, committed.len, &boot),
            boot,
        };
        let mut line = serde_json::to_vec(&record).expect("a record serializes");
        line.resize(RECORD_LEN - 1, b' ');
        line.push(b'\n');
        match write_at_start(&self.file, &line) {
            Ok(()) => self.failed = false,
            Err(e) if !self.failed => {
                self.failed = true;
                ::log::warn!(
                    "eventfold: could not update {} ({e}); readers in other processes see no \
                     new events until it can be",
                    path.display()
                );
            }
            Err(_) => {}
        }
    }
}

#[cfg(unix)]
fn write_at_start(file: &File, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, 0)
}

#[cfg(not(unix))]
fn write_at_start(mut file: &File, bytes: &[u8]) -> io::Result<()> {
    use std::io::{Seek, Write};
    file.seek(io::SeekFrom::Start(0))?;
    file.write_all(bytes)
}

/// What a reader finds in the record at `path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// No record, or one from before the last reboot: no writer of this
    /// system has published anything, and the log's complete lines are
    /// its history.
    Absent,
    /// A record that does not parse or fails its checksum: an update was
    /// caught half written (read again), or the file was damaged (if it
    /// stays so, a reader takes it as absent).
    Torn,
    /// The writer's last publication.
    Committed(Committed),
}

/// Reads the record at `path`, writing nothing.
pub(crate) fn read(path: &Path) -> Result<Reading> {
    let Some(bytes) = durable::read_regular(path, durable::MAX_RECORD)? else {
        return Ok(Reading::Absent);
    };
    // Empty, or zeros: created and never written, or a power cut lost its
    // unsynced content. Nothing was published that survived.
    if bytes.iter().all(|&b| b == 0 || b.is_ascii_whitespace()) {
        return Ok(Reading::Absent);
    }
    let Ok(record) = serde_json::from_slice::<Record>(bytes.trim_ascii()) else {
        return Ok(Reading::Torn);
    };
    if record.checksum != checksum_of(record.base, record.len, &record.boot) {
        return Ok(Reading::Torn);
    }
    if record.boot != boot_id() {
        return Ok(Reading::Absent);
    }
    Ok(Reading::Committed(Committed {
        base: record.base,
        len: record.len,
    }))
}

/// Checks, before a writer repairs or writes anything, that the active
/// log at `log_path` still holds what a writer acknowledged since the
/// last reboot, as the record in `dir` says: the log is `found` bytes
/// long, its archive holds `base` events, and the repair of its end would
/// leave `kept` bytes (see [`tail::next_open`]). Within one generation
/// of the active log a writer only ever cuts bytes it never acknowledged,
/// so a log that is, or would be cut, shorter lost acknowledged events:
/// to a hand edit, another program, or a copy of the directory taken
/// while a writer ran. After a reboot the record says nothing (see
/// [`read`]), and neither does a record that is missing, damaged or not a
/// regular file (the writer replaces it).
///
/// # Errors
///
/// [`Error::Corrupt`] naming the log and the byte where what it holds
/// stops being what was acknowledged. Otherwise the length the record
/// says was acknowledged, if it describes this log.
///
/// [`tail::next_open`]: crate::tail::next_open
pub(crate) fn check_kept(
    dir: &Path,
    log_path: &Path,
    base: u64,
    (found, kept): (u64, u64),
) -> Result<Option<u64>> {
    let path = dir.join(COMMITTED_FILE);
    if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let Ok(Reading::Committed(committed)) = read(&path) else {
        return Ok(None);
    };
    if committed.base != base {
        return Ok(None);
    }
    if kept >= committed.len {
        return Ok(Some(committed.len));
    }
    let (at, what) = if found < committed.len {
        (found, "the log ends here".to_owned())
    } else {
        (
            kept,
            format!(
                "its bytes from here to byte {found} are not whole lines (zeroed, or cut \
                 mid-line)"
            ),
        )
    };
    Err(missing(&path, log_path, at, committed.len, &what))
}

/// The error for an active log that no longer holds the `len` bytes its
/// writer acknowledged, as the record at `record` says: `what` happened
/// at byte `at`.
pub(crate) fn missing(record: &Path, log_path: &Path, at: u64, len: u64, what: &str) -> Error {
    Error::corrupt(
        log_path,
        at,
        format!(
            "{what}, but its writer acknowledged {len} bytes of it since the last reboot ({} \
             says so): acknowledged events are missing. Restore the file from a backup; if it \
             was cut or replaced by an older copy on purpose, or this directory is a copy taken \
             while a writer ran, delete {} to open what is left",
            record.display(),
            record.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_record_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(COMMITTED_FILE);
        assert_eq!(read(&path).unwrap(), Reading::Absent);
        let mut publisher = Publisher::open(&path).unwrap();
        let committed = Committed { base: 7, len: 1234 };
        publisher.publish(&path, committed);
        assert_eq!(read(&path).unwrap(), Reading::Committed(committed));
        // A shorter number overwrites the longer one whole.
        let smaller = Committed { base: 8, len: 0 };
        publisher.publish(&path, smaller);
        assert_eq!(read(&path).unwrap(), Reading::Committed(smaller));
        assert_eq!(fs::metadata(&path).unwrap().len(), RECORD_LEN as u64);
    }

    #[test]
    fn a_damaged_record_is_torn_and_an_old_boot_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(COMMITTED_FILE);
        let mut publisher = Publisher::open(&path).unwrap();
        publisher.publish(&path, Committed { base: 1, len: 10 });
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("\"len\":10", "\"len\":99")).unwrap();
        assert_eq!(read(&path).unwrap(), Reading::Torn);
        let boot = "another-boot";
        let record = Record {
            base: 1,
            len: 10,
            checksum: checksum_of(1, 10, boot),
            boot: boot.to_owned(),
        };
        fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
        assert_eq!(read(&path).unwrap(), Reading::Absent);
    }
}
