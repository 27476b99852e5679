//! Readiness: probe until the service is up or the ready timeout is spent, polling fast at
//! first (every 1 ms for 10 ms, then doubling to 250 ms) so readiness is seen within
//! milliseconds of happening.
//! It does not start, stop or restart anything; what a [`NotReady`] means is the caller's call.

use std::time::Duration;

use tokio::time::Instant;

use crate::{Probe, ProbeOutcome, Prober, duration::human};

/// The first pause between attempts. A typical local service listens a few milliseconds
/// after exec, so the first retries are where readiness is usually seen: 1, 2, 4, 8 ms ….
const FIRST_RETRY: Duration = Duration::from_millis(1);
/// Pauses double up to this.
const MAX_RETRY: Duration = Duration::from_millis(250);
/// For this long after the first attempt the pause stays at [`FIRST_RETRY`]: a local service
/// usually starts listening within it, and a connect to a closed port costs microseconds.
const FAST_WINDOW: Duration = Duration::from_millis(10);
/// One attempt never takes longer than this, so a hung attempt cannot eat the whole budget.
const MAX_ATTEMPT: Duration = Duration::from_secs(2);

/// The service did not come up within the ready timeout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not ready after {} ({attempts} {}): {last}", human(*.waited), probes(*.attempts))]
pub struct NotReady {
    /// How long we polled.
    pub waited: Duration,
    /// How many probes ran.
    pub attempts: u32,
    /// Why the last probe failed, such as `connection refused`.
    pub last: String,
}

fn probes(attempts: u32) -> &'static str {
    if attempts == 1 { "probe" } else { "probes" }
}

impl Prober {
    /// Probes at once, then every 1 ms for 10 ms, then 2 ms, 4 ms … (at most 250 ms apart), each
    /// attempt limited to the smaller of the time left and 2 s, until one is up
    /// ([`ProbeOutcome::is_up`]) and returned, or `ready_timeout` is spent.
    pub async fn wait_ready(
        &self,
        probe: &Probe,
        ready_timeout: Duration,
        correlation_id: &str,
    ) -> Result<ProbeOutcome, NotReady> {
        let started = Instant::now();
        let deadline = started + ready_timeout;
        let mut pause = FIRST_RETRY;
        let mut attempts = 0u32;
        let mut last = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // The pause ran into the deadline: a probe with no time left could only say
            // "timed out after 0ms", which would hide the real reason of the one before.
            if attempts > 0 && left.is_zero() {
                return Err(NotReady {
                    waited: started.elapsed(),
                    attempts,
                    last,
                });
            }
            attempts += 1;
            let outcome = self
                .probe(probe, left.min(MAX_ATTEMPT), correlation_id)
                .await;
            if outcome.is_up() {
                tracing::debug!(correlation_id, attempts, "ready");
                return Ok(outcome);
            }
            outcome.reason().unwrap_or("not up").clone_into(&mut last);
            let now = Instant::now();
            if now >= deadline {
                return Err(NotReady {
                    waited: now - started,
                    attempts,
                    last,
                });
            }
            tracing::trace!(correlation_id, attempts, reason = %last, "not ready yet");
            tokio::time::sleep_until((now + pause).min(deadline)).await;
            if started.elapsed() >= FAST_WINDOW {
                pause = (pause * 2).min(MAX_RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message() {
        let not_ready = NotReady {
            waited: Duration::from_millis(30_004),
            attempts: 57,
            last: "connection refused".to_owned(),
        };
        assert_eq!(
            not_ready.to_string(),
            "not ready after 30s (57 probes): connection refused"
        );
        let once = NotReady {
            waited: Duration::ZERO,
            attempts: 1,
            ..not_ready
        };
        assert_eq!(
            once.to_string(),
            "not ready after 0ms (1 probe): connection refused"
        );
    }
}
