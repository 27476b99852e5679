//! Online backups taken before migrating, restore after a failed migration, and pruning.
//!
//! A backup is a standalone SQLite file (journal mode DELETE, no `-wal` beside it) written by
//! SQLite's online backup API under a temporary name and renamed when complete, so a crash
//! never leaves a half backup that pruning would count. Names are
//! `<db stem>-<seq>-<UTC timestamp>-v<version>.db`, `<seq>` at least 6 digits and one more
//! than the highest among the backups of that stem already there.
//! Pruning orders backups by that sequence, not by the timestamp: a wall clock set back would
//! make the newest backup look oldest and get it deleted (issue 12); the timestamp is for people.
//! Names without a sequence (`<db stem>-<UTC timestamp>-v<version>.db`, written by conductor
//! before issue 12) still count as backups, older than any sequenced one.
//! This module does not decide when to back up; `migrate.rs` does.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// How many backups per database file are kept.
pub(crate) const KEEP_BACKUPS: usize = 3;

/// A copy of the database taken before migrating, to restore if a migration fails.
#[derive(Debug)]
pub(crate) enum Snapshot {
    /// A backup file in the backups directory.
    File(PathBuf),
    /// An in-memory copy of a database that had no content yet (nothing worth a file).
    Memory(Connection),
}

/// Writes a backup of `conn`'s main database into `backups_dir` (created if missing) and
/// prunes older backups of the same database down to [`KEEP_BACKUPS`], never the new one.
/// Waits up to `patience` for other connections' locks.
pub(crate) fn create(
    conn: &Connection,
    db_path: &Path,
    backups_dir: &Path,
    version: i32,
    patience: Duration,
) -> Result<PathBuf, String> {
    fs::create_dir_all(backups_dir).map_err(|err| format!("cannot create the directory: {err}"))?;
    let stem = backup_stem(db_path);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let target = free_name(backups_dir, &stem, version, now)?;
    let mut partial = target.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let written = write_copy(conn, &partial, patience).and_then(|()| {
        fs::rename(&partial, &target).map_err(|err| format!("cannot rename the backup: {err}"))
    });
    if let Err(err) = written {
        // A leftover partial file would only confuse whoever looks in the directory.
        let _ = fs::remove_file(&partial);
        return Err(err);
    }
    prune(backups_dir, &stem, &target);
    Ok(target)
}

/// Copies `conn`'s main database into memory, waiting up to `patience` for locks.
pub(crate) fn to_memory(conn: &Connection, patience: Duration) -> Result<Connection, String> {
    let mut memory = Connection::open_in_memory().map_err(|err| err.to_string())?;
    copy(conn, &mut memory, patience)?;
    Ok(memory)
}

/// Puts `snapshot`'s content back into `conn`'s main database, waiting up to `patience` for
/// other connections' locks.
pub(crate) fn restore(
    conn: &mut Connection,
    snapshot: &Snapshot,
    patience: Duration,
) -> Result<(), String> {
    match snapshot {
        Snapshot::Memory(memory) => copy(memory, conn, patience),
        Snapshot::File(path) => {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let source = Connection::open_with_flags(path, flags)
                .map_err(|err| format!("cannot open the backup: {err}"))?;
            copy(&source, conn, patience)
        }
    }
}

fn write_copy(conn: &Connection, partial: &Path, patience: Duration) -> Result<(), String> {
    let mut target = Connection::open(partial).map_err(|err| err.to_string())?;
    copy(conn, &mut target, patience)?;
    // The copied header says WAL like the source; a backup should be one self-contained file.
    target
        .query_row("PRAGMA journal_mode=DELETE", [], |_| Ok(()))
        .map_err(|err| err.to_string())?;
    target.close().map_err(|(_, err)| err.to_string())
}

/// Runs the online backup from `from` to `to` in one step, retrying while another
/// connection holds a lock, for at most `patience`.
fn copy(from: &Connection, to: &mut Connection, patience: Duration) -> Result<(), String> {
    let backup = Backup::new(from, to).map_err(|err| err.to_string())?;
    let deadline = Instant::now() + patience;
    loop {
        // -1: copy every page at once, so the copy is one consistent snapshot.
        match backup.step(-1).map_err(|err| err.to_string())? {
            StepResult::Done => return Ok(()),
            StepResult::More | StepResult::Busy | StepResult::Locked
                if Instant::now() < deadline =>
            {
                // A short pause between retries of a lock held by another connection.
                std::thread::sleep(Duration::from_millis(10));
            }
            StepResult::More | StepResult::Busy | StepResult::Locked => {
                return Err("the database stayed locked by another connection".to_owned());
            }
            _ => return Err("unexpected backup step result".to_owned()),
        }
    }
}

