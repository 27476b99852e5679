//! Shutdown: every service stopped in reverse dependency order, the owner tasks awaited, logs
//! flushed, the database closed and the run-state file removed; and the forced kill of a
//! second Ctrl-C.

use conductor_spawn::StopOutcome;
use tokio::{sync::oneshot, task::JoinSet};

use super::{
    Conductor,
    run_state::kill_run_tree,
    tasks::{OWNER_END_GRACE, close_queue},
};
use crate::{service::Command, sync::LockExt};

/// One service as stopped by [`Conductor::shutdown`], in stop order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedService {
    /// The service.
    pub name: String,
    /// Its display title.
    pub title: String,
    /// How its process ended; `None` if none was running.
    pub outcome: Option<StopOutcome>,
}

/// The result of [`Conductor::shutdown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Services in the order they were stopped (reverse dependency order).
    pub services: Vec<StoppedService>,
    /// Whether the database was closed cleanly (false if it was never opened).
    pub database_closed: bool,
}

impl Conductor {
    /// SIGKILLs every live process group of this fleet at once, without waiting: the answer
    /// to a second Ctrl-C. Returns how many groups were signalled.
    pub fn kill_all(&self) -> usize {
        let state = self.inner.shared.watch_run_state().borrow().clone();
        let n_groups = conductor_spawn::reclaim(&state.records())
            .iter()
            .filter(|reclaimed| {
                matches!(
                    reclaimed.outcome,
                    conductor_spawn::ReclaimOutcome::Killed { .. }
                )
            })
            .count();
        n_groups + kill_run_tree(&state)
    }

    /// Stops every service in reverse dependency order (one level at a time, a level
    /// concurrently), then flushes logs and closes the database. Idempotent.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut done = self.inner.shutdown_done.lock().await;
        if let Some(report) = done.as_ref() {
            return report.clone();
        }
        let services = self.stop_all_services().await;
        self.end_owner_tasks().await;
        self.inner.logs.flush().await;
        let recorder = self.inner.shared.recorder.lock_recovered().take();
        let database = self.inner.database.clone();
        let database_closed = tokio::task::spawn_blocking(move || {
            if let Some(recorder) = recorder {
                recorder.close();
            }
            let db = database.lock_recovered().take();
            db.is_some_and(|db| db.close().is_ok())
        })
        .await
        .unwrap_or(false);
        self.inner.run_state_stop.send_replace(true);
        let writer = self.inner.run_state_writer.lock_recovered().take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        if let Some(path) = &self.inner.shared.run_state_path {
            let _ = std::fs::remove_file(path);
        }
        // The helpers have nothing left to do; dropping the set aborts them.
        let tasks = std::mem::take(&mut *self.inner.tasks.lock_recovered());
        drop(tasks);
        let report = ShutdownReport {
            services,
            database_closed,
        };
        *done = Some(report.clone());
        report
    }

    /// Closes every owner task's queue and awaits the tasks (they end once their queue is
    /// closed; every process was stopped already). A later request answers "conductor is
    /// shutting down". A task that does not end within [`OWNER_END_GRACE`] is aborted.
    async fn end_owner_tasks(&self) {
        let handles: Vec<_> = self
            .inner
            .table
            .lock_recovered()
            .handles()
            .cloned()
            .collect();
        for handle in handles {
            close_queue(&handle.commands);
        }
        let mut owners = std::mem::take(&mut *self.inner.owners.lock_recovered());
        let ended = tokio::time::timeout(OWNER_END_GRACE, async {
            while let Some(joined) = owners.join_next().await {
                if let Err(error) = joined
                    && error.is_panic()
                {
                    tracing::error!("a service's supervising task panicked: {error}");
                }
            }
        })
        .await;
        if ended.is_err() {
            tracing::warn!(
                n_tasks = owners.len(),
                "owner tasks still running {OWNER_END_GRACE:?} after shutdown; aborting them"
            );
            owners.shutdown().await;
        }
    }

    pub(super) async fn stop_all_services(&self) -> Vec<StoppedService> {
        let registry = self.registry();
        let plan = registry.start_plan();
        let mut stopped = Vec::new();
        for level in plan.stop_levels() {
            let mut stops = JoinSet::new();
            for name in level {
                let Ok(handle) = self.lookup(&name) else {
                    continue;
                };
                let commands = handle.commands();
                stops.spawn(async move {
                    let (tx, rx) = oneshot::channel();
                    let outcome = match commands.send(Command::Shutdown(tx)).await {
                        Ok(()) => rx.await.ok().flatten(),
                        Err(_) => None,
                    };
                    (name, outcome)
                });
            }
            let mut level_done: Vec<(String, Option<StopOutcome>)> = Vec::new();
            while let Some(joined) = stops.join_next().await {
                if let Ok(entry) = joined {
                    level_done.push(entry);
                }
            }
            // Report a level in registry order, whatever order its stops finished in.
            level_done.sort_by_key(|(name, _)| {
                registry.services.iter().position(|spec| &spec.name == name)
            });
            for (name, outcome) in level_done {
                let title = registry
                    .service(&name)
                    .map(|s| s.title())
                    .unwrap_or_default();
                stopped.push(StoppedService {
                    name,
                    title,
                    outcome,
                });
            }
        }
        stopped
    }
}
