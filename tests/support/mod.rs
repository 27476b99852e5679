//! Shared helpers of the end-to-end tests that drive the real `conductor` binary: free ports,
//! a tiny blocking HTTP client for raw requests to the control API, and the [`Conductor`] guard
//! that runs `conductor up` and, when dropped, kills conductor and every process of its fleet
//! it has seen (even when the test panics). Temp dirs, `wait_until`, `/proc` reads and test
//! tags are the workspace harness's, re-exported for the test files.
//!
//! It deliberately knows nothing about fake-service beyond its path: tests write their own
//! registries, so the same guard drives programs that are not ours.

pub mod tmux;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Instant,
};

use conductor_protocol::{IpcInfo, ServiceStatus};
use conductor_test_support::process;
use serde::de::DeserializeOwned;

pub use conductor_test_support::{
    DEADLINE, TempDir, free_port,
    process::{KillTagged, is_gone, tagged, unique_tag},
    toml_string, wait_until,
};

/// Distinct free ports as [`free_port`] chooses them.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let ports = conductor_test_support::free_ports(N);
    std::array::from_fn(|i| ports[i])
}

/// A TOML basic string holding `path`.
pub fn toml_path(path: &Path) -> String {
    toml_string(&path.display().to_string())
}

/// The fake-service binary, as a TOML string.
pub fn fake_service() -> String {
    toml_path(&fake_service::binary())
}

/// The `[app]` and `[defaults]` every test registry starts with: fast probes and backoff so
/// failures show up within a test's patience.
pub fn registry_head(app_name: &str) -> String {
    format!(
        r#"[app]
name = {name}
startup = "dependency"

[defaults]
health = {{ kind = "http", path = "/health", interval = "300ms", timeout = "2s", failure_threshold = 3 }}
ready_timeout = "20s"
stop_timeout = "5s"
restart = {{ max_retries = 3, backoff = "50ms", backoff_max = "500ms", reset_after = "60s" }}
"#,
        name = toml_string(app_name)
    )
}

/// The start time of a live process (for proving later that a pid is still the same process).
pub fn start_time(pid: u32) -> Option<u64> {
    process::stat(pid)
        .filter(|stat| !stat.has_exited())
        .map(|stat| stat.start_time)
}

/// Waits until every pid in `pids` is gone, or panics naming the survivors.
pub fn wait_all_gone(pids: &[u32], what: &str) {
    wait_until(DEADLINE, what, || {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| !is_gone(p)).collect();
        if alive.is_empty() {
            Ok(())
        } else {
            Err(format!("still alive: {alive:?}"))
        }
    });
}

/// Reads a pid written to a file by a process (waiting until it is there and complete).
pub fn read_pid_file(path: &Path) -> u32 {
    wait_until(DEADLINE, &format!("a pid in {}", path.display()), || {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        text.trim()
            .parse()
            .map_err(|e| format!("{text:?} is not a pid: {e}"))
    })
}

/// A process the test starts itself (not part of any fleet); killed and reaped on drop.
pub struct Bystander(Child);

impl Bystander {
    /// Starts `sleep 1000`.
    pub fn sleep() -> Bystander {
        match Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
        {
            Ok(child) => Bystander(child),
            Err(error) => panic!("cannot start sleep: {error}"),
        }
    }

