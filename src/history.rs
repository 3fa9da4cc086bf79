//! The history in a data directory: its files, how much of each is
//! acknowledged, and the positions of its events. Reading by byte offset
//! or by sequence number, and the checks that tie a snapshot to the log,
//! live here; the writer ([`EventLog`](crate::EventLog)) owns a `History`
//! and moves its ends forward, and views read from it.
//!
//! # Positions
//!
//! Every event has a sequence number: its 0-based place in the whole
//! history, the archive's events first. Lines written since sequence
//! numbers exist carry theirs as `"seq"` (the last key of the line); a line
//! written before has none, and its number is its place. Either way, a
//! line's number is one more than the line's before it, which every read
//! checks: a line whose `seq` disagrees is reported as corrupt, since the
//! positions after it would lie.
//!
//! The archive's frames are found through the index
//! ([`index`]), which records each frame's first sequence
//! number. In the active log, an event is found by bisecting on the `seq`
//! of the lines (a few reads of one line each), then reading forward from
//! the nearest line before it: nothing before that line is read. Lines
//! without a `seq` are counted from the last position known before them.
//!
//! On open, the positions are checked against each other: the archive must
//! hold every frame its index records ([`index::check_archive`]), and the
//! first line of the active log, if it carries a `seq`, must be the event
//! that follows the archive's last. Otherwise history was lost or files
//! were mixed up, and opening fails with [`Error::Corrupt`].

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::durable;
use crate::error::{Error, IoContext, Result};
use crate::event::{MAX_LINE, hash_hex, line_hash};
use crate::index::{self, INDEX_FILE, Index};
use crate::lines::{self, ActiveLines, ArchiveLines, Lines, LogFile, READ_BUF, line_start_before};
use crate::publish::{Committed, Outlet};
use crate::upcast::Upcasters;

/// File name of the active log inside the data directory.
pub(crate) const LOG_FILE: &str = "app.jsonl";
/// File name of the archive inside the data directory.
pub(crate) const ARCHIVE_FILE: &str = "archive.jsonl.zst";
/// File that keeps the bytes of torn tails cut from the active log.
pub(crate) const TORN_FILE: &str = "app.jsonl.torn";
/// Name of the snapshot directory inside the data directory.
pub(crate) const VIEWS_DIR: &str = "views";

/// Source of the identities that tell one open log (or reader) from
/// another.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A new identity for an open log or a reader, which views compare to
/// know whether their in-memory position refers to it.
pub(crate) fn new_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// How many bytes of the active log are read forward, line by line, rather
/// than bisected further, when an event is looked up by sequence number.
const SCAN: u64 = 64 * 1024;

/// The files of a data directory.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub(crate) dir: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) archive: PathBuf,
    pub(crate) index: PathBuf,
    pub(crate) views: PathBuf,
    pub(crate) torn: PathBuf,
}

impl Paths {
    pub(crate) fn new(dir: PathBuf) -> Paths {
        Paths {
            log: dir.join(LOG_FILE),
            archive: dir.join(ARCHIVE_FILE),
            index: dir.join(INDEX_FILE),
            views: dir.join(VIEWS_DIR),
            torn: dir.join(TORN_FILE),
            dir,
        }
    }
}

/// The acknowledged history of a data directory, as one open log sees it.
///
/// Public only in name, so that [`Source`] can hand it out: nothing outside
/// the crate can name it, and it has no public methods.
#[derive(Debug)]
pub struct History {
    pub(crate) paths: Paths,
    /// Bytes of `app.jsonl` written and synced: the acknowledged log.
    pub(crate) len: u64,
    /// Bytes of `archive.jsonl.zst`; 0 when there is none.
    pub(crate) archive_len: u64,
    /// The archive's frames.
    pub(crate) index: Index,
    /// The sequence number of the next event appended.
    pub(crate) next_seq: u64,
    /// Distinguishes this open log from any other, so that a view knows
    /// whether its in-memory position refers to this log.
    pub(crate) id: u64,
    /// Set after a failed write or sync: the file that failed.
    pub(crate) poisoned: Option<PathBuf>,
    /// Set for the history a reader observed: nothing may be written,
    /// not even a snapshot.
    pub(crate) read_only: bool,
    /// The writer's: where moving the ends forward is published.
    outlet: Option<Outlet>,
    /// What every event read goes through (see [`Upcasters`]).
    pub(crate) upcasters: Option<Arc<Upcasters>>,
}

