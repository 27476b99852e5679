//! The steps of SPEC §4's startup, each a call into a library crate that a stop request can
//! cut short: reclaim, the control API, the database, the services, the window.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use anyhow::Context;
use conductor_db::InitReport;
use conductor_protocol::IpcInfo;
use conductor_supervisor::{Conductor, DatabaseError, StartReport, StartupError, Window};

use super::{report::ProgressLine, stop::StopRequests};

/// How a step that a stop request can interrupt came out.
pub(super) enum Step<T> {
    /// It ran to its end (which may be a failure).
    Done(T),
    /// A stop was asked for first; the reason, already marked as during startup.
    Stopped(String),
}

fn stopped<T>(reason: &str) -> Step<T> {
    Step::Stopped(super::stop::during_startup(reason))
}

/// Step 2: process groups a previous run left behind.
pub(super) async fn reclaim_orphans(
    user_data: PathBuf,
    stops: &mut StopRequests,
) -> anyhow::Result<Step<()>> {
    // Reclaim walks /proc and waits for what it killed: keep it off the runtime's workers.
    let reclaim =
        tokio::task::spawn_blocking(move || conductor_supervisor::reclaim_orphans(&user_data));
    let reclaimed = tokio::select! {
        joined = reclaim => joined.context("reclaiming orphans")?,
        reason = stops.signal() => return Ok(stopped(&reason)),
    };
    for line in reclaimed {
        tracing::warn!("orphan reclaim: {line}");
        say!("✓ Reclaimed orphans of a previous run: {line}");
    }
    Ok(Step::Done(()))
}

/// The control API and the `ipc.json` that tells clients where it is.
pub(super) struct ControlApi {
    server: conductor_ipc::Server,
    pub(super) info: IpcInfo,
    user_data: PathBuf,
}

impl ControlApi {
    /// Serves the control API on `127.0.0.1:<port>` and writes `<userData>/ipc.json`.
    pub(super) async fn start(conductor: &Conductor, port: u16) -> anyhow::Result<ControlApi> {
        let token = conductor_ipc::generate_token();
        let server = conductor_ipc::serve(
            conductor.clone(),
            conductor_ipc::ServerConfig {
                addr: ([127, 0, 0, 1], port).into(),
                token: token.clone(),
                keep_alive: Duration::from_secs(15),
                // Taken once: a reload that changes the list is refused (RegistryDiff).
                allowed_origins: conductor.registry().app.allowed_origins.clone(),
            },
        )
        .await
        .context("starting the control API")?;
        let info = IpcInfo {
            url: server.url(),
            token,
            pid: std::process::id(),
        };
        let user_data = conductor.paths().user_data.clone();
        conductor_ipc::write_info(&user_data, &info)
            .with_context(|| format!("writing {}", user_data.join("ipc.json").display()))?;
        tracing::info!(url = %info.url, "control API listening");
        Ok(ControlApi {
            server,
            info,
            user_data,
        })
    }

    /// Stops serving and removes `ipc.json`.
    pub(super) async fn close(self) {
        self.server.shutdown().await;
        conductor_ipc::remove_info(&self.user_data);
    }
}

/// How often a stop requested during a migration interrupts SQLite again: an interrupt between
/// two statements is lost, so it is repeated until the migration has rolled back.
const INTERRUPT_REPEAT: Duration = Duration::from_millis(20);

/// Step 3: the database, before any service.
pub(super) async fn init_database(
    conductor: &Conductor,
    stops: &mut StopRequests,
) -> Step<Result<InitReport, DatabaseError>> {
    let init = conductor.init_database();
    tokio::pin!(init);
    tokio::select! {
        result = &mut init => Step::Done(result),
        reason = stops.any(conductor) => {
            // The running migration rolls back inside its transaction and the backup is
            // restored: wait for that, never for the rest of a long migration.
            let result = loop {
                conductor.interrupt_database();
                if let Ok(result) = tokio::time::timeout(INTERRUPT_REPEAT, &mut init).await {
                    break result;
                }
            };
            if let Err(err) = &result {
                tracing::info!("database initialisation interrupted: {err}");
            }
            stopped(&reason)
        }
    }
}

/// Steps 4 and 5: the port preflight and the services. A stop asked for meanwhile is honoured
/// at once (readiness waits and restart backoffs included).
pub(super) async fn start_services(
    conductor: &Conductor,
    stops: &mut StopRequests,
) -> Step<Result<StartReport, StartupError>> {
    let progress = ProgressLine::show(conductor);
    let step = tokio::select! {
        started = conductor.start_all() => Step::Done(started),
        reason = stops.any(conductor) => stopped(&reason),
    };
    progress.finish();
    step
}

/// Step 6: the window command, given the control API's address and token. A window that
/// cannot start is reported and the app runs on without it.
pub(super) fn start_window(conductor: &Conductor, info: &IpcInfo) -> Option<Window> {
    let env: Vec<(OsString, OsString)> = vec![
        ("CONDUCTOR_IPC_URL".into(), info.url.clone().into()),
        ("CONDUCTOR_IPC_TOKEN".into(), info.token.clone().into()),
    ];
    match conductor.start_window(env) {
        Ok(Some(window)) => {
            say!("✓ Creating window");
            Some(window)
        }
        Ok(None) => None,
        Err(err) => {
            say!("✗ Creating window... FAILED: {err}");
            None
        }
    }
}

/// Resolves when the window exits, describing how; never without a window.
pub(super) async fn window_exit(window: &mut Option<Window>) -> String {
    match window {
        Some(window) => window.exited().await,
        None => std::future::pending().await,
    }
}
