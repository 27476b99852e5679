//! Resource metrics: what a service's whole process tree costs (CPU, memory, processes,
//! threads, open files), sampled every `metrics_interval`. `metrics:get` returns the history,
//! the `app:metrics` event one sample of every service per interval.

use serde::{Deserialize, Serialize};

/// How `memoryBytes` was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum MemoryKind {
    /// Proportional set size (`/proc/<pid>/smaps_rollup`): shared pages split among their
    /// users, so a tree's sum is what it really costs.
    Pss,
    /// Resident set size, where PSS could not be read: shared pages count fully.
    Rss,
}

/// One sample of a process tree (a service's, conductor's own, or the app's total).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct MetricsSample {
    /// When it was taken (ISO-8601, UTC, milliseconds).
    pub timestamp: String,
    /// CPU time used over the last interval, as a percentage of one core (can exceed 100).
    pub cpu_percent: f64,
    /// Memory of every process of the tree.
    pub memory_bytes: u64,
    /// How `memory_bytes` was measured (`rss` if any process's PSS could not be read).
    pub memory_kind: MemoryKind,
    /// Processes in the tree (the group and the marked descendants that left it).
    pub processes: u32,
    /// Threads of those processes.
    pub threads: u32,
    /// Open file descriptors of those processes.
    pub open_files: u32,
}

/// Request of `metrics:get`; an empty body means every service and the whole history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsGetRequest {
    /// Only this service's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Only the samples of the last this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
}

/// One service's history, oldest sample first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ServiceMetrics {
    /// The service.
    pub service_name: String,
    /// Its `metrics_interval` in milliseconds; 0 when sampling is off for it.
    pub interval_ms: u64,
    /// Its samples (while it ran), oldest first.
    pub samples: Vec<MetricsSample>,
}

/// Response of `metrics:get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct MetricsGetResponse {
    /// Each service asked for, in registry order.
    pub services: Vec<ServiceMetrics>,
    /// conductor's own process, oldest first.
    pub conductor: Vec<MetricsSample>,
}

/// One service's sample in an `app:metrics` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ServiceSample {
    /// The service.
    pub service_name: String,
    /// Its sample.
    pub sample: MetricsSample,
}

/// Payload of the `app:metrics` event: one sample of every running, sampled service, of
/// conductor itself, and the app's total (the services and conductor summed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct AppMetrics {
    /// When the samples were taken (ISO-8601, UTC, milliseconds).
    pub timestamp: String,
    /// The running services sampled at this tick, in registry order.
    pub services: Vec<ServiceSample>,
    /// conductor's own process.
    pub conductor: MetricsSample,
    /// Everything above summed (`memoryKind` is `rss` if any part is).
    pub total: MetricsSample,
}
