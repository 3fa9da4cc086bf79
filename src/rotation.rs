//! Rotation: moving the active log into the zstd archive, crash-safely.
//!
//! The archive, `archive.jsonl.zst`, is a sequence of standard zstd frames,
//! each with its content size and a checksum of its content, and each
//! holding whole lines: a rotation writes frames of about
//! [`FRAME_CONTENT`] bytes (one frame per rotation before sequence numbers
//! existed). Decompressed in order they are the closed history as JSON
//! Lines (`zstd -d archive.jsonl.zst --stdout` prints it).
//!
//! A rotation of an active log of `M` bytes, when the archive is `A` bytes:
//!
//! 1. refresh every registered view (each snapshot now sits at `M`), and
//!    check that nobody else changed the length of `app.jsonl`;
//! 2. write the intent record `rotation.json` =
//!    `{"archive_len":A,"log_len":M,"checksum":C}` (atomically, directory
//!    synced; C guards the two numbers recovery acts on), open the archive
//!    and prepare step 5's empty file, on a second thread while step 3
//!    compresses the first frames: none is written before the record is
//!    durable;
//! 3. append `app.jsonl` as zstd frames to the archive and sync it.
//!    Meanwhile a second thread checks that every line this log has not
//!    written or read is a valid event, numbered in order (until step 4 is
//!    done); if one is not, the rotation is rolled back as recovery does it
//!    (the frames and their index lines cut off, the record and the empty
//!    file removed) and the error returned, the files as they were;
//! 4. append the frames' lines to the archive index,
//!    `archive.index.jsonl` (see [`index`](crate::index)), and sync it, at
//!    the same time as the archive (`app.jsonl` keeps its bytes until both
//!    are durable, so a crash in between rolls back); then, once the check
//!    is done, delete any snapshot that is not at `M` with the hash of the
//!    log's last line: it could not follow the bytes into the archive;
//! 5. empty `app.jsonl`: the empty `app.jsonl.tmp` prepared in step 2
//!    (synced, with the old file's permissions) is renamed over it,
//!    directory synced (when `app.jsonl` is a symbolic link, the file it
//!    leads to is truncated and synced instead);
//! 6. move every snapshot from offset `M` to offset 0;
//! 7. remove the intent record (directory synced).
//!
//! On open, an intent record left by a crash is resolved: if `app.jsonl`
//! still has its `M` bytes, the rotation is rolled back (the archive is cut
//! back to `A` bytes, dropping any partial frame, and the index to the
//! frames before it); if it is empty, step 3 had completed and the rotation
//! is rolled forward (the index lines written if missing or torn,
//! then steps 6 and 7). Either way no event is lost or duplicated, and
//! every event keeps its sequence number.
//!
//! Recovery cuts nothing it has not verified. Before a roll-back, the
//! archive bytes past `A` must decode as zstd frames, the last possibly cut
//! short, whose content so far is the start of `app.jsonl` (up to the
//! first page that a power cut zeroed, if any: unsynced pages may come
//! back as zeros, committed frames never hold such pages); before a
//! roll-forward, they must be complete frames of `M` bytes in all whose
//! checksums hold. A stale or forged record, or files damaged after the
//! crash, give [`Error::Corrupt`] naming the file
//! that disagrees (the record itself when an emptied `app.jsonl` and an
//! archive cut inside the frame cannot be told apart), and no file is
//! changed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, Write};
use std::panic;
use std::path::{Path, PathBuf};
use std::thread;

use serde::{Deserialize, Serialize};

use crate::canonical;
use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::frames::{self, FrameTail};
use crate::history::{History, Paths};
use crate::index::Index;
use crate::lines::READ_BUF;
use crate::snapshot;

/// File name of the rotation intent record inside the data directory.
pub(crate) const INTENT_FILE: &str = "rotation.json";
/// The content of one archive frame, about: a rotation writes the active
/// log as frames of this size, each ending at the end of a line (a line
/// longer than this gets a frame of its own). Reading from a sequence
/// number decompresses the history from the start of the frame that holds
/// it, so this bounds that cost; at zstd's level 1, whose window is 512
/// KiB, larger frames would compress no better.
const FRAME_CONTENT: u64 = 1024 * 1024;
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

