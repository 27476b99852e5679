//! Hot reload (issue 15): a new registry applied to exactly the services it changes.
//!
//! The new file is loaded and validated first, then compared with the running registry
//! ([`RegistryDiff`]); any refused change (the app's name, environment or window, the
//! database, the logs) means nothing is applied. Otherwise, in this order: removed services
//! are stopped (their whole trees) and dropped from status; restarted ones (what their process
//! sees changed) are stopped and get a fresh owner task with the new spec in the same slot;
//! retuned ones (probes, restart policy, timeouts, sampling) take the new spec without their
//! process noticing; added ones get a slot; then the restarted and added services that are
//! active start in the new registry's dependency order, each once its dependencies run.
//! Unchanged services are not touched, so they emit nothing. Startup and reloads hold one
//! lock: a reload during startup or during another reload is refused, never interleaved.

use std::{path::Path, sync::Arc};

use conductor_protocol::{Event, ReloadSummary, ServiceState};
use conductor_registry::{LoadError, Registry, RegistryDiff, ServiceSpec};
use tokio::{sync::oneshot, task::JoinSet};

use super::{Conductor, ServiceHandle, sampled_interval, tasks::close_queue};
use crate::{
    failure::{ActionError, Failure},
    fleet::{Member, Snapshot},
    service::Command,
    sync::LockExt,
};

