//! Reading events back: line splitting, parsing, hashing, and the public
//! iterators over the active log and the full history.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Take};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::canonical;
use crate::error::{Error, Result, shorten};
use crate::event::{Event, MAX_LINE, StoredLine, hash_hex, line_hash};
use crate::frames;
use crate::upcast::Upcasters;

/// Capacity of the read buffers: large enough that a refresh over a big
/// log makes few system calls.
pub(crate) const READ_BUF: usize = 64 * 1024;

/// One parsed line.
pub(crate) struct LineEvent {
    pub(crate) event: Event,
    /// Its sequence number, when known: from its `seq` field, or counted
    /// from a position whose number was known.
    pub(crate) seq: Option<u64>,
    /// Offset just after the line's newline.
    pub(crate) end: u64,
    /// [`line_hash`] of the line.
    pub(crate) hash: u64,
    /// The line itself, without its newline, when the reader keeps lines
    /// ([`Lines::keep_lines`]).
    pub(crate) line: Option<String>,
}

/// Why [`Lines::next_raw`] could not use a line.
pub(crate) enum LineFailure {
    /// What is wrong with the line, for an error naming it.
    Detail(String),
    /// An error already made (its numbering is wrong).
    Error(Error),
}

/// Where a line decoded by [`Lines::next_raw`] was.
pub(crate) struct LineInfo {
    /// Its sequence number, when known.
    pub(crate) seq: Option<u64>,
    /// Offset just after the line's newline.
    pub(crate) end: u64,
    /// [`line_hash`] of the line.
    pub(crate) hash: u64,
}

/// Splits a stream of JSON Lines into events, keeping track of byte
/// positions so that errors can say where they are.
pub(crate) struct Lines<R> {
    reader: R,
    path: PathBuf,
    /// Position of the next line, in the stream's own bytes.
    pos: u64,
    /// For the active log: where the acknowledged bytes end. Reaching the
    /// end of the file before it means the file shrank under us.
    end: Option<u64>,
    /// For the archive: its length in the file. Positions then count
    /// bytes of the decompressed archive, and errors name the frame.
    archive_len: Option<u64>,
    /// The sequence number of the next line, when known. A line's own
    /// `seq` field must agree with it; a line without one (written before
    /// sequence numbers existed) gets it.
    seq: Option<u64>,
    buf: Vec<u8>,
    /// Whether [`next_event`](Self::next_event) returns each line's text.
    keep_lines: bool,
    /// Applied to every event read, when set.
    upcasters: Option<Arc<Upcasters>>,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(
        reader: R,
        path: PathBuf,
        pos: u64,
        end: Option<u64>,
        archive_len: Option<u64>,
    ) -> Self {
        Lines {
            reader,
            path,
            pos,
            end,
            archive_len,
            seq: None,
            buf: Vec::new(),
            keep_lines: false,
            upcasters: None,
        }
    }

    /// Makes every event read go through `upcasters` (see
    /// [`Upcasters`]); `None` leaves them as stored.
    pub(crate) fn with_upcasters(mut self, upcasters: Option<Arc<Upcasters>>) -> Self {
        self.upcasters = upcasters.filter(|u| !u.is_empty());
        self
    }

    /// Makes [`next_event`](Self::next_event) return each line's text too.
    pub(crate) fn keep_lines(&mut self) {
        self.keep_lines = true;
    }

    /// Sets the sequence number of the next line.
    pub(crate) fn with_seq(mut self, seq: Option<u64>) -> Self {
        self.seq = seq;
        self
    }

    /// The sequence number of the next line, when known.
    pub(crate) fn next_seq(&self) -> Option<u64> {
        self.seq
    }

