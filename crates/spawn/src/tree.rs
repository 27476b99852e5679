//! Containment beyond the process group: a child's whole *tree*, found by a marker variable in
//! the environment that every descendant inherits, and the subreaper that reaps the
//! descendants the kernel re-parents to us.
//!
//! A process group stops holding a tree as soon as a descendant calls `setsid` or `setpgid`
//! (a daemon's double fork, `setsid sleep &`, `nohup` wrappers, language servers). The
//! environment survives both: a process of the same user that carries the marker entry and
//! started no earlier than the tree's root is a member, however it left the group. A process
//! that clears or rewrites its environment before exec escapes; only a cgroup (Linux) or a job
//! object (Windows) would hold it.
//!
//! Every member found is pinned by a pidfd opened while its start time was checked, so a pid
//! reused between the scan and the signal is never hit.
//!
//! Not here: choosing the marker's value (the caller's naming), when to stop a tree
//! ([`ProcessGroup`](crate::ProcessGroup) does it on every stop, exit and drop).

use std::{ffi::OsString, io};

use crate::{group::GroupSignal, sys};

/// An environment entry `NAME=VALUE` given to a child and inherited by all its descendants,
/// by which [`ProcessGroup`](crate::ProcessGroup) finds the members of its tree that left the
/// process group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeMarker {
    name: String,
    value: String,
}

impl TreeMarker {
    /// A marker `name=value`. Choose a value no other tree carries (a per-run id and a name).
    ///
    /// # Panics
    ///
    /// If `name` is empty or contains `=` or NUL, or `value` contains NUL: such an entry cannot
    /// be in an environment. Callers build both from fixed names and generated ids.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> TreeMarker {
        let (name, value) = (name.into(), value.into());
        assert!(
            !name.is_empty() && !name.contains(['=', '\0']) && !value.contains('\0'),
            "a marker is a valid environment entry, not {name:?}={value:?}"
        );
        TreeMarker { name, value }
    }

    /// The variable's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The variable's value.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The `(name, value)` pair to put in a child's environment.
    pub fn env(&self) -> (OsString, OsString) {
        (self.name.clone().into(), self.value.clone().into())
    }

    /// `NAME=VALUE`, the bytes matched against `/proc/<pid>/environ` entries.
    pub(crate) fn entry(&self) -> Vec<u8> {
        format!("{}={}", self.name, self.value).into_bytes()
    }
}

/// A live process found carrying a marker, pinned (Linux: a pidfd) so that signalling it never
/// reaches a process that reused its pid.
#[derive(Debug)]
pub struct MarkedProcess {
    /// Its pid.
    pub pid: u32,
    /// Its start time in clock ticks since boot.
    pub start_time: u64,
    pub(crate) handle: sys::ProcessHandle,
}

impl MarkedProcess {
    /// Whether it has exited (a zombie counts as exited).
    pub fn has_exited(&self) -> bool {
        self.handle.has_exited()
    }
}

/// Every live process of our user, other than ourselves and `exclude`, whose environment has
/// an entry starting with `entry_prefix` (`NAME=VALUE` for one tree, `NAME=VAL` for every tree
/// whose value starts so) and that started at or after `since` (clock ticks since boot).
///
/// Blocking: one pass over `/proc` (a stat read per process, an environment read for the
/// recent ones of our user). On platforms without `/proc` it finds nothing.
pub fn find_marked(entry_prefix: &[u8], since: u64, exclude: &[u32]) -> Vec<MarkedProcess> {
    sys::find_marked(entry_prefix, since, exclude)
}

/// Sends `signal` to each process; one that is gone already is skipped.
pub(crate) fn signal_all(processes: &[MarkedProcess], signal: GroupSignal) {
    for process in processes {
        if let Err(error) = process.handle.signal(signal) {
            tracing::debug!(pid = process.pid, %error, "cannot signal a marked process");
        }
    }
}

/// SIGKILLs every process [`find_marked`] finds and waits, a few seconds at most, until they
/// are gone. Returns how many were killed. For orphan reclaim: the tree's root is gone, so
/// there is no group left to signal.
///
/// Blocking (reads `/proc`, may sleep): call it from a blocking context.
pub fn kill_marked(entry_prefix: &[u8], since: u64) -> usize {
    let found = find_marked(entry_prefix, since, &[]);
    signal_all(&found, GroupSignal::Kill);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !found.iter().all(MarkedProcess::has_exited) && std::time::Instant::now() < deadline {
        // Other processes cannot be awaited: poll until they are gone or the deadline passes.
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    reap_if_ours(&found);
    found.len()
}

/// Reaps those of `processes` that became our zombie children (we are their subreaper), so
/// they do not linger until the next SIGCHLD sweep. Never touches a process that is not our
/// child, and never a pid that was reused: the handle names the exact process.
pub(crate) fn reap_if_ours(processes: &[MarkedProcess]) {
    for process in processes {
        process.handle.reap_if_child();
    }
}

/// Makes this process a *child subreaper* (Linux `PR_SET_CHILD_SUBREAPER`): an orphaned
/// descendant is re-parented to us instead of to init, so it stays visible and reapable.
/// Process-wide and permanent: call it once, from the program that owns the process (the
/// `conductor` binary, or a host that accepts [`reap_adopted`]'s rule), and then reap with
/// [`reap_adopted`] on every SIGCHLD.
///
/// # Errors
///
/// The kernel refused, or this platform has no subreapers.
pub fn become_subreaper() -> io::Result<()> {
    sys::become_subreaper()
}

/// Reaps every zombie child of ours that we adopted as subreaper and that nobody else awaits;
/// returns how many. Call it on each SIGCHLD.
///
/// Which zombies are adopted, judged without a registry of our own spawns: a child in our own
/// process group (started without a group of its own, as `std::process::Command` does) and a
/// child leading its own group in our session (as [`spawn`](crate::spawn) and exec probes
/// start them) are left to whoever started them. Every other zombie child is in another
/// session (it called `setsid`) or in a group that another process leads (it was a service's
/// grandchild): nobody in this process started it, so its exit status is nobody's. An adopted
/// process that made itself a group leader in our session without a new session is left
/// alone here; [`ProcessGroup`](crate::ProcessGroup) reaps it when its tree is stopped.
pub fn reap_adopted() -> usize {
    sys::reap_adopted()
}
