//! Unix implementation: the child's setup between fork and exec, group signals, the watch on
//! the leader's exit, and the `/proc` queries behind reclaim and port lookup.
//! Linux gets all of it; other unixes compile with no parent-death signal, no pidfd (the leader
//! is reaped to notice its exit) and "unknown" answers where `/proc` would be needed.
//! Policy (what to signal when, how long to wait) is not here but in `group.rs`/`reclaim.rs`.

use std::io;

use nix::{
    errno::Errno,
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::process::Command;

use crate::{group::GroupSignal, port::PortHolder, reclaim::Member};

/// Exit code of a child whose parent died between fork and exec (it would never have received
/// the parent-death signal). Nobody is left to read it; it only has to be recognisable.
#[cfg(target_os = "linux")]
const PARENT_GONE_EXIT_CODE: libc::c_int = 125;

/// Puts the child in a new process group and installs [`child_setup`] to run before exec.
pub(crate) fn prepare(command: &mut Command, limits: crate::ResourceLimits) -> io::Result<()> {
    command.process_group(0);
    let parent = libc::pid_t::try_from(std::process::id()).map_err(io::Error::other)?;
    // SAFETY: `child_setup` runs in the forked child, where only async-signal-safe functions may
    // be called: it makes only such libc calls, allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            child_setup(parent)?;
            set_limits(limits)
        });
    }
    Ok(())
}

/// Applies `limits` in the child. Async-signal-safe: getrlimit and setrlimit are system calls.
fn set_limits(limits: crate::ResourceLimits) -> io::Result<()> {
    let wanted = [
        (libc::RLIMIT_NOFILE, limits.open_files),
        (libc::RLIMIT_NPROC, limits.processes),
    ];
    for (resource, limit) in wanted {
        let Some(limit) = limit else { continue };
        // SAFETY: `current` is a local the kernel fills; both calls only read or write it.
        unsafe {
            let mut current: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(resource, &mut current) == -1 {
                return Err(io::Error::last_os_error());
            }
            let value = (limit as libc::rlim_t).min(current.rlim_max);
            let new = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource, &new) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Runs in the child between fork and exec.
///
/// Std already resets the signal mask and SIGPIPE before running this hook; the loop below
/// also resets every *ignored* disposition, which exec keeps (a conductor started under
/// `nohup`, or with SIGTERM ignored, must not hand that to its services). Handled signals
/// need nothing: exec resets them to the default.
fn child_setup(parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: sigemptyset, pthread_sigmask, signal, prctl, getppid and _exit are
    // async-signal-safe; `set` is a local that sigemptyset fully initialises.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        let error = libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        if error != 0 {
            return Err(io::Error::from_raw_os_error(error));
        }
        // Signal numbers run 1..NSIG (65 on Linux, 32 elsewhere); SIGKILL and SIGSTOP cannot
        // be changed, and a failure leaves one signal as inherited, which exec would do too.
        for signal in 1..SIGNAL_LIMIT {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                reset_disposition(signal);
            }
        }
        #[cfg(target_os = "linux")]
        {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            // If conductor died after fork but before the prctl, we have already been
            // reparented and the death signal will never come: leave now.
            if libc::getppid() != parent {
                libc::_exit(PARENT_GONE_EXIT_CODE);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = parent;
    }
    Ok(())
}

/// Sets `signal` to its default disposition. Async-signal-safe.
///
/// Linux: the raw syscall, because glibc's `signal()` and `sigaction()` refuse signals 32 and
/// 33, which it reserves for its threads, yet a parent may have left them ignored. The kernel's
/// `struct sigaction` all zero means SIG_DFL, no flags, empty mask, whatever the field order
/// of the architecture; 32 bytes cover it. Returns nothing: see the caller.
#[cfg(target_os = "linux")]
unsafe fn reset_disposition(signal: libc::c_int) {
    const KERNEL_SIGSET_BYTES: libc::size_t = 8;
    let default_action = [0_u64; 4];
    // SAFETY: rt_sigaction reads `default_action` (large enough for the kernel's struct
    // sigaction on every architecture) and writes nothing, the old action pointer being null.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            default_action.as_ptr(),
            std::ptr::null_mut::<u64>(),
            KERNEL_SIGSET_BYTES,
        );
    }
}

