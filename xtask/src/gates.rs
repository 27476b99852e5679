//! The five verification gates of SPEC §8 (startup, health, restart, ipc, shutdown), run
//! against the real debug `conductor` binary and a fleet of eight fake-services (seven enabled,
//! `reserved` disabled, as in the reference app) on free ports, each gate with its own temp
//! registry and data dir, so the gates can run beside a demo. Each gate prints `✓ <gate>` or
//! `✗ <gate>: <why>`, has a deadline, and its fleet guard kills everything it started.
//!
//! The self-test runs each gate against a deliberately broken setup and requires a ✗, so a
//! gate that cannot fail is caught. Building the binaries is the caller's job (`verify`).

mod setup;

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail, ensure};
use conductor_test_support::{
    ControlApi, Proc, control,
    http::{self, Request, Response},
    process, try_wait_until,
};
use serde_json::{Value, json};

pub(crate) use self::setup::{GateEnv, Setup};
use crate::util::{project_root, target_dir};

/// The longest a gate may take, from starting its fleet to the fleet's exit. A healthy run
/// takes a few seconds; the slack is for a loaded 2-core machine.
const GATE_TIMEOUT: Duration = Duration::from_secs(90);

/// The service the restart gate SIGKILLs.
const RESTART_VICTIM: &str = "export";
/// The service the shutdown gate gives a grandchild.
const GRANDCHILD_PARENT: &str = "evidence";
/// The service the ipc gate stops, starts and restarts (non-critical, nothing depends on it).
const IPC_SUBJECT: &str = "template";

/// One gate: how it adjusts the reference setup, its check, and for the self-test how to
/// break the setup and a fragment its ✗ must contain (so it fails for the intended reason).
struct Gate {
    name: &'static str,
    prepare: fn(&mut Setup),
    check: fn(&GateEnv, &Setup) -> anyhow::Result<()>,
    broken: &'static str,
    break_setup: fn(&mut Setup),
    broken_because: &'static str,
}

const GATES: &[Gate] = &[
    Gate {
        name: "startup",
        prepare: |_| {},
        check: startup,
        broken: "citation never becomes healthy (ready_timeout 1s, no retries)",
        break_setup: |setup| {
            let service = setup.service_mut("citation");
            service
                .env
                .push(("FAKE_HEALTH_STATUS", "unhealthy".to_owned()));
            service.extra.push("ready_timeout = \"1s\"".to_owned());
            service
                .extra
                .push("restart = { max_retries = 0 }".to_owned());
        },
        broken_because: "Citation",
    },
    Gate {
        name: "health",
        prepare: |_| {},
        check: health,
        broken: "template (non-critical) exits at once, no retries",
        break_setup: |setup| {
            let service = setup.service_mut("template");
            service.env.push(("FAKE_EXIT_AFTER_MS", "0".to_owned()));
            service
                .extra
                .push("restart = { max_retries = 0 }".to_owned());
        },
        broken_because: "template",
    },
    Gate {
        name: "restart",
        prepare: |_| {},
        check: restart,
        broken: "export has max_retries = 0, so it is not restarted",
        break_setup: |setup| {
            setup
                .service_mut(RESTART_VICTIM)
                .extra
                .push("restart = { max_retries = 0 }".to_owned());
        },
        broken_because: "failed",
    },
    Gate {
        name: "ipc",
        prepare: |_| {},
        check: ipc,
        broken: "the client sends a wrong token",
        break_setup: |setup| setup.client_token = Some("0".repeat(64)),
        broken_because: "401",
    },
    Gate {
        name: "shutdown",
        prepare: |setup| {
            let service = setup.service_mut(GRANDCHILD_PARENT);
            service.env.push(("FAKE_GRANDCHILD", "1".to_owned()));
            service.env.push((
                "FAKE_GRANDCHILD_PID_FILE",
                "{fleet_dir}/grandchild.pid".to_owned(),
            ));
        },
        check: shutdown,
        broken: "conductor is built with its group kill disabled (self-test-break-group-kill)",
        break_setup: |setup| setup.broken_group_kill = true,
        broken_because: "grandchild",
    },
];

