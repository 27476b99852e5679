//! The service lifecycle as one pure, synchronous transition function:
//! `(phase, event) -> (new phase, effects)`.
//! It does no I/O and reads no clock: events carry their timestamps, effects are orders the
//! owner task ([`crate::service`]) carries out. An event that makes no sense in the current
//! phase is a no-op (see the table test), so stale events after a cancel are harmless.

use std::time::{Duration, Instant};

use conductor_protocol::ServiceState;

use crate::failure::Failure;

/// What the restart and health policy allows; copied from the registry at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    pub(crate) max_retries: u32,
    pub(crate) backoff: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) reset_after: Duration,
    pub(crate) failure_threshold: u32,
}

impl Policy {
    /// The delay before automatic restart number `restart` (1-based):
    /// backoff × 2^(restart-1), capped at backoff_max.
    pub(crate) fn delay(&self, restart: u32) -> Duration {
        let doublings = restart.saturating_sub(1).min(31);
        self.backoff
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.backoff_max)
            .min(self.backoff_max)
    }
}

/// Where a service is in its lifecycle; each phase holds only what is valid in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not running, not going to run.
    Stopped,
    /// Disabled in the registry or skipped by feature selection.
    Disabled,
    /// Gave up; only a manual start or restart leaves this phase.
    Failed { error: Failure },
    /// Waiting out the restart backoff.
    BackingOff,
    /// About to spawn (the owner spawns at once and reports `Spawned` or `SpawnFailed`).
    Spawning,
    /// Spawned; the readiness probe has not passed yet.
    Starting { pid: u32 },
    /// Ready, and liveness probes keep passing.
    Running { pid: u32, since: Instant },
    /// Alive but failing its probes; its process group is being stopped for a retry.
    Unhealthy { pid: u32 },
    /// Asked to stop; its process group is being stopped.
    Stopping { pid: u32, then: AfterStop },
}

/// What a requested stop leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterStop {
    /// Stay stopped (`stop`).
    Stay,
    /// Spawn again at once (`restart`).
    Start,
}

impl Phase {
    /// The wire state shown to the UI.
    pub(crate) fn state(&self) -> ServiceState {
        match self {
            Phase::Stopped => ServiceState::Stopped,
            Phase::Disabled => ServiceState::Disabled,
            Phase::Failed { .. } => ServiceState::Failed,
            Phase::BackingOff | Phase::Spawning | Phase::Starting { .. } => ServiceState::Starting,
            Phase::Running { .. } => ServiceState::Running,
            Phase::Unhealthy { .. } => ServiceState::Unhealthy,
            Phase::Stopping { .. } => ServiceState::Stopping,
        }
    }

    /// The process-group leader's pid while a process exists.
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Phase::Starting { pid }
            | Phase::Running { pid, .. }
            | Phase::Unhealthy { pid }
            | Phase::Stopping { pid, .. } => Some(*pid),
            _ => None,
        }
    }
}

/// Something that happened to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    StartRequested,
    StopRequested,
    RestartRequested,
    Spawned {
        pid: u32,
    },
    SpawnFailed {
        error: Failure,
    },
    Ready {
        at: Instant,
    },
    NotReady {
        error: String,
    },
    Exited {
        description: String,
        at: Instant,
    },
    ProbePassed {
        at: Instant,
    },
    ProbeFailed {
        reason: String,
    },
    BackoffElapsed,
    /// Its tree stayed over its memory limit (bytes measured, bytes allowed).
    MemoryExceeded {
        measured: u64,
        limit: u64,
    },
    /// It will not be started because something it needs (a dependency) did not start.
    Abandoned {
        error: Failure,
    },
}

/// Something the owner task must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Spawn the process (preflight, env, capture) and report `Spawned`/`SpawnFailed`;
    /// then probe readiness and report `Ready`/`NotReady`.
    Spawn,
    /// Report `BackoffElapsed` after this delay.
    ArmBackoff(Duration),
    /// Stop the process group (SIGTERM, wait, SIGKILL) and report `Exited`.
    Terminate,
    /// Emit a `service:error` event with this message.
    ReportError(Failure),
}

/// One service's lifecycle state and the counters its policy needs.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    phase: Phase,
    policy: Policy,
    /// Restarts since the service last stayed running for a whole `reset_after`.
    restarts: u32,
    /// Consecutive failed liveness probes.
    probe_failures: u32,
    last_error: Option<Failure>,
}

impl Machine {
    pub(crate) fn new(policy: Policy, enabled: bool) -> Machine {
        let phase = if enabled {
            Phase::Stopped
        } else {
            Phase::Disabled
        };
        Machine {
            phase,
            policy,
            restarts: 0,
            probe_failures: 0,
            last_error: None,
        }
    }

