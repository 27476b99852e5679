//! Startup (SPEC §4 steps 4 and 5): the port preflight, then every active service in
//! dependency or sequential order, and the report of how each came out.

use std::collections::HashMap;

use conductor_protocol::LogEntry;
use conductor_registry::{Selection, StartupMode};
use tokio::{sync::watch, task::JoinSet};

use super::Conductor;
use crate::{
    failure::{ActionError, Failure},
    service::{self, Command},
};

/// How one service came out of startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// Running (its readiness probe passed).
    Started,
    /// Could not start; the app runs degraded without it (it is not critical).
    Failed(ActionError),
    /// `enabled = false`.
    Disabled,
    /// Its feature is not enabled.
    Skipped(String),
}

/// One line of the startup report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceOutcome {
    /// The service.
    pub name: String,
    /// Its display title ("Records").
    pub title: String,
    /// Its port.
    pub port: u16,
    /// What happened.
    pub outcome: StartOutcome,
}

/// The result of [`Conductor::start_all`], in registry order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartReport {
    /// Every service of the registry.
    pub services: Vec<ServiceOutcome>,
}

/// A critical service could not start; everything started was stopped again.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "critical service \"{service}\" could not start: {error}{}",
    render_lines(last_lines)
)]
pub struct StartupError {
    /// The service.
    pub service: String,
    /// Why: its [`Failure`] (the step and the cause), or a refusal such as shutting down.
    pub error: ActionError,
    /// Its last log lines.
    pub last_lines: Vec<LogEntry>,
}

fn render_lines(lines: &[LogEntry]) -> String {
    if lines.is_empty() {
        return "\n  (it wrote no log lines)".to_owned();
    }
    let mut text = String::from("\n  its last log lines:");
    for line in lines {
        text.push_str(&format!(
            "\n    {} {:5} {}",
            line.timestamp,
            line.level.as_str(),
            line.message
        ));
    }
    text
}

impl Conductor {
    /// Starts every active service: in `dependency` mode each as soon as its dependencies are
    /// running (independent ones concurrently), in `sequential` mode one at a time. A critical
    /// service that cannot start (after its retries) stops everything again and is reported;
    /// a non-critical one is left `failed`, and so are the services that depend on it.
    pub async fn start_all(&self) -> Result<StartReport, StartupError> {
        let _lifecycle = self.inner.lifecycle.lock().await;
        let registry = self.registry();
        let plan = registry.start_plan();
        let order: Vec<String> = plan.levels.iter().flatten().cloned().collect();
        let mut results: HashMap<String, Result<(), ActionError>> = HashMap::new();
        // SPEC §4 step 4, before anything is spawned: a busy port is not retried with backoff.
        for (name, failure) in self.busy_ports() {
            if self.is_critical(&name) {
                return Err(StartupError {
                    error: ActionError::Failed {
                        service: name.clone(),
                        failure,
                    },
                    service: name,
                    last_lines: Vec::new(),
                });
            }
            let error = self.abandon(&name, failure).await;
            results.insert(name, Err(error));
        }
        let outcome = match registry.app.startup {
            StartupMode::Sequential => {
                let mut failure = None;
                for name in &order {
                    if results.contains_key(name) {
                        continue;
                    }
                    let result = self.start_after_dependencies(name, &results).await;
                    if let Err(error) = &result
                        && self.is_critical(name)
                    {
                        failure = Some((name.clone(), error.clone()));
                    }
                    results.insert(name.clone(), result);
                    if failure.is_some() {
                        break;
                    }
                }
                failure
            }
            StartupMode::Dependency => self.start_concurrently(&order, &mut results).await,
        };
        if let Some((service, error)) = outcome {
            self.stop_all_services().await;
            let last_lines = self.inner.logs.get(Some(&service), 10);
            return Err(StartupError {
                service,
                error,
                last_lines,
            });
        }
        let services = self
            .registry()
            .services
            .iter()
            .map(|spec| ServiceOutcome {
                name: spec.name.clone(),
                title: spec.title(),
                port: spec.port,
                outcome: match &spec.selection {
                    Selection::Disabled => StartOutcome::Disabled,
                    Selection::SkippedByFeature(feature) => StartOutcome::Skipped(feature.clone()),
                    Selection::Active => match results.get(&spec.name) {
                        Some(Ok(())) => StartOutcome::Started,
                        Some(Err(reason)) => StartOutcome::Failed(reason.clone()),
                        // Only when startup was cut short, which reports an error instead.
                        None => StartOutcome::Failed(ActionError::StoppedBeforeReady {
                            service: spec.name.clone(),
                        }),
                    },
                },
            })
            .collect();
        Ok(StartReport { services })
    }

