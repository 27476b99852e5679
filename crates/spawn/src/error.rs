//! Errors of [`spawn`](crate::spawn) and [`ProcessGroup::stop`](crate::ProcessGroup::stop).
//! The outer struct says where (which program, which group), the `kind` says what went wrong;
//! naming the service is the caller's job, this crate never knows it.

use std::{ffi::OsString, io, path::PathBuf, time::Duration};

/// A child could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start {program:?}: {kind}")]
pub struct SpawnError {
    /// The program as given in the [`SpawnSpec`](crate::SpawnSpec).
    pub program: OsString,
    /// What went wrong.
    pub kind: SpawnErrorKind,
    /// The operating system's error, when there was one.
    #[source]
    pub source: Option<io::Error>,
}

/// What went wrong in [`spawn`](crate::spawn).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnErrorKind {
    /// A bare program name (no path separator) was looked up on `PATH` and not found.
    #[error("program not found: looked it up in each directory of PATH")]
    NotFoundOnPath,
    /// A program given as a path (it contains a separator) does not exist.
    #[error("program not found: resolved it to {}, which does not exist", path.display())]
    NotFoundAtPath {
        /// The program resolved against the working directory the child would have had.
        path: PathBuf,
    },
    /// The program exists but may not be executed (or a directory on the way may not be
    /// searched).
    #[error("permission denied executing {}", describe_program(path.as_deref()))]
    PermissionDenied {
        /// Where the program was found, if we could tell.
        path: Option<PathBuf>,
    },
    /// The configured working directory does not exist.
    #[error("working directory {} does not exist", dir.display())]
    CwdMissing {
        /// The configured working directory.
        dir: PathBuf,
    },
    /// The configured working directory is a file, not a directory.
    #[error("working directory {} is not a directory", dir.display())]
    CwdNotDirectory {
        /// The configured working directory.
        dir: PathBuf,
    },
    /// This platform has no implementation yet.
    #[error("spawning is unsupported on this platform yet (needs job objects)")]
    Unsupported,
    /// Any other refusal by the operating system; see the source error.
    #[error("the operating system could not start it")]
    Os,
}

fn describe_program(path: Option<&std::path::Path>) -> String {
    match path {
        Some(path) => path.display().to_string(),
        None => "it (looked up on PATH)".to_owned(),
    }
}

/// A process group could not be stopped cleanly.
///
/// The [`ProcessGroup`](crate::ProcessGroup) still SIGKILLs the group when dropped.
#[derive(Debug, thiserror::Error)]
#[error("cannot stop process group {pgid}: {kind}")]
pub struct StopError {
    /// The process group (also the leader's pid).
    pub pgid: u32,
    /// What went wrong.
    pub kind: StopErrorKind,
    /// The operating system's error, when there was one.
    #[source]
    pub source: Option<io::Error>,
}

/// What went wrong in [`ProcessGroup::stop`](crate::ProcessGroup::stop).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StopErrorKind {
    /// `kill(-pgid, sig)` failed with something other than "no such process".
    #[error("sending {signal} to the group failed")]
    Signal {
        /// `SIGTERM` or `SIGKILL`.
        signal: &'static str,
    },
    /// Waiting for the leader failed.
    #[error("waiting for its leader to exit failed")]
    Wait,
    /// The leader survived SIGKILL for this long (uninterruptible sleep, e.g. a hung mount).
    #[error("its leader was still alive {after:?} after SIGKILL")]
    StillAlive {
        /// How long we waited after SIGKILL.
        after: Duration,
    },
    /// This platform has no implementation yet.
    #[error("stopping is unsupported on this platform yet (needs job objects)")]
    Unsupported,
}
