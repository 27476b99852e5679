//! The service manager: turns a [`Registry`] into supervised processes and exposes it all
//! through one embeddable handle, [`Conductor`], whose async methods mirror the IPC channels
//! and whose [`Conductor::subscribe`] streams the protocol's events.
//! One owner task per service holds its state (`machine.rs` is the pure lifecycle); status reads
//! go to a shared snapshot and never wait on a service. No global state: two handles with
//! different data dirs work side by side in one process.
//! It does not parse command lines, hold the instance lock or serve HTTP: that is the binary's
//! and the `ipc` crate's job.
#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

mod conductor;
mod events;
mod failure;
mod fleet;
mod machine;
mod metrics;
mod service;
mod sync;

pub use crate::{
    conductor::{
        Conductor, DatabaseError, MARKER_VARIABLE, Paths, RegistrySource, ReloadError,
        ServiceOutcome, Settings, SetupError, ShutdownReport, StartOutcome, StartReport,
        StartupError, StoppedService, Window, reclaim_orphans,
    },
    events::{Sequenced, Subscription},
    failure::{ActionError, Failure, UnknownService},
    fleet::{RecordedGroup, RunState},
};
pub use conductor_registry::Registry;
