//! The systems eventfold is measured against, each doing the same work on
//! the same data: the raw file floor, SQLite and fjall for writing; plain
//! read-and-parse loops for reading; the zstd crate alone for compressing;
//! a plain serialize-and-sync for snapshots.
//!
//! Every writer serializes each event itself, with serde_json, as
//! eventfold does: the work measured is always "event in memory to event
//! durable on disk".

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use eventfold::{Event, EventLog};
use serde::Serialize;

use crate::BenchResult;
use crate::workload;

/// Buffer size of the reading peers: the same as eventfold's readers.
const READ_BUF: usize = 64 * 1024;

/// zstd level of eventfold's archive, used by the compressing peer.
pub const ZSTD_LEVEL: i32 = 1;

/// A system that makes events durable, one at a time or in batches.
pub trait Writer {
    /// Appends one event; returns once it is durable.
    fn append(&mut self, event: &Event) -> BenchResult<()>;
    /// Appends a batch of events as one unit; returns once all are durable.
    fn append_batch(&mut self, events: &[Event]) -> BenchResult<()>;
}

/// The systems that can write, in the order they appear in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// eventfold's `append` and `append_batch`.
    Eventfold,
    /// A growing file: `write_all` of the JSON lines, then `sync_data`.
    Raw,
    /// SQLite in WAL mode with `synchronous=FULL`, one row per event.
    Sqlite,
    /// fjall, one partition, `persist(SyncAll)` after each append or batch.
    Fjall,
}

impl System {
    /// Every system, eventfold first.
    pub const ALL: [System; 4] = [
        System::Eventfold,
        System::Raw,
        System::Sqlite,
        System::Fjall,
    ];

    /// The short name used in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            System::Eventfold => "eventfold",
            System::Raw => "raw",
            System::Sqlite => "sqlite",
            System::Fjall => "fjall",
        }
    }

    /// Opens the system on a new, empty directory.
    pub fn open(self, dir: &Path) -> BenchResult<Box<dyn Writer>> {
        Ok(match self {
            System::Eventfold => Box::new(EventLog::builder(dir).open()?),
            System::Raw => Box::new(RawFile::open(&dir.join("raw.jsonl"))?),
            System::Sqlite => Box::new(Sqlite::open(&dir.join("events.db"))?),
            System::Fjall => Box::new(Fjall::open(&dir.join("fjall"))?),
        })
    }
}

impl Writer for EventLog {
    fn append(&mut self, event: &Event) -> BenchResult<()> {
        EventLog::append(self, event)?;
        Ok(())
    }

    fn append_batch(&mut self, events: &[Event]) -> BenchResult<()> {
        EventLog::append_batch(self, events)?;
        Ok(())
    }
}

/// Writes `event` as one JSON line at the end of `buf`.
fn push_line(buf: &mut Vec<u8>, event: &Event) -> BenchResult<()> {
    serde_json::to_writer(&mut *buf, event)?;
    buf.push(b'\n');
    Ok(())
}

/// The floor: a file opened for appending, one `write_all` and one
/// `sync_data` per append or per batch.
pub struct RawFile {
    file: File,
    buf: Vec<u8>,
}

impl RawFile {
    /// Creates the file.
    pub fn open(path: &Path) -> BenchResult<RawFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(RawFile {
            file,
            buf: Vec::new(),
        })
    }
}

impl Writer for RawFile {
    fn append(&mut self, event: &Event) -> BenchResult<()> {
        self.append_batch(std::slice::from_ref(event))
    }

    fn append_batch(&mut self, events: &[Event]) -> BenchResult<()> {
        self.buf.clear();
        for event in events {
            push_line(&mut self.buf, event)?;
        }
        self.file.write_all(&self.buf)?;
        self.file.sync_data()?;
        Ok(())
    }
}

/// SQLite (bundled), WAL mode, `synchronous=FULL`, one row per event, one
/// transaction per append or per batch.
pub struct Sqlite {
    conn: rusqlite::Connection,
    next_id: i64,
}

impl Sqlite {
    /// Creates the database and its table.
    pub fn open(path: &Path) -> BenchResult<Sqlite> {
        let conn = rusqlite::Connection::open(path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("SQLite refused WAL mode (got {mode})").into());
        }
        conn.execute_batch(
            "PRAGMA synchronous=FULL;
             CREATE TABLE events (id INTEGER PRIMARY KEY, type TEXT NOT NULL,
                                  data TEXT NOT NULL, ts INTEGER NOT NULL);",
        )?;
        Ok(Sqlite { conn, next_id: 0 })
    }
}

