//! [`spawn`] and the [`ProcessGroup`] guard, the one owner of a child and of its group.
//!
//! Invariant: the leader is reaped only after its group has been sent SIGKILL. Until it is
//! reaped its pid, which is also the pgid, cannot be reused, so a group signal sent before
//! then reaches our processes only (on Linux, where the leader's exit is noticed through a
//! pidfd without reaping it; see `sys::ExitWatch` for other platforms).
//!
//! Not here: reading the pipes (the caller takes them), restart policy, health.

use std::{
    ffi::OsString,
    io,
    path::{Component, Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use tokio::{
    process::{Child, ChildStderr, ChildStdout, Command},
    time::{self, Instant},
};

use crate::{
    error::{SpawnError, SpawnErrorKind, StopError, StopErrorKind},
    sys,
    tree::{self, MarkedProcess, TreeMarker},
};

/// How long a SIGKILLed group gets to disappear before [`ProcessGroup::stop`] gives up on it.
/// SIGKILL cannot be caught; only a process in uninterruptible sleep outlives this.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// First and largest pause between two looks at the rest of a group. Processes that are not
/// our children cannot be awaited, only looked at; starting at 1 ms keeps a quick stop quick.
const MEMBER_POLL_FIRST: Duration = Duration::from_millis(1);
const MEMBER_POLL_MAX: Duration = Duration::from_millis(50);

/// Whether this build deliberately breaks "no process survives a stop": with the
/// `test-break-group-kill` feature, [`ProcessGroup`] signals only the leader's pid instead of
/// its whole group and tree (stop, wait and drop alike) and stops looking at the rest. It
/// exists so that `cargo xtask verify --self-test` can prove the shutdown gate notices a
/// grandchild that outlives its service, in a binary built for that alone; a shipped build
/// cannot have it, whatever its environment says.
fn group_kill_disabled() -> bool {
    #[cfg(feature = "test-break-group-kill")]
    {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                "built with test-break-group-kill: process groups are NOT killed, only their \
                 leaders (grandchildren will survive)"
            );
        });
        true
    }
    #[cfg(not(feature = "test-break-group-kill"))]
    {
        false
    }
}

/// Sends `signal` to the group led by `pgid`, or to the leader alone in a
/// `test-break-group-kill` build.
fn signal_group_or_leader(pgid: u32, signal: GroupSignal) -> io::Result<()> {
    if group_kill_disabled() {
        sys::signal_leader(pgid, signal)
    } else {
        sys::signal_group(pgid, signal)
    }
}

/// The leaders of the groups this process has spawned and not yet finished: a tree scan
/// skips their subtrees, which are other trees (see `sys::find_tree`).
static LIVE_LEADERS: std::sync::Mutex<std::collections::BTreeSet<u32>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn is_live_leader(pid: u32) -> bool {
    LIVE_LEADERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(&pid)
}

/// What to start: a program with its arguments, working directory and extra environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpawnSpec {
    /// A bare name is looked up on `PATH` (the child's, if [`env`](Self::env) sets one); a name
    /// with a path separator is a path, relative to [`cwd`](Self::cwd) when that is set.
    pub program: OsString,
    /// Arguments, passed as they are (no shell).
    pub args: Vec<OsString>,
    /// Working directory of the child; `None` keeps ours.
    pub cwd: Option<PathBuf>,
    /// Variables added on top of the inherited environment; a later entry wins over an earlier
    /// one with the same name.
    pub env: Vec<(OsString, OsString)>,
    /// Marks the child's whole tree (it is added to the environment last, so it wins over
    /// [`env`](Self::env)): stopping, awaiting or dropping the [`ProcessGroup`] then also ends
    /// every descendant that carries it, even one that left the process group.
    pub marker: Option<TreeMarker>,
    /// Resource limits set in the child before exec; its descendants inherit them.
    pub limits: ResourceLimits,
}

/// Per-process resource limits (`setrlimit`), soft and hard alike, never above the hard limit
/// conductor itself has (an unprivileged process cannot raise it). `None` keeps ours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceLimits {
    /// `RLIMIT_NOFILE`: the highest file descriptor number plus one.
    pub open_files: Option<u64>,
    /// `RLIMIT_NPROC`: processes (threads included) of the whole user, not only the tree's.
    pub processes: Option<u64>,
}