/// Steps 1 (but for the views' refresh, which the caller has done) to 7 of
/// a rotation of the active log `file` of `history`, which is the new,
/// empty log afterwards; see the module docs.
/// `checked_len` is how much of the active log is known to hold valid
/// events, as [`check_active_log`] keeps it. Does nothing when the active
/// log is empty.
///
/// # Errors
///
/// [`Error::Corrupt`] if a line of the active log is not a valid event or
/// another program changed the file: the files are then as they were. An
/// [`Error::Io`] once the archive is being written leaves the rotation
/// half done on disk, for recovery to complete or undo.
pub(crate) fn rotate(history: &mut History, file: &mut File, checked_len: &mut u64) -> Result<()> {
    if history.len == 0 {
        return Ok(());
    }
    check_unchanged_len(history, file)?;
    let unchecked = *checked_len < history.len;
    // The lines not known to be valid are checked on a second thread while
    // this one compresses them: the pause is the longer of the two, not
    // their sum.
    let written = thread::scope(|scope| {
        let history = &*history;
        let check = unchecked.then(|| {
            let mut checked = *checked_len;
            Task::start(scope, "eventfold-check", move || {
                check_active_log(history, &mut checked).map(|()| checked)
            })
        });
        let written = write_archive(history);
        (written, check.map(Task::join))
    });
    let written = match written {
        // The check panicked (no damage in a file can make it): the
        // rotation is taken back before the panic goes on.
        (written, Some(Err(panicked))) => {
            if let Ok(written) = written {
                let e = Error::corrupt(&history.paths.log, *checked_len, "the check panicked");
                undo(history, written, e);
            }
            panic::resume_unwind(panicked)
        }
        (written, Some(Ok(checked))) => (written, Some(checked)),
        (written, None) => (written, None),
    };
    let written = match written {
        (Err(e), _) => Err(e),
        // A line is damaged: the frames written so far are taken back.
        (Ok(written), Some(Err(e))) => return Err(undo(history, written, e)),
        (Ok(written), checked) => {
            if let Some(Ok(checked)) = checked {
                *checked_len = checked;
            }
            Ok(written)
        }
    };
    // From here on a failure leaves the rotation half done: only recovery
    // may write again.
    if let Err(e) = written.and_then(|written| finish(history, file, written)) {
        history.poison(&e);
        return Err(e);
    }
    *checked_len = 0;
    Ok(())
}

/// What steps 2 to 4 wrote, for the rest of the rotation.
struct Written {
    intent: Intent,
    archive_len: u64,
    /// The index with the new frames.
    index: Index,
    /// The empty file prepared for step 5, if `app.jsonl` can be replaced.
    empty: Option<PathBuf>,
}

/// What step 2 made ready while the first frame was compressed.
struct Ready {
    /// The archive, open for appending.
    archive: File,
    /// The empty file prepared for step 5 (see [`empty_active_log`]).
    empty: Option<PathBuf>,
}

