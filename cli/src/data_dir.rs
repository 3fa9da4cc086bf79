//! Opening a data directory for reading, with errors that say what is
//! wrong with the path a person gave.
//!
//! Every command reads through [`EventReader`] alone: no lock is taken and
//! nothing is written, so the directory may have a live writer, belong to
//! another user or be read-only.

use std::fs;
use std::io;
use std::path::Path;

use eventfold::EventReader;

use crate::failure::Failure;

/// Names of which a data directory holds at least one once a writer has
/// opened it: the active log, the archive and the views' directory.
const MARKERS: [&str; 3] = ["app.jsonl", "archive.jsonl.zst", "views"];

/// Opens a reader on `dir` after checking that it is a data directory:
/// one that holds the active log, the archive or `views/`, or an empty
/// directory (a history with no events yet).
///
/// # Errors
///
/// [`Failure::Dir`] naming the path when it does not exist, is not a
/// directory, cannot be read, or holds other files but none of
/// eventfold's; [`Failure::Read`] if the reader cannot be opened.
pub fn open(dir: &Path) -> Result<EventReader, Failure> {
    let shown = dir.display();
    let metadata = fs::metadata(dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Failure::Dir(format!("no such directory: {shown}")),
        io::ErrorKind::PermissionDenied => Failure::Dir(format!("permission denied: {shown}")),
        _ => Failure::Dir(format!("cannot read {shown}: {e}")),
    })?;
    if !metadata.is_dir() {
        let hint = match dir.parent() {
            Some(parent) if is_marker(dir) && !parent.as_os_str().is_empty() => {
                format!(
                    " (give the data directory that holds it: {})",
                    parent.display()
                )
            }
            _ => String::new(),
        };
        return Err(Failure::Dir(format!("not a directory: {shown}{hint}")));
    }
    let unreadable = |e: io::Error| match e.kind() {
        io::ErrorKind::PermissionDenied => Failure::Dir(format!(
            "permission denied: cannot list the directory {shown}"
        )),
        _ => Failure::Dir(format!("cannot list the directory {shown}: {e}")),
    };
    let mut empty = true;
    for entry in fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        if MARKERS.iter().any(|m| entry.file_name() == *m) {
            return Ok(EventReader::open(dir)?);
        }
        empty = false;
    }
    if !empty {
        return Err(Failure::Dir(format!(
            "not an eventfold data directory: {shown} (it holds none of app.jsonl, \
             archive.jsonl.zst, views/)"
        )));
    }
    Ok(EventReader::open(dir)?)
}

/// Whether `path` names one of eventfold's own files.
fn is_marker(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| MARKERS.iter().any(|m| name == *m) || name == "archive.index.jsonl")
}
