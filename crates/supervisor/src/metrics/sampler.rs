//! The sampling loop: one pass over the fleet's processes per tick (the shortest
//! `metrics_interval`), each service sampled when its own interval is due. `/proc` is read on
//! the blocking pool; the pass itself only sums numbers and takes each lock briefly.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use conductor_protocol::{AppMetrics, Event, ServiceSample};
use conductor_spawn::{MarkerCache, ProcessUsage};
use tokio::sync::mpsc;

use super::{
    MetricsStore,
    aggregate::{Ticks, TreeUsage},
};
use crate::{
    fleet::{Shared, Usage, timestamp},
    service::Command,
    sync::LockExt,
};

/// A tree over its memory limit this many samples in a row is restarted.
const SAMPLES_OVER_LIMIT: u32 = 2;

/// One service as the sampler sees it.
pub(crate) struct SampledService {
    pub(crate) name: String,
    /// Its slot: its status cell and metrics series.
    pub(crate) slot: usize,
    pub(crate) interval: Duration,
    pub(crate) memory_limit: Option<u64>,
    /// Its owner task's queue (replaced when a panicked task is relaunched).
    pub(crate) commands: Arc<Mutex<mpsc::Sender<Command>>>,
}

pub(crate) struct Sampler {
    pub(crate) store: Arc<MetricsStore>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) services: Vec<SampledService>,
    /// `CONDUCTOR_INSTANCE=<run id>/`: what every process of this fleet's trees carries.
    pub(crate) marker_prefix: String,
    /// conductor's start time in clock ticks since boot: nothing older is one of ours.
    pub(crate) since: u64,
}

/// The tick: the shortest interval of any service; `None` if every service's sampling is off.
pub(crate) fn tick(intervals: impl IntoIterator<Item = Duration>) -> Option<Duration> {
    intervals
        .into_iter()
        .filter(|interval| !interval.is_zero())
        .min()
}

struct ServiceState {
    ticks: Ticks,
    last_sample: Option<Instant>,
    over_limit: u32,
}

impl Sampler {
    /// Runs until the task is aborted (shutdown). Returns at once when nothing is sampled.
    pub(crate) async fn run(self) {
        let Some(tick) = tick(self.services.iter().map(|service| service.interval)) else {
            return;
        };
        let ticks_per_second = conductor_spawn::clock_ticks_per_second();
        let mut timer = tokio::time::interval(tick);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cache = Some(MarkerCache::default());
        let mut states: Vec<ServiceState> = self
            .services
            .iter()
            .map(|_| ServiceState {
                ticks: Ticks::default(),
                last_sample: None,
                over_limit: 0,
            })
            .collect();
        let mut own_ticks = Ticks::default();
        let mut last_pass: Option<Instant> = None;
        loop {
            timer.tick().await;
            let prefix = self.marker_prefix.clone();
            let since = self.since;
            let mut taken = cache.take().unwrap_or_default();
            let Ok((returned, processes, own)) = tokio::task::spawn_blocking(move || {
                let processes =
                    conductor_spawn::sample_marked(prefix.as_bytes(), since, &mut taken);
                (taken, processes, conductor_spawn::sample_self())
            })
            .await
            else {
                return;
            };
            cache = Some(returned);
            let now = Instant::now();
            let wall = SystemTime::now();
            let at = timestamp(wall);
            let pass_elapsed = last_pass.map_or(tick, |last| now - last);
            last_pass = Some(now);

            let trees = self.attribute(&processes);
            let pids = self.shared.pids();
            let mut sampled = Vec::new();
            let mut total = TreeUsage {
                pss_complete: true,
                ..TreeUsage::default()
            };
            let mut total_cpu = 0.0;
            for (index, service) in self.services.iter().enumerate() {
                let state = &mut states[index];
                let (Some(pid), false) = (pids[service.slot], service.interval.is_zero()) else {
                    state.over_limit = 0;
                    continue;
                };
                // Half a tick of slack: timer jitter must not skip a due sample.
                let due = state
                    .last_sample
                    .is_none_or(|last| now - last + tick / 2 >= service.interval);
                if !due {
                    continue;
                }
                let elapsed = state.last_sample.map_or(pass_elapsed, |last| now - last);
                let usage = TreeUsage::of(trees[index].iter().copied(), &state.ticks);
                state.ticks.remember(trees[index].iter().copied());
                state.last_sample = Some(now);
                let sample = usage.sample(at.clone(), elapsed.as_secs_f64(), ticks_per_second);
                self.shared.note_usage(
                    service.slot,
                    pid,
                    Usage {
                        cpu_percent: sample.cpu_percent,
                        memory_bytes: sample.memory_bytes,
                        processes: sample.processes,
                    },
                );
                self.store.push_service(service.slot, wall, sample.clone());
                self.check_memory(service, state, usage.memory_bytes);
                total = total.plus(usage);
                total_cpu += sample.cpu_percent;
                sampled.push(ServiceSample {
                    service_name: service.name.clone(),
                    sample,
                });
            }
            let own_usage = TreeUsage::of(own.iter(), &own_ticks);
            own_ticks.remember(own.iter());
            let conductor =
                own_usage.sample(at.clone(), pass_elapsed.as_secs_f64(), ticks_per_second);
            self.store.push_conductor(wall, conductor.clone());
            let mut total = total.plus(own_usage).sample(
                at.clone(),
                pass_elapsed.as_secs_f64(),
                ticks_per_second,
            );
            // Each part's CPU is over its own interval; their sum is the app's.
            total.cpu_percent = ((total_cpu + conductor.cpu_percent) * 10.0).round() / 10.0;
            self.shared.bus.publish(Event::AppMetrics(AppMetrics {
                timestamp: at,
                services: sampled,
                conductor,
                total,
            }));
        }
    }

    /// The processes of each service's tree, by marker value, or by process group for one
    /// whose environment no longer carries the marker.
    fn attribute<'a>(&self, processes: &'a [ProcessUsage]) -> Vec<Vec<&'a ProcessUsage>> {
        let index: HashMap<&str, usize> = self
            .services
            .iter()
            .enumerate()
            .map(|(index, service)| (service.name.as_str(), index))
            .collect();
        let groups: HashMap<u32, usize> = self
            .shared
            .watch_run_state()
            .borrow()
            .groups
            .iter()
            .filter_map(|(name, group)| Some((group.pgid, *index.get(name.as_str())?)))
            .collect();
        let mut trees = vec![Vec::new(); self.services.len()];
        for process in processes {
            let owner = process
                .marker
                .as_deref()
                .and_then(|name| index.get(name).copied())
                .or_else(|| groups.get(&process.pgid).copied());
            if let Some(owner) = owner {
                trees[owner].push(process);
            }
        }
        trees
    }

    fn check_memory(&self, service: &SampledService, state: &mut ServiceState, measured: u64) {
        let Some(limit) = service.memory_limit else {
            return;
        };
        if measured <= limit {
            state.over_limit = 0;
            return;
        }
        state.over_limit += 1;
        if state.over_limit >= SAMPLES_OVER_LIMIT {
            state.over_limit = 0;
            let commands = service.commands.lock_recovered().clone();
            // The queue is full only when the task is swamped; the next sample asks again.
            let _ = commands.try_send(Command::MemoryExceeded { measured, limit });
        }
    }
}
