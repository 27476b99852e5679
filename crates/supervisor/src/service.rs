//! One owner task per service: it holds the [`Machine`], the child's [`ProcessGroup`] and the
//! futures of the current phase (readiness, health tick and probe, backoff), turns what happens
//! into machine events and carries out the effects.
//! Commands arrive on one queue and a stop is carried out inline, which serialises concurrent
//! start/stop/restart requests. Status reads never reach this task: it publishes a snapshot.

use std::{
    collections::VecDeque,
    ffi::OsString,
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use conductor_health::{NotReady, Probe, ProbeOutcome, Prober};
use conductor_logs::{Logs, Stream};
use conductor_protocol::LogLevel;
use conductor_registry::{HealthCheck, ServiceSpec};
use conductor_spawn::{ProcessGroup, SpawnSpec, StopOutcome};
use tokio::sync::{mpsc, oneshot};

use crate::{
    failure::{ActionError, Failure},
    fleet::Shared,
    machine::{Effect, Event, Machine, Phase, Policy},
};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The answer to a start, stop or restart request.
pub(crate) type Reply = oneshot::Sender<Result<(), ActionError>>;

/// A request to a service's owner task.
pub(crate) enum Command {
    Start(Reply),
    Stop(Reply),
    Restart(Reply),
    /// Mark it failed without starting it: a dependency did not start.
    Abandon(Failure, Reply),
    /// Stop for good (conductor is quitting); answers how the process ended, if there was one.
    Shutdown(oneshot::Sender<Option<StopOutcome>>),
    /// A reload changed only what this task uses (probes, restart policy, timeouts): take the
    /// new spec without touching the process.
    Retune(Box<ServiceSpec>),
    /// The sampler measured its tree over `limits.memory` twice in a row: restart it.
    MemoryExceeded {
        measured: u64,
        limit: u64,
    },
    /// Panic in the owner task: how tests prove a panic is contained. Not in shipped builds.
    #[cfg(feature = "test-faults")]
    Panic,
}

/// Requests that may wait for one service to settle at once; more are refused at once, so a
/// client looping on `services:start` cannot grow conductor's memory.
pub(crate) const MAX_WAITERS: usize = 128;

/// What a waiting request needs to see before it can be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Up,
    Down,
}

/// Everything a service's owner task needs that does not change while it runs.
#[derive(Clone)]
pub(crate) struct ServiceContext {
    pub(crate) spec: ServiceSpec,
    /// Environment shared by every service (DATABASE_URL, DEPLOYMENT_ENV, …).
    pub(crate) common_env: Vec<(OsString, OsString)>,
    pub(crate) prober: Prober,
    pub(crate) logs: Logs,
    pub(crate) shared: Arc<Shared>,
    pub(crate) index: usize,
    /// Marks every process of this service's tree (see `conductor::MARKER_VARIABLE`).
    pub(crate) marker: conductor_spawn::TreeMarker,
}

/// The machine's policy from a spec.
fn policy_of(spec: &ServiceSpec) -> Policy {
    Policy {
        max_retries: spec.restart.max_retries,
        backoff: spec.restart.backoff,
        backoff_max: spec.restart.backoff_max,
        reset_after: spec.restart.reset_after,
        failure_threshold: spec.health.failure_threshold,
    }
}

/// Starts the owner task of one service; returns its command queue. With `failed`, the
/// service starts out `failed` with that error (a relaunch after its task panicked).
pub(crate) fn launch(
    context: ServiceContext,
    failed: Option<Failure>,
) -> (mpsc::Sender<Command>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(32);
    let policy = policy_of(&context.spec);
    let machine = match failed {
        Some(error) => Machine::failed(policy, error),
        None => Machine::new(policy, context.spec.is_active()),
    };
    let task = ServiceTask {
        context,
        machine,
        commands: rx,
        process: None,
        readiness: None,
        tick: None,
        probe: None,
        backoff: None,
        waiters: Vec::new(),
        correlation_id: String::new(),
        attempt: 0,
        last_stop: None,
        shutting_down: false,
    };
    // The task ends when every command sender is gone (the `Conductor` was dropped) or after a
    // shutdown; its join handle is awaited by `supervise_owner_task`, which `Conductor` keeps
    // in its `owners` set and awaits in `shutdown` once the queues are closed.
    let handle = tokio::spawn(task.run());
    (tx, handle)
}

