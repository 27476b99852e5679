//! Stopping: the requests that can arrive at any moment (SIGINT, SIGTERM, `app:quit`), the
//! graceful stop of SPEC §4 "Shutdown" whatever asked for it and whenever, and the quiet
//! teardown after a failed startup.

use std::{io::Write, time::Duration};

use anyhow::Context;
use conductor_supervisor::{Conductor, Window};
use tokio::signal::unix::{SignalKind, signal};

use super::steps::ControlApi;
use crate::failure::Failure;

/// The reasons to stop that can arrive at any moment: SIGINT and SIGTERM, the parent's exit
/// (`--exit-with-parent`) or stdin's end (`--exit-on-stdin-close`), and (once the fleet exists)
/// `app:quit`.
pub(super) struct StopRequests {
    sigint: tokio::signal::unix::Signal,
    sigterm: tokio::signal::unix::Signal,
    /// Set once the watched parent or stdin is gone; the reason.
    orphaned: tokio::sync::watch::Receiver<Option<String>>,
    /// The parent's exit is a reason to stop once: during the stop it is not a second Ctrl-C.
    orphan_told: bool,
}

/// What besides signals ends conductor (`up`'s flags).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Followed {
    /// The process that started conductor: when it exits, conductor stops.
    pub(super) parent: Option<u32>,
    /// When stdin reaches its end (the parent closed its pipe), conductor stops.
    pub(super) stdin: bool,
}

impl StopRequests {
    pub(super) fn install(followed: Followed) -> anyhow::Result<StopRequests> {
        let (tx, orphaned) = tokio::sync::watch::channel(None);
        if let Some(parent) = followed.parent {
            let tx = tx.clone();
            tokio::spawn(async move {
                parent_exit(parent).await;
                tx.send_replace(Some(format!("the parent process (pid {parent}) exited")));
            });
        }
        if followed.stdin {
            // A plain thread: a read of stdin cannot be cancelled, and this one ends with the
            // process.
            std::thread::spawn(move || {
                let mut sink = [0_u8; 4096];
                let mut stdin = std::io::stdin();
                while matches!(std::io::Read::read(&mut stdin, &mut sink), Ok(n) if n > 0) {}
                tx.send_replace(Some("stdin was closed".to_owned()));
            });
        }
        Ok(StopRequests {
            sigint: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            sigterm: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            orphaned,
            orphan_told: false,
        })
    }

    /// The next signal's name, or why conductor lost its parent. Cancel-safe.
    pub(super) async fn signal(&mut self) -> String {
        let mut orphaned = self.orphaned.clone();
        let told = self.orphan_told;
        tokio::select! {
            _ = self.sigint.recv() => "SIGINT".to_owned(),
            _ = self.sigterm.recv() => "SIGTERM".to_owned(),
            Ok(reason) = orphaned.wait_for(Option::is_some), if !told => {
                let reason = reason.clone().unwrap_or_default();
                self.orphan_told = true;
                reason
            }
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

/// Resolves once process `parent` has exited: on Linux through a pidfd (the kernel says so at
/// once); elsewhere, or where pidfds are missing, by seeing our parent pid change (we were
/// re-parented), checked every 50 ms.
async fn parent_exit(parent: u32) {
    #[cfg(target_os = "linux")]
    if let Some(pidfd) = open_pidfd(parent) {
        // A parent that died before the pidfd was opened left us re-parented already.
        if std::os::unix::process::parent_id() != parent {
            return;
        }
        // SAFETY: the AsyncFd owns `pidfd`, an open descriptor nobody else can close or reuse.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
        };
        if let Ok(readable) = registered {
            let _ = readable.readable().await;
            return;
        }
    }
    while std::os::unix::process::parent_id() == parent {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(target_os = "linux")]
fn open_pidfd(pid: u32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: `fd` was just returned to us by the kernel and is owned by nobody else.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// The reason printed for a stop that arrived before startup was over.
pub(super) fn during_startup(reason: &str) -> String {
    format!("{reason} (during startup)")
}

pub(super) fn print_shutdown_header(reason: &str) {
    tracing::info!(%reason, "shutting down");
    say!("✓ Shutting down services...");
    say!("  reason: {reason}");
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
        say!("✓ {} Service stopped", service.title);
    }
    if shutdown.database_closed {
        say!("✓ Database connections closed");
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