/// Steps 2 to 4 of a rotation (see the module docs): the intent record,
/// the frames (synced), their lines in the index (synced).
///
/// Syncs are taken out of the pause where the order of the files allows
/// it: the intent record is written, the archive opened and the empty
/// file of step 5 prepared on a second thread while the first frames are
/// compressed (they are kept in memory until the record is durable), and the
/// index lines are written and synced while the archive is (the active log
/// keeps its bytes until both are durable, so a crash in between rolls
/// the rotation back).
fn write_archive(history: &History) -> Result<Written> {
    let paths = &history.paths;
    let intent = Intent::new(history.archive_len, history.len);
    let written = thread::scope(|scope| {
        let preparing = Task::start(scope, "eventfold-prepare", || prepare(paths, &intent));
        write_frames(paths, history.len, preparing)
    });
    // The scope waited for step 2: should the frames have failed, the
    // empty file it prepared is removed (the record stays, for recovery).
    let (ready, frames) = written.inspect_err(|_| {
        let _ = fs::remove_file(durable::tmp_path(&paths.log));
    })?;
    let Ready { archive, empty } = ready;
    let result = (|| {
        // The index in memory changes only once the rotation is done: until
        // then a failure leaves this log reading the files as they were.
        let mut index = history.index.clone();
        let entries = index.next_frames(intent.archive_len, &frames);
        let counted: u64 = entries.iter().map(|f| f.events).sum();
        let expected = history.next_seq - history.base_seq();
        if counted != expected {
            return Err(Error::corrupt(
                &paths.log,
                0,
                format!(
                    "the file held {counted} events when it was compressed, but this log \
                     counted {expected}: another program changed it"
                ),
            ));
        }
        let written = entries.last().map_or(intent.archive_len, |f| f.end());
        let archive_len = archive.metadata().at(&paths.archive)?.len();
        if written != archive_len {
            return Err(Error::corrupt(
                &paths.archive,
                written,
                format!(
                    "the archive is {archive_len} bytes long, but this rotation wrote it up to \
                     byte {written}: another program wrote to it"
                ),
            ));
        }
        let (synced, indexed) = thread::scope(|scope| {
            let indexing = Task::start(scope, "eventfold-index", || {
                index.append(&paths.index, &entries)
            });
            (archive.sync_all().at(&paths.archive), indexing.result())
        });
        synced.and(indexed)?;
        Ok((archive_len, index))
    })();
    match result {
        Ok((archive_len, index)) => Ok(Written {
            intent,
            archive_len,
            index,
            empty,
        }),
        Err(e) => {
            if let Some(tmp) = empty {
                let _ = fs::remove_file(tmp);
            }
            Err(e)
        }
    }
}

/// Step 2, and what step 5 can prepare: writes the intent record, opens
/// the archive (creating it, durably, if need be) and prepares the empty
/// file that replaces `app.jsonl` when it can be replaced.
fn prepare(paths: &Paths, intent: &Intent) -> Result<Ready> {
    let record = serde_json::to_vec(intent).expect("two integers serialize");
    durable::write_atomic(&paths.dir.join(INTENT_FILE), &record)?;
    let archive = durable::open_append(&paths.archive)?;
    let metadata = fs::symlink_metadata(&paths.log).at(&paths.log)?;
    let empty = if metadata.file_type().is_symlink() {
        None
    } else {
        durable::prepare_empty(&paths.log, &metadata)?
    };
    Ok(Ready { archive, empty })
}

/// Work done on a second thread of a scope, or in this one when no thread
/// can be started (the system is out of threads or memory): a rotation
/// then takes longer but does not fail for it.
enum Task<'s, T> {
    /// The thread's closure gives `None` only if it found its slot
    /// empty, which cannot happen: only a closure that did not start is
    /// taken back.
    Running(thread::ScopedJoinHandle<'s, Option<T>>),
    Done(T),
}

impl<'s, T: Send + 's> Task<'s, T> {
    fn start<'e, F>(scope: &'s thread::Scope<'s, 'e>, name: &str, f: F) -> Task<'s, T>
    where
        F: FnOnce() -> T + Send + 's,
    {
        // The closure is handed over through a slot, so that it is still
        // here to run should the thread not start.
        let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(f)));
        let theirs = std::sync::Arc::clone(&slot);
        let spawned = thread::Builder::new()
            .name(name.to_owned())
            .spawn_scoped(scope, move || {
                let f = theirs.lock().unwrap_or_else(|p| p.into_inner()).take();
                f.map(|f| f())
            });
        let f = match spawned {
            Ok(handle) => return Task::Running(handle),
            Err(e) => {
                ::log::debug!("eventfold: {name} runs in this thread: {e}");
                slot.lock().unwrap_or_else(|p| p.into_inner()).take()
            }
        };
        Task::Done(f
            .expect("a closure that did not start is still in its slot")(
        ))
    }

    /// Whether the work is done (joining would not wait).
    fn is_finished(&self) -> bool {
        match self {
            Task::Running(handle) => handle.is_finished(),
            Task::Done(_) => true,
        }
    }

    /// The work's outcome, or the panic it ended with.
    fn join(self) -> thread::Result<T> {
        match self {
            Task::Running(handle) => handle
                .join()
                .map(|ran| ran.expect("a started thread takes its closure")),
            Task::Done(value) => Ok(value),
        }
    }

    /// The work's outcome; a panic in it goes on in this thread.
    fn result(self) -> T {
        self.join()
            .unwrap_or_else(|panicked| panic::resume_unwind(panicked))
    }
}