/// Identifies a process group across a restart of conductor, for orphan reclaim
/// ([`reclaim`](crate::reclaim)): a pid alone may have been reused, a pid with its start time
/// cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRecord {
    /// The process group id, equal to the leader's pid.
    pub pgid: u32,
    /// The leader's start time in clock ticks since boot (`/proc/<pid>/stat` field 22); `0` where
    /// it is unknown (platforms without `/proc`), which [`reclaim`](crate::reclaim) never trusts.
    pub start_time: u64,
}

/// How [`ProcessGroup::stop`] ended the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// The leader had already exited before `stop` was called; any rest of its group was
    /// SIGKILLed.
    AlreadyExited(ExitStatus),
    /// The leader and the rest of the group ended after SIGTERM, within the timeout.
    Terminated(ExitStatus),
    /// Something in the group outlived the timeout and needed SIGKILL.
    Killed,
}

/// Which signal to send to a whole group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupSignal {
    Terminate,
    /// Follows SIGTERM, as systemd does: a stopped process (SIGSTOP, SIGTSTP) acts on SIGTERM
    /// only once continued.
    Continue,
    Kill,
}

impl GroupSignal {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Terminate => "SIGTERM",
            Self::Continue => "SIGCONT",
            Self::Kill => "SIGKILL",
        }
    }
}

/// A running child, leader of its own process group, and the guard of that group.
///
/// Dropping it without [`stop`](Self::stop) or [`wait`](Self::wait) having finished SIGKILLs the
/// whole group (without blocking; tokio reaps the leader in the background), so a panic or an
/// early return never leaks a process. A process that moves itself into another group or
/// session (a daemonising grandchild) escapes the group; with a [`TreeMarker`] it is still
/// found (see [`crate::find_marked`]) and ended with the group, on drop too.
#[derive(Debug)]
pub struct ProcessGroup {
    child: Child,
    pid: u32,
    record: GroupRecord,
    /// `NAME=VALUE` of the tree's marker, if it has one.
    marker: Option<Vec<u8>>,
    /// Members of the tree outside the group found so far during a stop.
    marked: Vec<MarkedProcess>,
    /// Whether the tree has been looked for at least once.
    tree_scanned: bool,
    exit_watch: sys::ExitWatch,
    /// Set when the leader has been reaped to notice its exit (platforms without an
    /// [`sys::ExitWatch`]); the group may still need its SIGKILL.
    reaped: Option<ExitStatus>,
    /// Set once the group has been killed and the leader reaped: nothing is left to do.
    finished: Option<ExitStatus>,
}

/// Starts `spec.program` as the leader of a new process group (pgid = its pid), with stdin
/// from `/dev/null` and stdout and stderr piped (take them with
/// [`ProcessGroup::take_stdout`] and [`ProcessGroup::take_stderr`], and keep reading them, or
/// the child blocks once a pipe is full).
///
/// Must be called inside a tokio runtime (the pipes and the exit watch register with it);
/// outside one it panics, as `tokio::process::Command::spawn` does.
///
/// On Linux the child gets `PR_SET_PDEATHSIG(SIGKILL)`, so it dies if conductor dies, even by
/// SIGKILL. Linux sends that signal when the *thread* that spawned the child exits, not the
/// process: call `spawn` only from a thread that lives as long as conductor, such as a tokio
/// worker thread or the thread that runs `block_on`. Never call it from `spawn_blocking` (the
/// runtime retires idle blocking threads after a few seconds, which would SIGKILL the child),
/// nor from inside `block_in_place` (that hands the worker thread over to the blocking pool),
/// nor from a short-lived `std::thread`.
///
/// The child also starts with an empty signal mask and every signal at its default
/// disposition, whatever conductor itself ignores or blocks.
///
/// # Errors
///
/// [`SpawnError`] naming the program and saying whether it was looked up on `PATH` or resolved
/// to a path, or that the working directory is missing, or that permission was denied.
pub fn spawn(spec: &SpawnSpec) -> Result<ProcessGroup, SpawnError> {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = &spec.cwd {
        command.current_dir(dir);
    }
    if let Some(marker) = &spec.marker {
        let (name, value) = marker.env();
        command.env(name, value);
    }
    sys::prepare(&mut command, spec.limits).map_err(|source| SpawnError {
        program: spec.program.clone(),
        kind: SpawnErrorKind::Unsupported,
        source: Some(source),
    })?;
    let child = command.spawn().map_err(|source| classify(spec, source))?;
    let pid = child
        .id()
        .expect("tokio knows the pid of a child it has not yet seen exit");
    LIVE_LEADERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(pid);
    let group = ProcessGroup {
        child,
        pid,
        // The leader is unreaped, so its /proc entry exists even if it already exited.
        record: GroupRecord {
            pgid: pid,
            start_time: sys::process_start_time(pid).unwrap_or(0),
        },
        marker: spec.marker.as_ref().map(TreeMarker::entry),
        marked: Vec::new(),
        tree_scanned: false,
        exit_watch: sys::ExitWatch::new(pid),
        reaped: None,
        finished: None,
    };
    tracing::debug!(pid, program = ?spec.program, "spawned process group");
    Ok(group)
}

