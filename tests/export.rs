//! `conductor export` end to end (issue 18): the real binary writes the files and each
//! engine's own checker judges them: `systemd-analyze verify` (no warnings) on every unit,
//! `docker-compose config` on the compose file, `kubernetes-validate --strict` on the
//! manifests; plus the one-shot (`conductor db migrate`), `wait-ready` and the errors.
//!
//! The checkers are required, not optional: a missing one fails its test with the command
//! that installs it (`.ci/run` installs them all).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use conductor_test_support::{TempDir, toml_string};

fn conductor(dir: &Path, args: &[&str]) -> Output {
    match Command::new(env!("CARGO_BIN_EXE_conductor"))
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(output) => output,
        Err(error) => panic!("cannot run conductor {args:?}: {error}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a checker, failing the test with its install command when it is missing.
fn checker(program: &str, install: &str) -> Command {
    let found = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "{program} is not installed, and this test checks the export with it; install it with: {install}"
    );
    Command::new(program)
}

fn run(command: &mut Command) -> Output {
    match command.output() {
        Ok(output) => output,
        Err(error) => panic!("cannot run {command:?}: {error}"),
    }
}

fn fake_service() -> String {
    toml_string(&fake_service::binary().display().to_string())
}

/// The demo registry with its services' command pointing at this build's fake-service (the
/// checkers want programs that exist).
fn demo_registry(dir: &Path) -> PathBuf {
    let demo = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/demo.toml"),
    )
    .unwrap_or_else(|error| panic!("cannot read the demo registry: {error}"));
    let text = demo.replace("\"../target/debug/fake-service\"", &fake_service());
    let path = dir.join("demo.toml");
    write(&path, &text);
    path
}

fn write(path: &Path, text: &str) {
    if let Err(error) = std::fs::write(path, text) {
        panic!("cannot write {}: {error}", path.display());
    }
}

/// A registry with what the demo lacks: a diamond (d needs b and c, which both need a), a
/// non-critical dependency, exec and tcp probes, a `none` probe, limits, a bare command name
/// (`sh`, resolved through PATH) and values that need quoting in a unit file.
fn shapes_registry(dir: &Path) -> PathBuf {
    let fake = fake_service();
    let text = format!(
        r#"[app]
name = "Shapes App"

[database]
path = "data/shapes.db"

[services.a]
port = 4101
command = {fake}
health = {{ kind = "tcp" }}
limits = {{ memory = "256MB", open_files = 1024, processes = 64 }}

[services.b]
port = 4102
command = {fake}
depends_on = ["a"]
critical = false
health = {{ kind = "exec", command = "sh", args = ["-c", "exit 0"] }}

[services.c]
port = 4103
command = "sh"
args = ["-c", "exec sleep 1000", "50% of $HOME"]
depends_on = ["a"]
env = {{ GREETING = "hello \"world\" 100%" }}

[services.d]
port = 4104
command = {fake}
depends_on = ["b", "c"]
health = {{ kind = "none" }}
restart = {{ max_retries = 0 }}

[services.e]
port = 4105
command = {fake}
enabled = false
"#
    );
    let path = dir.join("shapes.toml");
    write(&path, &text);
    path
}

fn export(dir: &Path, registry: &Path, args: &[&str]) -> Output {
    let mut all = vec![
        "--registry",
        registry.to_str().unwrap_or_default(),
        "export",
    ];
    all.extend_from_slice(args);
    let output = conductor(dir, &all);
    assert!(
        output.status.success(),
        "conductor {all:?} failed:\n{}",
        text(&output.stderr)
    );
    output
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    files.sort();
    files
}

/// `systemd-analyze verify` on every unit written, with no output at all (a warning is a
/// failure). User units need a runtime directory of their own.
fn verify_units(dir: &Path, scope: &str) {
    let runtime = dir.join("runtime");
    std::fs::create_dir_all(&runtime).unwrap_or_else(|error| panic!("{error}"));
    let units = files_in(&dir.join("units"));
    assert!(units.len() > 2, "units written: {units:?}");
    let mut command = checker("systemd-analyze", "apt-get install -y systemd");
    if scope == "--user" {
        command.arg("--user");
    }
    let output = run(command
        .args(["verify", "--man=no"])
        .args(&units)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("SYSTEMD_LOG_COLOR", "0"));
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "systemd-analyze verify {scope} on {units:?}:\nstdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

#[test]
fn demo_systemd_units_pass_systemd_analyze_verify() {
    let dir = TempDir::new("export-systemd-demo");
    let registry = demo_registry(dir.path());
    let output = export(dir.path(), &registry, &["systemd", "--out", "units"]);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("wrote units/factsway.target"), "{stdout}");
    assert!(
        stdout.contains("wrote units/factsway-records.service"),
        "{stdout}"
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("note: systemd has no liveness probe"),
        "{stderr}"
    );
    verify_units(dir.path(), "--user");
}