/// After the check found a damaged line while the frames were written:
/// the rotation is rolled back (the archive cut back, the record
/// removed, the empty file prepared for step 5 too), so that the files are
/// as they were, and `e` is the error. Should the roll-back fail, the
/// history is poisoned, for recovery to finish it.
fn undo(history: &mut History, written: Written, e: Error) -> Error {
    if let Some(tmp) = written.empty {
        let _ = fs::remove_file(tmp);
    }
    if let Err(undo) = recover(&history.paths) {
        ::log::warn!(
            "eventfold: could not take back the frames of a rotation refused because of a \
             damaged line: {undo}"
        );
        history.poison(&undo);
    }
    e
}

/// Steps 5 to 7 of a rotation (see the module docs), after the removal of
/// the snapshots that cannot follow the log into the archive.
fn finish(history: &mut History, file: &mut File, written: Written) -> Result<()> {
    let paths = history.paths.clone();
    let Written {
        intent,
        archive_len,
        index,
        empty,
    } = written;
    let emptied = (|| {
        let last_hash = history.hash_before(history.len)?.unwrap_or_default();
        snapshot::prune_before_rotation(
            &paths.views,
            history.len,
            &last_hash,
            history.archive_len,
        )?;
        check_unchanged_len(history, file)?;
        Ok(())
    })()
    .and_then(|()| empty_active_log(&paths, file, empty.as_deref()));
    let old = match emptied {
        Ok(old) => old,
        Err(e) => {
            if let Some(tmp) = empty {
                let _ = fs::remove_file(tmp);
            }
            return Err(e);
        }
    };
    history.rotated(archive_len, index);

    snapshot::shift_after_rotation(&paths.views, intent.log_len, archive_len)?;
    durable::remove_file(&paths.dir.join(INTENT_FILE))?;
    // Closing the old file frees its blocks: another thread does it, once
    // the last sync of the rotation is done (it would otherwise wait for
    // that work).
    if let Some(old) = old {
        let closer = thread::Builder::new().name("eventfold-close".to_owned());
        if let Err(e) = closer.spawn(move || drop(old)) {
            ::log::debug!("eventfold: closing the rotated log in this thread: {e}");
        }
    }
    Ok(())
}

/// Step 5: empties the active log, open as `file`, durably, and makes
/// `file` the empty log. Returns the old file when it was replaced, for
/// the caller to close.
///
/// The empty file that [`prepare`] made beside it (`app.jsonl.tmp`,
/// synced) is renamed over it, and the directory synced: truncating the
/// file would free its blocks and drop its cached pages during the pause,
/// a noticeable part of it for a large log, where the rename defers that
/// work to the closing of the old file. A reader that has the old file
/// open goes on reading it as it was. The new file has the old one's
/// permissions. When `app.jsonl` is a symbolic link (the user's choice, to
/// keep it elsewhere), has other hard links, or has another owner or group
/// than the files this process creates, there is no such file (`empty` is
/// `None`) and the file is truncated instead, so that all of that stays.
fn empty_active_log(paths: &Paths, file: &mut File, empty: Option<&Path>) -> Result<Option<File>> {
    let path = &paths.log;
    let Some(tmp) = empty else {
        file.set_len(0).at(path)?;
        file.sync_all().at(path)?;
        return Ok(None);
    };
    durable::install_empty(tmp, path)?;
    Ok(Some(std::mem::replace(file, durable::open_append(path)?)))
}