impl Writer for Sqlite {
    fn append(&mut self, event: &Event) -> BenchResult<()> {
        self.append_batch(std::slice::from_ref(event))
    }

    fn append_batch(&mut self, events: &[Event]) -> BenchResult<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (id, type, data, ts) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for event in events {
                let data = serde_json::to_string(&event.data)?;
                let ts = i64::try_from(event.ts)?;
                insert.execute((self.next_id, &event.event_type, data, ts))?;
                self.next_id += 1;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// fjall 2.x: one partition, key the big-endian sequence number, value
/// the JSON line; `persist(SyncAll)` after each append or batch.
pub struct Fjall {
    keyspace: fjall::Keyspace,
    partition: fjall::PartitionHandle,
    next_seq: u64,
}

impl Fjall {
    /// Creates the keyspace and its partition.
    pub fn open(path: &Path) -> BenchResult<Fjall> {
        let keyspace = fjall::Config::new(path).open()?;
        let partition =
            keyspace.open_partition("events", fjall::PartitionCreateOptions::default())?;
        Ok(Fjall {
            keyspace,
            partition,
            next_seq: 0,
        })
    }

    /// The next key and the event's line as the value.
    fn entry(&mut self, event: &Event) -> BenchResult<([u8; 8], Vec<u8>)> {
        let mut value = Vec::with_capacity(160);
        push_line(&mut value, event)?;
        let key = self.next_seq.to_be_bytes();
        self.next_seq += 1;
        Ok((key, value))
    }
}

impl Writer for Fjall {
    fn append(&mut self, event: &Event) -> BenchResult<()> {
        let (key, value) = self.entry(event)?;
        self.partition.insert(key, value)?;
        self.keyspace.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }

    fn append_batch(&mut self, events: &[Event]) -> BenchResult<()> {
        let mut batch = self.keyspace.batch();
        for event in events {
            let (key, value) = self.entry(event)?;
            batch.insert(&self.partition, key, value);
        }
        batch.commit()?;
        self.keyspace.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }
}

/// The read floor: splits `reader` into lines, parses each into an
/// [`Event`] and folds it into the counter; returns the count.
pub fn fold_lines(mut reader: impl BufRead) -> BenchResult<u64> {
    let mut line = Vec::new();
    let mut count = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(count);
        }
        let event: Event = serde_json::from_slice(line.strip_suffix(b"\n").unwrap_or(&line))?;
        count = workload::count(count, &event);
    }
}

/// The floor of a replay from the active log: [`fold_lines`] over the file.
pub fn replay_file(path: &Path) -> BenchResult<u64> {
    fold_lines(BufReader::with_capacity(READ_BUF, File::open(path)?))
}

/// The floor of a replay from the archive: the zstd crate's streaming
/// decoder, then [`fold_lines`].
pub fn replay_zstd(path: &Path) -> BenchResult<u64> {
    let compressed = BufReader::with_capacity(READ_BUF, File::open(path)?);
    let decoder = zstd::stream::read::Decoder::with_buffer(compressed)?;
    fold_lines(BufReader::with_capacity(READ_BUF, decoder))
}

/// The floor of a rotation: compresses `src` into a new file `dst` with the
/// zstd crate at eventfold's level, writing the checksum of the content in
/// the frame as eventfold's frames have it (and as the `zstd` command does
/// by default), then syncs it.
pub fn compress(src: &Path, dst: &Path) -> BenchResult<()> {
    let mut out = File::create(dst)?;
    let mut encoder = zstd::stream::Encoder::new(&mut out, ZSTD_LEVEL)?;
    encoder.include_checksum(true)?;
    std::io::copy(&mut File::open(src)?, &mut encoder)?;
    encoder.finish()?;
    out.sync_all()?;
    Ok(())
}

/// The floor of a snapshot save: serializes `value` and writes it to a new
/// file with one `sync_all`.
pub fn save_plain(value: &impl Serialize, path: &Path) -> BenchResult<()> {
    let bytes = serde_json::to_vec(value)?;
    let mut file = File::create(path)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Removes a file if it exists.
pub fn remove_if_exists(path: &Path) -> BenchResult<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}
