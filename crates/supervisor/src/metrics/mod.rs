//! Resource metrics (issue 14): every `metrics_interval` the sampler ([`sampler`]) measures
//! each running service's whole process tree (its group and the marked descendants that left
//! it) and conductor itself, off the runtime's workers; the [`MetricsStore`] keeps ten minutes
//! of samples per service for `metrics:get`; each pass publishes `app:metrics`, updates the
//! status snapshot's `cpuPercent`/`memoryBytes`/`processes`, and asks an owner task to
//! restart a service whose tree stayed over its memory limit for two samples in a row.

mod aggregate;
pub(crate) mod sampler;

use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, SystemTime},
};

use conductor_protocol::{MetricsGetResponse, MetricsSample, ServiceMetrics};

use crate::sync::LockExt;

/// How much history each series keeps, whatever its interval.
pub(crate) const HISTORY: Duration = Duration::from_secs(600);

/// One tree's samples, oldest first, bounded to [`HISTORY`].
struct Series {
    name: String,
    interval: Duration,
    capacity: usize,
    samples: VecDeque<(SystemTime, MetricsSample)>,
}

impl Series {
    fn new(name: String, interval: Duration) -> Series {
        // A few more than ten minutes' worth, so that a full ten minutes always fits.
        let capacity = if interval.is_zero() {
            0
        } else {
            (HISTORY.as_millis() / interval.as_millis().max(1)) as usize + 2
        };
        Series {
            name,
            interval,
            capacity,
            samples: VecDeque::new(),
        }
    }

    fn push(&mut self, at: SystemTime, sample: MetricsSample) {
        if self.capacity == 0 {
            return;
        }
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back((at, sample));
    }

    fn since(&self, cutoff: Option<SystemTime>) -> Vec<MetricsSample> {
        self.samples
            .iter()
            .filter(|(at, _)| cutoff.is_none_or(|cutoff| *at >= cutoff))
            .map(|(_, sample)| sample.clone())
            .collect()
    }
}

/// The fleet's metrics history: one series per service (registry order) and conductor's.
pub(crate) struct MetricsStore {
    services: Mutex<Vec<Series>>,
    conductor: Mutex<Series>,
}

impl MetricsStore {
    /// `services` are the registry's names and intervals, one per slot. conductor's own series
    /// keeps ten minutes at the shortest interval a registry may have.
    pub(crate) fn new(services: &[(String, Duration)]) -> MetricsStore {
        MetricsStore {
            services: Mutex::new(
                services
                    .iter()
                    .map(|(name, interval)| Series::new(name.clone(), *interval))
                    .collect(),
            ),
            conductor: Mutex::new(Series::new(
                "conductor".to_owned(),
                conductor_registry::MIN_METRICS_INTERVAL,
            )),
        }
    }

    /// The series of a service a reload added, in the next slot.
    pub(crate) fn add_series(&self, name: String, interval: Duration) {
        self.services
            .lock_recovered()
            .push(Series::new(name, interval));
    }

    /// A reload changed a service's interval: its history is kept at the new length.
    pub(crate) fn set_interval(&self, slot: usize, interval: Duration) {
        let mut services = self.services.lock_recovered();
        let series = &mut services[slot];
        if series.interval != interval {
            let mut resized = Series::new(series.name.clone(), interval);
            for (at, sample) in series.samples.drain(..) {
                resized.push(at, sample);
            }
            *series = resized;
        }
    }

    pub(crate) fn push_service(&self, index: usize, at: SystemTime, sample: MetricsSample) {
        self.services.lock_recovered()[index].push(at, sample);
    }

    pub(crate) fn push_conductor(&self, at: SystemTime, sample: MetricsSample) {
        self.conductor.lock_recovered().push(at, sample);
    }

    /// `metrics:get`: the history of the services in `slots`, in that order, each cut to the
    /// last `seconds` if given.
    pub(crate) fn query(&self, slots: &[usize], seconds: Option<u64>) -> MetricsGetResponse {
        let cutoff = seconds.map(|seconds| {
            SystemTime::now()
                .checked_sub(Duration::from_secs(seconds))
                .unwrap_or(SystemTime::UNIX_EPOCH)
        });
        let services = self.services.lock_recovered();
        let picked = slots
            .iter()
            .filter_map(|&slot| services.get(slot))
            .map(|series| ServiceMetrics {
                service_name: series.name.clone(),
                interval_ms: u64::try_from(series.interval.as_millis()).unwrap_or(u64::MAX),
                samples: series.since(cutoff),
            })
            .collect();
        MetricsGetResponse {
            services: picked,
            conductor: self.conductor.lock_recovered().since(cutoff),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conductor_protocol::MemoryKind;

    fn sample(n: u64) -> MetricsSample {
        MetricsSample {
            timestamp: n.to_string(),
            cpu_percent: 0.0,
            memory_bytes: n,
            memory_kind: MemoryKind::Pss,
            processes: 1,
            threads: 1,
            open_files: 3,
        }
    }

    #[test]
    fn a_series_keeps_ten_minutes_and_drops_the_oldest() {
        let store = MetricsStore::new(&[("api".into(), Duration::from_secs(2))]);
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for n in 0..400 {
            store.push_service(0, start + Duration::from_secs(2 * n), sample(n));
        }
        let history = store.query(&[0], None).services.remove(0);
        assert_eq!(history.interval_ms, 2000);
        assert_eq!(history.samples.len(), 302);
        assert_eq!(history.samples.first().unwrap().memory_bytes, 400 - 302);
        assert_eq!(history.samples.last().unwrap().memory_bytes, 399);
    }

    #[test]
    fn seconds_cut_the_history_and_off_keeps_nothing() {
        let store = MetricsStore::new(&[
            ("api".into(), Duration::from_secs(1)),
            ("off".into(), Duration::ZERO),
        ]);
        let now = SystemTime::now();
        for n in 0..30 {
            store.push_service(0, now - Duration::from_secs(29 - n), sample(n));
            store.push_service(1, now, sample(n));
        }
        let recent = store.query(&[1, 0], Some(10));
        assert_eq!(recent.services.len(), 2);
        assert!((10..=11).contains(&recent.services[1].samples.len()));
        assert!(recent.services[0].samples.is_empty());
        assert!(recent.conductor.is_empty());
    }
}