/// Writes the first `len` bytes of the active log to the end of the
/// archive as zstd frames of about [`FRAME_CONTENT`] bytes of content
/// each, every one ending at the end of a line; returns what `preparing`
/// gave, with the archive, and the frames, in order. Not synced.
///
/// Nothing is written before `preparing` is done: the frames compressed
/// until then are kept in memory.
fn write_frames<'s>(
    paths: &Paths,
    len: u64,
    preparing: Task<'s, Result<Ready>>,
) -> Result<(Ready, Vec<FrameTail>)> {
    let mut compressor = Compressor::new(paths, len)?;
    let mut archive = Archive::Preparing(preparing, Vec::new());
    let mut frames = Vec::new();
    while let Some(frame) = compressor.next_frame()? {
        archive = archive.write(paths, &mut compressor.out)?;
        frames.push(frame);
    }
    Ok((archive.ready(paths)?, frames))
}

/// How many frames a rotation keeps in memory at most while step 2 is
/// under way (each holds about [`FRAME_CONTENT`] bytes before compression):
/// on a disk slow enough to take longer than that for one record and a
/// directory sync, compression waits rather than fill memory.
const KEPT_FRAMES: usize = 32;

/// The archive a rotation writes its frames to, while step 2 is under way
/// and once it is done.
enum Archive<'s> {
    /// Step 2 is under way; the frames compressed meanwhile, in order.
    Preparing(Task<'s, Result<Ready>>, Vec<Vec<u8>>),
    Ready(Ready),
}

impl Archive<'_> {
    /// Writes `frame` to the archive once it is ready, after the frames
    /// kept before it; keeps it (taking it) until then.
    fn write(self, paths: &Paths, frame: &mut Vec<u8>) -> Result<Self> {
        match self {
            Archive::Preparing(preparing, mut kept)
                if !preparing.is_finished() && kept.len() < KEPT_FRAMES =>
            {
                kept.push(std::mem::take(frame));
                Ok(Archive::Preparing(preparing, kept))
            }
            Archive::Preparing(preparing, kept) => {
                let ready = Archive::Preparing(preparing, kept).ready(paths)?;
                (&ready.archive).write_all(frame).at(&paths.archive)?;
                Ok(Archive::Ready(ready))
            }
            Archive::Ready(ready) => {
                (&ready.archive).write_all(frame).at(&paths.archive)?;
                Ok(Archive::Ready(ready))
            }
        }
    }

    /// Waits for step 2, then writes the frames kept meanwhile.
    fn ready(self, paths: &Paths) -> Result<Ready> {
        match self {
            Archive::Preparing(preparing, kept) => {
                let ready = preparing.result()?;
                for frame in kept {
                    (&ready.archive).write_all(&frame).at(&paths.archive)?;
                }
                Ok(ready)
            }
            Archive::Ready(ready) => Ok(ready),
        }
    }
}

/// The active log's first `len` bytes as zstd frames, one at a time.
///
/// Each frame's content is read whole into memory and compressed in one
/// call (one compression context serves every frame).
struct Compressor<'a> {
    paths: &'a Paths,
    cctx: zstd::zstd_safe::CCtx<'static>,
    source: io::Take<File>,
    len: u64,
    /// Where the content in `buf` starts in the file.
    start: u64,
    /// The content from `start` on that was read.
    buf: Vec<u8>,
    /// How far a newline was looked for in `buf`.
    searched: usize,
    /// The last frame compressed.
    out: Vec<u8>,
}