/// The history a [`Source`] gives: the writer's own, or what a reader
/// observed just now.
#[derive(Debug)]
pub enum HistoryRef<'a> {
    #[doc(hidden)]
    Borrowed(&'a History),
    #[doc(hidden)]
    Owned(Box<History>),
}

impl std::ops::Deref for HistoryRef<'_> {
    type Target = History;

    fn deref(&self) -> &History {
        match self {
            HistoryRef::Borrowed(history) => history,
            HistoryRef::Owned(history) => history,
        }
    }
}

/// A log that [`View`](crate::View)s can be refreshed from: an open
/// [`EventLog`](crate::EventLog) (or a reference to one).
///
/// Only eventfold's own types implement it: its method hands out the
/// log's files and positions, which nothing else can name.
///
/// # Examples
///
/// ```
/// use eventfold::{Event, EventLog, Source, View};
///
/// fn count(n: u64, _: &Event) -> u64 { n + 1 }
///
/// /// Refreshes a view from any log it is given.
/// fn fresh_count(view: &mut View<u64>, log: &impl Source) -> eventfold::Result<u64> {
///     view.refresh(log).copied()
/// }
///
/// # let dir = tempfile::tempdir()?;
/// let log = EventLog::open(dir.path())?;
/// let mut view = View::new("count", count, dir.path().join("views"))?;
/// assert_eq!(fresh_count(&mut view, &log)?, 0);
/// # Ok::<(), eventfold::Error>(())
/// ```
pub trait Source {
    /// The files, how much of them is acknowledged, and the positions.
    #[doc(hidden)]
    fn history(&self) -> Result<HistoryRef<'_>>;
}

impl<T: Source + ?Sized> Source for &T {
    fn history(&self) -> Result<HistoryRef<'_>> {
        (**self).history()
    }
}

impl<T: Source + ?Sized> Source for &mut T {
    fn history(&self) -> Result<HistoryRef<'_>> {
        (**self).history()
    }
}

/// The `seq` of a stored line, and that it has an event's keys (a line
/// without them is damage, not a line from before sequence numbers).
#[derive(Deserialize)]
struct SeqOnly {
    #[serde(rename = "type")]
    _event_type: IgnoredAny,
    #[serde(rename = "data")]
    _data: IgnoredAny,
    #[serde(rename = "ts")]
    _ts: IgnoredAny,
    #[serde(default)]
    seq: Option<u64>,
}

impl History {
    /// The archive of the files in `paths` and its index, after any
    /// interrupted rotation was recovered: its length, and the index with
    /// the frames it did not cover yet (the index is rewritten with them,
    /// atomically). The index tells how many events the archive holds,
    /// which [`open`](History::open) then checks the active log against.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if the index is damaged or the archive lost
    /// frames that the index records; [`Error::Io`] if a file cannot be
    /// read or the index written.
    pub(crate) fn open_archive(paths: &Paths) -> Result<(u64, Index)> {
        let archive_len = durable::file_len(&paths.archive)?;
        let (mut index, exists) = Index::load(&paths.index, None)?;
        index::check_archive(&paths.archive, archive_len, &index)?;
        if archive_len > index.archive_end() {
            let new = index::catch_up(&paths.archive, archive_len, &index)?;
            for frame in &new {
                check_first_seq(&paths.archive, archive_len, frame)?;
            }
            let mut all = index.frames.clone();
            all.extend_from_slice(&new);
            index.rewrite(&paths.index, all)?;
            ::log::warn!(
                "eventfold: {} {} with {} frames of {} that it did not record",
                if exists { "updated" } else { "created" },
                paths.index.display(),
                new.len(),
                paths.archive.display()
            );
        }
        Ok((archive_len, index))
    }

