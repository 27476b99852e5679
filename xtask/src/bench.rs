//! `cargo xtask bench`: measures conductor's release binary against the performance targets
//! and prints a table (metric | median | p95 | min–max | target | ok?), also written with the
//! machine's description to `target/bench/report.json`.
//!
//! Scenarios, each repeated `--runs` times (default 5) on fake-services without dependencies
//! and with a warm data dir (the database exists, no migration is pending):
//! startup of 8 and of 100 services, conductor's RSS and idle CPU (default 10 s health
//! interval), SIGKILL-to-healthy recovery with a zero backoff, `services:get-all` latency and
//! throughput, shutdown with and without a service that ignores SIGTERM, `services:stop` of
//! one service with and without 500 unrelated processes (the price of finding a service's
//! whole process tree), and the logs crate's `log_throughput` example. Fixture time is measured the same way and shown beside the
//! figures it is subtracted from.
//!
//! It is not a test: a miss never fails it, unless `--check` asks for that. `--quick` shortens
//! the idle windows for development; the figures it gives are not the targets' figures.
//! Linux only (it reads `/proc`).

mod fleet;
pub(crate) mod flood;
mod procfs;
mod stats;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use conductor_test_support::{ControlConnection, TempDir, process, try_wait_until};
use serde_json::json;

use self::{
    fleet::{FleetSpec, ServiceAddr},
    stats::{Metric, Summary, Target, Unit},
};
use crate::util::{cargo, run_checked, target_dir};

const USAGE: &str = "usage: cargo xtask bench [--quick] [--check] [--runs N] [--no-build]

  --quick     idle windows of 3 s instead of 30 s, fewer requests (for development)
  --check     exit non-zero when a figure misses its target
  --runs N    repetitions of every scenario (default 5, at least 5 for a real report)
  --no-build  use the release binaries as they are";

/// `stop_timeout` of the fleet with a service that ignores SIGTERM, as written and as a value.
const STUBBORN_STOP_TIMEOUT: &str = "1s";
const STUBBORN_STOP_TIMEOUT_DURATION: Duration = Duration::from_secs(1);

const MIB: f64 = 1024.0 * 1024.0;

struct Options {
    quick: bool,
    check: bool,
    runs: usize,
    build: bool,
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut options = Self {
            quick: false,
            check: false,
            runs: 5,
            build: true,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--check" => options.check = true,
                "--no-build" => options.build = false,
                "--runs" => {
                    let value = args.next().context("--runs needs a number")?;
                    options.runs = value
                        .parse()
                        .ok()
                        .filter(|&runs| runs > 0)
                        .with_context(|| format!("--runs {value:?}: expected a positive number"))?;
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?}\n\n{USAGE}"),
            }
        }
        Ok(options)
    }

    /// How long the fleet sits idle while CPU time is counted (the 30 s).
    fn idle_window(&self) -> Duration {
        if self.quick {
            Duration::from_secs(3)
        } else {
            Duration::from_secs(30)
        }
    }

    /// Pause after "All services ready" before the idle window opens, so the tail of startup
    /// (readiness tasks winding down, the first log writes) is not counted as idle.
    fn settle(&self) -> Duration {
        if self.quick {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(1)
        }
    }

    /// How long 100 sampled services sit idle while conductor's CPU is counted (the issue's
    /// 60 s).
    fn sampling_window(&self) -> Duration {
        if self.quick {
            Duration::from_secs(5)
        } else {
            Duration::from_secs(60)
        }
    }

    fn api_requests(&self) -> usize {
        if self.quick { 2_000 } else { 10_000 }
    }

    fn api_throughput_window(&self) -> Duration {
        if self.quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(2)
        }
    }
}

/// The release binaries under test.
struct Binaries {
    conductor: PathBuf,
    /// conductor built with `bench-events` (`up --bench-event-rate N`), for the SSE figure.
    conductor_bench_events: PathBuf,
    fake_service: PathBuf,
    log_throughput: PathBuf,
}

/// Every figure of the report, in table order.
struct Figures {
    fixture_start: Metric,
    startup_8: Metric,
    startup_8_net: Metric,
    startup_8_database: Metric,
    recovery_health: Metric,
    recovery_net: Metric,
    recovery_running: Metric,
    rss_8: Metric,
    cpu_8: Metric,
    logs_rate: Metric,
    logs_lost: Metric,
    api_p50: Metric,
    api_p99: Metric,
    api_rps: Metric,
    shutdown_8: Metric,
    stubborn_others: Metric,
    stubborn_over: Metric,
    startup_100: Metric,
    rss_100: Metric,
    cpu_100: Metric,
    sampling_100: Metric,
    reload_one: Metric,
    reload_untouched: Metric,
    js_launch_overhead: Metric,
    js_invoke_p99: Metric,
    panel_first_render: Metric,
    panel_flood_events: Metric,
    panel_flood_frame_gap: Metric,
    shutdown_100: Metric,
    api_p99_idle: Metric,
    api_p99_sse: Metric,
    sse_rate: Metric,
    rss_logs: Metric,
    stop_one: Metric,
    stop_one_busy: Metric,
    stop_scan_cost: Metric,
}

