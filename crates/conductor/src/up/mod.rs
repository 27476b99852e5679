//! `conductor up`: the SPEC §4 startup sequence in the foreground, then waiting for a reason
//! to quit (SIGINT, SIGTERM, `app:quit`, the window exiting), then the shutdown sequence.
//! Each step prints its `✓` line (SPEC §7) and is logged to `<logs>/conductor.log`.
//!
//! Wiring only: every step is a call into a library crate.

use std::{
    io::{IsTerminal, Write},
    time::Duration,
};

use anyhow::Context;
use conductor_protocol::{Event, IpcInfo, ServiceState};
use conductor_registry::LoadOptions;
use conductor_supervisor::{Conductor, Paths, Settings, StartOutcome};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};

use crate::{instance, registry_choice::RegistryChoice, remote::Target};

/// Arguments of `conductor up`.
#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// Enabled features, replacing [app] features in the registry
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// Port of the control API on 127.0.0.1 [default: chosen by the OS]
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    ipc_port: u16,
    /// LOG_LEVEL given to every service
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
}

/// Startup failed after the lock was taken: a critical service or the database (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct StartupFailed(pub(crate) String);

/// A second Ctrl-C forced every process group down (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("interrupted twice: every service was killed with SIGKILL")]
pub(crate) struct ForcedExit;

pub(crate) fn run(args: &UpArgs, target: &Target) -> anyhow::Result<()> {
    let choice = RegistryChoice::from_arg(target.registry.as_deref());
    // Validating first touches nothing and tells us the app's name, which names the data dir.
    let registry = choice.load(&LoadOptions {
        features: args.features.clone(),
    })?;
    // A control API on a service's port would make that service fail its port check.
    conductor_ipc::check_port(&registry, args.ipc_port)?;
    let user_data = instance::data_dir(target.data_dir.as_deref(), &registry.app.name)?;
    // Step 1: nothing else is touched before the lock is ours.
    let lock = instance::lock(&user_data)?;
    let paths = Paths::under(&user_data);
    std::fs::create_dir_all(&paths.logs)
        .with_context(|| format!("creating the log directory {}", paths.logs.display()))?;
    // The default queue holds 128 000 lines and touches every slot up front (4 MiB of RSS);
    // conductor logs a few lines per lifecycle event, so 1 000 is plenty (beyond it, lines
    // are dropped rather than blocking, as with the default).
    let (writer, tracing_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(1000)
        .finish(
            // Rotated by size like the service logs (the registry's [logs] max_size and
            // max_files), on the appender's own thread.
            conductor_logs::RotatingFile::open(
                &paths.logs,
                "conductor",
                registry.logs.max_size,
                registry.logs.max_files,
            )
            .with_context(|| format!("opening {}", paths.logs.join("conductor.log").display()))?,
        );
    // `CONDUCTOR_LOG` is `level` or `target=level` pairs, e.g. `info,conductor_supervisor=debug`.
    let filter = std::env::var("CONDUCTOR_LOG").ok().map(|text| {
        let parsed = text.parse::<tracing_subscriber::filter::Targets>();
        (text, parsed)
    });
    let (targets, bad_filter) = match filter {
        Some((_, Ok(targets))) => (targets, None),
        Some((text, Err(err))) => (info_targets(), Some(format!("{text:?}: {err}"))),
        None => (info_targets(), None),
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(writer),
        )
        .with(targets)
        .init();
    if let Some(bad) = bad_filter {
        tracing::warn!("ignoring CONDUCTOR_LOG {bad}; logging at info");
    }
    tracing::info!(registry = %choice, data_dir = %user_data.display(), pid = std::process::id(), "conductor up");

    // Children are spawned from runtime worker threads, which live as long as the runtime
    // (the parent-death signal follows the spawning thread; see conductor-spawn).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve(registry, paths, args));
    runtime.shutdown_timeout(Duration::from_secs(2));
    tracing::info!(ok = result.is_ok(), "conductor exiting");
    // Flushes conductor.log: without it the lines above could still be in the queue.
    drop(tracing_guard);
    if result.is_ok() {
        println!("✓ Logs flushed");
        println!("✓ Exiting");
    }
    drop(lock);
    result
}

fn info_targets() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
}

/// The reasons to stop that can arrive at any moment: SIGINT and SIGTERM, and (once the fleet
/// exists) `app:quit`.
struct StopRequests {
    sigint: tokio::signal::unix::Signal,
    sigterm: tokio::signal::unix::Signal,
}

