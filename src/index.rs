//! The archive index, `archive.index.jsonl`: one line per frame of the
//! archive, saying where the frame is and which events it holds.
//!
//! ```text
//! {"start":0,"len":412,"bytes":3000,"first_seq":0,"events":40,"checksum":"9c1e0f55d2a7b3e4"}
//! ```
//!
//! `start` and `len` locate the frame in `archive.jsonl.zst`, `bytes` is
//! the length of its content (the rotated `app.jsonl`), `first_seq` the
//! sequence number of its first event and `events` how many it holds;
//! `checksum` is xxh3-64 of the other five numbers. The lines follow each
//! other: each frame starts where the one before ends, and its first event
//! follows the last one of the frame before.
//!
//! The index serves two purposes. Reading from a sequence number jumps to
//! the frame that holds it instead of decompressing the history before it.
//! And it is the record of how much history there is: an archive shorter
//! than its index lost frames, which opening the log reports
//! ([`check_archive`]) instead of silently showing less history.
//!
//! A rotation appends the new frames' lines, and syncs them, after the
//! frames are synced into the archive and before `app.jsonl` is truncated;
//! its recovery cuts or completes the lines with the frames (see the
//! [`rotation`](crate::rotation) module). The file is created, and
//! replaced when it is a symbolic link, atomically (a temporary file
//! renamed into place). Frames that the index does not cover yet (an
//! archive written before the index existed, or rotated by an older
//! eventfold) are read once, checked and indexed when the log is opened
//! ([`catch_up`]); the whole index is then rewritten atomically.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::durable;
use crate::error::{Error, IoContext, Result, shorten};
use crate::frames::{self, FrameTail};

/// File name of the archive index inside the data directory.
pub(crate) const INDEX_FILE: &str = "archive.index.jsonl";

/// The largest index file that is read: 256 MiB, over two million frames.
const MAX_INDEX: u64 = 256 * 1024 * 1024;

/// One frame of the archive, as the index records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameEntry {
    /// Where the frame starts in `archive.jsonl.zst`.
    pub(crate) start: u64,
    /// Its compressed length.
    pub(crate) len: u64,
    /// Where its content starts in the decompressed archive.
    pub(crate) content_start: u64,
    /// The length of its content.
    pub(crate) bytes: u64,
    /// The sequence number of its first event.
    pub(crate) first_seq: u64,
    /// How many events it holds.
    pub(crate) events: u64,
}

impl FrameEntry {
    /// Where the frame ends in the archive file.
    pub(crate) fn end(&self) -> u64 {
        self.start + self.len
    }

    /// The sequence number after its last event.
    pub(crate) fn end_seq(&self) -> u64 {
        self.first_seq + self.events
    }
}

/// A line of the index file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    start: u64,
    len: u64,
    bytes: u64,
    first_seq: u64,
    events: u64,
    checksum: String,
}

fn checksum_of(start: u64, len: u64, bytes: u64, first_seq: u64, events: u64) -> String {
    let text = format!("{start}:{len}:{bytes}:{first_seq}:{events}");
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// The archive's frames as the index records them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Index {
    pub(crate) frames: Vec<FrameEntry>,
    /// Where each frame's line ends in the index file.
    line_ends: Vec<u64>,
}

impl Index {
    /// The bytes of the index file that hold the frames' lines.
    pub(crate) fn len(&self) -> u64 {
        self.line_ends.last().copied().unwrap_or(0)
    }

    /// Where the indexed frames end in the archive file.
    pub(crate) fn archive_end(&self) -> u64 {
        self.frames.last().map_or(0, FrameEntry::end)
    }

    /// How many events the indexed frames hold: the sequence number of
    /// the first event after them.
    pub(crate) fn events(&self) -> u64 {
        self.frames.last().map_or(0, FrameEntry::end_seq)
    }

    /// The length of the indexed frames' content.
    pub(crate) fn content_len(&self) -> u64 {
        self.frames.last().map_or(0, |f| f.content_start + f.bytes)
    }