    /// The active services whose port another process holds, in registry order, each with a
    /// message naming the port and the holder. Orphans of a previous run were reclaimed before
    /// (SPEC §4 step 2), so a holder now is a foreign process.
    fn busy_ports(&self) -> Vec<(String, Failure)> {
        self.registry()
            .services
            .iter()
            .filter(|spec| spec.is_active())
            .filter_map(|spec| Some((spec.name.clone(), service::port_taken(spec)?)))
            .collect()
    }

    async fn start_concurrently(
        &self,
        order: &[String],
        results: &mut HashMap<String, Result<(), ActionError>>,
    ) -> Option<(String, ActionError)> {
        // One watch per service carries its startup result to the services that depend on it.
        let mut senders = HashMap::new();
        let mut receivers = HashMap::new();
        for name in order {
            let (tx, rx) = watch::channel::<Option<Result<(), ActionError>>>(None);
            senders.insert(name.clone(), tx);
            receivers.insert(name.clone(), rx);
        }
        let mut starts = JoinSet::new();
        let registry = self.registry();
        for name in order {
            let spec = registry
                .service(name)
                .expect("the plan names registry services");
            let dependencies: Vec<(String, watch::Receiver<_>)> = spec
                .depends_on
                .iter()
                .filter_map(|dep| receivers.get(dep).map(|rx| (dep.clone(), rx.clone())))
                .collect();
            let done = senders.remove(name).expect("one sender per service");
            if let Some(result) = results.get(name) {
                // Failed before startup (its port is taken): its dependents hear so at once.
                let _ = done.send(Some(result.clone()));
                continue;
            }
            let conductor = self.clone();
            let name = name.clone();
            starts.spawn(async move {
                let mut failed_dependency = None;
                for (dependency, mut rx) in dependencies {
                    let outcome = rx
                        .wait_for(Option::is_some)
                        .await
                        .map(|value| value.clone());
                    if !matches!(outcome, Ok(Some(Ok(())))) {
                        failed_dependency = Some(dependency);
                        break;
                    }
                }
                let result = match failed_dependency {
                    None => conductor.start(&name).await,
                    Some(dependency) => Err(conductor
                        .abandon(&name, Failure::DependencyFailed(dependency))
                        .await),
                };
                let _ = done.send(Some(result.clone()));
                (name, result)
            });
        }
        while let Some(joined) = starts.join_next().await {
            let Ok((name, result)) = joined else { continue };
            if let Err(error) = &result
                && self.is_critical(&name)
            {
                starts.abort_all();
                return Some((name, error.clone()));
            }
            results.insert(name, result);
        }
        None
    }

    async fn start_after_dependencies(
        &self,
        name: &str,
        results: &HashMap<String, Result<(), ActionError>>,
    ) -> Result<(), ActionError> {
        let registry = self.registry();
        let spec = registry
            .service(name)
            .expect("the plan names registry services");
        if let Some(dependency) = spec
            .depends_on
            .iter()
            .find(|dep| !matches!(results.get(*dep), Some(Ok(()))))
        {
            let failure = Failure::DependencyFailed(dependency.clone());
            return Err(self.abandon(name, failure).await);
        }
        self.start(name).await
    }

    /// Marks `name` failed without starting it; returns the error its start ends with.
    async fn abandon(&self, name: &str, failure: Failure) -> ActionError {
        let _ = self
            .send(name, |reply| Command::Abandon(failure.clone(), reply))
            .await;
        ActionError::Failed {
            service: name.to_owned(),
            failure,
        }
    }

    fn is_critical(&self, name: &str) -> bool {
        self.registry()
            .service(name)
            .is_some_and(|spec| spec.critical)
    }
}
