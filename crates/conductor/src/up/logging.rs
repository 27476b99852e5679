//! conductor's own log, `<logs>/conductor.log`: tracing through a non-blocking writer into a
//! file rotated by size like the service logs, filtered by `CONDUCTOR_LOG`.

use std::path::Path;

use anyhow::Context;
use conductor_registry::Registry;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};

/// Installs the global subscriber. Dropping the guard flushes what is still queued.
pub(super) fn init(logs: &Path, registry: &Registry) -> anyhow::Result<WorkerGuard> {
    // The default queue holds 128 000 lines and touches every slot up front (4 MiB of RSS);
    // conductor logs a few lines per lifecycle event, so 1 000 is plenty (beyond it, lines
    // are dropped rather than blocking, as with the default).
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(1000)
        .finish(
            // Rotated by size like the service logs (the registry's [logs] max_size and
            // max_files), on the appender's own thread.
            conductor_logs::RotatingFile::open(
                logs,
                "conductor",
                registry.logs.max_size,
                registry.logs.max_files,
            )
            .with_context(|| format!("opening {}", logs.join("conductor.log").display()))?,
        );
    let (targets, bad_filter) = targets(std::env::var("CONDUCTOR_LOG").ok().as_deref());
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
    Ok(guard)
}

/// `CONDUCTOR_LOG` is `level` or `target=level` pairs, e.g. `info,conductor_supervisor=debug`.
/// An unreadable value falls back to info and is reported (the second value).
fn targets(filter: Option<&str>) -> (tracing_subscriber::filter::Targets, Option<String>) {
    let info = || tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO);
    match filter.map(|text| (text, text.parse())) {
        Some((_, Ok(targets))) => (targets, None),
        Some((text, Err(err))) => (info(), Some(format!("{text:?}: {err}"))),
        None => (info(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_filter_falls_back_to_info_and_says_why() {
        let (targets, bad) = targets(Some("conductor_supervisor=loud"));
        assert!(bad.unwrap().contains("conductor_supervisor=loud"));
        assert!(targets.would_enable("anything", &tracing::Level::INFO));
        assert!(!targets.would_enable("anything", &tracing::Level::DEBUG));
    }

    #[test]
    fn a_good_filter_is_taken() {
        let (targets, bad) = targets(Some("info,conductor_supervisor=debug"));
        assert_eq!(bad, None);
        assert!(targets.would_enable("conductor_supervisor", &tracing::Level::DEBUG));
        assert!(!targets.would_enable("conductor_ipc", &tracing::Level::DEBUG));
    }
}
