//! Rotation: moving the active log into the zstd archive, crash-safely.
//!
//! The archive, `archive.jsonl.zst`, is a sequence of standard zstd frames,
//! one per rotation, each with its content size and a checksum of its
//! content; decompressed in order they are the closed history as JSON
//! Lines (`zstd -d archive.jsonl.zst --stdout` prints it).
//!
//! A rotation of an active log of `M` bytes, when the archive is `A` bytes:
//!
//! 1. refresh every registered view (each snapshot now sits at `M`); check
//!    that every line of `app.jsonl` is a valid event and that nobody else
//!    changed its length; delete any snapshot that is not at `M` with the
//!    hash of the log's last line: it could not follow the bytes into the
//!    archive;
//! 2. write the intent record `rotation.json` =
//!    `{"archive_len":A,"log_len":M,"checksum":C}` (atomically, directory
//!    synced; C guards the two numbers recovery acts on);
//! 3. append `app.jsonl` as one zstd frame to the archive and sync it;
//! 4. truncate `app.jsonl` to 0 and sync it;
//! 5. move every snapshot from offset `M` to offset 0;
//! 6. remove the intent record (directory synced).
//!
//! On open, an intent record left by a crash is resolved: if `app.jsonl`
//! still has its `M` bytes, the rotation is rolled back (the archive is cut
//! back to `A` bytes, dropping any partial frame); if it is empty, step 3
//! had completed and the rotation is rolled forward (steps 5 and 6). Either
//! way no event is lost or duplicated.
//!
//! Recovery cuts nothing it has not verified. Before a roll-back, the
//! archive bytes past `A` must decode as one zstd frame, possibly cut
//! short, whose content so far is the start of `app.jsonl` (up to the
//! first page that a power cut zeroed, if any: unsynced pages may come
//! back as zeros, committed frames never hold such pages); before a
//! roll-forward, they must be exactly one complete frame of `M` bytes whose
//! checksum holds. A stale or forged record, or files damaged after the
//! crash, give [`Error::Corrupt`](crate::Error::Corrupt) naming the file
//! that disagrees (the record itself when an emptied `app.jsonl` and an
//! archive cut inside the frame cannot be told apart), and no file is
//! changed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::log::EventLog;
use crate::reader::{ArchiveLines, Lines, READ_BUF};
use crate::snapshot;

/// File name of the archive inside the data directory.
pub(crate) const ARCHIVE_FILE: &str = "archive.jsonl.zst";
/// File name of the rotation intent record inside the data directory.
pub(crate) const INTENT_FILE: &str = "rotation.json";
/// zstd compression level of archive frames. Measured on 45 MB of varied
/// todo-like events: level 1 compresses in 0.16 s to 12.3 MB, level 3 in
/// 0.31 s to 11.9 MB. Rotation blocks appends and the archive is cold
/// data, so twice the speed is worth 3% more bytes.
const LEVEL: i32 = 1;

/// What a rotation in progress is about to do; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Intent {
    /// Length of the archive before the rotation.
    archive_len: u64,
    /// Length of the active log being rotated.
    log_len: u64,
    /// xxh3-64 in hex of the two lengths: recovery acts on these numbers
    /// (it may cut the archive back), so a damaged record must not pass.
    checksum: String,
}

impl Intent {
    fn new(archive_len: u64, log_len: u64) -> Intent {
        Intent {
            archive_len,
            log_len,
            checksum: Intent::checksum_of(archive_len, log_len),
        }
    }

    fn checksum_of(archive_len: u64, log_len: u64) -> String {
        let text = format!("{archive_len}:{log_len}");
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
    }

    fn intact(&self) -> bool {
        self.checksum == Intent::checksum_of(self.archive_len, self.log_len)
    }
}

