//! The processes the bench drives: a registry of N fake-services on free ports, a `conductor up`
//! whose stdout lines are timestamped as they arrive, and a lone fake-service to time the
//! fixture's own start.
//! Every process started here is owned by a guard that stops it, and what it started, on drop.
//! It measures nothing itself; `bench.rs` decides what to time.

use std::{
    fmt::Write as _,
    fs,
    io::{BufRead, BufReader},
    net::SocketAddr,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use super::{
    http::{self, Connection},
    procfs,
};

/// The app name in every bench registry; it names the database `<data dir>/bench.db`.
pub(crate) const APP_NAME: &str = "bench";

/// A directory removed, with everything in it, on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// A fresh, empty directory under the system temp dir.
    pub(crate) fn new(label: &str) -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("conductor-bench-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

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
    let services = crate::ports::free_ports(spec.services)
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

fn toml_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// One service as `services:get-all` reports it.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) name: String,
    pub(crate) state: String,
    pub(crate) pid: Option<u32>,
}

/// A fleet process seen through the control API: pid and start time, so the guard never
/// signals a reused pid.
struct FleetPid {
    pid: u32,
    start: u64,
}

/// A running `conductor up`, killed (and its fleet with it) on drop.
pub(crate) struct Conductor {
    child: Child,
    /// The moment just before the spawn.
    pub(crate) spawned_at: Instant,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<String>,
    data_dir: PathBuf,
    api: Option<Api>,
    fleet: Vec<FleetPid>,
}

/// The control API's address and token, read from `ipc.json`.
struct Api {
    addr: SocketAddr,
    token: String,
}

impl Conductor {
    /// Spawns `conductor up --registry R --data-dir D`, stdout piped to a thread that stamps
    /// each line with the time it was read, stderr to `<data dir>/conductor.stderr`.
    pub(crate) fn spawn(binary: &Path, registry: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let stderr_path = data_dir.join("conductor.stderr");
        let stderr = fs::File::create(&stderr_path)
            .with_context(|| format!("creating {}", stderr_path.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("up")
            .arg("--registry")
            .arg(registry)
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0);
        let spawned_at = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let now = Instant::now();
                    if sender.send((now, line.trim_end().to_owned())).is_err() {
                        break;
                    }
                    line.clear();
                }
            });
        }
        Ok(Self {
            child,
            spawned_at,
            lines,
            seen: Vec::new(),
            data_dir: data_dir.to_path_buf(),
            api: None,
            fleet: Vec::new(),
        })
    }

    /// The conductor process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stdout line containing `needle` and returns when it was read; fails on a
    /// `✗` line, end of output or the deadline, quoting the last lines.
    pub(crate) fn wait_line(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    let failed = line.starts_with('✗');
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return Ok(at);
                    }
                    if failed {
                        bail!("conductor failed: {}", self.context());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("no {needle:?} within {timeout:?}: {}", self.context())
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("conductor exited before {needle:?}: {}", self.context())
                }
            }
        }
    }

    fn context(&self) -> String {
        let tail = self.seen.len().saturating_sub(12);
        let stderr = fs::read_to_string(self.data_dir.join("conductor.stderr")).unwrap_or_default();
        format!(
            "stdout ends with:\n{}\nstderr: {}",
            self.seen[tail..].join("\n"),
            stderr.trim()
        )
    }

    /// Opens a keep-alive connection to the control API (reading `ipc.json` the first time).
    pub(crate) fn connect_api(&mut self) -> anyhow::Result<ApiClient> {
        if self.api.is_none() {
            let path = self.data_dir.join("ipc.json");
            let text =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let info: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            let url = info["url"].as_str().context("ipc.json has no url")?;
            let addr = url
                .strip_prefix("http://")
                .unwrap_or(url)
                .trim_end_matches('/')
                .parse()
                .with_context(|| format!("ipc.json url {url:?} is not http://IP:PORT"))?;
            let token = info["token"].as_str().context("ipc.json has no token")?;
            self.api = Some(Api {
                addr,
                token: token.to_owned(),
            });
        }
        let api = self.api.as_ref().context("control API unknown")?;
        ApiClient::connect(api.addr, &api.token)
    }

    /// The control API's bearer token (reading `ipc.json` if needed).
    pub(crate) fn token(&mut self) -> anyhow::Result<String> {
        drop(self.connect_api()?);
        Ok(self
            .api
            .as_ref()
            .context("control API unknown")?
            .token
            .clone())
    }

    /// Remembers the fleet's pids (with start times) so drop can make sure they are gone.
    pub(crate) fn remember(&mut self, statuses: &[Status]) {
        for pid in statuses.iter().filter_map(|status| status.pid) {
            if self.fleet.iter().any(|known| known.pid == pid) {
                continue;
            }
            if let Some(start) = procfs::start_time(pid) {
                self.fleet.push(FleetPid { pid, start });
            }
        }
    }

    /// Sends SIGTERM to conductor (its graceful shutdown).
    pub(crate) fn terminate(&self) {
        signal(self.child.id(), libc::SIGTERM);
    }

    /// Waits for conductor to exit, up to `timeout`; true if it did.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return true,
                Ok(None) if Instant::now() >= deadline => return false,
                // Polling interval of the condition (deadline above), not synchronisation.
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }
}