struct ServiceTask {
    context: ServiceContext,
    machine: Machine,
    commands: mpsc::Receiver<Command>,
    /// Present exactly while the machine's phase has a pid.
    process: Option<ProcessGroup>,
    readiness: Option<BoxFuture<Result<ProbeOutcome, NotReady>>>,
    tick: Option<Pin<Box<tokio::time::Sleep>>>,
    probe: Option<BoxFuture<ProbeOutcome>>,
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
    waiters: Vec<(Goal, Reply)>,
    correlation_id: String,
    attempt: u32,
    last_stop: Option<StopOutcome>,
    shutting_down: bool,
}

/// Awaits an optional future; never completes when there is none (a disabled `select!` arm).
async fn maybe<F: Future + Unpin>(future: &mut Option<F>) -> F::Output {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

async fn child_exit(process: &mut Option<ProcessGroup>) -> String {
    match process {
        // `wait` is cancel-safe: losing the race to another arm loses nothing.
        Some(process) => match process.wait().await {
            Ok(status) => describe_exit(status),
            Err(err) => format!("could not be awaited: {err}"),
        },
        None => std::future::pending().await,
    }
}

/// "exit code 1", "killed by signal 9 (SIGKILL)".
pub(crate) fn describe_exit(status: std::process::ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                1 => " (SIGHUP)",
                2 => " (SIGINT)",
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            return format!("killed by signal {signal}{name}");
        }
    }
    status.to_string()
}