/// Why a reload was not applied; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new registry does not load: every problem, with its position.
    #[error(transparent)]
    Invalid(#[from] LoadError),
    /// Changes a running app cannot take, each saying what and why.
    #[error("{}", .0.join("\n"))]
    Refused(Vec<String>),
    /// Startup or another reload is in progress.
    #[error("{0}")]
    Busy(&'static str),
    /// No file to read: the fleet was built from the built-in registry (or by a host that
    /// passes registries itself).
    #[error("no registry file to reload: conductor runs the built-in registry; name a file")]
    NoSource,
    /// [`Conductor::shutdown`] has begun.
    #[error("conductor is shutting down")]
    ShuttingDown,
}

impl ReloadError {
    /// One line per problem, as `app:reload` and `conductor reload` report them.
    pub fn messages(&self) -> Vec<String> {
        match self {
            ReloadError::Invalid(problems) => problems
                .problems
                .iter()
                .map(|problem| problem.to_string())
                .collect(),
            ReloadError::Refused(changes) => changes.clone(),
            other => vec![other.to_string()],
        }
    }
}

fn member(spec: &ServiceSpec) -> Member {
    Member {
        name: spec.name.clone(),
        port: spec.port,
        critical: spec.critical,
        active: spec.is_active(),
    }
}

impl Conductor {
    /// Reads the registry again (from `path`, else the file the fleet was started with, with
    /// the same features) and applies it: see [`Conductor::reload`]. The file is read on the
    /// blocking pool.
    pub async fn reload_file(&self, path: Option<&Path>) -> Result<ReloadSummary, ReloadError> {
        let (path, options) = match (path, &self.inner.source) {
            (Some(path), source) => (
                path.to_path_buf(),
                source
                    .as_ref()
                    .map(|source| source.options.clone())
                    .unwrap_or_default(),
            ),
            (None, Some(source)) => (source.path.clone(), source.options.clone()),
            (None, None) => return Err(ReloadError::NoSource),
        };
        let registry = tokio::task::spawn_blocking(move || Registry::load(&path, &options))
            .await
            .map_err(|_| ReloadError::Busy("the registry could not be read (its task died)"))??;
        self.reload(registry).await
    }

    /// Applies `new` to exactly the services it changes (module docs); returns what changed
    /// and publishes `app:reloaded`. Resolves once every restarted or added service that is
    /// started has come up or failed (its failure is its status, as with any start).
    pub async fn reload(&self, new: Registry) -> Result<ReloadSummary, ReloadError> {
        if self.is_stopping() {
            return Err(ReloadError::ShuttingDown);
        }
        let Ok(_lifecycle) = self.inner.lifecycle.try_lock() else {
            return Err(ReloadError::Busy(
                "conductor is starting its services or applying another reload; reload again \
                 once it is done",
            ));
        };
        let old = self.registry();
        let mut diff = RegistryDiff::between(&old, &new);
        for (port, holder) in self.inner.reserved_ports.lock_recovered().iter() {
            if let Some(service) = new.services.iter().find(|spec| spec.port == *port) {
                diff.refused.push(format!(
                    "services.{}.port is {port}, the port of {holder}; choose another port",
                    service.name
                ));
            }
        }
        if !diff.refused.is_empty() {
            return Err(ReloadError::Refused(diff.refused));
        }
        let new = Arc::new(new);
        let spec = |name: &String| {
            new.service(name)
                .expect("the diff names services of the new registry")
                .clone()
        };

        for name in &diff.removed {
            let Ok((slot, handle)) = self.slot(name) else {
                continue;
            };
            end_owner(&handle).await;
            self.inner.shared.forget_group(name);
            self.inner.shared.remove_member(slot);
            let mut table = self.inner.table.lock_recovered();
            table.services[slot] = None;
            table.index.remove(name);
        }
        for name in &diff.restarted {
            let Ok((slot, handle)) = self.slot(name) else {
                continue;
            };
            end_owner(&handle).await;
            let spec = spec(name);
            self.inner.shared.update_member(slot, member(&spec));
            self.inner
                .metrics
                .set_interval(slot, sampled_interval(&spec));
            if !spec.is_active() {
                // A fresh owner task of a service that is not started says nothing until asked;
                // its status must say disabled at once, not the old task's last `stopped`.
                self.inner.shared.update(
                    slot,
                    Snapshot {
                        state: ServiceState::Disabled,
                        pid: None,
                        running_since: None,
                        restarts: 0,
                        last_error: None,
                    },
                    "disabled by a reload",
                    "",
                );
            }
            let handle = self.launch_owner(spec, slot, None);
            self.inner.table.lock_recovered().services[slot] = Some(handle);
        }
        for name in &diff.retuned {
            let Ok((slot, handle)) = self.slot(name) else {
                continue;
            };
            let spec = spec(name);
            self.inner.shared.update_member(slot, member(&spec));
            self.inner
                .metrics
                .set_interval(slot, sampled_interval(&spec));
            let _ = handle
                .commands()
                .send(Command::Retune(Box::new(spec)))
                .await;
        }
        for name in &diff.added {
            let spec = spec(name);
            let slot = self.inner.shared.add_member(member(&spec));
            self.inner
                .metrics
                .add_series(spec.name.clone(), sampled_interval(&spec));
            let handle = self.launch_owner(spec, slot, None);
            let mut table = self.inner.table.lock_recovered();
            debug_assert_eq!(table.services.len(), slot, "slots are handed out in order");
            table.services.push(Some(handle));
            table.index.insert(name.clone(), slot);
        }
        let order = {
            let mut table = self.inner.table.lock_recovered();
            table.registry = new.clone();
            table.slots_in_order()
        };
        self.inner.shared.set_order(order);
        self.restart_sampler();

        let to_start: Vec<&String> = diff.restarted.iter().chain(&diff.added).collect();
        self.start_reloaded(&new, &to_start).await;

        let summary = ReloadSummary {
            added: diff.added,
            removed: diff.removed,
            // In registry order, like the other lists.
            changed: new
                .services
                .iter()
                .filter(|spec| {
                    diff.restarted.contains(&spec.name) || diff.retuned.contains(&spec.name)
                })
                .map(|spec| spec.name.clone())
                .collect(),
            unchanged: diff.unchanged,
        };
        tracing::info!(?summary, "registry reloaded");
        self.inner
            .shared
            .bus
            .publish(Event::AppReloaded(summary.clone()));
        Ok(summary)
    }

    /// Starts the active services of `names` level by level in `registry`'s plan, each once
    /// its dependencies run; one whose dependency does not run is failed without a spawn.
    async fn start_reloaded(&self, registry: &Registry, names: &[&String]) {
        for level in &registry.start_plan().levels {
            let mut starts = JoinSet::new();
            for name in level.iter().filter(|name| names.contains(name)) {
                let Some(spec) = registry.service(name).filter(|spec| spec.is_active()) else {
                    continue;
                };
                let missing = spec.depends_on.iter().find(|dependency| {
                    self.status(dependency)
                        .map_or(true, |status| status.status != ServiceState::Running)
                });
                let conductor = self.clone();
                let name = name.clone();
                match missing {
                    Some(dependency) => {
                        let failure = Failure::DependencyFailed(dependency.clone());
                        starts.spawn(async move {
                            let _ = conductor
                                .send(&name, |reply| Command::Abandon(failure, reply))
                                .await;
                        });
                    }
                    None => {
                        starts.spawn(async move {
                            if let Err(error) = conductor.start(&name).await
                                && !matches!(error, ActionError::ShuttingDown)
                            {
                                tracing::warn!(service = %name, "not started after reload: {error}");
                            }
                        });
                    }
                }
            }
            while starts.join_next().await.is_some() {}
        }
    }

    /// Publishes `app:reload-failed` for a reload the binary asked for on its own (a SIGHUP, a
    /// watched file) and that was refused: a UI learns the edit was bad.
    pub fn publish_reload_failure(&self, errors: Vec<String>) {
        self.inner
            .shared
            .bus
            .publish(Event::AppReloadFailed { errors });
    }

    fn is_stopping(&self) -> bool {
        self.inner
            .stopping
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Stops a service's process (its whole tree) and ends its owner task.
async fn end_owner(handle: &ServiceHandle) {
    let (tx, rx) = oneshot::channel();
    if handle.commands().send(Command::Shutdown(tx)).await.is_ok() {
        let _ = rx.await;
    }
    close_queue(&handle.commands);
}
