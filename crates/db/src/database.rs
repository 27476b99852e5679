//! Opening, inspecting and closing the database file.
//!
//! [`Database::open`] checks the path before SQLite sees it, so that each refusal (missing or
//! read-only directory, read-only file, a file that is not a database) is named precisely and
//! leaves the file untouched; then it opens the connection with WAL, `busy_timeout` and
//! foreign keys on. Migrations live in `migrate.rs`; this module does not run any.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::migrate::{self, Migrations};
use crate::sys;

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// How to open the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// How long a statement waits for another connection's lock before failing with
    /// "database is locked" (SQLite's `busy_timeout`). Default 5 s.
    pub busy_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Stops whatever statement a [`Database`]'s connection is running (see
/// [`Database::interrupt_handle`]). Between statements it does nothing, so a caller that
/// wants a long `init` to end calls [`Interrupt::interrupt`] until `init` returns.
pub struct Interrupt(rusqlite::InterruptHandle);

impl Interrupt {
    /// Interrupts the running statement, if any.
    pub fn interrupt(&self) {
        self.0.interrupt();
    }
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interrupt")
    }
}

/// An open conductor database: its path and one rusqlite connection.
///
/// Blocking: call its methods from `spawn_blocking` or a thread of your own.
#[derive(Debug)]
pub struct Database {
    pub(crate) path: PathBuf,
    pub(crate) conn: Connection,
    pub(crate) busy_timeout: Duration,
    /// The migrations [`Database::status`] compares the history with: those of the last
    /// [`Database::init`], or the embedded ones before any.
    pub(crate) known: Migrations,
}

/// What `database:status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbStatus {
    /// Every known migration is applied (and nothing newer is).
    pub initialized: bool,
    /// The version of the latest applied migration; `None` when none is applied.
    pub version: Option<u32>,
    /// The database file.
    pub path: PathBuf,
}

impl Database {
    /// Opens the database at `path`, creating the file if it is missing.
    ///
    /// The parent directory must exist and be writable (SQLite creates `-wal` and `-shm`
    /// files beside the database). An existing file must be writable and start with the
    /// SQLite header; anything else is refused before SQLite opens it, so it is never
    /// changed. The connection gets `journal_mode=WAL`, `busy_timeout` from `options` and
    /// `foreign_keys=ON`.
    pub fn open(path: &Path, options: &OpenOptions) -> Result<Database, OpenError> {
        let fail = |kind| OpenError {
            path: path.to_path_buf(),
            kind,
        };
        check_path(path).map_err(fail)?;
        let conn = connect(path, options.busy_timeout).map_err(fail)?;
        Ok(Database {
            path: path.to_path_buf(),
            conn,
            busy_timeout: options.busy_timeout,
            known: Migrations::Embedded,
        })
    }

    /// The database file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle, usable from any thread, that makes the statement this connection is running
    /// fail with "interrupted": a migration in progress then rolls back inside its transaction
    /// and [`Database::init`] restores the backup, so the database is never half migrated.
    pub fn interrupt_handle(&self) -> Interrupt {
        Interrupt(self.conn.get_interrupt_handle())
    }

    /// The latest applied migration and whether every known migration is applied.
    ///
    /// "Known" means the migrations given to the last [`Database::init`] on this value, or the
    /// embedded ones when `init` has not run. Reads only; never creates the history table.
    pub fn status(&self) -> Result<DbStatus, StatusError> {
        let fail = |kind| StatusError {
            path: self.path.clone(),
            kind,
        };
        let applied = migrate::applied_history(&self.conn).map_err(|source| {
            fail(StatusErrorKind::from_sqlite(
                &source,
                &self.path,
                self.busy_timeout,
            ))
        })?;
        let known = migrate::load(&self.known).map_err(|err| {
            fail(StatusErrorKind::Migrations {
                detail: err.to_string(),
            })
        })?;
        let version = applied.iter().map(|m| m.version).max();
        let initialized = !known.is_empty()
            && known
                .iter()
                .all(|k| applied.iter().any(|a| a.version == k.version))
            && version <= known.iter().map(|k| k.version).max();
        Ok(DbStatus {
            initialized,
            version: version.and_then(|v| u32::try_from(v).ok()),
            path: self.path.clone(),
        })
    }

    /// Checkpoints the WAL into the database file and closes the connection, so the file
    /// is complete on its own (the `-wal` file is removed by SQLite on the last close).
    pub fn close(self) -> Result<(), CloseError> {
        let path = self.path.clone();
        let fail = |kind| CloseError {
            path: path.clone(),
            kind,
        };
        // TRUNCATE also empties the -wal file. A reader elsewhere may keep the checkpoint from
        // finishing (first column 1): that is not an error, SQLite finishes it later.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|source| {
                fail(CloseErrorKind::Checkpoint {
                    detail: source.to_string(),
                })
            })?;
        self.conn.close().map_err(|(_, source)| {
            fail(CloseErrorKind::Close {
                detail: source.to_string(),
            })
        })
    }
}

