//! SPEC §4 (every lifecycle transition is recorded): the `EventRecorder` writes
//! `service_events` rows in batches, never blocks its caller, and flushes on close.
#![cfg(unix)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::redact;
use conductor_db::{
    Database, EventRecorder, Migrations, OpenErrorKind, OpenOptions, RecorderOptions,
    RecorderSummary, ServiceEventRow,
};
use conductor_test_support::{TempDir, wait_until};

fn migrated(tmp: &TempDir) -> std::path::PathBuf {
    let path = tmp.join("factsway.db");
    let mut db = Database::open(&path, &OpenOptions::default()).expect("opens");
    db.init(&Migrations::Embedded, &tmp.join("backups"))
        .expect("init");
    db.close().expect("closes");
    path
}

fn row(n: usize) -> ServiceEventRow {
    ServiceEventRow {
        service: format!("service-{}", n % 8),
        from_state: (n > 0).then(|| "starting".to_owned()),
        to_state: "running".to_owned(),
        reason: Some(format!("transition {n}")),
        correlation_id: Some(format!("corr-{n}")),
        timestamp: format!("2026-11-25T03:00:00.{n:06}Z"),
    }
}

fn stored_rows(path: &Path) -> Vec<ServiceEventRow> {
    let conn = rusqlite::Connection::open(path).expect("opens");
    let mut statement = conn
        .prepare(
            "SELECT service, from_state, to_state, reason, correlation_id, timestamp \
             FROM service_events ORDER BY id",
        )
        .expect("query");
    statement
        .query_map([], |r| {
            Ok(ServiceEventRow {
                service: r.get(0)?,
                from_state: r.get(1)?,
                to_state: r.get(2)?,
                reason: r.get(3)?,
                correlation_id: r.get(4)?,
                timestamp: r.get(5)?,
            })
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows read")
}

/// Another connection holding the write lock, so the recorder's writer waits and rows pile
/// up in its queue.
fn hold_write_lock(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("opens");
    conn.execute_batch("BEGIN IMMEDIATE").expect("write lock");
    conn
}

#[test]
fn close_flushes_every_recorded_row_in_order() {
    let tmp = TempDir::new("flush");
    let path = migrated(&tmp);
    let recorder = EventRecorder::start(&path).expect("starts");
    let rows: Vec<ServiceEventRow> = (0..300).map(row).collect();
    for r in &rows {
        recorder.record(r.clone());
    }

    let summary = recorder.close();

    assert_eq!(summary.written, 300);
    assert_eq!(summary.dropped, 0);
    assert_eq!(stored_rows(&path), rows);
}

#[test]
fn rows_queued_while_the_writer_waits_are_written_in_few_batches() {
    let tmp = TempDir::new("batches");
    let path = migrated(&tmp);
    let recorder = EventRecorder::start(&path).expect("starts");
    let lock = hold_write_lock(&path);
    for n in 0..1000 {
        recorder.record(row(n));
    }
    drop(lock);

    let summary = recorder.close();

    assert_eq!(summary.written, 1000);
    assert_eq!(summary.dropped, 0);
    // The first batch may hold a single row; the 999 others queued behind the lock go in
    // batches of up to 512.
    assert!(summary.batches <= 3, "{summary:?}: rows were not batched");
    assert_eq!(stored_rows(&path).len(), 1000);
}

#[test]
fn record_never_blocks_and_counts_rows_dropped_when_the_queue_is_full() {
    let tmp = TempDir::new("drops");
    let path = migrated(&tmp);
    let recorder = EventRecorder::start(&path).expect("starts");
    let lock = hold_write_lock(&path);
    let n_rows = 6000;
    let started = Instant::now();
    for n in 0..n_rows {
        recorder.record(row(n));
    }
    let recording = started.elapsed();
    drop(lock);

    let RecorderSummary {
        written, dropped, ..
    } = recorder.close();

    assert!(
        recording < Duration::from_secs(5),
        "recording took {recording:?}: record waited for the locked writer"
    );
    // Queue of 4096 plus one batch of 512 in the writer's hands at most.
    assert!(dropped >= 6000 - 4096 - 512, "dropped {dropped}");
    assert_eq!(written + dropped, 6000);
    assert_eq!(stored_rows(&path).len() as u64, written);
}

#[test]
fn history_beyond_max_rows_is_pruned_oldest_first() {
    let tmp = TempDir::new("prune");
    let path = migrated(&tmp);
    let recorder =
        EventRecorder::start_with(&path, &RecorderOptions { max_rows: 50 }).expect("starts");
    let rows: Vec<ServiceEventRow> = (0..500).map(row).collect();
    // In bursts, each waited for, so the bound holds between batches too, not only at close.
    for burst in rows.chunks(100) {
        for r in burst {
            recorder.record(r.clone());
        }
        let last = burst.last().expect("bursts are not empty");
        let stored = wait_until(
            Duration::from_secs(30),
            &format!("{:?} to be written", last.reason),
            || {
                let stored = stored_rows(&path);
                if stored.last() == Some(last) {
                    Ok(stored)
                } else {
                    Err(format!(
                        "{} rows, the last {:?}",
                        stored.len(),
                        stored.last()
                    ))
                }
            },
        );
        assert!(stored.len() <= 50, "{} rows kept", stored.len());
    }

    let summary = recorder.close();

    assert_eq!(summary.written, 500, "{summary:?}");
    assert_eq!(summary.dropped, 0, "{summary:?}");
    assert_eq!(
        stored_rows(&path),
        rows[450..],
        "the newest 50 rows, in order"
    );
}

#[test]
fn recorder_needs_a_migrated_database() {
    let tmp = TempDir::new("not-migrated");
    let missing = tmp.join("missing.db");
    let err = EventRecorder::start(&missing).expect_err("no file");
    assert!(matches!(err.kind, OpenErrorKind::NotInitialized), "{err}");
    assert!(!missing.exists(), "start does not create the database");

    let empty = tmp.join("empty.db");
    Database::open(&empty, &OpenOptions::default())
        .expect("opens")
        .close()
        .expect("closes");
    let err = EventRecorder::start(&empty).expect_err("no table");
    assert!(matches!(err.kind, OpenErrorKind::NotInitialized), "{err}");
    insta::assert_snapshot!(redact(&err.to_string(), tmp.path()));
}

#[test]
fn dropping_the_recorder_also_flushes() {
    let tmp = TempDir::new("drop");
    let path = migrated(&tmp);
    let recorder = EventRecorder::start(&path).expect("starts");
    for n in 0..50 {
        recorder.record(row(n));
    }
    drop(recorder);
    assert_eq!(stored_rows(&path).len(), 50);
}
