//! The end of the active log: repairing what a crash or a failed write
//! left after the last acknowledged line, keeping whatever is cut in
//! `app.jsonl.torn`.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;

use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::event::{Event, MAX_LINE};
use crate::lines::{self, line_start_before};

/// What [`repair`] does to the end of the active log.
enum Repair {
    /// The log ends with a newline: nothing.
    Whole,
    /// The last line, at `line`, is a complete, valid event without its
    /// newline: the newline is added.
    AddNewline { line: u64 },
    /// The log is cut at `keep`, for the reason `what`.
    Cut { keep: u64, what: &'static str },
}

/// Decides how [`repair`] treats the end of the log of `len` bytes (open
/// as `reader`), writing nothing.
fn plan(reader: &mut File, len: u64) -> io::Result<Repair> {
    if let Some(hole) = unsynced_hole(reader, len)? {
        let what = "an unsynced write that a power cut left with zeroed pages";
        return Ok(Repair::Cut { keep: hole, what });
    }
    let keep = line_start_before(reader, len)?;
    if keep == len {
        return Ok(Repair::Whole);
    }
    if len - keep <= MAX_LINE {
        let tail = lines::read_range(reader, keep, len)?;
        if serde_json::from_slice::<Event>(&tail).is_ok() {
            return Ok(Repair::AddNewline { line: keep });
        }
    }
    let what = "an incomplete last line";
    Ok(Repair::Cut { keep, what })
}

/// What the next writer to open the log does with its bytes past the
/// first `acked` (see [`repair`]), as [`next_open`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NextOpen {
    /// Where the lines it keeps end: `acked` if it keeps none past them.
    pub(crate) lines_end: u64,
    /// Where the last of those lines starts, if it lacks its newline,
    /// which the writer adds (the line is a whole event).
    pub(crate) completes: Option<u64>,
    /// The bytes it moves into `app.jsonl.torn`: from where to the end,
    /// and what they are.
    pub(crate) cut: Option<(u64, &'static str)>,
}

impl NextOpen {
    /// The log's length once the writer has repaired it.
    pub(crate) fn repaired_len(&self) -> u64 {
        self.lines_end + u64::from(self.completes.is_some())
    }

