//! Turns one pass over the fleet's processes into one sample per service tree: CPU from the
//! ticks each process used since the previous pass, memory as PSS where every process's is
//! readable (else RSS), and the counts. Pure: no `/proc`, no clock.

use std::collections::HashMap;

use conductor_protocol::{MemoryKind, MetricsSample};
use conductor_spawn::ProcessUsage;

/// CPU ticks each process (pid, start time) had used at the previous pass.
#[derive(Debug, Default)]
pub(super) struct Ticks {
    previous: HashMap<(u32, u64), u64>,
}

impl Ticks {
    /// The ticks `process` used since the previous pass. A process first seen now counts
    /// all it used: it started during the interval (or is conductor itself at the first pass,
    /// which the caller handles by not reporting a first sample's CPU).
    fn delta(&self, process: &ProcessUsage) -> u64 {
        let key = (process.pid, process.start_time);
        let before = self.previous.get(&key).copied().unwrap_or(0);
        process.cpu_ticks.saturating_sub(before)
    }

    /// Remembers this pass's ticks for the next, forgetting processes that are gone.
    pub(super) fn remember<'a>(&mut self, processes: impl Iterator<Item = &'a ProcessUsage>) {
        self.previous = processes
            .map(|process| ((process.pid, process.start_time), process.cpu_ticks))
            .collect();
    }
}

/// What a tree (a set of processes) uses, before it gets a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct TreeUsage {
    pub(super) cpu_ticks: u64,
    pub(super) memory_bytes: u64,
    pub(super) pss_complete: bool,
    pub(super) processes: u32,
    pub(super) threads: u32,
    pub(super) open_files: u32,
}

impl TreeUsage {
    pub(super) fn of<'a>(
        processes: impl IntoIterator<Item = &'a ProcessUsage>,
        ticks: &Ticks,
    ) -> TreeUsage {
        let mut usage = TreeUsage {
            pss_complete: true,
            ..TreeUsage::default()
        };
        let mut pss = 0_u64;
        let mut rss = 0_u64;
        for process in processes {
            usage.cpu_ticks += ticks.delta(process);
            usage.processes += 1;
            usage.threads += process.threads;
            usage.open_files += process.open_files;
            rss += process.rss_bytes;
            match process.pss_bytes {
                Some(bytes) => pss += bytes,
                None => usage.pss_complete = false,
            }
        }
        usage.memory_bytes = if usage.pss_complete { pss } else { rss };
        usage
    }

    /// `self` and `other` together (the app's total).
    pub(super) fn plus(self, other: TreeUsage) -> TreeUsage {
        TreeUsage {
            cpu_ticks: self.cpu_ticks + other.cpu_ticks,
            memory_bytes: self.memory_bytes + other.memory_bytes,
            pss_complete: self.pss_complete && other.pss_complete,
            processes: self.processes + other.processes,
            threads: self.threads + other.threads,
            open_files: self.open_files + other.open_files,
        }
    }

    /// The wire sample: CPU as a percentage of one core over `elapsed_secs`, to 0.1.
    pub(super) fn sample(
        self,
        timestamp: String,
        elapsed_secs: f64,
        ticks_per_second: u64,
    ) -> MetricsSample {
        let cpu_seconds = self.cpu_ticks as f64 / ticks_per_second.max(1) as f64;
        let percent = if elapsed_secs > 0.0 {
            cpu_seconds / elapsed_secs * 100.0
        } else {
            0.0
        };
        MetricsSample {
            timestamp,
            cpu_percent: (percent * 10.0).round() / 10.0,
            memory_bytes: self.memory_bytes,
            memory_kind: if self.pss_complete {
                MemoryKind::Pss
            } else {
                MemoryKind::Rss
            },
            processes: self.processes,
            threads: self.threads,
            open_files: self.open_files,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, cpu_ticks: u64, pss: Option<u64>) -> ProcessUsage {
        ProcessUsage {
            pid,
            pgid: pid,
            start_time: 1000 + u64::from(pid),
            cpu_ticks,
            rss_bytes: 10 << 20,
            pss_bytes: pss,
            threads: 2,
            open_files: 5,
            marker: Some("api".into()),
        }
    }

    #[test]
    fn cpu_counts_the_ticks_since_the_previous_pass() {
        let mut ticks = Ticks::default();
        let first = [process(1, 50, Some(4 << 20)), process(2, 10, Some(6 << 20))];
        ticks.remember(first.iter());
        let second = [
            process(1, 150, Some(4 << 20)),
            process(2, 10, Some(6 << 20)),
        ];
        let usage = TreeUsage::of(&second, &ticks);
        assert_eq!(usage.cpu_ticks, 100);
        // 100 ticks at 100 Hz over 2 s: one second of CPU in two, 50 % of one core.
        let sample = usage.sample("t".into(), 2.0, 100);
        assert_eq!(sample.cpu_percent, 50.0);
        assert_eq!(sample.memory_bytes, 10 << 20);
        assert_eq!(sample.memory_kind, MemoryKind::Pss);
        assert_eq!(
            (sample.processes, sample.threads, sample.open_files),
            (2, 4, 10)
        );
    }

    #[test]
    fn one_unreadable_pss_makes_the_tree_rss() {
        let ticks = Ticks::default();
        let usage = TreeUsage::of(&[process(1, 0, Some(1 << 20)), process(2, 0, None)], &ticks);
        assert_eq!(usage.memory_bytes, 20 << 20);
        assert!(!usage.pss_complete);
        assert_eq!(
            usage.sample("t".into(), 1.0, 100).memory_kind,
            MemoryKind::Rss
        );
    }

    #[test]
    fn a_reused_pid_is_a_new_process() {
        let mut ticks = Ticks::default();
        ticks.remember([process(1, 500, None)].iter());
        let mut reused = process(1, 20, None);
        reused.start_time += 1;
        assert_eq!(TreeUsage::of(&[reused], &ticks).cpu_ticks, 20);
    }
}
