//! rd-chain's one error type. Every message starts with what went wrong and says what to do next; the variant
//! decides the exit code (see `exit`).

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::exit;
use crate::record::PhaseEnd;
use crate::signals::Stop;

#[derive(Debug)]
pub enum Error {
    /// The command line or an environment variable is wrong (exit 2).
    Usage(String),
    /// The SOTA factor workspace (or the SOTA model asked for) could not be resolved (exit 3).
    Resolution(String),
    /// `rdagent` is missing or not executable (exit 4).
    RdagentMissing(String),
    /// Another rd-chain holds the run's lock (exit 5).
    Busy(String),
    /// A phase's child exited non-zero or was killed; the chain stops with the code `end` maps to.
    Phase { message: String, end: PhaseEnd },
    /// rd-chain was interrupted, terminated or hung up; the code is the signal's (130, 143, 129).
    Interrupted { message: String, stop: Stop },
    /// An I/O failure on a file rd-chain needed (exit 1).
    Io {
        context: String,
        path: Option<PathBuf>,
        source: io::Error,
    },
    /// A bug: something rd-chain assumed did not hold (exit 1).
    Internal(String),
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    pub fn resolution(msg: impl Into<String>) -> Error {
        Error::Resolution(msg.into())
    }

    pub fn io(context: impl Into<String>, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            path: Some(path.into()),
            source,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Resolution(_) => exit::RESOLUTION,
            Error::RdagentMissing(_) => exit::RDAGENT_MISSING,
            Error::Busy(_) => exit::BUSY,
            Error::Phase { end, .. } => end.exit_code(),
            Error::Interrupted { stop, .. } => stop.exit_code(),
            Error::Io { .. } | Error::Internal(_) => exit::INTERNAL,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(
                f,
                "{m}\nRun `rd-chain --help` for the flags and environment variables."
            ),
            Error::Resolution(m)
            | Error::RdagentMissing(m)
            | Error::Internal(m)
            | Error::Busy(m) => f.write_str(m),
            Error::Phase { message, .. } | Error::Interrupted { message, .. } => {
                f.write_str(message)
            }
            Error::Io {
                context,
                path,
                source,
            } => match path {
                Some(p) => write!(f, "{context} {}: {source}", p.display()),
                None => write!(f, "{context}: {source}"),
            },
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
