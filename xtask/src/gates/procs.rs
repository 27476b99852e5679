//! What the gates know about processes: a process named by pid *and* start time (so a reused
//! pid is never mistaken for ours), whether it still runs (a zombie counts as gone), the live
//! members of a process group, and SIGKILL for processes proven ours.
//! Linux only (`/proc`); nothing here starts a process.

use std::fs;

/// The fields of `/proc/<pid>/stat` the gates use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// `R`, `S`, `D`, `Z` (zombie), `X` (dead) …
    pub(crate) state: char,
    pub(crate) pgrp: u32,
    /// Clock ticks since boot.
    pub(crate) start_time: u64,
}

/// Parses a `/proc/<pid>/stat` line; the command name may hold spaces and `)`, so the fields
/// start after the *last* `)`.
pub(crate) fn parse_stat(line: &str) -> Option<Stat> {
    let rest: Vec<&str> = line
        .get(line.rfind(')')? + 1..)?
        .split_ascii_whitespace()
        .collect();
    // rest[0] is field 3 (state), so field N is rest[N - 3].
    Some(Stat {
        state: rest.first()?.chars().next()?,
        pgrp: rest.get(5 - 3)?.parse().ok()?,
        start_time: rest.get(22 - 3)?.parse().ok()?,
    })
}

/// The stat of `pid`, or `None` when there is no such process.
pub(crate) fn stat(pid: u32) -> Option<Stat> {
    let bytes = fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&String::from_utf8_lossy(&bytes))
}

/// A process pinned down by pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Proc {
    pub(crate) pid: u32,
    pub(crate) start_time: u64,
}

impl Proc {
    /// The process that has `pid` now, if any.
    pub(crate) fn identify(pid: u32) -> Option<Proc> {
        stat(pid).map(|stat| Proc {
            pid,
            start_time: stat.start_time,
        })
    }

    /// The state letter while this very process still runs; `None` once it is gone, a zombie
    /// (it runs no code; PID 1 here does not reap orphans) or its pid belongs to another.
    pub(crate) fn live_state(&self) -> Option<char> {
        let stat = stat(self.pid)?;
        (stat.start_time == self.start_time && !matches!(stat.state, 'Z' | 'X'))
            .then_some(stat.state)
    }

    /// SIGKILLs the process if it is still this one and alive; returns whether a signal went.
    pub(crate) fn kill(&self) -> bool {
        if self.live_state().is_none() {
            return false;
        }
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return false;
        };
        // SAFETY: kill(2) reads no memory of ours; the pid was just checked to be this process.
        unsafe { libc::kill(pid, libc::SIGKILL) == 0 }
    }
}

/// Every live process whose process group is `pgid`.
pub(crate) fn live_group_members(pgid: u32) -> Vec<Proc> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = stat(pid)?;
            (stat.pgrp == pgid && !matches!(stat.state, 'Z' | 'X')).then_some(Proc {
                pid,
                start_time: stat.start_time,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_follow_the_last_parenthesis() {
        let line = "42 (a) b) S 1 42 7 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                pgrp: 42,
                start_time: 98765
            })
        );
        assert_eq!(parse_stat("42 (x) Z"), None);
    }

    #[test]
    fn our_own_process_is_alive_and_identified() {
        let me = Proc::identify(std::process::id()).expect("this process exists");
        assert!(me.live_state().is_some());
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
}
