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
        .finish(tracing_appender::rolling::never(
            &paths.logs,
            "conductor.log",
        ));
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

async fn serve(
    registry: conductor_registry::Registry,
    paths: Paths,
    args: &UpArgs,
) -> anyhow::Result<()> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;

    // Step 2: process groups a previous run left behind.
    // Reclaim walks /proc and waits for what it killed: keep it off the runtime's workers.
    let user_data = paths.user_data.clone();
    let reclaimed =
        tokio::task::spawn_blocking(move || conductor_supervisor::reclaim_orphans(&user_data))
            .await
            .context("reclaiming orphans")?;
    for line in reclaimed {
        tracing::warn!("orphan reclaim: {line}");
        println!("✓ Reclaimed orphans of a previous run: {line}");
    }

    let conductor = Conductor::new(
        registry,
        paths.clone(),
        Settings {
            log_level: args.log_level.clone(),
            ..Settings::default()
        },
    )?;

    // Step 3: the database, before any service.
    match conductor.init_database().await {
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
            // The database errors name the file themselves.
            return Err(StartupFailed(format!("{err}\n  no service was started")).into());
        }
    }

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

    // Step 5: the services.
    let progress = show_progress(&conductor);
    let started = conductor.start_all().await;
    progress.abort();
    if std::io::stdout().is_terminal() {
        print!("\r\x1b[2K");
    }
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
        _ = sigint.recv() => "SIGINT".to_owned(),
        _ = sigterm.recv() => "SIGTERM".to_owned(),
        () = conductor.quit_requested() => "app:quit".to_owned(),
        exit = window_exit(&mut window) => format!("the window exited ({exit})"),
    };
    tracing::info!(%reason, "shutting down");
    println!("✓ Shutting down services...");
    println!("  reason: {reason}");
    let _ = std::io::stdout().flush();

    // A second SIGINT (or SIGTERM) during the graceful stop kills every group at once.
    let forced = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let conductor = conductor.clone();
        let forced = forced.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = sigint.recv() => {},
                _ = sigterm.recv() => {},
            }
            forced.store(true, std::sync::atomic::Ordering::SeqCst);
            let n = tokio::task::spawn_blocking(move || conductor.kill_all())
                .await
                .unwrap_or(0);
            tracing::warn!(n_groups = n, "second signal: killed every process group");
        })
    };
    if let Some(window) = window.as_mut() {
        window.stop(Duration::from_secs(5)).await;
    }
    let shutdown = conductor.shutdown().await;
    watchdog.abort();
    server.shutdown().await;
    conductor_ipc::remove_info(&paths.user_data);
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
