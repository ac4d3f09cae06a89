//! One error type for every driver: what went wrong, with enough context (the peer's log
//! file) to debug a failed test without re-running it.

use std::path::PathBuf;
use std::time::Duration;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{tool} is not installed (run scripts/setup): {source}")]
    ToolMissing {
        tool: &'static str,
        source: std::io::Error,
    },
    #[error("i/o error while {context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("timed out after {after:?} waiting for {what} (log: {log:?})")]
    Timeout {
        what: String,
        after: Duration,
        log: Option<PathBuf>,
    },
    #[error("{tool} exited early with {status} (log: {log:?})")]
    ExitedEarly {
        tool: &'static str,
        status: String,
        log: Option<PathBuf>,
    },
    #[error("could not parse {what}: {detail}")]
    Parse { what: String, detail: String },
    #[error("{tool} refused command {command:?}: {detail}")]
    CommandFailed {
        tool: &'static str,
        command: String,
        detail: String,
    },
    /// The browser tests' tools (Chromium, node, the npm packages) are not installed.
    #[error("{what} (run scripts/setup)")]
    BrowserSetup { what: String },
    #[error("no free port found after {attempts} attempts")]
    NoFreePort { attempts: u32 },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