    /// The history of the files in `paths`, whose archive is `archive`
    /// (from [`open_archive`](History::open_archive)) and whose active log
    /// has `len` acknowledged bytes (its torn tail already repaired).
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if the active log does not follow the archive;
    /// [`Error::Io`] if it cannot be read.
    pub(crate) fn open(paths: Paths, len: u64, archive: (u64, Index), id: u64) -> Result<History> {
        History::with_ends(paths, len, archive, id, false)
    }

    /// The history a reader observed, writing nothing: the active log
    /// acknowledged up to `len`, the archive `archive_len` bytes long with
    /// `index` (in memory) recording its frames.
    ///
    /// # Errors
    ///
    /// As for [`open`](History::open), but for the index, which the caller
    /// read.
    pub(crate) fn observed(
        paths: Paths,
        len: u64,
        (archive_len, index): (u64, Index),
        id: u64,
    ) -> Result<History> {
        History::with_ends(paths, len, (archive_len, index), id, true)
    }

    /// The history of these ends, its next sequence number read from the
    /// active log.
    fn with_ends(
        paths: Paths,
        len: u64,
        (archive_len, index): (u64, Index),
        id: u64,
        read_only: bool,
    ) -> Result<History> {
        let mut history = History {
            paths,
            len,
            archive_len,
            index,
            next_seq: 0,
            id,
            poisoned: None,
            read_only,
            outlet: None,
            upcasters: None,
        };
        history.next_seq = history.find_next_seq()?;
        Ok(history)
    }

    /// Makes this (the writer's) history publish its committed end through
    /// `outlet`, starting now.
    pub(crate) fn attach(&mut self, outlet: Outlet) {
        self.outlet = Some(outlet);
        self.publish();
    }

    /// Takes the outlet back, to attach it to the history that replaces
    /// this one.
    pub(crate) fn detach(&mut self) -> Option<Outlet> {
        self.outlet.take()
    }

    /// Publishes the acknowledged end, if this is the writer's history.
    fn publish(&mut self) {
        let committed = Committed {
            base: self.base_seq(),
            len: self.len,
        };
        let next_seq = self.next_seq;
        if let Some(outlet) = &mut self.outlet {
            outlet.publish(committed, next_seq);
        }
    }

    /// The sequence number of the first event of the active log: the
    /// number of events in the archive.
    pub(crate) fn base_seq(&self) -> u64 {
        self.index.events()
    }

    /// Reads the sequence numbers at both ends of the active log: the first
    /// line's must follow the archive, and the last line's gives the next
    /// one. Lines without a `seq` are counted.
    fn find_next_seq(&self) -> Result<u64> {
        let base = self.base_seq();
        if self.len == 0 {
            return Ok(base);
        }
        let mut file = File::open(&self.paths.log).at(&self.paths.log)?;
        let first = line_at(&mut file, 0, self.len).at(&self.paths.log)?;
        if let Some(seq) = seq_of(&first)
            && seq != base
        {
            let why = if seq > base {
                format!(
                    "the archive holds only {base} events: archived history before it was lost \
                     (restore {ARCHIVE_FILE} and {INDEX_FILE} from a backup)"
                )
            } else {
                format!(
                    "the archive already holds {base} events: this active log is older than \
                     the archive (restore the {} that goes with it)",
                    LOG_FILE
                )
            };
            return Err(Error::corrupt(
                &self.paths.log,
                0,
                format!(
                    "the first event here is event {seq} of the history, but {why}; nothing \
                     was changed"
                ),
            ));
        }
        let path = &self.paths.log;
        let last_start = line_start_before(&mut file, self.len - 1).at(path)?;
        let last = line_at(&mut file, last_start, self.len).at(path)?;
        let seq = match parse_seq(&last) {
            Some(Some(seq)) => seq,
            // Not an event (`echo text >> app.jsonl`): a writer appending
            // after it would bury it under events that every read stops
            // before. A reader reads up to it, and reports it there.
            None if !self.read_only => {
                return Err(self.locate_damage(Error::corrupt(
                    path,
                    last_start,
                    "the last line is not an event: repair or remove it (or restore the file \
                     from a backup) before appending; nothing was changed",
                )));
            }
            _ => return Ok(base + count_lines(&mut file, 0, self.len).at(path)?),
        };
        // The last line's number gives the next one: it must follow the
        // line before it (or the archive), so that one damaged digit
        // cannot misnumber every event appended from now on.
        let (before, why) = if last_start == 0 {
            (base, format!("the archive holds {base} events"))
        } else {
            let prev_start = line_start_before(&mut file, last_start - 1).at(path)?;
            let prev = line_at(&mut file, prev_start, last_start).at(path)?;
            match parse_seq(&prev) {
                Some(Some(prev)) => (
                    prev.saturating_add(1),
                    format!("the line before it says it is event {prev}"),
                ),
                Some(None) => {
                    let place = base + count_lines(&mut file, 0, last_start).at(path)?;
                    (place, format!("it is event {place} by its place"))
                }
                // A damaged line before it: reading reports that line.
                None => (seq, String::new()),
            }
        };
        match seq.checked_add(1) {
            Some(next) if seq == before => Ok(next),
            _ => Err(self.locate_damage(Error::corrupt(
                path,
                last_start,
                format!(
                    "the last line says it is event {seq} of the history, but {why}: one of \
                     them was damaged or changed; repair it (or restore the file from a \
                     backup) before appending, or every new event would get a wrong \
                     position; nothing was changed"
                ),
            ))),
        }
    }

