//! SPEC §4 step 3 (database before services) and the `database:*` channels of §5: open,
//! migrate, back up, restore, status, on real SQLite files in temp dirs.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};

use common::{dump, execute, migrations_dir, redact, workspace_migrations};
use conductor_db::{
    Database, DbStatus, MigrateErrorKind, Migrations, OpenOptions, Restored, database_url,
};
use conductor_test_support::TempDir;

fn open(path: &Path) -> Database {
    Database::open(path, &OpenOptions::default()).expect("the database opens")
}

/// An existing database at version 2 holding `sql`'s rows: the state a pending migration
/// meets. Returns its path, the backups dir, the open database and a dump taken before.
fn migrated_with_content(tmp: &TempDir, sql: &str) -> (PathBuf, PathBuf, Database, String) {
    let path = tmp.join("factsway.db");
    let backups = tmp.join("backups");
    let mut db = open(&path);
    db.init(&Migrations::Embedded, &backups)
        .expect("first init");
    execute(&path, sql);
    let before = dump(&path);
    (path, backups, db, before)
}

fn backups_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn table_exists(path: &Path, table: &str) -> bool {
    let conn = rusqlite::Connection::open(path).expect("opens");
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |row| row.get(0),
    )
    .expect("query")
}

#[test]
fn fresh_database_runs_both_migrations_and_is_initialized_at_version_2() {
    let tmp = TempDir::new("fresh");
    let path = tmp.join("factsway.db");
    let backups = tmp.join("backups");
    let mut db = open(&path);
    assert_eq!(
        db.status().expect("status"),
        DbStatus {
            initialized: false,
            version: None,
            path: path.clone()
        }
    );

    let report = db.init(&Migrations::Embedded, &backups).expect("migrates");

    assert_eq!(report.migrations_run, 2);
    assert_eq!(report.applied, ["V1__conductor_tables", "V2__app_meta"]);
    assert_eq!(
        report.backup, None,
        "an empty database is not backed up to a file"
    );
    assert_eq!(backups_in(&backups), Vec::<String>::new());
    assert_eq!(
        db.status().expect("status"),
        DbStatus {
            initialized: true,
            version: Some(2),
            path: path.clone()
        }
    );
    assert_eq!(db.path(), path);
    db.close().expect("closes");
    for table in ["service_events", "conductor_meta", "app_meta"] {
        assert!(table_exists(&path, table), "table {table} exists");
    }
}

#[test]
fn second_init_runs_nothing_and_makes_no_backup() {
    let tmp = TempDir::new("second");
    let path = tmp.join("factsway.db");
    let backups = tmp.join("backups");
    let mut db = open(&path);
    db.init(&Migrations::Embedded, &backups)
        .expect("first init");
    db.close().expect("closes");
    let before = dump(&path);

    let mut db = open(&path);
    let report = db
        .init(&Migrations::Embedded, &backups)
        .expect("second init");

    assert_eq!(report.migrations_run, 0);
    assert!(report.applied.is_empty());
    assert_eq!(report.backup, None);
    assert_eq!(backups_in(&backups), Vec::<String>::new());
    assert_eq!(db.status().expect("status").version, Some(2));
    db.close().expect("closes");
    assert_eq!(dump(&path), before);
}

#[test]
fn runtime_dir_with_an_extra_v3_is_backed_up_then_applied() {
    let tmp = TempDir::new("v3");
    let (path, backups, mut db, before) = migrated_with_content(
        &tmp,
        "INSERT INTO app_meta (key, value) VALUES ('owner', 'test');",
    );
    let dir = migrations_dir(
        &tmp,
        "migrations",
        &[(
            "V3__add_things.sql",
            "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT);",
        )],
    );

    let report = db
        .init(&Migrations::Dir(dir), &backups)
        .expect("migrates to 3");

    assert_eq!(report.migrations_run, 1);
    assert_eq!(report.applied, ["V3__add_things"]);
    let backup = report.backup.expect("an existing database is backed up");
    assert_eq!(backup.parent(), Some(backups.as_path()));
    assert_eq!(
        redact(
            &backup.file_name().expect("file name").to_string_lossy(),
            tmp.path()
        ),
        "factsway-000001-[TIME]-v2.db"
    );
    assert_eq!(
        dump(&backup),
        before,
        "the backup holds the database as it was before"
    );
    assert!(
        !Path::new(&format!("{}-wal", backup.display())).exists(),
        "a backup is one self-contained file"
    );
    assert_eq!(
        db.status().expect("status"),
        DbStatus {
            initialized: true,
            version: Some(3),
            path: path.clone()
        }
    );
    db.close().expect("closes");
    assert!(table_exists(&path, "things"));
    let conn = rusqlite::Connection::open(&path).expect("opens");
    let n_applied: u32 = conn
        .query_row("SELECT count(*) FROM refinery_schema_history", [], |row| {
            row.get(0)
        })
        .expect("history");
    assert_eq!(n_applied, 3);
}

