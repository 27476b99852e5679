//! End-to-end tests of startup (SPEC §4 steps 3 to 5) as a UI and a user see it.
//!
//! A stop asked for during startup: SIGINT, SIGTERM and `app:quit` while a migration runs,
//! while a service never becomes ready, and while a crashed service waits out its restart
//! backoff. Each time conductor is gone within `stop_timeout` plus a second, with exit code 0
//! and the shutdown lines, no fleet process is left, the lock is released and the database
//! passes `PRAGMA integrity_check`; an interrupted migration is rolled back whole.
//!
//! Port preflight: a port a foreign process holds is found before anything is spawned. And the
//! events a UI receives while a service crashes during startup.

pub mod support;

use std::time::{Duration, Instant};

use conductor_protocol::ServiceState;
use support::{
    Bystander, Conductor, KillTagged, TempDir, fake_service, free_ports, registry_head, tagged,
    toml_string, unique_tag, wait_until,
};

/// The registries below set `stop_timeout` to this.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
enum Stop {
    Sigint,
    Sigterm,
    Quit,
}

impl Stop {
    const ALL: [Stop; 3] = [Stop::Sigint, Stop::Sigterm, Stop::Quit];

    fn reason(self) -> &'static str {
        match self {
            Stop::Sigint => "SIGINT",
            Stop::Sigterm => "SIGTERM",
            Stop::Quit => "app:quit",
        }
    }

    fn send(self, conductor: &Conductor) {
        match self {
            Stop::Sigint => conductor.signal(libc::SIGINT),
            Stop::Sigterm => conductor.signal(libc::SIGTERM),
            Stop::Quit => {
                let response = conductor.call("app:quit", "");
                assert_eq!(response.status, 202, "{}", response.body);
            }
        }
    }
}

/// Sends `stop` and checks what every interrupted startup must end with.
fn stop_and_check(mut conductor: Conductor, stop: Stop, tag: &str, db: &std::path::Path) {
    let sent = Instant::now();
    stop.send(&conductor);
    let status = wait_until(
        STOP_TIMEOUT + Duration::from_secs(1),
        &format!("conductor to be gone after {stop:?} during startup"),
        || {
            conductor
                .try_exit()
                .ok_or_else(|| format!("still running:\n{}", conductor.output()))
        },
    );
    let took = sent.elapsed();
    conductor.wait_exit();
    let output = conductor.output();
    assert_eq!(
        status.code(),
        Some(0),
        "a stop the user asked for is not a startup failure ({took:?}):\n{output}"
    );
    for line in [
        "✓ Shutting down services...".to_owned(),
        format!("  reason: {} (during startup)", stop.reason()),
        "✓ Exiting".to_owned(),
    ] {
        assert!(
            conductor.stdout().contains(&line),
            "no {line:?} in:\n{output}"
        );
    }
    let survivors = tagged(tag);
    assert!(
        survivors.is_empty(),
        "fleet processes left: {}",
        support::describe_pids(&survivors)
    );
    let lock = std::fs::File::open(conductor.data_dir.join("conductor.lock"))
        .expect("the lock file exists");
    assert!(lock.try_lock().is_ok(), "the instance lock is still held");
    let connection = rusqlite::Connection::open(db).expect("the database opens");
    let integrity: String = connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check runs");
    assert_eq!(integrity, "ok");
}

fn service_registry(app: &str, tag: &str, port: u16, misbehaviour: &str, restart: &str) -> String {
    format!(
        r#"{head}
[services.stuck]
port = {port}
command = {bin}
stop_timeout = "2s"
ready_timeout = "20s"
restart = {restart}
env = {{ TEST_TAG = {tag}, {misbehaviour} }}
"#,
        head = registry_head(app),
        bin = fake_service(),
        tag = toml_string(tag),
    )
}

/// A test's own dir, tag (killed on drop) and a started `conductor up` on a one-service
/// registry whose service `stuck` misbehaves so; returns once the control API is up.
struct Stuck {
    dir: TempDir,
    tag: String,
    _cleanup: KillTagged,
    conductor: Conductor,
}