#[test]
fn diamond_optional_exec_and_tcp_units_pass_verify_as_user_and_system_units() {
    let dir = TempDir::new("export-systemd-shapes");
    let registry = shapes_registry(dir.path());
    export(dir.path(), &registry, &["systemd", "--out", "units"]);
    let d =
        std::fs::read_to_string(dir.path().join("units/shapes-app-d.service")).unwrap_or_default();
    assert!(
        d.contains("Requires=shapes-app-db-migrate.service shapes-app-c.service\n"),
        "{d}"
    );
    assert!(d.contains("Wants=shapes-app-b.service\n"), "{d}");
    assert!(d.contains("Restart=no\n"), "{d}");
    let c =
        std::fs::read_to_string(dir.path().join("units/shapes-app-c.service")).unwrap_or_default();
    assert!(
        c.contains("ExecStart=/") && c.contains("\"50%% of $$HOME\""),
        "{c}"
    );
    assert!(
        !dir.path().join("units/shapes-app-e.service").exists(),
        "a disabled service is not exported"
    );
    verify_units(dir.path(), "--user");

    std::fs::remove_dir_all(dir.path().join("units")).unwrap_or_else(|error| panic!("{error}"));
    export(
        dir.path(),
        &registry,
        &["systemd", "--system", "--out", "units"],
    );
    let target =
        std::fs::read_to_string(dir.path().join("units/shapes-app.target")).unwrap_or_default();
    assert!(target.contains("WantedBy=multi-user.target"), "{target}");
    verify_units(dir.path(), "--system");
}

