//! `conductor db migrate`: SPEC §4 step 3 without the rest of `up`: take the data directory's
//! lock, create the database if missing, back it up when migrations are pending, migrate
//! (restoring the backup on failure), and start nothing. The database one-shot of every
//! export runs it; the other `db` subcommands talk to a running conductor instead.
//!
//! Wiring only: migrations and backups are `conductor-db`'s.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use conductor_db::{Database, Migrations, OpenOptions};
use conductor_registry::LoadOptions;

use crate::{failure::Failure, instance, registry_choice::RegistryChoice, remote::Target};

/// Arguments of `conductor db migrate`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct MigrateArgs {
    /// Database file [default: the registry's [database] path, else <data dir>/<app name>.db]
    #[arg(long, value_name = "FILE")]
    database: Option<PathBuf>,
    /// Migrations directory [default: the registry's [database] migrations, else the embedded ones]
    #[arg(long, value_name = "DIR")]
    migrations: Option<PathBuf>,
    /// Wait this long for the data directory's lock when another conductor holds it
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    lock_timeout: Duration,
}

/// How often a held lock is tried again within `--lock-timeout`.
const LOCK_RETRY: Duration = Duration::from_millis(100);

pub(crate) fn run(args: &MigrateArgs, target: &Target) -> Result<(), Failure> {
    let registry =
        RegistryChoice::from_arg(target.registry.as_deref()).load(&LoadOptions::default())?;
    let user_data = instance::data_dir(target.data_dir.as_deref(), &registry.app.name)?;
    let deadline = Instant::now() + args.lock_timeout;
    // Held until the end: a running `up` (or another migration) never sees its database
    // migrated under it.
    let _lock = loop {
        match instance::lock(&user_data) {
            Err(Failure::AlreadyRunning(_)) if Instant::now() < deadline => {
                // A blocking flock has no timeout, so --lock-timeout is a poll of the
                // non-blocking one: the sleep paces retries, it synchronises nothing.
                std::thread::sleep(LOCK_RETRY);
            }
            result => break result?,
        }
    };
    let evidence = user_data.join("evidence");
    std::fs::create_dir_all(&evidence)
        .with_context(|| format!("creating {}", evidence.display()))?;
    let path = match (&args.database, &registry.database.path) {
        (Some(path), _) => std::path::absolute(path).context("resolving --database")?,
        (None, Some(path)) => path.clone(),
        (None, None) => user_data.join(format!("{}.db", registry.app.name.to_lowercase())),
    };
    let migrations = match (&args.migrations, &registry.database.migrations) {
        (Some(dir), _) => {
            Migrations::Dir(std::path::absolute(dir).context("resolving --migrations")?)
        }
        (None, Some(dir)) => Migrations::Dir(dir.clone()),
        (None, None) => Migrations::Embedded,
    };
    let mut database = Database::open(&path, &OpenOptions::default())
        .map_err(|error| Failure::Database(error.into()))?;
    let report = database
        .init(&migrations, &user_data.join("backups"))
        .map_err(|error| Failure::Database(error.into()))?;
    println!(
        "✓ Database initialized ({} migrations)",
        report.migrations_run
    );
    database
        .close()
        .with_context(|| format!("closing {}", path.display()))?;
    Ok(())
}