/// The binaries under test (built beforehand by `verify`) and the migration count.
pub(crate) fn env() -> anyhow::Result<GateEnv> {
    let debug = target_dir().join("debug");
    let env = GateEnv {
        conductor: debug.join("conductor"),
        broken_group_kill: None,
        fake_service: debug.join("fake-service"),
        n_migrations: count_migrations(&project_root().join("migrations"))?,
    };
    for binary in [&env.conductor, &env.fake_service] {
        ensure!(
            binary.is_file(),
            "{} is missing; run `cargo build -p conductor -p fake-service`",
            binary.display()
        );
    }
    Ok(env)
}

/// Refinery migration files (`V<n>__<name>.sql`) in `dir`.
pub(crate) fn count_migrations(dir: &Path) -> anyhow::Result<usize> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    Ok(entries
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with('V') && name.contains("__") && name.ends_with(".sql")
        })
        .count())
}

/// Runs every gate against its reference setup, printing one line each; returns the names of
/// the gates that failed.
pub(crate) fn run_all(env: &GateEnv) -> Vec<String> {
    let mut failed = Vec::new();
    let mut timings = Vec::new();
    let started = Instant::now();
    for gate in GATES {
        let gate_started = Instant::now();
        match run_gate(env, gate, false) {
            Ok(()) => println!("✓ {}", gate.name),
            Err(err) => {
                println!("✗ {}: {}", gate.name, one_line(&err));
                failed.push(gate.name.to_owned());
            }
        }
        timings.push(format!(
            "{} {:.1}s",
            gate.name,
            gate_started.elapsed().as_secs_f64()
        ));
    }
    println!(
        "  gates took {:.1}s ({})",
        started.elapsed().as_secs_f64(),
        timings.join(", ")
    );
    failed
}

/// Runs every gate against its broken setup and requires each to fail for the intended
/// reason; fails naming every gate that passed (or failed for another reason).
pub(crate) fn self_test(env: &GateEnv) -> anyhow::Result<()> {
    let env = &GateEnv {
        broken_group_kill: Some(build_broken_group_kill()?),
        ..env.clone()
    };
    let mut wrong = Vec::new();
    for gate in GATES {
        let started = Instant::now();
        match run_gate(env, gate, true) {
            Ok(()) => {
                println!(
                    "✗ {} passed against a broken setup: {}",
                    gate.name, gate.broken
                );
                wrong.push(gate.name);
            }
            Err(err) => {
                let why = one_line(&err);
                if why.contains(gate.broken_because) {
                    println!(
                        "✓ {} fails when {} ({:.1}s): ✗ {}: {why}",
                        gate.name,
                        gate.broken,
                        started.elapsed().as_secs_f64(),
                        gate.name
                    );
                } else {
                    println!(
                        "✗ {} failed when {}, but not for that reason (expected {:?} in the \
                         reason): {why}",
                        gate.name, gate.broken, gate.broken_because
                    );
                    wrong.push(gate.name);
                }
            }
        }
    }
    ensure!(
        wrong.is_empty(),
        "self-test: gate(s) not proven to fail: {}",
        wrong.join(", ")
    );
    Ok(())
}

/// Builds conductor with `self-test-break-group-kill` into a target directory of its own (so
/// the real `target/debug/conductor` is never the broken one) and returns the binary.
fn build_broken_group_kill() -> anyhow::Result<PathBuf> {
    let dir = target_dir().join("self-test");
    crate::util::run_checked(
        crate::util::cargo()
            .args([
                "build",
                "--quiet",
                "-p",
                "conductor",
                "--features",
                "self-test-break-group-kill",
                "--target-dir",
            ])
            .arg(&dir),
    )?;
    Ok(dir.join("debug").join("conductor"))
}

fn run_gate(env: &GateEnv, gate: &Gate, broken: bool) -> anyhow::Result<()> {
    let mut setup = Setup::reference()?;
    (gate.prepare)(&mut setup);
    if broken {
        (gate.break_setup)(&mut setup);
    }
    (gate.check)(env, &setup)
}

/// What is left of a gate's time: each gate has one deadline for all its waits.
pub(crate) fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// `GET http://127.0.0.1:<port>/health` straight to a service; the status code.
fn service_health(port: u16) -> anyhow::Result<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let response = http::get(addr, "/health", Duration::from_secs(5))
        .with_context(|| format!("GET {addr}/health"))?;
    Ok(response.status)
}

fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace('\n', " ")
}

