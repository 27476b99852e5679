//! Records service lifecycle transitions into `service_events`, in batches, off the caller's
//! thread.
//!
//! [`EventRecorder::record`] only puts the row on a bounded queue: it never
//! waits for the disk or a lock, so the supervisor is never slowed by the database. A writer
//! thread with its own connection takes whatever has queued up and writes it in one
//! transaction. When the channel is full the row is dropped and counted, and one warning is
//! logged per burst of drops; losing history rows is preferred over blocking the supervisor.
//! The same transaction deletes the oldest rows beyond [`RecorderOptions::max_rows`], so the
//! history stays bounded however long conductor runs.
//! This module does not read events back.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::database::{Database, OpenError, OpenErrorKind, OpenOptions};

/// Rows that may wait for the writer before new ones are dropped. The bound is a counter beside
/// an unbounded channel rather than a `sync_channel`, which would allocate and touch every slot
/// up front (600 KiB of memory for a queue that is nearly always empty).
const QUEUE_CAPACITY: usize = 4096;
/// Rows written per transaction at most.
const MAX_BATCH: usize = 512;
/// [`RecorderOptions::max_rows`] unless the caller says otherwise.
const DEFAULT_MAX_ROWS: u64 = 10_000;

/// Deletes the rows older than the newest `?1`. `id` is the `INTEGER PRIMARY KEY`, the rowid
/// itself: `max(id)` is one B-tree descent and the delete a rowid range, so each batch pays
/// for the rows it deletes (about as many as it inserted), not for the rows kept, as a
/// `count(*)` or `LIMIT -1 OFFSET` would. SQLite gives a new row `max(rowid) + 1`, so the ids
/// are consecutive; gaps (rows deleted by someone else) only make it keep fewer rows.
const PRUNE_SQL: &str =
    "DELETE FROM service_events WHERE id <= (SELECT max(id) FROM service_events) - ?1";

/// How an [`EventRecorder`] keeps `service_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderOptions {
    /// The most rows `service_events` keeps: after each batch the oldest beyond this are
    /// deleted (0 keeps none). Default 10 000.
    pub max_rows: u64,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        Self {
            max_rows: DEFAULT_MAX_ROWS,
        }
    }
}

/// One lifecycle transition of a service, as stored in `service_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEventRow {
    /// The service's name.
    pub service: String,
    /// The state it left (wire name, e.g. `starting`); `None` for the first state of a run.
    pub from_state: Option<String>,
    /// The state it entered (wire name).
    pub to_state: String,
    /// Why, in words (`exited with code 1`, `health check failed 3 times`).
    pub reason: Option<String>,
    /// The start attempt's `CONDUCTOR_CORRELATION_ID`, when there is one.
    pub correlation_id: Option<String>,
    /// When it happened, RFC 3339 UTC.
    pub timestamp: String,
}

/// What an [`EventRecorder`] did over its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderSummary {
    /// Rows written to `service_events`, including those pruned since.
    pub written: u64,
    /// Rows lost: dropped because the queue was full, or in a batch that failed to write.
    pub dropped: u64,
    /// Transactions that wrote rows (each holds up to 512 rows).
    pub batches: u64,
}

/// Counters shared between the callers of `record` and the writer thread.
#[derive(Debug, Default)]
struct Counters {
    /// Rows sent and not yet taken by the writer.
    queued: AtomicUsize,
    dropped: AtomicU64,
    /// Set while rows are being dropped, so a burst logs one warning, not one per row.
    dropping: AtomicBool,
}

/// A batched writer of [`ServiceEventRow`]s on its own thread with its own connection.
///
/// Drop or [`EventRecorder::close`] it to flush: both wait for queued rows to be written.
#[derive(Debug)]
pub struct EventRecorder {
    tx: Option<Sender<ServiceEventRow>>,
    writer: Option<JoinHandle<Written>>,
    counters: Arc<Counters>,
}

impl EventRecorder {
    /// Opens `path` (which must already be migrated: `service_events` must exist) on a new
    /// connection and starts the writer thread, keeping the default
    /// [`RecorderOptions::max_rows`].
    pub fn start(path: &Path) -> Result<EventRecorder, OpenError> {
        EventRecorder::start_with(path, &RecorderOptions::default())
    }

