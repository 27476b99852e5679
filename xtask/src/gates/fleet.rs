//! A fleet under test: the registry a gate runs (eight fake-services on free ports), one real
//! `conductor up` process with its output captured, its control API client, and the guard that
//! SIGKILLs everything the fleet started (conductor, services, grandchildren) and removes the
//! temp dir when it drops, whatever the gate's outcome.
//! It judges nothing: the checks are the gates' (`gates.rs`).

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex, atomic::AtomicUsize},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

use super::{
    http::{self, Request, Response},
    procs::{self, Proc},
};

/// What the gates run: the binaries under test and how many migrations the database gets.
#[derive(Debug, Clone)]
pub(crate) struct GateEnv {
    pub(crate) conductor: PathBuf,
    /// conductor built with `self-test-break-group-kill`, for the self-test only.
    pub(crate) broken_group_kill: Option<PathBuf>,
    pub(crate) fake_service: PathBuf,
    /// `V*__*.sql` files in `migrations/`, embedded in the binary.
    pub(crate) n_migrations: usize,
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(label: &str) -> anyhow::Result<TempDir> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "conductor-xtask-{label}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("creating the temp dir {}", path.display()))?;
        Ok(TempDir(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `[services.<name>]` table of the registry.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub(crate) name: &'static str,
    pub(crate) port: u16,
    pub(crate) depends_on: &'static [&'static str],
    pub(crate) critical: bool,
    pub(crate) enabled: bool,
    /// The service's `env`; `{fleet_dir}` in a value becomes the fleet's temp dir.
    pub(crate) env: Vec<(&'static str, String)>,
    /// More `key = value` lines for the table (`ready_timeout = "1s"`, `restart = {…}`).
    pub(crate) extra: Vec<String>,
}

/// The reference app's eight services and their edges (as `fixtures/demo.toml`):
/// `(name, depends_on, critical, enabled)`.
const REFERENCE: &[(&str, &[&str], bool, bool)] = &[
    ("records", &[], true, true),
    ("ingestion", &["records"], true, true),
    ("export", &["records"], true, true),
    ("citation", &["records"], true, true),
    ("evidence", &["records", "ingestion"], true, true),
    ("template", &["records"], false, true),
    ("analysis", &["evidence", "citation"], false, true),
    ("reserved", &[], false, false),
];

/// Everything a fleet is started from; gates adjust it, the self-test breaks it.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) services: Vec<Service>,
    /// Extra environment of the conductor process.
    pub(crate) conductor_env: Vec<(&'static str, String)>,
    /// Run the `self-test-break-group-kill` build of conductor instead of the real one.
    pub(crate) broken_group_kill: bool,
    /// Set: the gates' client sends this token instead of the one in ipc.json.
    pub(crate) client_token: Option<String>,
    /// `[database] migrations`, relative to the registry file; `None`: the embedded ones.
    pub(crate) migrations: Option<String>,
}

impl Setup {
    /// The reference app on free ports: seven enabled services and the disabled `reserved`.
    pub(crate) fn reference() -> anyhow::Result<Setup> {
        let ports = crate::ports::free_ports(REFERENCE.len());
        Ok(Setup {
            services: REFERENCE
                .iter()
                .zip(ports)
                .map(|(&(name, depends_on, critical, enabled), port)| Service {
                    name,
                    port,
                    depends_on,
                    critical,
                    enabled,
                    env: Vec::new(),
                    extra: Vec::new(),
                })
                .collect(),
            conductor_env: Vec::new(),
            broken_group_kill: false,
            client_token: None,
            migrations: None,
        })
    }

    pub(crate) fn service(&self, name: &str) -> anyhow::Result<&Service> {
        self.services
            .iter()
            .find(|service| service.name == name)
            .ok_or_else(|| anyhow!("the gate setup has no service {name:?}"))
    }

    pub(crate) fn service_mut(&mut self, name: &str) -> &mut Service {
        let index = self
            .services
            .iter()
            .position(|service| service.name == name)
            .unwrap_or_else(|| panic!("the reference setup has a service {name:?}"));
        &mut self.services[index]
    }

    pub(crate) fn enabled(&self) -> impl Iterator<Item = &Service> {
        self.services.iter().filter(|service| service.enabled)
    }

    /// The registry file's text. Health checks every 200 ms and short backoffs keep the
    /// gates quick; stop_timeout is short because the grandchild of the shutdown gate ignores
    /// SIGTERM, so its group always waits that long before SIGKILL.
    pub(crate) fn registry_toml(&self, fake_service: &Path, fleet_dir: &Path) -> String {
        let mut text = String::from(
            "# Written by `cargo xtask verify` for one gate run.\n\
             [app]\nname = \"conductor-gates\"\ndeployment_env = \"test\"\nstartup = \"dependency\"\n\n",
        );
        if let Some(migrations) = &self.migrations {
            let _ = writeln!(text, "[database]\nmigrations = {}\n", quoted(migrations));
        }
        text.push_str(
            "[defaults]\n\
             health = { kind = \"http\", path = \"/health\", interval = \"200ms\", timeout = \"2s\", failure_threshold = 3 }\n\
             ready_timeout = \"20s\"\n\
             stop_timeout = \"2s\"\n\
             restart = { max_retries = 3, backoff = \"100ms\", backoff_max = \"1s\", reset_after = \"60s\" }\n",
        );
        let fleet_dir = fleet_dir.display().to_string();
        for service in &self.services {
            let depends_on: Vec<String> = service.depends_on.iter().map(|d| quoted(d)).collect();
            let _ = write!(
                text,
                "\n[services.{}]\nport = {}\ncommand = {}\ndepends_on = [{}]\ncritical = {}\nenabled = {}\n",
                service.name,
                service.port,
                quoted(&fake_service.display().to_string()),
                depends_on.join(", "),
                service.critical,
                service.enabled,
            );
            if !service.env.is_empty() {
                let env: Vec<String> = service
                    .env
                    .iter()
                    .map(|(key, value)| {
                        format!(
                            "{key} = {}",
                            quoted(&value.replace("{fleet_dir}", &fleet_dir))
                        )
                    })
                    .collect();
                let _ = writeln!(text, "env = {{ {} }}", env.join(", "));
            }
            for line in &service.extra {
                let _ = writeln!(text, "{line}");
            }
        }
        text
    }
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Lines a child printed, shared with the threads that read its pipes.
#[derive(Default)]
struct Output {
    state: Mutex<OutputState>,
    changed: Condvar,
}

#[derive(Default)]
struct OutputState {
    stdout: Vec<String>,
    stderr: Vec<String>,
    n_closed: usize,
}

fn capture(pipe: impl Read + Send + 'static, output: Arc<Output>, is_stdout: bool) {
    // Detached: the thread owns only the pipe and the shared buffer, and ends at end of file,
    // which comes when conductor exits (the guard SIGKILLs it if need be).
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            line.clear();
            if let Ok(mut state) = output.state.lock() {
                if is_stdout {
                    state.stdout.push(text);
                } else {
                    state.stderr.push(text);
                }
            }
            output.changed.notify_all();
        }
        if let Ok(mut state) = output.state.lock() {
            state.n_closed += 1;
        }
        output.changed.notify_all();
    });
}

