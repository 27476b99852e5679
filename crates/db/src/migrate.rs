//! Migrating the database with refinery: backup first, restore on failure.
//!
//! [`Database::init`] reads the applied history (refinery's `refinery_schema_history` table)
//! and checks it against the known migrations before changing anything: a history newer than
//! this binary, an edited or a missing migration is refused. When migrations are pending it
//! takes a snapshot (a backup file when the database has content, an in-memory copy when it is
//! empty), then lets refinery apply each pending migration in its own transaction. Per
//! migration rather than grouped, because refinery then tells which migration failed; the
//! snapshot makes the whole run all-or-nothing anyway: on any failure the database is
//! restored from it, so its content is what it was before `init`.
//! This module does not decide what happens to services after a failure; the caller does.

use std::collections::BTreeSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use refinery::{Migration, Runner};
use rusqlite::Connection;

use crate::backup::{self, Snapshot};
use crate::database::{Database, is_busy, locked_message};
use crate::sys;

mod embedded {
    // `(stem, sql)` of each file in the workspace's `migrations/` folder, by version.
    include!(concat!(env!("OUT_DIR"), "/embedded_migrations.rs"));
}

/// refinery's history table.
const HISTORY_TABLE: &str = "refinery_schema_history";

/// Where the migrations come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migrations {
    /// The SQL files of the workspace's `migrations/` folder, embedded at build time.
    Embedded,
    /// `V<n>__<name>.sql` files read from this directory at run time (the registry's
    /// `[database] migrations`).
    Dir(PathBuf),
}

/// What [`Database::init`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// How many migrations ran now (0 when the database was up to date).
    pub migrations_run: u32,
    /// The migrations that ran, in order, as `V2__app_meta`.
    pub applied: Vec<String>,
    /// The backup taken before migrating, if the database had content and migrations were
    /// pending.
    pub backup: Option<PathBuf>,
}

/// One row of the applied history.
#[derive(Debug, Clone)]
pub(crate) struct AppliedMigration {
    pub(crate) version: i32,
    name: String,
    checksum: String,
}

impl AppliedMigration {
    fn label(&self) -> String {
        format!("V{}__{}", self.version, self.name)
    }
}