    /// Where the next line starts, in the stream's own bytes.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// The next event, or `None` at the end of the stream.
    pub(crate) fn next_event(&mut self) -> Result<Option<LineEvent>> {
        let Some(start) = self.next_line()? else {
            return Ok(None);
        };
        let line = &self.buf[..self.buf.len() - 1];
        match serde_json::from_slice::<StoredLine>(line) {
            Ok(stored) => {
                let hash = line_hash(line);
                // A line that parsed as JSON is UTF-8: JSON outside strings
                // is ASCII, and serde_json checks the strings.
                let text = self
                    .keep_lines
                    .then(|| String::from_utf8_lossy(line).into_owned());
                let seq = self.take_seq(start, stored.seq)?;
                let version = stored.v.unwrap_or(1);
                let mut event = stored.into_event();
                if let Some(upcasters) = &self.upcasters
                    && upcasters.applies(&event.event_type, version)
                {
                    event = upcasters.apply(event, version);
                }
                Ok(Some(LineEvent {
                    event,
                    seq,
                    end: self.pos,
                    hash,
                    line: text,
                }))
            }
            Err(e) => {
                Err(self.corrupt(start, format!("line is not a valid event: {}", shorten(e))))
            }
        }
    }

    /// The next line, handed to `decode` as it is stored (without its
    /// newline), before anything is built from it: for a typed view, which
    /// decodes the line into its own event type. `decode` must call
    /// `number` with the line's own `seq` field once it has read it, and
    /// before it uses the line: that checks the line's place in the
    /// history, and gives its sequence number when known. A
    /// [`LineFailure::Detail`] it returns is an error of this line, with
    /// this file and the line's offset. `None` at the end.
    pub(crate) fn next_raw<T>(
        &mut self,
        decode: impl FnOnce(
            &[u8],
            &mut dyn FnMut(Option<u64>) -> Result<Option<u64>>,
            Option<&Upcasters>,
        ) -> std::result::Result<T, LineFailure>,
    ) -> Result<Option<(T, LineInfo)>> {
        let Some(start) = self.next_line()? else {
            return Ok(None);
        };
        // The line is taken out of the buffer while it is decoded, so that
        // the numbering can be checked while it is borrowed.
        let buf = std::mem::take(&mut self.buf);
        let upcasters = self.upcasters.take();
        let line = &buf[..buf.len() - 1];
        let hash = line_hash(line);
        let mut numbered = None;
        let result = decode(
            line,
            &mut |found| {
                let seq = self.take_seq(start, found)?;
                numbered = seq;
                Ok(seq)
            },
            upcasters.as_deref(),
        );
        self.buf = buf;
        self.upcasters = upcasters;
        match result {
            Ok(value) => Ok(Some((
                value,
                LineInfo {
                    seq: numbered,
                    end: self.pos,
                    hash,
                },
            ))),
            Err(LineFailure::Detail(detail)) => Err(self.corrupt(start, detail)),
            Err(LineFailure::Error(e)) => Err(e),
        }
    }