    /// The frame that holds event `seq`, if the indexed frames hold it.
    pub(crate) fn frame_of(&self, seq: u64) -> Option<&FrameEntry> {
        let i = self.frames.partition_point(|f| f.end_seq() <= seq);
        self.frames.get(i).filter(|f| f.first_seq <= seq)
    }

    /// The frame that would follow the indexed ones: at `start` in the
    /// archive, `len` compressed bytes holding `events` events in `bytes`
    /// bytes.
    fn next_frame(&self, start: u64, len: u64, bytes: u64, events: u64) -> FrameEntry {
        FrameEntry {
            start,
            len,
            content_start: self.content_len(),
            bytes,
            first_seq: self.events(),
            events,
        }
    }

    /// The entries of `frames`, complete frames written one after the
    /// other from byte `start` of the archive, that would follow the
    /// indexed ones.
    pub(crate) fn next_frames(&self, start: u64, frames: &[FrameTail]) -> Vec<FrameEntry> {
        let mut following = self.clone();
        let mut at = start;
        for f in frames {
            let entry = following.next_frame(at, f.compressed, f.decoded, f.lines);
            following.extend_unwritten(&[entry]);
            at += f.compressed;
        }
        following.frames.split_off(self.frames.len())
    }

    /// Reads the index at `path`; an empty index if there is none.
    /// Whether the file exists is the second value.
    ///
    /// With `stop_at`, the archive length before an interrupted rotation,
    /// reading stops once the frames before it are read: what follows is
    /// that rotation's line, which may be incomplete, and is left for
    /// recovery to cut (it is not part of the result, nor of its `len`).
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] naming the index and the byte offset of the line
    /// that is not a frame's record, fails its checksum or does not follow
    /// the line before it.
    pub(crate) fn load(path: &Path, stop_at: Option<u64>) -> Result<(Index, bool)> {
        let Some(bytes) = durable::read_regular(path, MAX_INDEX)? else {
            return Ok((Index::default(), false));
        };
        Index::default()
            .parse_from(path, &bytes, stop_at)
            .map(|index| (index, true))
    }

    /// Reads the index at `path` again, for a reader that read it as
    /// `self` before: when the file still starts with the bytes `self`
    /// was read from (whose xxh3-64 is `hash`), only the lines after them
    /// are parsed. Returns the index and the hash of its bytes.
    ///
    /// # Errors
    ///
    /// As for [`load`](Index::load).
    pub(crate) fn reload(self, path: &Path, hash: u64) -> Result<(Index, u64)> {
        let Some(bytes) = durable::read_regular(path, MAX_INDEX)? else {
            return Ok((Index::default(), xxhash_rust::xxh3::xxh3_64(b"")));
        };
        let known = self.len() as usize;
        let start = if bytes.len() >= known && xxhash_rust::xxh3::xxh3_64(&bytes[..known]) == hash {
            self
        } else {
            Index::default()
        };
        let index = start.parse_from(path, &bytes, None)?;
        let hash = xxhash_rust::xxh3::xxh3_64(&bytes[..index.len() as usize]);
        Ok((index, hash))
    }

    /// Parses the lines of `bytes` (the index file) after the ones `self`
    /// holds; see [`load`](Index::load) for `stop_at`.
    fn parse_from(mut self, path: &Path, bytes: &[u8], stop_at: Option<u64>) -> Result<Index> {
        let index = &mut self;
        let mut at = index.len() as usize;
        while at < bytes.len() && stop_at.is_none_or(|stop| index.archive_end() < stop) {
            let rest = &bytes[at..];
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                return Err(Error::corrupt(
                    path,
                    at as u64,
                    "the last line has no newline, and no rotation was under way: the file \
                     was cut or changed; restore it from a backup, or remove it to have it \
                     rebuilt from the archive",
                ));
            };
            let frame = index.parse_line(path, at as u64, &rest[..end])?;
            index.frames.push(frame);
            at += end + 1;
            index.line_ends.push(at as u64);
        }
        Ok(self)
    }

    /// Parses the line at `offset`, which must follow the frames so far.
    fn parse_line(&self, path: &Path, offset: u64, line: &[u8]) -> Result<FrameEntry> {
        let damaged = |detail: String| {
            Error::corrupt(
                path,
                offset,
                format!(
                    "{detail}; the index records the archive's frames: restore it from a \
                     backup, or remove it to have it rebuilt from the archive"
                ),
            )
        };
        let line: Line = serde_json::from_slice(line)
            .map_err(|e| damaged(format!("the line is not a frame's record: {}", shorten(e))))?;
        let expected = checksum_of(
            line.start,
            line.len,
            line.bytes,
            line.first_seq,
            line.events,
        );
        if line.checksum != expected {
            return Err(damaged(
                "the line does not match its checksum: it was changed after it was written"
                    .to_owned(),
            ));
        }
        let frame = self.next_frame(line.start, line.len, line.bytes, line.events);
        if line.start != self.archive_end() || line.first_seq != self.events() {
            return Err(damaged(format!(
                "the frame recorded here (at byte {} of the archive, from event {}) does not \
                 follow the one before it (which ends at byte {}, before event {})",
                line.start,
                line.first_seq,
                self.archive_end(),
                self.events()
            )));
        }
        Ok(frame)
    }

    /// Appends `frames` (which follow the indexed ones) to the index file
    /// and syncs it. A missing file is created whole, atomically (written
    /// beside it, synced, renamed, directory synced), and so is a file at a
    /// symbolic link: the link is replaced by a file holding every line,
    /// and the file it pointed to is left alone.
    pub(crate) fn append(&mut self, path: &Path, frames: &[FrameEntry]) -> Result<()> {
        if !is_regular_file(path)? {
            let mut all = self.frames.clone();
            all.extend_from_slice(frames);
            return self.rewrite(path, all);
        }
        let (text, lengths) = lines_of(frames);
        let mut file = durable::open_append_own(path)?;
        file.write_all(&text).at(path)?;
        file.sync_data().at(path)?;
        let mut end = self.len();
        for (f, line_len) in frames.iter().zip(lengths) {
            end += line_len;
            self.frames.push(*f);
            self.line_ends.push(end);
        }
        Ok(())
    }

    /// Replaces the index file with the lines of `frames`, atomically, and
    /// makes them the index.
    pub(crate) fn rewrite(&mut self, path: &Path, frames: Vec<FrameEntry>) -> Result<()> {
        let (text, lengths) = lines_of(&frames);
        durable::write_atomic(path, &text)?;
        self.line_ends = lengths
            .iter()
            .scan(0, |end, len| {
                *end += len;
                Some(*end)
            })
            .collect();
        self.frames = frames;
        Ok(())
    }

    /// Adds frames to the index in memory only.
    pub(crate) fn extend_unwritten(&mut self, frames: &[FrameEntry]) {
        let len = self.len();
        for f in frames {
            self.frames.push(*f);
            self.line_ends.push(len);
        }
    }

    /// Cuts the index to its first `keep` frames, and the file at `path`
    /// to their lines (synced), dropping whatever follows them there.
    /// A symbolic link there is replaced by a file holding those lines, never
    /// written through.
    pub(crate) fn truncate(&mut self, path: &Path, keep: usize) -> Result<()> {
        self.frames.truncate(keep);
        self.line_ends.truncate(keep);
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(path, e)),
            Ok(m) if m.file_type().is_symlink() => {
                let frames = self.frames.clone();
                return self.rewrite(path, frames);
            }
            Ok(m) if m.len() == self.len() => return Ok(()),
            Ok(_) => {}
        }
        let mut options = OpenOptions::new();
        options.write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NOFOLLOW);
        }
        let file = options.open(path).at(path)?;
        file.set_len(self.len()).at(path)?;
        file.sync_all().at(path)
    }
}