    /// [`EventRecorder::start`] with `options`.
    pub fn start_with(path: &Path, options: &RecorderOptions) -> Result<EventRecorder, OpenError> {
        let fail = |kind| OpenError {
            path: path.to_path_buf(),
            kind,
        };
        if !path.exists() {
            return Err(fail(OpenErrorKind::NotInitialized));
        }
        let Database { conn, .. } = Database::open(path, &OpenOptions::default())?;
        let has_table: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'service_events'",
                [],
                |row| row.get(0),
            )
            .map_err(|err| fail(OpenErrorKind::Sqlite { detail: err.to_string() }))?;
        if !has_table {
            return Err(fail(OpenErrorKind::NotInitialized));
        }
        // Beyond i64::MAX nothing can be pruned anyway: rowids are i64.
        let max_rows = i64::try_from(options.max_rows).unwrap_or(i64::MAX);
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let writer_counters = Arc::clone(&counters);
        let writer = std::thread::Builder::new()
            .name("conductor-db-events".to_owned())
            .spawn(move || write_loop(conn, &rx, &writer_counters, max_rows))
            .map_err(|err| {
                fail(OpenErrorKind::Sqlite {
                    detail: format!("cannot start the event writer thread: {err}"),
                })
            })?;
        Ok(EventRecorder {
            tx: Some(tx),
            writer: Some(writer),
            counters,
        })
    }

    /// Queues `row` for writing. Never blocks: when the queue is full the row is dropped
    /// and counted in [`RecorderSummary::dropped`].
    pub fn record(&self, row: ServiceEventRow) {
        let Some(tx) = &self.tx else { return };
        let counters = &self.counters;
        // The slot is taken before sending, so the writer never sees more than the capacity.
        let has_room = counters.queued.fetch_add(1, Ordering::AcqRel) < QUEUE_CAPACITY;
        if has_room && tx.send(row).is_ok() {
            if counters.dropping.swap(false, Ordering::Relaxed) {
                tracing::info!("service event recorder keeps up again");
            }
            return;
        }
        counters.queued.fetch_sub(1, Ordering::AcqRel);
        let n_dropped = counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if !counters.dropping.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                n_dropped,
                "service event recorder is behind; dropping lifecycle rows until it catches up"
            );
        }
    }

    /// Writes every queued row (one transaction per batch), stops the writer thread and
    /// says how many rows were written and dropped.
    pub fn close(mut self) -> RecorderSummary {
        self.finish()
    }

    fn finish(&mut self) -> RecorderSummary {
        // Closing the channel is the writer's signal to flush what is queued and stop.
        drop(self.tx.take());
        let written = match self.writer.take().map(JoinHandle::join) {
            Some(Ok(written)) => written,
            Some(Err(_)) => {
                tracing::error!("service event writer thread panicked");
                Written::default()
            }
            None => Written::default(),
        };
        RecorderSummary {
            written: written.rows,
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            batches: written.batches,
        }
    }
}

impl Drop for EventRecorder {
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.finish();
        }
    }
}

/// What the writer thread wrote.
#[derive(Debug, Default, Clone, Copy)]
struct Written {
    rows: u64,
    batches: u64,
}

/// Waits for a row, takes whatever else is queued (up to [`MAX_BATCH`]) and writes the batch
/// in one transaction that also prunes down to `max_rows`, until every sender is gone and the
/// queue is empty.
fn write_loop(
    mut conn: Connection,
    rx: &Receiver<ServiceEventRow>,
    counters: &Counters,
    max_rows: i64,
) -> Written {
    let mut written = Written::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        counters.queued.fetch_sub(batch.len(), Ordering::AcqRel);
        match write_batch(&mut conn, &batch, max_rows) {
            Ok(()) => {
                written.rows += batch.len() as u64;
                written.batches += 1;
            }
            Err(err) => {
                counters
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::warn!(n_rows = batch.len(), error = %err, "cannot write service events; rows lost");
            }
        }
        batch.clear();
    }
    if let Err((_, err)) = conn.close() {
        tracing::warn!(error = %err, "cannot close the service event writer's connection");
    }
    written
}

fn write_batch(
    conn: &mut Connection,
    batch: &[ServiceEventRow],
    max_rows: i64,
) -> rusqlite::Result<()> {
    let transaction = conn.transaction()?;
    {
        let mut insert = transaction.prepare_cached(
            "INSERT INTO service_events \
             (service, from_state, to_state, reason, correlation_id, timestamp) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for row in batch {
            insert.execute((
                &row.service,
                &row.from_state,
                &row.to_state,
                &row.reason,
                &row.correlation_id,
                &row.timestamp,
            ))?;
        }
        // In the batch's transaction: one commit (one WAL sync) for both, and readers never
        // see more than `max_rows`. The first batch on a database that grew before pruning
        // existed deletes its whole backlog once; that runs on this thread, not the caller's.
        transaction.prepare_cached(PRUNE_SQL)?.execute([max_rows])?;
    }
    transaction.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pruning runs with every batch, so it must not scan the table it keeps bounded.
    #[test]
    fn pruning_searches_the_primary_key_instead_of_scanning() {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch(include_str!("../../../migrations/V1__conductor_tables.sql"))
            .expect("V1 creates service_events");
        let mut plan = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {PRUNE_SQL}"))
            .expect("plan");
        let details: Vec<String> = plan
            .query_map([50], |row| row.get(3))
            .expect("plan rows")
            .collect::<Result<_, _>>()
            .expect("plan rows read");
        assert!(
            details
                .iter()
                .any(|d| d == "SEARCH service_events USING INTEGER PRIMARY KEY (rowid<?)"),
            "{details:?}"
        );
        assert!(
            !details.iter().any(|d| d.starts_with("SCAN")),
            "{details:?}"
        );
    }

    #[test]
    fn default_keeps_ten_thousand_rows() {
        assert_eq!(RecorderOptions::default().max_rows, 10_000);
    }
}
