//! The wire contract between conductor and its UI: every IPC request, response and event as a
//! serde type, and the channel and event names.
//! Field names are the SPEC's camelCase ones; a renamed field fails the snapshot tests.
//! This crate does no I/O and has no async runtime: it is types only (and `error_chain`, the
//! one way an error becomes wire text).
#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

mod channel;
mod error_text;
mod event;
mod messages;
mod metrics;
mod state;
#[cfg(feature = "typescript")]
pub mod typescript;

pub use crate::{
    channel::{Channel, UnknownChannel},
    error_text::error_chain,
    event::{Event, EventName, SkippedLines},
    messages::{
        AppHealth, AppHealthStatus, DEFAULT_LOG_LINES, DatabaseInitResponse, DatabaseStatus,
        ErrorBody, GetPathRequest, GetPathResponse, IpcInfo, LogEntry, LogLevel, LogsGetRequest,
        LogsGetResponse, MAX_BODY_BYTES, PathName, ReloadRequest, ReloadResponse, ReloadSummary,
        ServiceActionResponse, ServiceRequest, SuccessResponse,
    },
    metrics::{
        AppMetrics, MemoryKind, MetricsGetRequest, MetricsGetResponse, MetricsSample,
        ServiceMetrics, ServiceSample,
    },
    state::{ServiceState, ServiceStatus},
};