    /// Where the lines that end in a newline end, before the repair.
    pub(crate) fn whole_end(&self) -> u64 {
        self.completes.unwrap_or(self.lines_end)
    }
}

/// What [`repair`] will do to the active log at `log_path`, `len` bytes
/// long, of which a writer acknowledged `acked`, writing nothing.
pub(crate) fn next_open(log_path: &Path, acked: u64, len: u64) -> Result<NextOpen> {
    let mut reader = File::open(log_path).at(log_path)?;
    let (lines_end, completes, cut) = match plan(&mut reader, len).at(log_path)? {
        Repair::Whole => (len, None, None),
        Repair::AddNewline { line } => (len, Some(line), None),
        Repair::Cut { keep, what } => {
            let keep = keep.max(acked);
            (keep, None, Some((keep, what)))
        }
    };
    Ok(NextOpen {
        lines_end,
        completes,
        cut,
    })
}

/// Repairs the end of the active log after a crash and syncs it, so that
/// every byte it holds from now on is durable. Returns its length.
///
/// The bytes after the last newline are a torn line: an append that a
/// crash cut short, never acknowledged. If they are a complete, valid
/// event that only lacks its newline (a crash between the two, or a
/// file edited by hand), the newline is added and the event kept.
/// Otherwise they are cut off, after being appended, as one line, to
/// `torn_path` and synced there, so that nothing is destroyed. A symbolic
/// link at `torn_path` is removed, not followed (see
/// [`durable::open_append_own`]); anything else that is not a regular
/// file there is an error, and the log is left as it was.
pub(crate) fn repair(file: &File, log_path: &Path, torn_path: &Path) -> Result<u64> {
    let len = file.metadata().at(log_path)?.len();
    let mut reader = File::open(log_path).at(log_path)?;
    match plan(&mut reader, len).at(log_path)? {
        Repair::Whole => {
            file.sync_data().at(log_path)?;
            Ok(len)
        }
        Repair::AddNewline { line } => {
            (&*file).write_all(b"\n").at(log_path)?;
            file.sync_data().at(log_path)?;
            ::log::warn!(
                "eventfold: the last event of {} (offset {line}) lacked its newline; added it",
                log_path.display()
            );
            Ok(len + 1)
        }
        Repair::Cut { keep, what } => {
            cut_tail(file, &mut reader, (log_path, torn_path), keep, len, what)
        }
    }
}

/// Where [`repair`] would cut the active log of `len` bytes (open as
/// `reader`), writing nothing: after its last newline, or at the start of
/// an unsynced write that a power cut left with zeroed pages. A reader
/// with no writer to repair the log reads no further.
pub(crate) fn complete_len(reader: &mut File, len: u64) -> io::Result<u64> {
    match unsynced_hole(reader, len)? {
        Some(hole) => Ok(hole),
        None => line_start_before(reader, len),
    }
}

/// Cuts `app.jsonl` (open as `file`, and as `reader`) at `keep`, after
/// appending the bytes from there to `len`, as one line, to the torn-tail
/// file and syncing them there, so that nothing is destroyed. Returns
/// `keep`.
fn cut_tail(
    file: &File,
    reader: &mut File,
    (log_path, torn_path): (&Path, &Path),
    keep: u64,
    len: u64,
    what: &str,
) -> Result<u64> {
    let tail_len = len - keep;
    let mut side = durable::open_append_own(torn_path)?;
    reader.seek(io::SeekFrom::Start(keep)).at(log_path)?;
    io::copy(&mut reader.take(tail_len), &mut side).at(torn_path)?;
    side.write_all(b"\n").at(torn_path)?;
    side.sync_data().at(torn_path)?;
    file.set_len(keep).at(log_path)?;
    file.sync_all().at(log_path)?;
    ::log::warn!(
        "eventfold: cut {what} ({tail_len} bytes at offset {keep}) from {}; its bytes are kept in {}",
        log_path.display(),
        torn_path.display()
    );
    Ok(keep)
}

/// The page size that file systems write back in: a page of a write that
/// was not synced before a power cut can come back as zeros, whatever
/// happened to the pages around it.
const PAGE: u64 = 4096;
/// The end of the log that every open looks at for zeros.
const HOLE_PROBE: u64 = 64 * 1024;
/// How far back from the end a hole is looked for once the probe finds
/// zeros: the largest unsynced write that is repaired this way.
const HOLE_WINDOW: u64 = 64 * 1024 * 1024;

/// Finds where the unsynced end of the log starts when a power cut left
/// a hole in it: the start of the line in which the hole begins.
///
/// The log's lines never hold a zero byte (JSON escapes control
/// characters), and every byte up to the last successful `fdatasync` is
/// durable, so only the write in flight at the cut (one append or batch,
/// never acknowledged) can come back with some of its pages zeroed while
/// later pages, and the file's new length, reached the disk. Such a hole
/// is a run of zeros that ends at a page boundary or at the end of the
/// file, and starts at a page boundary or just after a newline. When the
/// last [`HOLE_PROBE`] bytes hold a zero, the last [`HOLE_WINDOW`] bytes
/// are searched; if every run of zeros there has that shape, the earliest
/// one marks the start of the unsynced write. Zeros of any other shape are
/// damage of another kind (`None`): the reader reports them, with their
/// offset, and nothing is cut.
fn unsynced_hole(reader: &mut File, len: u64) -> io::Result<Option<u64>> {
    let probe_start = len.saturating_sub(HOLE_PROBE);
    let probe = lines::read_range(reader, probe_start, len)?;
    if !probe.contains(&0) {
        return Ok(None);
    }
    let start = len.saturating_sub(HOLE_WINDOW) / PAGE * PAGE;
    let bytes = if start == probe_start {
        probe
    } else {
        lines::read_range(reader, start, len)?
    };
    let mut earliest = None;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != 0 {
            i += 1;
            continue;
        }
        let run = i;
        while i < bytes.len() && bytes[i] == 0 {
            i += 1;
        }
        let (from, to) = (start + run as u64, start + i as u64);
        let starts_clean = from % PAGE == 0 || (run > 0 && bytes[run - 1] == b'\n');
        let ends_clean = to % PAGE == 0 || to == len;
        if !(starts_clean && ends_clean) {
            return Ok(None);
        }
        earliest.get_or_insert(from);
    }
    match earliest {
        Some(from) => line_start_before(reader, from).map(Some),
        None => Ok(None),
    }
}

/// Cuts `app.jsonl` back to its acknowledged length `len`, keeping what
/// is cut in `torn_path`: the bytes of a failed append that could not be
/// taken back when it failed. A file shorter than `len` lost acknowledged
/// events, which is reported, never hidden.
pub(crate) fn cut_unacknowledged(log_path: &Path, len: u64, torn_path: &Path) -> Result<()> {
    let actual = std::fs::metadata(log_path).at(log_path)?.len();
    if actual < len {
        return Err(Error::corrupt(
            log_path,
            actual,
            format!(
                "the file ends here, but {len} bytes of it were acknowledged: another \
                 program cut it (restore it from a backup)"
            ),
        ));
    }
    if actual == len {
        return Ok(());
    }
    let mut source = File::open(log_path).at(log_path)?;
    source.seek(io::SeekFrom::Start(len)).at(log_path)?;
    let mut side = durable::open_append_own(torn_path)?;
    io::copy(&mut (&mut source).take(actual - len), &mut side).at(torn_path)?;
    side.write_all(b"\n").at(torn_path)?;
    side.sync_data().at(torn_path)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(log_path)
        .at(log_path)?;
    file.set_len(len).at(log_path)?;
    file.sync_all().at(log_path)?;
    ::log::warn!(
        "eventfold: cut {} bytes that a failed write left after the acknowledged end of {} \
         (offset {len}); they are kept in {}",
        actual - len,
        log_path.display(),
        torn_path.display()
    );
    Ok(())
}