impl ServiceTask {
    async fn run(mut self) {
        self.publish("registered");
        loop {
            let event = tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => {
                        self.shutting_down = true;
                        self.last_stop = None;
                        self.apply(Event::StopRequested).await;
                        let _ = reply.send(self.last_stop.take());
                        continue;
                    }
                    #[cfg(feature = "test-faults")]
                    Some(Command::Panic) => panic!("injected by a test (feature test-faults)"),
                    Some(Command::MemoryExceeded { measured, limit }) => {
                        Event::MemoryExceeded { measured, limit }
                    }
                    Some(Command::Retune(spec)) => {
                        self.machine.set_policy(policy_of(&spec));
                        self.context.spec = *spec;
                        // The next probe follows the new interval, not the one armed before.
                        self.tick = None;
                        self.drop_stale_futures();
                        continue;
                    }
                    Some(command) => match self.accept(command) {
                        Some(event) => event,
                        None => continue,
                    },
                    None => break,
                },
                description = child_exit(&mut self.process) => {
                    self.process = None;
                    Event::Exited { description, at: Instant::now() }
                }
                outcome = maybe(&mut self.readiness) => {
                    self.readiness = None;
                    match outcome {
                        Ok(outcome) => {
                            self.note_probe(&outcome);
                            Event::Ready { at: Instant::now() }
                        }
                        Err(not_ready) => Event::NotReady { error: not_ready.to_string() },
                    }
                }
                () = maybe(&mut self.backoff) => {
                    self.backoff = None;
                    Event::BackoffElapsed
                }
                () = maybe(&mut self.tick) => {
                    self.tick = None;
                    self.probe = Some(self.probe_future(self.context.spec.health.timeout));
                    continue;
                }
                outcome = maybe(&mut self.probe) => {
                    self.probe = None;
                    self.tick = Some(Box::pin(tokio::time::sleep(self.context.spec.health.interval)));
                    self.note_probe(&outcome);
                    match outcome {
                        ProbeOutcome::Unhealthy(reason) => Event::ProbeFailed { reason },
                        ProbeOutcome::Healthy | ProbeOutcome::Degraded(_) => {
                            Event::ProbePassed { at: Instant::now() }
                        }
                    }
                }
            };
            self.apply(event).await;
        }
        // Every handle is gone: nobody can stop this service any more, so stop it now.
        if let Some(mut process) = self.process.take() {
            let _ = process.stop(self.context.spec.stop_timeout).await;
            self.context.shared.forget_group(&self.context.spec.name);
        }
    }

    /// Turns a command into a machine event, or answers it at once.
    fn accept(&mut self, command: Command) -> Option<Event> {
        let (goal, reply, event) = match command {
            Command::Start(reply) => (Goal::Up, reply, Event::StartRequested),
            Command::Restart(reply) => (Goal::Up, reply, Event::RestartRequested),
            Command::Stop(reply) => (Goal::Down, reply, Event::StopRequested),
            Command::Abandon(error, reply) => (Goal::Down, reply, Event::Abandoned { error }),
            Command::Shutdown(_) | Command::MemoryExceeded { .. } | Command::Retune(_) => {
                unreachable!("handled by the run loop")
            }
            #[cfg(feature = "test-faults")]
            Command::Panic => unreachable!("a panic is handled by the run loop"),
        };
        if goal == Goal::Up && self.shutting_down {
            let _ = reply.send(Err(ActionError::ShuttingDown));
            return None;
        }
        if goal == Goal::Up && matches!(self.machine.phase(), Phase::Disabled) {
            let _ = reply.send(Err(self.disabled_reason()));
            return None;
        }
        if self.waiters.len() >= MAX_WAITERS {
            let _ = reply.send(Err(ActionError::Busy {
                service: self.context.spec.name.clone(),
                limit: MAX_WAITERS,
            }));
            return None;
        }
        self.waiters.push((goal, reply));
        Some(event)
    }

    fn disabled_reason(&self) -> ActionError {
        let service = self.context.spec.name.clone();
        match &self.context.spec.selection {
            conductor_registry::Selection::SkippedByFeature(feature) => {
                ActionError::FeatureNotEnabled {
                    service,
                    feature: feature.clone(),
                }
            }
            _ => ActionError::Disabled { service },
        }
    }

    /// Steps the machine with `event` and carries out the effects, which may produce further
    /// events (a spawn reports `Spawned`, a terminate reports `Exited`).
    async fn apply(&mut self, event: Event) {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let reason = event_reason(&event);
            let effects = self.machine.step(event);
            self.publish(&reason);
            for effect in effects {
                match effect {
                    Effect::ReportError(message) => self.report_error(message),
                    Effect::Spawn => queue.push_back(self.spawn()),
                    Effect::ArmBackoff(delay) => {
                        self.context.logs.record(
                            &self.context.spec.name,
                            LogLevel::Info,
                            format!(
                                "restarting in {} (restart {})",
                                humantime::format_duration(delay),
                                self.machine.restarts()
                            ),
                        );
                        self.backoff = Some(Box::pin(tokio::time::sleep(delay)));
                    }
                    Effect::Terminate => queue.push_back(self.terminate().await),
                }
            }
            self.drop_stale_futures();
            self.answer_waiters();
        }
        // Checked once the effects have settled: between `Spawn` and `Spawned` the process
        // exists a moment before the machine hears of it.
        debug_assert_eq!(
            self.process.is_some(),
            self.machine.phase().pid().is_some(),
            "a process exists exactly when the phase has a pid"
        );
    }

    /// Drops the futures that do not belong to the current phase.
    fn drop_stale_futures(&mut self) {
        let phase = self.machine.phase();
        // Spawning too: the readiness future is made by the spawn, one event before `Spawned`.
        if !matches!(phase, Phase::Spawning | Phase::Starting { .. }) {
            self.readiness = None;
        }
        if matches!(phase, Phase::Running { .. }) {
            if self.tick.is_none()
                && self.probe.is_none()
                && self.context.spec.health.check != HealthCheck::None
            {
                self.tick = Some(Box::pin(tokio::time::sleep(
                    self.context.spec.health.interval,
                )));
            }
        } else {
            self.tick = None;
            self.probe = None;
        }
        if !matches!(phase, Phase::BackingOff) {
            self.backoff = None;
        }
    }

    fn answer_waiters(&mut self) {
        let phase = self.machine.phase();
        let settled_up = match phase {
            Phase::Running { .. } => Some(Ok(())),
            Phase::Failed { error } => Some(Err(ActionError::Failed {
                service: self.context.spec.name.clone(),
                failure: error.clone(),
            })),
            Phase::Stopped => Some(Err(ActionError::StoppedBeforeReady {
                service: self.context.spec.name.clone(),
            })),
            _ => None,
        };
        let settled_down = matches!(
            phase,
            Phase::Stopped | Phase::Failed { .. } | Phase::Disabled
        );
        let waiters = std::mem::take(&mut self.waiters);
        for (goal, reply) in waiters {
            match goal {
                Goal::Up => match &settled_up {
                    Some(result) => {
                        let _ = reply.send(result.clone());
                    }
                    None => self.waiters.push((goal, reply)),
                },
                Goal::Down if settled_down => {
                    let _ = reply.send(Ok(()));
                }
                Goal::Down => self.waiters.push((goal, reply)),
            }
        }
    }

    /// Carries out a spawn: port preflight, environment, process group, log capture, readiness.
    fn spawn(&mut self) -> Event {
        let spec = &self.context.spec;
        self.attempt += 1;
        self.correlation_id = uuid::Uuid::new_v4().to_string();
        if let Some(error) = port_taken(spec) {
            return Event::SpawnFailed { error };
        }
        let mut env = self.context.common_env.clone();
        env.push(("PORT".into(), spec.port.to_string().into()));
        env.push(("SERVICE_NAME".into(), spec.name.clone().into()));
        env.push((
            "CONDUCTOR_CORRELATION_ID".into(),
            self.correlation_id.clone().into(),
        ));
        env.extend(
            spec.env
                .iter()
                .map(|(key, value)| (key.into(), value.into())),
        );
        let spawn_spec = SpawnSpec {
            program: spec.command.clone().into(),
            args: spec.args.iter().map(OsString::from).collect(),
            cwd: Some(spec.cwd.clone()),
            env,
            marker: Some(self.context.marker.clone()),
            limits: conductor_spawn::ResourceLimits {
                open_files: spec.limits.open_files,
                processes: spec.limits.processes,
            },
        };
        self.context.logs.record(
            &spec.name,
            LogLevel::Info,
            format!(
                "[{}] starting attempt {}: {} {}",
                self.correlation_id,
                self.attempt,
                spec.command,
                spec.args.join(" ")
            ),
        );
        let mut process = match conductor_spawn::spawn(&spawn_spec) {
            Ok(process) => process,
            Err(err) => {
                return Event::SpawnFailed {
                    error: Failure::Spawn(conductor_protocol::error_chain(&err)),
                };
            }
        };
        let pid = process.pid();
        if let Some(stdout) = process.take_stdout() {
            drop(
                self.context
                    .logs
                    .capture(&spec.name, Stream::Stdout, stdout),
            );
        }
        if let Some(stderr) = process.take_stderr() {
            drop(
                self.context
                    .logs
                    .capture(&spec.name, Stream::Stderr, stderr),
            );
        }
        self.context
            .shared
            .remember_group(&spec.name, process.record());
        self.process = Some(process);
        let prober = self.context.prober.clone();
        let probe = self.probe_spec();
        let ready_timeout = spec.ready_timeout;
        let correlation_id = self.correlation_id.clone();
        self.readiness = Some(Box::pin(async move {
            prober
                .wait_ready(&probe, ready_timeout, &correlation_id)
                .await
        }));
        tracing::info!(service = %spec.name, pid, correlation_id = %self.correlation_id, "spawned");
        Event::Spawned { pid }
    }

    /// Stops the process group (SIGTERM, wait stop_timeout, SIGKILL) and reports the exit.
    async fn terminate(&mut self) -> Event {
        let name = self.context.spec.name.clone();
        let description = match self.process.as_mut() {
            Some(process) => match process.stop(self.context.spec.stop_timeout).await {
                Ok(outcome) => {
                    let description = describe_stop(&outcome);
                    self.last_stop = Some(outcome);
                    description
                }
                Err(err) => format!("could not be stopped cleanly: {err}"),
            },
            None => "had already exited".to_owned(),
        };
        self.process = None;
        self.context.shared.forget_group(&name);
        self.context.logs.record(
            &name,
            LogLevel::Info,
            format!("[{}] {description}", self.correlation_id),
        );
        Event::Exited {
            description,
            at: Instant::now(),
        }
    }

    fn probe_spec(&self) -> Probe {
        let spec = &self.context.spec;
        match &spec.health.check {
            HealthCheck::Http { path } => Probe::Http {
                port: spec.port,
                path: path.clone(),
            },
            HealthCheck::Tcp => Probe::Tcp { port: spec.port },
            HealthCheck::Exec { command, args } => Probe::Exec {
                program: command.clone(),
                args: args.clone(),
                cwd: Some(spec.cwd.clone()),
                marker: Some(self.context.marker.clone()),
            },
            HealthCheck::None => Probe::None,
        }
    }

    fn probe_future(&self, timeout: Duration) -> BoxFuture<ProbeOutcome> {
        let prober = self.context.prober.clone();
        let probe = self.probe_spec();
        let correlation_id = self.correlation_id.clone();
        Box::pin(async move { prober.probe(&probe, timeout, &correlation_id).await })
    }

    fn note_probe(&self, outcome: &ProbeOutcome) {
        let degraded = matches!(outcome, ProbeOutcome::Degraded(_));
        self.context
            .shared
            .note_probe(self.context.index, SystemTime::now(), degraded);
    }

    fn report_error(&self, failure: Failure) {
        let message = failure.to_string();
        let name = &self.context.spec.name;
        self.context.logs.record(
            name,
            LogLevel::Error,
            format!("[{}] {message}", self.correlation_id),
        );
        tracing::warn!(service = %name, correlation_id = %self.correlation_id, "{message}");
        self.context.shared.report_error(name, message);
    }

    /// Publishes the current phase; the fleet emits an event only when state or pid changed.
    fn publish(&self, reason: &str) {
        let phase = self.machine.phase();
        let running_since = match phase {
            Phase::Running { since, .. } => Some(*since),
            _ => None,
        };
        self.context.shared.update(
            self.context.index,
            crate::fleet::Snapshot {
                state: phase.state(),
                pid: phase.pid(),
                running_since,
                restarts: self.machine.restarts(),
                last_error: self.machine.last_error().map(Failure::to_string),
            },
            reason,
            &self.correlation_id,
        );
    }
}

