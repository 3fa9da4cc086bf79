//! The message format: what each JetStream message carries besides the
//! event's line, and the hashes that tie the stream to one log.
//!
//! Message `n` of the stream (JetStream counts from 1) is event `n - 1` of
//! the log. Its payload is the event's stored line, byte for byte, without
//! the newline. Its headers:
//!
//! | header | value |
//! |---|---|
//! | `Nats-Msg-Id` | `<log id>-<seq>`: de-duplicates a retried publish |
//! | `Nats-Expected-Last-Sequence` | `seq`: the server stores it only as message `seq + 1` |
//! | `Eventfold-Log` | the log id: the line hash of event 0 |
//! | `Eventfold-Seq` | the event's sequence number |
//! | `Eventfold-Hash` | the line hash, xxh3-64 of the line, 16 hex digits |
//! | `Eventfold-Chain` | the chain hash of events `0..=seq`, 16 hex digits |
//!
//! The **log id** is the line hash of event 0: an event's line never
//! changes once written, so it names the log for as long as it exists,
//! without a file of its own. (Two logs whose first events are the same
//! bytes, same type, data and timestamp, share an id; the chain hash
//! still tells them apart at the first event where they differ.)
//!
//! The **chain hash** of event `k` is xxh3-64 of the chain hash of event
//! `k - 1` (0 before event 0) followed by the line hash of event `k`, both
//! as 8 little-endian bytes. Checking the last message's chain against the
//! local log checks every message before it too.

use async_nats::HeaderMap;

/// Header: the log id.
pub(crate) const LOG: &str = "Eventfold-Log";
/// Header: the event's sequence number.
pub(crate) const SEQ: &str = "Eventfold-Seq";
/// Header: the line hash.
pub(crate) const HASH: &str = "Eventfold-Hash";
/// Header: the chain hash.
pub(crate) const CHAIN: &str = "Eventfold-Chain";

/// The line hash of a stored line (without its newline), as eventfold
/// computes it for snapshots.
///
/// # Examples
///
/// ```
/// let line = r#"{"type":"a","data":1,"ts":7,"seq":0}"#;
/// assert_eq!(eventfold_nats::line_hash(line.as_bytes()).len(), 16);
/// ```
pub fn line_hash(line: &[u8]) -> String {
    hex(xxhash_rust::xxh3::xxh3_64(line))
}

/// The chain hash after `prev` (0 before event 0) and a line of hash `hash`.
pub(crate) fn chain(prev: u64, hash: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&prev.to_le_bytes());
    bytes[8..].copy_from_slice(&hash.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// 16 lowercase hex digits.
pub(crate) fn hex(v: u64) -> String {
    format!("{v:016x}")
}

/// What the headers of one message say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) log: String,
    pub(crate) seq: u64,
    pub(crate) hash: u64,
    pub(crate) chain: u64,
}

impl Stamp {
    /// The headers of the message for event `seq`.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", format!("{}-{}", self.log, self.seq).as_str());
        h.insert("Nats-Expected-Last-Sequence", self.seq.to_string().as_str());
        h.insert(LOG, self.log.as_str());
        h.insert(SEQ, self.seq.to_string().as_str());
        h.insert(HASH, hex(self.hash).as_str());
        h.insert(CHAIN, hex(self.chain).as_str());
        h
    }

    /// Reads a stamp from a message's headers, or says what is missing.
    pub(crate) fn parse(headers: Option<&HeaderMap>) -> Result<Stamp, String> {
        let headers = headers.ok_or("it has no headers")?;
        let get = |name: &str| {
            headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .ok_or_else(|| format!("it has no {name} header"))
        };
        let num = |name: &str, radix: u32| {
            let text = get(name)?;
            u64::from_str_radix(&text, radix).map_err(|_| format!("its {name} header is {text:?}"))
        };
        Ok(Stamp {
            log: get(LOG)?,
            seq: num(SEQ, 10)?,
            hash: num(HASH, 16)?,
            chain: num(CHAIN, 16)?,
        })
    }
}

/// The xxh3-64 of a line, as a number.
pub(crate) fn hash64(line: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_from_its_headers() {
        let stamp = Stamp {
            log: "00000000deadbeef".into(),
            seq: 41,
            hash: 7,
            chain: chain(1, 7),
        };
        let headers = stamp.headers();
        assert_eq!(Stamp::parse(Some(&headers)), Ok(stamp));
        assert_eq!(
            headers.get("Nats-Msg-Id").map(|v| v.as_str()),
            Some("00000000deadbeef-41")
        );
    }

    #[test]
    fn a_message_without_stamp_is_named() {
        assert_eq!(Stamp::parse(None), Err("it has no headers".into()));
        let err = Stamp::parse(Some(&HeaderMap::new())).unwrap_err();
        assert!(err.contains(LOG), "{err}");
    }

    #[test]
    fn the_chain_depends_on_order() {
        assert_ne!(chain(chain(0, 1), 2), chain(chain(0, 2), 1));
    }

    #[test]
    fn the_line_hash_is_eventfolds() {
        // The hash eventfold stores for this line in a snapshot.
        let line = br#"{"type":"a","data":1,"ts":7,"seq":0}"#;
        assert_eq!(line_hash(line), hex(hash64(line)));
        assert_eq!(line_hash(b""), "2d06800538d394c2");
    }
}
