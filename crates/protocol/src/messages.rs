//! Request and response bodies of the IPC channels, plus `ipc.json` and the error body.

use serde::{Deserialize, Serialize};

/// The largest request body the control API accepts (SPEC §5: 413 beyond it).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Lines `logs:get` returns when the request names no count.
pub const DEFAULT_LOG_LINES: usize = 100;

/// Request of `services:start`, `services:stop` and `services:restart`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceRequest {
    /// The service to act on.
    pub service_name: String,
}

/// Response of `services:start`, `services:stop` and `services:restart`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ServiceActionResponse {
    /// Whether the action reached its goal state.
    pub success: bool,
    /// Why it did not, when `success` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ServiceActionResponse {
    /// A successful response.
    pub fn ok() -> Self {
        Self {
            success: true,
            error: None,
        }
    }

    /// A failed response carrying its reason.
    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            success: false,
            error: Some(error.into()),
        }
    }
}

/// Response of `database:init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct DatabaseInitResponse {
    /// Whether every pending migration ran.
    pub success: bool,
    /// How many migrations ran in this call.
    pub migrations_run: u32,
    /// Why it failed, when `success` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Response of `database:status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    /// Whether the database exists and every known migration is applied.
    pub initialized: bool,
    /// The latest applied migration's version, `null` before the first.
    pub version: Option<u32>,
    /// The database file's absolute path.
    pub path: String,
}

/// Request of `logs:get`; an empty body means every service and [`DEFAULT_LOG_LINES`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogsGetRequest {
    /// Only this service's entries; every service's, merged by time, when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// How many of the newest entries to return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<usize>,
}

/// Response of `logs:get`: entries oldest first, newest last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct LogsGetResponse {
    /// The entries.
    pub logs: Vec<LogEntry>,
}

/// The severity of one log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Diagnostic detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that did not stop the service.
    Warn,
    /// A failure.
    Error,
}

impl LogLevel {
    /// The wire name (`info`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// One line of a service's output (or one line conductor wrote about the service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// When the line was captured (ISO-8601, UTC, milliseconds).
    pub timestamp: String,
    /// The service it belongs to.
    pub service: String,
    /// Its detected level.
    pub level: LogLevel,
    /// The line, without its line terminator.
    pub message: String,
}

/// Response of `logs:clear`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct SuccessResponse {
    /// Whether it worked.
    pub success: bool,
}

/// A directory `app:get-path` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub enum PathName {
    /// The per-app data directory (database, lock, ipc.json).
    UserData,
    /// Where service and conductor logs are written.
    Logs,
    /// A per-app temporary directory.
    Temp,
}

/// Request of `app:get-path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetPathRequest {
    /// Which directory.
    pub path_name: PathName,
}

/// Response of `app:get-path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct GetPathResponse {
    /// The directory's absolute path.
    pub path: String,
}

/// The fleet's overall health, as `app:health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum AppHealthStatus {
    /// Every enabled service is running.
    Healthy,
    /// Only non-critical services are not running.
    Degraded,
    /// A critical service is not running.
    Critical,
}

/// Response of `app:health` and payload of the `app:health-changed` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct AppHealth {
    /// The overall verdict.
    pub status: AppHealthStatus,
    /// The enabled services that are not running, in registry order.
    pub failing: Vec<String>,
}

/// The body of every error response of the control API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What was wrong and what to do about it.
    pub error: String,
}

/// The contents of `<userData>/ipc.json`: how a client reaches the running instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct IpcInfo {
    /// Base URL of the control API, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The bearer token every request must carry.
    pub token: String,
    /// The running conductor's process id.
    pub pid: u32,
}

/// Request of `app:reload`; an empty body reloads the file conductor was started with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReloadRequest {
    /// Another registry file to apply instead (its path on this machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
}

/// What a reload did: each service of the old and new registry, by name, in one list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ReloadSummary {
    /// Services the new registry adds (started once their dependencies run).
    pub added: Vec<String>,
    /// Services it removes (stopped, their trees gone, dropped from status).
    pub removed: Vec<String>,
    /// Services whose spec changed (restarted, or retuned without a restart).
    pub changed: Vec<String>,
    /// Services left alone: same process, no event.
    pub unchanged: Vec<String>,
}

/// Response of `app:reload`: `success` with what changed, or every error and nothing applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ReloadResponse {
    /// Whether the new registry was applied.
    pub success: bool,
    /// What it changed (empty lists when nothing was applied).
    #[serde(flatten)]
    pub summary: ReloadSummary,
    /// Why nothing was applied: each problem of the file with its position, or each change
    /// a running app cannot take.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}
