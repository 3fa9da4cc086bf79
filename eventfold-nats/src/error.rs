//! The crate's single error type.

use std::fmt;
use std::path::PathBuf;

/// The result type of every fallible operation of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while replicating or mirroring.
///
/// The [`Display`](fmt::Display) text says what went wrong and what to do,
/// and is meant to be shown to people as it is.
///
/// # Examples
///
/// Telling a divergence (which must never be repaired automatically) apart
/// from the other failures:
///
/// ```
/// use eventfold_nats::Error;
///
/// fn exit_code(e: &Error) -> i32 {
///     match e {
///         Error::Divergence { .. } => 3,
///         _ => 1,
///     }
/// }
/// let e = Error::Divergence { stream: "orders".into(), detail: "another log".into() };
/// assert_eq!(exit_code(&e), 3);
/// assert!(e.to_string().contains("orders"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The local eventfold directory could not be read or written.
    Log(eventfold::Error),
    /// The NATS server could not be reached, or refused a request, in a
    /// way that retrying does not fix (bad address, no JetStream, a
    /// stream that cannot be created).
    Nats {
        /// What was being done.
        what: String,
        /// The client's error, as text.
        detail: String,
    },
    /// The stream and the local log disagree: the stream holds events the
    /// log does not, a different event at some position, or another log's
    /// events. Nothing was written; a person has to decide which side is
    /// right.
    Divergence {
        /// The stream's name.
        stream: String,
        /// Where and how they differ.
        detail: String,
    },
    /// The stream exists with settings that cannot keep the guarantee
    /// (memory storage, another subject, messages that are not
    /// eventfold's).
    StreamConfig {
        /// The stream's name.
        stream: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A message of the stream whose payload is not an event that an
    /// eventfold reader accepts at its place: it is not appended.
    Unmirrorable {
        /// The event's sequence number.
        seq: u64,
        /// Why.
        detail: String,
    },
    /// The replicator's cursor file could not be read or written, or
    /// belongs to another log or stream.
    Cursor {
        /// The cursor file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Log(e) => write!(f, "{e}"),
            Error::Nats { what, detail } => write!(
                f,
                "NATS: {what}: {detail} (is the server reachable, with JetStream enabled?)"
            ),
            Error::Divergence { stream, detail } => write!(
                f,
                "the stream {stream:?} and the local log have diverged: {detail}; nothing was \
                 written. Find out which side is right: replicate into a new stream, or \
                 restore the log, rather than repairing either by hand"
            ),
            Error::StreamConfig { stream, detail } => write!(
                f,
                "the stream {stream:?} cannot keep the exactly-once guarantee: {detail}"
            ),
            Error::Unmirrorable { seq, detail } => {
                write!(f, "event {seq} of the stream cannot be mirrored: {detail}")
            }
            Error::Cursor { path, detail } => {
                write!(f, "cursor file {}: {detail}", path.display())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Log(e) => Some(e),
            _ => None,
        }
    }
}

impl From<eventfold::Error> for Error {
    fn from(e: eventfold::Error) -> Self {
        Error::Log(e)
    }
}

/// An [`Error::Nats`] for `what`, from any error of the client.
pub(crate) fn nats(what: impl Into<String>, e: impl fmt::Display) -> Error {
    Error::Nats {
        what: what.into(),
        detail: e.to_string(),
    }
}