/// Opens the first `len` bytes of the archive as a stream of lines;
/// `None` when there is no archive yet.
pub(crate) fn open_lines(path: &Path, len: u64) -> Result<Option<ArchiveLines>> {
    if len == 0 {
        return Ok(None);
    }
    let file = File::open(path).at(path)?;
    let compressed = BufReader::with_capacity(READ_BUF, file.take(len));
    let decoder = zstd::Decoder::with_buffer(compressed).at(path)?;
    Ok(Some(Lines::new(
        BufReader::with_capacity(READ_BUF, decoder),
        path.to_path_buf(),
        0,
        None,
        Some(len),
    )))
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

impl EventLog {
    /// Moves the active log into the compressed archive.
    ///
    /// Step by step: every registered view is refreshed (so each snapshot
    /// has consumed the whole active log); the active log is compressed as
    /// one zstd frame and appended to `archive.jsonl.zst`, which is created
    /// on the first rotation and synced; `app.jsonl` is truncated to zero
    /// bytes; every snapshot's offset is reset to 0. An intent record makes
    /// each step recoverable: after a crash, the next open finishes or
    /// undoes the rotation, so that no event is lost or duplicated.
    ///
    /// Views' states do not change. A snapshot that does not reflect the
    /// whole active log (typically that of a view not registered with this
    /// log) cannot follow its events into the archive: it is deleted, and
    /// that view replays the archive when next used.
    ///
    /// The call blocks until everything is on disk. With an empty active
    /// log it does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::builder(dir.path()).view::<u64>("count", count).open()?;
    /// log.append(&Event::new("ping", json!(null)))?;
    /// log.rotate()?;
    /// assert_eq!(std::fs::metadata(dir.path().join("app.jsonl"))?.len(), 0);
    /// assert!(dir.path().join("archive.jsonl.zst").exists());
    /// assert_eq!(*log.view::<u64>("count")?, 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Any error of [`refresh_all`](EventLog::refresh_all), and
    /// [`Error::Corrupt`] if a line of the active log is not a valid event
    /// or another program changed the file: these leave the files as they
    /// were. An [`Error::Io`] once the archive is being
    /// written leaves the rotation half done on disk: the log is then
    /// [poisoned](Error::Poisoned) and [`recover`](EventLog::recover) or the
    /// next open completes or undoes it.
    pub fn rotate(&mut self) -> Result<()> {
        self.check_usable()?;
        if self.len == 0 {
            return Ok(());
        }
        self.refresh_all()?;
        self.save_views()?;
        self.check_active_log()?;
        let last_hash = self.hash_before(self.len)?.unwrap_or_default();
        snapshot::prune_before_rotation(&self.views_dir, self.len, &last_hash, self.archive_len)?;
        let result = self.move_to_archive();
        if let Err(e) = &result {
            self.poison(e);
        }
        result
    }

    /// Steps 2 to 6 of a rotation (see the module docs).
    fn move_to_archive(&mut self) -> Result<()> {
        let intent = Intent::new(self.archive_len, self.len);
        let intent_path = self.dir.join(INTENT_FILE);
        let record = serde_json::to_vec(&intent).expect("two integers serialize");
        durable::write_atomic(&intent_path, &record)?;

        let archive = durable::open_append(&self.archive_path)?;
        let source = File::open(&self.log_path).at(&self.log_path)?;
        let mut encoder = zstd::Encoder::new(&archive, LEVEL).at(&self.archive_path)?;
        encoder.include_checksum(true).at(&self.archive_path)?;
        encoder.include_contentsize(true).at(&self.archive_path)?;
        encoder
            .set_pledged_src_size(Some(self.len))
            .at(&self.archive_path)?;
        let copied = io::copy(
            &mut BufReader::with_capacity(READ_BUF, source.take(self.len)),
            &mut encoder,
        )
        .at(&self.archive_path)?;
        if copied != self.len {
            return Err(Error::corrupt(
                &self.log_path,
                copied,
                format!(
                    "the file is shorter than the {} bytes it held at rotation",
                    self.len
                ),
            ));
        }
        encoder.finish().at(&self.archive_path)?;
        archive.sync_all().at(&self.archive_path)?;
        let archive_len = archive.metadata().at(&self.archive_path)?.len();

        self.check_unchanged_len()?;
        self.file.set_len(0).at(&self.log_path)?;
        self.file.sync_all().at(&self.log_path)?;
        self.len = 0;
        self.archive_len = archive_len;

        self.checked_len = 0;
        snapshot::shift_after_rotation(&self.views_dir, intent.log_len, archive_len)?;
        for view in &mut self.views {
            view.rotated(self.id, archive_len);
        }
        durable::remove_file(&intent_path)
    }
}

impl EventLog {
    /// Before a rotation: every line of the active log must be a valid
    /// event, so that no damage moves into the compressed archive, where it
    /// could no longer be repaired by hand. Lines this log wrote itself, or
    /// already read in full, are not read again.
    fn check_active_log(&mut self) -> Result<()> {
        self.check_unchanged_len()?;
        if self.checked_len < self.len {
            let mut lines = self.active_lines(self.checked_len)?;
            while let Some(end) = lines.next_valid()? {
                self.checked_len = end;
            }
        }
        Ok(())
    }

    /// The active log must still have exactly the length this log wrote:
    /// anything else means another program changed it, and truncating it
    /// would destroy what it added.
    fn check_unchanged_len(&self) -> Result<()> {
        let actual = self.file.metadata().at(&self.log_path)?.len();
        if actual == self.len {
            return Ok(());
        }
        Err(Error::corrupt(
            &self.log_path,
            actual.min(self.len),
            format!(
                "the file is {actual} bytes long, but this log wrote {}: another program changed it",
                self.len
            ),
        ))
    }
}

/// Resolves a rotation that a crash interrupted, if its intent record is
/// there; see the module docs. Runs on open, before anything else reads
/// the log or the archive.
///
/// Nothing is cut that is not proven to be the interrupted rotation's own
/// frame: before a roll-back, the archive bytes past the recorded length
/// must decode as one zstd frame (possibly cut short) whose content is the
/// start of `app.jsonl`; before a roll-forward, they must be exactly one
/// complete frame of the recorded length whose checksum holds. Anything
/// else is [`Error::Corrupt`] and no file is changed.
pub(crate) fn recover(dir: &Path, log_path: &Path, views_dir: &Path) -> Result<()> {
    let intent_path = dir.join(INTENT_FILE);
    let Some(record) = durable::read_regular(&intent_path, durable::MAX_RECORD)? else {
        return Ok(());
    };
    let intent: Intent = serde_json::from_slice(&record)
        .map_err(|e| snapshot::json_error(&intent_path, &record, &e))?;
    if !intent.intact() {
        return Err(Error::corrupt(
            &intent_path,
            0,
            "the rotation record does not match its checksum; nothing was changed \
             (compare its lengths with the files before acting on it)",
        ));
    }
    let archive_path = dir.join(ARCHIVE_FILE);
    let log_len = file_len(log_path)?;
    let archive_len = file_len(&archive_path)?;

    if log_len == intent.log_len && intent.log_len > 0 {
        // The active log was not truncated: undo the archive append.
        if archive_len < intent.archive_len {
            return Err(Error::corrupt(
                &archive_path,
                archive_len,
                format!(
                    "the archive is shorter than the {} bytes recorded in {}",
                    intent.archive_len, INTENT_FILE
                ),
            ));
        }
        if archive_len > intent.archive_len {
            check_partial_frame(&archive_path, intent.archive_len, log_path, intent.log_len)?;
        }
        if intent.archive_len == 0 {
            durable::remove_file(&archive_path)?;
        } else if archive_len > intent.archive_len {
            let archive = OpenOptions::new()
                .write(true)
                .open(&archive_path)
                .at(&archive_path)?;
            archive.set_len(intent.archive_len).at(&archive_path)?;
            archive.sync_all().at(&archive_path)?;
        }
        ::log::warn!(
            "eventfold: rolled back a rotation interrupted before {} was truncated",
            log_path.display()
        );
    } else if log_len == 0 && intent.log_len > 0 {
        // The frame was complete and synced before the truncation.
        if archive_len <= intent.archive_len {
            return Err(Error::corrupt(
                &archive_path,
                archive_len,
                format!(
                    "the active log was rotated but the archive did not grow past {} bytes",
                    intent.archive_len
                ),
            ));
        }
        check_complete_frame(&archive_path, &intent_path, &intent)?;
        snapshot::shift_after_rotation(views_dir, intent.log_len, archive_len)?;
        ::log::warn!("eventfold: completed a rotation interrupted after the archive was written");
    } else {
        return Err(Error::corrupt(
            log_path,
            log_len,
            format!(
                "{INTENT_FILE} records a rotation of {} bytes, but the active log is neither that long nor empty",
                intent.log_len
            ),
        ));
    }
    durable::remove_file(&intent_path)
}

/// Before a roll-back: the archive bytes from `start` on must be the
/// interrupted rotation's frame, possibly cut short: one zstd frame whose
/// content so far is the start of the `log_len` bytes of the active log.
fn check_partial_frame(
    archive_path: &Path,
    start: u64,
    log_path: &Path,
    log_len: u64,
) -> Result<()> {
    let mut log = BufReader::with_capacity(READ_BUF, File::open(log_path).at(log_path)?);
    let mut expected = vec![0; READ_BUF];
    // Where the line being compared starts in the active log.
    let mut line_start = 0;
    // A power cut can zero pages of the frame that were never synced:
    // what follows the first such page cannot be checked, and is not
    // needed to prove that the frame is this rotation's (committed frames
    // hold no zeroed pages).
    let end = lost_pages_start(archive_path, start)?;
    let tail = decode_frame_tail(archive_path, (start, end), |at, chunk| {
        if at + chunk.len() as u64 > log_len {
            return Err(Error::corrupt(
                archive_path,
                start,
                format!(
                    "the frame that {INTENT_FILE} says the interrupted rotation was writing \
                     here holds more than the {log_len} bytes of {}; nothing was changed",
                    log_path.display()
                ),
            ));
        }
        let expected = &mut expected[..chunk.len()];
        log.read_exact(expected).at(log_path)?;
        let Some(i) = expected.iter().zip(chunk).position(|(a, b)| a != b) else {
            if let Some(j) = expected.iter().rposition(|&b| b == b'\n') {
                line_start = at + j as u64 + 1;
            }
            return Ok(());
        };
        if let Some(j) = expected[..i].iter().rposition(|&b| b == b'\n') {
            line_start = at + j as u64 + 1;
        }
        Err(Error::corrupt(
            log_path,
            line_start,
            format!(
                "the line here differs from the copy that an interrupted rotation was \
                 writing into {} (frame at byte {start}); one of them was changed after \
                 the crash, so nothing was changed: compare them (`zstd -d`) before acting",
                archive_path.display()
            ),
        ))
    })?;
    if tail.complete && tail.decoded != log_len {
        return Err(Error::corrupt(
            archive_path,
            start,
            format!(
                "the frame here holds {} bytes, but {INTENT_FILE} records a rotation of \
                 {log_len}: it is not the interrupted rotation's frame; nothing was changed",
                tail.decoded
            ),
        ));
    }
    Ok(())
}

/// Before a roll-forward: the archive bytes from the recorded length on
/// must be exactly one complete frame of the rotated log's length, its
/// checksum verified. Otherwise the emptied active log's events are not
/// all in the archive.
fn check_complete_frame(archive_path: &Path, intent_path: &Path, intent: &Intent) -> Result<()> {
    let start = intent.archive_len;
    let end = file_len(archive_path)?;
    let tail = decode_frame_tail(archive_path, (start, end), |_, _| Ok(()))?;
    if tail.complete && tail.decoded == intent.log_len {
        return Ok(());
    }
    let found = if tail.complete {
        format!("a complete frame of {} bytes", tail.decoded)
    } else {
        format!(
            "an incomplete frame ({} compressed bytes, decoding to {} bytes)",
            tail.compressed, tail.decoded
        )
    };
    Err(Error::corrupt(
        intent_path,
        0,
        format!(
            "the record says {} bytes of the active log moved into the archive from byte \
             {start}, and the active log is empty, but the archive holds {found} there: \
             either the active log lost its content or the archive was cut. Nothing was \
             changed; restore the damaged file from a backup",
            intent.log_len
        ),
    ))
}

/// Where, past `start`, the archive's unsynced bytes begin to show pages
/// that a power cut lost: the first place from which the rest of a page
/// (from `start` itself, or from a page boundary) to the end of that page
/// or of the file is all zeros. The file's length if there is none.
fn lost_pages_start(archive_path: &Path, start: u64) -> Result<u64> {
    const PAGE: u64 = 4096;
    let len = file_len(archive_path)?;
    let mut file = File::open(archive_path).at(archive_path)?;
    file.seek(io::SeekFrom::Start(start)).at(archive_path)?;
    let mut reader = BufReader::with_capacity(READ_BUF, file);
    let mut page = vec![0; PAGE as usize];
    let mut at = start;
    while at < len {
        let next = ((at / PAGE + 1) * PAGE).min(len);
        let bytes = &mut page[..(next - at) as usize];
        reader.read_exact(bytes).at(archive_path)?;
        if bytes.iter().all(|&b| b == 0) {
            return Ok(at);
        }
        at = next;
    }
    Ok(len)
}

/// What the archive holds from a given byte on, decoded as one frame.
struct FrameTail {
    /// Compressed bytes read.
    compressed: u64,
    /// Bytes of content they decode to.
    decoded: u64,
    /// Whether the frame ended (its checksum verified) with the file.
    complete: bool,
}

/// Decodes the archive from `start` to `end` as one zstd frame, handing
/// each decoded chunk and its offset in the frame's content to `check`.
/// A frame cut short is not an error (`complete` is false); bytes that are
/// not a zstd frame, a failed checksum or bytes after the frame are
/// [`Error::Corrupt`] naming the archive at the compressed offset.
fn decode_frame_tail(
    archive_path: &Path,
    (start, end): (u64, u64),
    mut check: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<FrameTail> {
    use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

    let mut file = File::open(archive_path).at(archive_path)?;
    file.seek(io::SeekFrom::Start(start)).at(archive_path)?;
    let mut file = file.take(end - start);
    let mut decoder = Decoder::new().at(archive_path)?;
    let mut input = vec![0; READ_BUF];
    let mut output = vec![0; READ_BUF];
    let mut tail = FrameTail {
        compressed: 0,
        decoded: 0,
        complete: false,
    };
    loop {
        let n = file.read(&mut input).at(archive_path)?;
        if n == 0 {
            return Ok(tail);
        }
        let mut chunk = InBuffer::around(&input[..n]);
        loop {
            let mut out = OutBuffer::around(&mut output[..]);
            let hint = decoder.run(&mut chunk, &mut out).map_err(|e| {
                Error::corrupt(
                    archive_path,
                    start + tail.compressed + chunk.pos() as u64,
                    format!(
                        "the bytes from {start} on (where {INTENT_FILE} says an interrupted \
                         rotation's frame starts) are not a zstd frame: {e}; nothing was changed"
                    ),
                )
            })?;
            let produced = out.pos();
            check(tail.decoded, &output[..produced])?;
            tail.decoded += produced as u64;
            if hint == 0 {
                tail.compressed += chunk.pos() as u64;
                tail.complete = true;
                let more = chunk.pos() < n || file.read(&mut input[..1]).at(archive_path)? > 0;
                if more {
                    return Err(Error::corrupt(
                        archive_path,
                        start + tail.compressed,
                        format!(
                            "more bytes follow the frame that {INTENT_FILE} says an \
                             interrupted rotation wrote from byte {start}; nothing was changed"
                        ),
                    ));
                }
                return Ok(tail);
            }
            if chunk.pos() == n && produced < output.len() {
                break;
            }
        }
        tail.compressed += n as u64;
    }
}
