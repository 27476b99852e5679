//! Opens conductor's SQLite database, migrates it safely and records service lifecycle events.
//!
//! Entry points: [`Database::open`] (create if missing; WAL, `busy_timeout`, foreign keys on;
//! refuses anything that is not an SQLite database without touching it), [`Database::init`]
//! (refinery migrations, embedded from the workspace's `migrations/` folder or read from a
//! directory at run time, with an online backup before migrating an existing database and a
//! restore when a migration fails), [`Database::status`], and [`EventRecorder`], a batched
//! writer of `service_events` rows on its own thread that keeps the newest
//! [`RecorderOptions::max_rows`].
//! [`database_url`] gives the one `DATABASE_URL` format handed to services.
//!
//! Everything here is blocking (rusqlite): async callers run it in `spawn_blocking` or on a
//! thread of their own. [`EventRecorder::record`] is the exception: it never blocks.
//!
//! This crate takes plain inputs (paths, durations) and knows nothing of the registry, the
//! supervisor or IPC; it never decides whether services may start, it reports what happened.
#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

mod backup;
mod database;
mod migrate;
mod recorder;
mod url;

#[cfg(unix)]
#[path = "unix.rs"]
mod sys;
#[cfg(windows)]
#[path = "windows.rs"]
mod sys;

pub use crate::{
    database::{
        CloseError, CloseErrorKind, Database, DbStatus, Interrupt, OpenError, OpenErrorKind,
        OpenOptions, StatusError, StatusErrorKind,
    },
    migrate::{InitReport, MigrateError, MigrateErrorKind, Migrations, Restored},
    recorder::{EventRecorder, RecorderOptions, RecorderSummary, ServiceEventRow},
    url::{database_url, path_from_database_url},
};

#[cfg(test)]
mod tests {
    /// The supervisor moves a `Database` into `spawn_blocking` and shares one recorder
    /// between its tasks.
    #[test]
    fn handles_can_cross_threads() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<crate::Database>();
        send_sync::<crate::EventRecorder>();
        send_sync::<crate::OpenError>();
        send_sync::<crate::MigrateError>();
    }
}
