//! Captures the stdout/stderr lines of services: frames them, detects their level, keeps a
//! bounded in-memory tail per service for `logs:get`, and writes `<dir>/<service>.log`, rotated
//! at a size limit into gzip-compressed `<service>.N.log.gz` files (1 is the newest).
//! Entry point: [`Logs`]; the pure pieces ([`LineFramer`], [`detect_level`]) are public too.
//!
//! Per service there are only tokio capture tasks and a small shared state (tail and write
//! queue); the disk is served by one writer thread and one compressor thread per [`Logs`],
//! however many services it captures.
//!
//! File line format, one line per captured line (or piece of an over-long line):
//!
//! ```text
//! <timestamp> <LEVEL> <message>      first (or only) piece of a line
//! <timestamp> <LEVEL>+ <message>     a continuation: the rest of an over-long line
//! ```
//!
//! `<timestamp>` is ISO-8601 UTC with milliseconds (`2024-05-01T10:00:00.123Z`) and `<LEVEL>`
//! one of `DEBUG`, `INFO`, `WARN`, `ERROR`.
//!
//! This crate takes plain inputs (a directory, a reader, a service name): it knows nothing about
//! registries, processes or HTTP, and does not write conductor's own log.
#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

mod compress;
mod error;
mod frame;
mod level;
mod logs;
#[cfg_attr(target_os = "linux", path = "platform/linux.rs")]
#[cfg_attr(not(target_os = "linux"), path = "platform/other.rs")]
mod platform;
mod rotating;
mod tail;
mod writer;

pub use crate::{
    error::{LogsError, LogsErrorKind},
    frame::{LineFramer, MAX_LINE_BYTES, Piece},
    level::detect_level,
    logs::{
        CaptureSummary, DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE, DEFAULT_TAIL, DEFAULT_TAIL_BYTES,
        LiveLines, LogConfig, LogProblem, LogStats, Logs, MAX_BACKLOG_BYTES,
        MAX_TOTAL_BACKLOG_BYTES, Stream, TAIL_ENTRY_OVERHEAD_BYTES,
    },
    rotating::RotatingFile,
};
pub use conductor_protocol::{LogEntry, LogLevel};
