//! The layout of zstd frames in the archive, walked from their headers
//! without decompressing: which frame holds a given byte of the
//! decompressed archive, so that an error can name the frame and where it
//! starts in the file.
//!
//! A frame is a 4-byte magic number, a header (its size and the content
//! size it records are read with zstd's own functions), then blocks, each
//! behind a 3-byte header giving its type and size, the last one flagged,
//! and a 4-byte content checksum if the header says so.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Size of the buffers [`decode`] reads and decodes through.
const DECODE_BUF: usize = 64 * 1024;

/// One frame of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Its number, from 1, in the archive's order.
    pub(crate) number: u64,
    /// Where it starts in the compressed file.
    pub(crate) start: u64,
    /// Where its content starts in the decompressed archive.
    pub(crate) content_start: u64,
}

/// The frame of the first `len` bytes of the archive at `path` that holds
/// byte `offset` of the decompressed archive, or the first frame whose
/// layout cannot be walked (a damaged header or block, a cut): that is
/// where decoding fails. `None` if the file cannot be read.
pub(crate) fn frame_at(path: &Path, len: u64, offset: u64) -> Option<Frame> {
    let mut file = File::open(path).ok()?;
    let mut frame = Frame {
        number: 1,
        start: 0,
        content_start: 0,
    };
    while frame.start < len {
        let Some((size, content)) = walk(&mut file, frame.start, len).ok().flatten() else {
            return Some(frame);
        };
        if offset < frame.content_start + content {
            return Some(frame);
        }
        frame = Frame {
            number: frame.number + 1,
            start: frame.start + size,
            content_start: frame.content_start + content,
        };
    }
    // Past the last frame's content: the error is at the archive's end,
    // in the last frame.
    (frame.number > 1).then(|| Frame {
        number: frame.number - 1,
        ..frame
    })
}

/// The 4 bytes that start every zstd frame.
const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Whether a zstd frame's magic number is at `offset`.
pub(crate) fn starts_frame(file: &mut File, offset: u64) -> io::Result<bool> {
    let mut magic = [0u8; 4];
    Ok(read_at(file, offset, &mut magic)? == 4 && magic == MAGIC)
}

/// The compressed size and content size of the frame at `start`, `None`
/// if it is not a whole, well-formed frame within `len` bytes.
pub(crate) fn walk(file: &mut File, start: u64, len: u64) -> io::Result<Option<(u64, u64)>> {
    let mut header = [0u8; 18];
    let n = read_at(file, start, &mut header[..(len - start).min(18) as usize])?;
    let header = &header[..n];
    if !header.starts_with(&MAGIC) {
        return Ok(None);
    }
    let (Some(header_size), Ok(Some(content))) = (
        header_size(header),
        zstd::zstd_safe::get_frame_content_size(header),
    ) else {
        return Ok(None);
    };
    let checksum = header[4] & 0b100 != 0;
    let mut at = start + header_size as u64;
    loop {
        let mut block = [0u8; 3];
        if at + 3 > len || read_at(file, at, &mut block)? < 3 {
            return Ok(None);
        }
        let bits = u32::from(block[0]) | u32::from(block[1]) << 8 | u32::from(block[2]) << 16;
        let last = bits & 1 == 1;
        let size = match (bits >> 1) & 0b11 {
            0 | 2 => u64::from(bits >> 3), // raw or compressed
            1 => 1,                        // RLE: one byte, repeated
            _ => return Ok(None),          // reserved
        };
        at += 3 + size;
        if last {
            let end = at + if checksum { 4 } else { 0 };
            return Ok((end <= len).then_some((end - start, content)));
        }
    }
}

/// The size of a frame's header, magic number included, from its
/// descriptor byte: 4 + 1 + the window byte (unless the frame is a single
/// segment) + the dictionary id + the content size fields.
fn header_size(header: &[u8]) -> Option<usize> {
    let descriptor = *header.get(4)?;
    let single_segment = descriptor & 0b10_0000 != 0;
    let content_size = match descriptor >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let dictionary = [0, 1, 2, 4][usize::from(descriptor & 0b11)];
    let size = 5 + usize::from(!single_segment) + dictionary + content_size;
    (size <= header.len()).then_some(size)
}

/// Reads up to `buf.len()` bytes at `offset`; returns how many.
fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    file.seek(io::SeekFrom::Start(offset))?;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// One zstd frame of the archive, as [`decode`] found it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FrameTail {
    /// Compressed bytes read.
    pub(crate) compressed: u64,
    /// Bytes of content they decode to.
    pub(crate) decoded: u64,
    /// Newlines in that content: the lines it holds.
    pub(crate) lines: u64,
    /// The last byte of that content, if any.
    pub(crate) last: Option<u8>,
    /// Whether the frame ended (its checksum verified).
    pub(crate) complete: bool,
}

/// Decodes the file from `start` to `end` as a sequence of zstd frames,
/// handing each decoded chunk and its offset in their content (counted
/// across the frames) to `check`. Returns the frames, each complete but
/// perhaps the last, which may be cut short (not an error). Bytes that are
/// not a zstd frame or a failed checksum are [`Error::Corrupt`] naming the
/// file at the compressed offset, their message ended by `context`.
pub(crate) fn decode(
    archive_path: &Path,
    (start, end): (u64, u64),
    context: &str,
    mut check: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<Vec<FrameTail>> {
    use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

    let mut file = File::open(archive_path).at(archive_path)?;
    file.seek(io::SeekFrom::Start(start)).at(archive_path)?;
    let mut file = file.take(end - start);
    let mut decoder = Decoder::new().at(archive_path)?;
    let mut input = vec![0; DECODE_BUF];
    let mut output = vec![0; DECODE_BUF];
    let mut frames = Vec::new();
    let mut frame = FrameTail::default();
    // Compressed bytes of the frames before `frame`, and content before it.
    let (mut before, mut content) = (start, 0);
    loop {
        let n = file.read(&mut input).at(archive_path)?;
        if n == 0 {
            if frame.compressed > 0 {
                frames.push(frame);
            }
            return Ok(frames);
        }
        let mut chunk = InBuffer::around(&input[..n]);
        loop {
            let at = chunk.pos();
            let mut out = OutBuffer::around(&mut output[..]);
            let hint = decoder.run(&mut chunk, &mut out).map_err(|e| {
                Error::corrupt(
                    archive_path,
                    before + frame.compressed,
                    format!("the bytes here are not a zstd frame: {e}{context}"),
                )
            })?;
            frame.compressed += (chunk.pos() - at) as u64;
            let produced = out.pos();
            let produced = &output[..produced];
            check(content, produced)?;
            content += produced.len() as u64;
            frame.decoded += produced.len() as u64;
            frame.lines += produced.iter().filter(|&&b| b == b'\n').count() as u64;
            if let Some(&b) = produced.last() {
                frame.last = Some(b);
            }
            if hint == 0 {
                frame.complete = true;
                before += frame.compressed;
                frames.push(frame);
                frame = FrameTail::default();
                decoder.reinit().at(archive_path)?;
                if chunk.pos() == n {
                    break;
                }
                continue;
            }
            if chunk.pos() == n && produced.len() < output.len() {
                break;
            }
        }
    }
}