impl Stuck {
    fn start(app: &str, misbehaviour: &str, restart: &str) -> Stuck {
        let dir = TempDir::new(app);
        let tag = unique_tag(app);
        let cleanup = KillTagged(tag.clone());
        let [port] = free_ports();
        let registry = service_registry(app, &tag, port, misbehaviour, restart);
        let path = dir.write("conductor.toml", &registry);
        let mut conductor = Conductor::spawn(&path, &dir.join("data"), &[]);
        conductor.wait_control_api();
        Stuck {
            dir,
            tag,
            _cleanup: cleanup,
            conductor,
        }
    }

    /// The database file conductor uses (`<data>/<app lowercased>.db`).
    fn db(&self, app: &str) -> std::path::PathBuf {
        self.dir
            .join("data")
            .join(format!("{}.db", app.to_lowercase()))
    }
}

#[test]
fn a_stop_while_a_service_never_becomes_ready_ends_startup_at_once() {
    for stop in Stop::ALL {
        let stuck = Stuck::start(
            "NeverReady",
            r#"FAKE_HEALTH_STATUS = "unhealthy""#,
            "{ max_retries = 3, backoff = \"50ms\" }",
        );
        let status =
            stuck
                .conductor
                .wait_status("stuck", "spawned and waiting for readiness", |s| {
                    s.status == ServiceState::Starting && s.pid.is_some()
                });
        if let Some(pid) = status.pid {
            stuck.conductor.track(pid);
        }
        let db = stuck.db("NeverReady");
        stop_and_check(stuck.conductor, stop, &stuck.tag, &db);
    }
}

#[test]
fn a_stop_during_a_restart_backoff_ends_startup_at_once() {
    for stop in Stop::ALL {
        let stuck = Stuck::start(
            "Backoff",
            r#"FAKE_EXIT_AFTER_MS = "0""#,
            "{ max_retries = 3, backoff = \"20s\", backoff_max = \"20s\" }",
        );
        stuck
            .conductor
            .wait_status("stuck", "waiting out its first backoff", |s| {
                s.status == ServiceState::Starting && s.pid.is_none() && s.restarts >= 1
            });
        let db = stuck.db("Backoff");
        stop_and_check(stuck.conductor, stop, &stuck.tag, &db);
    }
}

/// A migration that computes for minutes and writes one row at the end.
const SLOW_MIGRATION: &str = "CREATE TABLE slow AS SELECT count(*) AS n FROM (
    WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000000000)
    SELECT x FROM c);\n";

#[test]
fn a_stop_during_a_slow_migration_rolls_it_back_and_ends_startup_at_once() {
    let dir = TempDir::new("slow-migration");
    let tag = unique_tag("slow-migration");
    let _cleanup = KillTagged(tag.clone());
    // conductor's own migrations (its tables), then the app's.
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).expect("the temp dir is writable");
    let ours = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut n_ours = 0;
    for entry in std::fs::read_dir(&ours).expect("the repository's migrations/ is readable") {
        let entry = entry.expect("a directory entry");
        std::fs::copy(entry.path(), migrations.join(entry.file_name()))
            .expect("the temp dir is writable");
        n_ours += 1;
    }
    std::fs::write(
        migrations.join(format!("V{}__notes.sql", n_ours + 1)),
        "CREATE TABLE notes (body TEXT NOT NULL);\nINSERT INTO notes VALUES ('kept');\n",
    )
    .expect("the temp dir is writable");
    let [port] = free_ports();
    let registry = format!(
        r#"{head}
[database]
migrations = "migrations"

[services.plain]
port = {port}
command = {bin}
stop_timeout = "2s"
env = {{ TEST_TAG = {tag}, FAKE_REQUIRE_DB = "0" }}
"#,
        head = registry_head("SlowMigration"),
        bin = fake_service(),
        tag = toml_string(&tag),
    );
    let path = dir.write("conductor.toml", &registry);
    let data = dir.join("data");
    let db = data.join("slowmigration.db");

    // A first run leaves a database at version 1 with content, as an installed app has.
    let mut first = Conductor::spawn(&path, &data, &[]);
    first.wait_up();
    first.signal(libc::SIGTERM);
    assert_eq!(first.wait_exit().code(), Some(0), "{}", first.output());
    std::fs::write(
        migrations.join(format!("V{}__slow.sql", n_ours + 2)),
        SLOW_MIGRATION,
    )
    .expect("the temp dir is writable");

    for stop in Stop::ALL {
        let log = data.join("logs").join("conductor.log");
        let _ = std::fs::remove_file(&log);
        let mut conductor = Conductor::spawn(&path, &data, &[]);
        conductor.wait_control_api();
        wait_until(
            support::DEADLINE,
            "the slow migration to be running",
            || {
                let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
                if text.contains("applying migrations") {
                    Ok(())
                } else {
                    Err(text)
                }
            },
        );
        stop_and_check(conductor, stop, &tag, &db);
        let connection = rusqlite::Connection::open(&db).expect("the database opens");
        let versions: Vec<i64> = connection
            .prepare("SELECT version FROM refinery_schema_history ORDER BY version")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<Vec<i64>, _>>()
            })
            .expect("the history table is readable");
        let expected: Vec<i64> = (1..=n_ours + 1).collect();
        assert_eq!(versions, expected, "the interrupted migration left a trace");
        let slow_tables: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'slow'",
                [],
                |row| row.get(0),
            )
            .expect("sqlite_master is readable");
        assert_eq!(slow_tables, 0, "the interrupted migration's table exists");
        let kept: String = connection
            .query_row("SELECT body FROM notes", [], |row| row.get(0))
            .expect("version 1's content is still there");
        assert_eq!(kept, "kept");
    }
}