/// A running `conductor up` and everything it started; see the module doc for the guard.
pub(crate) struct Fleet {
    child: Child,
    exit: Option<ExitStatus>,
    output: Arc<Output>,
    data_dir: PathBuf,
    client_token: Option<String>,
    /// Processes to SIGKILL on drop if still alive (pid and start time checked first).
    tracked: Vec<Proc>,
    /// Groups whose live members are SIGKILLed on drop, if their leader is still the tracked one.
    groups: Vec<Proc>,
    /// Dropped last: the registry and the data dir live in it.
    _dir: TempDir,
}

impl Fleet {
    /// Writes the setup's registry into a new temp dir and runs `conductor up` on it.
    pub(crate) fn up(env: &GateEnv, setup: &Setup, label: &str) -> anyhow::Result<Fleet> {
        let dir = TempDir::new(label)?;
        let registry = dir.path().join("conductor.toml");
        std::fs::write(
            &registry,
            setup.registry_toml(&env.fake_service, dir.path()),
        )
        .with_context(|| format!("writing {}", registry.display()))?;
        let data_dir = dir.path().join("data");
        let binary = match (&env.broken_group_kill, setup.broken_group_kill) {
            (Some(broken), true) => broken,
            (None, true) => anyhow::bail!("the broken-group-kill conductor was not built"),
            (_, false) => &env.conductor,
        };
        let mut command = Command::new(binary);
        command
            .arg("up")
            .arg("--registry")
            .arg(&registry)
            .arg("--data-dir")
            .arg(&data_dir);
        command.envs(setup.conductor_env.iter().map(|(key, value)| (key, value)));
        Fleet::spawn(command, dir, data_dir, setup.client_token.clone())
    }