    /// Checks every line of the active log from `offset` on as an event
    /// that follows the one before it: the lines past what a writer
    /// acknowledged, which no writer has read back.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] naming the first line that is not such an event.
    pub(crate) fn check_lines_from(&self, offset: u64) -> Result<()> {
        let path = &self.paths.log;
        // From the start of the line `offset` is in: a repair may have
        // completed a line whose newline was lost.
        let mut file = File::open(path).at(path)?;
        let start = line_start_before(&mut file, offset).at(path)?;
        let seq = self.expected_seq_at(&mut file, start).at(path)?;
        let mut lines = self.active_lines(start, seq)?;
        while lines.next_valid()?.is_some() {}
        Ok(())
    }

    /// The sequence number the line at `start` (a line start) should have:
    /// one more than the line before it says, or its place when that line
    /// has no `seq`; `None` when that line is damaged (reading reports it).
    fn expected_seq_at(&self, file: &mut File, start: u64) -> io::Result<Option<u64>> {
        if start == 0 {
            return Ok(Some(self.base_seq()));
        }
        let prev_start = line_start_before(file, start - 1)?;
        let prev = line_at(file, prev_start, start)?;
        Ok(match parse_seq(&prev) {
            Some(Some(seq)) => seq.checked_add(1),
            Some(None) => Some(self.base_seq() + count_lines(file, 0, start)?),
            None => None,
        })
    }

    /// The first damage a full check of the active log finds (a line that
    /// is not an event, or not numbered by its place), which is where the
    /// numbers at its end went wrong; `otherwise` if it finds none.
    fn locate_damage(&self, otherwise: Error) -> Error {
        let check = self
            .active_lines(0, Some(self.base_seq()))
            .and_then(|mut lines| {
                while lines.next_valid()?.is_some() {}
                Ok(())
            });
        match check {
            Err(e) => e,
            Ok(()) => otherwise,
        }
    }

    /// Lines of the active log from `offset` to the acknowledged end; the
    /// first has sequence number `seq`, when it is known.
    pub(crate) fn active_lines(&self, offset: u64, seq: Option<u64>) -> Result<ActiveLines> {
        let path = &self.paths.log;
        let Some(remaining) = self.len.checked_sub(offset) else {
            return Err(Error::InvalidOffset {
                path: path.clone(),
                offset,
                len: self.len,
            });
        };
        let file = match File::open(path) {
            Ok(mut file) => {
                file.seek(io::SeekFrom::Start(offset)).at(path)?;
                Some(file)
            }
            // Only a reader finds no active log, and then an empty one.
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.len == 0 => None,
            Err(e) => return Err(Error::io(path, e)),
        };
        let reader = BufReader::with_capacity(READ_BUF, LogFile(file).take(remaining));
        Ok(
            Lines::new(reader, path.clone(), offset, Some(self.len), None)
                .with_seq(seq)
                .with_upcasters(self.upcasters.clone()),
        )
    }

