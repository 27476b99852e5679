//! SPEC §4 step 3, the ways opening or migrating the database fails: each is refused with a
//! message saying what to do, and the file is left as it was.
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{LockHolder, dump, migrations_dir, redact};
use conductor_db::{Database, MigrateErrorKind, Migrations, OpenErrorKind, OpenOptions};
use conductor_test_support::{TempDir, wait_until};

/// Set in the environment of the unprivileged re-run of this test binary.
const UNPRIVILEGED_ENV: &str = "CONDUCTOR_DB_TEST_UNPRIVILEGED";

fn short_timeout() -> OpenOptions {
    OpenOptions {
        busy_timeout: Duration::from_millis(300),
    }
}

#[test]
fn missing_directory_is_named() {
    let tmp = TempDir::new("missing-dir");
    let path = tmp.join("nope/factsway.db");
    let err = Database::open(&path, &OpenOptions::default()).expect_err("no directory");
    assert!(
        matches!(&err.kind, OpenErrorKind::MissingDirectory { dir } if dir == &tmp.join("nope")),
        "{err}"
    );
    assert!(
        !tmp.join("nope").exists(),
        "open does not create directories"
    );
    insta::assert_snapshot!(redact(&err.to_string(), tmp.path()));
}

#[test]
fn file_that_is_not_a_database_is_refused_and_left_untouched() {
    let tmp = TempDir::new("not-db");
    let path = tmp.join("factsway.db");
    let content = b"name,amount\nrent,1200\nfood,300\n".repeat(200);
    std::fs::write(&path, &content).expect("write");

    let err = Database::open(&path, &OpenOptions::default()).expect_err("not a database");

    assert!(
        matches!(err.kind, OpenErrorKind::NotADatabase { .. }),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).expect("read"),
        content,
        "bytes are unchanged"
    );
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("readdir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["factsway.db"],
        "no -wal, -shm or journal file appeared"
    );
    insta::assert_snapshot!(redact(&err.to_string(), tmp.path()));
}

#[test]
fn directory_in_place_of_the_file_is_refused() {
    let tmp = TempDir::new("is-dir");
    let path = tmp.join("factsway.db");
    std::fs::create_dir_all(&path).expect("mkdir");
    let err = Database::open(&path, &OpenOptions::default()).expect_err("a directory");
    assert!(matches!(err.kind, OpenErrorKind::IsADirectory), "{err}");
    insta::assert_snapshot!(redact(&err.to_string(), tmp.path()));
}

/// Whether this process runs as root, for whom permission bits do not stop writes.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective uid.
    std::fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
}

#[test]
fn read_only_directory_and_file_are_refused() {
    if running_as_root() {
        if std::env::var_os(UNPRIVILEGED_ENV).is_some() {
            panic!("the unprivileged re-run still runs as root: setuid did not take effect");
        }
        // Root writes through any mode bits, so run this very test again as user `nobody`,
        // where a 0555 directory really is read-only, and check what it printed.
        let messages = run_unprivileged("read_only_directory_and_file_are_refused");
        let line = |prefix: &str| {
            messages
                .lines()
                // libtest prints "test <name> ... " on the same line as the first output.
                .find_map(|line| line.split_once(prefix).map(|(_, message)| message))
                .unwrap_or_else(|| panic!("the re-run printed no {prefix} line:\n{messages}"))
                .to_owned()
        };
        insta::assert_snapshot!("read_only_directory", line("READ-ONLY-DIR: "));
        insta::assert_snapshot!("read_only_file", line("READ-ONLY-FILE: "));
        return;
    }

    let tmp = TempDir::new("read-only");
    let dir = tmp.join("ro");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let path = dir.join("factsway.db");
    let err = Database::open(&path, &OpenOptions::default()).expect_err("read-only dir");
    assert!(
        matches!(&err.kind, OpenErrorKind::ReadOnlyDirectory { dir: d } if d == &dir),
        "{err}"
    );
    assert!(!path.exists());
    let dir_message = redact(&err.to_string(), tmp.path());

    let path = tmp.join("factsway.db");
    Database::open(&path, &OpenOptions::default())
        .expect("opens")
        .close()
        .expect("closes");
    let before = std::fs::read(&path).expect("read");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    let err = Database::open(&path, &OpenOptions::default()).expect_err("read-only file");
    assert!(matches!(err.kind, OpenErrorKind::ReadOnlyFile), "{err}");
    assert_eq!(std::fs::read(&path).expect("read"), before);
    let file_message = redact(&err.to_string(), tmp.path());

    if std::env::var_os(UNPRIVILEGED_ENV).is_some() {
        println!("READ-ONLY-DIR: {dir_message}");
        println!("READ-ONLY-FILE: {file_message}");
    } else {
        insta::assert_snapshot!("read_only_directory", dir_message);
        insta::assert_snapshot!("read_only_file", file_message);
    }
}

