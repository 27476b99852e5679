//! SPEC §4 step 3 through the real binary: when the database cannot be initialised, `up`
//! exits 2, names the cause, and starts no service.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use conductor_test_support::TempDir;

/// A registry whose one service leaves a marker file the moment it is spawned.
fn registry(dir: &Path, database: &str) -> PathBuf {
    let port = conductor_test_support::free_port();
    let marker = dir.join("spawned");
    let text = format!(
        "[app]\nname = \"dbtest\"\n\n[database]\n{database}\n\n[services.api]\nport = {port}\ncommand = \"sh\"\nargs = [\"-c\", \"touch {} && sleep 30\"]\nhealth = {{ kind = \"none\" }}\n",
        marker.display()
    );
    let path = dir.join("conductor.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn up(dir: &Path, registry: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_conductor"))
        .arg("up")
        .arg("--registry")
        .arg(registry)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap()
}

#[test]
fn a_failing_migration_exits_2_names_it_and_starts_no_service() {
    let dir = TempDir::new("migration");
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), migrations.join(entry.file_name())).unwrap();
    }
    std::fs::write(
        migrations.join("V3__broken.sql"),
        "CREATE TABEL oops (id INTEGER);",
    )
    .unwrap();
    let registry = registry(
        dir.path(),
        &format!("migrations = {:?}", migrations.display().to_string()),
    );

    let output = up(dir.path(), &registry);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("✗ Database initialization failed"),
        "{stdout}"
    );
    assert!(stderr.contains("V3__broken"), "{stderr}");
    assert!(stderr.contains("syntax error"), "{stderr}");
    assert!(stderr.contains("no service was started"), "{stderr}");
    assert!(
        !dir.join("spawned").exists(),
        "a service was spawned although the database failed"
    );
    assert!(!stdout.contains("Starting"), "{stdout}");
}

#[test]
fn a_database_path_holding_another_file_is_refused_untouched() {
    let dir = TempDir::new("foreign");
    let foreign = dir.join("notes.db");
    let content = b"these are my notes, not a database\n".repeat(10);
    std::fs::write(&foreign, &content).unwrap();
    let registry = registry(
        dir.path(),
        &format!("path = {:?}", foreign.display().to_string()),
    );

    let output = up(dir.path(), &registry);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not an SQLite database"), "{stderr}");
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        content,
        "the foreign file was modified"
    );
    assert!(
        !dir.join("spawned").exists(),
        "a service was spawned although the database failed"
    );
}
