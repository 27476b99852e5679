//! `cargo xtask bundle [--test] [--debug]`: the release tar.gz for packagers, in
//! `target/bundle/conductor-<version>-<target triple>.tar.gz`, holding the binary, the
//! reference registry, the migrations, a launcher script, a short README and SHA256SUMS.
//! `--test` then unpacks it with the system `tar` into a temp dir and runs `conductor up` from
//! there against a registry of fake-services until every service is ready, then quits cleanly.
//! `--debug` packs the debug binary instead (into `target/bundle/debug/`): the same layout in
//! seconds rather than a multi-minute release build; `verify` uses it.
//!
//! The archive is written in Rust (flate2 and a small ustar writer, `bundle/archive.rs`) with a
//! fixed modification time, so running the task twice gives the same bytes. It does not sign,
//! upload or cross-compile anything.

mod archive;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use conductor_test_support::{Fleet, TempDir};

use self::archive::Entry;
use crate::{
    gates::{self, Setup},
    util::{cargo, project_root, run_checked, target_dir},
};

const USAGE: &str = "usage: cargo xtask bundle [--test] [--debug]
  --test   unpack the bundle in a temp dir and run its conductor against fake-services
  --debug  bundle the debug build (quick; into target/bundle/debug/) instead of the release";

/// How long the bundle test may take from `up` to exit.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// The registry shipped in the bundle: the reference app of SPEC §2 (the same services, ports
/// and edges as the built-in registry), for the packager to point at the real services.
const REGISTRY: &str = r#"# The reference app's eight services (conductor SPEC §2). Point `command`, `args` and `cwd`
# at your services; relative paths are relative to this file. Check it with
# `./conductor.sh check`.

[app]
name = "FACTSWAY"
deployment_env = "desktop"
startup = "dependency"

[database]
# Read at run time, so an app can add its own migrations (V3__…) next to conductor's.
migrations = "migrations"

[defaults]
health = { kind = "http", path = "/health", interval = "10s", timeout = "2s", failure_threshold = 3 }
ready_timeout = "30s"
stop_timeout = "5s"
restart = { max_retries = 3, backoff = "1s", backoff_max = "30s", reset_after = "60s" }

[services.records]
port = 3001
command = "node"
args = ["dist/index.js"]
cwd = "services/records"
depends_on = []

[services.ingestion]
port = 3002
command = "node"
args = ["dist/index.js"]
cwd = "services/ingestion"
depends_on = ["records"]

[services.export]
port = 3003
command = "node"
args = ["dist/index.js"]
cwd = "services/export"
depends_on = ["records", "template"]

[services.citation]
port = 3004
command = "node"
args = ["dist/index.js"]
cwd = "services/citation"
depends_on = ["records"]

[services.evidence]
port = 3005
command = "node"
args = ["dist/index.js"]
cwd = "services/evidence"
depends_on = ["records"]

[services.template]
port = 3006
command = "node"
args = ["dist/index.js"]
cwd = "services/template"
depends_on = ["records"]

[services.analysis]
port = 3007
command = "node"
args = ["dist/index.js"]
cwd = "services/analysis"
depends_on = ["records", "evidence", "citation"]

[services.reserved]
port = 3008
command = "node"
args = ["dist/index.js"]
cwd = "services/reserved"
depends_on = ["records"]
enabled = false
"#;

/// Runs the bundled binary with the bundled registry unless the caller names one. `exec`, so
/// signals and the exit code are conductor's own.
const LAUNCHER: &str = r#"#!/bin/sh
# Runs bin/conductor with the registry next to this script, unless --registry is given:
#   ./conductor.sh up        start the app (Ctrl-C stops every service)
#   ./conductor.sh status    talk to the running instance (also: logs, restart NAME, quit)
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd) || exit 1
for arg in "$@"; do
    case "$arg" in
        --registry|--registry=*) exec "$here/bin/conductor" "$@" ;;
    esac
done
exec "$here/bin/conductor" --registry "$here/conductor.toml" "$@"
"#;

const README: &str = "# conductor {version} ({triple})

conductor is the parent process of a desktop app's local HTTP services: it migrates the
SQLite database, starts the services in dependency order, watches their health, restarts
the ones that crash, gathers their logs, serves a local control API, and on quit stops
everything so that no process is left behind.

## Contents

- `bin/conductor`: the binary.
- `conductor.sh`: the launcher; runs `bin/conductor` with `conductor.toml` unless you pass
  `--registry FILE`.
- `conductor.toml`: the registry, the reference app's eight services. Edit the commands.
- `migrations/`: the SQL migrations, read at run time (`[database] migrations`).
- `SHA256SUMS`: checksums of the above; check with `sha256sum -c SHA256SUMS`.

## Use

    ./conductor.sh check      validate the registry and print the start plan
    ./conductor.sh up         run in the foreground; Ctrl-C or `./conductor.sh quit` stops it
    ./conductor.sh status     services, pids, ports, restarts (also: logs, restart NAME, paths)

