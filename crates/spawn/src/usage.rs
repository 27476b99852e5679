//! What a fleet's processes use right now: CPU time, memory, threads and open files of every
//! process that carries a tree marker, read from `/proc` in one pass for the whole fleet.
//! The caller (the supervisor's sampler) attributes each process to a service by its marker
//! value, or by its process group for one that cleared its environment, and turns CPU ticks
//! into a percentage between two samples.
//!
//! Which processes are looked at: as a child subreaper, our own descendants (every service
//! tree and every orphan it left is one); otherwise every process of our user that started
//! after `since`. A marker is read once per process (pid and start time) and remembered.

use std::collections::HashMap;

/// One process of the fleet at the moment of a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessUsage {
    /// Its pid.
    pub pid: u32,
    /// Its process group.
    pub pgid: u32,
    /// When it started, in clock ticks since boot (with `pid`, who it is).
    pub start_time: u64,
    /// CPU time used since it started, user and kernel, in clock ticks
    /// ([`clock_ticks_per_second`]).
    pub cpu_ticks: u64,
    /// Resident memory in bytes.
    pub rss_bytes: u64,
    /// Proportional set size in bytes, where `/proc/<pid>/smaps_rollup` is readable.
    pub pss_bytes: Option<u64>,
    /// Its threads.
    pub threads: u32,
    /// Its open file descriptors (0 if they cannot be listed).
    pub open_files: u32,
    /// What follows the marker prefix in its environment (`<service>` for the prefix
    /// `CONDUCTOR_INSTANCE=<run id>/`); `None` if it has no such entry.
    pub marker: Option<String>,
}

/// Remembers each process's marker value between samples, so that a process's environment is
/// read once, not at every sample.
#[derive(Debug, Default)]
pub struct MarkerCache {
    known: HashMap<(u32, u64), Option<String>>,
    pss: HashMap<(u32, u64), PssMemo>,
}

/// The last PSS read of a process: `smaps_rollup` walks every page table entry, so it is read
/// again only when resident memory moved or the value grew old.
#[derive(Debug, Clone, Copy)]
struct PssMemo {
    pss: u64,
    rss: u64,
    at: std::time::Instant,
}

/// A PSS is read again after this long whatever the RSS does (sharing can change alone).
const PSS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10);

impl PssMemo {
    /// Whether `rss` is within 1/32 of the RSS this PSS was read at, and the read is recent.
    fn still_holds(&self, rss: u64) -> bool {
        rss.abs_diff(self.rss) <= self.rss / 32 && self.at.elapsed() < PSS_MAX_AGE
    }
}

/// The kernel's clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of
/// [`ProcessUsage::cpu_ticks`].
pub fn clock_ticks_per_second() -> u64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf reads a constant of the system; no memory is passed.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if ticks > 0 {
            return ticks as u64;
        }
    }
    100
}

/// Samples every process that carries `entry_prefix` in its environment (see the module
/// docs for which are looked at). Blocking: it reads `/proc`.
#[cfg(target_os = "linux")]
pub fn sample_marked(
    entry_prefix: &[u8],
    since: u64,
    cache: &mut MarkerCache,
) -> Vec<ProcessUsage> {
    use crate::procfs;
    let own = std::process::id();
    let candidates: Vec<procfs::ProcStat> = if crate::sys::is_subreaper() {
        procfs::descendants(&[own])
            .unwrap_or_default()
            .into_iter()
            .filter_map(procfs::read_stat)
            .collect()
    } else {
        let uid = procfs::owner_uid(own);
        procfs::all_processes()
            .unwrap_or_default()
            .into_iter()
            .filter(|stat| stat.pid != own && stat.start_time >= since)
            .filter(|stat| procfs::owner_uid(stat.pid) == uid)
            .collect()
    };
    let mut seen = HashMap::with_capacity(candidates.len());
    let mut pss = HashMap::with_capacity(cache.pss.len());
    let mut usage = Vec::new();
    for stat in candidates.into_iter().filter(procfs::ProcStat::is_live) {
        let key = (stat.pid, stat.start_time);
        let marker = match cache.known.get(&key) {
            Some(marker) => marker.clone(),
            None => match procfs::read_environ(stat.pid) {
                // Empty while it is in the middle of an exec: look again next time.
                Some(environ) if !environ.is_empty() => marker_value(&environ, entry_prefix),
                _ => continue,
            },
        };
        seen.insert(key, marker.clone());
        if marker.is_none() {
            continue;
        }
        let mut process = measure_cheap(&stat, marker);
        process.pss_bytes = match cache.pss.get(&key) {
            Some(memo) if memo.still_holds(process.rss_bytes) => Some(memo.pss),
            _ => procfs::pss_bytes(stat.pid),
        };
        if let Some(bytes) = process.pss_bytes {
            let memo = match cache.pss.get(&key) {
                Some(memo) if memo.pss == bytes && memo.still_holds(process.rss_bytes) => *memo,
                _ => PssMemo {
                    pss: bytes,
                    rss: process.rss_bytes,
                    at: std::time::Instant::now(),
                },
            };
            pss.insert(key, memo);
        }
        usage.push(process);
    }
    cache.known = seen;
    cache.pss = pss;
    usage
}

