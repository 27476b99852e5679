//! The one test harness of this workspace, for the crates' tests, the binary's end-to-end
//! tests and xtask's gates and bench alike: a temp dir per test ([`TempDir`]), waits on
//! conditions with deadlines ([`wait_until`] and its fallible and async fronts), one reader of
//! `/proc/<pid>/stat` and processes pinned by start time ([`process`]), a guard that kills a
//! child's process group on drop ([`GroupGuard`]), free loopback ports that the OS does not
//! hand out by itself ([`free_ports`]), a blocking loopback HTTP/1.1 client ([`http`]),
//! conductor's control API ([`ControlApi`]) and a guard around a real `conductor up`
//! ([`Fleet`]).
//!
//! It depends on no crate of ours (a dev-dependency cycle would link a second copy of the
//! crate under test) and on nothing heavy (xtask builds it on every fresh checkout): std,
//! serde_json for the wire, libc for signals. Nothing here starts an async runtime.
#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

pub mod control;
#[cfg(unix)]
pub mod fleet;
pub mod http;
mod ports;
pub mod process;
mod temp_dir;
mod wait;

use std::time::Duration;

pub use crate::{
    control::{ControlApi, ControlConnection},
    ports::{free_port, free_ports},
    process::Proc,
    temp_dir::TempDir,
    wait::{Outcome, Timeout, try_wait_until, wait_until, wait_until_async},
};
#[cfg(unix)]
pub use crate::{fleet::Fleet, process::GroupGuard};

/// How long anything that normally takes milliseconds may take on a loaded 2-core machine,
/// with other test binaries running beside this one.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// `text` as a TOML basic string, for the registries tests write (JSON's string escapes are
/// TOML's).
pub fn toml_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}