/// Refuses, before SQLite touches anything, every path it could not or should not open.
fn check_path(path: &Path) -> Result<(), OpenErrorKind> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match std::fs::metadata(&dir) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => return Err(OpenErrorKind::NotADirectory { dir }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpenErrorKind::MissingDirectory { dir });
        }
        Err(err) => {
            return Err(OpenErrorKind::Inspect {
                detail: err.to_string(),
            });
        }
    }
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => return Err(OpenErrorKind::IsADirectory),
        Ok(_) => {
            check_header(path)?;
            if !sys::is_writable(path) {
                return Err(OpenErrorKind::ReadOnlyFile);
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(OpenErrorKind::Inspect {
                detail: err.to_string(),
            });
        }
    }
    if !sys::is_writable(&dir) {
        return Err(OpenErrorKind::ReadOnlyDirectory { dir });
    }
    Ok(())
}

/// An empty file is a valid empty database to SQLite; anything else must start with the
/// SQLite magic string.
fn check_header(path: &Path) -> Result<(), OpenErrorKind> {
    let inspect = |err: std::io::Error| OpenErrorKind::Inspect {
        detail: err.to_string(),
    };
    let file = File::open(path).map_err(inspect)?;
    let mut header = Vec::with_capacity(SQLITE_MAGIC.len());
    file.take(SQLITE_MAGIC.len() as u64)
        .read_to_end(&mut header)
        .map_err(inspect)?;
    if header.is_empty() || header == SQLITE_MAGIC {
        return Ok(());
    }
    Err(OpenErrorKind::NotADatabase {
        detail: format!(
            "its first bytes are not the SQLite header {:?}",
            "SQLite format 3"
        ),
    })
}

/// Opens the connection and applies the pragmas every conductor connection needs.
pub(crate) fn connect(path: &Path, busy_timeout: Duration) -> Result<Connection, OpenErrorKind> {
    let sqlite = |source: rusqlite::Error| OpenErrorKind::from_sqlite(&source, path, busy_timeout);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
    // Set before anything takes a lock, so that even switching to WAL waits for other users.
    conn.busy_timeout(busy_timeout).map_err(sqlite)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .map_err(sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenErrorKind::NoWal { mode });
    }
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(sqlite)?;
    // Reading the schema is the first read of the file's content: a corrupt or foreign file
    // that slipped past the header check fails here, before anything writes to it.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(sqlite)?;
    Ok(conn)
}

/// Whether `err` is SQLite giving up on another connection's lock.
pub(crate) fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// `5s`, `250ms`: how long SQLite waited for a lock.
pub(crate) fn human_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 && duration.as_secs() > 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// The shared wording of "another process holds the lock".
pub(crate) fn locked_message(pid: Option<u32>, waited: Duration) -> String {
    let holder = match pid {
        Some(pid) => format!("another process (pid {pid})"),
        None => "another process".to_owned(),
    };
    format!(
        "database is locked by {holder} and stayed locked past the busy timeout of {}: \
         stop the other program using it (or wait for it to finish) and start again",
        human_duration(waited)
    )
}

/// Opening the database failed; `path` is the database file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct OpenError {
    /// The database file conductor tried to open.
    pub path: PathBuf,
    /// What was wrong.
    pub kind: OpenErrorKind,
}

/// What kept the database from opening.
#[derive(Debug, thiserror::Error)]
pub enum OpenErrorKind {
    /// The directory that should hold the database does not exist.
    #[error("directory {} does not exist: create it or choose another data directory", dir.display())]
    MissingDirectory {
        /// The missing directory.
        dir: PathBuf,
    },
    /// The database's parent path exists but is not a directory.
    #[error("{} is not a directory: choose another data directory or [database] path", dir.display())]
    NotADirectory {
        /// The parent path.
        dir: PathBuf,
    },
    /// The directory is not writable, and SQLite must create the file and its `-wal` and
    /// `-shm` files there.
    #[error(
        "directory {} is read-only for this user, and SQLite must create the database and its \
         -wal and -shm files there: make it writable or choose another data directory",
        dir.display()
    )]
    ReadOnlyDirectory {
        /// The read-only directory.
        dir: PathBuf,
    },
    /// The database file exists but is not writable.
    #[error(
        "the database file is read-only for this user: make it writable (chmod u+w) or point \
         [database] path elsewhere"
    )]
    ReadOnlyFile,
    /// The path names a directory.
    #[error("this is a directory, not a database file: point [database] path at a file")]
    IsADirectory,
    /// The file exists and is not an SQLite database; it was not changed.
    #[error(
        "not an SQLite database ({detail}); conductor will not overwrite it: move it away or \
         point [database] path elsewhere"
    )]
    NotADatabase {
        /// Why it is not one.
        detail: String,
    },
    /// Another process held a lock for longer than `busy_timeout`.
    #[error("{}", locked_message(*pid, *waited))]
    Locked {
        /// The process holding the lock, when `/proc/locks` tells.
        pid: Option<u32>,
        /// The busy timeout that ran out.
        waited: Duration,
    },
    /// SQLite would not switch the database to WAL (some network file systems cannot).
    #[error(
        "SQLite kept journal mode {mode:?} instead of WAL (is this a network file system?): \
         put the database on a local disk"
    )]
    NoWal {
        /// The journal mode SQLite reported.
        mode: String,
    },
    /// The `service_events` table is missing (for [`crate::EventRecorder::start`]).
    #[error("table service_events does not exist: initialise the database (migrate) first")]
    NotInitialized,
    /// The path could not be inspected (permissions on a parent directory, I/O error).
    #[error("cannot inspect it ({detail}): check the permissions of the path")]
    Inspect {
        /// The I/O error.
        detail: String,
    },
    /// SQLite refused to open the file for another reason.
    #[error("SQLite cannot open it ({detail}): check the file and its directory")]
    Sqlite {
        /// SQLite's message.
        detail: String,
    },
}

