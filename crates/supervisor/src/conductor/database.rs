//! The database steps: SPEC §4 step 3 (open, migrate, start the event recorder) and
//! `database:status`, run off the runtime's workers because rusqlite blocks.

use conductor_db::{Database, EventRecorder, InitReport, Migrations, OpenOptions};
use conductor_protocol::{DatabaseStatus, Event};

use super::Conductor;
use crate::sync::LockExt;

/// Database initialisation or status failed.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The file could not be opened or created.
    #[error(transparent)]
    Open(#[from] conductor_db::OpenError),
    /// A migration failed (the database was restored).
    #[error(transparent)]
    Migrate(#[from] conductor_db::MigrateError),
    /// Reading the status failed.
    #[error(transparent)]
    Status(#[from] conductor_db::StatusError),
    /// The blocking task running it died.
    #[error("database task failed: {0}")]
    Task(String),
}

impl Conductor {
    /// Opens (creating if missing) and migrates the database: SPEC §4 step 3. A failed
    /// migration was restored from its backup by the `db` crate. Emits `database:initialized`.
    pub async fn init_database(&self) -> Result<InitReport, DatabaseError> {
        let database = self.inner.database.clone();
        let path = self.inner.database_path.clone();
        let migrations = match &self.registry().database.migrations {
            Some(dir) => Migrations::Dir(dir.clone()),
            None => Migrations::Embedded,
        };
        let backups = self.inner.paths.user_data.join("backups");
        let interrupt = self.inner.database_interrupt.clone();
        let recorder_options = conductor_db::RecorderOptions {
            max_rows: self.inner.event_history,
        };
        // rusqlite blocks: run it off the runtime's workers.
        let result = tokio::task::spawn_blocking(
            move || -> Result<(InitReport, Option<EventRecorder>), DatabaseError> {
                let mut guard = database.lock_recovered();
                if guard.is_none() {
                    *guard = Some(Database::open(&path, &OpenOptions::default())?);
                }
                let db = guard.as_mut().expect("opened just above");
                *interrupt.lock_recovered() = Some(db.interrupt_handle());
                let report = db.init(&migrations, &backups)?;
                let recorder = EventRecorder::start_with(&path, &recorder_options)?;
                Ok((report, Some(recorder)))
            },
        )
        .await
        .map_err(|err| DatabaseError::Task(err.to_string()))
        .and_then(|result| result);
        match result {
            Ok((report, recorder)) => {
                let mut slot = self.inner.shared.recorder.lock_recovered();
                if slot.is_none() {
                    *slot = recorder;
                }
                drop(slot);
                self.inner.shared.bus.publish(Event::DatabaseInitialized {
                    success: true,
                    migrations_run: report.migrations_run,
                });
                Ok(report)
            }
            Err(err) => {
                self.inner.shared.bus.publish(Event::DatabaseInitialized {
                    success: false,
                    migrations_run: 0,
                });
                Err(err)
            }
        }
    }

    /// Interrupts the statement [`Conductor::init_database`] is running, if any: the migration
    /// rolls back and the backup is restored, so `init_database` soon returns an error. Call it
    /// repeatedly until `init_database` returns (between statements it does nothing).
    pub fn interrupt_database(&self) {
        if let Some(interrupt) = self.inner.database_interrupt.lock_recovered().as_ref() {
            interrupt.interrupt();
        }
    }

    /// `database:status`.
    pub async fn database_status(&self) -> Result<DatabaseStatus, DatabaseError> {
        let database = self.inner.database.clone();
        let path = self.inner.database_path.clone();
        let status = tokio::task::spawn_blocking(
            move || -> Result<conductor_db::DbStatus, DatabaseError> {
                let mut guard = database.lock_recovered();
                if guard.is_none() {
                    *guard = Some(Database::open(&path, &OpenOptions::default())?);
                }
                Ok(guard.as_ref().expect("opened just above").status()?)
            },
        )
        .await
        .map_err(|err| DatabaseError::Task(err.to_string()))??;
        Ok(DatabaseStatus {
            initialized: status.initialized,
            version: status.version,
            path: status.path.display().to_string(),
        })
    }
}