    /// A python3 process listening on `127.0.0.1:<port>`: a foreign program holding a port.
    /// Returns once it listens.
    pub fn python_listener(port: u16) -> Bystander {
        let program = "import socket, sys, time\n\
                       s = socket.socket()\n\
                       s.bind(('127.0.0.1', int(sys.argv[1])))\n\
                       s.listen()\n\
                       print('listening', flush=True)\n\
                       time.sleep(1000)\n";
        let mut child = match Command::new("python3")
            .args(["-c", program, &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(error) => panic!("cannot start python3: {error}"),
        };
        let stdout = child.stdout.take();
        let bystander = Bystander(child);
        let mut line = String::new();
        if let Some(stdout) = stdout {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        assert_eq!(line.trim(), "listening", "python3 did not listen on {port}");
        bystander
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP response, read whole (requests are sent with `Connection: close`).
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header block, lines joined by `\n`, names lowercased.
    pub headers: String,
    /// The body as text.
    pub body: String,
}

impl Response {
    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_str(&self.body) {
            Ok(value) => value,
            Err(error) => panic!(
                "body of HTTP {} is not JSON ({error}): {:?}",
                self.status, self.body
            ),
        }
    }

    /// The `"error"` message of a JSON error body.
    pub fn error_message(&self) -> String {
        match self.json().get("error").and_then(|e| e.as_str()) {
            Some(message) => message.to_owned(),
            None => panic!(
                "HTTP {} error body has no \"error\" string: {:?}",
                self.status, self.body
            ),
        }
    }
}

/// Sends `head` (the request line and headers, without the final blank line; `Content-Length`
/// and `Connection: close` are added) and `body` to `addr`, and reads the whole response.
pub fn http(addr: &str, head: &str, body: &[u8]) -> Response {
    let mut request = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    http_raw(addr, &request)
}

/// Sends `request` as it is to `addr` and reads until the server closes the connection.
pub fn http_raw(addr: &str, request: &[u8]) -> Response {
    let fail = |error: std::io::Error| -> ! { panic!("HTTP exchange with {addr} failed: {error}") };
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| fail(e));
    stream
        .set_read_timeout(Some(DEADLINE))
        .unwrap_or_else(|e| fail(e));
    stream.write_all(request).unwrap_or_else(|e| fail(e));
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap_or_else(|e| fail(e));
    parse_response(&raw).unwrap_or_else(|| {
        panic!(
            "not an HTTP response from {addr}: {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .map(|line| match line.split_once(':') {
            Some((name, value)) => format!("{}:{}", name.to_ascii_lowercase(), value),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    Some(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// A running `conductor up`, its output, and every fleet process it has been seen to own.
/// Dropping it SIGKILLs conductor, then every recorded process group and pid still proven ours.
pub struct Conductor {
    child: Option<Child>,
    exit: Option<ExitStatus>,
    /// The data directory (`--data-dir`).
    pub data_dir: PathBuf,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    info: Option<IpcInfo>,
    /// (pid, start time) of fleet processes and groups seen, killed on drop if still the same.
    tracked: Mutex<Vec<(u32, u64)>>,
}

impl Conductor {
    /// Writes `registry` to `<dir>/conductor.toml`, runs `conductor up` on `<dir>/data` and
    /// waits until it is up ([`Conductor::wait_up`]).
    pub fn start(dir: &TempDir, registry: &str) -> Conductor {
        let registry = dir.write("conductor.toml", registry);
        let mut conductor = Conductor::spawn(&registry, &dir.join("data"), &[]);
        conductor.wait_up();
        conductor
    }

    /// Runs `conductor up --registry <registry> --data-dir <data_dir> <extra>` without waiting.
    pub fn spawn(registry: &Path, data_dir: &Path, extra: &[&str]) -> Conductor {
        Conductor::spawn_with_env(registry, data_dir, extra, &[])
    }

    /// [`Conductor::spawn`] with extra variables in conductor's environment.
    pub fn spawn_with_env(
        registry: &Path,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Conductor {
        let mut command = Command::new(env!("CARGO_BIN_EXE_conductor"));
        command.envs(env.iter().copied());
        command
            .arg("up")
            .arg("--registry")
            .arg(registry)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = registry.parent() {
            command.current_dir(dir);
        }
        let (child, stdout, stderr) = spawn_collecting(&mut command, &["up"]);
        Conductor {
            child: Some(child),
            exit: None,
            data_dir: data_dir.to_path_buf(),
            stdout,
            stderr,
            info: None,
            tracked: Mutex::new(Vec::new()),
        }
    }

    /// conductor's pid.
    pub fn pid(&self) -> u32 {
        match &self.child {
            Some(child) => child.id(),
            None => panic!("conductor was already killed"),
        }
    }

    /// Everything conductor printed on stdout so far.
    pub fn stdout(&self) -> String {
        lock(&self.stdout).clone()
    }

    /// Everything conductor printed on stderr so far.
    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// Both outputs, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    /// Waits until startup is over (`All services ready` or `Running degraded`) and `ipc.json`
    /// names this conductor; panics with the output if conductor exits first.
    pub fn wait_up(&mut self) {
        let info = wait_until(DEADLINE, "conductor up to finish startup", || {
            if let Some(status) = self.try_exit() {
                panic!(
                    "conductor exited during startup ({status}):\n{}",
                    self.output()
                );
            }
            let stdout = self.stdout();
            if !stdout.contains("✓ All services ready")
                && !stdout.contains("! Running degraded without")
            {
                return Err(format!("output so far:\n{stdout}"));
            }
            let info = conductor_ipc::read_info(&self.data_dir).map_err(|e| e.to_string())?;
            if info.pid != self.pid() {
                return Err(format!("ipc.json names pid {}", info.pid));
            }
            Ok(info)
        });
        self.info = Some(info);
        self.track_fleet();
    }

    /// Waits until `ipc.json` names this conductor (the control API is up, which it is before
    /// the database is initialised), without waiting for startup to finish.
    pub fn wait_control_api(&mut self) {
        let info = wait_until(DEADLINE, "the control API to be up", || {
            if let Some(status) = self.try_exit() {
                panic!("conductor exited ({status}):\n{}", self.output());
            }
            let info = conductor_ipc::read_info(&self.data_dir).map_err(|e| e.to_string())?;
            if info.pid != self.pid() {
                return Err(format!("ipc.json names pid {}", info.pid));
            }
            Ok(info)
        });
        self.info = Some(info);
    }

    /// The control API's `ipc.json` contents.
    pub fn info(&self) -> &IpcInfo {
        match &self.info {
            Some(info) => info,
            None => panic!("conductor is not up yet"),
        }
    }

    /// `host:port` of the control API.
    pub fn addr(&self) -> String {
        self.info().url.trim_start_matches("http://").to_owned()
    }

    /// `POST /ipc/<channel>` with a correct token and Host, and `body`.
    pub fn call(&self, channel: &str, body: &str) -> Response {
        let addr = self.addr();
        let head = format!(
            "POST /ipc/{channel} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json",
            self.info().token
        );
        http(&addr, &head, body.as_bytes())
    }

    /// [`Conductor::call`] that must succeed, its answer parsed as `T`.
    pub fn call_ok<T: DeserializeOwned>(&self, channel: &str, body: &str) -> T {
        let response = self.call(channel, body);
        assert!(
            (200..300).contains(&response.status),
            "{channel} {body} answered HTTP {}: {}",
            response.status,
            response.body
        );
        match serde_json::from_str(&response.body) {
            Ok(value) => value,
            Err(error) => panic!(
                "{channel} answered unexpected JSON ({error}): {}",
                response.body
            ),
        }
    }

    /// `services:get-all`; every pid seen is recorded for cleanup.
    pub fn statuses(&self) -> Vec<ServiceStatus> {
        let statuses: Vec<ServiceStatus> = self.call_ok("services:get-all", "");
        for status in &statuses {
            if let Some(pid) = status.pid {
                self.track(pid);
            }
        }
        statuses
    }

    /// The status of one service.
    pub fn status(&self, name: &str) -> ServiceStatus {
        match self.statuses().into_iter().find(|s| s.name == name) {
            Some(status) => status,
            None => panic!("services:get-all has no service {name:?}"),
        }
    }

    /// Waits until `check` accepts the status of `name`.
    pub fn wait_status(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&ServiceStatus) -> bool,
    ) -> ServiceStatus {
        wait_until(DEADLINE, &format!("{name} to be {what}"), || {
            let status = self.status(name);
            if check(&status) {
                Ok(status)
            } else {
                Err(format!("{status:?}"))
            }
        })
    }

    /// Records a fleet process (e.g. a grandchild) to be killed on drop if still alive.
    pub fn track(&self, pid: u32) {
        if let Some(start) = start_time(pid) {
            let mut tracked = lock(&self.tracked);
            if !tracked.contains(&(pid, start)) {
                tracked.push((pid, start));
            }
        }
    }

    /// Records every process group in `<data>/run-state.json`.
    pub fn track_fleet(&self) {
        let Ok(text) = std::fs::read_to_string(self.data_dir.join("run-state.json")) else {
            return;
        };
        let Ok(state) = serde_json::from_str::<serde_json::Value>(&text) else {
            return;
        };
        let Some(groups) = state.get("groups").and_then(|g| g.as_object()) else {
            return;
        };
        let mut tracked = lock(&self.tracked);
        for group in groups.values() {
            let pgid = group.get("pgid").and_then(serde_json::Value::as_u64);
            let start = group.get("startTime").and_then(serde_json::Value::as_u64);
            if let (Some(pgid), Some(start)) = (pgid, start)
                && let Ok(pgid) = u32::try_from(pgid)
                && !tracked.contains(&(pgid, start))
            {
                tracked.push((pgid, start));
            }
        }
    }

    /// The exit status if conductor has exited (reaping it).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none()
            && let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            self.exit = Some(status);
        }
        self.exit
    }

    /// Waits for conductor to exit by itself and returns its status; the output readers are
    /// given the time to see EOF, so [`Conductor::stdout`] is complete afterwards.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let status = wait_until(DEADLINE, "conductor to exit", || {
            self.try_exit()
                .ok_or_else(|| format!("still running; output so far:\n{}", self.output()))
        });
        wait_until(DEADLINE, "conductor's output to end", || {
            if Arc::strong_count(&self.stdout) == 1 && Arc::strong_count(&self.stderr) == 1 {
                Ok(())
            } else {
                Err("a reader is still attached".to_owned())
            }
        });
        status
    }

    /// Sends `signal` to conductor.
    pub fn signal(&self, signal: i32) {
        send_signal(self.pid(), signal);
    }

    /// Every fleet pid recorded so far (groups and single processes).
    pub fn tracked_pids(&self) -> Vec<u32> {
        lock(&self.tracked).iter().map(|&(pid, _)| pid).collect()
    }
}

impl Drop for Conductor {
    fn drop(&mut self) {
        // Services started since the last look (restarts) are in the run-state file now.
        if self.exit.is_none() {
            self.track_fleet();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for &(pid, start) in lock(&self.tracked).iter() {
            let Ok(id) = libc::pid_t::try_from(pid) else {
                continue;
            };
            match process::stat(pid).map(|stat| stat.start_time) {
                // Still the process (or group leader) we saw: kill its whole group and it.
                Some(now) if now == start => {
                    // SAFETY: signalling has no memory-safety preconditions; the start time
                    // proves the pid is still the process we recorded.
                    unsafe {
                        libc::killpg(id, libc::SIGKILL);
                        libc::kill(id, libc::SIGKILL);
                    }
                }
                // Reused by another process: not ours.
                Some(_) => {}
                // The leader is gone, but its group may live on (a grandchild). A pid is never
                // reused while a group with that id exists, so the group, if any, is ours.
                None => {
                    // SAFETY: as above; ESRCH when the group is gone too.
                    unsafe {
                        libc::killpg(id, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

/// Output collected from a child's pipe as it comes.
type Collected = Arc<Mutex<String>>;

/// Spawns `command` (conductor with `args`, for the messages), its piped stdout and stderr
/// collected by detached readers, which end at EOF, when the child exits.
fn spawn_collecting(command: &mut Command, args: &[&str]) -> (Child, Collected, Collected) {
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => panic!("cannot run conductor {args:?}: {error}"),
    };
    let stdout = Arc::new(Mutex::new(String::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    if let Some(pipe) = child.stdout.take() {
        collect(pipe, stdout.clone());
    }
    if let Some(pipe) = child.stderr.take() {
        collect(pipe, stderr.clone());
    }
    (child, stdout, stderr)
}

/// Sends `signal` to `pid`, a child of this test that is not reaped yet (so the pid cannot
/// have been reused).
fn send_signal(pid: u32, signal: i32) {
    let Ok(id) = libc::pid_t::try_from(pid) else {
        panic!("pid {pid} does not fit pid_t");
    };
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own unreaped child.
    let rc = unsafe { libc::kill(id, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}) failed: {}",
        std::io::Error::last_os_error()
    );
}

fn collect(pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            lock(&into).push_str(&line);
            line.clear();
        }
        // Dropping `into` here is how `wait_exit` knows the output is complete.
    });
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test thread that panicked while holding it leaves the data usable for cleanup.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs a client subcommand (`conductor <args> --data-dir <data_dir>`) to completion; a client
/// that hangs is killed after a deadline and fails the test.
pub fn conductor_cli(data_dir: &Path, args: &[&str]) -> std::process::Output {
    CliProcess::spawn(data_dir, args).wait_exit()
}

/// A client subcommand (`conductor <args> --data-dir <data_dir>`) running beside the test,
/// stdin from /dev/null, its output collected; killed and reaped on drop, even on panic.
pub struct CliProcess {
    child: Child,
    args: Vec<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl CliProcess {
    /// Starts `conductor <args> --data-dir <data_dir>` without waiting for it.
    pub fn spawn(data_dir: &Path, args: &[&str]) -> CliProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_conductor"));
        command
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (child, stdout, stderr) = spawn_collecting(&mut command, args);
        CliProcess {
            child,
            args: args.iter().map(|&arg| arg.to_owned()).collect(),
            stdout,
            stderr,
        }
    }

    /// Everything it printed on stdout so far.
    pub fn stdout(&self) -> String {
        lock(&self.stdout).clone()
    }

    /// Sends `signal` to it.
    pub fn signal(&self, signal: i32) {
        send_signal(self.child.id(), signal);
    }

    /// Waits for it to exit by itself (panicking after [`DEADLINE`]); its output is complete
    /// afterwards.
    pub fn wait_exit(mut self) -> std::process::Output {
        let args = &self.args;
        let status = wait_until(
            DEADLINE,
            &format!("conductor {args:?} to exit"),
            || match self.child.try_wait() {
                Ok(Some(status)) => Ok(status),
                Ok(None) => Err(format!(
                    "still running; stdout so far:\n{}",
                    lock(&self.stdout)
                )),
                Err(error) => panic!("cannot wait for conductor {args:?}: {error}"),
            },
        );
        wait_until(DEADLINE, "the client's output to end", || {
            if Arc::strong_count(&self.stdout) == 1 && Arc::strong_count(&self.stderr) == 1 {
                Ok(())
            } else {
                Err("a reader is still attached".to_owned())
            }
        });
        std::process::Output {
            status,
            stdout: lock(&self.stdout).clone().into_bytes(),
            stderr: lock(&self.stderr).clone().into_bytes(),
        }
    }
}

impl Drop for CliProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until no live process carries `TEST_TAG=<tag>`, or panics naming the survivors and
/// their command lines.
pub fn wait_untagged(tag: &str, what: &str) {
    wait_until(DEADLINE, what, || {
        let alive = tagged(tag);
        if alive.is_empty() {
            Ok(())
        } else {
            Err(describe_pids(&alive))
        }
    });
}

/// `pid (command line)` for each pid, for failure messages.
pub fn describe_pids(pids: &[u32]) -> String {
    pids.iter()
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline: Vec<String> = cmdline
                .split(|&b| b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            format!("{pid} ({})", cmdline.join(" "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `fixtures/daemonize/daemonize.py` (a python3 program that starts a `setsid` or
/// double-forked `sleep` daemon, then execs a command), as a TOML string.
pub fn daemonize_script() -> String {
    toml_path(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/daemonize/daemonize.py")
            .canonicalize()
            .unwrap_or_else(|error| panic!("fixtures/daemonize/daemonize.py: {error}")),
    )
}

/// Opens `GET /events` (with `Last-Event-ID` when given) and reads events until `until`
/// accepts one (returned with all before it), or panics after [`DEADLINE`].
pub fn read_events(
    addr: &str,
    token: &str,
    last_event_id: Option<u64>,
    mut until: impl FnMut(&str, &serde_json::Value) -> bool,
) -> Vec<(String, serde_json::Value)> {
    let fail = |error: std::io::Error| -> ! { panic!("event stream from {addr}: {error}") };
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| fail(e));
    stream
        .set_read_timeout(Some(DEADLINE))
        .unwrap_or_else(|e| fail(e));
    let resume = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    let request = format!(
        "GET /events HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n{resume}\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| fail(e));
    let deadline = Instant::now() + DEADLINE;
    let mut reader = BufReader::new(stream);
    let mut events = Vec::new();
    let (mut name, mut data) = (String::new(), String::new());
    let mut line = String::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no matching event within {DEADLINE:?}; seen: {events:?}"
        );
        line.clear();
        if reader.read_line(&mut line).unwrap_or_else(|e| fail(e)) == 0 {
            panic!("the event stream ended; seen: {events:?}");
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(value) = line.strip_prefix("event:") {
            name = value.trim().to_owned();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.trim_start());
        } else if line.is_empty() && !name.is_empty() {
            let payload = serde_json::from_str(&data).unwrap_or(serde_json::Value::Null);
            let done = until(&name, &payload);
            events.push((std::mem::take(&mut name), payload));
            data.clear();
            if done {
                return events;
            }
        }
    }
}

/// A test's temp dir and its `TEST_TAG`: every live process carrying the tag (the services
/// a test tags, their daemons) is SIGKILLed on drop, even when the test panics.
pub struct TaggedDir {
    /// The temp dir, named after the test.
    pub dir: TempDir,
    /// `<name>-<pid>-<n>`, unique to this test.
    pub tag: String,
    _cleanup: KillTagged,
}

impl TaggedDir {
    /// A new temp dir and tag, both named `name`.
    pub fn new(name: &str) -> TaggedDir {
        let tag = unique_tag(name);
        TaggedDir {
            dir: TempDir::new(name),
            _cleanup: KillTagged(tag.clone()),
            tag,
        }
    }
}

/// One Server-Sent Event as framed on the wire.
#[derive(Debug)]
pub struct SseEvent {
    /// Its `id:`, if it had one.
    pub id: Option<u64>,
    /// Its `event:` name.
    pub name: String,
    /// Its `data:`, parsed.
    pub data: serde_json::Value,
}

/// A raw `GET /events` connection, read line by line.
pub struct EventStream {
    reader: BufReader<TcpStream>,
}

impl EventStream {
    /// Opens `GET /events` (the token in the query with `by_query`, else in the header) and
    /// returns once the answer's headers are read: every event published later reaches it.
    pub fn open(conductor: &Conductor, by_query: bool) -> EventStream {
        let addr = conductor.addr();
        let token = &conductor.info().token;
        let request = if by_query {
            format!("GET /events?token={token} HTTP/1.1\r\nHost: {addr}\r\n\r\n")
        } else {
            format!(
                "GET /events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                 Accept: text/event-stream\r\n\r\n"
            )
        };
        let mut stream = match TcpStream::connect(&addr) {
            Ok(stream) => stream,
            Err(error) => panic!("cannot connect to {addr}: {error}"),
        };
        if let Err(error) = stream
            .set_read_timeout(Some(DEADLINE))
            .and_then(|()| stream.write_all(request.as_bytes()))
        {
            panic!("cannot send GET /events: {error}");
        }
        let mut stream = EventStream {
            reader: BufReader::new(stream),
        };
        // The server subscribes before it answers, so once the headers are here every later
        // event reaches this stream.
        let status_line = stream.line();
        assert!(
            status_line.starts_with("HTTP/1.1 200"),
            "GET /events answered {status_line:?}"
        );
        let mut content_type = false;
        loop {
            let line = stream.line();
            if line.is_empty() {
                break;
            }
            content_type |= line.eq_ignore_ascii_case("content-type: text/event-stream");
        }
        assert!(content_type, "GET /events is not text/event-stream");
        stream
    }

    /// Reads events until `done` accepts one; returns it with all before it, or panics after
    /// [`DEADLINE`] naming `what` and the events seen.
    pub fn until(&mut self, what: &str, done: impl Fn(&SseEvent) -> bool) -> Vec<SseEvent> {
        let deadline = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "no {what} within {DEADLINE:?}; events: {seen:#?}"
            );
            let event = self.next_event();
            let is_done = done(&event);
            seen.push(event);
            if is_done {
                return seen;
            }
        }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("the event stream ended"),
            Ok(_) => line.trim_end_matches(['\r', '\n']).to_owned(),
            Err(error) => panic!("reading the event stream failed: {error}"),
        }
    }

    /// The next event. The response is chunked: chunk-size lines are told apart from SSE
    /// lines because SSE lines always have a field name and a colon (or are empty).
    pub fn next_event(&mut self) -> SseEvent {
        let (mut id, mut name, mut data) = (None, String::new(), String::new());
        loop {
            let line = self.line();
            if line.is_empty() {
                if !data.is_empty() {
                    let data = match serde_json::from_str(&data) {
                        Ok(value) => value,
                        Err(error) => panic!("event {name} data is not JSON ({error}): {data}"),
                    };
                    return SseEvent { id, name, data };
                }
                continue;
            }
            if let Some(value) = line.strip_prefix("id:") {
                id = value.trim().parse().ok();
            } else if let Some(value) = line.strip_prefix("event:") {
                name = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.trim_start());
            }
            // Anything else is a chunk-size line or a `:` keep-alive comment.
        }
    }
}

/// A python3 service table: `python3 <script> <args>` tagged `TEST_TAG=<tag>`, ready as soon
/// as it runs (`health = { kind = "none" }`), not critical (a test may let it fail). More keys
/// of the table may follow it.
pub fn python_service(name: &str, port: u16, script: &Path, args: &[&str], tag: &str) -> String {
    let args: Vec<String> = std::iter::once(toml_path(script))
        .chain(args.iter().map(|arg| toml_string(arg)))
        .collect();
    format!(
        r#"
[services.{name}]
port = {port}
command = "python3"
args = [{args}]
env = {{ TEST_TAG = {tag} }}
health = {{ kind = "none" }}
critical = false
"#,
        args = args.join(", "),
        tag = toml_string(tag),
    )
}

/// The proportional set size of `pid` (`Pss:` of `/proc/<pid>/smaps_rollup`), in bytes.
pub fn pss_bytes(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = rollup.lines().find(|line| line.starts_with("Pss:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The summed PSS of every live process tagged `TEST_TAG=<tag>`, and their pids: what `/proc`
/// itself says a tree costs, read independently of conductor's sampler.
pub fn tagged_pss(tag: &str) -> (u64, Vec<u32>) {
    let pids = tagged(tag);
    let total = pids.iter().filter_map(|&pid| pss_bytes(pid)).sum();
    (total, pids)
}

/// A wire timestamp (ISO-8601, UTC) in seconds since the Unix epoch.
pub fn epoch_seconds(timestamp: &str) -> f64 {
    match humantime::parse_rfc3339(timestamp) {
        Ok(time) => time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64()),
        Err(error) => panic!("{timestamp:?} is not an ISO-8601 timestamp: {error}"),
    }
}

/// `GET <path>` of a service on `127.0.0.1:<port>` (fake-service's `/env`, `/info`), which
/// must answer 200 with JSON.
pub fn get_json(port: u16, path: &str) -> serde_json::Value {
    let addr = format!("127.0.0.1:{port}");
    let response = http(&addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}"), b"");
    assert_eq!(response.status, 200, "GET {path}: {}", response.body);
    response.json()
}

/// The pid of a service that must be running.
pub fn running_pid(status: &ServiceStatus) -> u32 {
    match (status.status, status.pid) {
        (conductor_protocol::ServiceState::Running, Some(pid)) => pid,
        _ => panic!("expected {} running with a pid: {status:?}", status.name),
    }
}