impl OpenErrorKind {
    fn from_sqlite(source: &rusqlite::Error, path: &Path, busy_timeout: Duration) -> Self {
        if is_busy(source) {
            return Self::Locked {
                pid: sys::lock_holder_pid(path),
                waited: busy_timeout,
            };
        }
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Self::NotADatabase {
                detail: source.to_string(),
            },
            _ => Self::Sqlite {
                detail: source.to_string(),
            },
        }
    }
}

/// Reading the database's status failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct StatusError {
    /// The database file.
    pub path: PathBuf,
    /// What was wrong.
    pub kind: StatusErrorKind,
}

/// What kept the status from being read.
#[derive(Debug, thiserror::Error)]
pub enum StatusErrorKind {
    /// Another process held a lock for longer than `busy_timeout`.
    #[error("{}", locked_message(*pid, *waited))]
    Locked {
        /// The process holding the lock, when `/proc/locks` tells.
        pid: Option<u32>,
        /// The busy timeout that ran out.
        waited: Duration,
    },
    /// The known migrations could not be read (run-time directory).
    #[error("cannot read the known migrations ({detail})")]
    Migrations {
        /// What went wrong.
        detail: String,
    },
    /// SQLite failed to read the migration history.
    #[error("cannot read the migration history ({detail}): check the database file")]
    Sqlite {
        /// SQLite's message.
        detail: String,
    },
}

impl StatusErrorKind {
    fn from_sqlite(source: &rusqlite::Error, path: &Path, busy_timeout: Duration) -> Self {
        if is_busy(source) {
            Self::Locked {
                pid: sys::lock_holder_pid(path),
                waited: busy_timeout,
            }
        } else {
            Self::Sqlite {
                detail: source.to_string(),
            }
        }
    }
}

/// Closing the database failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct CloseError {
    /// The database file.
    pub path: PathBuf,
    /// What was wrong.
    pub kind: CloseErrorKind,
}

/// What went wrong while closing.
#[derive(Debug, thiserror::Error)]
pub enum CloseErrorKind {
    /// Copying the WAL into the database file failed; the `-wal` file still holds the data
    /// and SQLite replays it at the next open.
    #[error(
        "checkpointing the WAL failed ({detail}); the -wal file keeps the data and is replayed at the next start"
    )]
    Checkpoint {
        /// SQLite's message.
        detail: String,
    },
    /// SQLite refused to close the connection.
    #[error("closing the connection failed ({detail})")]
    Close {
        /// SQLite's message.
        detail: String,
    },
}

#[cfg(test)]
mod tests {
    use conductor_test_support::TempDir;

    use super::*;

    #[test]
    fn connection_has_wal_busy_timeout_and_foreign_keys() {
        let dir = TempDir::new("pragmas");
        let options = OpenOptions {
            busy_timeout: Duration::from_millis(1234),
        };
        let db = Database::open(&dir.join("app.db"), &options).expect("opens");
        let pragma = |name: &str| -> String {
            db.conn
                .query_row(&format!("PRAGMA {name}"), [], |row| {
                    row.get::<_, rusqlite::types::Value>(0)
                })
                .map(|value| match value {
                    rusqlite::types::Value::Integer(n) => n.to_string(),
                    rusqlite::types::Value::Text(text) => text,
                    other => format!("{other:?}"),
                })
                .expect("pragma answers")
        };
        assert_eq!(pragma("journal_mode"), "wal");
        assert_eq!(pragma("busy_timeout"), "1234");
        assert_eq!(pragma("foreign_keys"), "1");
        db.close().expect("closes");
        assert!(
            !dir.join("app.db-wal").exists(),
            "close removes the -wal file"
        );
    }

    #[test]
    fn default_busy_timeout_is_five_seconds() {
        assert_eq!(OpenOptions::default().busy_timeout, Duration::from_secs(5));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(5)), "5s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(human_duration(Duration::ZERO), "0ms");
    }
}
