//! Processes as tests see them: one reader of `/proc/<pid>/stat` ([`Stat`]) and of the sizes
//! in `/proc/<pid>/status` ([`status_bytes`]); a process named by pid *and* start time
//! ([`Proc`], so a reused pid is never mistaken for ours); the live members of a group;
//! signals; [`GroupGuard`], which SIGKILLs a child's whole process group and reaps the child
//! on drop, even when the test panics; and test tags ([`tagged`], [`KillTagged`]) for
//! descendants that leave every group.
//! A zombie counts as gone everywhere here: it runs no code, and an orphan's zombie waits for
//! a PID 1 that, in some containers, never reaps.
//! `/proc` is Linux's; elsewhere every process reads as gone.

use std::{
    io,
    process::{Child, Command},
    sync::atomic::{AtomicUsize, Ordering},
};

/// The fields of `/proc/<pid>/stat` tests use (proc(5) numbers them from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Field 3: `R`, `S`, `D`, `T`, `Z` (zombie), `X` (dead) …
    pub state: char,
    /// Field 4: the parent's pid.
    pub ppid: u32,
    /// Field 5: the process group.
    pub pgid: u32,
    /// Field 6: the session.
    pub session: u32,
    /// Fields 14 and 15: user and system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Field 22: when it started, in clock ticks since boot.
    pub start_time: u64,
}

impl Stat {
    /// Whether the process has exited (a zombie or dead): it runs no code any more.
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and `)`, so
/// the fields are counted from after the *last* `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let fields: Vec<&str> = line
        .get(line.rfind(')')? + 1..)?
        .split_ascii_whitespace()
        .collect();
    // fields[0] is field 3, so field N is fields[N - 3].
    let number = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let pid = |n: usize| u32::try_from(number(n)?).ok();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: pid(4)?,
        pgid: pid(5)?,
        session: pid(6)?,
        cpu_ticks: number(14)? + number(15)?,
        start_time: number(22)?,
    })
}

/// The stat of `pid`, `None` when there is no such process.
pub fn stat(pid: u32) -> Option<Stat> {
    let bytes = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&String::from_utf8_lossy(&bytes))
}

/// A `/proc/<pid>/status` field given in kB (`VmRSS:`, `VmHWM:`), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Whether `pid` is gone: no such process, or one that has exited (a zombie).
pub fn is_gone(pid: u32) -> bool {
    stat(pid).is_none_or(|stat| stat.has_exited())
}

/// A process pinned down by pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    /// Its pid.
    pub pid: u32,
    /// Its start time (clock ticks since boot), which tells it from a later holder of the pid.
    pub start_time: u64,
}

impl Proc {
    /// The process that has `pid` now, if any.
    pub fn identify(pid: u32) -> Option<Proc> {
        stat(pid).map(|stat| Proc {
            pid,
            start_time: stat.start_time,
        })
    }

    /// Its state letter while this very process still runs; `None` once it has exited or its
    /// pid belongs to another process.
    pub fn live_state(&self) -> Option<char> {
        let stat = stat(self.pid)?;
        (stat.start_time == self.start_time && !stat.has_exited()).then_some(stat.state)
    }

    /// SIGKILLs the process if it is still this one and alive; whether a signal went.
    #[cfg(unix)]
    pub fn kill(&self) -> bool {
        self.live_state().is_some() && signal(self.pid, SIGKILL).is_ok()
    }
}

/// Every live process whose process group is `pgid`.
pub fn live_group_members(pgid: u32) -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = stat(pid)?;
            (stat.pgid == pgid && !stat.has_exited()).then_some(Proc {
                pid,
                start_time: stat.start_time,
            })
        })
        .collect()
}

/// A tag unique to one test (`<name>-<pid>-<n>`), for `TEST_TAG=<tag>` in the environment of
/// what it starts: descendants inherit it however they daemonise, so [`tagged`] finds them and
/// [`KillTagged`] ends them.
pub fn unique_tag(name: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Live processes whose environment holds `TEST_TAG=<tag>`, read straight from `/proc`:
/// independent of conductor's own marker and scan, so a broken one cannot hide a survivor.
pub fn tagged(tag: &str) -> Vec<u32> {
    let entry = format!("TEST_TAG={tag}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| !is_gone(pid))
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|environ| environ.split(|&b| b == 0).any(|e| e == entry.as_bytes()))
        })
        .collect()
}

/// SIGKILLs every live process tagged `TEST_TAG=<.0>` when dropped, even when the test
/// panicked: the cleanup for daemons, which no process group holds.
#[cfg(unix)]
#[derive(Debug)]
pub struct KillTagged(pub String);

#[cfg(unix)]
impl Drop for KillTagged {
    fn drop(&mut self) {
        for pid in tagged(&self.0) {
            // The pid was just seen carrying this test's tag.
            let _ = signal(pid, SIGKILL);
        }
    }
}