    /// At the end of the archive: fails unless the lines read end just
    /// before event `next` (the first of the active log), as the index
    /// says they do.
    pub(crate) fn check_end(&self, next: Option<u64>) -> Result<()> {
        match (self.seq, next) {
            (Some(ended), Some(next)) if ended != next => Err(self.corrupt(
                self.pos.saturating_sub(1),
                format!(
                    "the archive holds {ended} events, but its index says it holds {next}: \
                     one of them was changed (restore it from a backup)"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Moves past the next `n` lines without parsing them (their sequence
    /// numbers are counted, not checked).
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if the stream ends first, as for
    /// [`next_event`](Self::next_event) otherwise.
    pub(crate) fn skip_lines(&mut self, n: u64) -> Result<()> {
        for i in 0..n {
            if self.next_line()?.is_none() {
                let detail = format!(
                    "the history ends {} events before the position asked for, which the \
                     index or the log's length says it holds",
                    n - i
                );
                return Err(self.corrupt(self.pos, detail));
            }
            self.seq = self.seq.map(|s| s.saturating_add(1));
        }
        Ok(())
    }

    /// The sequence number of the line at `start`, whose `seq` field is
    /// `found`: checked against the count, and the count moved past it.
    fn take_seq(&mut self, start: u64, found: Option<u64>) -> Result<Option<u64>> {
        let seq = match (self.seq, found) {
            (Some(expected), Some(found)) if expected != found => {
                return Err(self.corrupt(
                    start,
                    format!(
                        "the line says it is event {found} of the history, but it is event \
                         {expected}: events before it were removed or added, so positions \
                         would lie (restore the file from a backup)"
                    ),
                ));
            }
            (expected, found) => found.or(expected),
        };
        self.seq = match seq {
            Some(seq) => match seq.checked_add(1) {
                Some(next) => Some(next),
                None => {
                    return Err(self.corrupt(
                        start,
                        format!("the line says it is event {seq}, past the last possible one"),
                    ));
                }
            },
            None => None,
        };
        Ok(seq)
    }

    /// Reads the next line, newline included, into `buf` and moves `pos`
    /// past it; returns where it started, or `None` at the end. Fails on
    /// an unterminated, overlong or empty line.
    fn next_line(&mut self) -> Result<Option<u64>> {
        if self.end.is_some_and(|end| self.pos >= end) {
            return Ok(None);
        }
        self.buf.clear();
        let n = match (&mut self.reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut self.buf)
        {
            Ok(n) => n,
            Err(e) => return Err(self.read_error(e)),
        };
        let start = self.pos;
        if n == 0 {
            return match self.end {
                Some(end) => Err(self.corrupt(
                    start,
                    format!("the file ends before the {end} bytes acknowledged to writers"),
                )),
                None => Ok(None),
            };
        }
        if self.buf.last() != Some(&b'\n') {
            let detail = if n as u64 > MAX_LINE {
                format!("a line is longer than the limit of {MAX_LINE} bytes")
            } else {
                "the last line has no newline".to_owned()
            };
            return Err(self.corrupt(start, detail));
        }
        if self.buf[..n - 1].iter().all(u8::is_ascii_whitespace) {
            return Err(self.corrupt(start, "empty line".to_owned()));
        }
        self.pos += n as u64;
        Ok(Some(start))
    }

    /// Checks the next line without building the event: it must be
    /// exactly what [`next_event`](Self::next_event) accepts (a JSON
    /// object with a string `type`, `data` that parses as a
    /// `serde_json::Value`, and an integer `ts`), but nothing is built.
    /// Returns the offset after the line, or `None` at the end of the
    /// stream.
    pub(crate) fn next_valid(&mut self) -> Result<Option<u64>> {
        /// The shape of a stored line, checked rather than built.
        #[derive(Deserialize)]
        struct Shape<'a> {
            #[serde(rename = "type", borrow)]
            _event_type: Cow<'a, str>,
            #[serde(rename = "data")]
            _data: ValidData,
            #[serde(rename = "ts")]
            _ts: u64,
            #[serde(rename = "id", default, borrow)]
            _id: Option<Cow<'a, str>>,
            #[serde(rename = "meta", default)]
            _meta: Option<ValidObject>,
            #[serde(rename = "v", default)]
            _v: Option<u32>,
            #[serde(default)]
            seq: Option<u64>,
        }
        let Some(start) = self.next_line()? else {
            return Ok(None);
        };
        let line = &self.buf[..self.buf.len() - 1];
        let parsed = match canonical::check(line) {
            Some(seq) => Ok(seq),
            None => serde_json::from_slice::<Shape<'_>>(line).map(|shape| shape.seq),
        };
        let seq = match parsed {
            Ok(seq) => seq,
            Err(e) => {
                return Err(
                    self.corrupt(start, format!("line is not a valid event: {}", shorten(e)))
                );
            }
        };
        self.take_seq(start, seq)?;
        Ok(Some(self.pos))
    }

    /// A `Corrupt` error at `offset` of the stream. In the archive it names
    /// the frame that holds that byte of the decompressed archive, at the
    /// frame's offset in the file.
    fn corrupt(&self, offset: u64, detail: String) -> Error {
        let Some(len) = self.archive_len else {
            return Error::corrupt(&self.path, offset, detail);
        };
        match frames::frame_at(&self.path, len, offset) {
            Some(frame) => Error::corrupt(
                &self.path,
                frame.start,
                format!(
                    "{detail}, in frame {} of the archive, which starts at this byte of the \
                     file (byte {} of the decompressed archive, {} into that frame's content; \
                     `zstd -d` decodes the frames before it)",
                    frame.number,
                    offset,
                    offset - frame.content_start
                ),
            ),
            None => Error::corrupt(
                &self.path,
                offset,
                format!("{detail} (offset in the decompressed archive)"),
            ),
        }
    }

    /// Decoding errors from zstd arrive as I/O errors of these kinds.
    fn read_error(&self, e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::Other | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                if self.end.is_none() =>
            {
                self.corrupt(self.pos, format!("the archive cannot be decompressed: {e}"))
            }
            _ => Error::io(&self.path, e),
        }
    }
}

/// Checks `line`, a stored line given without its newline, as a reader
/// of the log checks the line of event `seq`: one line, of eventfold's
/// format, and a `seq` field (if it has one) that says `seq`.
///
/// # Errors
///
/// [`Error::InvalidLine`] saying what is wrong.
pub(crate) fn check_line(line: &[u8], seq: u64) -> Result<()> {
    if line.contains(&b'\n') {
        return Err(Error::InvalidLine {
            seq,
            detail: "it holds a newline: give each line without its newline".to_owned(),
        });
    }
    let mut lines =
        Lines::new(line.chain(&b"\n"[..]), PathBuf::new(), 0, None, None).with_seq(Some(seq));
    lines.next_valid().map_err(|e| as_line_error(e, seq))?;
    Ok(())
}

/// A line error of a reader over one line given from elsewhere: an
/// [`Error::InvalidLine`] for event `seq` (such a reader has no file).
pub(crate) fn as_line_error(e: Error, seq: u64) -> Error {
    match e {
        Error::Corrupt { detail, .. } => Error::InvalidLine { seq, detail },
        other => other,
    }
}

/// JSON checked exactly as `serde_json::Value` parses it, without building
/// it: the same visits (so the same UTF-8, escape, number-range and
/// nesting-depth checks inside serde_json), nothing allocated but for the
/// one case that serde_json itself reads differently (an object whose first
/// key is its reserved raw-value key, whose value is parsed as JSON text).
struct ValidData;

impl<'de> Deserialize<'de> for ValidData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(ValidData)
    }
}

impl<'de> Visitor<'de> for ValidData {
    type Value = ValidData;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<ValidData, E> {
        Ok(ValidData)
    }

    fn visit_i64<E>(self, _: i64) -> std::result::Result<ValidData, E> {
        Ok(ValidData)
    }

    fn visit_u64<E>(self, _: u64) -> std::result::Result<ValidData, E> {
        Ok(ValidData)
    }

    fn visit_f64<E>(self, _: f64) -> std::result::Result<ValidData, E> {
        Ok(ValidData)
    }

    fn visit_str<E>(self, _: &str) -> std::result::Result<ValidData, E> {
        Ok(ValidData)
    }

    fn visit_unit<E>(self) -> std::result::Result<ValidData, E> {
        Ok(ValidData)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<ValidData, A::Error> {
        while seq.next_element::<ValidData>()?.is_some() {}
        Ok(ValidData)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<ValidData, A::Error> {
        match map.next_key::<Key>()? {
            None => return Ok(ValidData),
            Some(Key::Reserved) => {
                // serde_json reads this value as the JSON text it holds.
                let text = map.next_value::<Cow<'_, str>>()?;
                return serde_json::from_str::<ValidData>(&text).map_err(de::Error::custom);
            }
            Some(Key::Plain) => {
                map.next_value::<ValidData>()?;
            }
        }
        while map.next_key::<Key>()?.is_some() {
            map.next_value::<ValidData>()?;
        }
        Ok(ValidData)
    }
}

/// A JSON object checked as `serde_json::Map` parses it, without building
/// it.
struct ValidObject;

impl<'de> Deserialize<'de> for ValidObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_map(ValidData).map(|_| ValidObject)
    }
}

/// An object key, checked as a string; whether it is serde_json's reserved
/// raw-value key.
enum Key {
    Plain,
    Reserved,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E>(self, key: &str) -> std::result::Result<Key, E> {
                Ok(if key == crate::event::RESERVED_KEY {
                    Key::Reserved
                } else {
                    Key::Plain
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Lines of the active log.
pub(crate) type ActiveLines = Lines<BufReader<Take<LogFile>>>;

/// The active log as lines are read from it: `None` where a reader found
/// no `app.jsonl` yet (an empty log).
pub(crate) struct LogFile(pub(crate) Option<File>);

impl Read for LogFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            Some(file) => file.read(buf),
            None => Ok(0),
        }
    }
}
/// Lines of the decompressed archive.
pub(crate) type ArchiveLines = Lines<BufReader<zstd::Decoder<'static, BufReader<Take<File>>>>>;

/// The iterator returned by [`EventLog::read_from`](crate::EventLog::read_from).
///
/// Yields `(event, next_offset, line_hash)`: the event, the byte offset just
/// after its line (where the next event starts, and the offset a snapshot
/// records), and the hash of its line as stored in snapshots. It stops after
/// the first error.
///
/// # Examples
///
/// ```
/// use eventfold::{Event, EventLog};
/// use serde_json::json;
///
/// # let dir = tempfile::tempdir()?;
/// let mut log = EventLog::open(dir.path())?;
/// log.append(&Event::new("a", json!(1)))?;
/// let second = log.append(&Event::new("b", json!(2)))?;
/// let types: Vec<String> = log
///     .read_from(second)?
///     .map(|item| item.map(|(event, _, _)| event.event_type))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(types, ["b"]);
/// # Ok::<(), eventfold::Error>(())
/// ```
pub struct ReadFrom {
    lines: ActiveLines,
    done: bool,
}

impl ReadFrom {
    pub(crate) fn new(lines: ActiveLines) -> Self {
        ReadFrom { lines, done: false }
    }
}

impl fmt::Debug for ReadFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadFrom")
            .field("path", &self.lines.path)
            .field("offset", &self.lines.pos)
            .finish_non_exhaustive()
    }
}

impl Iterator for ReadFrom {
    type Item = Result<(Event, u64, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.lines.next_event() {
            Ok(Some(line)) => Some(Ok((line.event, line.end, hash_hex(line.hash)))),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The iterator returned by [`EventLog::read_full`](crate::EventLog::read_full).
///
/// Yields `(event, line_hash)` for every event in the archive, oldest first,
/// then every event of the active log. It stops after the first error.
///
/// # Examples
///
/// ```
/// use eventfold::{Event, EventLog};
/// use serde_json::json;
///
/// # let dir = tempfile::tempdir()?;
/// let mut log = EventLog::open(dir.path())?;
/// log.append(&Event::new("old", json!(null)))?;
/// log.rotate()?;
/// log.append(&Event::new("new", json!(null)))?;
/// let types: Vec<String> = log
///     .read_full()?
///     .map(|item| item.map(|(event, _)| event.event_type))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(types, ["old", "new"]);
/// # Ok::<(), eventfold::Error>(())
/// ```
pub struct ReadFull {
    history: HistoryLines,
}

impl ReadFull {
    pub(crate) fn new(archive: Option<ArchiveLines>, active: ActiveLines) -> Self {
        ReadFull {
            history: HistoryLines::new(archive, active),
        }
    }
}

impl fmt::Debug for ReadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadFull")
            .field("in_archive", &self.history.archive.is_some())
            .finish_non_exhaustive()
    }
}

impl Iterator for ReadFull {
    type Item = Result<(Event, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = self.history.next_line()?;
        Some(line.map(|line| (line.event, hash_hex(line.hash))))
    }
}

/// The lines of the history from some point: the rest of the archive (if
/// the point is in it), then the active log. Ends after the first error.
struct HistoryLines {
    archive: Option<ArchiveLines>,
    active: Option<ActiveLines>,
}

impl HistoryLines {
    fn new(archive: Option<ArchiveLines>, active: ActiveLines) -> Self {
        HistoryLines {
            archive,
            active: Some(active),
        }
    }