/// Turns the OS error of a failed spawn into a message that says what and where.
///
/// A missing working directory and a missing program both come back as `ENOENT`, so the
/// directory is looked at again to tell them apart.
fn classify(spec: &SpawnSpec, source: io::Error) -> SpawnError {
    let kind = match (source.kind(), &spec.cwd) {
        (io::ErrorKind::NotFound | io::ErrorKind::NotADirectory, Some(dir)) if !dir.is_dir() => {
            if dir.exists() {
                SpawnErrorKind::CwdNotDirectory { dir: dir.clone() }
            } else {
                SpawnErrorKind::CwdMissing { dir: dir.clone() }
            }
        }
        (io::ErrorKind::NotFound, _) => match resolved_path(spec) {
            Some(path) => SpawnErrorKind::NotFoundAtPath { path },
            None => SpawnErrorKind::NotFoundOnPath,
        },
        (io::ErrorKind::PermissionDenied, _) => SpawnErrorKind::PermissionDenied {
            path: resolved_path(spec).or_else(|| find_on_path(spec)),
        },
        _ => SpawnErrorKind::Os,
    };
    SpawnError {
        program: spec.program.clone(),
        kind,
        source: Some(source),
    }
}

/// The program as a path, if it is one (contains a separator); relative paths are taken
/// against the child's working directory, as `execvp` after `chdir` does.
fn resolved_path(spec: &SpawnSpec) -> Option<PathBuf> {
    let program = Path::new(&spec.program);
    if !spec
        .program
        .to_string_lossy()
        .chars()
        .any(std::path::is_separator)
    {
        return None;
    }
    let base = match &spec.cwd {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().ok()?,
    };
    // Drop a leading `./` so the message shows a plain path.
    let relative: PathBuf = program
        .components()
        .filter(|component| *component != Component::CurDir)
        .collect();
    Some(base.join(relative))
}

/// Where a bare program name was found on `PATH` (the child's, if the spec overrides it), for
/// error messages only: the OS did the real lookup.
fn find_on_path(spec: &SpawnSpec) -> Option<PathBuf> {
    let path_var = spec
        .env
        .iter()
        .rev()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.clone())
        .or_else(|| std::env::var_os("PATH"))?;
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(&spec.program))
        .find(|candidate| candidate.is_file())
}

impl ProcessGroup {
    /// The leader's pid, which is also the process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The group's identity for the run-state file read by [`reclaim`](crate::reclaim).
    pub fn record(&self) -> GroupRecord {
        self.record
    }

