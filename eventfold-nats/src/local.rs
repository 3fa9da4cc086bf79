//! The local side: reading an eventfold log's stored lines by sequence
//! number, its id and its chain hashes, and a thread that feeds the lines
//! to the publisher as the writer appends them.

use std::thread;
use std::time::Duration;

use eventfold::EventReader;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::wire;

/// How long the feeding thread waits for new events before it looks
/// whether the publisher still wants them.
const WAIT: Duration = Duration::from_millis(200);

/// The log id of the history `reader` reads: the line hash of event 0, or
/// `None` while the log is empty.
pub(crate) fn log_id(reader: &EventReader) -> Result<Option<String>> {
    if reader.next_seq()? == 0 {
        return Ok(None);
    }
    match reader.read_from_seq(0)?.lines().next() {
        Some(item) => Ok(Some(wire::line_hash(item?.1.as_bytes()))),
        None => Ok(None),
    }
}

/// The chain hash and the line hash of event `seq`, reading the history
/// from 0 (the chain covers every event before it).
pub(crate) fn chain_at(reader: &EventReader, seq: u64) -> Result<(u64, u64)> {
    let mut chain = 0;
    for item in reader.read_from_seq(0)?.lines() {
        let (at, line) = item?;
        let hash = wire::hash64(line.as_bytes());
        chain = wire::chain(chain, hash);
        if at == seq {
            return Ok((chain, hash));
        }
    }
    Err(eventfold::Error::InvalidSeq {
        seq,
        next_seq: reader.next_seq()?,
    }
    .into())
}

/// One stored line, with its sequence number.
pub(crate) type Line = (u64, String);

/// Starts a thread that sends every line from `seq` on, in order, waiting
/// for the writer at the end of the history, until the receiver is
/// dropped. A read error is sent, and ends the thread.
pub(crate) fn feed(reader: EventReader, seq: u64, capacity: usize) -> mpsc::Receiver<Result<Line>> {
    let (tx, rx) = mpsc::channel(capacity);
    thread::spawn(move || {
        let mut next = seq;
        loop {
            let lines = match reader.read_from_seq(next) {
                Ok(read) => read.lines(),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.into()));
                    return;
                }
            };
            for item in lines {
                let item = item.map_err(Into::into);
                let failed = item.is_err();
                if let Ok((seq, _)) = &item {
                    next = seq + 1;
                }
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
            }
            loop {
                if tx.is_closed() {
                    return;
                }
                match reader.wait_for(next, WAIT) {
                    Ok(n) if n > next => break,
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e.into()));
                        return;
                    }
                }
            }
        }
    });
    rx
}