impl StopRequests {
    fn install() -> anyhow::Result<StopRequests> {
        Ok(StopRequests {
            sigint: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            sigterm: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// The next signal's name. Cancel-safe.
    async fn signal(&mut self) -> String {
        tokio::select! {
            _ = self.sigint.recv() => "SIGINT".to_owned(),
            _ = self.sigterm.recv() => "SIGTERM".to_owned(),
        }
    }

    /// The next signal or `app:quit`. Cancel-safe.
    async fn any(&mut self, conductor: &Conductor) -> String {
        tokio::select! {
            reason = self.signal() => reason,
            () = conductor.quit_requested() => "app:quit".to_owned(),
        }
    }
}

/// How often a stop requested during a migration interrupts SQLite again: an interrupt between
/// two statements is lost, so it is repeated until the migration has rolled back.
const INTERRUPT_REPEAT: Duration = Duration::from_millis(20);

async fn serve(
    registry: conductor_registry::Registry,
    paths: Paths,
    args: &UpArgs,
) -> anyhow::Result<()> {
    let mut stops = StopRequests::install()?;

    // Step 2: process groups a previous run left behind.
    // Reclaim walks /proc and waits for what it killed: keep it off the runtime's workers.
    let user_data = paths.user_data.clone();
    let reclaim =
        tokio::task::spawn_blocking(move || conductor_supervisor::reclaim_orphans(&user_data));
    let reclaimed = tokio::select! {
        joined = reclaim => joined.context("reclaiming orphans")?,
        reason = stops.signal() => {
            // Nothing of this run exists yet: there is nothing to stop.
            print_shutdown_header(&during_startup(&reason));
            return Ok(());
        }
    };
    for line in reclaimed {
        tracing::warn!("orphan reclaim: {line}");
        println!("✓ Reclaimed orphans of a previous run: {line}");
    }

    let conductor = Conductor::new(
        registry,
        paths.clone(),
        Settings {
            log_level: args.log_level.clone(),
            subreaper: true,
            ..Settings::default()
        },
    )?;

    // The control API comes up before the database, so that `app:quit` (and status) work
    // during a long migration too.
    let token = conductor_ipc::generate_token();
    let server = conductor_ipc::serve(
        conductor.clone(),
        conductor_ipc::ServerConfig {
            addr: ([127, 0, 0, 1], args.ipc_port).into(),
            token: token.clone(),
            keep_alive: Duration::from_secs(15),
        },
    )
    .await
    .context("starting the control API")?;
    let info = IpcInfo {
        url: server.url(),
        token: token.clone(),
        pid: std::process::id(),
    };
    conductor_ipc::write_info(&paths.user_data, &info)
        .with_context(|| format!("writing {}", paths.user_data.join("ipc.json").display()))?;
    tracing::info!(url = %info.url, "control API listening");

    // Step 3: the database, before any service.
    let init = conductor.init_database();
    tokio::pin!(init);
    let (initialised, stopped_by) = tokio::select! {
        result = &mut init => (result, None),
        reason = stops.any(&conductor) => {
            // The running migration rolls back inside its transaction and the backup is
            // restored: wait for that, never for the rest of a long migration.
            let result = loop {
                conductor.interrupt_database();
                if let Ok(result) = tokio::time::timeout(INTERRUPT_REPEAT, &mut init).await {
                    break result;
                }
            };
            (result, Some(reason))
        }
    };
    if let Some(reason) = stopped_by {
        if let Err(err) = &initialised {
            tracing::info!("database initialisation interrupted: {err}");
        }
        let reason = during_startup(&reason);
        return stop_fleet(&conductor, server, &paths.user_data, None, &reason, stops).await;
    }
    match initialised {
        Ok(report) => {
            let n = report.migrations_run;
            println!(
                "✓ Database initialized ({n} migration{})",
                if n == 1 { "" } else { "s" }
            );
        }
        Err(err) => {
            println!("✗ Database initialization failed");
            conductor.shutdown().await;
            server.shutdown().await;
            conductor_ipc::remove_info(&paths.user_data);
            // The database errors name the file themselves.
            return Err(StartupFailed(format!("{err}\n  no service was started")).into());
        }
    }

    // Step 4 and 5: port preflight and the services; a stop asked for meanwhile is honoured at
    // once (readiness waits and restart backoffs included).
    let progress = show_progress(&conductor);
    let started = tokio::select! {
        started = conductor.start_all() => Ok(started),
        reason = stops.any(&conductor) => Err(reason),
    };
    progress.abort();
    if std::io::stdout().is_terminal() {
        print!("\r\x1b[2K");
    }
    let started = match started {
        Ok(started) => started,
        Err(reason) => {
            let reason = during_startup(&reason);
            return stop_fleet(&conductor, server, &paths.user_data, None, &reason, stops).await;
        }
    };
    let report = match started {
        Ok(report) => report,
        Err(err) => {
            let title = conductor
                .registry()
                .service(&err.service)
                .map(|s| s.title())
                .unwrap_or_default();
            println!("✗ Starting {title} Service... FAILED");
            conductor.shutdown().await;
            server.shutdown().await;
            conductor_ipc::remove_info(&paths.user_data);
            return Err(StartupFailed(err.to_string()).into());
        }
    };
    print_start_report(&report);
    println!(
        "  control API: {} (credentials in {})",
        info.url,
        paths.user_data.join("ipc.json").display()
    );

    // Step 6: the window command, given the control API's address and token.
    let mut window = match conductor.start_window(vec![
        ("CONDUCTOR_IPC_URL".into(), info.url.clone().into()),
        ("CONDUCTOR_IPC_TOKEN".into(), token.into()),
    ]) {
        Ok(Some(window)) => {
            println!("✓ Creating window");
            Some(window)
        }
        Ok(None) => None,
        Err(err) => {
            println!("✗ Creating window... FAILED: {err}");
            None
        }
    };
    let _ = std::io::stdout().flush();

    let reason = tokio::select! {
        reason = stops.any(&conductor) => reason,
        exit = window_exit(&mut window) => format!("the window exited ({exit})"),
    };
    stop_fleet(
        &conductor,
        server,
        &paths.user_data,
        window.as_mut(),
        &reason,
        stops,
    )
    .await
}

/// The reason printed for a stop that arrived before startup was over.
fn during_startup(reason: &str) -> String {
    format!("{reason} (during startup)")
}

fn print_shutdown_header(reason: &str) {
    tracing::info!(%reason, "shutting down");
    println!("✓ Shutting down services...");
    println!("  reason: {reason}");
    let _ = std::io::stdout().flush();
}

fn print_start_report(report: &conductor_supervisor::StartReport) {
    let mut degraded = Vec::new();
    for service in &report.services {
        match &service.outcome {
            StartOutcome::Started => {
                println!(
                    "✓ Starting {} Service... OK (port {})",
                    service.title, service.port
                )
            }
            StartOutcome::Failed(reason) => {
                degraded.push(service.name.clone());
                println!(
                    "✗ Starting {} Service... FAILED (port {}): {reason}",
                    service.title, service.port
                )
            }
            StartOutcome::Disabled => println!(
                "- {} Service disabled (port {})",
                service.title, service.port
            ),
            StartOutcome::Skipped(feature) => {
                println!(
                    "- {} Service skipped: feature \"{feature}\" is not enabled",
                    service.title
                )
            }
        }
    }
    if degraded.is_empty() {
        println!("✓ All services ready");
    } else {
        println!("! Running degraded without: {}", degraded.join(", "));
    }
}

/// The graceful stop (SPEC §4 "Shutdown"), whatever asked for it and whenever.
async fn stop_fleet(
    conductor: &Conductor,
    server: conductor_ipc::Server,
    user_data: &std::path::Path,
    window: Option<&mut conductor_supervisor::Window>,
    reason: &str,
    mut stops: StopRequests,
) -> anyhow::Result<()> {
    print_shutdown_header(reason);
    // A second SIGINT (or SIGTERM) during the graceful stop kills every group at once.
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
    server.shutdown().await;
    conductor_ipc::remove_info(user_data);
    for service in &shutdown.services {
        println!("✓ {} Service stopped", service.title);
    }
    if shutdown.database_closed {
        println!("✓ Database connections closed");
    }
    if forced.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ForcedExit.into());
    }
    Ok(())
}

async fn window_exit(window: &mut Option<conductor_supervisor::Window>) -> String {
    match window {
        Some(window) => window.exited().await,
        None => std::future::pending().await,
    }
}

/// On a terminal, a live `(x/n ready)` line while services start.
fn show_progress(conductor: &Conductor) -> tokio::task::JoinHandle<()> {
    let mut events = conductor.subscribe(None).live;
    let total = conductor
        .registry()
        .services
        .iter()
        .filter(|s| s.is_active())
        .count();
    let interactive = std::io::stdout().is_terminal();
    tokio::spawn(async move {
        if !interactive {
            return;
        }
        let mut ready = std::collections::BTreeSet::new();
        while let Ok(event) = events.recv().await {
            if let Event::ServiceStatusChanged {
                service_name,
                status,
            } = &event.event
                && status.status == ServiceState::Running
            {
                ready.insert(service_name.clone());
                print!("\r  starting services... ({}/{total} ready)", ready.len());
                let _ = std::io::stdout().flush();
            }
        }
    })
}
