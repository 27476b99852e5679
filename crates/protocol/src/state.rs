//! A service's lifecycle state and the status record the UI shows for it.

use serde::{Deserialize, Serialize};

/// The seven lifecycle states, serialised by their lowercase wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    /// Not running and not going to run until asked.
    Stopped,
    /// Spawned (or about to be) and waiting for its readiness probe.
    Starting,
    /// Its readiness probe passed and its liveness probes keep passing.
    Running,
    /// Alive but failing its health probe; a restart follows at the threshold.
    Unhealthy,
    /// Asked to stop; its process group is being terminated.
    Stopping,
    /// Gave up after its restart budget; stays so until a manual start or restart.
    Failed,
    /// Disabled in the registry (or skipped by feature selection); never started.
    Disabled,
}

impl ServiceState {
    /// Every state, in lifecycle order.
    pub const ALL: [ServiceState; 7] = [
        ServiceState::Stopped,
        ServiceState::Starting,
        ServiceState::Running,
        ServiceState::Unhealthy,
        ServiceState::Stopping,
        ServiceState::Failed,
        ServiceState::Disabled,
    ];

    /// The wire name (`running`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceState::Stopped => "stopped",
            ServiceState::Starting => "starting",
            ServiceState::Running => "running",
            ServiceState::Unhealthy => "unhealthy",
            ServiceState::Stopping => "stopping",
            ServiceState::Failed => "failed",
            ServiceState::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `services:get-all` reports for one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// The service's name (its table name under `[services]`).
    pub name: String,
    /// The port it serves on.
    pub port: u16,
    /// Its lifecycle state.
    pub status: ServiceState,
    /// The process id of its process-group leader while one exists.
    pub pid: Option<u32>,
    /// Whole seconds since it last became `running`; 0 when not running.
    pub uptime: u64,
    /// When its last health probe finished (ISO-8601, UTC), if any.
    pub last_health_check: Option<String>,
    /// Restarts since it last stayed healthy for its `reset_after` period.
    pub restarts: u32,
    /// Whether the app cannot run without it.
    pub critical: bool,
    /// The last error seen for it, if any.
    pub last_error: Option<String>,
    /// CPU of its process tree over the last metrics interval, in percent of one core; null
    /// while it is not running or before its first sample (and with sampling off).
    pub cpu_percent: Option<f64>,
    /// Memory of its process tree at the last sample (PSS where readable, else RSS; see
    /// `metrics:get`); null like `cpuPercent`.
    pub memory_bytes: Option<u64>,
    /// Processes in its tree at the last sample; null like `cpuPercent`.
    pub processes: Option<u32>,
}