fn backup_stem(db_path: &Path) -> String {
    db_path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .filter(|stem| !stem.is_empty())
        .unwrap_or_else(|| "database".to_owned())
}

/// A backup path not used yet, named for `now` (time since the Unix epoch), with a sequence
/// one more than the highest among `stem`'s backups in `backups_dir`.
fn free_name(
    backups_dir: &Path,
    stem: &str,
    version: i32,
    now: Duration,
) -> Result<PathBuf, String> {
    // Without the listing the sequence could repeat an existing one, and the rename would
    // then replace that backup.
    let highest = backups_of(backups_dir, stem)?
        .iter()
        .map(|(seq, _)| *seq)
        .max()
        .unwrap_or(0);
    let stamp = timestamp(now.as_micros());
    // Saturating: a file named with the largest sequence must not make backups impossible.
    let mut seq = highest.saturating_add(1);
    loop {
        let path = backups_dir.join(format!("{stem}-{seq:06}-{stamp}-v{version}.db"));
        // Taken only if an entry of the listing could not be read; never overwrite it.
        if !path.exists() {
            return Ok(path);
        }
        seq = seq
            .checked_add(1)
            .ok_or_else(|| "no free backup sequence number is left".to_owned())?;
    }
}

/// `(sequence, file name)` of each backup of `stem` in `backups_dir`; unsequenced names have
/// sequence 0.
fn backups_of(backups_dir: &Path, stem: &str) -> Result<Vec<(u64, String)>, String> {
    let entries =
        fs::read_dir(backups_dir).map_err(|err| format!("cannot list the directory: {err}"))?;
    Ok(entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| Some((backup_sequence(stem, &name)?, name)))
        .collect())
}

/// Deletes all but the newest [`KEEP_BACKUPS`] backups of `stem`, by sequence, and never
/// `keep` (the backup just made, which a failed migration is about to restore). Failures are
/// logged, not returned: a stale backup costs disk space, not correctness.
fn prune(backups_dir: &Path, stem: &str, keep: &Path) {
    let mut backups = match backups_of(backups_dir, stem) {
        Ok(backups) => backups,
        Err(err) => {
            tracing::warn!(dir = %backups_dir.display(), error = %err, "cannot prune old database backups");
            return;
        }
    };
    // Unsequenced names share sequence 0; among them the timestamp in the name is all there is.
    backups.sort();
    let keep = keep.file_name().and_then(|name| name.to_str());
    let n_old = backups.len().saturating_sub(KEEP_BACKUPS);
    for (_, name) in &backups[..n_old] {
        if keep == Some(name.as_str()) {
            continue;
        }
        let path = backups_dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => tracing::info!(backup = %path.display(), "removed old database backup"),
            Err(err) => {
                tracing::warn!(backup = %path.display(), error = %err, "cannot remove old database backup");
            }
        }
    }
}

/// The sequence of a backup of `stem` named `<stem>-<seq>-YYYYMMDDTHHMMSS.ffffffZ-v<digits>.db`
/// (`<seq>` 6 digits or more), 0 for the older `<stem>-YYYYMMDDTHHMMSS.ffffffZ-v<digits>.db`,
/// `None` for any other name.
fn backup_sequence(stem: &str, name: &str) -> Option<u64> {
    let rest = name.strip_prefix(stem)?.strip_prefix('-')?;
    let rest = rest.strip_suffix(".db")?;
    let (seq, rest) = match rest.split_once('-') {
        // A timestamp has a `T` after 8 digits, so a run of digits up to a `-` is a sequence.
        Some((seq, rest)) if seq.len() >= 6 && seq.bytes().all(|b| b.is_ascii_digit()) => {
            (seq.parse().ok()?, rest)
        }
        _ => (0, rest),
    };
    let (stamp, version) = rest.split_once("-v")?;
    let stamp_ok = stamp.len() == 23
        && stamp.char_indices().all(|(i, c)| match i {
            8 => c == 'T',
            15 => c == '.',
            22 => c == 'Z',
            _ => c.is_ascii_digit(),
        });
    let version_ok = !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit());
    (stamp_ok && version_ok).then_some(seq)
}