/// Why `spec`'s port cannot be used, naming the process that holds it; `None` if it is free.
/// The one check behind both the startup preflight and each spawn.
pub(crate) fn port_taken(spec: &ServiceSpec) -> Option<Failure> {
    if conductor_spawn::port_is_free(spec.port) {
        return None;
    }
    Some(Failure::PortTaken {
        service: spec.name.clone(),
        port: spec.port,
        holder: conductor_spawn::port_holder(spec.port)
            .map(|holder| format!("pid {} ({})", holder.pid, holder.command_line)),
    })
}

fn describe_stop(outcome: &StopOutcome) -> String {
    match outcome {
        StopOutcome::AlreadyExited(status) => {
            format!("had already exited ({})", describe_exit(*status))
        }
        StopOutcome::Terminated(status) => format!("stopped ({})", describe_exit(*status)),
        StopOutcome::Killed => {
            "killed with SIGKILL after it ignored SIGTERM for stop_timeout".to_owned()
        }
    }
}

/// The reason recorded in `service_events` for the transition an event causes.
fn event_reason(event: &Event) -> String {
    match event {
        Event::StartRequested => "start requested".to_owned(),
        Event::StopRequested => "stop requested".to_owned(),
        Event::RestartRequested => "restart requested".to_owned(),
        Event::Spawned { pid } => format!("spawned pid {pid}"),
        Event::SpawnFailed { error } => format!("spawn failed: {error}"),
        Event::Ready { .. } => "readiness probe passed".to_owned(),
        Event::NotReady { error } => format!("not ready: {error}"),
        Event::Exited { description, .. } => description.clone(),
        Event::ProbePassed { .. } => "health probe passed".to_owned(),
        Event::ProbeFailed { reason } => format!("health probe failed: {reason}"),
        Event::BackoffElapsed => "backoff elapsed".to_owned(),
        Event::MemoryExceeded { measured, limit } => {
            format!("memory {measured} bytes over the limit of {limit}")
        }
        Event::Abandoned { error } => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_descriptions_name_codes_and_signals() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            describe_exit(std::process::ExitStatus::from_raw(1 << 8)),
            "exit code 1"
        );
        assert_eq!(
            describe_exit(std::process::ExitStatus::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
    }
}
