//! Why a command did not finish, as the tool reports it: a message for
//! people and an exit code.

use std::fmt;
use std::io;

/// Exit code of a command that failed, or found problems.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a command given bad arguments (as clap's own).
pub const EXIT_USAGE: u8 = 2;

/// A command's failure.
#[derive(Debug)]
pub enum Failure {
    /// Arguments that clap accepts one by one but not together.
    Usage(String),
    /// The data directory cannot be used: missing, not a directory, not
    /// readable, not eventfold's.
    Dir(String),
    /// Reading the events failed.
    Read(eventfold::Error),
    /// Writing the output failed.
    Output(io::Error),
    /// A check found problems, already reported; the message sums them up.
    Problems(String),
    /// Another runtime failure, described.
    Other(String),
}

impl Failure {
    /// The process's exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }

    /// Whether the output was closed by its reader (`eventfold export |
    /// head`): the reader has what it wanted, so this is no failure.
    pub fn is_closed_output(&self) -> bool {
        matches!(self, Failure::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(message)
            | Failure::Dir(message)
            | Failure::Problems(message)
            | Failure::Other(message) => f.write_str(message),
            Failure::Read(e) => write!(f, "{e}"),
            Failure::Output(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl From<eventfold::Error> for Failure {
    fn from(e: eventfold::Error) -> Self {
        Failure::Read(e)
    }
}

impl From<io::Error> for Failure {
    /// An I/O error outside the library's calls is the output's: the tool
    /// reads only through the library.
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}
