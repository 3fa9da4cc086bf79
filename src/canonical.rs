//! The shape of the lines eventfold writes, recognized quickly.
//!
//! Before a rotation every line of the active log must be one the reader
//! accepts (see [`Lines::next_valid`](crate::lines::Lines::next_valid)),
//! which parses it with serde_json at a few hundred MB/s. Nearly every
//! line is one eventfold wrote itself, in a narrow shape: compact JSON,
//! the keys `type`, `data`, `ts`, then `id` and `meta` when set, then `v`
//! (a schema version above 1), then `seq` (none in lines from before
//! sequence numbers), strings escaped as
//! serde_json escapes them, numbers as it prints them. [`check`] accepts
//! only lines of that shape that the reader certainly accepts, at about a
//! GB/s; it answers "not sure" for everything else, which the full check
//! then decides. So it never accepts a line the reader refuses: anything
//! it does not recognize goes to serde_json.
//!
//! What makes a line of this shape certainly acceptable:
//!
//! - every string is valid UTF-8 (and the rest of the line is ASCII, as
//!   the grammar below allows nothing else);
//! - strings hold no control character and only the escapes `\"`, `\\`,
//!   `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, and `\u0000` to `\u001F` (so
//!   that no escape spells a surrogate, or a character of the reserved
//!   key);
//! - numbers follow JSON's grammar with at most 18 integer digits (so an
//!   integer fits in 64 bits) and, with a fraction or an exponent, a
//!   magnitude below 10^300 (so the float is finite);
//! - arrays and objects nest at most [`MAX_NESTING`] deep (under
//!   serde_json's limit of 128), and no object key is serde_json's
//!   reserved raw-value key;
//! - `ts` and `seq` are integers of at most 19 digits.

use std::io::{self, Read};

use crate::event::RESERVED_KEY;

/// How much of the log [`check_lines`] reads at a time.
const CHUNK: usize = 1024 * 1024;

/// How deep the `data` and `meta` values may nest and still be recognized
/// here; deeper ones go to the full check.
pub(crate) const MAX_NESTING: usize = 100;

/// Whether `line` (without its newline) is of eventfold's shape and
/// certainly accepted by the reader: `Some(seq)` (`seq` `None` for a line
/// without one), or `None` when the full check must decide.
pub(crate) fn check(line: &[u8]) -> Option<Option<u64>> {
    let mut p = Parser { line, at: 0 };
    let seq = p.line()?;
    (p.at == line.len()).then_some(seq)
}

impl Parser<'_> {
    /// A line of eventfold's shape, from its start to its closing brace.
    /// Outside strings the grammar allows only ASCII; strings with other
    /// bytes are checked as UTF-8 one by one.
    fn line(&mut self) -> Option<Option<u64>> {
        let p = self;
        p.literal(b"{\"type\":")?;
        p.string()?;
        p.literal(b",\"data\":")?;
        p.value(0)?;
        p.literal(b",\"ts\":")?;
        p.integer(19)?;
        if p.literal(b",\"id\":").is_some() {
            p.string()?;
        }
        if p.literal(b",\"meta\":").is_some() {
            if p.peek()? != b'{' {
                return None;
            }
            p.value(0)?;
        }
        if p.literal(b",\"v\":").is_some() {
            u32::try_from(p.integer(10)?).ok()?;
        }
        let seq = match p.literal(b",\"seq\":") {
            Some(()) => Some(p.integer(19)?),
            None => None,
        };
        p.literal(b"}")?;
        Some(seq)
    }
}

/// The parts of a line of the shape eventfold writes without an `id` or
/// `meta`: `{"type":"T","data":D,"ts":N}`, then `"v"` and `"seq"` when
/// present. Found without parsing `data`: `T` must have no escapes, the
/// numbers are read from the end of the line, and `data` is what lies
/// between. Whether `data` is one JSON value is for its parser to say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Split<'a> {
    pub(crate) event_type: &'a str,
    pub(crate) data: &'a str,
    pub(crate) seq: Option<u64>,
    pub(crate) version: Option<u32>,
}