    /// A machine that starts out `failed` with `error` (its owner task was relaunched).
    pub(crate) fn failed(policy: Policy, error: Failure) -> Machine {
        Machine {
            phase: Phase::Failed {
                error: error.clone(),
            },
            policy,
            restarts: 0,
            probe_failures: 0,
            last_error: Some(error),
        }
    }

    pub(crate) fn phase(&self) -> &Phase {
        &self.phase
    }

    /// A reload changed the restart or health policy: it applies from the next event on.
    pub(crate) fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    pub(crate) fn restarts(&self) -> u32 {
        self.restarts
    }

    pub(crate) fn last_error(&self) -> Option<&Failure> {
        self.last_error.as_ref()
    }

    /// Applies one event; returns what the owner must do. Pure: no I/O, no clock.
    pub(crate) fn step(&mut self, event: Event) -> Vec<Effect> {
        use Event as E;
        use Phase as P;
        let phase = std::mem::replace(&mut self.phase, P::Stopped);
        let (next, effects) = match (phase, event) {
            // Manual start: a no-op success where a process is (or is about to be) up; from
            // rest it starts with a fresh restart budget, whatever ended the last run.
            (P::Stopped, E::StartRequested | E::RestartRequested) => {
                self.restarts = 0;
                (P::Spawning, vec![Effect::Spawn])
            }
            (P::Failed { .. }, E::StartRequested | E::RestartRequested) => {
                self.restarts = 0;
                (P::Spawning, vec![Effect::Spawn])
            }
            (P::BackingOff, E::RestartRequested) => {
                self.restarts = 0;
                (P::Spawning, vec![Effect::Spawn])
            }

            // Stop: from anything with a process, terminate it; otherwise settle at once.
            (
                P::Starting { pid } | P::Running { pid, .. } | P::Unhealthy { pid },
                E::StopRequested,
            ) => (
                P::Stopping {
                    pid,
                    then: AfterStop::Stay,
                },
                vec![Effect::Terminate],
            ),
            (P::BackingOff | P::Failed { .. }, E::StopRequested) => (P::Stopped, vec![]),
            (P::Stopping { pid, .. }, E::StopRequested) => (
                P::Stopping {
                    pid,
                    then: AfterStop::Stay,
                },
                vec![],
            ),

            // Restart: terminate, then spawn at once; a manual restart resets the budget.
            (
                P::Starting { pid } | P::Running { pid, .. } | P::Unhealthy { pid },
                E::RestartRequested,
            ) => {
                self.restarts = 0;
                (
                    P::Stopping {
                        pid,
                        then: AfterStop::Start,
                    },
                    vec![Effect::Terminate],
                )
            }
            (P::Stopping { pid, .. }, E::RestartRequested) => {
                self.restarts = 0;
                (
                    P::Stopping {
                        pid,
                        then: AfterStop::Start,
                    },
                    vec![],
                )
            }

            (P::Spawning, E::Spawned { pid }) => (P::Starting { pid }, vec![]),
            (P::Spawning, E::SpawnFailed { error }) => self.retry_or_fail(error),

            (P::Starting { pid }, E::Ready { at }) => {
                self.probe_failures = 0;
                (P::Running { pid, since: at }, vec![])
            }
            (P::Starting { pid }, E::NotReady { error }) => {
                let message = Failure::NotReady(error);
                self.last_error = Some(message.clone());
                (
                    P::Unhealthy { pid },
                    vec![Effect::ReportError(message), Effect::Terminate],
                )
            }
            (P::Starting { .. }, E::Exited { description, .. }) => {
                self.retry_or_fail(Failure::ExitedDuringStartup(description))
            }

            (P::Running { since, .. }, E::Exited { description, at }) => {
                self.forgive_if_stable(since, at);
                self.retry_or_fail(Failure::ExitedUnexpectedly(description))
            }
            (P::Running { pid, since }, E::ProbePassed { at }) => {
                self.probe_failures = 0;
                self.forgive_if_stable(since, at);
                (P::Running { pid, since }, vec![])
            }
            (P::Running { pid, since }, E::ProbeFailed { reason }) => {
                self.probe_failures += 1;
                if self.probe_failures >= self.policy.failure_threshold.max(1) {
                    let message = Failure::Unhealthy {
                        count: self.probe_failures,
                        reason,
                    };
                    self.last_error = Some(message.clone());
                    (
                        P::Unhealthy { pid },
                        vec![Effect::ReportError(message), Effect::Terminate],
                    )
                } else {
                    (P::Running { pid, since }, vec![])
                }
            }

            // Over its memory limit: stopped like an unhealthy service, and the restart that
            // follows counts as a retry.
            (
                P::Starting { pid } | P::Running { pid, .. },
                E::MemoryExceeded { measured, limit },
            ) => {
                let failure = Failure::MemoryLimit { measured, limit };
                self.last_error = Some(failure.clone());
                (
                    P::Unhealthy { pid },
                    vec![Effect::ReportError(failure), Effect::Terminate],
                )
            }

            // The terminate ordered when probes failed has finished: this counts as a retry.
            (P::Unhealthy { .. }, E::Exited { .. }) => {
                let error = self.last_error.clone().unwrap_or(Failure::Unhealthy {
                    count: self.probe_failures,
                    reason: "unhealthy".to_owned(),
                });
                self.retry_or_fail_quietly(error)
            }

            (
                P::Stopping {
                    then: AfterStop::Stay,
                    ..
                },
                E::Exited { .. },
            ) => (P::Stopped, vec![]),
            (
                P::Stopping {
                    then: AfterStop::Start,
                    ..
                },
                E::Exited { .. },
            ) => (P::Spawning, vec![Effect::Spawn]),

            (P::BackingOff, E::BackoffElapsed) => (P::Spawning, vec![Effect::Spawn]),
            (P::Stopped, E::Abandoned { error }) => {
                self.last_error = Some(error.clone());
                (
                    P::Failed {
                        error: error.clone(),
                    },
                    vec![Effect::ReportError(error)],
                )
            }

            // Everything else makes no sense in that phase and changes nothing.
            (phase, _) => (phase, vec![]),
        };
        self.phase = next;
        effects
    }