/// Sets `signal` to its default disposition. Async-signal-safe.
#[cfg(not(target_os = "linux"))]
unsafe fn reset_disposition(signal: libc::c_int) {
    // SAFETY: signal() with SIG_DFL installs no handler; it is async-signal-safe.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
    }
}

#[cfg(target_os = "linux")]
const SIGNAL_LIMIT: libc::c_int = 65;
#[cfg(not(target_os = "linux"))]
const SIGNAL_LIMIT: libc::c_int = 32;

/// Sends `signal` to every process in group `pgid`. A group that no longer exists is not an
/// error: there is nothing left to signal.
pub(crate) fn signal_group(pgid: u32, signal: GroupSignal) -> io::Result<()> {
    let pgid = child_group(pgid)?;
    let signal = match signal {
        GroupSignal::Terminate => Signal::SIGTERM,
        GroupSignal::Continue => Signal::SIGCONT,
        GroupSignal::Kill => Signal::SIGKILL,
    };
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

/// Sends `signal` to the leader of group `pgid` only, not to the rest of its group: the
/// `test-break-group-kill` build of `group.rs`. A leader that no longer exists is not an error.
pub(crate) fn signal_leader(pgid: u32, signal: GroupSignal) -> io::Result<()> {
    let pid = child_group(pgid)?;
    let signal = match signal {
        GroupSignal::Terminate => Signal::SIGTERM,
        GroupSignal::Continue => Signal::SIGCONT,
        GroupSignal::Kill => Signal::SIGKILL,
    };
    match nix::sys::signal::kill(pid, signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

/// `killpg(0)` means our own group and `killpg(1)` init's: neither can be a child's group.
fn child_group(pgid: u32) -> io::Result<Pid> {
    match i32::try_from(pgid) {
        Ok(raw) if raw > 1 => Ok(Pid::from_raw(raw)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{pgid} cannot be the process group of a child"),
        )),
    }
}

/// Notices that a group leader exited, on Linux without reaping it: a pidfd polls readable
/// once its process has exited, while the zombie still reserves the pid and so the pgid.
/// Where there is no pidfd (other unixes, Linux before 5.3), [`exited`](Self::exited) answers
/// `false` at once and the caller must reap the leader to notice its exit.
#[derive(Debug)]
pub(crate) struct ExitWatch {
    #[cfg(target_os = "linux")]
    pidfd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl ExitWatch {
    pub(crate) fn new(pid: u32) -> Self {
        #[cfg(target_os = "linux")]
        {
            use tokio::io::{Interest, unix::AsyncFd};
            let pidfd = pidfd_open(pid)
                .and_then(|fd| {
                    // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which alone owns it until
                    // it is dropped, so the descriptor stays open and always the same.
                    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                        .map_err(io::Error::from)
                })
                .inspect_err(|error| {
                    tracing::debug!(pid, %error, "no pidfd: the leader will be reaped to notice its exit");
                })
                .ok();
            Self { pidfd }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = pid;
            Self {}
        }
    }

    /// Resolves with `true` once the leader has exited (it stays unreaped), or at once with
    /// `false` if this watch cannot tell. Cancel-safe: the readiness is never cleared, so a
    /// later call resolves at once.
    pub(crate) async fn exited(&self) -> io::Result<bool> {
        #[cfg(target_os = "linux")]
        if let Some(pidfd) = &self.pidfd {
            let _ready = pidfd.readable().await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether the leader has exited, without waiting or reaping; `None` if this watch cannot
    /// tell.
    pub(crate) fn has_exited(&self) -> Option<bool> {
        #[cfg(target_os = "linux")]
        if let Some(pidfd) = &self.pidfd {
            use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
            use std::os::fd::AsFd;
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            return match waitid(Id::PIDFd(pidfd.get_ref().as_fd()), flags) {
                Ok(WaitStatus::StillAlive) => Some(false),
                Ok(_) => Some(true),
                // P_PIDFD needs Linux 5.4; pidfd_open only 5.3.
                Err(_) => None,
            };
        }
        None
    }
}

#[cfg(target_os = "linux")]
fn pidfd_open(pid: u32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: pidfd_open(pid, flags) reads no memory of ours; it returns a new descriptor
    // (close-on-exec by default) or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: the kernel just created `fd` for us; nothing else owns or closes it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How many live processes other than `leader` are in `leader`'s group; `None` if unknown.
/// As a subreaper only the leader's possible tree is looked at (see [`find_tree`]), not the
/// whole process table.
pub(crate) fn live_members_besides(
    leader: u32,
    is_our_leader: impl Fn(u32) -> bool,
) -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        let is_member = |stat: &crate::procfs::ProcStat| {
            stat.pgrp == leader && stat.pid != leader && stat.is_live()
        };
        match tree_candidates(leader, is_our_leader) {
            Some(candidates) => Some(
                candidates
                    .into_iter()
                    .filter_map(crate::procfs::read_stat)
                    .filter(is_member)
                    .count(),
            ),
            None => Some(
                crate::procfs::all_processes()
                    .ok()?
                    .iter()
                    .filter(|stat| is_member(stat))
                    .count(),
            ),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (leader, is_our_leader);
        None
    }
}

pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        crate::procfs::read_stat(pid).map(|stat| stat.start_time)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// Every process that exists now, for reclaim.
pub(crate) fn process_table() -> io::Result<Vec<Member>> {
    #[cfg(target_os = "linux")]
    {
        Ok(crate::procfs::all_processes()?
            .into_iter()
            .map(|stat| Member {
                pid: stat.pid,
                pgrp: stat.pgrp,
                start_time: stat.start_time,
                live: stat.is_live(),
            })
            .collect())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "listing processes needs /proc, which this platform lacks",
        ))
    }
}

pub(crate) fn boot_id() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        Some(id.trim().to_owned())
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

pub(crate) fn port_holder(port: u16) -> Option<PortHolder> {
    #[cfg(target_os = "linux")]
    {
        use crate::procfs;
        let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|table| std::fs::read_to_string(table).ok())
            .flat_map(|table| procfs::listening_inodes(&table, port))
            .collect();
        if inodes.is_empty() {
            return None;
        }
        let pid = procfs::socket_owner(&inodes)?;
        Some(PortHolder {
            pid,
            command_line: procfs::command_line(pid).unwrap_or_default(),
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = port;
        None
    }
}

/// A process found by a marker scan, pinned so that a signal never reaches a pid's next owner:
/// a pidfd on Linux (opened, then the start time checked again), the pid and start time
/// elsewhere (checked again before each signal).
#[derive(Debug)]
pub(crate) struct ProcessHandle {
    pid: u32,
    #[cfg(target_os = "linux")]
    pidfd: Option<std::os::fd::OwnedFd>,
    start_time: u64,
}

impl ProcessHandle {
    /// Pins `pid` if it is still the process that started at `start_time`.
    #[cfg(target_os = "linux")]
    fn pin(pid: u32, start_time: u64) -> Option<ProcessHandle> {
        let pidfd = pidfd_open(pid).ok();
        // Checked after opening: if the start time still matches, the pidfd is that process.
        let now = crate::procfs::read_stat(pid)?;
        (now.start_time == start_time && now.is_live()).then_some(ProcessHandle {
            pid,
            pidfd,
            start_time,
        })
    }

    pub(crate) fn signal(&self, signal: GroupSignal) -> io::Result<()> {
        let signal = match signal {
            GroupSignal::Terminate => libc::SIGTERM,
            GroupSignal::Continue => libc::SIGCONT,
            GroupSignal::Kill => libc::SIGKILL,
        };
        #[cfg(target_os = "linux")]
        if let Some(pidfd) = &self.pidfd {
            use std::os::fd::AsRawFd;
            // SAFETY: pidfd_send_signal reads no memory of ours (the siginfo pointer is null).
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0 as libc::c_uint,
                )
            };
            if rc == 0 {
                return Ok(());
            }
            let error = io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::ESRCH) => Ok(()),
                _ => Err(error),
            };
        }
        if process_start_time(self.pid) != Some(self.start_time) {
            return Ok(());
        }
        let pid = Pid::from_raw(libc::pid_t::try_from(self.pid).map_err(io::Error::other)?);
        let signal = Signal::try_from(signal).map_err(io::Error::from)?;
        match nix::sys::signal::kill(pid, signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    }

    /// Whether the process has exited (zombies count as exited).
    pub(crate) fn has_exited(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(pidfd) = &self.pidfd {
            use std::os::fd::AsRawFd;
            let mut poll = libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `poll` points at one initialised pollfd; a zero timeout never blocks.
            let rc = unsafe { libc::poll(&mut poll, 1, 0) };
            return rc != 0;
        }
        #[cfg(target_os = "linux")]
        {
            !crate::procfs::read_stat(self.pid)
                .is_some_and(|stat| stat.start_time == self.start_time && stat.is_live())
        }
        #[cfg(not(target_os = "linux"))]
        {
            process_start_time(self.pid) != Some(self.start_time)
        }
    }

    /// Reaps the process if it is an exited child of ours; anything else is left alone.
    pub(crate) fn reap_if_child(&self) {
        #[cfg(target_os = "linux")]
        if let Some(pidfd) = &self.pidfd {
            use nix::sys::wait::{Id, WaitPidFlag, waitid};
            use std::os::fd::AsFd;
            // ECHILD (not our child) and "still alive" are both fine: nothing to reap.
            let _ = waitid(
                Id::PIDFd(pidfd.as_fd()),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
            );
        }
    }
}

/// See [`crate::find_marked`]: every process of the table is a candidate.
pub(crate) fn find_marked(
    entry_prefix: &[u8],
    since: u64,
    exclude: &[u32],
) -> Vec<crate::tree::MarkedProcess> {
    #[cfg(target_os = "linux")]
    {
        let Ok(pids) = crate::procfs::pids() else {
            return Vec::new();
        };
        let candidates: Vec<u32> = pids
            .into_iter()
            .filter(|pid| !exclude.contains(pid))
            .collect();
        match_marked(&candidates, entry_prefix, since)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (entry_prefix, since, exclude);
        Vec::new()
    }
}

/// The marked members of `leader`'s tree, outside the leader itself. As a subreaper we adopt
/// every orphaned descendant, so the tree is within the leader's descendants and those of our
/// adopted children (children that are no group leader we spawned): a few small files instead
/// of the whole process table. Elsewhere, or without the kernel's children lists, every
/// process is a candidate.
pub(crate) fn find_tree(
    entry_prefix: &[u8],
    since: u64,
    leader: u32,
    is_our_leader: impl Fn(u32) -> bool,
) -> Vec<crate::tree::MarkedProcess> {
    #[cfg(target_os = "linux")]
    {
        match tree_candidates(leader, is_our_leader) {
            Some(candidates) => match_marked(&candidates, entry_prefix, since),
            None => find_marked(entry_prefix, since, &[leader]),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (entry_prefix, since, leader, is_our_leader);
        Vec::new()
    }
}

/// Every process that can belong to `leader`'s tree, leader excluded, when we are a subreaper
/// (see [`find_tree`]); `None` when every process is a candidate.
#[cfg(target_os = "linux")]
fn tree_candidates(leader: u32, is_our_leader: impl Fn(u32) -> bool) -> Option<Vec<u32>> {
    use crate::procfs;
    if !is_subreaper() {
        return None;
    }
    let own = std::process::id();
    let adopted = |children: Vec<u32>| -> Vec<u32> {
        children
            .into_iter()
            .filter(|&child| child != leader && !is_our_leader(child))
            .collect()
    };
    let mut roots = vec![leader];
    roots.extend(adopted(procfs::children_of(own)?));
    let mut candidates = procfs::descendants(&roots)?;
    candidates.extend(roots.iter().skip(1));
    // An orphan re-parented to us while the walk ran has left the list where we would have
    // looked for it; our own list, read again, has it.
    let late: Vec<u32> = adopted(procfs::children_of(own)?)
        .into_iter()
        .filter(|child| !candidates.contains(child))
        .collect();
    candidates.extend(procfs::descendants(&late)?);
    candidates.extend(late);
    Some(candidates)
}

/// Whether `pid`'s environment has an entry starting with `entry_prefix`. A live user process
/// always has an environment, so an empty or unreadable one means it is in the middle of an
/// `execve` (its memory being replaced): look again, a few times, rather than let a daemon
/// that execs at the moment of a stop escape it.
#[cfg(target_os = "linux")]
fn environ_has_settled(pid: u32, start_time: u64, entry_prefix: &[u8]) -> bool {
    use crate::procfs;
    // An exec takes microseconds to a few milliseconds, but tens of them on a loaded machine
    // (a 10 ms budget let a daemon escape a stop under CI load): look again with doubling
    // pauses for about a quarter of a second in all. This runs off the runtime's workers.
    const FIRST_PAUSE: std::time::Duration = std::time::Duration::from_micros(500);
    const MAX_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);
    const BUDGET: std::time::Duration = std::time::Duration::from_millis(250);
    let mut pause = FIRST_PAUSE;
    let mut waited = std::time::Duration::ZERO;
    loop {
        if let Some(environ) = procfs::read_environ(pid).filter(|environ| !environ.is_empty()) {
            return procfs::environ_has(&environ, entry_prefix);
        }
        let Some(stat) = procfs::read_stat(pid) else {
            return false;
        };
        // Kernel threads (children of kthreadd, pid 2) never have an environment.
        let kernel_thread = stat.pid == 2 || stat.ppid == 2;
        if stat.start_time != start_time || !stat.is_live() || kernel_thread || waited >= BUDGET {
            return false;
        }
        std::thread::sleep(pause);
        waited += pause;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Whether this process is a child subreaper.
#[cfg(target_os = "linux")]
pub(crate) fn is_subreaper() -> bool {
    let mut flag: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the pointer, which is valid.
    let rc = unsafe {
        libc::prctl(
            libc::PR_GET_CHILD_SUBREAPER,
            &mut flag as *mut libc::c_int,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    rc == 0 && flag != 0
}

/// The live processes among `candidates` of our user, other than ourselves, whose environment
/// has an entry starting with `entry_prefix` and that started at or after `since`, each pinned.
#[cfg(target_os = "linux")]
fn match_marked(
    candidates: &[u32],
    entry_prefix: &[u8],
    since: u64,
) -> Vec<crate::tree::MarkedProcess> {
    use crate::procfs;
    let own = std::process::id();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    candidates
        .iter()
        .copied()
        .filter(|&pid| pid != own)
        .filter_map(|pid| {
            // Cheapest first: the owner is one getattr, the environment the dearest read.
            if procfs::owner_uid(pid)? != uid {
                return None;
            }
            let stat = procfs::read_stat(pid)?;
            if !stat.is_live() || stat.start_time < since {
                return None;
            }
            if !environ_has_settled(pid, stat.start_time, entry_prefix) {
                return None;
            }
            let handle = ProcessHandle::pin(pid, stat.start_time)?;
            Some(crate::tree::MarkedProcess {
                pid,
                start_time: stat.start_time,
                handle,
            })
        })
        .collect()
}

pub(crate) fn become_subreaper() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) reads no memory of ours.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_CHILD_SUBREAPER,
                1 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        if rc == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "child subreapers are a Linux feature (macOS and Windows have none)",
        ))
    }
}

pub(crate) fn reap_adopted() -> usize {
    #[cfg(target_os = "linux")]
    {
        use crate::procfs;
        use nix::sys::wait::{Id, WaitPidFlag, waitid};
        // One sweep at a time: two sweeps could both judge the same zombie.
        static SWEEP: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _sweep = SWEEP
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(own) = procfs::read_stat(std::process::id()) else {
            return 0;
        };
        let Ok(children) = procfs::own_children() else {
            return 0;
        };
        let mut n_reaped = 0;
        for pid in children {
            let Some(stat) = procfs::read_stat(pid) else {
                continue;
            };
            let started_by_someone_here =
                stat.pgrp == own.pgrp || (stat.pgrp == stat.pid && stat.session == own.session);
            if stat.is_live() || started_by_someone_here {
                continue;
            }
            let Ok(raw) = libc::pid_t::try_from(pid) else {
                continue;
            };
            // A zombie child keeps its pid until reaped, so `pid` is still that zombie.
            if waitid(
                Id::Pid(Pid::from_raw(raw)),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
            )
            .is_ok()
            {
                n_reaped += 1;
            }
        }
        n_reaped
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}