impl<'a> Compressor<'a> {
    fn new(paths: &'a Paths, len: u64) -> Result<Compressor<'a>> {
        use zstd::zstd_safe::{CCtx, CParameter};

        let mut cctx = CCtx::create();
        for parameter in [
            CParameter::CompressionLevel(LEVEL),
            CParameter::ChecksumFlag(true),
            CParameter::ContentSizeFlag(true),
        ] {
            cctx.set_parameter(parameter)
                .map_err(|code| zstd_error(paths, code))?;
        }
        Ok(Compressor {
            paths,
            cctx,
            source: File::open(&paths.log).at(&paths.log)?.take(len),
            len,
            start: 0,
            buf: Vec::with_capacity(FRAME_CONTENT as usize + READ_BUF),
            searched: 0,
            out: Vec::new(),
        })
    }

    /// Compresses the next frame into `out`; `None` at the end.
    fn next_frame(&mut self) -> Result<Option<FrameTail>> {
        if self.start >= self.len {
            return Ok(None);
        }
        let frame_len = self.next_frame_len()?;
        let content = &self.buf[..frame_len];
        self.out.clear();
        self.out.reserve(zstd::zstd_safe::compress_bound(frame_len));
        self.cctx
            .compress2(&mut self.out, content)
            .map_err(|code| zstd_error(self.paths, code))?;
        let frame = FrameTail {
            compressed: self.out.len() as u64,
            decoded: frame_len as u64,
            lines: count_lines(content),
            last: content.last().copied(),
            complete: true,
        };
        self.buf.drain(..frame_len);
        self.searched = 0;
        self.start += frame_len as u64;
        Ok(Some(frame))
    }

    /// Reads until `buf` holds the next frame's content, and returns its
    /// length: [`FRAME_CONTENT`] bytes, on to the end of the line they end
    /// in, or the rest of the `len` bytes.
    fn next_frame_len(&mut self) -> Result<usize> {
        let path = &self.paths.log;
        loop {
            let want = FRAME_CONTENT.min(self.len - self.start) as usize;
            if self.buf.len() >= want {
                if self.start + want as u64 == self.len {
                    return Ok(want);
                }
                let from = self.searched.max(want - 1);
                if let Some(i) = self.buf[from..].iter().position(|&b| b == b'\n') {
                    return Ok(from + i + 1);
                }
                self.searched = self.buf.len();
            }
            let filled = self.buf.len();
            // Into the buffer's spare capacity, which is not zeroed first.
            let n = (&mut self.source)
                .take(READ_BUF as u64)
                .read_to_end(&mut self.buf)
                .at(path)?;
            if n == 0 {
                return Err(Error::corrupt(
                    path,
                    self.start + filled as u64,
                    format!(
                        "the file is shorter than the {} bytes it held at rotation",
                        self.len
                    ),
                ));
            }
        }
    }
}

/// An error of zstd while writing the archive.
fn zstd_error(paths: &Paths, code: usize) -> Error {
    Error::io(
        &paths.archive,
        io::Error::other(format!("zstd: {}", zstd::zstd_safe::get_error_name(code))),
    )
}

/// The newlines in `bytes`. Counted in a 32-bit sum, which compilers turn
/// into vector code (three times the speed of counting in a `usize`); a
/// frame's content is far below 4 GiB.
fn count_lines(bytes: &[u8]) -> u64 {
    bytes
        .chunks(u32::MAX as usize)
        .map(|chunk| chunk.iter().fold(0_u32, |n, &b| n + u32::from(b == b'\n')))
        .map(u64::from)
        .sum()
}

/// Before a rotation: every line of the active log must be a valid event,
/// numbered in order, so that no damage moves into the compressed
/// archive, where it could no longer be repaired by hand. Lines this log
/// wrote itself, or already read in full (the first `checked_len` bytes),
/// are not read again.
fn check_active_log(history: &History, checked_len: &mut u64) -> Result<()> {
    if *checked_len >= history.len {
        return Ok(());
    }
    let path = &history.paths.log;
    let seq = match *checked_len {
        0 => history.base_seq(),
        at => history.seq_at(at)?,
    };
    // Lines of the shape eventfold writes are checked quickly; the full
    // check reads from the first line that is not (if any).
    let mut file = File::open(path).at(path)?;
    file.seek(io::SeekFrom::Start(*checked_len)).at(path)?;
    let unchecked = history.len - *checked_len;
    let (quick, seq) =
        canonical::check_lines(&mut file.take(unchecked), unchecked, seq).at(path)?;
    *checked_len += quick;
    let mut next = Some(seq);
    if *checked_len < history.len {
        let mut lines = history.active_lines(*checked_len, next)?;
        while let Some(end) = lines.next_valid()? {
            *checked_len = end;
        }
        next = lines.next_seq();
    }
    match next {
        Some(next) if next != history.next_seq => Err(Error::corrupt(
            path,
            history.len,
            format!(
                "the file ends with event {} of the history, but this log counted {}: \
                 another program changed it",
                next.wrapping_sub(1),
                history.next_seq.wrapping_sub(1)
            ),
        )),
        _ => Ok(()),
    }
}

/// The active log must still have exactly the length this log wrote:
/// anything else means another program changed it, and truncating it
/// would destroy what it added.
fn check_unchanged_len(history: &History, file: &File) -> Result<()> {
    let path = &history.paths.log;
    let actual = file.metadata().at(path)?.len();
    if actual == history.len {
        return Ok(());
    }
    Err(Error::corrupt(
        path,
        actual.min(history.len),
        format!(
            "the file is {actual} bytes long, but this log wrote {}: another program changed it",
            history.len
        ),
    ))
}

/// A rotation under way (or interrupted), as its intent record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    /// Length of the archive before the rotation.
    pub(crate) archive_len: u64,
    /// Length of the active log being rotated.
    pub(crate) log_len: u64,
}