    /// The next line; at the end of the archive, checks that it held the
    /// events up to the first of the active log.
    fn next_line(&mut self) -> Option<Result<LineEvent>> {
        if let Some(archive) = &mut self.archive {
            match archive.next_event() {
                Ok(Some(line)) => return Some(Ok(line)),
                Ok(None) => {
                    let next = self.active.as_ref().and_then(Lines::next_seq);
                    if let Err(e) = archive.check_end(next) {
                        return self.fail(e);
                    }
                    self.archive = None;
                }
                Err(e) => return self.fail(e),
            }
        }
        let active = self.active.as_mut()?;
        match active.next_event() {
            Ok(Some(line)) => Some(Ok(line)),
            Ok(None) => {
                self.active = None;
                None
            }
            Err(e) => self.fail(e),
        }
    }

    /// Makes every line read from now on carry its text.
    fn keep_lines(&mut self) {
        if let Some(archive) = &mut self.archive {
            archive.keep_lines();
        }
        if let Some(active) = &mut self.active {
            active.keep_lines();
        }
    }

    fn fail(&mut self, e: Error) -> Option<Result<LineEvent>> {
        self.archive = None;
        self.active = None;
        Some(Err(e))
    }
}

/// The iterator returned by
/// [`EventLog::read_from_seq`](crate::EventLog::read_from_seq).
///
/// Yields `(seq, event, line_hash)`: the event's sequence number, the
/// event, and the hash of its line as stored in snapshots; oldest first,
/// through the archive and then the active log. It stops after the first
/// error.
///
/// # Examples
///
/// ```
/// use eventfold::{Event, EventLog};
/// use serde_json::json;
///
/// # let dir = tempfile::tempdir()?;
/// let mut log = EventLog::open(dir.path())?;
/// log.append_batch(&[Event::new("a", json!(1)), Event::new("b", json!(2))])?;
/// let seqs: Vec<u64> = log
///     .read_from_seq(1)?
///     .map(|item| item.map(|(seq, _, _)| seq))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(seqs, [1]);
/// # Ok::<(), eventfold::Error>(())
/// ```
pub struct ReadSeq {
    /// The sequence number of the next event.
    next: u64,
    history: HistoryLines,
    /// For a reader: how to look at the files again after an error.
    reopen: Option<Box<dyn Reopen>>,
    /// Whether lines carry their text ([`ReadSeq::lines`]).
    keep_lines: bool,
}

/// How a reader's iterator goes on when the files changed under it.
pub(crate) trait Reopen: Send {
    /// After `error` reading event `seq`: the lines from `seq` on, if the
    /// files changed since they were opened (a rotation moved them);
    /// otherwise `error` stands.
    fn reopen(&mut self, seq: u64, error: Error) -> Result<(Option<ArchiveLines>, ActiveLines)>;
}

/// How many times a reader's iterator opens the files again for one
/// event: each time means another rotation happened while it read.
const REOPENS: u32 = 8;

impl ReadSeq {
    pub(crate) fn new(seq: u64, archive: Option<ArchiveLines>, active: ActiveLines) -> Self {
        ReadSeq {
            next: seq,
            history: HistoryLines::new(archive, active),
            reopen: None,
            keep_lines: false,
        }
    }