#[test]
fn backups_keep_the_newest_three() {
    let tmp = TempDir::new("keep3");
    let path = tmp.join("factsway.db");
    let backups = tmp.join("backups");
    std::fs::create_dir_all(&backups).expect("mkdir");
    // Someone else's file in the backups directory is never pruned.
    std::fs::write(backups.join("notes.txt"), "keep me").expect("write");
    let mut db = open(&path);
    db.init(&Migrations::Embedded, &backups)
        .expect("first init");
    let mut extra: Vec<(String, String)> = Vec::new();
    for version in 3..=7 {
        extra.push((
            format!("V{version}__table_{version}.sql"),
            format!("CREATE TABLE t{version} (id INTEGER PRIMARY KEY);"),
        ));
        let files: Vec<(&str, &str)> = extra
            .iter()
            .map(|(f, s)| (f.as_str(), s.as_str()))
            .collect();
        let dir = migrations_dir(&tmp, &format!("migrations-{version}"), &files);
        let report = db.init(&Migrations::Dir(dir), &backups).expect("migrates");
        assert_eq!(report.migrations_run, 1);
    }

    let names: Vec<String> = backups_in(&backups)
        .iter()
        .map(|name| redact(name, tmp.path()))
        .collect();
    assert_eq!(
        names,
        [
            "factsway-000003-[TIME]-v4.db",
            "factsway-000004-[TIME]-v5.db",
            "factsway-000005-[TIME]-v6.db",
            "notes.txt"
        ]
    );
    db.close().expect("closes");
}

/// Issue 12: backups made while the clock was ahead (here by an earlier conductor, in the
/// names without a sequence number) carry later timestamps than the one made now. Pruning by
/// name deleted the new backup, so the failing V4 could no longer be undone.
#[test]
fn issue_12_backup_made_after_the_clock_was_set_back_is_kept_and_restored() {
    let tmp = TempDir::new("clock-back");
    let (path, backups, mut db, before) = migrated_with_content(
        &tmp,
        "INSERT INTO app_meta (key, value) VALUES ('owner', 'test');",
    );
    std::fs::create_dir_all(&backups).expect("mkdir");
    let future = [
        "factsway-20990101T000000.000000Z-v2.db",
        "factsway-20990102T000000.000000Z-v2.db",
        "factsway-20990103T000000.000000Z-v2.db",
    ];
    for name in future {
        std::fs::write(backups.join(name), "a backup from when the clock was ahead")
            .expect("write");
    }
    let dir = migrations_dir(
        &tmp,
        "migrations",
        &[
            (
                "V3__add_things.sql",
                "CREATE TABLE things (id INTEGER PRIMARY KEY);",
            ),
            ("V4__broken.sql", "INSERT INTO no_such_table VALUES (1);"),
        ],
    );

    let err = db
        .init(&Migrations::Dir(dir), &backups)
        .expect_err("V4 is broken");

    let MigrateErrorKind::Failed { restored, .. } = &err.kind else {
        panic!("expected a failed migration restored from the new backup, got {err}");
    };
    let Restored::FromBackup(backup) = restored else {
        panic!("expected a restore from the new backup, got {restored:?}");
    };
    assert_eq!(
        redact(
            &backup.file_name().expect("file name").to_string_lossy(),
            tmp.path()
        ),
        "factsway-000001-[TIME]-v2.db"
    );
    assert_eq!(
        dump(backup),
        before,
        "the new backup holds the database as it was"
    );
    assert_eq!(dump(&path), before, "V3 was undone from the new backup");
    let new_name = backup
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    let mut expected = vec![future[1].to_owned(), future[2].to_owned(), new_name];
    expected.sort();
    assert_eq!(
        backups_in(&backups),
        expected,
        "the oldest unsequenced backup is pruned, the new one kept"
    );
    db.close().expect("closes");
}

