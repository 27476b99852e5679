//! `conductor up`: the SPEC §4 startup sequence in the foreground, then waiting for a reason
//! to quit (SIGINT, SIGTERM, `app:quit`, the window exiting), then the shutdown sequence.
//! Each step prints its `✓` line (SPEC §7) and is logged to `<logs>/conductor.log`.
//!
//! Wiring only: every step is a call into a library crate (`steps.rs`), stopping is
//! `stop.rs`, what is printed `report.rs`, conductor's own log `logging.rs`.

// `println!` and friends that ignore a closed stdout or stderr. The app that started conductor
// often holds its pipes (clients/js's `launch` does): when that app dies, as
// `--exit-with-parent` expects it may, the shutdown report has no reader any more, and
// `println!` would panic on EPIPE in the middle of stopping the fleet.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! say_inline {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod logging;
mod reload;
mod report;
mod steps;
mod stop;

use std::{io::Write, time::Duration};

use anyhow::Context;
use conductor_registry::LoadOptions;
use conductor_supervisor::{Conductor, Paths, RegistrySource, Settings};

use self::{
    steps::{ControlApi, Step},
    stop::StopRequests,
};
use crate::{failure::Failure, instance, registry_choice::RegistryChoice, remote::Target};

/// Arguments of `conductor up`.
#[derive(Debug, Clone, clap::Args)]
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
    /// Reload the registry whenever its file changes (as SIGHUP does)
    #[arg(long)]
    watch: bool,
    /// Stop (gracefully, like Ctrl-C) when the process that started conductor exits, however
    /// it ends: the app's main process crashing or being killed takes the backend down with it
    #[arg(long)]
    exit_with_parent: bool,
    /// Stop when stdin reaches its end (the parent closed the pipe it holds)
    #[arg(long)]
    exit_on_stdin_close: bool,
    /// The pid of the process that started us, read first thing (not a flag).
    #[arg(skip)]
    parent: u32,
    /// Publish this many synthetic events per second once started (bench builds only)
    #[cfg(feature = "bench-events")]
    #[arg(long, value_name = "N", hide = true)]
    bench_event_rate: Option<u32>,
}

pub(crate) fn run(args: &UpArgs, target: &Target) -> Result<(), Failure> {
    // Before anything can take time: a parent that dies meanwhile must still be noticed.
    let args = &UpArgs {
        parent: std::os::unix::process::parent_id(),
        ..args.clone()
    };
    let choice = RegistryChoice::from_arg(target.registry.as_deref());
    // Validating first touches nothing and tells us the app's name, which names the data dir.
    let registry = choice.load(&LoadOptions {
        features: args.features.clone(),
    })?;
    // A control API on a service's port would make that service fail its port check.
    conductor_ipc::check_port(&registry, args.ipc_port).map_err(anyhow::Error::from)?;
    let user_data = instance::data_dir(target.data_dir.as_deref(), &registry.app.name)?;
    // Step 1: nothing else is touched before the lock is ours.
    let lock = instance::lock(&user_data)?;
    let paths = Paths::under(&user_data);
    std::fs::create_dir_all(&paths.logs)
        .with_context(|| format!("creating the log directory {}", paths.logs.display()))?;
    let tracing_guard = logging::init(&paths.logs, &registry)?;
    tracing::info!(registry = %choice, data_dir = %user_data.display(), pid = std::process::id(), "conductor up");

    // Children are spawned from runtime worker threads, which live as long as the runtime
    // (the parent-death signal follows the spawning thread; see conductor-spawn).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let source = match &choice {
        RegistryChoice::File(path) => Some(RegistrySource {
            path: path.clone(),
            options: LoadOptions {
                features: args.features.clone(),
            },
        }),
        RegistryChoice::Builtin => None,
    };
    if args.watch && source.is_none() {
        return Err(anyhow::anyhow!(
            "--watch needs a registry file; this run uses the built-in registry (pass --registry FILE)"
        )
        .into());
    }
    let result = runtime.block_on(serve(registry, source, paths, args));
    runtime.shutdown_timeout(Duration::from_secs(2));
    tracing::info!(ok = result.is_ok(), "conductor exiting");
    // Flushes conductor.log: without it the lines above could still be in the queue.
    drop(tracing_guard);
    if result.is_ok() {
        say!("✓ Logs flushed");
        say!("✓ Exiting");
    }
    drop(lock);
    result
}