/// `SIGKILL`, for [`signal`] and [`signal_group`].
#[cfg(unix)]
pub const SIGKILL: i32 = libc::SIGKILL;
/// `SIGTERM`, for [`signal`] and [`signal_group`].
#[cfg(unix)]
pub const SIGTERM: i32 = libc::SIGTERM;

/// Sends `signal` to `pid`. The caller proves the pid is the process it means (its own
/// unreaped child, or a [`Proc`] just checked).
#[cfg(unix)]
pub fn signal(pid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: kill(2) reads no memory of ours.
    send_signal(pid, |pid| unsafe { libc::kill(pid, signal) })
}

/// Sends `signal` to every process of group `pgid`; ESRCH when the group is gone.
#[cfg(unix)]
pub fn signal_group(pgid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: killpg(2) reads no memory of ours.
    send_signal(pgid, |pgid| unsafe { libc::killpg(pgid, signal) })
}

#[cfg(unix)]
fn send_signal(id: u32, call: impl FnOnce(libc::pid_t) -> libc::c_int) -> io::Result<()> {
    let id = libc::pid_t::try_from(id).map_err(io::Error::other)?;
    if call(id) == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A child that leads its own process group; on drop the whole group is SIGKILLed (the child
/// and whatever it forked that stayed in the group) and the child is reaped.
///
/// `kill_on_drop`-style guards reach the direct child only; a grandchild would outlive the test.
#[cfg(unix)]
#[derive(Debug)]
pub struct GroupGuard {
    child: Child,
}

#[cfg(unix)]
impl GroupGuard {
    /// Spawns `command` as the leader of a new process group.
    pub fn spawn(command: &mut Command) -> io::Result<GroupGuard> {
        use std::os::unix::process::CommandExt;
        let child = command.process_group(0).spawn()?;
        Ok(GroupGuard { child })
    }

    /// The child's pid, which is also its group's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child, to take its pipes or poll its exit.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

#[cfg(unix)]
impl Drop for GroupGuard {
    fn drop(&mut self) {
        // The group cannot have been reused: its leader is not reaped yet. ESRCH means gone.
        let _ = signal_group(self.child.id(), SIGKILL);
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_follow_the_last_parenthesis() {
        let line = "42 (a) b) S 1 42 7 0 -1 4194560 100 0 0 0 11 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                ppid: 1,
                pgid: 42,
                session: 7,
                cpu_ticks: 13,
                start_time: 98765,
            })
        );
        assert_eq!(parse_stat("42 (x) Z"), None);
    }

    #[test]
    fn our_own_process_is_alive_and_identified() {
        assert!(status_bytes(std::process::id(), "VmRSS:").is_some_and(|rss| rss > 0));
        let me = Proc::identify(std::process::id()).expect("this process exists");
        assert!(me.live_state().is_some());
        assert!(!is_gone(me.pid));
        let impostor = Proc {
            start_time: me.start_time + 1,
            ..me
        };
        assert_eq!(
            impostor.live_state(),
            None,
            "another start time is another process"
        );
    }

    #[cfg(unix)]
    #[test]
    fn tagged_processes_are_found_and_killed_on_drop() {
        let tag = unique_tag("unit");
        assert_ne!(tag, unique_tag("unit"));
        let cleanup = KillTagged(tag.clone());
        let mut sleeper = Command::new("sleep")
            .arg("1000")
            .env("TEST_TAG", &tag)
            .spawn()
            .expect("sleep starts");
        let pid = sleeper.id();
        crate::wait_until(crate::DEADLINE, "the sleeper to carry its tag", || {
            tagged(&tag) == [pid]
        });
        drop(cleanup);
        let status = sleeper.wait().expect("the sleeper is reaped");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(SIGKILL)
        );
        assert!(tagged(&tag).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_guard_kills_its_whole_group_on_drop() {
        // Should the guard fail, the tag still ends the sleeper when the test panics.
        let tag = unique_tag("group-guard");
        let _cleanup = KillTagged(tag.clone());
        let mut guard = GroupGuard::spawn(
            Command::new("sh")
                .args(["-c", "sleep 1000 & echo $!; exec sleep 1000"])
                .env("TEST_TAG", &tag)
                .stdout(std::process::Stdio::piped()),
        )
        .expect("sh starts");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(guard.child().stdout.take().expect("piped")),
            &mut line,
        )
        .expect("sh prints the sleeper's pid");
        let sleeper: u32 = line.trim().parse().expect("a pid");
        assert_eq!(stat(sleeper).map(|stat| stat.pgid), Some(guard.pid()));
        drop(guard);
        crate::wait_until(crate::DEADLINE, "the sleeper to be killed", || {
            is_gone(sleeper)
        });
    }
}