/// A service's title as conductor prints it (`pdf-export` -> `Pdf Export`).
fn title(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_uppercase().collect::<String>() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Gate 1: every enabled service starts and the output is SPEC §7's, at startup and shutdown.
fn startup(env: &GateEnv, setup: &Setup) -> anyhow::Result<()> {
    let deadline = Instant::now() + GATE_TIMEOUT;
    let mut fleet = setup.up(env, "startup")?;
    let end_of_startup = fleet.wait_started(left(deadline))?.text;

    let n = env.n_migrations;
    let mut expected = vec![format!(
        "✓ Database initialized ({n} migration{})",
        if n == 1 { "" } else { "s" }
    )];
    expected.extend(setup.enabled().map(|service| {
        format!(
            "✓ Starting {} Service... OK (port {})",
            title(service.name),
            service.port
        )
    }));
    expected.push("✓ All services ready".to_owned());
    let output = fleet.stdout();
    let status_lines: Vec<&String> = output
        .iter()
        .take_while(|line| **line != end_of_startup)
        .chain(std::iter::once(&end_of_startup))
        .filter(|line| line.starts_with(['✓', '✗', '!']))
        .collect();
    compare_lines("startup output", &expected, &status_lines)?;

    let status = fleet.quit(left(deadline))?;
    fleet.wait_for_line("`✓ Exiting`", left(deadline), |line| line == "✓ Exiting")?;
    ensure!(
        status.success(),
        "conductor exited with {status} after app:quit"
    );
    let output = fleet.stdout();
    let after: Vec<&String> = output
        .iter()
        .skip_while(|line| !line.starts_with("✓ Shutting down services..."))
        .filter(|line| line.starts_with(['✓', '✗', '!']))
        .collect();
    ensure!(
        !after.is_empty(),
        "no `✓ Shutting down services...` line; {}",
        fleet.tail()
    );
    let n_enabled = setup.enabled().count();
    let stopped: Vec<&String> = after.iter().skip(1).take(n_enabled).copied().collect();
    let expected_stopped: BTreeSet<String> = setup
        .enabled()
        .map(|service| format!("✓ {} Service stopped", title(service.name)))
        .collect();
    let actual_stopped: BTreeSet<String> = stopped.iter().map(|line| (*line).clone()).collect();
    ensure!(
        actual_stopped == expected_stopped && stopped.len() == n_enabled,
        "shutdown should print one `✓ <Title> Service stopped` per started service; missing: \
         {:?}, printed: {:?}",
        expected_stopped
            .difference(&actual_stopped)
            .collect::<Vec<_>>(),
        stopped
    );
    let tail: Vec<&String> = after.iter().skip(1 + n_enabled).copied().collect();
    compare_lines(
        "shutdown output",
        &[
            "✓ Database connections closed".to_owned(),
            "✓ Logs flushed".to_owned(),
            "✓ Exiting".to_owned(),
        ],
        &tail,
    )
}

fn compare_lines(what: &str, expected: &[String], actual: &[&String]) -> anyhow::Result<()> {
    for (i, want) in expected.iter().enumerate() {
        match actual.get(i) {
            Some(got) if *got == want => {}
            Some(got) => bail!(
                "{what}, status line {}: expected {want:?}, got {got:?}",
                i + 1
            ),
            None => bail!("{what}: expected {want:?} after {:?}", actual),
        }
    }
    if let Some(extra) = actual.get(expected.len()) {
        bail!(
            "{what}: unexpected line {extra:?} after {:?}",
            expected.last()
        );
    }
    Ok(())
}

/// Gate 2: `services:get-all` returns every service, the enabled ones running and answering.
fn health(env: &GateEnv, setup: &Setup) -> anyhow::Result<()> {
    let deadline = Instant::now() + GATE_TIMEOUT;
    let mut fleet = setup.up(env, "health")?;
    fleet.wait_started(left(deadline))?;
    let statuses = fleet.control()?.statuses()?;
    let names: BTreeSet<&str> = statuses
        .iter()
        .filter_map(|status| status["name"].as_str())
        .collect();
    let expected: BTreeSet<&str> = setup.services.iter().map(|service| service.name).collect();
    ensure!(
        names == expected && statuses.len() == expected.len(),
        "services:get-all lists {names:?}, expected every service of the registry: {expected:?}"
    );
    let mut problems = Vec::new();
    for service in &setup.services {
        let status = statuses
            .iter()
            .find(|status| status["name"] == service.name)
            .ok_or_else(|| anyhow!("no entry for {}", service.name))?;
        let state = status["status"].as_str().unwrap_or("?");
        if !service.enabled {
            if state != "disabled" {
                problems.push(format!("{} is {state}, expected disabled", service.name));
            }
            continue;
        }
        if state != "running" {
            problems.push(format!(
                "{} is {state}, expected running (lastError: {})",
                service.name, status["lastError"]
            ));
            continue;
        }
        if !status["pid"].is_u64() || status["port"] != service.port {
            problems.push(format!(
                "{} has pid {} and port {}, expected a pid and port {}",
                service.name, status["pid"], status["port"], service.port
            ));
        }
        match service_health(service.port) {
            Ok(200) => {}
            Ok(code) => problems.push(format!("{} /health answered {code}", service.name)),
            Err(err) => problems.push(format!("{}: {err:#}", service.name)),
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("; "));
    let _ = fleet.quit(left(deadline));
    Ok(())
}

/// Gate 3: a SIGKILLed service is restarted on its own and healthy again.
fn restart(env: &GateEnv, setup: &Setup) -> anyhow::Result<()> {
    let deadline = Instant::now() + GATE_TIMEOUT;
    let mut fleet = setup.up(env, "restart")?;
    fleet.wait_started(left(deadline))?;
    let ipc = fleet.control()?;
    let before = ipc.status_of(RESTART_VICTIM)?;
    ensure!(
        before["status"] == "running",
        "{RESTART_VICTIM} is {} before the kill, expected running",
        before["status"]
    );
    let old_pid = pid_of(&before)?;
    let old = Proc::identify(old_pid)
        .ok_or_else(|| anyhow!("{RESTART_VICTIM}'s pid {old_pid} does not exist"))?;
    fleet.track(old);
    ensure!(
        old.kill(),
        "could not SIGKILL {RESTART_VICTIM} (pid {old_pid})"
    );

    let what = format!("{RESTART_VICTIM} to be running again with a new pid after SIGKILL");
    let after = try_wait_until(left(deadline), &what, || {
        let status = ipc.status_of(RESTART_VICTIM)?;
        match status["status"].as_str() {
            Some("failed") => bail!(
                "{RESTART_VICTIM} is failed after SIGKILL instead of restarted (lastError: {})",
                status["lastError"]
            ),
            Some("running") if status["pid"].is_u64() && status["pid"] != old_pid => Ok(Ok(status)),
            _ => Ok(Err(status.to_string())),
        }
    })?;
    let new_pid = pid_of(&after)?;
    if let Some(new) = Proc::identify(new_pid) {
        fleet.track(new);
    }
    ensure!(
        after["restarts"].as_u64().is_some_and(|n| n >= 1),
        "{RESTART_VICTIM} runs again but reports restarts = {}",
        after["restarts"]
    );
    let port = setup.service(RESTART_VICTIM)?.port;
    try_wait_until(
        left(deadline),
        &format!("{RESTART_VICTIM}'s /health to answer 200"),
        || {
            anyhow::Ok(match service_health(port) {
                Ok(200) => Ok(()),
                Ok(code) => Err(format!("status {code}")),
                Err(err) => Err(format!("{err:#}")),
            })
        },
    )?;
    ensure!(
        old.live_state().is_none(),
        "the killed process {old_pid} is still alive"
    );
    let _ = fleet.quit(left(deadline));
    Ok(())
}

fn pid_of(status: &Value) -> anyhow::Result<u32> {
    status["pid"]
        .as_u64()
        .and_then(|pid| u32::try_from(pid).ok())
        .ok_or_else(|| anyhow!("{} has no pid: {status}", status["name"]))
}

/// Expects `status` and a JSON body; returns it.
fn answer(response: &Response, status: u16, what: &str) -> anyhow::Result<Value> {
    ensure!(
        response.status == status,
        "{what}: answered {} (expected {status}): {}",
        response.status,
        response.body_text()
    );
    ensure!(
        response
            .header("content-type")
            .is_some_and(|value| value.starts_with("application/json")),
        "{what}: content-type {:?}, expected application/json",
        response.header("content-type")
    );
    serde_json::from_slice(&response.body)
        .with_context(|| format!("{what}: body is not JSON: {}", response.body_text()))
}

/// Expects an error `status` with a JSON `{"error": "<non-empty message>"}` body.
fn refusal(response: &Response, status: u16, what: &str) -> anyhow::Result<String> {
    let body = answer(response, status, what)?;
    match body["error"].as_str() {
        Some(message) if !message.trim().is_empty() => Ok(message.to_owned()),
        _ => bail!("{what}: error body {body} has no message"),
    }
}

fn wait_for_state(
    ipc: &ControlApi,
    name: &str,
    state: &str,
    deadline: Instant,
) -> anyhow::Result<Value> {
    try_wait_until(left(deadline), &format!("{name} to be {state}"), || {
        let status = ipc.status_of(name)?;
        if status["status"] == state {
            Ok(Ok(status))
        } else {
            Ok(Err(status.to_string()))
        }
    })
}

/// Gate 4: every channel of SPEC §5 answers as specified, the error cases included.
fn ipc(env: &GateEnv, setup: &Setup) -> anyhow::Result<()> {
    let deadline = Instant::now() + GATE_TIMEOUT;
    let mut fleet = setup.up(env, "ipc")?;
    fleet.wait_started(left(deadline))?;
    let ipc = fleet.control()?;
    let subject = json!({ "serviceName": IPC_SUBJECT });

    // services:get-all: every service, every field of ServiceStatus.
    let statuses = ipc.statuses()?;
    ensure!(
        statuses.len() == setup.services.len(),
        "services:get-all: {} entries, expected {}",
        statuses.len(),
        setup.services.len()
    );
    for status in &statuses {
        for field in [
            "name",
            "port",
            "status",
            "pid",
            "uptime",
            "lastHealthCheck",
            "restarts",
            "critical",
            "lastError",
        ] {
            ensure!(
                status.get(field).is_some(),
                "services:get-all: entry {} has no field {field:?}",
                status["name"]
            );
        }
    }

    // services:start on a running service is a no-op success; stop, start, restart.
    let action = |channel: &str, body: &Value| -> anyhow::Result<()> {
        let response = answer(&ipc.call(channel, Some(body))?, 200, channel)?;
        ensure!(
            response["success"] == true,
            "{channel} {body}: answered {response}, expected success"
        );
        Ok(())
    };
    action("services:start", &json!({ "serviceName": "records" }))?;
    action("services:stop", &subject)?;
    wait_for_state(&ipc, IPC_SUBJECT, "stopped", deadline)?;

    // The event stream sees the start that follows.
    let host = ipc.host();
    let authorization = format!("Bearer {}", ipc.token);
    let mut events = http::open_stream(
        ipc.addr,
        &Request {
            method: "GET",
            path: "/events",
            headers: &[("Host", &host), ("Authorization", &authorization)],
            body: b"",
        },
        control::REQUEST_TIMEOUT,
    )
    .context("GET /events")?;
    ensure!(
        events.status == 200 && events.content_type.starts_with("text/event-stream"),
        "GET /events answered {} {:?}, expected 200 text/event-stream",
        events.status,
        events.content_type
    );
    action("services:start", &subject)?;
    let running = wait_for_state(&ipc, IPC_SUBJECT, "running", deadline)?;
    events
        .read_until(left(deadline), |line| {
            line == "event: service:status-changed"
        })
        .map_err(|why| anyhow!("GET /events: no service:status-changed event: {why}"))?;
    drop(events);
    action("services:restart", &subject)?;
    try_wait_until(
        left(deadline),
        &format!("{IPC_SUBJECT} to run again after services:restart"),
        || {
            let status = ipc.status_of(IPC_SUBJECT)?;
            if status["status"] == "running" && status["pid"] != running["pid"] {
                anyhow::Ok(Ok(()))
            } else {
                Ok(Err(status.to_string()))
            }
        },
    )?;

    // database:init (nothing left to run) and database:status.
    let init = ipc.ok("database:init", None)?;
    ensure!(
        init["success"] == true && init["migrationsRun"].is_u64(),
        "database:init answered {init}, expected success and a migrationsRun count"
    );
    let database = ipc.ok("database:status", None)?;
    ensure!(
        database["initialized"] == true
            && database["version"].as_u64() == u64::try_from(env.n_migrations).ok()
            && database["path"]
                .as_str()
                .is_some_and(|path| Path::new(path).is_file()),
        "database:status answered {database}, expected initialized at version {} with an \
         existing path",
        env.n_migrations
    );

    // logs:get, all services and one; logs:clear.
    let logs = ipc.ok("logs:get", None)?;
    let entries = logs["logs"]
        .as_array()
        .ok_or_else(|| anyhow!("logs:get answered {logs}, expected {{logs: [...]}}"))?;
    ensure!(!entries.is_empty(), "logs:get: no log entries at all");
    for entry in entries {
        ensure!(
            entry["timestamp"].is_string()
                && entry["service"].is_string()
                && entry["message"].is_string()
                && ["debug", "info", "warn", "error"]
                    .iter()
                    .any(|level| entry["level"] == *level),
            "logs:get: entry {entry} is not a LogEntry"
        );
    }
    let one = ipc.ok(
        "logs:get",
        Some(&json!({ "serviceName": "records", "lines": 1 })),
    )?;
    let one = one["logs"].as_array().cloned().unwrap_or_default();
    ensure!(
        one.len() == 1 && one[0]["service"] == "records",
        "logs:get {{serviceName: records, lines: 1}} answered {one:?}"
    );
    let cleared = ipc.ok("logs:clear", None)?;
    ensure!(cleared["success"] == true, "logs:clear answered {cleared}");

    // app:get-path for each name; app:health.
    let user_data = ipc.ok("app:get-path", Some(&json!({ "pathName": "userData" })))?;
    ensure!(
        user_data["path"].as_str().map(Path::new) == Some(fleet.data_dir()),
        "app:get-path userData answered {user_data}, expected {}",
        fleet.data_dir().display()
    );
    for name in ["logs", "temp"] {
        let path = ipc.ok("app:get-path", Some(&json!({ "pathName": name })))?;
        ensure!(
            path["path"].as_str().is_some_and(|path| !path.is_empty()),
            "app:get-path {name} answered {path}"
        );
    }
    let app_health = ipc.ok("app:health", None)?;
    ensure!(
        app_health["status"] == "healthy" && app_health["failing"] == json!([]),
        "app:health answered {app_health}, expected healthy with nothing failing"
    );

    // The error cases.
    let get_all = "/ipc/services:get-all";
    let no_token = ipc.send(&Request {
        method: "POST",
        path: get_all,
        headers: &[("Host", &host)],
        body: b"",
    })?;
    refusal(&no_token, 401, "a request without a token")?;
    let wrong_token = ipc.send(&Request {
        method: "POST",
        path: get_all,
        headers: &[
            ("Host", &host),
            ("Authorization", &format!("Bearer {}", "0".repeat(64))),
        ],
        body: b"",
    })?;
    refusal(&wrong_token, 401, "a request with a wrong token")?;
    let foreign_host = ipc.send(&Request {
        method: "POST",
        path: get_all,
        headers: &[
            ("Host", "evil.example:80"),
            ("Authorization", &authorization),
        ],
        body: b"",
    })?;
    refusal(&foreign_host, 403, "a request with Host: evil.example")?;
    let malformed = ipc.send(&Request {
        method: "POST",
        path: "/ipc/services:start",
        headers: &[("Host", &host), ("Authorization", &authorization)],
        body: br#"{"serviceName":"#,
    })?;
    refusal(&malformed, 400, "services:start with a malformed body")?;
    let unknown_service = ipc.call(
        "services:stop",
        Some(&json!({ "serviceName": "no-such-service" })),
    )?;
    let message = refusal(&unknown_service, 400, "services:stop of an unknown service")?;
    ensure!(
        message.contains("no-such-service"),
        "services:stop of an unknown service: the message {message:?} does not name it"
    );
    let unknown_channel = ipc.call("services:list", None)?;
    refusal(&unknown_channel, 404, "an unknown channel")?;
    let oversized = vec![b' '; 64 * 1024 + 1];
    let too_large = ipc.send(&Request {
        method: "POST",
        path: "/ipc/logs:get",
        headers: &[("Host", &host), ("Authorization", &authorization)],
        body: &oversized,
    })?;
    refusal(&too_large, 413, "a body over 64 KiB")?;

    // app:quit: 202, then a clean exit.
    let status = fleet.quit(left(deadline))?;
    ensure!(
        status.success(),
        "conductor exited with {status} after app:quit"
    );
    Ok(())
}

/// Gate 5: `app:quit` leaves no process of the fleet (grandchildren included), releases the
/// lock and exits 0.
fn shutdown(env: &GateEnv, setup: &Setup) -> anyhow::Result<()> {
    let deadline = Instant::now() + GATE_TIMEOUT;
    let mut fleet = setup.up(env, "shutdown")?;
    fleet.wait_started(left(deadline))?;
    let conductor = Proc::identify(fleet.pid())
        .ok_or_else(|| anyhow!("conductor's pid {} does not exist", fleet.pid()))?;
    let mut fleet_processes: Vec<(String, Proc)> = vec![("conductor".to_owned(), conductor)];
    let mut groups = Vec::new();
    for status in fleet.control()?.statuses()? {
        let name = status["name"].as_str().unwrap_or("?").to_owned();
        let Some(pid) = status["pid"]
            .as_u64()
            .and_then(|pid| u32::try_from(pid).ok())
        else {
            continue;
        };
        let leader =
            Proc::identify(pid).ok_or_else(|| anyhow!("{name}'s pid {pid} does not exist"))?;
        groups.push((name.clone(), leader));
        for member in process::live_group_members(pid) {
            let label = if member.pid == pid {
                name.clone()
            } else {
                format!("a process in {name}'s group")
            };
            fleet_processes.push((label, member));
        }
    }
    let pid_file = fleet
        .data_dir()
        .parent()
        .map(|dir| dir.join("grandchild.pid"))
        .ok_or_else(|| anyhow!("the data dir has no parent"))?;
    let grandchild_pid = try_wait_until(left(deadline), "the grandchild's pid file", || {
        anyhow::Ok(
            std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok())
                .ok_or_else(|| format!("no pid in {}", pid_file.display())),
        )
    })?;
    let grandchild = Proc::identify(grandchild_pid)
        .ok_or_else(|| anyhow!("the grandchild (pid {grandchild_pid}) does not exist"))?;
    // Found among the group's members already; the pid file gives it its name.
    fleet_processes.retain(|(_, process)| *process != grandchild);
    fleet_processes.push((format!("{GRANDCHILD_PARENT}'s grandchild"), grandchild));
    for (_, process) in &fleet_processes {
        fleet.track(*process);
    }

    let status = fleet.quit(left(deadline))?;
    ensure!(
        status.success(),
        "conductor exited with {status} after app:quit"
    );

    let mut survivors: Vec<String> = fleet_processes
        .iter()
        .filter_map(|(label, process)| {
            process
                .live_state()
                .map(|state| format!("{label} (pid {}, state {state})", process.pid))
        })
        .collect();
    for (name, leader) in &groups {
        for member in process::live_group_members(leader.pid) {
            if !fleet_processes.iter().any(|(_, known)| *known == member) {
                survivors.push(format!("pid {} in {name}'s group", member.pid));
            }
        }
    }
    ensure!(
        survivors.is_empty(),
        "still running after app:quit: {}",
        survivors.join(", ")
    );

    let lock_path = fleet.data_dir().join("conductor.lock");
    let lock = std::fs::File::open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!(
                "{} is still locked after conductor exited",
                lock_path.display()
            )
        }
        Err(std::fs::TryLockError::Error(err)) => {
            bail!("could not try the lock {}: {err}", lock_path.display())
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_match_conductors() {
        assert_eq!(title("records"), "Records");
        assert_eq!(title("pdf-export"), "Pdf Export");
    }

    #[test]
    fn line_comparison_names_the_first_difference() {
        let expected = ["✓ a".to_owned(), "✓ b".to_owned()];
        let (a, b, c) = ("✓ a".to_owned(), "✓ b".to_owned(), "✓ c".to_owned());
        assert!(compare_lines("x", &expected, &[&a, &b]).is_ok());
        let err = compare_lines("x", &expected, &[&a, &c]).unwrap_err();
        assert!(err.to_string().contains("status line 2"), "{err}");
        assert!(compare_lines("x", &expected, &[&a]).is_err());
        assert!(compare_lines("x", &expected, &[&a, &b, &c]).is_err());
    }

    #[test]
    fn migrations_are_counted() {
        assert!(count_migrations(&project_root().join("migrations")).unwrap() >= 2);
    }
}
