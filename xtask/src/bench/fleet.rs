//! The processes the bench drives: a registry of N fake-services on free ports, a `conductor up`
//! (a [`Fleet`], whose stdout lines carry the moment they arrived), and a lone fake-service to
//! time the fixture's own start.
//! Every process started here is owned by a guard that stops it, and what it started, on drop.
//! It measures nothing itself; `bench.rs` decides what to time.

use std::{
    fmt::Write as _,
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use conductor_test_support::{ControlConnection, Fleet, GroupGuard, http, toml_string};

/// The app name in every bench registry; it names the database `<data dir>/bench.db`.
pub(crate) const APP_NAME: &str = "bench";

/// What the bench's registry holds besides N plain fake-services.
pub(crate) struct FleetSpec {
    pub(crate) services: usize,
    /// Restart backoff for every service (`"0ms"` for the recovery bench).
    pub(crate) backoff: &'static str,
    pub(crate) stop_timeout: &'static str,
    /// The last service ignores SIGTERM (only SIGKILL after `stop_timeout` stops it).
    pub(crate) last_ignores_sigterm: bool,
    /// An `env = { … }` table body given to every service (empty: none).
    pub(crate) env: &'static str,
    /// `[defaults] metrics_interval` (empty: the registry's default, 2 s).
    pub(crate) metrics_interval: &'static str,
}

impl FleetSpec {
    /// `n` independent, well-behaved services with the SPEC's default timings.
    pub(crate) fn plain(services: usize) -> Self {
        Self {
            services,
            backoff: "1s",
            stop_timeout: "5s",
            last_ignores_sigterm: false,
            env: "",
            metrics_interval: "",
        }
    }
}

/// A service of the written registry.
#[derive(Clone)]
pub(crate) struct ServiceAddr {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
}

/// Writes `<dir>/bench-<n>.toml`: services `s001…` without dependencies (so startup measures
/// conductor, not the depth of a graph), each on a port that was free a moment ago, and the
/// default health check (`interval = "10s"`).
pub(crate) fn write_registry(
    dir: &Path,
    spec: &FleetSpec,
    fake_service: &Path,
) -> anyhow::Result<(PathBuf, Vec<ServiceAddr>)> {
    let services = conductor_test_support::free_ports(spec.services)
        .into_iter()
        .enumerate()
        .map(|(i, port)| ServiceAddr {
            name: format!("s{:03}", i + 1),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
        .collect::<Vec<_>>();

    let command = toml_string(&fake_service.display().to_string());
    let mut toml = format!(
        "[app]\nname = \"{APP_NAME}\"\nstartup = \"dependency\"\n\n[defaults]\n\
         ready_timeout = \"30s\"\nstop_timeout = \"{}\"\n\
         restart = {{ max_retries = 1000, backoff = \"{}\", reset_after = \"60s\" }}\n",
        spec.stop_timeout, spec.backoff
    );
    if !spec.metrics_interval.is_empty() {
        let _ = writeln!(toml, "metrics_interval = \"{}\"", spec.metrics_interval);
    }
    for (i, service) in services.iter().enumerate() {
        let _ = write!(
            toml,
            "\n[services.{}]\nport = {}\ncommand = {command}\ncritical = true\n",
            service.name,
            service.addr.port()
        );
        if spec.last_ignores_sigterm && i + 1 == services.len() {
            toml.push_str("env = { FAKE_IGNORE_SIGTERM = \"1\" }\n");
        } else if !spec.env.is_empty() {
            let _ = writeln!(toml, "env = {{ {} }}", spec.env);
        }
    }
    let path = dir.join(format!("bench-{}.toml", spec.services));
    fs::write(&path, toml).with_context(|| format!("writing {}", path.display()))?;
    Ok((path, services))
}

/// One service as `services:get-all` reports it.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) name: String,
    pub(crate) state: String,
    pub(crate) pid: Option<u32>,
}

/// Spawns `conductor up --registry R --data-dir D`.
pub(crate) fn start(binary: &Path, registry: &Path, data_dir: &Path) -> anyhow::Result<Fleet> {
    start_with(binary, registry, data_dir, &[])
}

/// [`start`] with extra arguments to `up`.
pub(crate) fn start_with(
    binary: &Path,
    registry: &Path,
    data_dir: &Path,
    extra: &[&str],
) -> anyhow::Result<Fleet> {
    fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let mut command = Fleet::up_command(binary, registry, data_dir);
    command.args(extra);
    Ok(Fleet::spawn(command, data_dir)?)
}

/// [`start`], then waits up to 60 s for "All services ready"; returns the fleet, a connection
/// to its control API, and the services' statuses then (their pids remembered).
pub(crate) fn start_ready(
    binary: &Path,
    registry: &Path,
    data_dir: &Path,
) -> anyhow::Result<(Fleet, ControlConnection, Vec<Status>)> {
    start_ready_with(binary, registry, data_dir, &[])
}

/// [`start_ready`] with extra arguments to `up`.
pub(crate) fn start_ready_with(
    binary: &Path,
    registry: &Path,
    data_dir: &Path,
    extra: &[&str],
) -> anyhow::Result<(Fleet, ControlConnection, Vec<Status>)> {
    let mut conductor = start_with(binary, registry, data_dir, extra)?;
    wait_line(
        &mut conductor,
        "All services ready",
        Duration::from_secs(60),
    )?;
    let mut api = conductor.control()?.connect()?;
    let statuses = get_all(&mut api)?;
    remember(&mut conductor, &statuses);
    Ok((conductor, api, statuses))
}

/// Waits for a stdout line containing `needle` and returns when it was read; fails on a `✗`
/// line, on conductor's exit or after `timeout`, quoting the last lines.
pub(crate) fn wait_line(
    conductor: &mut Fleet,
    needle: &str,
    timeout: Duration,
) -> anyhow::Result<Instant> {
    let line = conductor.wait_for_line(&format!("{needle:?}"), timeout, |line| {
        line.contains(needle) || line.starts_with('✗')
    })?;
    if !line.text.contains(needle) {
        bail!("conductor failed: {}; {}", line.text, conductor.tail());
    }
    Ok(line.at)
}

/// Remembers the fleet's pids (with start times) so the fleet's drop makes sure they are gone.
pub(crate) fn remember(conductor: &mut Fleet, statuses: &[Status]) {
    for pid in statuses.iter().filter_map(|status| status.pid) {
        conductor.track_pid(pid);
    }
}

/// `POST /ipc/services:get-all`, not parsed (for the latency loops).
pub(crate) fn get_all_raw(api: &mut ControlConnection) -> anyhow::Result<http::Response> {
    Ok(api
        .call("services:get-all", None)?
        .expect_status(200, "services:get-all")?)
}

/// `services:get-all`, parsed.
pub(crate) fn get_all(api: &mut ControlConnection) -> anyhow::Result<Vec<Status>> {
    Ok(api
        .statuses()?
        .iter()
        .map(|status| Status {
            name: status["name"].as_str().unwrap_or_default().to_owned(),
            state: status["status"].as_str().unwrap_or_default().to_owned(),
            pid: status["pid"]
                .as_u64()
                .and_then(|pid| u32::try_from(pid).ok()),
        })
        .collect())
}

/// How long a lone fake-service takes from spawn until `/health` answers 200, with the same
/// database check conductor's services do (`DATABASE_URL` = the bench database).
pub(crate) fn lone_start(fake_service: &Path, database: &Path) -> anyhow::Result<Duration> {
    let port = conductor_test_support::free_port();
    let mut command = Command::new(fake_service);
    command
        .env("PORT", port.to_string())
        .env("DATABASE_URL", format!("sqlite://{}", database.display()))
        .env("SERVICE_NAME", "lone")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let _guard = GroupGuard::spawn(&mut command)
        .with_context(|| format!("starting {}", fake_service.display()))?;
    let elapsed = wait_healthy(
        SocketAddr::from(([127, 0, 0, 1], port)),
        None,
        Duration::from_secs(10),
    )
    .context("the lone fake-service never answered /health")?;
    Ok(elapsed.duration_since(started))
}

/// Polls `GET /health` on `addr` every 100 µs until it answers 200 (from a process other than
/// `not_pid`, checked through `/info` after the fact); returns when it did.
pub(crate) fn wait_healthy(
    addr: SocketAddr,
    not_pid: Option<u32>,
    timeout: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("nothing answered");
    while Instant::now() < deadline {
        if let Some(response) = get_once(addr, "/health") {
            let at = Instant::now();
            if response.status == 200 {
                let Some(old) = not_pid else { return Ok(at) };
                let pid =
                    get_once(addr, "/info").and_then(|info| info.json().ok()?["pid"].as_u64());
                if pid.is_some_and(|pid| pid != u64::from(old)) {
                    return Ok(at);
                }
                last = format!("/info pid {pid:?} (the killed one is {old})");
            } else {
                last = format!("/health answered {}", response.status);
            }
        }
        // Polling interval of the condition, not a wait for something to happen.
        std::thread::sleep(Duration::from_micros(100));
    }
    bail!("{addr} /health not healthy within {timeout:?}: {last}")
}

/// `GET path` on a fresh connection; `None` while nothing answers (refused, reset, timeout).
fn get_once(addr: SocketAddr, path: &str) -> Option<http::Response> {
    http::get(addr, path, Duration::from_secs(5)).ok()
}