    /// Runs `command` (a `conductor up` of some kind) with its output captured; `dir` is
    /// removed when the fleet drops.
    pub(crate) fn spawn(
        mut command: Command,
        dir: TempDir,
        data_dir: PathBuf,
        client_token: Option<String>,
    ) -> anyhow::Result<Fleet> {
        // Conductor stays in our process group: a Ctrl-C on `cargo xtask` reaches it too, and
        // it shuts its fleet down.
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("CONDUCTOR_DATA_DIR");
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        let output = Arc::new(Output::default());
        if let Some(stdout) = child.stdout.take() {
            capture(stdout, output.clone(), true);
        }
        if let Some(stderr) = child.stderr.take() {
            capture(stderr, output.clone(), false);
        }
        let mut fleet = Fleet {
            exit: None,
            output,
            data_dir,
            client_token,
            tracked: Vec::new(),
            groups: Vec::new(),
            _dir: dir,
            child,
        };
        if let Some(me) = Proc::identify(fleet.child.id()) {
            fleet.tracked.push(me);
        }
        Ok(fleet)
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub(crate) fn conductor_pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line conductor printed on stdout so far.
    pub(crate) fn stdout(&self) -> Vec<String> {
        self.output
            .state
            .lock()
            .map(|state| state.stdout.clone())
            .unwrap_or_default()
    }

    /// The last lines of stdout and stderr, for a failure message.
    pub(crate) fn tail(&self) -> String {
        let Ok(state) = self.output.state.lock() else {
            return String::new();
        };
        let pick = |lines: &[String]| lines[lines.len().saturating_sub(6)..].join(" | ");
        format!(
            "stdout: [{}]; stderr: [{}]",
            pick(&state.stdout),
            pick(&state.stderr)
        )
    }

    /// Waits for a stdout line that satisfies `wanted`; fails if conductor closes its output
    /// (exits) first or the deadline passes.
    pub(crate) fn wait_for_line(
        &mut self,
        what: &str,
        deadline: Instant,
        wanted: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let mut state = self
            .output
            .state
            .lock()
            .map_err(|_| anyhow!("an output reader panicked"))?;
        loop {
            if let Some(line) = state.stdout.iter().find(|line| wanted(line)) {
                return Ok(line.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.n_closed == 2 || left.is_zero() {
                drop(state);
                let why = if left.is_zero() {
                    "no such line in time".to_owned()
                } else {
                    let status = self.wait_exit(Instant::now() + Duration::from_secs(5));
                    format!(
                        "conductor exited first ({})",
                        status.map_or_else(|err| format!("{err:#}"), |status| status.to_string())
                    )
                };
                bail!("waiting for {what}: {why}; {}", self.tail());
            }
            state = self
                .output
                .changed
                .wait_timeout(state, left)
                .map_err(|_| anyhow!("an output reader panicked"))?
                .0;
        }
    }

    /// Waits until the services' startup is over: `✓ All services ready`, or the degraded
    /// report (`! Running degraded …`).
    pub(crate) fn wait_started(&mut self, deadline: Instant) -> anyhow::Result<String> {
        self.wait_for_line("the end of startup", deadline, |line| {
            line == "✓ All services ready" || line.starts_with("! Running degraded")
        })
    }

    /// Waits for conductor to exit and returns its status.
    pub(crate) fn wait_exit(&mut self, deadline: Instant) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.exit {
            return Ok(status);
        }
        let status = wait_until(deadline, "conductor to exit", || {
            match self.child.try_wait() {
                Ok(Some(status)) => Ok(Ok(status)),
                Ok(None) => Ok(Err("still running".to_owned())),
                Err(err) => Err(anyhow!("waiting for conductor: {err}")),
            }
        })?;
        self.exit = Some(status);
        Ok(status)
    }

    /// Remembers a process (and, if it leads one, its group) so that drop kills it.
    pub(crate) fn track(&mut self, process: Proc) {
        if !self.tracked.contains(&process) {
            self.tracked.push(process);
        }
        if procs::stat(process.pid).is_some_and(|stat| stat.pgrp == process.pid)
            && !self.groups.contains(&process)
        {
            self.groups.push(process);
        }
    }

    /// The control API client, from `<data dir>/ipc.json`.
    pub(crate) fn ipc(&self) -> anyhow::Result<Ipc> {
        let path = self.data_dir.join("ipc.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let info: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let url = info["url"]
            .as_str()
            .with_context(|| format!("{} has no url", path.display()))?;
        let addr: SocketAddr = url
            .strip_prefix("http://")
            .and_then(|rest| rest.trim_end_matches('/').parse().ok())
            .with_context(|| format!("ipc.json url {url:?} is not http://<ip>:<port>"))?;
        let token = match &self.client_token {
            Some(token) => token.clone(),
            None => info["token"]
                .as_str()
                .with_context(|| format!("{} has no token", path.display()))?
                .to_owned(),
        };
        Ok(Ipc { addr, token })
    }

    /// `app:quit` (answered 202), then waits for conductor to exit.
    pub(crate) fn quit(&mut self, deadline: Instant) -> anyhow::Result<ExitStatus> {
        let response = self.ipc()?.call("app:quit", None)?;
        if response.status != 202 {
            bail!(
                "app:quit answered {} (expected 202): {}",
                response.status,
                response.body_text()
            );
        }
        self.wait_exit(deadline)
            .with_context(|| format!("after app:quit; {}", self.tail()))
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if self.exit.is_none() {
            // A graceful quit first (with the real token, whatever the client was given), so
            // the services are reaped by conductor instead of left as zombies under a PID 1
            // that never reaps; then SIGKILL, after which the parent-death signal ends the
            // services and the loop below their groups.
            self.client_token = None;
            let quit = self.quit(Instant::now() + Duration::from_secs(10)).is_ok();
            if !quit {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        for group in &self.groups {
            // Members of a group whose leader is gone are still ours: Linux never hands out a
            // pid that is some live process's group id. A leader pid with another start time
            // means the whole group ended and the pid was reused: not ours.
            if procs::stat(group.pid).is_none_or(|stat| stat.start_time == group.start_time) {
                for member in procs::live_group_members(group.pid) {
                    member.kill();
                }
            }
        }
        for process in &self.tracked {
            process.kill();
        }
    }
}

/// The control API, spoken with the gates' tiny HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct Ipc {
    pub(crate) addr: SocketAddr,
    pub(crate) token: String,
}

/// How long one control API request may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

impl Ipc {
    pub(crate) fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `POST /ipc/<channel>` with a JSON body (or none), authenticated.
    pub(crate) fn call(&self, channel: &str, body: Option<&Value>) -> anyhow::Result<Response> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let authorization = format!("Bearer {}", self.token);
        let host = self.host();
        self.send(&Request {
            method: "POST",
            path: &format!("/ipc/{channel}"),
            headers: &[
                ("Host", &host),
                ("Authorization", &authorization),
                ("Content-Type", "application/json"),
            ],
            body: body.as_bytes(),
        })
        .with_context(|| channel.to_owned())
    }

    /// A request as given (for the error cases).
    pub(crate) fn send(&self, request: &Request<'_>) -> anyhow::Result<Response> {
        http::send(self.addr, request, REQUEST_TIMEOUT)
            .with_context(|| format!("{} {} to {}", request.method, request.path, self.addr))
    }

    /// A channel that must answer 200 with JSON; returns the JSON.
    pub(crate) fn ok(&self, channel: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let response = self.call(channel, body)?;
        if response.status != 200 {
            bail!(
                "{channel} answered {} (expected 200): {}",
                response.status,
                response.body_text()
            );
        }
        serde_json::from_slice(&response.body).with_context(|| {
            format!(
                "{channel} answered 200 with non-JSON: {}",
                response.body_text()
            )
        })
    }

    /// `services:get-all`.
    pub(crate) fn statuses(&self) -> anyhow::Result<Vec<Value>> {
        match self.ok("services:get-all", None)? {
            Value::Array(statuses) => Ok(statuses),
            other => bail!("services:get-all answered {other}, not an array"),
        }
    }

    /// One service's entry of `services:get-all`.
    pub(crate) fn status_of(&self, name: &str) -> anyhow::Result<Value> {
        self.statuses()?
            .into_iter()
            .find(|status| status["name"] == name)
            .ok_or_else(|| anyhow!("services:get-all has no entry for {name:?}"))
    }
}

/// `GET http://127.0.0.1:<port>/health` straight to a service; the status code.
pub(crate) fn service_health(port: u16) -> anyhow::Result<u16> {
    let host = format!("127.0.0.1:{port}");
    let response = http::send(
        SocketAddr::from(([127, 0, 0, 1], port)),
        &Request {
            method: "GET",
            path: "/health",
            headers: &[("Host", &host)],
            body: b"",
        },
        Duration::from_secs(5),
    )
    .with_context(|| format!("GET {host}/health"))?;
    Ok(response.status)
}

/// Polls `check` until it returns `Ok(Ok(value))`, fails (`Err`, final), or the deadline
/// passes. `Ok(Err(seen))` means "not yet": `seen` describes the last state, and the timeout
/// error names it next to what was awaited.
pub(crate) fn wait_until<T>(
    deadline: Instant,
    what: &str,
    mut check: impl FnMut() -> anyhow::Result<Result<T, String>>,
) -> anyhow::Result<T> {
    let mut pause = Duration::from_millis(5);
    loop {
        let seen = match check()? {
            Ok(value) => return Ok(value),
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            bail!("timed out waiting for {what}; last seen: {seen}");
        }
        // Polling a process table or an HTTP endpoint: there is nothing to block on instead.
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_text_has_every_service_and_substitutes_the_fleet_dir() {
        let mut setup = Setup::reference().unwrap();
        setup
            .service_mut("evidence")
            .env
            .push(("FAKE_GRANDCHILD_PID_FILE", "{fleet_dir}/g.pid".to_owned()));
        let text = setup.registry_toml(Path::new("/bin/fake \"x\""), Path::new("/tmp/f"));
        for service in &setup.services {
            assert!(text.contains(&format!(
                "[services.{}]\nport = {}\n",
                service.name, service.port
            )));
        }
        assert!(text.contains(r#"command = "/bin/fake \"x\"""#), "{text}");
        assert!(
            text.contains(r#"env = { FAKE_GRANDCHILD_PID_FILE = "/tmp/f/g.pid" }"#),
            "{text}"
        );
        assert_eq!(setup.enabled().count(), 7);
        let ports: std::collections::BTreeSet<u16> =
            setup.services.iter().map(|s| s.port).collect();
        assert_eq!(ports.len(), 8, "ports are distinct");
    }
}
