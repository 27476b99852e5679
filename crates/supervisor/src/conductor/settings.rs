//! What a fleet is built with besides its registry: the directories, the settings, and the
//! marker variable every service's process tree carries.

use std::path::{Path, PathBuf};

/// The directories conductor works in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Per-app data: database, lock, ipc.json, run-state, backups, evidence.
    pub user_data: PathBuf,
    /// Service and conductor logs.
    pub logs: PathBuf,
    /// Per-app temporary files.
    pub temp: PathBuf,
}

impl Paths {
    /// The layout used under one data directory: `<root>`, `<root>/logs`, `<root>/tmp`.
    pub fn under(root: &Path) -> Paths {
        Paths {
            user_data: root.to_path_buf(),
            logs: root.join("logs"),
            temp: root.join("tmp"),
        }
    }
}

/// Settings that do not come from the registry.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Injected into every service as `LOG_LEVEL`.
    pub log_level: String,
    /// Write `<userData>/run-state.json` (live process groups) for orphan reclaim.
    pub write_run_state: bool,
    /// Events kept for clients that reconnect with `Last-Event-ID`.
    pub replay_events: usize,
    /// Make the whole process a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`) and reap the
    /// orphans it adopts, so a service's daemonised descendants are re-parented to it instead
    /// of to init. Off by default: it is process-wide and permanent, and a host process (a
    /// Tauri app) then also adopts the orphans of its own children, and must not itself reap
    /// with `waitpid(-1)`. Zombie children that lead their own process group in the host's
    /// session, or sit in the host's own group, are never reaped by conductor, so children
    /// the host awaits (std's `Command`, tokio's) keep their exit status. The `conductor`
    /// binary turns it on. Without it, daemonised descendants are still found by their
    /// marker and stopped; they are only reaped by init instead.
    pub subreaper: bool,
    /// Rows of `service_events` (the lifecycle history) kept; older ones are pruned.
    pub event_history: u64,
    /// Where the registry was read from, for [`crate::Conductor::reload`] without an
    /// explicit registry; `None` (the built-in registry, or an embedding host that passes
    /// registries itself) makes such a reload an error.
    pub registry_source: Option<super::RegistrySource>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            log_level: "info".to_owned(),
            write_run_state: true,
            replay_events: 1024,
            subreaper: false,
            event_history: conductor_db::RecorderOptions::default().max_rows,
            registry_source: None,
        }
    }
}

/// The environment variable that marks every process of a service's tree:
/// `CONDUCTOR_INSTANCE=<run id>/<service>`. Descendants inherit it, however they daemonise,
/// so a stop finds them by it (see `conductor_spawn::TreeMarker`).
pub const MARKER_VARIABLE: &str = "CONDUCTOR_INSTANCE";

/// A directory conductor needs could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create {}: {error}", path.display())]
pub struct SetupError {
    /// The directory.
    pub path: PathBuf,
    /// Why (in the message, so not also a `source()`).
    pub error: std::io::Error,
}
