//! Events pushed to the UI over `GET /events` (Server-Sent Events).
//! The SSE `event:` field is [`Event::name`]; the `data:` field is the JSON of the payload alone.

use serde::{Deserialize, Serialize};

use crate::{AppHealth, AppMetrics, LogEntry, ReloadSummary, ServiceStatus};

/// One event. Serialised with its wire name as tag so that a log or a test can hold any event;
/// on the SSE stream only the payload goes into `data:` (see [`Event::payload_json`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(tag = "event", content = "data")]
pub enum Event {
    /// A service changed state.
    #[serde(rename = "service:status-changed", rename_all = "camelCase")]
    ServiceStatusChanged {
        /// The service.
        service_name: String,
        /// Its status after the change.
        status: ServiceStatus,
    },
    /// A service crashed, failed a probe or failed to start.
    #[serde(rename = "service:error", rename_all = "camelCase")]
    ServiceError {
        /// The service.
        service_name: String,
        /// What happened.
        error: String,
        /// When (ISO-8601, UTC).
        timestamp: String,
    },
    /// Database initialisation finished.
    #[serde(rename = "database:initialized", rename_all = "camelCase")]
    DatabaseInitialized {
        /// Whether every pending migration ran.
        success: bool,
        /// How many ran.
        migrations_run: u32,
    },
    /// Our extension: the fleet's overall health changed.
    #[serde(rename = "app:health-changed")]
    AppHealthChanged(AppHealth),
    /// Our extension: one sample of every running service per metrics interval.
    #[serde(rename = "app:metrics")]
    AppMetrics(AppMetrics),
    /// Our extension: a reload was applied.
    #[serde(rename = "app:reloaded")]
    AppReloaded(ReloadSummary),
    /// Our extension: a reload was asked for (`up --watch` saw the file change, SIGHUP) and
    /// refused; nothing changed.
    #[serde(rename = "app:reload-failed", rename_all = "camelCase")]
    AppReloadFailed {
        /// Every problem, as `app:reload` would answer them.
        errors: Vec<String>,
    },
    /// Our extension: log lines captured since the previous `logs:entry`, at most one event per
    /// 200 ms. Rate-bounded, so a flooding service cannot starve a page or conductor: past 100
    /// lines of one service (or 500 in all) in one event the rest are counted in `skipped`, and
    /// the whole of them is in the service's log file. Live only: a reconnecting client is not
    /// replayed these (it reads `logs:get` instead).
    #[serde(rename = "logs:entry", rename_all = "camelCase")]
    LogsEntry {
        /// The lines, oldest first (services interleaved as they were captured).
        entries: Vec<LogEntry>,
        /// Lines left out of `entries`, per service.
        skipped: Vec<SkippedLines>,
    },
    /// The client reconnected with a `Last-Event-ID` older than the replay buffer holds:
    /// it missed events and should fetch `services:get-all` again.
    #[serde(rename = "resync", rename_all = "camelCase")]
    Resync {
        /// The oldest event id still buffered.
        oldest_available: u64,
    },
    /// The client fell too far behind the stream and is being disconnected.
    #[serde(rename = "lagged", rename_all = "camelCase")]
    Lagged {
        /// How many events it missed.
        missed: u64,
    },
}

/// Log lines a `logs:entry` event left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct SkippedLines {
    /// The service whose lines they were; `None` when the stream fell behind and the lines'
    /// services are not known.
    pub service_name: Option<String>,
    /// How many; without a service, at least this many (reads of one line or more each).
    #[cfg_attr(feature = "typescript", ts(type = "number"))]
    pub lines: u64,
    /// Where they all are: the service's log file (or the log directory, without a service).
    pub file: String,
}

/// The wire names of the events, as used in the SSE `event:` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventName {
    /// `service:status-changed`
    ServiceStatusChanged,
    /// `service:error`
    ServiceError,
    /// `database:initialized`
    DatabaseInitialized,
    /// `app:health-changed`
    AppHealthChanged,
    /// `app:metrics`
    AppMetrics,
    /// `app:reloaded`
    AppReloaded,
    /// `app:reload-failed`
    AppReloadFailed,
    /// `logs:entry`
    LogsEntry,
    /// `resync`
    Resync,
    /// `lagged`
    Lagged,
}

impl EventName {
    /// Every event name, in the order of [`Event`]'s variants.
    pub const ALL: [EventName; 10] = [
        EventName::ServiceStatusChanged,
        EventName::ServiceError,
        EventName::DatabaseInitialized,
        EventName::AppHealthChanged,
        EventName::AppMetrics,
        EventName::AppReloaded,
        EventName::AppReloadFailed,
        EventName::LogsEntry,
        EventName::Resync,
        EventName::Lagged,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventName::ServiceStatusChanged => "service:status-changed",
            EventName::ServiceError => "service:error",
            EventName::DatabaseInitialized => "database:initialized",
            EventName::AppHealthChanged => "app:health-changed",
            EventName::AppMetrics => "app:metrics",
            EventName::AppReloaded => "app:reloaded",
            EventName::AppReloadFailed => "app:reload-failed",
            EventName::LogsEntry => "logs:entry",
            EventName::Resync => "resync",
            EventName::Lagged => "lagged",
        }
    }
}

impl Event {
    /// The event's wire name.
    pub fn name(&self) -> EventName {
        match self {
            Event::ServiceStatusChanged { .. } => EventName::ServiceStatusChanged,
            Event::ServiceError { .. } => EventName::ServiceError,
            Event::DatabaseInitialized { .. } => EventName::DatabaseInitialized,
            Event::AppHealthChanged(_) => EventName::AppHealthChanged,
            Event::AppMetrics(_) => EventName::AppMetrics,
            Event::AppReloaded(_) => EventName::AppReloaded,
            Event::AppReloadFailed { .. } => EventName::AppReloadFailed,
            Event::LogsEntry { .. } => EventName::LogsEntry,
            Event::Resync { .. } => EventName::Resync,
            Event::Lagged { .. } => EventName::Lagged,
        }
    }

    /// Whether the event goes to live subscribers only, never into the replay buffer and with
    /// no SSE `id:` (so a client's `Last-Event-ID` stays at the last event it can be replayed
    /// from): `logs:entry`, whose lines a reconnecting client reads with `logs:get`.
    pub fn is_live_only(&self) -> bool {
        matches!(self, Event::LogsEntry { .. })
    }

    /// The JSON of the payload alone: what goes into the SSE `data:` field.
    pub fn payload_json(&self) -> String {
        let tagged = serde_json::to_value(self).expect("an event always serialises to JSON");
        let payload = tagged
            .get("data")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        payload.to_string()
    }

    /// Rebuilds an event from its SSE `event:` name and `data:` payload.
    pub fn from_wire(name: &str, payload: &str) -> Result<Event, serde_json::Error> {
        let data: serde_json::Value = serde_json::from_str(payload)?;
        serde_json::from_value(serde_json::json!({ "event": name, "data": data }))
    }
}