impl Figures {
    fn new(options: &Options, stubborn_stop_timeout: &str) -> Self {
        let idle = options.idle_window().as_secs();
        let requests = options.api_requests();
        Self {
            fixture_start: Metric::new(
                "fixture_start_ms",
                "fixture: lone fake-service, spawn → /health 200",
                Unit::Millis,
                Target::None,
            ),
            startup_8: Metric::new(
                "startup_8_ms",
                "startup: 8 services, spawn → \"All services ready\"",
                Unit::Millis,
                Target::AtMost(25.0),
            ),
            startup_8_net: Metric::new(
                "startup_8_net_ms",
                "startup: 8 services, minus the fixture's own start",
                Unit::Millis,
                Target::None,
            ),
            startup_8_database: Metric::new(
                "startup_8_database_ms",
                "startup: of which spawn → \"Database initialized\"",
                Unit::Millis,
                Target::None,
            ),
            recovery_health: Metric::new(
                "recovery_health_ms",
                "recovery: SIGKILL → new pid answers /health",
                Unit::Millis,
                Target::None,
            ),
            recovery_net: Metric::new(
                "recovery_net_ms",
                "recovery: beyond the fixture's own start",
                Unit::Millis,
                Target::AtMost(5.0),
            ),
            recovery_running: Metric::new(
                "recovery_running_ms",
                "recovery: SIGKILL → get-all shows it running",
                Unit::Millis,
                Target::None,
            ),
            rss_8: Metric::new(
                "rss_8_mib",
                "footprint: conductor RSS, 8 services",
                Unit::MiB,
                Target::AtMost(10.0),
            ),
            cpu_8: Metric::new(
                "idle_cpu_8_percent",
                format!("footprint: conductor CPU, 8 services, {idle} s idle"),
                Unit::Percent,
                Target::AtMost(0.1),
            ),
            logs_rate: Metric::new(
                "logs_lines_per_sec",
                "logs: 1 000 000 lines of 100 B to disk",
                Unit::LinesPerSec,
                Target::AtLeast(1_000_000.0),
            ),
            logs_lost: Metric::new(
                "logs_lost",
                "logs: lines lost",
                Unit::Count,
                Target::AtMost(0.0),
            ),
            api_p50: Metric::new(
                "api_get_all_p50_ms",
                format!("control API: get-all p50 ({requests} req, keep-alive)"),
                Unit::Millis,
                Target::None,
            ),
            api_p99: Metric::new(
                "api_get_all_p99_ms",
                format!("control API: get-all p99 ({requests} req, keep-alive)"),
                Unit::Millis,
                Target::AtMost(1.0),
            ),
            api_rps: Metric::new(
                "api_get_all_rps",
                "control API: get-all over 8 connections",
                Unit::RequestsPerSec,
                Target::None,
            ),
            shutdown_8: Metric::new(
                "shutdown_8_ms",
                "shutdown: SIGTERM → 8 services gone",
                Unit::Millis,
                Target::AtMost(15.0),
            ),
            stubborn_others: Metric::new(
                "shutdown_stubborn_others_ms",
                "shutdown, 1 ignores SIGTERM: the 7 others gone",
                Unit::Millis,
                Target::AtMost(15.0),
            ),
            stubborn_over: Metric::new(
                "shutdown_stubborn_over_ms",
                format!(
                    "shutdown, 1 ignores SIGTERM: all gone − stop_timeout {stubborn_stop_timeout}"
                ),
                Unit::Millis,
                Target::AtMost(20.0),
            ),
            startup_100: Metric::new(
                "startup_100_ms",
                "scale: 100 services, spawn → \"All services ready\"",
                Unit::Millis,
                Target::None,
            ),
            rss_100: Metric::new(
                "rss_100_mib",
                "scale: conductor RSS, 100 services",
                Unit::MiB,
                Target::AtMost(30.0),
            ),
            cpu_100: Metric::new(
                "idle_cpu_100_percent",
                format!("scale: conductor CPU, 100 services, {idle} s idle, sampling off"),
                Unit::Percent,
                Target::None,
            ),
            reload_one: Metric::new(
                "reload_one_of_100_ms",
                "reload: 100 services, one's env changed, request → it is ready again",
                Unit::Millis,
                Target::None,
            ),
            js_launch_overhead: Metric::new(
                "js_launch_overhead_ms",
                "JS client: launch() to a connected client, beyond `conductor up` alone (8 services)",
                Unit::Millis,
                Target::AtMost(5.0),
            ),
            js_invoke_p99: Metric::new(
                "js_invoke_p99_ms",
                "JS client: invoke('services:get-all') p99 on loopback (Node)",
                Unit::Millis,
                Target::AtMost(1.0),
            ),
            panel_first_render: Metric::new(
                "panel_first_render_ms",
                "debug panel: first render, 100 services and 10 000 log lines (headless Chromium)",
                Unit::Millis,
                Target::AtMost(300.0),
            ),
            panel_flood_events: Metric::new(
                "panel_flood_events_per_s",
                "debug panel: logs:entry events a second while a service logs 10 000 lines/s",
                Unit::Count,
                Target::AtMost(5.5),
            ),
            panel_flood_frame_gap: Metric::new(
                "panel_flood_frame_gap_ms",
                "debug panel: longest gap between frames during that flood",
                Unit::Millis,
                Target::AtMost(100.0),
            ),
            reload_untouched: Metric::new(
                "reload_untouched_pids",
                "reload: of the other 99 services, pids unchanged",
                Unit::Count,
                Target::AtLeast(99.0),
            ),
            sampling_100: Metric::new(
                "sampling_cpu_100_percent",
                format!(
                    "sampling: conductor CPU, 100 services sampled every 1 s, {} s",
                    options.sampling_window().as_secs()
                ),
                Unit::Percent,
                Target::AtMost(0.5),
            ),
            shutdown_100: Metric::new(
                "shutdown_100_ms",
                "scale: SIGTERM → 100 services gone",
                Unit::Millis,
                Target::None,
            ),
            api_p99_idle: Metric::new(
                "api_get_all_p99_idle_ms",
                format!("control API: get-all p99, {IDLE_CONNECTIONS} idle connections held"),
                Unit::Millis,
                Target::AtMost(1.0),
            ),
            api_p99_sse: Metric::new(
                "api_get_all_p99_sse_ms",
                format!(
                    "control API: get-all p99 while an SSE client reads {SSE_EVENT_RATE} events/s"
                ),
                Unit::Millis,
                Target::AtMost(1.0),
            ),
            sse_rate: Metric::new(
                "sse_events_per_s",
                "control API: events the SSE client read meanwhile",
                Unit::RequestsPerSec,
                // Keeping up: the source publishes exactly SSE_EVENT_RATE a second.
                Target::AtLeast(SSE_EVENT_RATE as f64 * 0.95),
            ),
            rss_logs: Metric::new(
                "rss_after_logs_mib",
                format!(
                    "footprint: RSS after {} M log lines into each of {LOG_FLOOD_SERVICES} services",
                    LOG_FLOOD_LINES / 1_000_000
                ),
                Unit::MiB,
                Target::AtMost(160.0),
            ),
            stop_one: Metric::new(
                "stop_one_ms",
                "services:stop of one service, answered",
                Unit::Millis,
                Target::None,
            ),
            stop_one_busy: Metric::new(
                "stop_one_busy_ms",
                format!("services:stop, {UNRELATED_PROCESSES} unrelated processes running"),
                Unit::Millis,
                Target::None,
            ),
            stop_scan_cost: Metric::new(
                "stop_scan_cost_ms",
                format!("stop: slower by, with {UNRELATED_PROCESSES} unrelated processes"),
                Unit::Millis,
                Target::None,
            ),
        }
    }