/// Runs `test_name` of this test binary as uid/gid 65534 and returns its stdout; panics
/// with its output when it fails. The child is killed if it outlives the deadline.
fn run_unprivileged(test_name: &str) -> String {
    struct Guard(std::process::Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out_dir = TempDir::new("unprivileged-out");
    std::fs::set_permissions(out_dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    let stdout_path = out_dir.join("stdout");
    let stdout = std::fs::File::create(&stdout_path).expect("create");
    let mut guard = Guard(
        Command::new(exe)
            .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
            .env(UNPRIVILEGED_ENV, "1")
            .env_remove("INSTA_UPDATE")
            .uid(65534)
            .gid(65534)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the test binary starts as nobody"),
    );
    let status = wait_until(
        Duration::from_secs(60),
        "the unprivileged re-run to exit",
        || {
            guard
                .0
                .try_wait()
                .ok()
                .flatten()
                .ok_or_else(|| "still running".to_owned())
        },
    );
    let output = std::fs::read_to_string(&stdout_path).expect("read stdout");
    assert!(
        status.success(),
        "the unprivileged re-run failed ({status}):\n{output}"
    );
    output
}

#[test]
fn database_locked_by_another_process_is_reported_with_its_pid() {
    let tmp = TempDir::new("locked");
    let path = tmp.join("factsway.db");
    // A database in rollback-journal mode, as another program would create it.
    let conn = rusqlite::Connection::open(&path).expect("opens");
    conn.execute_batch("CREATE TABLE theirs (id INTEGER); INSERT INTO theirs VALUES (1);")
        .expect("create");
    drop(conn);
    let before = dump(&path);
    let holder = LockHolder::start(&path);

    let started = Instant::now();
    let err = Database::open(&path, &short_timeout()).expect_err("locked");
    let waited = started.elapsed();

    let OpenErrorKind::Locked {
        pid,
        waited: timeout,
    } = err.kind
    else {
        panic!("expected a lock error, got {err}");
    };
    assert_eq!(timeout, Duration::from_millis(300));
    assert!(
        waited >= Duration::from_millis(300),
        "gave up after {waited:?}, before busy_timeout"
    );
    assert_eq!(
        pid,
        Some(holder.pid()),
        "the lock holder is found in /proc/locks"
    );
    insta::assert_snapshot!(redact(&err.to_string(), tmp.path()));
    drop(holder);
    assert_eq!(dump(&path), before);
    // Once the other process is gone, the same database opens.
    Database::open(&path, &short_timeout())
        .expect("opens once unlocked")
        .close()
        .expect("closes");
}

#[test]
fn migration_waiting_on_another_process_lock_is_reported_and_changes_nothing() {
    let tmp = TempDir::new("locked-init");
    let path = tmp.join("factsway.db");
    let backups = tmp.join("backups");
    let mut db = Database::open(&path, &short_timeout()).expect("opens");
    db.init(&Migrations::Embedded, &backups).expect("init");
    let before = dump(&path);
    let dir = migrations_dir(
        &tmp,
        "migrations",
        &[("V3__add_things.sql", "CREATE TABLE things (id);")],
    );
    // In WAL mode an exclusive transaction blocks writers only.
    let holder = LockHolder::start(&path);

    let err = db
        .init(&Migrations::Dir(dir), &backups)
        .expect_err("locked");

    let MigrateErrorKind::Locked { pid, migration, .. } = &err.kind else {
        panic!("expected a lock error, got {err}");
    };
    assert_eq!(migration.as_deref(), Some("V3__add_things"));
    assert_eq!(*pid, Some(holder.pid()));
    insta::assert_snapshot!(redact(&err.to_string(), tmp.path()));
    drop(holder);
    assert_eq!(dump(&path), before);
    db.close().expect("closes");
}

#[test]
fn backups_directory_that_cannot_be_created_stops_the_migration() {
    let tmp = TempDir::new("backup-fails");
    let path = tmp.join("factsway.db");
    let mut db = Database::open(&path, &OpenOptions::default()).expect("opens");
    db.init(&Migrations::Embedded, &tmp.join("backups"))
        .expect("init");
    let before = dump(&path);
    // A file where the backups directory should be: fails for root too.
    let blocked = tmp.join("blocked");
    std::fs::write(&blocked, "").expect("write");
    let dir = migrations_dir(
        &tmp,
        "migrations",
        &[("V3__add_things.sql", "CREATE TABLE things (id);")],
    );

    let err = db
        .init(&Migrations::Dir(dir), &blocked.join("backups"))
        .expect_err("no backup");

    assert!(matches!(err.kind, MigrateErrorKind::Backup { .. }), "{err}");
    assert_eq!(dump(&path), before, "nothing was migrated without a backup");
    insta::assert_snapshot!(redact(&err.to_string(), tmp.path()));
    db.close().expect("closes");
}

#[test]
fn paths_in_messages_are_whole() {
    // The snapshot redaction must not hide a wrong path: the temp dir is the only thing
    // replaced, so a message naming another directory would show it.
    let tmp = TempDir::new("redact");
    let text = format!("{}/a.db and /elsewhere/b.db, pid 42", tmp.path().display());
    assert_eq!(
        redact(&text, tmp.path()),
        "[TMP]/a.db and /elsewhere/b.db, pid [PID]"
    );
    assert!(Path::new(tmp.path()).is_dir());
}