/// Reads the intent record of a rotation under way, writing nothing;
/// `None` when there is none.
///
/// # Errors
///
/// [`Error::Corrupt`] naming `rotation.json` if it does not parse or fails
/// its checksum.
pub(crate) fn pending(paths: &Paths) -> Result<Option<Pending>> {
    Ok(read_intent(paths)?.map(|intent| Pending {
        archive_len: intent.archive_len,
        log_len: intent.log_len,
    }))
}

/// The frames a rotation of `pending` wrote past its recorded archive
/// length, once it emptied the active log: they must be complete, and
/// hold exactly the rotated bytes (see [`recover`]). Writes nothing.
///
/// # Errors
///
/// [`Error::Corrupt`] as [`recover`] gives it before a roll-forward.
pub(crate) fn rotated_frames(paths: &Paths, pending: Pending) -> Result<Vec<FrameTail>> {
    let intent = Intent::new(pending.archive_len, pending.log_len);
    check_complete_frames(&paths.archive, &paths.dir.join(INTENT_FILE), &intent)
}

/// The intent record, checked; `None` when there is none.
fn read_intent(paths: &Paths) -> Result<Option<Intent>> {
    let intent_path = paths.dir.join(INTENT_FILE);
    let Some(record) = durable::read_regular(&intent_path, durable::MAX_RECORD)? else {
        return Ok(None);
    };
    let intent: Intent =
        serde_json::from_slice(&record).map_err(|e| {
            match snapshot::json_error(&intent_path, &record, &e) {
                Error::Corrupt {
                    path,
                    offset,
                    detail,
                } => Error::Corrupt {
                    path,
                    offset,
                    detail: format!("{detail}: {DAMAGED_INTENT}"),
                },
                other => other,
            }
        })?;
    if !intent.intact() {
        return Err(Error::corrupt(
            &intent_path,
            0,
            format!("the record does not match its checksum: {DAMAGED_INTENT}"),
        ));
    }
    Ok(Some(intent))
}

/// What a damaged intent record means, and what to do.
const DAMAGED_INTENT: &str = "a rotation under way wrote it, and recovery needs it to finish \
     or undo that rotation: nothing was changed. Restore it from a backup; if app.jsonl is \
     empty, the rotation had moved it into the archive and deleting the record completes it \
     (otherwise copy the directory aside first)";