impl Drop for Conductor {
    fn drop(&mut self) {
        // Graceful first, so the fleet is stopped and the data dir left clean; then force.
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            self.terminate();
            if !self.wait_exit(Duration::from_secs(15)) {
                if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
                    // SAFETY: killpg only sends a signal; the group is conductor's own (it was
                    // spawned with process_group(0)) and it has not been reaped yet.
                    unsafe { libc::killpg(pid, libc::SIGKILL) };
                }
                let _ = self.child.wait();
            }
        }
        // Services die with conductor (parent-death signal); this covers anything that did not.
        for known in &self.fleet {
            if procfs::is_same_live_process(known.pid, known.start) {
                signal(known.pid, libc::SIGKILL);
            }
        }
    }
}

/// Sends `signal` to one process.
pub(crate) fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill only sends a signal; callers pass pids of processes they started or
        // just read from conductor's control API.
        unsafe { libc::kill(pid, signal) };
    }
}

/// A keep-alive connection to conductor's control API.
pub(crate) struct ApiClient {
    connection: Connection,
    authorization: String,
}

impl ApiClient {
    fn connect(addr: SocketAddr, token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            connection: Connection::connect(addr)
                .with_context(|| format!("connecting to the control API at {addr}"))?,
            authorization: format!("Bearer {token}"),
        })
    }

    /// `POST /ipc/services:get-all`, returning the raw body (for the latency loop).
    pub(crate) fn get_all_raw(&mut self) -> anyhow::Result<Vec<u8>> {
        let response = self
            .connection
            .request(
                "POST",
                "/ipc/services:get-all",
                &[("Authorization", &self.authorization)],
                b"",
            )
            .context("services:get-all")?;
        if response.status != 200 {
            bail!(
                "services:get-all answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
        }
        Ok(response.body)
    }

    /// The control API's address.
    pub(crate) fn peer_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.connection.peer_addr()?)
    }

    /// `POST /ipc/<channel>` with `body`, its 200 answer parsed as JSON.
    pub(crate) fn call_json(
        &mut self,
        channel: &str,
        body: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let response = self
            .connection
            .request(
                "POST",
                &format!("/ipc/{channel}"),
                &[("Authorization", &self.authorization)],
                body.as_bytes(),
            )
            .with_context(|| format!("{channel} {body}"))?;
        if response.status != 200 {
            bail!(
                "{channel} answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
        }
        serde_json::from_slice(&response.body).with_context(|| format!("parsing {channel}"))
    }

    /// `POST /ipc/<channel>` with `body`; fails unless it answers 200 with `"success": true`.
    pub(crate) fn action(&mut self, channel: &str, body: &str) -> anyhow::Result<()> {
        let answer = self.call_json(channel, body)?;
        if answer["success"] != true {
            bail!("{channel} {body} did not succeed: {answer}");
        }
        Ok(())
    }

    /// `services:get-all`, parsed.
    pub(crate) fn get_all(&mut self) -> anyhow::Result<Vec<Status>> {
        let body = self.get_all_raw()?;
        let statuses: serde_json::Value =
            serde_json::from_slice(&body).context("parsing services:get-all")?;
        let list = statuses
            .as_array()
            .context("services:get-all did not answer a list")?;
        Ok(list
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
}

/// A lone fake-service, its process group killed and reaped on drop.
struct LoneGuard(Child);

impl Drop for LoneGuard {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.0.id()) {
            // SAFETY: killpg only sends a signal to the child's own group (process_group(0)),
            // which cannot have been reused: the child is not reaped yet.
            unsafe { libc::killpg(pid, libc::SIGKILL) };
        }
        let _ = self.0.wait();
    }
}

/// How long a lone fake-service takes from spawn until `/health` answers 200, with the same
/// database check conductor's services do (`DATABASE_URL` = the bench database).
pub(crate) fn lone_start(fake_service: &Path, database: &Path) -> anyhow::Result<Duration> {
    let port = crate::ports::free_port();
    let mut command = Command::new(fake_service);
    command
        .env("PORT", port.to_string())
        .env("DATABASE_URL", format!("sqlite://{}", database.display()))
        .env("SERVICE_NAME", "lone")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", fake_service.display()))?;
    let _guard = LoneGuard(child);
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
        if let Some(response) = http::get_once(addr, "/health") {
            let at = Instant::now();
            if response.status == 200 {
                let Some(old) = not_pid else { return Ok(at) };
                let pid = http::get_once(addr, "/info").and_then(|info| {
                    serde_json::from_slice::<serde_json::Value>(&info.body).ok()?["pid"].as_u64()
                });
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