/// The [`Split`] of `line`, or `None` when it is of another shape (which
/// the full parser then reads).
pub(crate) fn split(line: &str) -> Option<Split<'_>> {
    let rest = line.strip_prefix("{\"type\":\"")?;
    let end = rest.find('"')?;
    let event_type = &rest[..end];
    if event_type.bytes().any(|b| b == b'\\' || b < 0x20) {
        return None;
    }
    let rest = rest[end..].strip_prefix("\",\"data\":")?;
    let mut tail = rest.strip_suffix('}')?;
    let seq = match trailing_number(tail, ",\"seq\":", 19) {
        Some((n, before)) => {
            tail = before;
            Some(n)
        }
        None => None,
    };
    let version = match trailing_number(tail, ",\"v\":", 10) {
        Some((n, before)) => {
            tail = before;
            Some(u32::try_from(n).ok()?)
        }
        None => None,
    };
    let (_ts, data) = trailing_number(tail, ",\"ts\":", 19)?;
    Some(Split {
        event_type,
        data,
        seq,
        version,
    })
}

/// `text` ending in `key` and an integer of at most `max_digits` digits:
/// the integer and what comes before the key.
fn trailing_number<'a>(text: &'a str, key: &str, max_digits: usize) -> Option<(u64, &'a str)> {
    let bytes = text.as_bytes();
    let mut start = bytes.len();
    while start > 0 && bytes[start - 1].is_ascii_digit() {
        start -= 1;
    }
    let digits = &bytes[start..];
    if digits.is_empty() || digits.len() > max_digits || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut n: u64 = 0;
    for &digit in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
    }
    Some((n, text[..start].strip_suffix(key)?))
}

/// Checks the lines of `reader`, positioned at a line start whose line is
/// event `seq`, up to `len` bytes: as far as they are of eventfold's shape
/// and numbered in order (a line without a `seq` takes its place's).
/// Returns how many bytes that is, and the sequence number of the line
/// there: the first line the full check must look at (or the end).
pub(crate) fn check_lines(reader: &mut impl Read, len: u64, seq: u64) -> io::Result<(u64, u64)> {
    let mut buf = vec![0; CHUNK];
    // Bytes of `buf` read and not yet checked: `buf[at..filled]`.
    let (mut at, mut filled) = (0, 0);
    // Where `buf[0]` is in the log, and how much of it is read.
    let (mut base, mut read) = (0_u64, 0_u64);
    let mut seq = seq;
    loop {
        let rest = &buf[at..filled];
        let line = match check_first(rest) {
            Some((line_len, found)) => {
                let numbered = match found {
                    Some(found) => found == seq,
                    None => true,
                };
                (numbered && seq < u64::MAX).then_some(line_len)
            }
            None => None,
        };
        if let Some(line_len) = line {
            at += line_len;
            seq += 1;
            continue;
        }
        // Not of the shape, or not yet read whole: read on, unless the
        // line is whole (it is for the full check) or the log is read.
        let whole = rest.contains(&b'\n');
        if whole || read == len {
            return Ok((base + at as u64, seq));
        }
        buf.copy_within(at..filled, 0);
        base += at as u64;
        filled -= at;
        at = 0;
        if filled == buf.len() {
            // A line longer than the buffer: the full check reads it.
            return Ok((base, seq));
        }
        let want = (buf.len() - filled).min((len - read) as usize);
        let n = reader.read(&mut buf[filled..filled + want])?;
        if n == 0 {
            return Ok((base, seq));
        }
        filled += n;
        read += n as u64;
    }
}

/// The first line of `bytes`, if it is whole and of eventfold's shape:
/// its length with its newline, and its `seq`.
fn check_first(bytes: &[u8]) -> Option<(usize, Option<u64>)> {
    let mut p = Parser { line: bytes, at: 0 };
    let seq = p.line()?;
    (p.peek()? == b'\n').then_some((p.at + 1, seq))
}