/// Without `/proc` there is nothing to sample.
#[cfg(not(target_os = "linux"))]
pub fn sample_marked(
    _entry_prefix: &[u8],
    _since: u64,
    _cache: &mut MarkerCache,
) -> Vec<ProcessUsage> {
    Vec::new()
}

/// Samples the calling process itself.
#[cfg(target_os = "linux")]
pub fn sample_self() -> Option<ProcessUsage> {
    let stat = crate::procfs::read_stat(std::process::id())?;
    let mut own = measure_cheap(&stat, None);
    own.pss_bytes = crate::procfs::pss_bytes(stat.pid);
    Some(own)
}

/// Without `/proc` there is nothing to sample.
#[cfg(not(target_os = "linux"))]
pub fn sample_self() -> Option<ProcessUsage> {
    None
}

/// Everything but PSS, which the callers read (or remember) themselves.
#[cfg(target_os = "linux")]
fn measure_cheap(stat: &crate::procfs::ProcStat, marker: Option<String>) -> ProcessUsage {
    use crate::procfs;
    ProcessUsage {
        pid: stat.pid,
        pgid: stat.pgrp,
        start_time: stat.start_time,
        cpu_ticks: stat.cpu_ticks,
        rss_bytes: stat.rss_pages.saturating_mul(page_size()),
        pss_bytes: None,
        threads: stat.threads,
        open_files: procfs::open_files(stat.pid).unwrap_or(0),
        marker,
    }
}

#[cfg(target_os = "linux")]
fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the system; no memory is passed.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

/// The rest of the first entry of a NUL-separated environment that starts with `prefix`.
fn marker_value(environ: &[u8], prefix: &[u8]) -> Option<String> {
    environ
        .split(|&byte| byte == 0)
        .find_map(|entry| entry.strip_prefix(prefix))
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_value_is_what_follows_the_prefix() {
        let environ = b"PATH=/bin\0CONDUCTOR_INSTANCE=run1/records\0";
        assert_eq!(
            marker_value(environ, b"CONDUCTOR_INSTANCE=run1/"),
            Some("records".to_owned())
        );
        assert_eq!(marker_value(environ, b"CONDUCTOR_INSTANCE=run2/"), None);
    }

    #[test]
    fn a_remembered_pss_holds_while_resident_memory_stays_put() {
        let memo = PssMemo {
            pss: 40 << 20,
            rss: 64 << 20,
            at: std::time::Instant::now(),
        };
        assert!(memo.still_holds(64 << 20));
        assert!(memo.still_holds((64 << 20) + (1 << 20)));
        assert!(!memo.still_holds(70 << 20), "RSS grew by more than 1/32");
        assert!(!memo.still_holds(60 << 20), "RSS shrank by more than 1/32");
        let old = PssMemo {
            at: std::time::Instant::now() - PSS_MAX_AGE,
            ..memo
        };
        assert!(!old.still_holds(64 << 20), "a PSS that old is read again");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn our_own_process_is_measured() {
        let me = sample_self().expect("our own /proc entry");
        assert_eq!(me.pid, std::process::id());
        assert!(
            me.rss_bytes > 0 && me.threads >= 1 && me.open_files >= 3,
            "{me:?}"
        );
        assert!(me.pss_bytes.is_some_and(|pss| pss > 0), "{me:?}");
    }
}