    /// Lines of the whole archive, `None` if there is none.
    pub(crate) fn archive_lines(&self) -> Result<Option<ArchiveLines>> {
        match self.index.frames.first() {
            Some(first) => self.archive_lines_from(first.first_seq).map(Some),
            None => Ok(None),
        }
    }

    /// Lines of the archive from the start of the frame that holds event
    /// `seq` (which the archive must hold): the frames before it are not
    /// read.
    fn archive_lines_from(&self, seq: u64) -> Result<ArchiveLines> {
        let path = &self.paths.archive;
        let frame = *self
            .index
            .frame_of(seq)
            .expect("the archive holds the event asked for");
        let mut file = File::open(path).at(path)?;
        file.seek(io::SeekFrom::Start(frame.start)).at(path)?;
        let compressed =
            BufReader::with_capacity(READ_BUF, file.take(self.archive_len - frame.start));
        let decoder = zstd::Decoder::with_buffer(compressed).at(path)?;
        Ok(Lines::new(
            BufReader::with_capacity(READ_BUF, decoder),
            path.clone(),
            frame.content_start,
            None,
            Some(self.archive_len),
        )
        .with_seq(Some(frame.first_seq))
        .with_upcasters(self.upcasters.clone()))
    }

    /// The schema version new events of `event_type` are written with.
    pub(crate) fn version_of(&self, event_type: &str) -> u32 {
        self.upcasters
            .as_ref()
            .map_or(1, |upcasters| upcasters.version_of(event_type))
    }

    /// The lines of the history from event `seq` on: `(archive, active)`,
    /// the archive's `None` when `seq` is in the active log. `seq` may be
    /// the next sequence number (nothing to read).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSeq`] if `seq` is past the next sequence number.
    pub(crate) fn lines_from_seq(&self, seq: u64) -> Result<(Option<ArchiveLines>, ActiveLines)> {
        if seq > self.next_seq {
            return Err(Error::InvalidSeq {
                seq,
                next_seq: self.next_seq,
            });
        }
        let base = self.base_seq();
        if seq >= base {
            let offset = self.offset_of_seq(seq)?;
            return Ok((None, self.active_lines(offset, Some(seq))?));
        }
        let mut archive = self.archive_lines_from(seq)?;
        let skip = seq - archive.next_seq().expect("set from the index");
        archive.skip_lines(skip)?;
        Ok((Some(archive), self.active_lines(0, Some(base))?))
    }

    /// The offset in the active log where event `seq` starts (the log's
    /// length for the next sequence number); `seq` must be in the active
    /// log or next.
    pub(crate) fn offset_of_seq(&self, seq: u64) -> Result<u64> {
        let path = &self.paths.log;
        let (mut lo, mut lo_seq) = (0, self.base_seq());
        let (mut hi, mut hi_seq) = (self.len, self.next_seq);
        if seq == hi_seq {
            return Ok(hi);
        }
        let mut file = File::open(path).at(path)?;
        // Invariants: the line at `lo` is event `lo_seq` <= seq, and the
        // line at `hi` (or the end) is event `hi_seq` > seq.
        while hi - lo > SCAN && seq > lo_seq {
            let mid = lo + (hi - lo) / 2;
            let start = next_line_start(&mut file, mid, hi).at(path)?;
            if start >= hi {
                break;
            }
            let line = line_at(&mut file, start, hi).at(path)?;
            let Some(found) = seq_of(&line) else {
                break; // lines without numbers: count them from `lo`
            };
            if found <= lo_seq || found >= hi_seq {
                return Err(Error::corrupt(
                    path,
                    start,
                    format!(
                        "the line here says it is event {found} of the history, but it lies \
                         between events {lo_seq} and {hi_seq}: the positions in the file are \
                         out of order"
                    ),
                ));
            }
            if found <= seq {
                (lo, lo_seq) = (start, found);
            } else {
                (hi, hi_seq) = (start, found);
            }
        }
        let mut lines = self.active_lines(lo, Some(lo_seq))?;
        lines.skip_lines(seq - lo_seq)?;
        Ok(lines.pos())
    }