#[test]
fn failing_v3_is_named_and_the_database_restored_from_the_backup() {
    let tmp = TempDir::new("fail-v3");
    let (path, backups, mut db, before) = migrated_with_content(
        &tmp,
        "INSERT INTO app_meta (key, value) VALUES ('owner', 'test');
         INSERT INTO service_events (service, to_state, timestamp)
             VALUES ('records', 'running', '2026-01-01T00:00:00Z');",
    );
    let dir = migrations_dir(
        &tmp,
        "migrations",
        &[("V3__add_things.sql", "CREATE TABL things (id);")],
    );

    let err = db
        .init(&Migrations::Dir(dir), &backups)
        .expect_err("V3 is broken");

    let MigrateErrorKind::Failed {
        migration,
        sql_error,
        restored,
    } = &err.kind
    else {
        panic!("expected a failed migration, got {err}");
    };
    assert_eq!(migration, "V3__add_things");
    assert!(sql_error.contains("syntax error"), "{sql_error}");
    let [backup] = backups_in(&backups).try_into().expect("exactly one backup");
    assert_eq!(restored, &Restored::FromBackup(backups.join(&backup)));
    assert_eq!(
        dump(&path),
        before,
        "content is identical to before the failed init"
    );
    insta::assert_snapshot!(redact(&err.to_string(), tmp.path()));
    // Still usable, and still at version 2.
    assert_eq!(db.status().expect("status").version, Some(2));
    assert_eq!(
        db.init(&Migrations::Embedded, &backups)
            .expect("init")
            .migrations_run,
        0
    );
    db.close().expect("closes");
}

#[test]
fn failing_v4_also_undoes_the_v3_applied_in_the_same_run() {
    let tmp = TempDir::new("fail-v4");
    let (path, backups, mut db, before) = migrated_with_content(
        &tmp,
        "INSERT INTO app_meta (key, value) VALUES ('owner', 'test');",
    );
    let dir = migrations_dir(
        &tmp,
        "migrations",
        &[
            (
                "V3__add_things.sql",
                "CREATE TABLE things (id INTEGER PRIMARY KEY);",
            ),
            ("V4__broken.sql", "INSERT INTO no_such_table VALUES (1);"),
        ],
    );

    let err = db
        .init(&Migrations::Dir(dir), &backups)
        .expect_err("V4 is broken");

    let MigrateErrorKind::Failed {
        migration,
        sql_error,
        ..
    } = &err.kind
    else {
        panic!("expected a failed migration, got {err}");
    };
    assert_eq!(migration, "V4__broken");
    assert!(sql_error.contains("no such table"), "{sql_error}");
    assert_eq!(dump(&path), before, "V3 was undone too");
    db.close().expect("closes");
}

#[test]
fn failing_first_migration_leaves_a_new_database_empty() {
    let tmp = TempDir::new("fail-v1");
    let path = tmp.join("factsway.db");
    let backups = tmp.join("backups");
    let dir = tmp.join("migrations");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("V1__ok.sql"), "CREATE TABLE a (id INTEGER);").expect("write");
    std::fs::write(dir.join("V2__broken.sql"), "CREATE TABLE a (id INTEGER);").expect("write");
    let mut db = open(&path);
    let before = dump(&path);

    let err = db
        .init(&Migrations::Dir(dir), &backups)
        .expect_err("V2 is broken");

    let MigrateErrorKind::Failed {
        migration,
        restored,
        ..
    } = &err.kind
    else {
        panic!("expected a failed migration, got {err}");
    };
    assert_eq!(migration, "V2__broken");
    assert_eq!(restored, &Restored::ToEmpty);
    assert_eq!(dump(&path), before);
    assert_eq!(
        dump(&path),
        "",
        "nothing at all, not even the history table"
    );
    assert_eq!(backups_in(&backups), Vec::<String>::new());
    insta::assert_snapshot!(redact(&err.to_string(), tmp.path()));
    db.close().expect("closes");
}

