//! The probe vocabulary ([`Probe`], [`ProbeOutcome`]) and the [`Prober`] that runs one probe
//! under a timeout by dispatching to the HTTP, TCP and exec modules.
//! It holds no per-service state and no locks: every probe is independent of every other.

use std::{fmt, path::PathBuf, time::Duration};

use crate::{exec, http, tcp};

/// What to check to decide whether a service is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `GET http://127.0.0.1:<port><path>` (falling back to `[::1]` when refused) answers 2xx,
    /// and if its body is JSON with a `"status"`, that status is `"ok"` or `"healthy"`
    /// (`"degraded"` gives [`ProbeOutcome::Degraded`]).
    Http {
        /// The service's port on the loopback interface.
        port: u16,
        /// The request path, such as `/health`; a missing leading `/` is added.
        path: String,
    },
    /// A TCP connection to the port (127.0.0.1, else `[::1]`) is accepted.
    Tcp {
        /// The service's port on the loopback interface.
        port: u16,
    },
    /// The program, run with these arguments, exits with code 0.
    Exec {
        /// The program to run (looked up in `PATH` if it has no slash).
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// Its working directory; the caller's when `None`.
        cwd: Option<PathBuf>,
        /// The service's tree marker, so that a probe left behind by a killed conductor is
        /// reclaimed with the service's other processes.
        marker: Option<conductor_spawn::TreeMarker>,
    },
    /// No check: a running service counts as healthy.
    None,
}

/// The verdict of one probe. The strings say why, for logs and `lastError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The service answered as healthy.
    Healthy,
    /// The service is up but says it is degraded (`{"status":"degraded"}`).
    Degraded(String),
    /// The service is not up, e.g. `GET /health answered 503`, `connection refused`,
    /// `timed out after 2s`.
    Unhealthy(String),
}

impl ProbeOutcome {
    /// True for [`Healthy`](ProbeOutcome::Healthy) and [`Degraded`](ProbeOutcome::Degraded):
    /// the service is serving, so it counts as ready and alive.
    pub fn is_up(&self) -> bool {
        matches!(self, ProbeOutcome::Healthy | ProbeOutcome::Degraded(_))
    }

    /// Why the outcome is not plainly healthy, if it is not.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ProbeOutcome::Healthy => None,
            ProbeOutcome::Degraded(reason) | ProbeOutcome::Unhealthy(reason) => Some(reason),
        }
    }
}

impl fmt::Display for ProbeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeOutcome::Healthy => f.write_str("healthy"),
            ProbeOutcome::Degraded(reason) => write!(f, "degraded: {reason}"),
            ProbeOutcome::Unhealthy(reason) => write!(f, "unhealthy: {reason}"),
        }
    }
}

/// Runs probes. Cheap to clone; clones share one HTTP client and its connection pool, so
/// periodic probes of a service reuse a kept-alive connection instead of connecting each time.
#[derive(Clone)]
pub struct Prober {
    client: http::Client,
}

impl fmt::Debug for Prober {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prober").finish_non_exhaustive()
    }
}

impl Default for Prober {
    fn default() -> Prober {
        Prober::new()
    }
}

impl Prober {
    /// A prober with its own connection pool. It needs no runtime until it probes.
    pub fn new() -> Prober {
        Prober {
            client: http::client(),
        }
    }

    /// Runs `probe` once; whatever happens takes at most about `timeout`, after which the
    /// outcome is `Unhealthy("timed out after …")` (an exec probe's process group is killed).
    ///
    /// `correlation_id` is sent as the `X-Correlation-ID` header of HTTP probes and as
    /// `CONDUCTOR_CORRELATION_ID` in the environment of exec probes; an empty one is not sent.
    pub async fn probe(
        &self,
        probe: &Probe,
        timeout: Duration,
        correlation_id: &str,
    ) -> ProbeOutcome {
        match probe {
            Probe::Http { port, path } => {
                http::probe(&self.client, *port, path, timeout, correlation_id).await
            }
            Probe::Tcp { port } => tcp::probe(*port, timeout).await,
            Probe::Exec {
                program,
                args,
                cwd,
                marker,
            } => {
                exec::probe(
                    program,
                    args,
                    cwd.as_deref(),
                    marker.as_ref(),
                    timeout,
                    correlation_id,
                )
                .await
            }
            Probe::None => ProbeOutcome::Healthy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_means_healthy_or_degraded() {
        assert!(ProbeOutcome::Healthy.is_up());
        assert!(ProbeOutcome::Degraded("slow".to_owned()).is_up());
        assert!(!ProbeOutcome::Unhealthy("down".to_owned()).is_up());
    }

    #[test]
    fn display_and_reason() {
        let outcome = ProbeOutcome::Unhealthy("connection refused".to_owned());
        assert_eq!(outcome.to_string(), "unhealthy: connection refused");
        assert_eq!(outcome.reason(), Some("connection refused"));
        assert_eq!(ProbeOutcome::Healthy.to_string(), "healthy");
        assert_eq!(ProbeOutcome::Healthy.reason(), None);
    }
}