    /// The sequence number of the event that starts at `offset` in the
    /// active log (the next sequence number at its end). `offset` must be
    /// the start of a line.
    pub(crate) fn seq_at(&self, offset: u64) -> Result<u64> {
        if offset >= self.len {
            return Ok(self.next_seq);
        }
        let path = &self.paths.log;
        let mut file = File::open(path).at(path)?;
        let line = line_at(&mut file, offset, self.len).at(path)?;
        match seq_of(&line) {
            Some(seq) => Ok(seq),
            None => Ok(self.base_seq() + count_lines(&mut file, 0, offset).at(path)?),
        }
    }

    /// Whether `offset` is 0 or just after a newline, within the log.
    pub(crate) fn is_line_start(&self, offset: u64) -> Result<bool> {
        if offset == 0 {
            return Ok(true);
        }
        if offset > self.len {
            return Ok(false);
        }
        let path = &self.paths.log;
        let mut file = File::open(path).at(path)?;
        let byte = lines::read_range(&mut file, offset - 1, offset).at(path)?;
        Ok(byte == b"\n")
    }

    /// Checks a snapshot's position against the active log: `None` if the
    /// line ending at `offset` has hash `hash` (and, when `seq` is known,
    /// is event `seq - 1`), or else what is wrong.
    pub(crate) fn check_position(
        &self,
        offset: u64,
        hash: &str,
        seq: Option<u64>,
    ) -> Result<Option<String>> {
        let path = &self.paths.log;
        if offset > self.len {
            return Ok(Some(format!(
                "offset {offset} is past the end of {} ({} bytes)",
                path.display(),
                self.len
            )));
        }
        if offset == 0 {
            if !hash.is_empty() {
                return Ok(Some("a hash at offset 0".to_owned()));
            }
            return Ok(seq.filter(|&s| s != self.base_seq()).map(|s| {
                format!(
                    "it says it holds {s} events, but the archive before offset 0 holds {}",
                    self.base_seq()
                )
            }));
        }
        let Some(line) = self.line_before(offset)? else {
            return Ok(Some(format!("offset {offset} is not at the end of a line")));
        };
        let actual = hash_hex(line_hash(&line));
        if actual != hash {
            return Ok(Some(format!(
                "the line before offset {offset} has hash {actual}, the snapshot says {hash:?}"
            )));
        }
        Ok(match (seq, seq_of(&line)) {
            (Some(seq), Some(last)) if seq != last + 1 => Some(format!(
                "it says it holds {seq} events, but the line before offset {offset} is event {last}"
            )),
            _ => None,
        })
    }

    /// The hash of the line that ends just before `offset` (0 < `offset` <=
    /// the log's length), as a snapshot at `offset` records it; `None` if
    /// `offset` is not just after a newline.
    pub(crate) fn hash_before(&self, offset: u64) -> Result<Option<String>> {
        Ok(self
            .line_before(offset)?
            .map(|line| hash_hex(line_hash(&line))))
    }

    /// The line, without its newline, that ends just before `offset`;
    /// `None` if `offset` is not just after a newline.
    fn line_before(&self, offset: u64) -> Result<Option<Vec<u8>>> {
        if !self.is_line_start(offset)? {
            return Ok(None);
        }
        let path = &self.paths.log;
        let mut file = File::open(path).at(path)?;
        let start = line_start_before(&mut file, offset - 1).at(path)?;
        lines::read_range(&mut file, start, offset - 1)
            .at(path)
            .map(Some)
    }

    /// Fails with [`Error::Poisoned`] after an earlier write failure.
    pub(crate) fn check_usable(&self) -> Result<()> {
        match &self.poisoned {
            Some(path) => Err(Error::Poisoned { path: path.clone() }),
            None => Ok(()),
        }
    }

