//! Starts one child in its own process group with the right environment and piped stdio,
//! stops it (SIGTERM the group, wait, SIGKILL the group, reap) and never leaks it.
//! Entry points: [`spawn`] returns a [`ProcessGroup`], whose [`ProcessGroup::stop`] and `Drop`
//! end the whole group; [`reclaim`] ends groups a previous run left behind; [`port_holder`] and
//! [`port_is_free`] answer "who holds this TCP port".
//! A child spawned with a [`TreeMarker`] is stopped with its whole tree, including descendants
//! that left its process group ([`find_marked`]); [`become_subreaper`] and [`reap_adopted`]
//! let the calling process adopt and reap such orphans; [`sample_marked`] measures what every
//! marked process uses (CPU, memory, threads, open files).
//!
//! This crate takes plain inputs (a program, arguments, a directory, variables): it knows
//! nothing about registries, services, health or restart policy, and it never reads a child's
//! output (the caller takes the pipes).
//!
//! Linux is the supported platform; other unixes get the same API with weaker guarantees (no
//! parent-death signal, no `/proc`), Windows gets stubs that return "unsupported" errors.
#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

mod error;
mod group;
mod port;
#[cfg(target_os = "linux")]
mod procfs;
mod reclaim;
#[cfg(unix)]
#[path = "unix.rs"]
mod sys;
#[cfg(windows)]
#[path = "windows.rs"]
mod sys;
mod tree;
mod usage;

pub use crate::{
    error::{SpawnError, SpawnErrorKind, StopError, StopErrorKind},
    group::{
        GroupRecord, ProcessGroup, ResourceLimits, SpawnSpec, StopOutcome, process_start_time,
        spawn,
    },
    port::{PortHolder, port_holder, port_is_free},
    reclaim::{ReclaimOutcome, Reclaimed, SkipReason, boot_id, reclaim},
    tree::{MarkedProcess, TreeMarker, become_subreaper, find_marked, kill_marked, reap_adopted},
    usage::{MarkerCache, ProcessUsage, clock_ticks_per_second, sample_marked, sample_self},
};
