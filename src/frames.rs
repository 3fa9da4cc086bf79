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

/// The compressed size and content size of the frame at `start`, `None`
/// if it is not a whole, well-formed frame within `len` bytes.
fn walk(file: &mut File, start: u64, len: u64) -> io::Result<Option<(u64, u64)>> {
    const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
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