    /// Marks the history poisoned by the failed write `e`: nothing more
    /// may be written until it is recovered.
    pub(crate) fn poison(&mut self, e: &Error) {
        self.poisoned = Some(failed_path(e, &self.paths.log));
    }

    /// Counts `bytes` of `events` complete lines appended and synced.
    pub(crate) fn appended(&mut self, bytes: u64, events: u64) {
        self.len += bytes;
        self.next_seq += events;
        self.publish();
    }

    /// Counts the active log moved into the archive, which is now
    /// `archive_len` bytes long, with `index` recording its frames.
    pub(crate) fn rotated(&mut self, archive_len: u64, index: Index) {
        self.len = 0;
        self.archive_len = archive_len;
        self.index = index;
        self.publish();
    }

    /// Whether an earlier write failed, so that nothing may be written.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }
}

/// The file named by a failure, for the poison record.
fn failed_path(e: &Error, default: &Path) -> PathBuf {
    match e {
        Error::Io {
            path: Some(path), ..
        }
        | Error::Corrupt { path, .. } => path.clone(),
        _ => default.to_path_buf(),
    }
}

/// Checks that the first line of `frame`, which the archive index is about
/// to record, is the event the index says it is, when the line says.
fn check_first_seq(archive_path: &Path, archive_len: u64, frame: &index::FrameEntry) -> Result<()> {
    let mut file = File::open(archive_path).at(archive_path)?;
    file.seek(io::SeekFrom::Start(frame.start))
        .at(archive_path)?;
    let compressed = BufReader::new(file.take(frame.len));
    let decoder = zstd::Decoder::with_buffer(compressed).at(archive_path)?;
    let mut lines = Lines::new(
        BufReader::new(decoder),
        archive_path.to_path_buf(),
        frame.content_start,
        None,
        Some(archive_len),
    )
    .with_seq(Some(frame.first_seq));
    lines.next_valid().map(drop)
}

/// The `seq` of a stored line, `None` if it has none or does not parse
/// (a damaged line is reported by whatever reads it as an event).
fn seq_of(line: &[u8]) -> Option<u64> {
    parse_seq(line).flatten()
}

/// The `seq` of a stored line: `None` if the line does not parse,
/// `Some(None)` if it has no `seq` (written before sequence numbers).
fn parse_seq(line: &[u8]) -> Option<Option<u64>> {
    serde_json::from_slice::<SeqOnly>(line).ok().map(|l| l.seq)
}

/// The line that starts at `start`, without its newline, reading no
/// further than `end` (nor more than the longest line).
fn line_at(file: &mut File, start: u64, end: u64) -> io::Result<Vec<u8>> {
    const CHUNK: usize = 4096;
    file.seek(io::SeekFrom::Start(start))?;
    let mut line = Vec::new();
    let mut chunk = [0; CHUNK];
    let mut at = start;
    while at < end && (line.len() as u64) <= MAX_LINE {
        let want = ((end - at) as usize).min(CHUNK);
        let n = file.read(&mut chunk[..want])?;
        if n == 0 {
            break;
        }
        if let Some(i) = chunk[..n].iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&chunk[..i]);
            return Ok(line);
        }
        line.extend_from_slice(&chunk[..n]);
        at += n as u64;
    }
    Ok(line)
}

/// The first line start at or after `at` (`at` itself if it follows a
/// newline), or `end` if there is none before it.
fn next_line_start(file: &mut File, at: u64, end: u64) -> io::Result<u64> {
    if at == 0 {
        return Ok(0);
    }
    let line = line_at(file, at - 1, end)?;
    Ok((at + line.len() as u64).min(end))
}

/// The number of newlines in `[start, end)` of `file`.
fn count_lines(file: &mut File, start: u64, end: u64) -> io::Result<u64> {
    file.seek(io::SeekFrom::Start(start))?;
    let mut reader = file.take(end - start);
    let mut buf = vec![0; READ_BUF];
    let mut count = 0;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(count);
        }
        count += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}
