//! [`Fleet`]: one real `conductor up` process under test, its output captured line by line
//! (with the moment each line arrived), its control API, and the guard that ends it and every
//! process it was seen to own when it drops, whatever the outcome.
//! It judges nothing and writes no registry (callers write theirs, quoting with
//! [`toml_string`](crate::toml_string)), and it checks no output: callers build the command and judge.

use std::{
    io::{self, BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use crate::{
    TempDir,
    control::ControlApi,
    process::{self, Proc, SIGTERM},
    wait::try_wait_until,
};

/// How long a dropped fleet gets to shut down after SIGTERM before it is SIGKILLed.
const GRACE: Duration = Duration::from_secs(15);

/// A line conductor printed, and when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The text, without the line end.
    pub text: String,
    /// When the reader got it (just after conductor wrote it).
    pub at: Instant,
}

/// Lines a child printed, shared with the threads that read its pipes.
#[derive(Default)]
struct Output {
    state: Mutex<OutputState>,
    changed: Condvar,
}

#[derive(Default)]
struct OutputState {
    stdout: Vec<Line>,
    stderr: Vec<String>,
    n_closed: usize,
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, OutputState> {
        // A reader that panicked leaves the lines usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn capture(pipe: impl Read + Send + 'static, output: Arc<Output>, is_stdout: bool) {
    // Detached: the thread owns only the pipe and the shared buffer, and ends at end of file,
    // which comes when conductor exits (the guard SIGKILLs it if need be).
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let at = Instant::now();
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            line.clear();
            let mut state = output.lock();
            if is_stdout {
                state.stdout.push(Line { text, at });
            } else {
                state.stderr.push(text);
            }
            drop(state);
            output.changed.notify_all();
        }
        output.lock().n_closed += 1;
        output.changed.notify_all();
    });
}

/// A running `conductor up` and what it started; see the module doc for the guard.
///
/// Drop: SIGTERM and up to 15 s for a graceful shutdown (so conductor reaps its services
/// rather than leave zombies under a PID 1 that never reaps), else SIGKILL, after which the
/// parent-death signal ends the services; then every tracked process and the live members of
/// every tracked group, each still proven ours, are SIGKILLed.
pub struct Fleet {
    child: Child,
    exit: Option<ExitStatus>,
    spawned_at: Instant,
    output: Arc<Output>,
    data_dir: PathBuf,
    client_token: Option<String>,
    /// Processes to SIGKILL on drop if still alive (pid and start time checked first).
    tracked: Vec<Proc>,
    /// Groups whose live members are SIGKILLed on drop, if their leader is still the tracked one.
    groups: Vec<Proc>,
    /// Dropped last: the registry and the data dir may live in it.
    dir: Option<TempDir>,
}

impl Fleet {
    /// `<binary> up --registry <registry> --data-dir <data_dir>`, to adjust and [`Fleet::spawn`].
    pub fn up_command(binary: &Path, registry: &Path, data_dir: &Path) -> Command {
        let mut command = Command::new(binary);
        command
            .arg("up")
            .arg("--registry")
            .arg(registry)
            .arg("--data-dir")
            .arg(data_dir);
        command
    }

