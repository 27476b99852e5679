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
pub(crate) const LIVE_LOGS_PERIOD: std::time::Duration = std::time::Duration::from_millis(200);
/// Lines of one service in one `logs:entry`, at most.
pub(crate) const LIVE_LOGS_PER_SERVICE: usize = 100;
/// Lines in one `logs:entry`, at most.
pub(crate) const LIVE_LOGS_TOTAL: usize = 500;

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
    use std::collections::BTreeMap;

    use conductor_protocol::{Event, SkippedLines};
    use tokio::sync::broadcast::error::TryRecvError;

    let mut tick = tokio::time::interval(LIVE_LOGS_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lines = None;
    loop {
        if lines.is_none() {
            while !shared.bus.has_subscribers() {
                shared.bus.subscribed().await;
            }
            // Right when the first stream opens, so its lines start there.
            lines = Some(logs.subscribe());
            tick.reset();
        }
        tick.tick().await;
        if !shared.bus.has_subscribers() {
            lines = None;
            continue;
        }
        let Some(receiver) = lines.as_mut() else {
            continue;
        };
        let mut entries = Vec::new();
        let mut per_service: BTreeMap<String, (usize, u64)> = BTreeMap::new();
        let mut unattributed = 0;
        loop {
            match receiver.try_recv() {
                Ok(entry) => {
                    let (kept, skipped) = per_service.entry(entry.service.clone()).or_default();
                    if *kept < LIVE_LOGS_PER_SERVICE && entries.len() < LIVE_LOGS_TOTAL {
                        *kept += 1;
                        entries.push(entry);
                    } else {
                        *skipped += 1;
                    }
                }
                Err(TryRecvError::Lagged(n_missed)) => unattributed += n_missed,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => return,
            }
        }
        let mut skipped: Vec<SkippedLines> = per_service
            .into_iter()
            .filter(|(_, (_, skipped))| *skipped > 0)
            .map(|(service, (_, lines))| SkippedLines {
                file: log_dir.join(format!("{service}.log")).display().to_string(),
                service_name: Some(service),
                lines,
            })
            .collect();
        if unattributed > 0 {
            skipped.push(SkippedLines {
                service_name: None,
                lines: unattributed,
                file: log_dir.display().to_string(),
            });
        }
        if !entries.is_empty() || !skipped.is_empty() {
            shared.bus.publish(Event::LogsEntry { entries, skipped });
        }
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