fn compose_config(file: &Path) {
    let output = run(
        checker("docker-compose", "apt-get install -y docker-compose")
            .args(["--file"])
            .arg(file)
            .args(["config", "--quiet"]),
    );
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "docker-compose config on {}:\n{}\n{}",
        file.display(),
        text(&output.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

fn kubernetes_validate(file: &Path) {
    let output = run(
        checker("kubernetes-validate", "pip install kubernetes-validate")
            .args(["--strict", "--quiet"])
            .arg(file),
    );
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "kubernetes-validate --strict on {}:\nstdout: {}\nstderr: {}",
        file.display(),
        text(&output.stdout),
        text(&output.stderr)
    );
}

#[test]
fn compose_files_pass_docker_compose_config() {
    let dir = TempDir::new("export-compose");
    for registry in [demo_registry(dir.path()), shapes_registry(dir.path())] {
        let out = dir.path().join("out");
        let output = export(
            dir.path(),
            &registry,
            &[
                "compose",
                "--out",
                "out",
                "--image-prefix",
                "registry.example/app/",
            ],
        );
        assert!(text(&output.stdout).contains("wrote out/compose.yaml"));
        compose_config(&out.join("compose.yaml"));
    }
}

#[test]
fn kubernetes_manifests_pass_kubernetes_validate_strict() {
    let dir = TempDir::new("export-kubernetes");
    for registry in [demo_registry(dir.path()), shapes_registry(dir.path())] {
        let output = export(
            dir.path(),
            &registry,
            &[
                "kubernetes",
                "--out",
                "-",
                "--image-prefix",
                "registry.example/app/",
            ],
        );
        let file = dir.path().join("manifests.yaml");
        std::fs::write(&file, &output.stdout).unwrap_or_else(|error| panic!("{error}"));
        assert!(
            text(&output.stdout).starts_with("# "),
            "the notes come first"
        );
        kubernetes_validate(&file);
    }
}

#[test]
fn a_service_without_an_image_is_named_and_nothing_is_written() {
    let dir = TempDir::new("export-no-image");
    let registry = dir.path().join("conductor.toml");
    write(
        &registry,
        "[app]\nname = \"x\"\n[services.web]\nport = 4201\ncommand = \"./web\"\n[services.api]\nport = 4202\ncommand = \"./api\"\ndeploy = { image = \"ghcr.io/acme/api:1\" }\n",
    );
    let output = conductor(
        dir.path(),
        &[
            "export",
            "compose",
            "--out",
            "out",
            "--conductor-image",
            "acme/conductor",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("services.web: has no container image")
            && stderr
                .contains("add image = \"…\" under [services.web.deploy], or pass --image-prefix"),
        "{stderr}"
    );
    assert!(!stderr.contains("services.api"), "{stderr}");
    assert!(!dir.path().join("out").exists());
}

#[test]
fn systemd_refuses_stdout_and_names_a_command_not_in_path() {
    let dir = TempDir::new("export-systemd-errors");
    let registry = shapes_registry(dir.path());
    let output = conductor(
        dir.path(),
        &[
            "--registry",
            registry.to_str().unwrap_or_default(),
            "export",
            "systemd",
            "--out",
            "-",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("systemd writes 6 files, so they cannot all go to stdout"),
        "{}",
        text(&output.stderr)
    );

    let missing = dir.path().join("missing.toml");
    write(
        &missing,
        "[app]\nname = \"x\"\n[services.web]\nport = 4301\ncommand = \"no-such-program-anywhere\"\n",
    );
    let output = conductor(
        dir.path(),
        &[
            "--registry",
            missing.to_str().unwrap_or_default(),
            "export",
            "systemd",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr)
            .contains("services.web: command \"no-such-program-anywhere\" was not found in PATH"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn db_migrate_creates_and_migrates_the_database_once_without_a_running_conductor() {
    let dir = TempDir::new("export-db-migrate");
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap_or_default();
    let first = conductor(
        dir.path(),
        &[
            "--data-dir",
            data_arg,
            "db",
            "migrate",
            "--database",
            "app.db",
        ],
    );
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    assert!(
        stdout.starts_with("✓ Database initialized (") && !stdout.contains("(0 migrations)"),
        "{stdout}"
    );
    assert!(dir.path().join("app.db").is_file() && data.join("evidence").is_dir());
    let again = conductor(
        dir.path(),
        &[
            "--data-dir",
            data_arg,
            "db",
            "migrate",
            "--database",
            "app.db",
        ],
    );
    assert_eq!(
        text(&again.stdout),
        "✓ Database initialized (0 migrations)\n",
        "{}",
        text(&again.stderr)
    );

    // Another holder of the data directory's lock: refused with exit 3, as `up` is.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(data.join("conductor.lock"))
        .unwrap_or_else(|error| panic!("{error}"));
    lock.lock().unwrap_or_else(|error| panic!("{error}"));
    let locked = conductor(dir.path(), &["--data-dir", data_arg, "db", "migrate"]);
    assert_eq!(locked.status.code(), Some(3), "{}", text(&locked.stderr));
    assert!(
        text(&locked.stderr).contains("another conductor is already running"),
        "{}",
        text(&locked.stderr)
    );
}

#[test]
fn db_migrate_names_a_failing_migration_exits_2_and_restores_the_database() {
    let dir = TempDir::new("export-db-migrate-fails");
    let migrations = dir.path().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap_or_else(|error| panic!("{error}"));
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    for entry in std::fs::read_dir(shipped).unwrap_or_else(|error| panic!("{error}")) {
        let entry = entry.unwrap_or_else(|error| panic!("{error}"));
        std::fs::copy(entry.path(), migrations.join(entry.file_name()))
            .unwrap_or_else(|error| panic!("{error}"));
    }
    let data = dir.path().join("data");
    let args = [
        "--data-dir",
        data.to_str().unwrap_or_default(),
        "db",
        "migrate",
        "--database",
        "app.db",
        "--migrations",
        "migrations",
    ];
    let first = conductor(dir.path(), &args);
    assert!(first.status.success(), "{}", text(&first.stderr));

    write(
        &migrations.join("V3__broken.sql"),
        "CREATE TABEL oops (id INTEGER);",
    );
    let failed = conductor(dir.path(), &args);
    assert_eq!(failed.status.code(), Some(2), "{}", text(&failed.stderr));
    let stderr = text(&failed.stderr);
    assert!(
        stderr.contains("V3__broken") && stderr.contains("syntax error"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(data.join("backups")).is_ok_and(|mut entries| entries.next().is_some()),
        "a backup was made first"
    );
    let status = conductor(
        dir.path(),
        &[
            "--data-dir",
            data.to_str().unwrap_or_default(),
            "db",
            "migrate",
            "--database",
            "app.db",
        ],
    );
    assert_eq!(
        text(&status.stdout),
        "✓ Database initialized (0 migrations)\n",
        "restored at V2: {}",
        text(&status.stderr)
    );
}

#[test]
fn wait_ready_returns_once_a_port_accepts_and_fails_naming_why() {
    let dir = TempDir::new("export-wait-ready");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|error| panic!("{error}"));
    let port = listener
        .local_addr()
        .map(|address| address.port())
        .unwrap_or_default()
        .to_string();
    let ready = conductor(dir.path(), &["wait-ready", "--timeout", "5s", "tcp", &port]);
    assert!(ready.status.success(), "{}", text(&ready.stderr));
    drop(listener);
    let not_ready = conductor(
        dir.path(),
        &[
            "wait-ready",
            "--timeout",
            "200ms",
            "exec",
            "--",
            "sh",
            "-c",
            "exit 3",
        ],
    );
    assert_eq!(not_ready.status.code(), Some(1));
    assert!(
        text(&not_ready.stderr).contains("not ready after"),
        "{}",
        text(&not_ready.stderr)
    );
}
