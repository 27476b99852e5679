//! What the bench reads from Linux `/proc` beyond the harness's readers: a process's CPU
//! time as a duration, and the machine's description for the report.
//! Linux only, like the bench; it never writes anything there.

use std::{fs, time::Duration};

use conductor_test_support::process;

/// User plus system CPU time of the whole process (every thread, living or exited).
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    process::stat(pid).map(|stat| ticks_to_duration(stat.cpu_ticks))
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

fn ticks_to_duration(ticks: u64) -> Duration {
    let per_second = clock_ticks_per_second();
    Duration::from_secs(ticks / per_second)
        + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second)
}

/// The resolution of [`cpu_time`].
pub(crate) fn cpu_time_resolution() -> Duration {
    ticks_to_duration(1)
}

/// Cores, kernel, CPU model and memory, for the report.
pub(crate) fn machine() -> serde_json::Value {
    let cpu_model = fs::read_to_string("/proc/cpuinfo").ok().and_then(|info| {
        info.lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
    });
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|release| release.trim().to_owned());
    let memory = fs::read_to_string("/proc/meminfo").ok().and_then(|info| {
        info.lines()
            .find(|line| line.starts_with("MemTotal:"))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    serde_json::json!({
        "cores": std::thread::available_parallelism().map(usize::from).ok(),
        "kernel": kernel,
        "cpu_model": cpu_model,
        "memory_bytes": memory,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}