    /// A reader's iterator, which opens the files again through `reopen`
    /// when they change under it.
    pub(crate) fn reopening(mut self, reopen: Box<dyn Reopen>) -> Self {
        self.reopen = Some(reopen);
        self
    }

    /// The sequence number of the event the next call yields (or would,
    /// once it is appended): a cursor to resume from.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append(&Event::new("a", json!(1)))?;
    /// let mut events = log.read_from_seq(0)?;
    /// assert_eq!(events.next_seq(), 0);
    /// events.next();
    /// assert_eq!(events.next_seq(), 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Folds the events it yields, up to and including event `seq`, into
    /// `S::default()` through `reducer`.
    pub(crate) fn fold_through<S: Default>(
        self,
        reducer: fn(S, &Event) -> S,
        seq: u64,
    ) -> Result<S> {
        let mut state = S::default();
        for item in self {
            let (at, event, _) = item?;
            state = reducer(state, &event);
            if at == seq {
                break;
            }
        }
        Ok(state)
    }
}

impl fmt::Debug for ReadSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadSeq")
            .field("next_seq", &self.next)
            .field("in_archive", &self.history.archive.is_some())
            .finish_non_exhaustive()
    }
}

impl ReadSeq {
    /// The same events without their lines' hashes, which the iterator
    /// then does not format: for a caller that only needs the events (an
    /// export, a count), a little faster.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append_batch(&[Event::new("a", json!(1)), Event::new("b", json!(2))])?;
    /// let types: Vec<(u64, String)> = log
    ///     .read_from_seq(0)?
    ///     .events()
    ///     .map(|item| item.map(|(seq, event)| (seq, event.event_type)))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(types, [(0, "a".to_owned()), (1, "b".to_owned())]);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn events(self) -> SeqEvents {
        SeqEvents(self)
    }

    /// The same events as the exact lines stored for them: `(seq, line)`,
    /// each line as it is in the file, without its newline (the bytes
    /// whose xxh3-64 is the line hash [`ReadSeq`] yields). For a caller
    /// that copies the log elsewhere byte for byte: a replica, a backup.
    /// Each line is still checked to be a valid event.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append(&Event::with_ts("a", json!(1), 7))?;
    /// let (seq, line) = log.read_from_seq(0)?.lines().next().expect("one event")?;
    /// assert_eq!(seq, 0);
    /// assert_eq!(line, r#"{"type":"a","data":1,"ts":7,"seq":0}"#);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn lines(mut self) -> SeqLines {
        self.keep_lines = true;
        self.history.keep_lines();
        SeqLines(self)
    }

    /// The next line, with its sequence number.
    fn next_line(&mut self) -> Option<Result<(u64, LineEvent)>> {
        let mut reopened = 0;
        let line = loop {
            match self.history.next_line()? {
                Err(e) if reopened < REOPENS => {
                    let Some(reopen) = &mut self.reopen else {
                        return Some(Err(e));
                    };
                    match reopen.reopen(self.next, e) {
                        Err(e) => return Some(Err(e)),
                        Ok((archive, active)) => {
                            self.history = HistoryLines::new(archive, active);
                            if self.keep_lines {
                                self.history.keep_lines();
                            }
                            reopened += 1;
                        }
                    }
                }
                line => break line,
            }
        };
        Some(line.map(|line| {
            let seq = self.next;
            self.next += 1;
            (seq, line)
        }))
    }
}