    fn all(&self) -> [&Metric; 36] {
        [
            &self.fixture_start,
            &self.startup_8,
            &self.startup_8_net,
            &self.startup_8_database,
            &self.recovery_health,
            &self.recovery_net,
            &self.recovery_running,
            &self.rss_8,
            &self.cpu_8,
            &self.logs_rate,
            &self.logs_lost,
            &self.api_p50,
            &self.api_p99,
            &self.api_rps,
            &self.shutdown_8,
            &self.stubborn_others,
            &self.stubborn_over,
            &self.startup_100,
            &self.rss_100,
            &self.cpu_100,
            &self.sampling_100,
            &self.reload_one,
            &self.reload_untouched,
            &self.js_launch_overhead,
            &self.js_invoke_p99,
            &self.panel_first_render,
            &self.panel_flood_events,
            &self.panel_flood_frame_gap,
            &self.shutdown_100,
            &self.api_p99_idle,
            &self.api_p99_sse,
            &self.sse_rate,
            &self.rss_logs,
            &self.stop_one,
            &self.stop_one_busy,
            &self.stop_scan_cost,
        ]
    }
}

/// Events per second the `bench-events` source publishes while an SSE client reads them.
const SSE_EVENT_RATE: u32 = 10_000;

/// The log flood: services, and lines each writes as fast as its pipe takes them.
const LOG_FLOOD_SERVICES: usize = 16;
const LOG_FLOOD_LINES: usize = 1_000_000;

/// Idle connections held open while get-all latency is measured again.
const IDLE_CONNECTIONS: usize = 1_000;