#[test]
fn a_ui_sees_a_status_change_when_a_service_crashes_during_startup() {
    let stuck = Stuck::start(
        "CrashEvents",
        r#"FAKE_EXIT_AFTER_MS = "0", FAKE_EXIT_CODE = "9""#,
        "{ max_retries = 1, backoff = \"5s\" }",
    );
    let mut conductor = stuck.conductor;
    let info = conductor.info().clone();
    let addr = info.url.trim_start_matches("http://").to_owned();
    // Replayed from the first event on: the stream the UI would have seen from the start.
    let events = support::read_events(&addr, &info.token, Some(0), |name, payload| {
        name == "service:status-changed"
            && payload["serviceName"] == "stuck"
            && payload["status"]["status"] == "starting"
            && payload["status"]["lastError"]
                .as_str()
                .is_some_and(|error| error.contains("exited during startup"))
    });
    let changes: Vec<&serde_json::Value> = events
        .iter()
        .filter(|(name, _)| name == "service:status-changed")
        .map(|(_, payload)| &payload["status"])
        .collect();
    assert!(
        changes.iter().any(|status| status["pid"].is_u64()),
        "the pid of the attempt never reached the UI: {changes:?}"
    );
    let status = conductor.wait_exit();
    assert_eq!(status.code(), Some(2), "{}", conductor.output());
}

/// `first` (level 0) and `blocked` (level 1, after `first`), whose port a python3 process
/// holds.
fn preflight_registry(tag: &str, [first, blocked]: [u16; 2], blocked_critical: bool) -> String {
    format!(
        r#"{head}
[services.first]
port = {first}
command = {bin}
env = {{ TEST_TAG = {tag} }}

[services.blocked]
port = {blocked}
command = {bin}
depends_on = ["first"]
critical = {blocked_critical}
env = {{ TEST_TAG = {tag} }}
"#,
        head = registry_head("Preflight"),
        bin = fake_service(),
        tag = toml_string(tag),
    )
}