/// SPEC §4 from step 2 on, then the wait for a reason to quit, then the graceful stop.
async fn serve(
    registry: conductor_registry::Registry,
    source: Option<RegistrySource>,
    paths: Paths,
    args: &UpArgs,
) -> Result<(), Failure> {
    let mut stops = StopRequests::install(stop::Followed {
        parent: args.exit_with_parent.then_some(args.parent),
        stdin: args.exit_on_stdin_close,
    })?;
    // Installed before anything can be slow: SIGHUP's default would end the process; a SIGHUP
    // during startup is kept and applied once the fleet runs.
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    if let Step::Stopped(reason) =
        steps::reclaim_orphans(paths.user_data.clone(), &mut stops).await?
    {
        // Nothing of this run exists yet: there is nothing to stop.
        stop::print_shutdown_header(&reason);
        return Ok(());
    }
    let conductor = Conductor::new(
        registry,
        paths.clone(),
        Settings {
            log_level: args.log_level.clone(),
            subreaper: true,
            registry_source: source.clone(),
            ..Settings::default()
        },
    )?;
    // Before the database, so that `app:quit` (and status) work during a long migration too.
    let api = ControlApi::start(&conductor, args.ipc_port).await?;

    match steps::init_database(&conductor, &mut stops).await {
        Step::Done(Ok(report)) => {
            let n = report.migrations_run;
            say!(
                "✓ Database initialized ({n} migration{})",
                if n == 1 { "" } else { "s" }
            );
        }
        Step::Done(Err(error)) => {
            say!("✗ Database initialization failed");
            stop::abandon_startup(&conductor, api).await;
            return Err(Failure::Database(error));
        }
        Step::Stopped(reason) => {
            return stop::stop_fleet(&conductor, api, None, &reason, stops).await;
        }
    }

    match steps::start_services(&conductor, &mut stops).await {
        Step::Done(Ok(report)) => report::print_start_report(&report),
        Step::Done(Err(error)) => {
            report::print_startup_failure(&conductor, &error);
            stop::abandon_startup(&conductor, api).await;
            return Err(error.into());
        }
        Step::Stopped(reason) => {
            return stop::stop_fleet(&conductor, api, None, &reason, stops).await;
        }
    }
    say!(
        "  control API: {} (credentials in {})",
        api.info.url,
        paths.user_data.join("ipc.json").display()
    );

    #[cfg(feature = "bench-events")]
    if let Some(rate) = args.bench_event_rate {
        tokio::spawn(bench_events(conductor.clone(), rate));
    }

    let mut window = steps::start_window(&conductor, &api.info);
    let (_watcher, mut changes) = match (&source, args.watch) {
        (Some(source), true) => {
            let (watcher, changes) = reload::watch(source.path.clone())?;
            say!("  watching {} for changes", source.path.display());
            (Some(watcher), Some(changes))
        }
        _ => (None, None),
    };
    // The last startup line, so a newcomer's first command ends with a page to open.
    say!("  {}", crate::open::panel_line(&api.info, &paths.user_data));
    let _ = std::io::stdout().flush();
    let reason = loop {
        tokio::select! {
            reason = stops.any(&conductor) => break reason,
            exit = steps::window_exit(&mut window) => break format!("the window exited ({exit})"),
            // In a task of its own: a stop asked for meanwhile is not kept waiting for the
            // restarted services' readiness (a second reload meanwhile is refused as busy).
            _ = hangups.recv() => {
                tokio::spawn(reload::reload_and_report(conductor.clone(), "SIGHUP"));
            }
            () = reload::next_change(&mut changes) => {
                tokio::spawn(reload::reload_and_report(conductor.clone(), "file changed"));
            }
        }
        let _ = std::io::stdout().flush();
    };
    stop::stop_fleet(&conductor, api, window.as_mut(), &reason, stops).await
}

/// Publishes `rate` events per second, paced per millisecond, until the process exits.
#[cfg(feature = "bench-events")]
async fn bench_events(conductor: Conductor, rate: u32) {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = tokio::time::Instant::now();
    let mut published: u64 = 0;
    loop {
        tick.tick().await;
        // Catch up to the rate by elapsed time, so a late tick does not lower it.
        let due = started.elapsed().as_millis() as u64 * u64::from(rate) / 1000;
        while published < due {
            conductor.publish_for_bench(conductor_protocol::Event::AppHealthChanged(
                conductor.health(),
            ));
            published += 1;
        }
    }
}