/// Processes of our user that the tree-scan bench starts beside the fleet (`sleep`s started
/// after the services, so the scan must read each one's environment: its worst case).
const UNRELATED_PROCESSES: usize = 500;

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let options = Options::parse(args)?;
    if !cfg!(target_os = "linux") {
        bail!("the bench reads /proc and runs on Linux only");
    }
    let binaries = build(&options)?;
    let work = TempDir::try_new("bench")?;
    let data_dir = work.join("data");
    let mut figures = Figures::new(&options, STUBBORN_STOP_TIMEOUT);
    let mut errors: Vec<String> = Vec::new();
    let mut record = |scenario: &str, result: anyhow::Result<()>| {
        if let Err(err) = result {
            println!("✗ {scenario}: {err:#}");
            errors.push(format!("{scenario}: {err:#}"));
        } else {
            println!("✓ {scenario}");
        }
    };

    println!(
        "bench: {} run(s) per scenario{}",
        options.runs,
        if options.quick { ", --quick" } else { "" }
    );
    // The first start creates and migrates the database; later runs find it ready, as a
    // desktop app does on every launch but the first. It also warms the page cache.
    let warm = fleet_run(
        &binaries,
        work.path(),
        &data_dir,
        &FleetSpec::plain(8),
        None,
    );
    let warm_ok = warm.is_ok();
    record("warm-up (creates the database)", warm.map(|_| ()));
    if !warm_ok {
        bail!("the warm-up start failed; nothing else can be measured");
    }
    let database = data_dir.join(format!("{}.db", fleet::APP_NAME));

    record(
        "fixture start",
        (|| {
            // Twice the runs: it is cheap and its median is subtracted from other figures.
            for _ in 0..options.runs * 2 {
                let start = fleet::lone_start(&binaries.fake_service, &database)?;
                figures.fixture_start.samples.push(ms(start));
            }
            Ok(())
        })(),
    );
    let fixture_ms = Summary::of(&figures.fixture_start.samples).map(|s| s.median);

    record(
        "8 services: startup, footprint, shutdown",
        (|| {
            for _ in 0..options.runs {
                let run = fleet_run(
                    &binaries,
                    work.path(),
                    &data_dir,
                    &FleetSpec::plain(8),
                    Some((options.settle(), options.idle_window())),
                )?;
                figures.startup_8.samples.push(ms(run.startup));
                if let Some(fixture) = fixture_ms {
                    figures
                        .startup_8_net
                        .samples
                        .push(ms(run.startup) - fixture);
                }
                figures
                    .startup_8_database
                    .samples
                    .push(ms(run.database_ready));
                figures.rss_8.samples.push(run.rss_bytes as f64 / MIB);
                figures.cpu_8.samples.push(run.idle_cpu_percent);
                figures.shutdown_8.samples.push(ms(run.shutdown));
            }
            Ok(())
        })(),
    );

    record(
        "control API and crash recovery",
        api_and_recovery(
            &binaries,
            work.path(),
            &data_dir,
            &options,
            fixture_ms,
            &mut figures,
        ),
    );

    record(
        "shutdown with one service ignoring SIGTERM",
        (|| {
            let spec = FleetSpec {
                stop_timeout: STUBBORN_STOP_TIMEOUT,
                last_ignores_sigterm: true,
                ..FleetSpec::plain(8)
            };
            for _ in 0..options.runs {
                let (others, all) = stubborn_shutdown(&binaries, work.path(), &data_dir, &spec)?;
                figures.stubborn_others.samples.push(ms(others));
                figures
                    .stubborn_over
                    .samples
                    .push(ms(all) - ms(STUBBORN_STOP_TIMEOUT_DURATION));
            }
            Ok(())
        })(),
    );

    record(
        "stop one service, quiet and with 500 unrelated processes",
        stop_with_crowd(&binaries, work.path(), &data_dir, &options, &mut figures),
    );

    record(
        "RSS after a log flood into 16 services",
        (|| {
            // Once: it writes 1.6 GB of logs.
            let rss = log_flood_rss(&binaries, work.path(), &data_dir)?;
            figures.rss_logs.samples.push(rss as f64 / MIB);
            Ok(())
        })(),
    );

    record(
        "log throughput",
        (|| {
            for _ in 0..options.runs {
                let (rate, lost) = log_throughput(&binaries)?;
                figures.logs_rate.samples.push(rate);
                figures.logs_lost.samples.push(lost);
            }
            Ok(())
        })(),
    );

    // The same 100 services with sampling off (comparable with the figures before metrics
    // existed) and sampled every second (what sampling costs).
    let hundred = |metrics_interval: &'static str, window: Duration| {
        fleet_run(
            &binaries,
            work.path(),
            &data_dir,
            &FleetSpec {
                metrics_interval,
                ..FleetSpec::plain(100)
            },
            Some((options.settle(), window)),
        )
    };
    record(
        "scale: 100 services",
        (|| {
            for _ in 0..options.runs {
                let run = hundred("0s", options.idle_window())?;
                figures.startup_100.samples.push(ms(run.startup));
                figures.rss_100.samples.push(run.rss_bytes as f64 / MIB);
                figures.cpu_100.samples.push(run.idle_cpu_percent);
                figures.shutdown_100.samples.push(ms(run.shutdown));
            }
            Ok(())
        })(),
    );
    record(
        "sampling: 100 services every 1 s",
        (|| {
            for _ in 0..options.runs {
                let run = hundred("1s", options.sampling_window())?;
                figures.sampling_100.samples.push(run.idle_cpu_percent);
            }
            Ok(())
        })(),
    );

    record(
        "reload: one of 100 services changed",
        (|| {
            for _ in 0..options.runs {
                let (elapsed, untouched) = reload_one_of_100(&binaries, work.path(), &data_dir)?;
                figures.reload_one.samples.push(ms(elapsed));
                figures.reload_untouched.samples.push(untouched as f64);
            }
            Ok(())
        })(),
    );

    record(
        "JS client: launch and invoke",
        (|| {
            let (registry, _) =
                fleet::write_registry(work.path(), &FleetSpec::plain(8), &binaries.fake_service)?;
            let js = NodeFigures::run(
                "clients/js/bench/launch_and_invoke.mjs",
                &[
                    binaries.conductor.display().to_string(),
                    registry.display().to_string(),
                    work.join("js-data").display().to_string(),
                    options.runs.max(3).to_string(),
                    options.api_requests().to_string(),
                ],
            )?;
            let number = |key: &str| js.number(key);
            figures
                .js_launch_overhead
                .samples
                .push(number("launch_overhead_ms")?);
            figures.js_invoke_p99.samples.push(number("invoke_p99_ms")?);
            Ok(())
        })(),
    );

    record(
        "debug panel in headless Chromium",
        (|| {
            let chromium = crate::browser::prepare()?;
            let panel = NodeFigures::run(
                "tests/browser/panel_figures.mjs",
                &[
                    binaries.conductor.display().to_string(),
                    binaries.fake_service.display().to_string(),
                    chromium.display().to_string(),
                ],
            )?;
            let number = |key: &str| panel.number(key);
            figures
                .panel_first_render
                .samples
                .push(number("firstRenderMs")?);
            figures
                .panel_flood_events
                .samples
                .push(number("floodEventsPerSecond")?);
            figures
                .panel_flood_frame_gap
                .samples
                .push(number("worstFrameGapMs")?);
            Ok(())
        })(),
    );

    record(
        "control API under an SSE stream",
        (|| {
            for _ in 0..options.runs {
                let (p99, rate) =
                    get_all_during_event_stream(&binaries, work.path(), &data_dir, &options)?;
                figures.api_p99_sse.samples.push(p99);
                figures.sse_rate.samples.push(rate);
            }
            Ok(())
        })(),
    );

    let owned = figures.all();
    let machine = procfs::machine();
    println!();
    println!(
        "machine: {} cores, {}, kernel {}",
        machine["cores"],
        machine["cpu_model"].as_str().unwrap_or("unknown CPU"),
        machine["kernel"].as_str().unwrap_or("unknown")
    );
    println!(
        "{} run(s) each; ok? compares the median with the target; CPU time resolution {} ms{}",
        options.runs,
        ms(procfs::cpu_time_resolution()),
        if options.quick {
            " (--quick: shortened windows, not the targets' conditions)"
        } else {
            ""
        }
    );
    println!();
    print!("{}", stats::table(&owned));
    let growth = growth(&figures);
    println!();
    println!("growth from 8 to 100 services (medians):");
    for line in growth_lines(&growth) {
        println!("  {line}");
    }

    let report = serde_json::json!({
        "generated_by": "cargo xtask bench",
        "quick": options.quick,
        "runs": options.runs,
        "machine": machine,
        "binaries": {
            "conductor": binaries.conductor.display().to_string(),
            "fake_service": binaries.fake_service.display().to_string(),
            "log_throughput": binaries.log_throughput.display().to_string(),
        },
        "conditions": {
            "services": "fake-services without dependencies, critical, default health check (http /health every 10 s)",
            "data_dir": "warm: the database exists and no migration is pending",
            "idle_window_seconds": options.idle_window().as_secs_f64(),
            "settle_seconds": options.settle().as_secs_f64(),
            "recovery_backoff": "0ms",
            "stubborn_stop_timeout": STUBBORN_STOP_TIMEOUT,
            "fixture_subtracted": "median of fixture_start_ms",
            "ok": "the median meets the target",
            "cpu_time_resolution_ms": ms(procfs::cpu_time_resolution()),
        },
        "metrics": stats::metrics_json(&owned),
        "growth_8_to_100": growth,
        "errors": errors,
    });
    let out_dir = target_dir().join("bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let report_path = out_dir.join("report.json");
    let text = serde_json::to_string_pretty(&report).context("serialising the report")?;
    std::fs::write(&report_path, text + "\n")
        .with_context(|| format!("writing {}", report_path.display()))?;
    println!();
    println!("report: {}", report_path.display());

    if !errors.is_empty() {
        bail!("{} scenario(s) could not be measured", errors.len());
    }
    let misses: Vec<&str> = owned
        .iter()
        .filter(|metric| metric.ok() == Some(false))
        .map(|metric| metric.key)
        .collect();
    if options.check && !misses.is_empty() {
        bail!(
            "{} figure(s) missed their target: {}",
            misses.len(),
            misses.join(", ")
        );
    }
    Ok(())
}