#[test]
fn history_newer_than_known_is_refused_untouched() {
    let tmp = TempDir::new("newer");
    let path = tmp.join("factsway.db");
    let backups = tmp.join("backups");
    let mut db = open(&path);
    db.init(&Migrations::Embedded, &backups)
        .expect("first init");
    execute(
        &path,
        "CREATE TABLE future (id INTEGER);
         INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
             VALUES (7, 'future', '2027-01-01T00:00:00Z', '1');",
    );
    let before = dump(&path);

    let err = db
        .init(&Migrations::Embedded, &backups)
        .expect_err("refused");

    assert!(
        matches!(
            err.kind,
            MigrateErrorKind::NewerHistory {
                db_version: 7,
                known_version: 2
            }
        ),
        "{err}"
    );
    assert_eq!(dump(&path), before);
    assert_eq!(
        backups_in(&backups),
        Vec::<String>::new(),
        "no backup of a refused database"
    );
    assert_eq!(
        db.status().expect("status"),
        DbStatus {
            initialized: false,
            version: Some(7),
            path: path.clone()
        }
    );
    insta::assert_snapshot!(redact(&err.to_string(), tmp.path()));
    db.close().expect("closes");
}

#[test]
fn edited_applied_migration_is_refused() {
    let tmp = TempDir::new("divergent");
    let path = tmp.join("factsway.db");
    let backups = tmp.join("backups");
    let mut db = open(&path);
    db.init(&Migrations::Embedded, &backups)
        .expect("first init");
    let dir = migrations_dir(&tmp, "migrations", &[]);
    std::fs::write(
        dir.join("V2__app_meta.sql"),
        "CREATE TABLE app_meta (key TEXT PRIMARY KEY, value TEXT);",
    )
    .expect("edit V2");
    let before = dump(&path);

    let err = db
        .init(&Migrations::Dir(dir), &backups)
        .expect_err("refused");

    assert!(
        matches!(&err.kind, MigrateErrorKind::Divergent { migration } if migration == "V2__app_meta"),
        "{err}"
    );
    assert_eq!(dump(&path), before);
    insta::assert_snapshot!(redact(&err.to_string(), tmp.path()));
    db.close().expect("closes");
}

#[test]
fn missing_migrations_directory_is_reported() {
    let tmp = TempDir::new("no-migrations");
    let mut db = open(&tmp.join("factsway.db"));
    let err = db
        .init(&Migrations::Dir(tmp.join("nowhere")), &tmp.join("backups"))
        .expect_err("no migrations");
    assert!(
        matches!(err.kind, MigrateErrorKind::LoadMigrations { .. }),
        "{err}"
    );
    insta::assert_snapshot!(redact(&err.to_string(), tmp.path()));

    let empty = tmp.join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let err = db
        .init(&Migrations::Dir(empty), &tmp.join("backups"))
        .expect_err("empty dir");
    insta::assert_snapshot!(
        "empty_migrations_directory",
        redact(&err.to_string(), tmp.path())
    );
    db.close().expect("closes");
}

#[test]
fn embedded_migrations_are_the_workspace_folder() {
    // The runtime directory and the embedded set are the same files, so switching between
    // them on one database runs nothing.
    let tmp = TempDir::new("same");
    let path = tmp.join("factsway.db");
    let mut db = open(&path);
    db.init(&Migrations::Embedded, &tmp.join("backups"))
        .expect("init");
    let report = db
        .init(
            &Migrations::Dir(workspace_migrations()),
            &tmp.join("backups"),
        )
        .expect("same migrations");
    assert_eq!(report.migrations_run, 0);
    db.close().expect("closes");
}

#[test]
fn database_url_opens_the_same_file_for_a_service() {
    // What a service does with DATABASE_URL: strip the scheme and open the path. Here the
    // "service" is python3's sqlite3 module, a consumer that shares no code with us.
    let tmp = TempDir::new("url");
    let path = tmp.join("factsway.db");
    let mut db = open(&path);
    db.init(&Migrations::Embedded, &tmp.join("backups"))
        .expect("init");
    db.close().expect("closes");
    let url = database_url(&path);
    assert_eq!(url, format!("sqlite://{}", path.display()));
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys\n\
             url=sys.argv[1]\n\
             assert url.startswith('sqlite://'), url\n\
             c=sqlite3.connect(url[len('sqlite://'):])\n\
             print(c.execute(\"SELECT count(*) FROM sqlite_master WHERE name='app_meta'\").fetchone()[0])",
        )
        .arg(&url)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "1");
}
