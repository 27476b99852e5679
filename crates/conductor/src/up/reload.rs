//! Reloading the registry while `up` runs: on SIGHUP, and with `--watch` whenever the registry
//! file changes (editors write a new file and rename it over the old, so the directory is
//! watched and events are debounced). A refused reload is printed on stderr and published as
//! `app:reload-failed`; the fleet keeps running either way.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use conductor_supervisor::Conductor;
use notify::Watcher;
use tokio::sync::mpsc;

/// Quiet time after the last change before the file is read: an editor's save is several
/// events (write, rename, attribute changes).
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Reloads and reports the outcome on stdout, or on stderr and as an event.
pub(super) async fn reload_and_report(conductor: Conductor, trigger: &'static str) {
    match conductor.reload_file(None).await {
        Ok(summary) => {
            let list = |names: &[String]| {
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            };
            say!(
                "✓ Reloaded ({trigger}): added {}; removed {}; changed {}; {} unchanged",
                list(&summary.added),
                list(&summary.removed),
                list(&summary.changed),
                summary.unchanged.len()
            );
        }
        Err(error) => {
            let errors = error.messages();
            say_err!("✗ Reload ({trigger}) not applied; the fleet runs on unchanged:");
            for line in &errors {
                say_err!("  {line}");
            }
            tracing::warn!(%trigger, "reload refused: {}", errors.join("; "));
            conductor.publish_reload_failure(errors);
        }
    }
}

/// Watches `file` and sends one message per settled change. Dropping the returned watcher
/// stops it.
pub(super) fn watch(
    file: PathBuf,
) -> anyhow::Result<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
    let file = std::path::absolute(&file).context("resolving the registry path")?;
    let dir = file
        .parent()
        .map(PathBuf::from)
        .context("the registry file has no directory")?;
    let name = file.file_name().map(|name| name.to_owned());
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the file (as a reload does) is an event too: only changes count.
        if let Ok(event) = event
            && matches!(
                event.kind,
                notify::EventKind::Create(_)
                    | notify::EventKind::Modify(_)
                    | notify::EventKind::Remove(_)
            )
            && event
                .paths
                .iter()
                .any(|path| path.file_name().map(|n| n.to_owned()) == name)
        {
            let _ = raw_tx.send(());
        }
    })
    .context("starting the file watcher")?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", dir.display()))?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while raw_rx.recv().await.is_some() {
            // Wait until the burst of events of one save is over.
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, raw_rx.recv()).await {}
            if tx.send(()).await.is_err() {
                return;
            }
        }
    });
    Ok((watcher, rx))
}

/// The next settled change of the watched file; never without `--watch`.
pub(super) async fn next_change(changes: &mut Option<mpsc::Receiver<()>>) {
    if let Some(receiver) = changes
        && receiver.recv().await.is_some()
    {
        return;
    }
    std::future::pending().await
}
