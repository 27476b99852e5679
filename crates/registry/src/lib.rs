//! Parses and validates the service registry (SPEC §2) and computes the start order.
//!
//! Entry points: [`Registry::load`] / [`Registry::parse`] for a `conductor.toml`, and
//! [`Registry::builtin`] for the reference app. Every problem in a file is reported at once,
//! each with its key path, line and column and a help line ([`LoadError`]).
//! No process or network I/O here: this crate reads one file.
//!
//! Choices made where the SPEC is silent:
//! - Sizes (`[logs] max_size`) are strings like `"10MB"`, `"512 KB"`, `"1GiB"` or an integer
//!   count of bytes; every unit is a 1024-multiple (`KB` = `KiB`), as in pm2 and logrotate.
//! - Durations are humantime strings (`"500ms"`, `"10s"`, `"1m 30s"`); a bare number is
//!   rejected. `interval`, `timeout` and `ready_timeout` must be greater than zero.
//! - Feature `"core"` is always enabled: the SPEC's own example enables only `["ocr"]` yet
//!   expects `records` (feature `"core"`) to start. `--features` replaces `[app] features`.
//! - `enabled = false` wins over features: such a service is [`Selection::Disabled`].
//! - Ports are unique across all services, including disabled and feature-skipped ones.
//! - A `command` containing a path separator is resolved against the registry's directory; a
//!   bare name is left for a `PATH` lookup. `cwd` and `[database]` paths are made absolute.
//! - Platform tables (`[services.X.platform.linux|macos|windows]`) replace `command`, `args`
//!   and `cwd`, and add to `env`; every platform's table is checked, only the current one applies.
//! - A health key that does not belong to the effective kind (`path` with `kind = "tcp"`) is an
//!   error, so a half-edited probe is noticed. `[app] name` is required.
//! - Service names are ASCII letters, digits, `-` and `_`: they end up in log file names.
//! - `[services.X.deploy] image` is read and checked (a reference docker could pull) but used
//!   only by `conductor export`; a reload that changes only it leaves the service unchanged.
//! - [`json_schema`] is generated from the key tables the parser checks files against.
//! - `[app] allowed_origins` entries are origins as browsers send them (`scheme://host[:port]`,
//!   lowercase, no path, no default port), compared byte for byte; `"null"` is refused.
#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

mod builtin;
mod diff;
mod error;
mod graph;
mod keys;
mod parse;
mod spec;
mod suggest;
mod summary;
mod units;
mod validate;

pub use crate::diff::RegistryDiff;
pub use crate::error::{LoadError, Problem, ProblemKind};
pub use crate::graph::StartPlan;
pub use crate::keys::json_schema;
pub use crate::parse::MIN_METRICS_INTERVAL;
pub use crate::spec::{
    AppSpec, DatabaseSpec, DeploySpec, HealthCheck, HealthSpec, Limits, LoadOptions, LogsSpec,
    Registry, RestartSpec, Selection, ServiceSpec, StartupMode, WindowSpec,
    image_reference_problem,
};
pub use crate::summary::Summary;
pub use crate::units::{UnitError, format_size, parse_duration, parse_size};

#[cfg(test)]
mod tests;