impl Database {
    /// Applies the pending migrations from `migrations`, after a backup into `backups_dir`.
    ///
    /// - Nothing pending: nothing is written and no backup is made.
    /// - Pending, database with content: an online backup goes to `backups_dir` (created if
    ///   missing) as `<stem>-<seq>-<UTC time>-v<current version>.db`; the newest 3 per database
    ///   by `<seq>` are kept, the new one always. An empty database is copied into memory
    ///   instead.
    /// - A migration fails: the database is restored from that copy and the error names the
    ///   migration, SQLite's message and where the database was restored from.
    /// - The history has a migration newer than any known one, or one that differs from or is
    ///   missing among the known ones: refused before anything is written.
    pub fn init(
        &mut self,
        migrations: &Migrations,
        backups_dir: &Path,
    ) -> Result<InitReport, MigrateError> {
        let path = self.path.clone();
        let fail = |kind| MigrateError {
            path: path.clone(),
            kind,
        };
        let known = load(migrations).map_err(fail)?;
        self.known = migrations.clone();
        let busy_timeout = self.busy_timeout;
        let sqlite_kind =
            |source: rusqlite::Error| MigrateErrorKind::from_sqlite(&source, &path, busy_timeout);
        let applied = applied_history(&self.conn).map_err(|e| fail(sqlite_kind(e)))?;
        let pending = pending(&known, &applied).map_err(fail)?;
        if pending.is_empty() {
            tracing::debug!(db = %path.display(), "database is up to date");
            return Ok(InitReport {
                migrations_run: 0,
                applied: Vec::new(),
                backup: None,
            });
        }

        let version = applied.iter().map(|m| m.version).max().unwrap_or(0);
        let snapshot = if has_content(&self.conn).map_err(|e| fail(sqlite_kind(e)))? {
            let file = backup::create(&self.conn, &path, backups_dir, version, busy_timeout)
                .map_err(|detail| {
                    fail(MigrateErrorKind::Backup {
                        dir: backups_dir.to_path_buf(),
                        detail,
                    })
                })?;
            tracing::info!(backup = %file.display(), version, "backed up the database before migrating");
            Snapshot::File(file)
        } else {
            let memory = backup::to_memory(&self.conn, busy_timeout)
                .map_err(|detail| fail(MigrateErrorKind::Sqlite { detail }))?;
            Snapshot::Memory(memory)
        };
        let backup = match &snapshot {
            Snapshot::File(file) => Some(file.clone()),
            Snapshot::Memory(_) => None,
        };

        // Only now are refinery's own migration values needed (building them compiles a regex).
        let runner = Runner::new(&refinery_migrations(migrations).map_err(fail)?)
            .set_grouped(false)
            .set_abort_divergent(true)
            .set_abort_missing(true);
        tracing::info!(
            db = %path.display(),
            pending = ?pending.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "applying migrations"
        );
        match runner.run(&mut self.conn) {
            Ok(report) => {
                let applied: Vec<String> = report
                    .applied_migrations()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                tracing::info!(db = %path.display(), migrations = ?applied, "database migrated");
                Ok(InitReport {
                    migrations_run: u32::try_from(applied.len()).unwrap_or(u32::MAX),
                    applied,
                    backup,
                })
            }
            Err(err) => {
                let migration = err
                    .report()
                    .and_then(|report| pending.get(report.applied_migrations().len()))
                    .map_or_else(|| "(unknown)".to_owned(), ToString::to_string);
                let (sql_error, busy) = match err.kind() {
                    refinery::error::Kind::Connection(_, source) => {
                        let busy = source
                            .downcast_ref::<rusqlite::Error>()
                            .is_some_and(is_busy);
                        (source.to_string(), busy)
                    }
                    other => (other.to_string(), false),
                };
                tracing::error!(db = %path.display(), %migration, %sql_error, "migration failed; restoring");
                // Migrations committed in this run, each in its own transaction; the failing
                // one was rolled back by SQLite.
                let n_committed = err
                    .report()
                    .map_or(0, |report| report.applied_migrations().len());
                let restored = match backup::restore(&mut self.conn, &snapshot, busy_timeout) {
                    Ok(()) => match &backup {
                        Some(file) => Restored::FromBackup(file.clone()),
                        None => Restored::ToEmpty,
                    },
                    // Typically the same lock that failed the migration: nothing to undo.
                    Err(restore_error) if n_committed == 0 => {
                        tracing::warn!(%restore_error, "restore failed, but no migration had been applied");
                        Restored::NothingApplied
                    }
                    Err(restore_error) => {
                        return Err(fail(MigrateErrorKind::RestoreFailed {
                            migration,
                            sql_error,
                            backup,
                            restore_error,
                        }));
                    }
                };
                let kind = if busy {
                    MigrateErrorKind::Locked {
                        pid: sys::lock_holder_pid(&path),
                        waited: busy_timeout,
                        migration: Some(migration),
                    }
                } else {
                    MigrateErrorKind::Failed {
                        migration,
                        sql_error,
                        restored,
                    }
                };
                Err(fail(kind))
            }
        }
    }
}

/// A known migration: what the applied history is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Known {
    /// `V` (versioned) or `U` (unversioned, may run out of order).
    versioned: bool,
    pub(crate) version: i32,
    name: String,
    /// refinery's checksum of name, version and SQL, as stored in its history table.
    checksum: u64,
}

impl fmt::Display for Known {
    /// As refinery names a migration: `V1__conductor_tables`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = if self.versioned { "V" } else { "U" };
        write!(f, "{prefix}{}__{}", self.version, self.name)
    }
}

impl Known {
    fn from_refinery(migration: &Migration) -> Known {
        Known {
            versioned: migration.prefix().to_string() == "V",
            version: migration.version(),
            name: migration.name().to_owned(),
            checksum: migration.checksum(),
        }
    }