    /// Runs `command` (a `conductor up` of some kind, whose data dir is `data_dir`) with its
    /// output captured.
    ///
    /// conductor stays in our process group: a Ctrl-C on the caller reaches it too, and it
    /// shuts its fleet down.
    pub fn spawn(mut command: Command, data_dir: &Path) -> io::Result<Fleet> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("CONDUCTOR_DATA_DIR");
        let spawned_at = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|err| io::Error::new(err.kind(), format!("starting {command:?}: {err}")))?;
        let output = Arc::new(Output::default());
        if let Some(stdout) = child.stdout.take() {
            capture(stdout, Arc::clone(&output), true);
        }
        if let Some(stderr) = child.stderr.take() {
            capture(stderr, Arc::clone(&output), false);
        }
        let mut fleet = Fleet {
            exit: None,
            spawned_at,
            output,
            data_dir: data_dir.to_path_buf(),
            client_token: None,
            tracked: Vec::new(),
            groups: Vec::new(),
            dir: None,
            child,
        };
        if let Some(me) = Proc::identify(fleet.child.id()) {
            fleet.tracked.push(me);
        }
        Ok(fleet)
    }

    /// Keeps `dir` until the fleet has been stopped on drop, then removes it.
    pub fn owning(mut self, dir: TempDir) -> Fleet {
        self.dir = Some(dir);
        self
    }

    /// Makes [`Fleet::control`] hand out `token` instead of the one in `ipc.json` (to check
    /// that a wrong one is refused).
    pub fn use_token(&mut self, token: String) {
        self.client_token = Some(token);
    }

    /// The data dir (`--data-dir`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// conductor's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The moment just before the spawn.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// Every line conductor printed on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.output
            .lock()
            .stdout
            .iter()
            .map(|line| line.text.clone())
            .collect()
    }

    /// The last lines of stdout and stderr, for a failure message.
    pub fn tail(&self) -> String {
        let state = self.output.lock();
        let stdout: Vec<&str> = state.stdout.iter().map(|line| line.text.as_str()).collect();
        let stderr: Vec<&str> = state.stderr.iter().map(String::as_str).collect();
        let pick = |lines: &[&str]| lines[lines.len().saturating_sub(6)..].join(" | ");
        format!("stdout: [{}]; stderr: [{}]", pick(&stdout), pick(&stderr))
    }

    /// Waits for the first stdout line that satisfies `wanted`; fails if conductor closes its
    /// output (exits) first or `timeout` passes.
    pub fn wait_for_line(
        &mut self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> io::Result<Line> {
        let deadline = Instant::now() + timeout;
        let mut state = self.output.lock();
        loop {
            if let Some(line) = state.stdout.iter().find(|line| wanted(&line.text)) {
                return Ok(line.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.n_closed == 2 || left.is_zero() {
                drop(state);
                let why = if left.is_zero() {
                    "no such line in time".to_owned()
                } else {
                    let status = self.wait_exit(Duration::from_secs(5));
                    format!(
                        "conductor exited first ({})",
                        status.map_or_else(|err| err.to_string(), |status| status.to_string())
                    )
                };
                return Err(io::Error::other(format!(
                    "waiting for {what}: {why}; {}",
                    self.tail()
                )));
            }
            state = self
                .output
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until the services' startup is over: `✓ All services ready`, or the degraded
    /// report (`! Running degraded …`).
    pub fn wait_started(&mut self, timeout: Duration) -> io::Result<Line> {
        self.wait_for_line("the end of startup", timeout, |line| {
            line == "✓ All services ready" || line.starts_with("! Running degraded")
        })
    }

    /// Waits for conductor to exit and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        if let Some(status) = self.exit {
            return Ok(status);
        }
        let child = &mut self.child;
        let status = try_wait_until(timeout, "conductor to exit", || match child.try_wait() {
            Ok(Some(status)) => Ok(Ok(status)),
            Ok(None) => Ok(Err("still running".to_owned())),
            Err(err) => Err(io::Error::new(
                err.kind(),
                format!("waiting for conductor: {err}"),
            )),
        })?;
        self.exit = Some(status);
        Ok(status)
    }

    /// SIGTERM to conductor: its graceful shutdown.
    pub fn terminate(&self) {
        if self.exit.is_none() {
            // Our unreaped child: the pid cannot have been reused.
            let _ = process::signal(self.child.id(), SIGTERM);
        }
    }

    /// `app:quit` (answered 202), then waits up to `timeout` for conductor to exit.
    pub fn quit(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        let response = self.control()?.call("app:quit", None)?;
        if response.status != 202 {
            return Err(io::Error::other(format!(
                "app:quit answered {} (expected 202): {}",
                response.status,
                response.body_text()
            )));
        }
        self.wait_exit(timeout).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("after app:quit: {err}; {}", self.tail()),
            )
        })
    }

    /// The control API, from `<data dir>/ipc.json` (with the token of [`Fleet::use_token`]).
    pub fn control(&self) -> io::Result<ControlApi> {
        let mut api = ControlApi::read(&self.data_dir)?;
        if let Some(token) = &self.client_token {
            api.token.clone_from(token);
        }
        Ok(api)
    }

    /// Remembers a process (and, if it leads one, its group) so that drop kills it.
    pub fn track(&mut self, process: Proc) {
        if !self.tracked.contains(&process) {
            self.tracked.push(process);
        }
        if process::stat(process.pid).is_some_and(|stat| stat.pgid == process.pid)
            && !self.groups.contains(&process)
        {
            self.groups.push(process);
        }
    }

    /// [`Fleet::track`] of whatever process has `pid` now (one conductor just reported).
    pub fn track_pid(&mut self, pid: u32) {
        if let Some(process) = Proc::identify(pid) {
            self.track(process);
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.terminate();
            if self.wait_exit(GRACE).is_err() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        for group in &self.groups {
            // Members of a group whose leader is gone are still ours: Linux never hands out a
            // pid that is some live process's group id. A leader pid with another start time
            // means the whole group ended and the pid was reused: not ours.
            if process::stat(group.pid).is_none_or(|stat| stat.start_time == group.start_time) {
                for member in process::live_group_members(group.pid) {
                    member.kill();
                }
            }
        }
        for process in &self.tracked {
            process.kill();
        }
    }
}