/// Builds the release binaries (unless `--no-build`) and returns their paths.
fn build(options: &Options) -> anyhow::Result<Binaries> {
    if options.build {
        run_checked(cargo().args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "conductor",
            "-p",
            "fake-service",
        ]))?;
        run_checked(cargo().args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "conductor-logs",
            "--example",
            "log_throughput",
        ]))?;
        // Its own target directory: the shipped binary is never the one with the feature.
        run_checked(
            cargo()
                .args([
                    "build",
                    "--release",
                    "--quiet",
                    "-p",
                    "conductor",
                    "--features",
                    "bench-events",
                    "--target-dir",
                ])
                .arg(target_dir().join("bench-events")),
        )?;
    }
    let release = target_dir().join("release");
    let binaries = Binaries {
        conductor: release.join("conductor"),
        conductor_bench_events: target_dir()
            .join("bench-events")
            .join("release")
            .join("conductor"),
        fake_service: release.join("fake-service"),
        log_throughput: release.join("examples").join("log_throughput"),
    };
    for path in [
        &binaries.conductor,
        &binaries.conductor_bench_events,
        &binaries.fake_service,
        &binaries.log_throughput,
    ] {
        if !path.exists() {
            bail!("{} is missing; run without --no-build", path.display());
        }
    }
    Ok(binaries)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// What one start-idle-stop cycle of a fleet measured.
struct FleetRun {
    startup: Duration,
    /// Spawn → "Database initialized": the part of startup before any service is spawned.
    database_ready: Duration,
    rss_bytes: u64,
    idle_cpu_percent: f64,
    shutdown: Duration,
}

/// Starts conductor with `spec`, times "All services ready", optionally waits `settle` and
/// counts conductor's CPU time and RSS over an idle window, then times SIGTERM → every
/// service gone.
fn fleet_run(
    binaries: &Binaries,
    work: &Path,
    data_dir: &Path,
    spec: &FleetSpec,
    idle: Option<(Duration, Duration)>,
) -> anyhow::Result<FleetRun> {
    let (registry, _) = fleet::write_registry(work, spec, &binaries.fake_service)?;
    let mut conductor = fleet::start(&binaries.conductor, &registry, data_dir)?;
    let database = fleet::wait_line(
        &mut conductor,
        "Database initialized",
        Duration::from_secs(60),
    )?;
    let ready = fleet::wait_line(
        &mut conductor,
        "All services ready",
        Duration::from_secs(120),
    )?;
    let startup = ready.duration_since(conductor.spawned_at());
    let database_ready = database.duration_since(conductor.spawned_at());
    let mut api = conductor.control()?.connect()?;
    let statuses = fleet::get_all(&mut api)?;
    fleet::remember(&mut conductor, &statuses);
    drop(api);
    let pids: Vec<u32> = statuses.iter().filter_map(|status| status.pid).collect();
    if pids.len() != spec.services {
        bail!(
            "{} of {} services have a pid after startup",
            pids.len(),
            spec.services
        );
    }

    let pid = conductor.pid();
    let (mut rss_bytes, mut idle_cpu_percent) = (0, 0.0);
    if let Some((settle, window)) = idle {
        // Measurement windows: letting time pass idle is what is measured.
        std::thread::sleep(settle);
        let before = procfs::cpu_time(pid).context("reading conductor's CPU time")?;
        let opened = Instant::now();
        std::thread::sleep(window);
        let after = procfs::cpu_time(pid).context("reading conductor's CPU time")?;
        let elapsed = opened.elapsed();
        idle_cpu_percent =
            after.saturating_sub(before).as_secs_f64() / elapsed.as_secs_f64() * 100.0;
        rss_bytes = process::status_bytes(pid, "VmRSS:").context("reading conductor's RSS")?;
    }

    let signalled = Instant::now();
    conductor.terminate();
    let gone = wait_gone(&pids, Duration::from_secs(30))?;
    let shutdown = gone.duration_since(signalled);
    if conductor.wait_exit(Duration::from_secs(30)).is_err() {
        bail!("conductor did not exit within 30 s of SIGTERM");
    }
    Ok(FleetRun {
        startup,
        database_ready,
        rss_bytes,
        idle_cpu_percent,
        shutdown,
    })
}