    /// An embedded migration, named and checksummed the way refinery does (the build script
    /// let through only plain `V<n>__<ascii word>` names, which parse the same both ways).
    fn embedded(stem: &str, sql: &str) -> Option<Known> {
        let (versioned, rest) = match stem.as_bytes().first()? {
            b'V' => (true, &stem[1..]),
            b'U' => (false, &stem[1..]),
            _ => return None,
        };
        let (version, name) = rest.split_once("__")?;
        let version: i32 = version.parse().ok()?;
        // refinery-core 0.10, `Migration::unapplied`: SipHasher13 over name, version, SQL.
        let mut hasher = siphasher::sip::SipHasher13::new();
        name.hash(&mut hasher);
        version.hash(&mut hasher);
        sql.hash(&mut hasher);
        Some(Known {
            versioned,
            version,
            name: name.to_owned(),
            checksum: hasher.finish(),
        })
    }
}

/// The known migrations, sorted by version.
pub(crate) fn load(migrations: &Migrations) -> Result<Vec<Known>, MigrateErrorKind> {
    let mut known = match migrations {
        Migrations::Embedded => embedded::EMBEDDED
            .iter()
            .map(|(stem, sql)| {
                Known::embedded(stem, sql).ok_or_else(|| MigrateErrorKind::LoadMigrations {
                    dir: PathBuf::from("(embedded)"),
                    detail: format!("{stem} is not named V<n>__<name>"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        Migrations::Dir(_) => refinery_migrations(migrations)?
            .iter()
            .map(Known::from_refinery)
            .collect(),
    };
    known.sort_by_key(|k| k.version);
    for pair in known.windows(2) {
        if pair[0].version == pair[1].version {
            let dir = match migrations {
                Migrations::Dir(dir) => dir.clone(),
                Migrations::Embedded => PathBuf::from("(embedded)"),
            };
            return Err(MigrateErrorKind::LoadMigrations {
                dir,
                detail: format!("{} and {} have the same version", pair[0], pair[1]),
            });
        }
    }
    Ok(known)
}

/// refinery's own values for the known migrations, which its runner takes.
fn refinery_migrations(migrations: &Migrations) -> Result<Vec<Migration>, MigrateErrorKind> {
    match migrations {
        Migrations::Embedded => embedded::EMBEDDED
            .iter()
            .map(|(stem, sql)| {
                Migration::unapplied(stem, sql).map_err(|err| MigrateErrorKind::LoadMigrations {
                    dir: PathBuf::from("(embedded)"),
                    detail: format!("{stem}: {err}"),
                })
            })
            .collect(),
        Migrations::Dir(dir) => {
            let load_error = |detail: String| MigrateErrorKind::LoadMigrations {
                dir: dir.clone(),
                detail,
            };
            let found =
                refinery::load_sql_migrations(dir).map_err(|e| load_error(e.to_string()))?;
            if found.is_empty() {
                return Err(load_error("no V<n>__<name>.sql file in it".to_owned()));
            }
            Ok(found)
        }
    }
}

/// The applied history, oldest first; empty when the history table does not exist (it is
/// not created here, so that reading the status never writes).
pub(crate) fn applied_history(conn: &Connection) -> rusqlite::Result<Vec<AppliedMigration>> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [HISTORY_TABLE],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut statement = conn.prepare(&format!(
        "SELECT version, name, checksum FROM {HISTORY_TABLE} ORDER BY version"
    ))?;
    let rows = statement.query_map([], |row| {
        Ok(AppliedMigration {
            version: row.get(0)?,
            name: row.get(1)?,
            checksum: row.get(2)?,
        })
    })?;
    rows.collect()
}

/// Whether the database holds any table, index, view or trigger.
fn has_content(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT count(*) > 0 FROM sqlite_master", [], |row| {
        row.get(0)
    })
}

/// The known migrations still to apply, after checking the history against them the way
/// refinery will (so that its refusals happen here, before any backup or write, with a
/// clearer message).
fn pending(known: &[Known], applied: &[AppliedMigration]) -> Result<Vec<Known>, MigrateErrorKind> {
    let known_max = known.iter().map(|k| k.version).max().unwrap_or(0);
    if let Some(newest) = applied.iter().max_by_key(|m| m.version)
        && newest.version > known_max
    {
        return Err(MigrateErrorKind::NewerHistory {
            db_version: newest.version,
            known_version: known_max,
        });
    }
    for app in applied {
        match known.iter().find(|k| k.version == app.version) {
            None => {
                return Err(MigrateErrorKind::MissingMigration {
                    migration: app.label(),
                });
            }
            Some(k) if k.name != app.name || k.checksum.to_string() != app.checksum => {
                return Err(MigrateErrorKind::Divergent {
                    migration: app.label(),
                });
            }
            Some(_) => {}
        }
    }
    let applied_versions: BTreeSet<i32> = applied.iter().map(|m| m.version).collect();
    let current = applied_versions.last().copied();
    let mut pending = Vec::new();
    for migration in known {
        if applied_versions.contains(&migration.version) {
            continue;
        }
        // refinery lets unversioned (`U`) migrations run out of order; versioned ones never.
        if let Some(current) = current
            && migration.versioned
            && migration.version < current
        {
            return Err(MigrateErrorKind::OutOfOrder {
                migration: migration.to_string(),
                db_version: current,
            });
        }
        pending.push(migration.clone());
    }
    Ok(pending)
}

/// Migrating failed; `path` is the database file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct MigrateError {
    /// The database file.
    pub path: PathBuf,
    /// What went wrong.
    pub kind: MigrateErrorKind,
}

/// What kept the database from being migrated.
#[derive(Debug, thiserror::Error)]
pub enum MigrateErrorKind {
    /// The run-time migrations directory could not be read or holds no usable migration.
    #[error(
        "cannot read migrations from {} ({detail}): fix the files or the [database] migrations \
         setting; the database was not changed",
        dir.display()
    )]
    LoadMigrations {
        /// The migrations directory.
        dir: PathBuf,
        /// What was wrong with it.
        detail: String,
    },
    /// The history has a migration newer than any this binary knows.
    #[error(
        "database is at version {db_version} but this conductor knows migrations up to \
         {known_version}; refusing to touch it: upgrade conductor or restore an older database"
    )]
    NewerHistory {
        /// The newest applied version.
        db_version: i32,
        /// The newest known version.
        known_version: i32,
    },
    /// An applied migration differs from the known one with the same version.
    #[error(
        "applied migration {migration} differs from the known migration with the same version \
         (edited after it was applied?); refusing to touch the database: restore the original \
         migration file, or add the change as a new migration"
    )]
    Divergent {
        /// The applied migration, as `V1__name`.
        migration: String,
    },
    /// An applied migration is not among the known ones.
    #[error(
        "applied migration {migration} is not among the known migrations; refusing to touch the \
         database: use the migrations it was created with"
    )]
    MissingMigration {
        /// The applied migration, as `V1__name`.
        migration: String,
    },
    /// A known migration older than the database's version was never applied.
    #[error(
        "migration {migration} was never applied but the database is already at version \
         {db_version}; refusing to apply it out of order: give it a version above {db_version}"
    )]
    OutOfOrder {
        /// The unapplied migration, as `V1__name`.
        migration: String,
        /// The newest applied version.
        db_version: i32,
    },
    /// The backup before migrating could not be written; nothing was migrated.
    #[error(
        "cannot back up the database into {} before migrating ({detail}); nothing was \
         migrated: make that directory writable or free some disk space",
        dir.display()
    )]
    Backup {
        /// The backups directory.
        dir: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A migration failed and the database was restored to its state before `init`.
    #[error(
        "migration {migration} failed: {sql_error}; {restored}: fix the migration and start again"
    )]
    Failed {
        /// The failing migration, as `V3__add_things`.
        migration: String,
        /// SQLite's message.
        sql_error: String,
        /// How the database got back to its state before `init`.
        restored: Restored,
    },
    /// A migration failed and restoring the database failed too.
    #[error(
        "migration {migration} failed: {sql_error}; restoring the database also failed \
         ({restore_error}), so it may be half-migrated: {}",
        restore_hint(backup.as_deref())
    )]
    RestoreFailed {
        /// The failing migration.
        migration: String,
        /// SQLite's message for the migration.
        sql_error: String,
        /// The backup that could not be restored, if there was a file.
        backup: Option<PathBuf>,
        /// Why restoring failed.
        restore_error: String,
    },
    /// Another process held a lock past `busy_timeout`. When it happened during a migration,
    /// the database was restored to its state before `init`.
    #[error("{}{}", while_applying(migration.as_deref()), locked_message(*pid, *waited))]
    Locked {
        /// The process holding the lock, when `/proc/locks` tells.
        pid: Option<u32>,
        /// The busy timeout that ran out.
        waited: Duration,
        /// The migration that was waiting, or `None` while reading the history.
        migration: Option<String>,
    },
    /// SQLite failed while reading the history or copying the database.
    #[error("cannot read the migration history ({detail}): check the database file")]
    Sqlite {
        /// SQLite's message.
        detail: String,
    },
}

