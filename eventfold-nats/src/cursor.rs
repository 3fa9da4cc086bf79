//! The replicator's cursor file: how many events the server acknowledged,
//! kept outside the data directory (which the replicator never writes),
//! so that a stream that later holds fewer is noticed.
//!
//! One line of JSON, `{"stream":"orders","log":"<log id>","acked":1234}`,
//! replaced atomically (written to `<file>.tmp`, synced, renamed over the
//! file) at most once a second and when the replicator stops. It only
//! ever lags behind the server's acknowledgements, so a stream shorter
//! than it has lost acknowledged messages.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::error::{Error, Result};

/// A cursor file, and what it says.
#[derive(Debug)]
pub(crate) struct Cursor {
    path: PathBuf,
    stream: String,
    log: String,
    /// Events acknowledged, as last written.
    pub(crate) acked: u64,
}

impl Cursor {
    /// Reads the cursor at `path` for the stream `stream` and the log
    /// `log`; a missing file is a cursor at 0.
    pub(crate) fn load(path: &Path, stream: &str, log: &str) -> Result<Cursor> {
        let bad = |detail: String| Error::Cursor {
            path: path.to_owned(),
            detail,
        };
        let mut cursor = Cursor {
            path: path.to_owned(),
            stream: stream.to_owned(),
            log: log.to_owned(),
            acked: 0,
        };
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cursor),
            Err(e) => return Err(bad(format!("cannot be read: {e}"))),
        };
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| bad(format!("is not a cursor ({e}); remove it to start afresh")))?;
        let (Some(s), Some(l), Some(acked)) = (
            value["stream"].as_str(),
            value["log"].as_str(),
            value["acked"].as_u64(),
        ) else {
            return Err(bad("is not a cursor; remove it to start afresh".into()));
        };
        if s != stream || l != log {
            return Err(bad(format!(
                "belongs to the log {l} and the stream {s:?}, not to the log {log} and the \
                 stream {stream:?}: give each replicator its own cursor file"
            )));
        }
        cursor.acked = acked;
        Ok(cursor)
    }

    /// Records `acked` events as acknowledged, durably.
    pub(crate) fn save(&mut self, acked: u64) -> Result<()> {
        let bad = |e: std::io::Error| Error::Cursor {
            path: self.path.clone(),
            detail: format!("cannot be written: {e}"),
        };
        let line = json!({"stream": self.stream, "log": self.log, "acked": acked}).to_string();
        let mut tmp_name = self.path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let mut file = fs::File::create(&tmp).map_err(bad)?;
        file.write_all(line.as_bytes()).map_err(bad)?;
        file.write_all(b"\n").map_err(bad)?;
        file.sync_all().map_err(bad)?;
        fs::rename(&tmp, &self.path).map_err(bad)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(bad)?;
        }
        self.acked = acked;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_refuses_another_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let mut c = Cursor::load(&path, "s", "l1").unwrap();
        assert_eq!(c.acked, 0);
        c.save(42).unwrap();
        assert_eq!(Cursor::load(&path, "s", "l1").unwrap().acked, 42);
        let e = Cursor::load(&path, "s", "l2").unwrap_err().to_string();
        assert!(e.contains("belongs to the log l1"), "{e}");
        fs::write(&path, "nonsense").unwrap();
        assert!(Cursor::load(&path, "s", "l1").is_err());
    }
}
