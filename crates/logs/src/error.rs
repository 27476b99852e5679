//! The error type of [`crate::Logs::clear`], the one fallible operation.
//! Capture itself never fails: its troubles are [`crate::LogProblem`]s, not errors.

use std::{io, path::PathBuf};

/// Clearing a service's logs failed.
#[derive(Debug, thiserror::Error)]
#[error("clearing the logs of {service:?}")]
pub struct LogsError {
    /// The service whose files could not all be deleted.
    pub service: String,
    /// What went wrong.
    #[source]
    pub kind: LogsErrorKind,
}

/// What went wrong in a [`LogsError`].
#[derive(Debug, thiserror::Error)]
pub enum LogsErrorKind {
    /// A log file could not be deleted.
    #[error("could not delete {}", path.display())]
    Delete {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}