impl MigrateErrorKind {
    fn from_sqlite(source: &rusqlite::Error, path: &Path, busy_timeout: Duration) -> Self {
        if is_busy(source) {
            Self::Locked {
                pid: sys::lock_holder_pid(path),
                waited: busy_timeout,
                migration: None,
            }
        } else {
            Self::Sqlite {
                detail: source.to_string(),
            }
        }
    }
}

/// How a database got back to its state before a failed [`Database::init`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// Restored from this backup file.
    FromBackup(PathBuf),
    /// It was empty before and was restored from an in-memory copy.
    ToEmpty,
    /// Restoring failed, but no migration had been committed, so nothing needed undoing.
    NothingApplied,
}

impl fmt::Display for Restored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FromBackup(path) => {
                write!(f, "the database was restored from {}", path.display())
            }
            Self::ToEmpty => f.write_str("the database was restored to its empty state"),
            Self::NothingApplied => {
                f.write_str("no migration had been applied, so the database is as it was")
            }
        }
    }
}

fn while_applying(migration: Option<&str>) -> String {
    match migration {
        Some(migration) => {
            format!("migration {migration} was not applied and the database is as it was: ")
        }
        None => String::new(),
    }
}

fn restore_hint(backup: Option<&Path>) -> String {
    match backup {
        Some(path) => format!(
            "stop everything using it and copy {} over the database file (removing its -wal and \
             -shm files) before starting again",
            path.display()
        ),
        None => "it was empty before: delete it (and its -wal and -shm files) and start again"
            .to_owned(),
    }
}