    /// The read end of the child's stdout; `None` once taken.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The read end of the child's stderr; `None` once taken.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Waits for the leader to exit, SIGKILLs whatever is left in its group (a crashed
    /// service's grandchildren must not linger), waits briefly for them to go, reaps the
    /// leader and returns its exit status. Returns the same status again on later calls.
    ///
    /// Cancel-safe: dropping the future loses nothing, so it can sit in a `select!` loop.
    ///
    /// # Errors
    ///
    /// The group could not be signalled (`EPERM`: a member changed its user) or the leader
    /// could not be awaited.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.finished {
            return Ok(status);
        }
        self.leader_exit().await.map_err(io::Error::other)?;
        self.kill_and_reap(false).await.map_err(io::Error::other)
    }

    /// Stops the whole group: SIGTERM (then SIGCONT, so a stopped process can act on it) to the
    /// group and to the marked members of its tree outside it, wait up to `timeout` for the
    /// leader and the rest to exit, then SIGKILL the group and the tree and reap the leader.
    ///
    /// Idempotent: once the group has ended, later calls return
    /// [`StopOutcome::AlreadyExited`] with the same status. Dropping the future part-way leaves
    /// the group running (still guarded by `Drop`); calling `stop` again starts over.
    ///
    /// # Errors
    ///
    /// A signal could not be sent (`EPERM`), the leader could not be awaited, or it survived
    /// SIGKILL for several seconds. The group is still SIGKILLed again on drop.
    pub async fn stop(&mut self, timeout: Duration) -> Result<StopOutcome, StopError> {
        if let Some(status) = self.finished {
            return Ok(StopOutcome::AlreadyExited(status));
        }
        if self.leader_exited_now()? {
            let status = self.kill_and_reap(false).await?;
            return Ok(StopOutcome::AlreadyExited(status));
        }
        self.signal(GroupSignal::Terminate)?;
        self.signal(GroupSignal::Continue)?;
        let deadline = Instant::now() + timeout;
        // The group is already acting on SIGTERM while the tree is looked for.
        self.find_tree().await;
        tree::signal_all(&self.marked, GroupSignal::Terminate);
        tree::signal_all(&self.marked, GroupSignal::Continue);
        let graceful = time::timeout_at(deadline, async {
            self.leader_exit().await?;
            self.rest_of_group_gone().await;
            self.rest_of_tree_gone().await;
            Ok::<(), StopError>(())
        })
        .await;
        let outcome = match graceful {
            Ok(Ok(())) => StopOutcome::Terminated(self.kill_and_reap(false).await?),
            Ok(Err(error)) => return Err(error),
            Err(_elapsed) => {
                self.kill_and_reap(true).await?;
                StopOutcome::Killed
            }
        };
        tracing::debug!(pgid = self.pid, ?outcome, "stopped process group");
        Ok(outcome)
    }

    /// Resolves once the leader has exited; on Linux it stays unreaped (a zombie that keeps
    /// the pgid reserved), elsewhere it is reaped and its status kept in `reaped`.
    /// Cancel-safe: both the exit watch and tokio's `Child::wait` are.
    async fn leader_exit(&mut self) -> Result<(), StopError> {
        if self.reaped.is_some() {
            return Ok(());
        }
        if self
            .exit_watch
            .exited()
            .await
            .map_err(|source| self.error(StopErrorKind::Wait, Some(source)))?
        {
            return Ok(());
        }
        let status = self
            .child
            .wait()
            .await
            .map_err(|source| self.error(StopErrorKind::Wait, Some(source)))?;
        self.reaped = Some(status);
        Ok(())
    }

    /// Whether the leader has already exited, without waiting.
    fn leader_exited_now(&mut self) -> Result<bool, StopError> {
        if self.reaped.is_some() {
            return Ok(true);
        }
        if let Some(exited) = self.exit_watch.has_exited() {
            return Ok(exited);
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.reaped = Some(status);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(source) => Err(self.error(StopErrorKind::Wait, Some(source))),
        }
    }

    /// Resolves once no process but the leader is alive in the group. Members are not our
    /// children, so there is nothing to await: look, with a growing pause. Where membership
    /// cannot be seen (no `/proc`), resolves at once and the SIGKILL that always follows is
    /// what ends the rest. Cancel-safe: it holds no state.
    async fn rest_of_group_gone(&self) {
        if group_kill_disabled() {
            // Under the test-only switch the rest of the group is deliberately left alone.
            return;
        }
        let mut pause = MEMBER_POLL_FIRST;
        while sys::live_members_besides(self.pid, is_live_leader).is_some_and(|n| n > 0) {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MEMBER_POLL_MAX);
        }
    }

    /// Resolves once every marked member of the tree found so far has exited. Cancel-safe.
    async fn rest_of_tree_gone(&self) {
        let mut pause = MEMBER_POLL_FIRST;
        while !self.marked.iter().all(MarkedProcess::has_exited) {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MEMBER_POLL_MAX);
        }
    }

    /// Looks for the tree's members outside the group (one pass over `/proc`, off the
    /// runtime's workers) and adds them to `marked`. Nothing to do without a marker.
    async fn find_tree(&mut self) {
        let Some(entry) = self.marker.clone() else {
            return;
        };
        if group_kill_disabled() {
            // Under the test-only switch the rest of the tree is deliberately left alone.
            return;
        }
        let (since, leader) = (self.record.start_time, self.pid);
        let scan = move || sys::find_tree(&entry, since, leader, is_live_leader);
        self.tree_scanned = true;
        let found = match tokio::task::spawn_blocking(scan).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(pgid = self.pid, %error, "the scan for the process tree failed");
                return;
            }
        };
        self.add_marked(found);
    }

    fn add_marked(&mut self, found: Vec<MarkedProcess>) {
        for process in found {
            let known = self
                .marked
                .iter()
                .any(|m| m.pid == process.pid && m.start_time == process.start_time);
            if !known {
                self.marked.push(process);
            }
        }
    }

    /// SIGKILLs the group and its tree, waits (bounded) for the leader and the rest to go,
    /// then reaps.
    async fn kill_and_reap(&mut self, escalated: bool) -> Result<ExitStatus, StopError> {
        self.signal(GroupSignal::Kill)?;
        tree::signal_all(&self.marked, GroupSignal::Kill);
        // Look (again) for the tree: nobody has yet after a crash; a member found before, or a
        // group that had to be killed, may have forked since. A cooperative stop of a tree with
        // nothing outside its group costs one scan in all.
        if self.marker.is_some() && (!self.tree_scanned || !self.marked.is_empty() || escalated) {
            self.find_tree().await;
            tree::signal_all(&self.marked, GroupSignal::Kill);
        }
        let deadline = Instant::now() + KILL_GRACE;
        match time::timeout_at(deadline, self.leader_exit()).await {
            Ok(result) => result?,
            Err(_elapsed) => {
                return Err(self.error(StopErrorKind::StillAlive { after: KILL_GRACE }, None));
            }
        }
        if time::timeout_at(deadline, self.rest_of_group_gone())
            .await
            .is_err()
        {
            tracing::warn!(
                pgid = self.pid,
                "members of the process group are still alive {KILL_GRACE:?} after SIGKILL"
            );
        }
        if time::timeout_at(deadline, self.rest_of_tree_gone())
            .await
            .is_err()
        {
            tracing::warn!(
                pgid = self.pid,
                "members of the process tree are still alive {KILL_GRACE:?} after SIGKILL"
            );
        }
        // Members we adopted as subreaper are our zombies now; the handles name them exactly.
        tree::reap_if_ours(&self.marked);
        self.marked.clear();
        let status = match self.reaped {
            Some(status) => status,
            None => self
                .child
                .wait()
                .await
                .map_err(|source| self.error(StopErrorKind::Wait, Some(source)))?,
        };
        self.reaped = Some(status);
        self.finished = Some(status);
        LIVE_LEADERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.pid);
        Ok(status)
    }

    fn signal(&self, signal: GroupSignal) -> Result<(), StopError> {
        signal_group_or_leader(self.pid, signal).map_err(|source| {
            let kind = if source.kind() == io::ErrorKind::Unsupported {
                StopErrorKind::Unsupported
            } else {
                StopErrorKind::Signal {
                    signal: signal.name(),
                }
            };
            self.error(kind, Some(source))
        })
    }

    fn error(&self, kind: StopErrorKind, source: Option<io::Error>) -> StopError {
        StopError {
            pgid: self.pid,
            kind,
            source,
        }
    }
}

// The supervisor moves each group into its own task.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<ProcessGroup>();
};

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.finished.is_some() {
            return;
        }
        // The leader is reaped later by tokio's orphan reaper.
        match signal_group_or_leader(self.pid, GroupSignal::Kill) {
            Ok(()) => tracing::debug!(pgid = self.pid, "killed process group on drop"),
            Err(error) => {
                tracing::warn!(pgid = self.pid, %error, "could not kill process group on drop");
            }
        }
        // One pass over /proc (milliseconds) on a path taken only on panics and early returns:
        // a daemonised descendant must not outlive its guard either.
        LIVE_LEADERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.pid);
        if let Some(entry) = self.marker.as_ref().filter(|_| !group_kill_disabled()) {
            let mut found = sys::find_tree(entry, self.record.start_time, self.pid, is_live_leader);
            found.append(&mut self.marked);
            tree::signal_all(&found, GroupSignal::Kill);
        }
    }
}

/// The start time of process `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22);
/// `None` if there is no such process or the platform has no `/proc`.
pub fn process_start_time(pid: u32) -> Option<u64> {
    sys::process_start_time(pid)
}