    /// `max_retries` counts restarts since the service last stayed running a whole
    /// `reset_after`: a long enough healthy run forgives the earlier ones.
    fn forgive_if_stable(&mut self, since: Instant, at: Instant) {
        if at.saturating_duration_since(since) >= self.policy.reset_after {
            self.restarts = 0;
        }
    }

    fn retry_or_fail(&mut self, error: Failure) -> (Phase, Vec<Effect>) {
        let (phase, mut effects) = self.retry_or_fail_quietly(error.clone());
        effects.insert(0, Effect::ReportError(error));
        (phase, effects)
    }

    fn retry_or_fail_quietly(&mut self, error: Failure) -> (Phase, Vec<Effect>) {
        self.last_error = Some(error.clone());
        if self.restarts >= self.policy.max_retries {
            let error = Failure::GaveUp {
                last: Box::new(error),
                restarts: self.restarts,
            };
            self.last_error = Some(error.clone());
            (Phase::Failed { error }, vec![])
        } else {
            self.restarts += 1;
            (
                Phase::BackingOff,
                vec![Effect::ArmBackoff(self.policy.delay(self.restarts))],
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> Policy {
        Policy {
            max_retries: 3,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
            failure_threshold: 3,
        }
    }

    fn exited(at: Instant) -> Event {
        Event::Exited {
            description: "exit code 1".into(),
            at,
        }
    }

    /// Brings a fresh machine to `Running` through the normal path.
    fn running(machine: &mut Machine, at: Instant) {
        machine.step(Event::StartRequested);
        machine.step(Event::Spawned { pid: 10 });
        machine.step(Event::Ready { at });
    }

    #[test]
    fn transition_table() {
        let t0 = Instant::now();
        let failed = Phase::Failed {
            error: Failure::Spawn("x".into()),
        };
        let running = Phase::Running { pid: 7, since: t0 };
        #[rustfmt::skip]
        let table: Vec<(Phase, Event, ServiceState, Vec<Effect>)> = vec![
            (Phase::Stopped, Event::StartRequested, ServiceState::Starting, vec![Effect::Spawn]),
            (Phase::Stopped, Event::StopRequested, ServiceState::Stopped, vec![]),
            (Phase::Disabled, Event::StartRequested, ServiceState::Disabled, vec![]),
            (Phase::Disabled, Event::RestartRequested, ServiceState::Disabled, vec![]),
            (failed.clone(), Event::StartRequested, ServiceState::Starting, vec![Effect::Spawn]),
            (failed.clone(), Event::StopRequested, ServiceState::Stopped, vec![]),
            (failed.clone(), Event::BackoffElapsed, ServiceState::Failed, vec![]),
            (Phase::Spawning, Event::Spawned { pid: 7 }, ServiceState::Starting, vec![]),
            (Phase::Starting { pid: 7 }, Event::Ready { at: t0 }, ServiceState::Running, vec![]),
            (Phase::Starting { pid: 7 }, Event::StartRequested, ServiceState::Starting, vec![]),
            (Phase::Starting { pid: 7 }, Event::StopRequested, ServiceState::Stopping, vec![Effect::Terminate]),
            (running.clone(), Event::StartRequested, ServiceState::Running, vec![]),
            (running.clone(), Event::StopRequested, ServiceState::Stopping, vec![Effect::Terminate]),
            (running.clone(), Event::RestartRequested, ServiceState::Stopping, vec![Effect::Terminate]),
            (running.clone(), Event::ProbePassed { at: t0 }, ServiceState::Running, vec![]),
            (running.clone(), Event::ProbeFailed { reason: "503".into() }, ServiceState::Running, vec![]),
            (running.clone(), Event::Spawned { pid: 8 }, ServiceState::Running, vec![]),
            (running.clone(), Event::BackoffElapsed, ServiceState::Running, vec![]),
            (running.clone(), exited(t0), ServiceState::Starting,
                vec![Effect::ReportError(Failure::ExitedUnexpectedly("exit code 1".into())), Effect::ArmBackoff(Duration::from_secs(1))]),
            (Phase::Unhealthy { pid: 7 }, Event::ProbeFailed { reason: "x".into() }, ServiceState::Unhealthy, vec![]),
            (running.clone(), Event::MemoryExceeded { measured: 300, limit: 200 }, ServiceState::Unhealthy,
                vec![Effect::ReportError(Failure::MemoryLimit { measured: 300, limit: 200 }), Effect::Terminate]),
            (Phase::Stopped, Event::MemoryExceeded { measured: 300, limit: 200 }, ServiceState::Stopped, vec![]),
            (Phase::Stopping { pid: 7, then: AfterStop::Stay }, exited(t0), ServiceState::Stopped, vec![]),
            (Phase::Stopping { pid: 7, then: AfterStop::Start }, exited(t0), ServiceState::Starting, vec![Effect::Spawn]),
            (Phase::Stopping { pid: 7, then: AfterStop::Stay }, Event::StartRequested, ServiceState::Stopping, vec![]),
            (Phase::BackingOff, Event::BackoffElapsed, ServiceState::Starting, vec![Effect::Spawn]),
            (Phase::BackingOff, Event::StopRequested, ServiceState::Stopped, vec![]),
            (Phase::BackingOff, Event::Ready { at: t0 }, ServiceState::Starting, vec![]),
        ];
        for (from, event, to, effects) in table {
            let mut machine = Machine::new(policy(), true);
            machine.phase = from.clone();
            let got = machine.step(event.clone());
            assert_eq!(
                (machine.phase().state(), &got),
                (to, &effects),
                "from {from:?} on {event:?}"
            );
        }
    }

    #[test]
    fn crash_loop_restarts_exactly_max_retries_times_then_fails() {
        let t0 = Instant::now();
        let mut machine = Machine::new(policy(), true);
        let mut spawns = 0;
        let mut effects = machine.step(Event::StartRequested);
        for _ in 0..10 {
            if effects.contains(&Effect::Spawn) {
                spawns += 1;
                machine.step(Event::Spawned { pid: 100 + spawns });
                machine.step(Event::Ready { at: t0 });
                effects = machine.step(exited(t0));
            } else if let Some(Effect::ArmBackoff(_)) = effects.last() {
                effects = machine.step(Event::BackoffElapsed);
            } else {
                break;
            }
        }
        assert_eq!(spawns, 4, "one start plus max_retries restarts");
        assert_eq!(machine.phase().state(), ServiceState::Failed);
        assert!(
            machine
                .last_error()
                .unwrap()
                .to_string()
                .contains("gave up after 3 restarts")
        );
    }

    #[test]
    fn a_manual_start_after_a_stop_resets_the_restart_budget() {
        let t0 = Instant::now();
        let mut machine = Machine::new(policy(), true);
        running(&mut machine, t0);
        machine.step(exited(t0));
        assert_eq!(machine.restarts(), 1);
        machine.step(Event::StopRequested);
        assert_eq!(machine.phase(), &Phase::Stopped);
        assert_eq!(machine.restarts(), 1, "a stop alone keeps the count");
        assert_eq!(machine.step(Event::StartRequested), vec![Effect::Spawn]);
        assert_eq!(machine.restarts(), 0, "a manual start begins a new budget");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = policy();
        let delays: Vec<u64> = (1..=7).map(|n| policy.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(policy.delay(200), Duration::from_secs(30));
    }

    #[test]
    fn a_stable_run_forgives_earlier_restarts() {
        let t0 = Instant::now();
        let mut machine = Machine::new(policy(), true);
        running(&mut machine, t0);
        machine.step(exited(t0));
        assert_eq!(machine.restarts(), 1);
        machine.step(Event::BackoffElapsed);
        machine.step(Event::Spawned { pid: 11 });
        machine.step(Event::Ready { at: t0 });
        machine.step(Event::ProbePassed {
            at: t0 + Duration::from_secs(61),
        });
        assert_eq!(machine.restarts(), 0);
    }

    #[test]
    fn failed_probes_at_the_threshold_make_it_unhealthy_and_count_as_a_retry() {
        let t0 = Instant::now();
        let mut machine = Machine::new(policy(), true);
        running(&mut machine, t0);
        let fail = || Event::ProbeFailed {
            reason: "GET /health answered 503".into(),
        };
        assert!(machine.step(fail()).is_empty());
        assert!(machine.step(fail()).is_empty());
        let effects = machine.step(fail());
        assert_eq!(machine.phase().state(), ServiceState::Unhealthy);
        assert_eq!(effects.last(), Some(&Effect::Terminate));
        let effects = machine.step(exited(t0));
        assert_eq!(machine.restarts(), 1);
        assert_eq!(effects, vec![Effect::ArmBackoff(Duration::from_secs(1))]);
    }

    #[test]
    fn a_passing_probe_resets_the_consecutive_failure_count() {
        let t0 = Instant::now();
        let mut machine = Machine::new(policy(), true);
        running(&mut machine, t0);
        for _ in 0..5 {
            machine.step(Event::ProbeFailed { reason: "x".into() });
            machine.step(Event::ProbeFailed { reason: "x".into() });
            machine.step(Event::ProbePassed { at: t0 });
        }
        assert_eq!(machine.phase().state(), ServiceState::Running);
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::StartRequested),
            Just(Event::StopRequested),
            Just(Event::RestartRequested),
            (1u32..5).prop_map(|pid| Event::Spawned { pid }),
            Just(Event::SpawnFailed {
                error: Failure::Spawn("enoent".into())
            }),
            (0u64..120).prop_map(|s| Event::Ready {
                at: base() + Duration::from_secs(s)
            }),
            Just(Event::NotReady {
                error: "timeout".into()
            }),
            (0u64..120).prop_map(|s| Event::Exited {
                description: "x".into(),
                at: base() + Duration::from_secs(s)
            }),
            (0u64..120).prop_map(|s| Event::ProbePassed {
                at: base() + Duration::from_secs(s)
            }),
            Just(Event::ProbeFailed {
                reason: "503".into()
            }),
            Just(Event::BackoffElapsed),
            Just(Event::MemoryExceeded {
                measured: 200 << 20,
                limit: 100 << 20,
            }),
            Just(Event::Abandoned {
                error: Failure::DependencyFailed("db".into())
            }),
        ]
    }

    fn base() -> Instant {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(Instant::now)
    }

    proptest! {
        /// Whatever happens, the invariants of the state model hold after every step.
        #[test]
        fn invariants_hold_for_any_event_sequence(events in proptest::collection::vec(arb_event(), 0..60)) {
            let mut machine = Machine::new(policy(), true);
            for event in events {
                let effects = machine.step(event);
                let phase = machine.phase();
                // A pid exists exactly in the phases that own a process.
                let has_process = matches!(phase, Phase::Starting{..} | Phase::Running{..} | Phase::Unhealthy{..} | Phase::Stopping{..});
                prop_assert_eq!(phase.pid().is_some(), has_process);
                prop_assert!(machine.restarts() <= policy().max_retries);
                // Terminate is only ordered for a phase that has a process to terminate.
                if effects.contains(&Effect::Terminate) {
                    prop_assert!(phase.pid().is_some());
                }
                // Spawn only ever leads to Spawning; a backoff only to BackingOff.
                if effects.contains(&Effect::Spawn) { prop_assert_eq!(phase, &Phase::Spawning); }
                if effects.iter().any(|e| matches!(e, Effect::ArmBackoff(_))) { prop_assert_eq!(phase, &Phase::BackingOff); }
                // Disabled is never left, never entered.
                prop_assert_ne!(phase, &Phase::Disabled);
            }
        }

        #[test]
        fn a_disabled_service_never_does_anything(events in proptest::collection::vec(arb_event(), 0..30)) {
            let mut machine = Machine::new(policy(), false);
            for event in events {
                prop_assert!(machine.step(event).is_empty());
                prop_assert_eq!(machine.phase(), &Phase::Disabled);
            }
        }
    }
}