#[cfg(test)]
mod known_tests {
    use super::*;

    /// The up-to-date check compares our checksums with the ones refinery wrote into the
    /// history: they must be refinery's, or every database would look edited.
    #[test]
    fn embedded_migrations_are_named_and_checksummed_exactly_as_refinery_does() {
        let synthetic = [
            ("V10__a__b", "CREATE TABLE t (x);"),
            ("U3___x", ""),
            (
                "V7__Ünïcode_free_but_long_name_0",
                "SELECT 1;\n-- comment\n",
            ),
        ];
        let all = embedded::EMBEDDED.iter().copied().chain(synthetic);
        let mut n_checked = 0;
        for (stem, sql) in all {
            let ours = Known::embedded(stem, sql).unwrap_or_else(|| panic!("{stem} parses"));
            let theirs = Migration::unapplied(stem, sql).unwrap();
            assert_eq!(ours, Known::from_refinery(&theirs), "{stem}");
            assert_eq!(ours.to_string(), theirs.to_string());
            n_checked += 1;
        }
        assert!(
            n_checked >= 2 + synthetic.len(),
            "the embedded list is empty"
        );
    }

    #[test]
    fn embedded_migrations_are_in_version_order() {
        let known = load(&Migrations::Embedded).unwrap();
        let versions: Vec<i32> = known.iter().map(|k| k.version).collect();
        assert!(
            versions.windows(2).all(|pair| pair[0] < pair[1]),
            "{versions:?}"
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        let n_files = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|entry| {
                entry
                    .as_ref()
                    .is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "sql"))
            })
            .count();
        assert_eq!(
            known.len(),
            n_files,
            "every file of {} is embedded",
            dir.display()
        );
        assert_eq!(known[0].to_string(), "V1__conductor_tables");
    }
}