struct Parser<'a> {
    line: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.line.get(self.at).copied()
    }

    /// Consumes `expected` if the line goes on with it.
    fn literal(&mut self, expected: &[u8]) -> Option<()> {
        let rest = self.line.get(self.at..)?;
        if rest.starts_with(expected) {
            self.at += expected.len();
            Some(())
        } else {
            None
        }
    }

    /// A string, from its opening quote; returns its raw content.
    fn string(&mut self) -> Option<&[u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        self.at += 1;
        let start = self.at;
        let mut ascii = true;
        loop {
            let rest = self.line.get(self.at..)?;
            let (i, plain_ascii) = special_byte(rest)?;
            ascii &= plain_ascii;
            self.at += i;
            match rest[i] {
                b'"' => {
                    let content = &self.line[start..self.at];
                    if !ascii {
                        std::str::from_utf8(content).ok()?;
                    }
                    self.at += 1;
                    return Some(content);
                }
                b'\\' => self.escape()?,
                _ => return None, // a control character
            }
        }
    }

    /// An escape, from its backslash.
    fn escape(&mut self) -> Option<()> {
        let kind = *self.line.get(self.at + 1)?;
        match kind {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
            b'u' => {
                let hex = self.line.get(self.at + 2..self.at + 6)?;
                // Only a control character (\u0000 to \u001F), as
                // serde_json writes them: no escape can then spell a
                // surrogate, or part of the reserved key.
                let control = hex[0] == b'0'
                    && hex[1] == b'0'
                    && matches!(hex[2], b'0' | b'1')
                    && hex[3].is_ascii_hexdigit();
                if !control {
                    return None;
                }
                self.at += 6;
            }
            _ => return None,
        }
        Some(())
    }

    /// A value nested `depth` levels inside the line's object.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => {
                if depth >= MAX_NESTING {
                    return None;
                }
                self.at += 1;
                if self.literal(b"}").is_some() {
                    return Some(());
                }
                loop {
                    if self.string()? == RESERVED_KEY.as_bytes() {
                        return None;
                    }
                    self.literal(b":")?;
                    self.value(depth + 1)?;
                    match self.peek()? {
                        b',' => self.at += 1,
                        b'}' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                if depth >= MAX_NESTING {
                    return None;
                }
                self.at += 1;
                if self.literal(b"]").is_some() {
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    match self.peek()? {
                        b',' => self.at += 1,
                        b']' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    /// Digits from here; returns how many.
    #[inline]
    fn digits(&mut self) -> usize {
        let rest = &self.line[self.at..];
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        self.at += n;
        n
    }

    /// A number, as JSON writes it, certainly in range.
    fn number(&mut self) -> Option<()> {
        if self.peek()? == b'-' {
            self.at += 1;
        }
        let int_start = self.at;
        let int_digits = self.digits();
        if int_digits == 0 || int_digits > 18 || (int_digits > 1 && self.line[int_start] == b'0') {
            return None;
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
            float = true;
        }
        let mut exponent: i64 = 0;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            let negative = match self.peek()? {
                b'-' => {
                    self.at += 1;
                    true
                }
                b'+' => {
                    self.at += 1;
                    false
                }
                _ => false,
            };
            let start = self.at;
            let n = self.digits();
            if n == 0 || n > 4 {
                return None;
            }
            let value: i64 = std::str::from_utf8(&self.line[start..self.at])
                .ok()?
                .parse()
                .ok()?;
            exponent = if negative { -value } else { value };
            float = true;
        }
        // |x| < 10^(int_digits + exponent): finite when that is at most
        // 10^300.
        if float && int_digits as i64 + exponent > 300 {
            return None;
        }
        Some(())
    }

    /// An unsigned integer of at most `max_digits` (at most 19) digits.
    fn integer(&mut self, max_digits: usize) -> Option<u64> {
        let start = self.at;
        let n = self.digits();
        if n == 0 || n > max_digits.min(19) || (n > 1 && self.line[start] == b'0') {
            return None;
        }
        Some(
            self.line[start..self.at]
                .iter()
                .fold(0_u64, |value, &d| value * 10 + u64::from(d - b'0')),
        )
    }
}

/// The index of the first byte of `bytes` that ends a run of plain string
/// content: a quote, a backslash or a control character; and whether the
/// run before it is all ASCII. Looks at eight bytes at a time.
#[inline]
fn special_byte(bytes: &[u8]) -> Option<(usize, bool)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut at = 0;
    let mut high = 0;
    for word in bytes.chunks_exact(8) {
        let v = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // A byte below 0x20, or equal to '"' (0x22) or '\\' (0x5C).
        let below = v.wrapping_sub(ONES * 0x20) & !v & HIGHS;
        if below | has_zero(v ^ (ONES * 0x22)) | has_zero(v ^ (ONES * 0x5C)) != 0 {
            break;
        }
        high |= v & HIGHS;
        at += 8;
    }
    let i = at
        + bytes[at..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    let ascii = high == 0 && bytes[at..i].is_ascii();
    Some((i, ascii))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::StoredLine;
    use proptest::prelude::*;

    /// What the reader makes of `line`: its `seq`, or `None` if it refuses it.
    fn reader_accepts(line: &[u8]) -> Option<Option<u64>> {
        serde_json::from_slice::<StoredLine>(line)
            .ok()
            .map(|l| l.seq)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever bytes a line of eventfold's shape is edited into, a
        /// line this check accepts is one the reader accepts, with the same
        /// `seq`.
        #[test]
        fn never_accepts_what_the_reader_refuses(
            base in 0..4_usize,
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        ) {
            let bases: [&[u8]; 4] = [
                br#"{"type":"x","data":{"s":"a\u0001\"b","n":[1.5e3,-2,true,null,{}]},"ts":9,"seq":3}"#,
                br#"{"type":"t","data":[0,-0.5,12345678901234567,9e299],"ts":1,"id":"i","meta":{"k":"v"},"seq":18446744073709551}"#,
                "{\"type\":\"é\",\"data\":\"日本\\\\\",\"ts\":0}".as_bytes(),
                br#"{"type":"a","data":{"$serde_json::private::RawValu":"1"},"ts":1,"seq":0}"#,
            ];
            let mut line = bases[base].to_vec();
            prop_assert!(check(&line).is_some(), "the base line is recognized");
            for (at, byte) in edits {
                let i = at.index(line.len());
                line[i] = byte;
            }
            if let Some(seq) = check(&line) {
                prop_assert_eq!(reader_accepts(&line), Some(seq), "{}", String::from_utf8_lossy(&line));
            }
        }

        /// Numbers: every number this check accepts parses, as the reader
        /// parses data, to a finite value.
        #[test]
        fn accepted_numbers_are_in_range(
            int in "-?(0|[1-9][0-9]{0,19})",
            frac in "(\\.[0-9]{1,5})?",
            exp in "([eE][+-]?[0-9]{1,4})?",
        ) {
            let number = format!("{int}{frac}{exp}");
            let line = format!(r#"{{"type":"n","data":{number},"ts":1}}"#);
            if check(line.as_bytes()).is_some() {
                prop_assert!(reader_accepts(line.as_bytes()).is_some(), "{}", number);
            }
        }
    }

    fn accepted(line: &str) -> bool {
        check(line.as_bytes()).is_some()
    }

    #[test]
    fn splits_lines_without_parsing_their_data() {
        let split = super::split(r#"{"type":"a","data":{"ts":1,"x":"}"},"ts":7,"v":2,"seq":9}"#);
        assert_eq!(
            split,
            Some(super::Split {
                event_type: "a",
                data: r#"{"ts":1,"x":"}"}"#,
                seq: Some(9),
                version: Some(2),
            })
        );
        let old = super::split(r#"{"type":"a","data":null,"ts":7}"#).unwrap();
        assert_eq!((old.data, old.seq, old.version), ("null", None, None));
        for other in [
            r#"{"type":"a\"b","data":1,"ts":7,"seq":0}"#,
            r#"{"data":1,"type":"a","ts":7,"seq":0}"#,
            r#"{"type":"a","data":1,"ts":7,"id":"x","seq":0}"#,
            r#"{"type":"a","data":1,"ts":07,"seq":0}"#,
            r#"{"type":"a","data":1,"ts":7,"seq":99999999999999999999}"#,
            r#"{"type":"a","data":1,"ts":-7,"seq":0}"#,
            r#"{"type":"a","data":1,"ts":7,"seq":0} "#,
        ] {
            assert_eq!(super::split(other), None, "{other}");
        }
    }

    #[test]
    fn recognizes_what_eventfold_writes() {
        assert_eq!(
            check(br#"{"type":"a","data":{"x":[1,-2.5e-3,true,null,"q\"\u0001"]},"ts":1,"seq":7}"#),
            Some(Some(7))
        );
        assert_eq!(check(br#"{"type":"a","data":null,"ts":1}"#), Some(None));
        assert!(accepted(
            r#"{"type":"a","data":{},"ts":1,"id":"x","meta":{"k":[]},"seq":0}"#
        ));
        assert!(accepted(r#"{"type":"é","data":"日本","ts":1,"seq":0}"#));
        assert!(accepted(r#"{"type":"a","data":1,"ts":1,"v":3,"seq":0}"#));
        // A version the reader cannot hold is left to the full check.
        assert_eq!(
            check(br#"{"type":"a","data":1,"ts":1,"v":4294967296,"seq":0}"#),
            None
        );
    }

    #[test]
    fn finds_the_first_special_byte_wherever_it_is() {
        for special in [b'"', b'\\', 0x00, 0x1f] {
            for len in 0..40 {
                for at in 0..=len {
                    let mut bytes = vec![b'a'; len];
                    bytes.extend_from_slice("é".as_bytes());
                    if at < len {
                        bytes[at] = special;
                    }
                    let expected = (at < len).then_some((at, true));
                    assert_eq!(special_byte(&bytes), expected, "{special} at {at} of {len}");
                }
            }
        }
        assert_eq!(
            special_byte(&[0x7f, 0x80, 0xff, 0x20, 0x21, 0x23, 0x5b, 0x5d, b'"']),
            Some((8, false))
        );
        assert_eq!(special_byte(b"0123456789\xc3\xa9\""), Some((12, false)));
        assert_eq!(special_byte(b"0123456789\""), Some((10, true)));
    }

    /// The log of `lines`, each with its newline, and where each starts.
    fn log_of(lines: &[String]) -> (Vec<u8>, Vec<u64>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for line in lines {
            starts.push(bytes.len() as u64);
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        (bytes, starts)
    }

    fn numbered(seq: u64, pad: usize) -> String {
        format!(
            r#"{{"type":"n","data":{{"pad":"{}"}},"ts":1,"seq":{seq}}}"#,
            "x".repeat(pad)
        )
    }

    #[test]
    fn check_lines_stops_at_the_first_line_the_full_check_must_see() {
        // Lines across several chunks, then one of another shape.
        let mut lines: Vec<String> = (0..3000)
            .map(|n| numbered(n + 5, 700 + n as usize % 9))
            .collect();
        let (bytes, _) = log_of(&lines);
        let len = bytes.len() as u64;
        assert!(len > 2 * CHUNK as u64);
        assert_eq!(check_lines(&mut &bytes[..], len, 5).unwrap(), (len, 3005));
        lines[2000] = r#"{"type":"n", "data":1,"ts":1,"seq":2005}"#.to_owned();
        let (bytes, starts) = log_of(&lines);
        let len = bytes.len() as u64;
        assert_eq!(
            check_lines(&mut &bytes[..], len, 5).unwrap(),
            (starts[2000], 2005)
        );
        // A line out of order.
        lines[2000] = numbered(9999, 1);
        let (bytes, starts) = log_of(&lines);
        assert_eq!(
            check_lines(&mut &bytes[..], bytes.len() as u64, 5).unwrap(),
            (starts[2000], 2005)
        );
        // A line longer than a chunk.
        lines[2000] = numbered(2005, CHUNK + 10);
        let (bytes, starts) = log_of(&lines);
        assert_eq!(
            check_lines(&mut &bytes[..], bytes.len() as u64, 5).unwrap(),
            (starts[2000], 2005)
        );
        // Lines from before sequence numbers take their place's.
        let legacy: Vec<String> = (0..10)
            .map(|_| r#"{"type":"n","data":1,"ts":1}"#.to_owned())
            .collect();
        let (bytes, _) = log_of(&legacy);
        assert_eq!(
            check_lines(&mut &bytes[..], bytes.len() as u64, 0).unwrap(),
            (bytes.len() as u64, 10)
        );
    }

    #[test]
    fn leaves_everything_else_to_the_full_check() {
        for line in [
            r#"{"type":"a","data":1e999,"ts":1,"seq":0}"#,
            r#"{"type":"a","data":1234567890123456789012,"ts":1,"seq":0}"#,
            r#"{"type":"a","data":"\ud800","ts":1,"seq":0}"#,
            r#"{"type":"a","data":{"\u0024serde_json::private::RawValue":"1"},"ts":1}"#,
            r#"{"type":"a","data":{"$serde_json::private::RawValue":"1"},"ts":1,"seq":0}"#,
            r#"{"type":"a", "data":1,"ts":1,"seq":0}"#,
            r#"{"data":1,"type":"a","ts":1,"seq":0}"#,
            r#"{"type":"a","data":01,"ts":1,"seq":0}"#,
            r#"{"type":"a","data":[1,],"ts":1,"seq":0}"#,
            r#"{"type":"a","data":1,"ts":-1,"seq":0}"#,
            r#"{"type":"a","data":1,"ts":1,"seq":0,"x":1}"#,
            r#"{"type":"a","data":1,"ts":1,"seq":0}x"#,
            r#"{"type":"a","data":1,"ts":1,"meta":[],"seq":0}"#,
        ] {
            assert!(!accepted(line), "{line}");
        }
        assert!(check(b"{\"type\":\"\xff\",\"data\":1,\"ts\":1}").is_none());
        let deep = format!(
            r#"{{"type":"a","data":{}1{},"ts":1}}"#,
            "[".repeat(MAX_NESTING + 1),
            "]".repeat(MAX_NESTING + 1)
        );
        assert!(!accepted(&deep));
    }
}
