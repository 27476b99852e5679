//! Why a service is not where it was asked to be, as types: [`Failure`] is what went wrong with
//! the service itself (the step and the cause), [`ActionError`] is why a start, stop or restart
//! request did not reach its goal, which is a [`Failure`] or a refusal. Their `Display` is the
//! text users see (`lastError`, `service:error`, the JSON `error` of an action, startup's
//! report); the leaf causes (an OS error, an exit status, a probe's reason) are already text
//! and appear once, in the message, never again as a `source()`.

use conductor_registry::format_size;

/// A name that is not a service of the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown service \"{name}\"; services in this registry: {}", known.join(", "))]
pub struct UnknownService {
    /// The name asked for.
    pub name: String,
    /// The registry's service names.
    pub known: Vec<String>,
}

/// What went wrong with a service: the step it failed at and why. A service's `lastError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// Its program could not be started (the message of `conductor_spawn::SpawnError`).
    #[error("failed to start: {0}")]
    Spawn(String),
    /// Its port is held by another process (found before spawning it).
    #[error(
        "port {port} is already in use{}; stop that process or change services.{service}.port",
        holder.as_ref().map(|holder| format!(" by {holder}")).unwrap_or_default()
    )]
    PortTaken {
        /// The service.
        service: String,
        /// Its port.
        port: u16,
        /// The holder ("pid 42 (python3 -m http.server)"), when it could be found.
        holder: Option<String>,
    },
    /// Its process exited before its readiness probe passed.
    #[error("exited during startup ({0})")]
    ExitedDuringStartup(String),
    /// Its readiness probe did not pass within `readiness_timeout`.
    #[error("not ready: {0}")]
    NotReady(String),
    /// Its process exited while it was running.
    #[error("exited unexpectedly ({0})")]
    ExitedUnexpectedly(String),
    /// Its liveness probe failed `failure_threshold` times in a row.
    #[error("health check failed {count} times in a row: {reason}")]
    Unhealthy {
        /// Consecutive failed probes.
        count: u32,
        /// The last probe's reason.
        reason: String,
    },
    /// Its tree's memory stayed over `limits.memory` for two samples in a row.
    #[error(
        "its processes used {} of memory, over its limit of {}, in two samples in a row",
        format_size(*measured),
        format_size(*limit)
    )]
    MemoryLimit {
        /// The tree's memory at the last sample, in bytes.
        measured: u64,
        /// `limits.memory`, in bytes.
        limit: u64,
    },
    /// It was not started because a service it depends on did not start.
    #[error("dependency \"{0}\" did not start")]
    DependencyFailed(String),
    /// The retry budget is spent: `last` happened once more than `max_retries` allows.
    #[error("{last}; gave up after {restarts} restarts")]
    GaveUp {
        /// The failure of the last attempt.
        last: Box<Failure>,
        /// Restarts made before giving up.
        restarts: u32,
    },
    /// conductor's own task for the service panicked (a bug); its processes were killed.
    #[error(
        "internal error: conductor's task for this service panicked ({0}); its processes were \
         killed. Start it again; please report this with conductor.log"
    )]
    Panicked(String),
}

impl Failure {
    /// The failure of the attempt itself, beneath any [`Failure::GaveUp`].
    pub fn attempt(&self) -> &Failure {
        match self {
            Failure::GaveUp { last, .. } => last.attempt(),
            failure => failure,
        }
    }
}

/// Why a start, stop or restart did not reach its goal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// No such service.
    #[error(transparent)]
    UnknownService(#[from] UnknownService),
    /// The service failed on its way up (after its retries).
    #[error("{failure}")]
    Failed {
        /// The service.
        service: String,
        /// What went wrong.
        failure: Failure,
    },
    /// A stop arrived while the start was still waiting for readiness.
    #[error("service \"{service}\" was stopped before it became ready")]
    StoppedBeforeReady {
        /// The service.
        service: String,
    },
    /// `enabled = false` in the registry.
    #[error(
        "service \"{service}\" is disabled in the registry; set enabled = true under \
         [services.{service}] to use it"
    )]
    Disabled {
        /// The service.
        service: String,
    },
    /// It belongs to a feature that is not enabled.
    #[error(
        "service \"{service}\" belongs to feature \"{feature}\", which is not enabled; add it to \
         [app] features"
    )]
    FeatureNotEnabled {
        /// The service.
        service: String,
        /// Its feature.
        feature: String,
    },
    /// Too many requests are already waiting for this service.
    #[error(
        "{limit} requests are already waiting for service \"{service}\" to settle; retry once \
         it has"
    )]
    Busy {
        /// The service.
        service: String,
        /// How many may wait at once.
        limit: usize,
    },
    /// [`crate::Conductor::shutdown`] has begun: nothing is started any more.
    #[error("conductor is shutting down")]
    ShuttingDown,
    /// The service's owner task ended while handling the request (it panicked).
    #[error(
        "conductor's task for service \"{service}\" stopped while handling this request (see \
         conductor.log); its status says what became of the service"
    )]
    TaskEnded {
        /// The service.
        service: String,
    },
}

impl ActionError {
    /// The service's own failure, if that is what this is.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            ActionError::Failed { failure, .. } => Some(failure),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gave_up_failure_names_the_attempt_once_and_the_restarts() {
        let failure = Failure::GaveUp {
            last: Box::new(Failure::ExitedDuringStartup("exit code 3".into())),
            restarts: 2,
        };
        assert_eq!(
            failure.to_string(),
            "exited during startup (exit code 3); gave up after 2 restarts"
        );
        assert_eq!(
            failure.attempt(),
            &Failure::ExitedDuringStartup("exit code 3".into())
        );
    }

    #[test]
    fn a_port_failure_names_the_holder_when_known() {
        let taken = |holder: Option<&str>| Failure::PortTaken {
            service: "api".into(),
            port: 8080,
            holder: holder.map(str::to_owned),
        };
        assert_eq!(
            taken(Some("pid 7 (nc -l 8080)")).to_string(),
            "port 8080 is already in use by pid 7 (nc -l 8080); stop that process or change \
             services.api.port"
        );
        assert_eq!(
            taken(None).to_string(),
            "port 8080 is already in use; stop that process or change services.api.port"
        );
    }

    #[test]
    fn a_memory_failure_names_the_measured_value_and_the_limit() {
        let failure = Failure::MemoryLimit {
            measured: 150 * 1024 * 1024 + 512 * 1024,
            limit: 100 * 1024 * 1024,
        };
        assert_eq!(
            failure.to_string(),
            "its processes used 150.5MB of memory, over its limit of 100.0MB, in two samples in a row"
        );
    }

    #[test]
    fn a_failed_action_reads_as_its_failure() {
        let error = ActionError::Failed {
            service: "api".into(),
            failure: Failure::NotReady("timed out after 5s".into()),
        };
        assert_eq!(error.to_string(), "not ready: timed out after 5s");
        assert!(error.failure().is_some());
        assert_eq!(ActionError::ShuttingDown.failure(), None);
    }
}