impl Iterator for ReadSeq {
    type Item = Result<(u64, Event, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_line()
            .map(|line| line.map(|(seq, line)| (seq, line.event, hash_hex(line.hash))))
    }
}

/// The iterator returned by [`ReadSeq::events`]: `(seq, event)`, as
/// [`ReadSeq`] yields them without the hashes.
#[derive(Debug)]
pub struct SeqEvents(ReadSeq);

impl SeqEvents {
    /// The sequence number of the event the next call yields, as
    /// [`ReadSeq::next_seq`].
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append(&Event::new("a", json!(1)))?;
    /// let mut events = log.read_from_seq(0)?.events();
    /// events.next();
    /// assert_eq!(events.next_seq(), 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn next_seq(&self) -> u64 {
        self.0.next_seq()
    }
}

impl Iterator for SeqEvents {
    type Item = Result<(u64, Event)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0
            .next_line()
            .map(|line| line.map(|(seq, line)| (seq, line.event)))
    }
}

/// The iterator returned by [`ReadSeq::lines`]: `(seq, line)`, each line
/// exactly as stored, without its newline.
#[derive(Debug)]
pub struct SeqLines(ReadSeq);

impl SeqLines {
    /// The sequence number of the line the next call yields, as
    /// [`ReadSeq::next_seq`].
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, EventLog};
    /// use serde_json::json;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// log.append(&Event::new("a", json!(1)))?;
    /// let mut lines = log.read_from_seq(0)?.lines();
    /// lines.next();
    /// assert_eq!(lines.next_seq(), 1);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub fn next_seq(&self) -> u64 {
        self.0.next_seq()
    }
}

impl Iterator for SeqLines {
    type Item = Result<(u64, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0
            .next_line()
            .map(|line| line.map(|(seq, line)| (seq, line.line.unwrap_or_default())))
    }
}

/// Reads the bytes `[start, end)` of `file`.
pub(crate) fn read_range(file: &mut File, start: u64, end: u64) -> io::Result<Vec<u8>> {
    use std::io::Seek;
    file.seek(io::SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity((end - start) as usize);
    file.take(end - start).read_to_end(&mut bytes)?;
    if (bytes.len() as u64) < end - start {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shorter than expected",
        ));
    }
    Ok(bytes)
}

/// Finds where the line that ends just before `end` starts: the position
/// after the last newline before `end`, or 0. Reads backwards in chunks, so
/// it costs the length of that one line, not of the file.
pub(crate) fn line_start_before(file: &mut File, end: u64) -> io::Result<u64> {
    const CHUNK: u64 = 8 * 1024;
    let mut hi = end;
    while hi > 0 {
        let lo = hi.saturating_sub(CHUNK);
        let chunk = read_range(file, lo, hi)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(lo + i as u64 + 1);
        }
        hi = lo;
    }
    Ok(0)
}