/// The lines of `frames` in the index file, and the length of each.
fn lines_of(frames: &[FrameEntry]) -> (Vec<u8>, Vec<u64>) {
    let mut text = Vec::new();
    let mut lengths = Vec::with_capacity(frames.len());
    for f in frames {
        let before = text.len();
        let line = Line {
            start: f.start,
            len: f.len,
            bytes: f.bytes,
            first_seq: f.first_seq,
            events: f.events,
            checksum: checksum_of(f.start, f.len, f.bytes, f.first_seq, f.events),
        };
        serde_json::to_writer(&mut text, &line).expect("numbers and a string serialize");
        text.push(b'\n');
        lengths.push((text.len() - before) as u64);
    }
    (text, lengths)
}

/// Whether `path` is a regular file itself (not missing, not a link).
fn is_regular_file(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(m.file_type().is_file()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Checks the archive of `archive_len` bytes at `archive_path` against its
/// index: it must hold at least the indexed frames, and a zstd frame must
/// start where the index says the last one does. (The frames' content is
/// checked when it is read: damage inside a frame does not keep the log
/// from opening.)
///
/// # Errors
///
/// [`Error::Corrupt`] naming the archive if it is shorter than its index
/// says (frames were lost: the history would silently shrink) or the last
/// indexed frame is not where it should be (the archive was replaced).
pub(crate) fn check_archive(archive_path: &Path, archive_len: u64, index: &Index) -> Result<()> {
    let Some(last) = index.frames.last() else {
        return Ok(());
    };
    if archive_len < last.end() {
        let what = if archive_len == 0 {
            "the archive is missing or empty".to_owned()
        } else {
            format!("the archive ends at byte {archive_len}")
        };
        return Err(Error::corrupt(
            archive_path,
            archive_len,
            format!(
                "{what}, but {INDEX_FILE} records {} frames holding events 0 to {} in {} \
                 bytes: archived history was lost. Restore the archive from a backup; nothing \
                 was changed",
                index.frames.len(),
                index.events().saturating_sub(1),
                last.end()
            ),
        ));
    }
    let mut file = File::open(archive_path).at(archive_path)?;
    if frames::starts_frame(&mut file, last.start).at(archive_path)? {
        return Ok(());
    }
    Err(Error::corrupt(
        archive_path,
        last.start,
        format!(
            "{INDEX_FILE} records the start of a frame here (its frame {}), but the archive \
             holds something else: it was replaced or damaged. Restore it from a backup; \
             nothing was changed",
            index.frames.len()
        ),
    ))
}

/// Indexes the frames of the archive that the index does not cover yet,
/// from its end to `archive_len`: each is decoded once, its checksum
/// checked and its events counted. Returns the new entries, which the
/// caller appends.
///
/// # Errors
///
/// [`Error::Corrupt`] naming the archive and the frame's offset if the
/// bytes there are not complete, intact zstd frames of whole lines.
pub(crate) fn catch_up(
    archive_path: &Path,
    archive_len: u64,
    index: &Index,
) -> Result<Vec<FrameEntry>> {
    let start = index.archive_end();
    let context = format!(
        ", after the {} frames that {INDEX_FILE} records: the archive was damaged or has \
         bytes eventfold did not write; nothing was changed",
        index.frames.len()
    );
    let frames = frames::decode(archive_path, (start, archive_len), &context, |_, _| Ok(()))?;
    let mut at = start;
    for f in &frames {
        let problem = if !f.complete {
            Some("the frame here is cut short")
        } else if f.last != Some(b'\n') {
            Some("the frame here does not end with a whole line")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Error::corrupt(
                archive_path,
                at,
                format!("{problem}{context}"),
            ));
        }
        at += f.compressed;
    }
    Ok(index.next_frames(start, &frames))
}