#[test]
fn a_foreign_process_on_a_critical_port_fails_startup_before_anything_is_spawned() {
    let dir = TempDir::new("preflight-critical");
    let tag = unique_tag("preflight-critical");
    let _cleanup = KillTagged(tag.clone());
    let ports = free_ports();
    let holder = Bystander::python_listener(ports[1]);
    let path = dir.write("conductor.toml", &preflight_registry(&tag, ports, true));
    let mut conductor = Conductor::spawn(&path, &dir.join("data"), &[]);
    let status = conductor.wait_exit();
    let output = conductor.output();
    assert_eq!(status.code(), Some(2), "{output}");
    let expected = format!(
        "port {} is already in use by pid {} (",
        ports[1],
        holder.pid()
    );
    assert!(
        conductor.stderr().contains(&expected),
        "no {expected:?} in:\n{output}"
    );
    assert!(conductor.stderr().contains("python3 -c"), "{output}");
    assert!(
        conductor.stderr().contains("services.blocked.port"),
        "{output}"
    );
    for service in ["first", "blocked"] {
        let log = dir.join("data").join("logs").join(format!("{service}.log"));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !text.contains("starting attempt"),
            "{service} was spawned although a critical port was taken:\n{text}"
        );
    }
    assert!(tagged(&tag).is_empty());
}

#[test]
fn a_foreign_process_on_a_non_critical_port_fails_only_that_service_without_retries() {
    let dir = TempDir::new("preflight-optional");
    let tag = unique_tag("preflight-optional");
    let _cleanup = KillTagged(tag.clone());
    let ports = free_ports();
    let holder = Bystander::python_listener(ports[1]);
    let mut conductor = Conductor::start(&dir, &preflight_registry(&tag, ports, false));
    assert!(
        conductor
            .stdout()
            .contains("! Running degraded without: blocked"),
        "{}",
        conductor.output()
    );
    assert_eq!(conductor.status("first").status, ServiceState::Running);
    let blocked = conductor.status("blocked");
    assert_eq!(blocked.status, ServiceState::Failed, "{blocked:?}");
    assert_eq!(
        blocked.restarts, 0,
        "a busy port is not retried: {blocked:?}"
    );
    let error = blocked.last_error.unwrap_or_default();
    let expected = format!(
        "port {} is already in use by pid {}",
        ports[1],
        holder.pid()
    );
    assert!(error.contains(&expected), "{error:?} lacks {expected:?}");
    let log = dir.join("data").join("logs").join("blocked.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("starting attempt"), "{text}");
    conductor.signal(libc::SIGTERM);
    assert_eq!(
        conductor.wait_exit().code(),
        Some(0),
        "{}",
        conductor.output()
    );
}

/// Issue 12: conductor's own log is size-rotated like the services' logs.
#[test]
fn conductor_log_is_rotated_by_size() {
    let dir = TempDir::new("conductor-log-rotation");
    let tag = unique_tag("conductor-log-rotation");
    let _cleanup = KillTagged(tag.clone());
    let [port] = free_ports();
    let registry = format!(
        r#"{head}
[logs]
max_size = "4KB"
max_files = 2

[services.chatty]
port = {port}
command = {bin}
env = {{ TEST_TAG = {tag} }}
"#,
        head = registry_head("LogRotation"),
        bin = fake_service(),
        tag = toml_string(&tag),
    );
    let path = dir.write("conductor.toml", &registry);
    let mut conductor =
        Conductor::spawn_with_env(&path, &dir.join("data"), &[], &[("CONDUCTOR_LOG", "debug")]);
    conductor.wait_up();
    let logs = dir.join("data").join("logs");
    for _ in 0..40 {
        let answer = conductor.call("services:restart", r#"{"serviceName":"chatty"}"#);
        assert_eq!(answer.status, 200, "{}", answer.body);
        if logs.join("conductor.2.log.gz").exists() {
            break;
        }
    }
    assert!(
        logs.join("conductor.1.log.gz").exists(),
        "conductor.log never rotated"
    );
    assert!(
        logs.join("conductor.2.log.gz").exists(),
        "only one rotation in 40 restarts"
    );
    assert!(
        !logs.join("conductor.3.log.gz").exists(),
        "more than max_files kept"
    );
    let current = std::fs::metadata(logs.join("conductor.log")).expect("conductor.log exists");
    assert!(
        current.len() <= 4 * 1024,
        "conductor.log is {} bytes",
        current.len()
    );
    conductor.signal(libc::SIGTERM);
    assert_eq!(
        conductor.wait_exit().code(),
        Some(0),
        "{}",
        conductor.output()
    );
}
