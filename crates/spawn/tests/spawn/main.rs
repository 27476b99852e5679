//! Integration tests of conductor-spawn against real processes (`/bin/sh` scripts, `sleep`).
//! One test binary, one module per SPEC topic, so the crate links its tests once.
//! Linux only: reclaim, port lookup and the parent-death signal rely on `/proc` and `prctl`.
#![cfg(target_os = "linux")]

mod environment;
mod lifecycle_shutdown;
mod startup_orphans_and_ports;
mod support;
mod tree;