Data (database, logs, ipc.json) goes to the per-user data directory named after the app, or to
`--data-dir DIR` / `$CONDUCTOR_DATA_DIR`. Exit codes: 0 ok, 1 error, 2 startup failed,
3 another instance is running for this data directory.
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    Release,
    Debug,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }

    /// Where this profile's bundles go.
    fn bundle_dir(self) -> PathBuf {
        match self {
            Profile::Release => target_dir().join("bundle"),
            Profile::Debug => target_dir().join("bundle").join("debug"),
        }
    }
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut test = false;
    let mut profile = Profile::Release;
    for arg in args {
        match arg.as_str() {
            "--test" => test = true,
            "--debug" => profile = Profile::Debug,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unexpected argument {other:?}\n{USAGE}"),
        }
    }
    build(profile, test)?;
    let started = Instant::now();
    let archive = create(profile)?;
    println!(
        "✓ bundle {} ({:.1} MB, packed in {:.1}s)",
        archive.display(),
        size_mb(&archive),
        started.elapsed().as_secs_f64()
    );
    if test {
        let started = Instant::now();
        test_bundle(&archive)?;
        println!(
            "✓ bundle test: unpacked, all services ready, quit cleanly ({:.1}s)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The bundle test on a bundle of the debug binary, for `verify` (which has built it).
pub(crate) fn test_debug_bundle() -> anyhow::Result<()> {
    build(Profile::Debug, true)?;
    let archive = create(Profile::Debug)?;
    test_bundle(&archive)
}

fn size_mb(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |meta| meta.len() as f64 / 1e6)
}

/// Builds conductor in `profile`, and the (debug) fake-service the test runs.
fn build(profile: Profile, with_fixtures: bool) -> anyhow::Result<()> {
    let mut command = cargo();
    command.args(["build", "--quiet", "-p", "conductor"]);
    if profile == Profile::Release {
        command.arg("--release");
    }
    run_checked(&mut command)?;
    if with_fixtures {
        crate::fixtures::run(&[])?;
    }
    Ok(())
}

/// `conductor <version>` from the binary itself, so the name matches what it reports.
fn version(binary: &Path) -> anyhow::Result<String> {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .nth(1)
        .map(str::to_owned)
        .with_context(|| format!("`{} --version` printed {text:?}", binary.display()))
}

/// The host target triple (`rustc -vV`): what cargo built for.
fn target_triple() -> anyhow::Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .arg("-vV")
        .output()
        .with_context(|| format!("running {rustc:?} -vV"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(|triple| triple.trim().to_owned())
        .context("`rustc -vV` printed no host line")
}

/// The archive's modification time: `$SOURCE_DATE_EPOCH` (the reproducible-builds
/// convention) or the epoch, never the clock, so two runs give the same bytes.
fn mtime() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// Writes the bundle of `profile` and returns its path.
fn create(profile: Profile) -> anyhow::Result<PathBuf> {
    let binary = target_dir().join(profile.dir()).join("conductor");
    let version = version(&binary)?;
    let triple = target_triple()?;
    let top = format!("conductor-{version}-{triple}");

    let mut files: Vec<(String, u32, Vec<u8>)> = vec![(
        "bin/conductor".to_owned(),
        0o755,
        std::fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?,
    )];
    files.push((
        "conductor.sh".to_owned(),
        0o755,
        LAUNCHER.as_bytes().to_vec(),
    ));
    files.push((
        "conductor.toml".to_owned(),
        0o644,
        REGISTRY.as_bytes().to_vec(),
    ));
    let readme = README
        .replace("{version}", &version)
        .replace("{triple}", &triple);
    files.push(("README.md".to_owned(), 0o644, readme.into_bytes()));
    let migrations_dir = project_root().join("migrations");
    let mut migrations: Vec<PathBuf> = std::fs::read_dir(&migrations_dir)
        .with_context(|| format!("reading {}", migrations_dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    migrations.sort();
    for path in migrations {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let contents =
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        files.push((format!("migrations/{name}"), 0o644, contents));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let sums: String = files
        .iter()
        .map(|(path, _, contents)| format!("{}  {path}\n", hex_sha256(contents)))
        .collect();
    files.push(("SHA256SUMS".to_owned(), 0o644, sums.into_bytes()));

    let mut entries = Vec::new();
    for dir in ["", "/bin", "/migrations"] {
        entries.push(Entry {
            path: format!("{top}{dir}"),
            mode: 0o755,
            contents: None,
        });
    }
    entries.extend(files.into_iter().map(|(path, mode, contents)| Entry {
        path: format!("{top}/{path}"),
        mode,
        contents: Some(contents),
    }));

    let out_dir = profile.bundle_dir();
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let archive = out_dir.join(format!("{top}.tar.gz"));
    // Written aside and renamed, so an interrupted run never leaves a truncated bundle behind
    // under the final name.
    let partial = out_dir.join(format!("{top}.tar.gz.partial"));
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    // The debug binary is large and only ever unpacked by the test: favour speed there.
    let level = match profile {
        Profile::Release => flate2::Compression::best(),
        Profile::Debug => flate2::Compression::fast(),
    };
    archive::write_tar_gz(std::io::BufWriter::new(file), &entries, mtime(), level)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &archive)
        .with_context(|| format!("renaming {} to {}", partial.display(), archive.display()))?;
    Ok(archive)
}

/// The SHA-256 of `bytes` in lowercase hex, as `sha256sum` prints it.
fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Unpacks `archive` and runs its conductor against fake-services until every service is
/// ready, then quits it and expects a clean exit.
fn test_bundle(archive: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + TEST_TIMEOUT;
    let unpacked = TempDir::try_new("bundle")?;
    run_checked(
        Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(unpacked.path()),
    )
    .context("unpacking the bundle with the system tar")?;
    let name = archive
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_suffix(".tar.gz"))
        .context("the bundle is not named <name>.tar.gz")?;
    let top = unpacked.path().join(name);

    // Every file is there, executables are executable, and the checksums hold.
    for file in [
        "bin/conductor",
        "conductor.sh",
        "conductor.toml",
        "README.md",
        "SHA256SUMS",
    ] {
        ensure!(top.join(file).is_file(), "the bundle has no {name}/{file}");
    }
    for executable in ["bin/conductor", "conductor.sh"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(top.join(executable))?
            .permissions()
            .mode();
        ensure!(
            mode & 0o111 != 0,
            "{executable} is not executable (mode {mode:o})"
        );
    }
    // `sha256sum --check` is what packagers run; it also cross-checks our SHA-256 code.
    let sums = std::fs::read_to_string(top.join("SHA256SUMS"))?;
    let n_migrations = gates::count_migrations(&top.join("migrations"))?;
    let n_listed = sums.lines().count();
    ensure!(
        n_migrations > 0 && n_listed == 4 + n_migrations,
        "SHA256SUMS lists {n_listed} files, expected the 4 files and {n_migrations} migrations"
    );
    run_checked(
        Command::new("sha256sum")
            .args(["--check", "--quiet", "--strict", "SHA256SUMS"])
            .current_dir(&top),
    )
    .context("sha256sum --check SHA256SUMS in the unpacked bundle")?;

    // The shipped registry is valid as it stands.
    run_checked(
        Command::new(top.join("conductor.sh"))
            .arg("check")
            .current_dir(&top)
            .stdout(std::process::Stdio::null()),
    )
    .context("`conductor.sh check` on the bundled registry")?;

    // Run it from there against fake-services, with the bundle's migrations (the services
    // refuse to start without the table migration V2 creates).
    let mut setup = Setup::reference()?;
    setup.migrations = Some("migrations".to_owned());
    let env = gates::env()?;
    let registry = top.join("fixtures.toml");
    std::fs::write(&registry, setup.registry_toml(&env.fake_service, &top))?;
    let data_dir = unpacked.path().join("data");
    let mut up = Command::new(top.join("conductor.sh"));
    up.arg("--registry")
        .arg(&registry)
        .arg("up")
        .arg("--data-dir")
        .arg(&data_dir)
        .current_dir(&top);
    let mut fleet = Fleet::spawn(up, &data_dir)?.owning(unpacked);
    let end_of_startup = fleet.wait_started(gates::left(deadline))?.text;
    ensure!(
        end_of_startup == "✓ All services ready",
        "startup ended with {end_of_startup:?}; {}",
        fleet.tail()
    );
    let migrated = format!("✓ Database initialized ({n_migrations} migrations)");
    ensure!(
        fleet.stdout().contains(&migrated),
        "no {migrated:?} line; {}",
        fleet.tail()
    );
    let statuses = fleet.control()?.statuses()?;
    let n_running = statuses
        .iter()
        .filter(|status| status["status"] == "running")
        .count();
    ensure!(
        n_running == setup.enabled().count(),
        "{n_running} services running, expected {}",
        setup.enabled().count()
    );
    run_checked(
        Command::new(top.join("conductor.sh"))
            .arg("--registry")
            .arg(&registry)
            .arg("quit")
            .arg("--data-dir")
            .arg(&data_dir)
            .stdout(std::process::Stdio::null()),
    )
    .context("`conductor.sh quit`")?;
    let status = fleet.wait_exit(gates::left(deadline))?;
    ensure!(
        status.success(),
        "conductor exited with {status} after quit; {}",
        fleet.tail()
    );
    fleet.wait_for_line("`✓ Exiting`", gates::left(deadline), |line| {
        line == "✓ Exiting"
    })?;
    Ok(())
}
