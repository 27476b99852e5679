//! Stopping: the requests that can arrive at any moment (SIGINT, SIGTERM, `app:quit`), the
//! graceful stop of SPEC §4 "Shutdown" whatever asked for it and whenever, and the quiet
//! teardown after a failed startup.

use std::{io::Write, time::Duration};

use anyhow::Context;
use conductor_supervisor::{Conductor, Window};
use tokio::signal::unix::{SignalKind, signal};

use super::steps::ControlApi;
use crate::failure::Failure;

/// The reasons to stop that can arrive at any moment: SIGINT and SIGTERM, and (once the fleet
/// exists) `app:quit`.
pub(super) struct StopRequests {
    sigint: tokio::signal::unix::Signal,
    sigterm: tokio::signal::unix::Signal,
}

impl StopRequests {
    pub(super) fn install() -> anyhow::Result<StopRequests> {
        Ok(StopRequests {
            sigint: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            sigterm: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// The next signal's name. Cancel-safe.
    pub(super) async fn signal(&mut self) -> String {
        tokio::select! {
            _ = self.sigint.recv() => "SIGINT".to_owned(),
            _ = self.sigterm.recv() => "SIGTERM".to_owned(),
        }
    }

    /// The next signal or `app:quit`. Cancel-safe.
    pub(super) async fn any(&mut self, conductor: &Conductor) -> String {
        tokio::select! {
            reason = self.signal() => reason,
            () = conductor.quit_requested() => "app:quit".to_owned(),
        }
    }
}

/// The reason printed for a stop that arrived before startup was over.
pub(super) fn during_startup(reason: &str) -> String {
    format!("{reason} (during startup)")
}

pub(super) fn print_shutdown_header(reason: &str) {
    tracing::info!(%reason, "shutting down");
    println!("✓ Shutting down services...");
    println!("  reason: {reason}");
    let _ = std::io::stdout().flush();
}

/// The graceful stop (SPEC §4 "Shutdown"): the window, then every service in reverse
/// dependency order, then the control API. A second SIGINT or SIGTERM meanwhile kills every
/// process group at once and makes it a [`Failure::ForcedExit`].
pub(super) async fn stop_fleet(
    conductor: &Conductor,
    api: ControlApi,
    window: Option<&mut Window>,
    reason: &str,
    mut stops: StopRequests,
) -> Result<(), Failure> {
    print_shutdown_header(reason);
    let forced = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let conductor = conductor.clone();
        let forced = forced.clone();
        tokio::spawn(async move {
            stops.signal().await;
            forced.store(true, std::sync::atomic::Ordering::SeqCst);
            let n = tokio::task::spawn_blocking(move || conductor.kill_all())
                .await
                .unwrap_or(0);
            tracing::warn!(n_groups = n, "second signal: killed every process group");
        })
    };
    if let Some(window) = window {
        window.stop(Duration::from_secs(5)).await;
    }
    let shutdown = conductor.shutdown().await;
    watchdog.abort();
    api.close().await;
    for service in &shutdown.services {
        println!("✓ {} Service stopped", service.title);
    }
    if shutdown.database_closed {
        println!("✓ Database connections closed");
    }
    if forced.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Failure::ForcedExit);
    }
    Ok(())
}

/// After a failed startup step: stop what was started and close the control API; the caller
/// reports the failure.
pub(super) async fn abandon_startup(conductor: &Conductor, api: ControlApi) {
    conductor.shutdown().await;
    api.close().await;
}