/// `YYYYMMDDTHHMMSS.ffffffZ` (UTC) for microseconds since the Unix epoch.
fn timestamp(micros: u128) -> String {
    let secs = micros / 1_000_000;
    let fraction = micros % 1_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{fraction:06}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use conductor_test_support::TempDir;

    use super::*;

    #[test]
    fn timestamps_are_utc_and_fixed_width() {
        assert_eq!(timestamp(0), "19700101T000000.000000Z");
        // 2024-02-29T23:59:59.123456Z, a leap day.
        assert_eq!(timestamp(1_709_251_199_123_456), "20240229T235959.123456Z");
        // 2026-11-25T03:02:01Z
        assert_eq!(timestamp(1_795_575_721_000_000), "20261125T030201.000000Z");
    }

    #[test]
    fn backup_names_are_recognised_only_for_their_database() {
        let seq = |name| backup_sequence("factsway", name);
        assert_eq!(
            seq("factsway-000007-20261125T030201.000000Z-v2.db"),
            Some(7)
        );
        assert_eq!(
            seq("factsway-1234567-20261125T030201.000000Z-v2.db"),
            Some(1_234_567)
        );
        // Written before issue 12: older than any sequenced backup.
        assert_eq!(seq("factsway-20261125T030201.000000Z-v2.db"), Some(0));
        assert_eq!(seq("factsway-old-20261125T030201.000000Z-v2.db"), None);
        assert_eq!(
            seq("factsway-000007-20261125T030201.000000Z-v2.db.partial"),
            None
        );
        assert_eq!(seq("factsway-20261125T030201.000000Z-v2.db.partial"), None);
        assert_eq!(seq("other-000007-20261125T030201.000000Z-v2.db"), None);
        assert_eq!(seq("factsway-07-20261125T030201.000000Z-v2.db"), None);
        assert_eq!(seq("factsway-000007-20261125T030201Z-v2.db"), None);
        assert_eq!(seq("factsway-000007-20261125T030201.000000Z-v.db"), None);
        assert_eq!(seq("factsway-000007-v2.db"), None);
    }

    /// The names of the files in `dir`, sorted.
    fn file_names(dir: &TempDir) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .expect("temp dir is readable")
            .map(|entry| entry.expect("readable entry").file_name().into_string())
            .collect::<Result<_, _>>()
            .expect("UTF-8 names");
        names.sort();
        names
    }

    /// 2026-11-25T03:02:01Z plus `days`.
    fn day(days: u64) -> Duration {
        Duration::from_secs(1_795_575_721 + days * 86_400)
    }

    #[test]
    fn free_names_sort_in_creation_order() {
        let dir = TempDir::new("names");
        let mut names = Vec::new();
        for _ in 0..5 {
            let path = free_name(dir.path(), "app", 1, day(0)).expect("lists the dir");
            fs::write(&path, b"").expect("temp dir is writable");
            names.push(path);
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(
            file_names(&dir).len(),
            5,
            "same timestamp, still five names"
        );
    }

    #[test]
    fn sequence_not_clock_decides_which_backups_prune_keeps() {
        let dir = TempDir::new("clock-back");
        fs::write(dir.join("app-20990101T000000.000000Z-v1.db"), b"").expect("write");
        // Made while the clock was ten days ahead.
        for days in 10..13 {
            let path = free_name(dir.path(), "app", 1, day(days)).expect("lists the dir");
            fs::write(&path, b"").expect("write");
        }
        // The clock is set back.
        let newest = free_name(dir.path(), "app", 2, day(0)).expect("lists the dir");
        fs::write(&newest, b"").expect("write");

        prune(dir.path(), "app", &newest);

        assert_eq!(
            file_names(&dir),
            [
                "app-000002-20261206T030201.000000Z-v1.db",
                "app-000003-20261207T030201.000000Z-v1.db",
                "app-000004-20261125T030201.000000Z-v2.db",
            ]
        );
    }
}
