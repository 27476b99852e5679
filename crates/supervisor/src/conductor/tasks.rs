//! The fleet's background tasks: each service's owner task under its panic supervisor, the
//! forwarder of log problems to `service:error`, the publisher of `logs:entry`, and the reaper
//! of adopted orphans.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::{
    failure::Failure,
    fleet::Shared,
    service::{self, Command, ServiceContext},
    sync::LockExt,
};

pub(super) async fn forward_log_problems(
    mut problems: tokio::sync::broadcast::Receiver<conductor_logs::LogProblem>,
    shared: Arc<Shared>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match problems.recv().await {
            Ok(problem) => shared.report_error(&problem.service, problem.message),
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => break,
        }
    }
}

/// At most one `logs:entry` per this long.
const LIVE_LOGS_PERIOD: std::time::Duration = std::time::Duration::from_millis(200);
/// Lines of one service in one `logs:entry`, at most.
const LIVE_LOGS_PER_SERVICE: usize = 100;
/// Lines in one `logs:entry`, at most.
const LIVE_LOGS_TOTAL: usize = 500;

/// Publishes the captured lines as `logs:entry` events while anyone listens to the event
/// stream: at most one event per [`LIVE_LOGS_PERIOD`], within [`LIVE_LOGS_PER_SERVICE`] and
/// [`LIVE_LOGS_TOTAL`] lines, the rest counted per service with its log file. So a service
/// logging 10 000 lines a second costs a page 5 small events a second, and conductor one pass
/// over lines it already holds. With nobody listening it does not subscribe to the lines, so
/// the capture does not copy them; it subscribes the moment a stream opens.
pub(super) async fn publish_live_logs(
    logs: conductor_logs::Logs,
    shared: Arc<Shared>,
    log_dir: std::path::PathBuf,
) {
    use tokio::sync::broadcast::error::RecvError;

    let mut tick = tokio::time::interval(LIVE_LOGS_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lines = None;
    let mut window = LiveLogsWindow::default();
    loop {
        let receiver = match &mut lines {
            Some(receiver) => receiver,
            None => {
                while !shared.bus.has_subscribers() {
                    shared.bus.subscribed().await;
                }
                // Right when the first stream opens, so its lines start there.
                window = LiveLogsWindow::default();
                tick.reset();
                lines.insert(logs.subscribe())
            }
        };
        // Reads are taken as they come, so the channel is rarely outrun and a flood's excess
        // is counted against its own service.
        tokio::select! {
            _ = tick.tick() => {
                if let Some(event) = window.take(&log_dir) {
                    shared.bus.publish(event);
                }
                if !shared.bus.has_subscribers() {
                    lines = None;
                }
            }
            received = receiver.recv() => match received {
                Ok(read) => window.add(&read),
                // Each missed read held one line at least.
                Err(RecvError::Lagged(n_missed)) => window.unattributed += n_missed,
                Err(RecvError::Closed) => return,
            },
        }
    }
}

/// The lines of one `logs:entry` in the making.
#[derive(Default)]
struct LiveLogsWindow {
    entries: Vec<conductor_protocol::LogEntry>,
    /// Per service: lines kept, lines skipped.
    per_service: std::collections::BTreeMap<String, (usize, u64)>,
    /// Reads the channel dropped before they were taken (their services are not known).
    unattributed: u64,
}

impl LiveLogsWindow {
    /// Takes what fits of one read's lines (copying only those) and counts the rest.
    fn add(&mut self, read: &conductor_logs::LiveLines) {
        let (kept, skipped) = match self.per_service.get_mut(read.service()) {
            Some(counts) => counts,
            None => self
                .per_service
                .entry(read.service().to_owned())
                .or_default(),
        };
        let room = LIVE_LOGS_PER_SERVICE
            .saturating_sub(*kept)
            .min(LIVE_LOGS_TOTAL.saturating_sub(self.entries.len()));
        let taken = read.entries(room);
        *kept += taken.len();
        *skipped += (read.len() - taken.len()) as u64;
        self.entries.extend(taken);
    }

    /// The event of what was gathered, if anything was, and an empty window for the next.
    fn take(&mut self, log_dir: &std::path::Path) -> Option<conductor_protocol::Event> {
        let window = std::mem::take(self);
        let mut skipped: Vec<conductor_protocol::SkippedLines> = window
            .per_service
            .into_iter()
            .filter(|(_, (_, skipped))| *skipped > 0)
            .map(|(service, (_, lines))| conductor_protocol::SkippedLines {
                file: log_dir.join(format!("{service}.log")).display().to_string(),
                service_name: Some(service),
                lines,
            })
            .collect();
        if window.unattributed > 0 {
            skipped.push(conductor_protocol::SkippedLines {
                service_name: None,
                lines: window.unattributed,
                file: log_dir.display().to_string(),
            });
        }
        (!window.entries.is_empty() || !skipped.is_empty()).then_some(
            conductor_protocol::Event::LogsEntry {
                entries: window.entries,
                skipped,
            },
        )
    }
}

/// Ends an owner task: its queue is replaced by a closed one, so once the task has handled
/// what it holds it sees no sender left and returns (stopping its process if one still runs).
pub(super) fn close_queue(commands: &Mutex<mpsc::Sender<Command>>) {
    let (closed, _) = mpsc::channel(1);
    *commands.lock_recovered() = closed;
}

/// How long shutdown waits for the owner tasks to end once their queues are closed; they have
/// nothing left to stop, so this is only reached if one is stuck.
pub(super) const OWNER_END_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How often a service's owner task may panic and be relaunched before it stays gone: a bug
/// that fires on every relaunch must not spin.
const MAX_OWNER_RELAUNCHES: u32 = 10;

/// Awaits a service's owner task and contains its panic (the panic policy, ARCHITECTURE.md):
/// unwinding dropped its `ProcessGroup`, which SIGKILLed the group and its marked tree; the
/// service is then marked `failed` with `lastError` saying so, by a fresh owner task that
/// takes over the command queue, so a manual start works again and nothing else is touched.
pub(super) async fn supervise_owner_task(
    context: ServiceContext,
    commands: Arc<Mutex<mpsc::Sender<Command>>>,
    mut task: tokio::task::JoinHandle<()>,
) {
    let name = context.spec.name.clone();
    for _ in 0..MAX_OWNER_RELAUNCHES {
        let panic = match task.await {
            Ok(()) => return,
            Err(error) if error.is_panic() => panic_message(error.into_panic()),
            // Aborted: the fleet is being dropped.
            Err(_) => return,
        };
        let error = Failure::Panicked(panic);
        tracing::error!(service = %name, "{error}");
        context.shared.forget_group(&name);
        context.shared.report_error(&name, error.to_string());
        let (sender, next) = service::launch(context.clone(), Some(error));
        *commands.lock_recovered() = sender;
        task = next;
    }
    tracing::error!(service = %name, "the owner task keeps panicking; it is not relaunched again");
    let _ = task.await;
}

/// The message of a panic payload (`panic!` with a literal or a formatted string).
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "a panic without a message".to_owned(),
        },
    }
}

/// Reaps the orphans adopted as subreaper, on every SIGCHLD, until the fleet is dropped.
pub(super) async fn reap_adopted_orphans() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigchld = match signal(SignalKind::child()) {
        Ok(sigchld) => sigchld,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGCHLD; adopted orphans stay zombies");
            return;
        }
    };
    loop {
        // A sweep reads /proc: keep it off the runtime's workers. No child is spawned there.
        let n_reaped = tokio::task::spawn_blocking(conductor_spawn::reap_adopted)
            .await
            .unwrap_or(0);
        if n_reaped > 0 {
            tracing::debug!(n_reaped, "reaped adopted orphans");
        }
        if sigchld.recv().await.is_none() {
            return;
        }
    }
}