/// Resolves a rotation that a crash interrupted, if its intent record is
/// there; see the module docs. Runs on open, before anything else reads
/// the log or the archive.
///
/// Nothing is cut that is not proven to be the interrupted rotation's own
/// frames: before a roll-back, the archive bytes past the recorded length
/// must decode as zstd frames (the last possibly cut short) whose content
/// is the start of `app.jsonl`; before a roll-forward, they must be
/// complete frames of the recorded length in all whose checksums hold. Anything
/// else is [`Error::Corrupt`] and no file is changed.
pub(crate) fn recover(paths: &Paths) -> Result<()> {
    let (dir, log_path, views_dir) = (&paths.dir, &paths.log, &paths.views);
    let intent_path = dir.join(INTENT_FILE);
    let Some(intent) = read_intent(paths)? else {
        return Ok(());
    };
    let archive_path = paths.archive.clone();
    let log_len = durable::file_len(log_path)?;
    let archive_len = durable::file_len(&archive_path)?;

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
            // No archive before: no index either.
            durable::remove_file(&archive_path)?;
            durable::remove_file(&paths.index)?;
        } else if archive_len > intent.archive_len {
            let archive = OpenOptions::new()
                .write(true)
                .open(&archive_path)
                .at(&archive_path)?;
            archive.set_len(intent.archive_len).at(&archive_path)?;
            archive.sync_all().at(&archive_path)?;
        }
        let (mut index, _) = Index::load(&paths.index, Some(intent.archive_len))?;
        index.truncate(&paths.index, index.frames.len())?;
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
        let frames = check_complete_frames(&archive_path, &intent_path, &intent)?;
        complete_index(paths, &intent, &frames)?;
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

/// The index after a roll-forward: it must end with the lines of the
/// `frames` that the interrupted rotation appended at the recorded archive
/// length, which step 4 may not have written, or only in part. When the
/// index does not reach them (frames before them are not indexed yet), it
/// is left for opening the log to index them all.
fn complete_index(paths: &Paths, intent: &Intent, frames: &[FrameTail]) -> Result<()> {
    // Whatever step 4 wrote is cut, and the lines written again whole.
    let (mut index, _) = Index::load(&paths.index, Some(intent.archive_len))?;
    index.truncate(&paths.index, index.frames.len())?;
    if index.archive_end() != intent.archive_len {
        return Ok(());
    }
    let entries = index.next_frames(intent.archive_len, frames);
    index.append(&paths.index, &entries)
}

/// Before a roll-back: the archive bytes from `start` on must be the
/// interrupted rotation's frames, possibly cut short: zstd frames whose
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
    frames::decode(
        archive_path,
        (start, end),
        &recovery_context(start),
        |at, chunk| {
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
        },
    )?;
    Ok(())
}

/// Before a roll-forward: the archive bytes from the recorded length on
/// must be complete frames, their checksums verified, holding exactly the
/// rotated log's length. Otherwise the emptied active log's events are
/// not all in the archive. Returns the frames.
fn check_complete_frames(
    archive_path: &Path,
    intent_path: &Path,
    intent: &Intent,
) -> Result<Vec<FrameTail>> {
    let start = intent.archive_len;
    let end = durable::file_len(archive_path)?;
    let frames = frames::decode(
        archive_path,
        (start, end),
        &recovery_context(start),
        |_, _| Ok(()),
    )?;
    let decoded: u64 = frames.iter().map(|f| f.decoded).sum();
    let complete = frames.iter().all(|f| f.complete);
    if complete && decoded == intent.log_len {
        return Ok(frames);
    }
    let found = format!(
        "{} frames decoding to {decoded} bytes{}",
        frames.len(),
        if complete { "" } else { ", the last cut short" }
    );
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

/// The end of a message about the interrupted rotation's frame at `start`.
fn recovery_context(start: u64) -> String {
    format!(
        " ({INTENT_FILE} says an interrupted rotation's frames start at byte {start}); nothing \
         was changed"
    )
}

/// Where, past `start`, the archive's unsynced bytes begin to show pages
/// that a power cut lost: the first place from which the rest of a page
/// (from `start` itself, or from a page boundary) to the end of that page
/// or of the file is all zeros. The file's length if there is none.
fn lost_pages_start(archive_path: &Path, start: u64) -> Result<u64> {
    const PAGE: u64 = 4096;
    let len = durable::file_len(archive_path)?;
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