/// Polls `/proc` until every pid is gone (or a zombie); returns when the last one went.
fn wait_gone(pids: &[u32], timeout: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    let mut left: Vec<u32> = pids.to_vec();
    loop {
        left.retain(|&pid| !process::is_gone(pid));
        let now = Instant::now();
        if left.is_empty() {
            return Ok(now);
        }
        if now >= deadline {
            bail!("pids {left:?} still alive {timeout:?} after SIGTERM");
        }
        // Polling the process table: nothing to block on for another process's exit.
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// One conductor with a zero restart backoff: `services:get-all` latency and throughput while
/// the fleet is steady, then SIGKILL-to-healthy, one service after another.
fn api_and_recovery(
    binaries: &Binaries,
    work: &Path,
    data_dir: &Path,
    options: &Options,
    fixture_ms: Option<f64>,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let spec = FleetSpec {
        backoff: "0ms",
        ..FleetSpec::plain(8)
    };
    let (registry, services) = fleet::write_registry(work, &spec, &binaries.fake_service)?;
    let (mut conductor, mut api, _) = fleet::start_ready(&binaries.conductor, &registry, data_dir)?;

    for _ in 0..options.runs {
        // Warm the connection and conductor's code paths before timing.
        for _ in 0..100 {
            fleet::get_all_raw(&mut api)?;
        }
        let mut latencies = Vec::with_capacity(options.api_requests());
        for _ in 0..options.api_requests() {
            let sent = Instant::now();
            fleet::get_all_raw(&mut api)?;
            latencies.push(ms(sent.elapsed()));
        }
        latencies.sort_by(f64::total_cmp);
        figures
            .api_p50
            .samples
            .push(stats::percentile(&latencies, 50.0));
        figures
            .api_p99
            .samples
            .push(stats::percentile(&latencies, 99.0));

        // The same with a crowd of idle connections held open (each never sends a byte).
        let addr = conductor.control()?.addr;
        let idle: Vec<std::net::TcpStream> = (0..IDLE_CONNECTIONS)
            .filter_map(|_| std::net::TcpStream::connect(addr).ok())
            .collect();
        let mut busy = Vec::with_capacity(options.api_requests());
        for _ in 0..options.api_requests() {
            let sent = Instant::now();
            fleet::get_all_raw(&mut api)?;
            busy.push(ms(sent.elapsed()));
        }
        drop(idle);
        busy.sort_by(f64::total_cmp);
        figures
            .api_p99_idle
            .samples
            .push(stats::percentile(&busy, 99.0));

        let control = conductor.control()?;
        let mut clients = (0..8)
            .map(|_| control.connect())
            .collect::<std::io::Result<Vec<_>>>()?;
        let window = options.api_throughput_window();
        let barrier = std::sync::Barrier::new(clients.len() + 1);
        let (count, elapsed) = std::thread::scope(|scope| -> anyhow::Result<(usize, Duration)> {
            let workers: Vec<_> = clients
                .iter_mut()
                .map(|client| {
                    let barrier = &barrier;
                    scope.spawn(move || -> anyhow::Result<usize> {
                        barrier.wait();
                        let deadline = Instant::now() + window;
                        let mut n = 0;
                        while Instant::now() < deadline {
                            fleet::get_all_raw(client)?;
                            n += 1;
                        }
                        Ok(n)
                    })
                })
                .collect();
            barrier.wait();
            let started = Instant::now();
            let mut total = 0;
            for worker in workers {
                total += worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("a throughput client panicked"))??;
            }
            Ok((total, started.elapsed()))
        })?;
        figures
            .api_rps
            .samples
            .push(count as f64 / elapsed.as_secs_f64());
    }

    for run in 0..options.runs {
        let service = &services[run % services.len()];
        let old = running_pid(&mut api, service, Duration::from_secs(30))?;
        let killed = Instant::now();
        let _ = process::signal(old, process::SIGKILL);
        let healthy = fleet::wait_healthy(service.addr, Some(old), Duration::from_secs(30))?;
        let health_ms = ms(healthy.duration_since(killed));
        figures.recovery_health.samples.push(health_ms);
        if let Some(fixture) = fixture_ms {
            figures.recovery_net.samples.push(health_ms - fixture);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let statuses = fleet::get_all(&mut api)?;
            let now = Instant::now();
            let status = statuses.iter().find(|status| status.name == service.name);
            if let Some(status) = status
                && status.state == "running"
                && status.pid.is_some_and(|pid| pid != old)
            {
                fleet::remember(&mut conductor, &statuses);
                figures
                    .recovery_running
                    .samples
                    .push(ms(now.duration_since(killed)));
                break;
            }
            if now >= deadline {
                bail!(
                    "{} not running again 30 s after SIGKILL: {status:?}",
                    service.name
                );
            }
            // Polling interval of the condition, not a wait for something to happen.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    Ok(())
}

/// Runs `node <args>` and returns its stdout; a failure carries its stderr.
/// The one JSON object a node script of the repository printed (the JS client's and the
/// panel's figures).
struct NodeFigures {
    script: &'static str,
    json: serde_json::Value,
}

impl NodeFigures {
    /// Runs `node <script> <args>`, `script` relative to the project root.
    fn run(script: &'static str, args: &[String]) -> anyhow::Result<NodeFigures> {
        let output = std::process::Command::new("node")
            .arg(crate::util::project_root().join(script))
            .args(args)
            .output()
            .with_context(|| format!("running node {script}"))?;
        if !output.status.success() {
            bail!(
                "node {script} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let json = serde_json::from_str(stdout.trim())
            .with_context(|| format!("node {script} printed {stdout:?}"))?;
        Ok(NodeFigures { script, json })
    }

    fn number(&self, key: &str) -> anyhow::Result<f64> {
        self.json[key]
            .as_f64()
            .with_context(|| format!("node {} gave no {key}: {}", self.script, self.json))
    }
}

/// A 100-service fleet, then `app:reload` of the same registry with one service's `env`
/// changed: the time from the request to its answer (it answers once the changed service is
/// ready again), and how many of the other 99 kept their pid (all of them, or reload touched
/// what it should not have).
fn reload_one_of_100(
    binaries: &Binaries,
    work: &Path,
    data_dir: &Path,
) -> anyhow::Result<(Duration, usize)> {
    const CHANGED: &str = "s050";
    let (registry, _) =
        fleet::write_registry(work, &FleetSpec::plain(100), &binaries.fake_service)?;
    let (mut conductor, mut api, before) =
        fleet::start_ready(&binaries.conductor, &registry, data_dir)?;
    let text = std::fs::read_to_string(&registry)?;
    let header = format!("[services.{CHANGED}]\n");
    if !text.contains(&header) {
        bail!("{} has no [services.{CHANGED}]", registry.display());
    }
    let edited = text.replace(
        &header,
        &format!("{header}env = {{ BENCH_RELOAD = \"1\" }}\n"),
    );
    let changed_registry = work.join("bench-reload.toml");
    std::fs::write(&changed_registry, edited)?;
    let request = serde_json::json!({ "registry": changed_registry.display().to_string() });
    let sent = Instant::now();
    let answer = api.ok("app:reload", Some(&request))?;
    let elapsed = sent.elapsed();
    if answer["success"] != true || answer["changed"] != serde_json::json!([CHANGED]) {
        bail!("app:reload answered {answer}");
    }
    let after = fleet::get_all(&mut api)?;
    fleet::remember(&mut conductor, &after);
    let changed = after
        .iter()
        .find(|status| status.name == CHANGED)
        .context("the changed service is gone")?;
    let old_pid = before
        .iter()
        .find(|status| status.name == CHANGED)
        .and_then(|s| s.pid);
    if changed.state != "running" || changed.pid == old_pid {
        bail!(
            "{CHANGED} is {} with pid {:?} (was {old_pid:?})",
            changed.state,
            changed.pid
        );
    }
    let untouched = after
        .iter()
        .filter(|status| status.name != CHANGED)
        .filter(|status| {
            before
                .iter()
                .any(|old| old.name == status.name && old.pid == status.pid && old.pid.is_some())
        })
        .count();
    drop(api);
    conductor.quit(Duration::from_secs(60))?;
    Ok((elapsed, untouched))
}

/// get-all p99 while an SSE client reads [`SSE_EVENT_RATE`] events a second: a conductor built
/// with `bench-events` publishes them (no real channel produces that many), 8 services run;
/// returns the p99 and the events per second the reader saw.
fn get_all_during_event_stream(
    binaries: &Binaries,
    work: &Path,
    data_dir: &Path,
    options: &Options,
) -> anyhow::Result<(f64, f64)> {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let (registry, _) = fleet::write_registry(work, &FleetSpec::plain(8), &binaries.fake_service)?;
    let rate = SSE_EVENT_RATE.to_string();
    let (mut conductor, mut api, _) = fleet::start_ready_with(
        &binaries.conductor_bench_events,
        &registry,
        data_dir,
        &["--bench-event-rate", &rate],
    )?;
    let control = conductor.control()?;
    let addr = api.peer_addr()?;
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    write!(
        stream,
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
        control.token
    )?;
    for _ in 0..100 {
        fleet::get_all_raw(&mut api)?;
    }
    let stop = AtomicBool::new(false);
    let n_events = AtomicU64::new(0);
    let mut latencies = Vec::with_capacity(options.api_requests());
    let elapsed = std::thread::scope(|scope| -> anyhow::Result<Duration> {
        let reader = scope.spawn(|| {
            let mut buffer = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::SeqCst) {
                if let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    let seen = buffer[..n].windows(7).filter(|w| w == b"\nevent:").count();
                    n_events.fetch_add(seen as u64, Ordering::SeqCst);
                }
            }
        });
        // The stream is flowing before the clock starts.
        let flowing = Instant::now();
        while n_events.load(Ordering::SeqCst) == 0 && flowing.elapsed() < Duration::from_secs(5) {
            std::thread::yield_now();
        }
        let counted_from = n_events.load(Ordering::SeqCst);
        let started = Instant::now();
        let measured = (|| -> anyhow::Result<()> {
            for _ in 0..options.api_requests() {
                let sent = Instant::now();
                fleet::get_all_raw(&mut api)?;
                latencies.push(ms(sent.elapsed()));
            }
            Ok(())
        })();
        let elapsed = started.elapsed();
        n_events.fetch_sub(counted_from, Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        let _ = reader.join();
        measured.map(|()| elapsed)
    })?;
    drop(api);
    conductor.quit(Duration::from_secs(30))?;
    latencies.sort_by(f64::total_cmp);
    let rate = n_events.load(Ordering::SeqCst) as f64 / elapsed.as_secs_f64();
    Ok((stats::percentile(&latencies, 99.0), rate))
}

/// `services:stop` of one service, timed until it answers (the whole tree is gone by then),
/// first alone, then with [`UNRELATED_PROCESSES`] `sleep`s of our user running: the difference
/// is what the marker scan over `/proc` costs a stop.
fn stop_with_crowd(
    binaries: &Binaries,
    work: &Path,
    data_dir: &Path,
    options: &Options,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let spec = FleetSpec::plain(options.runs.max(1));
    let (registry, services) = fleet::write_registry(work, &spec, &binaries.fake_service)?;
    let (mut conductor, mut api, _) = fleet::start_ready(&binaries.conductor, &registry, data_dir)?;
    let stop = |api: &mut ControlConnection, service: &ServiceAddr| -> anyhow::Result<f64> {
        let body = json!({ "serviceName": service.name });
        let sent = Instant::now();
        api.action("services:stop", &body)?;
        Ok(ms(sent.elapsed()))
    };
    for service in &services {
        figures.stop_one.samples.push(stop(&mut api, service)?);
        api.action("services:start", &json!({ "serviceName": service.name }))?;
    }
    let statuses = fleet::get_all(&mut api)?;
    fleet::remember(&mut conductor, &statuses);
    let crowd = Crowd::start(UNRELATED_PROCESSES)?;
    let quiet = Summary::of(&figures.stop_one.samples).map(|s| s.median);
    // Every service started before the crowd, so each stop scans all of it.
    for service in &services {
        let busy = stop(&mut api, service)?;
        figures.stop_one_busy.samples.push(busy);
        if let Some(quiet) = quiet {
            figures.stop_scan_cost.samples.push(busy - quiet);
        }
    }
    drop(crowd);
    conductor.terminate();
    if conductor.wait_exit(Duration::from_secs(30)).is_err() {
        bail!("conductor did not exit within 30 s of SIGTERM");
    }
    Ok(())
}

/// conductor's RSS once each of 16 services has written 1 M lines of 100 bytes: what the
/// in-memory tails' bounds (lines and bytes) hold it to.
fn log_flood_rss(binaries: &Binaries, work: &Path, data_dir: &Path) -> anyhow::Result<u64> {
    let spec = FleetSpec {
        env: "FAKE_LOG_BURST = \"1000000\", FAKE_LOG_LINE_BYTES = \"100\"",
        ..FleetSpec::plain(LOG_FLOOD_SERVICES)
    };
    let (registry, services) = fleet::write_registry(work, &spec, &binaries.fake_service)?;
    let (mut conductor, mut api, _) = fleet::start_ready(&binaries.conductor, &registry, data_dir)?;
    let last = format!("{LOG_FLOOD_LINES:07}");
    let deadline = Instant::now() + Duration::from_secs(600);
    for service in &services {
        // Not only the newest: conductor's own note that the disk fell behind may follow it.
        let body = json!({ "serviceName": service.name, "lines": 20 });
        try_wait_until(
            deadline.saturating_duration_since(Instant::now()),
            &format!("{} to log its last burst line", service.name),
            || {
                let logs = api.ok("logs:get", Some(&body))?;
                let messages: Vec<&str> = logs["logs"]
                    .as_array()
                    .map(|entries| {
                        entries
                            .iter()
                            .filter_map(|entry| entry["message"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                anyhow::Ok(if messages.iter().any(|message| message.contains(&last)) {
                    Ok(())
                } else {
                    Err(messages.last().copied().unwrap_or_default().to_owned())
                })
            },
        )?;
    }
    let rss =
        process::status_bytes(conductor.pid(), "VmRSS:").context("reading conductor's RSS")?;
    conductor.terminate();
    if conductor.wait_exit(Duration::from_secs(120)).is_err() {
        bail!("conductor did not exit within 120 s after the log flood");
    }
    let _ = std::fs::remove_dir_all(data_dir.join("logs"));
    Ok(rss)
}

/// `n` `sleep` processes, killed and reaped on drop.
struct Crowd(Vec<std::process::Child>);

impl Crowd {
    fn start(n: usize) -> anyhow::Result<Crowd> {
        let mut crowd = Crowd(Vec::with_capacity(n));
        for _ in 0..n {
            let child = std::process::Command::new("sleep")
                .arg("1000")
                .stdin(std::process::Stdio::null())
                .spawn()
                .context("starting an unrelated sleep")?;
            crowd.0.push(child);
        }
        Ok(crowd)
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
    }
}

/// Waits until `service` is `running` with a pid, and returns the pid.
fn running_pid(
    api: &mut ControlConnection,
    service: &ServiceAddr,
    timeout: Duration,
) -> anyhow::Result<u32> {
    try_wait_until(timeout, &format!("{} to be running", service.name), || {
        let statuses = fleet::get_all(api)?;
        let status = statuses.iter().find(|status| status.name == service.name);
        let running = status
            .filter(|status| status.state == "running")
            .and_then(|status| status.pid);
        anyhow::Ok(running.ok_or_else(|| format!("{status:?}")))
    })
}

/// SIGTERM to a fleet whose last service ignores it: how long until the others are gone, and
/// until all are.
fn stubborn_shutdown(
    binaries: &Binaries,
    work: &Path,
    data_dir: &Path,
    spec: &FleetSpec,
) -> anyhow::Result<(Duration, Duration)> {
    let (registry, services) = fleet::write_registry(work, spec, &binaries.fake_service)?;
    let (mut conductor, api, statuses) =
        fleet::start_ready(&binaries.conductor, &registry, data_dir)?;
    drop(api);
    let stubborn_name = &services.last().context("an empty fleet")?.name;
    let pid_of = |wanted: bool| -> Vec<u32> {
        statuses
            .iter()
            .filter(|status| (&status.name == stubborn_name) == wanted)
            .filter_map(|status| status.pid)
            .collect()
    };
    let (stubborn, others) = (pid_of(true), pid_of(false));
    if stubborn.len() != 1 || others.len() + 1 != spec.services {
        bail!("not every service has a pid after startup: {statuses:?}");
    }
    let signalled = Instant::now();
    conductor.terminate();
    let others_gone = wait_gone(&others, Duration::from_secs(30))?;
    let all_gone = wait_gone(&stubborn, Duration::from_secs(30))?;
    if conductor.wait_exit(Duration::from_secs(30)).is_err() {
        bail!("conductor did not exit within 30 s of SIGTERM");
    }
    Ok((
        others_gone.duration_since(signalled),
        all_gone.duration_since(signalled),
    ))
}

/// Runs the logs crate's `log_throughput` example once: (lines per second, lines lost).
fn log_throughput(binaries: &Binaries) -> anyhow::Result<(f64, f64)> {
    let output = std::process::Command::new(&binaries.log_throughput)
        .env("FAKE_SERVICE_BIN", &binaries.fake_service)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {}", binaries.log_throughput.display()))?;
    if !output.status.success() {
        bail!(
            "log_throughput failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with('{'))
        .context("log_throughput printed no JSON line")?;
    let report: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("parsing {line:?}"))?;
    let rate = report["lines_per_sec"]
        .as_f64()
        .context("no lines_per_sec in the log_throughput report")?;
    let lost = report["lost"]
        .as_f64()
        .context("no lost in the log_throughput report")?;
    Ok((rate, lost))
}

/// How startup, RSS, idle CPU and shutdown grow from 8 to 100 services (medians).
fn growth(figures: &Figures) -> serde_json::Value {
    let median = |metric: &Metric| Summary::of(&metric.samples).map(|s| s.median);
    let pair = |small: &Metric, large: &Metric| -> serde_json::Value {
        match (median(small), median(large)) {
            (Some(a), Some(b)) => serde_json::json!({
                "at_8": a,
                "at_100": b,
                "ratio": if a > 0.0 { Some(b / a) } else { None },
                "per_extra_service": (b - a) / 92.0,
            }),
            _ => serde_json::Value::Null,
        }
    };
    serde_json::json!({
        "startup_ms": pair(&figures.startup_8, &figures.startup_100),
        "rss_mib": pair(&figures.rss_8, &figures.rss_100),
        "idle_cpu_percent": pair(&figures.cpu_8, &figures.cpu_100),
        "shutdown_ms": pair(&figures.shutdown_8, &figures.shutdown_100),
    })
}

fn growth_lines(growth: &serde_json::Value) -> Vec<String> {
    let mut lines = Vec::new();
    for (key, label, unit, per_unit, per_scale) in [
        ("startup_ms", "startup", "ms", "ms", 1.0),
        ("rss_mib", "RSS", "MiB", "KiB", 1024.0),
        ("idle_cpu_percent", "idle CPU", "%", "%", 1.0),
        ("shutdown_ms", "shutdown", "ms", "ms", 1.0),
    ] {
        let entry = &growth[key];
        let (Some(a), Some(b)) = (entry["at_8"].as_f64(), entry["at_100"].as_f64()) else {
            lines.push(format!("{label}: not measured"));
            continue;
        };
        let ratio = entry["ratio"]
            .as_f64()
            .map_or_else(|| "—".to_owned(), |r| format!("×{r:.1}"));
        let per = entry["per_extra_service"].as_f64().unwrap_or(0.0) * per_scale;
        lines.push(format!(
            "{label}: {a:.3} {unit} → {b:.3} {unit} ({ratio}, {per:+.3} {per_unit} per extra service)"
        ));
    }
    lines
}
