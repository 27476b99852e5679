//! The [`Conductor`] handle: builds the fleet from a registry and paths, and offers the
//! operations the IPC channels map onto (start/stop/restart, statuses, logs, database, quit),
//! startup in dependency or sequential order, and shutdown in reverse dependency order.

use std::{
    collections::HashMap,
    ffi::OsString,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use conductor_db::{Database, EventRecorder, InitReport, Migrations, OpenOptions};
use conductor_health::Prober;
use conductor_logs::{LogConfig, Logs};
use conductor_protocol::{AppHealth, DatabaseStatus, Event, LogEntry, ServiceStatus};
use conductor_registry::{Registry, Selection, StartupMode};
use conductor_spawn::StopOutcome;
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinSet,
};

use crate::{
    events::{EventBus, Subscription},
    fleet::{Member, RunState, Shared},
    service::{self, Command, ServiceContext},
    sync::LockExt,
};

/// The directories conductor works in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Per-app data: database, lock, ipc.json, run-state, backups, evidence.
    pub user_data: PathBuf,
    /// Service and conductor logs.
    pub logs: PathBuf,
    /// Per-app temporary files.
    pub temp: PathBuf,
}

impl Paths {
    /// The layout used under one data directory: `<root>`, `<root>/logs`, `<root>/tmp`.
    pub fn under(root: &Path) -> Paths {
        Paths {
            user_data: root.to_path_buf(),
            logs: root.join("logs"),
            temp: root.join("tmp"),
        }
    }
}

/// Settings that do not come from the registry.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Injected into every service as `LOG_LEVEL`.
    pub log_level: String,
    /// Write `<userData>/run-state.json` (live process groups) for orphan reclaim.
    pub write_run_state: bool,
    /// Events kept for clients that reconnect with `Last-Event-ID`.
    pub replay_events: usize,
    /// Make the whole process a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`) and reap the
    /// orphans it adopts, so a service's daemonised descendants are re-parented to it instead
    /// of to init. Off by default: it is process-wide and permanent, and a host process (a
    /// Tauri app) then also adopts the orphans of its own children, and must not itself reap
    /// with `waitpid(-1)`. Zombie children that lead their own process group in the host's
    /// session, or sit in the host's own group, are never reaped by conductor, so children
    /// the host awaits (std's `Command`, tokio's) keep their exit status. The `conductor`
    /// binary turns it on. Without it, daemonised descendants are still found by their
    /// marker and stopped; they are only reaped by init instead.
    pub subreaper: bool,
    /// Rows of `service_events` (the lifecycle history) kept; older ones are pruned.
    pub event_history: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            log_level: "info".to_owned(),
            write_run_state: true,
            replay_events: 1024,
            subreaper: false,
            event_history: conductor_db::RecorderOptions::default().max_rows,
        }
    }
}

/// The environment variable that marks every process of a service's tree:
/// `CONDUCTOR_INSTANCE=<run id>/<service>`. Descendants inherit it, however they daemonise,
/// so a stop finds them by it (see `conductor_spawn::TreeMarker`).
pub const MARKER_VARIABLE: &str = "CONDUCTOR_INSTANCE";

/// A directory conductor needs could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create {}: {source}; choose another --data-dir or fix its permissions", path.display())]
pub struct SetupError {
    /// The directory.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// A name that is not a service of the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown service \"{name}\"; services in this registry: {}", known.join(", "))]
pub struct UnknownService {
    /// The name asked for.
    pub name: String,
    /// The registry's service names.
    pub known: Vec<String>,
}

/// Why a start, stop or restart did not reach its goal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No such service.
    #[error(transparent)]
    UnknownService(#[from] UnknownService),
    /// The service did not reach the state asked for.
    #[error("{0}")]
    Failed(String),
}

/// Database initialisation or status failed.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The file could not be opened or created.
    #[error(transparent)]
    Open(#[from] conductor_db::OpenError),
    /// A migration failed (the database was restored).
    #[error(transparent)]
    Migrate(#[from] conductor_db::MigrateError),
    /// Reading the status failed.
    #[error(transparent)]
    Status(#[from] conductor_db::StatusError),
    /// The blocking task running it died.
    #[error("database task failed: {0}")]
    Task(String),
}

/// How one service came out of startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// Running (its readiness probe passed).
    Started,
    /// Could not start; the app runs degraded without it (it is not critical).
    Failed(String),
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
    "critical service \"{service}\" could not start: {reason}{}",
    render_lines(last_lines)
)]
pub struct StartupError {
    /// The service.
    pub service: String,
    /// Why.
    pub reason: String,
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

struct ServiceHandle {
    name: String,
    /// The owner task's queue; replaced when a panicked owner task is relaunched.
    commands: Arc<Mutex<mpsc::Sender<Command>>>,
}

impl ServiceHandle {
    fn commands(&self) -> mpsc::Sender<Command> {
        self.commands.lock_recovered().clone()
    }
}

struct Inner {
    registry: Registry,
    paths: Paths,
    database_path: PathBuf,
    services: Vec<ServiceHandle>,
    index: HashMap<String, usize>,
    shared: Arc<Shared>,
    logs: Logs,
    common_env: Vec<(OsString, OsString)>,
    database: Arc<Mutex<Option<Database>>>,
    event_history: u64,
    /// Interrupts a long migration when a stop is asked for during startup.
    database_interrupt: Arc<Mutex<Option<conductor_db::Interrupt>>>,
    quit: watch::Sender<bool>,
    run_id: String,
    /// Set once [`Conductor::shutdown`] has begun.
    stopping: std::sync::atomic::AtomicBool,
    /// The services' owner tasks (each under its `supervise_owner_task`), awaited on shutdown.
    owners: Mutex<JoinSet<()>>,
    /// Helper tasks (log problems, reaper), aborted on shutdown.
    tasks: Mutex<JoinSet<()>>,
    /// The run-state writer, stopped and awaited (not aborted: a write in flight would land
    /// after the file was removed) before shutdown removes the file.
    run_state_writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    run_state_stop: watch::Sender<bool>,
    shutdown_done: tokio::sync::Mutex<Option<ShutdownReport>>,
}

/// The embeddable supervisor. Cheap to clone; all clones drive the same fleet.
#[derive(Clone)]
pub struct Conductor {
    inner: Arc<Inner>,
}

impl Conductor {
    /// Builds the fleet: creates the directories, the log store and one owner task per
    /// service. Starts nothing. Must be called inside a tokio runtime, from a task on a
    /// runtime worker (children are spawned from the owner tasks; see `conductor-spawn`).
    pub fn new(
        registry: Registry,
        paths: Paths,
        settings: Settings,
    ) -> Result<Conductor, SetupError> {
        let evidence = paths.user_data.join("evidence");
        for dir in [&paths.user_data, &paths.logs, &paths.temp, &evidence] {
            std::fs::create_dir_all(dir).map_err(|source| SetupError {
                path: dir.clone(),
                source,
            })?;
        }
        let database_path = match &registry.database.path {
            Some(path) => path.clone(),
            None => paths
                .user_data
                .join(format!("{}.db", registry.app.name.to_lowercase())),
        };
        let logs = Logs::new(LogConfig {
            dir: paths.logs.clone(),
            max_size: registry.logs.max_size,
            max_files: registry.logs.max_files,
            tail: registry.logs.tail,
            tail_bytes: registry.logs.tail_bytes,
        });
        let bus = EventBus::new(settings.replay_events, 4096);
        let members = registry
            .services
            .iter()
            .map(|spec| Member {
                name: spec.name.clone(),
                port: spec.port,
                critical: spec.critical,
                active: spec.is_active(),
            })
            .collect();
        let run_state_path = settings
            .write_run_state
            .then(|| paths.user_data.join("run-state.json"));
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let shared = Arc::new(Shared::new(
            members,
            bus,
            run_state_path.clone(),
            run_id.clone(),
        ));
        if let Some(path) = &run_state_path {
            // Written before any service can be spawned: a conductor SIGKILLed a moment after
            // its first spawn still leaves the run id by which the next run finds the tree.
            write_run_state_now(&shared.watch_run_state().borrow(), path);
        }
        let common_env: Vec<(OsString, OsString)> = vec![
            (
                "DATABASE_URL".into(),
                conductor_db::database_url(&database_path).into(),
            ),
            ("DATABASE_PATH".into(), database_path.clone().into()),
            (
                "DEPLOYMENT_ENV".into(),
                registry.app.deployment_env.clone().into(),
            ),
            ("LOG_LEVEL".into(), settings.log_level.clone().into()),
            ("EVIDENCE_STORAGE_PATH".into(), evidence.into()),
        ];
        let prober = Prober::new();
        let mut tasks = JoinSet::new();
        let mut owners = JoinSet::new();
        if settings.subreaper {
            match conductor_spawn::become_subreaper() {
                Ok(()) => {
                    tasks.spawn(reap_adopted_orphans());
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot become a child subreaper; daemonised descendants are still stopped, but reaped by init");
                }
            }
        }
        let mut services = Vec::new();
        let mut index = HashMap::new();
        for (position, spec) in registry.services.iter().enumerate() {
            let context = ServiceContext {
                spec: spec.clone(),
                common_env: common_env.clone(),
                prober: prober.clone(),
                logs: logs.clone(),
                shared: shared.clone(),
                index: position,
                marker: conductor_spawn::TreeMarker::new(
                    MARKER_VARIABLE,
                    format!("{run_id}/{}", spec.name),
                ),
            };
            let (commands, task) = service::launch(context.clone(), None);
            let commands = Arc::new(Mutex::new(commands));
            owners.spawn(supervise_owner_task(context, commands.clone(), task));
            index.insert(spec.name.clone(), position);
            services.push(ServiceHandle {
                name: spec.name.clone(),
                commands,
            });
        }
        tasks.spawn(forward_log_problems(logs.problems(), shared.clone()));
        let (run_state_stop, stop_rx) = watch::channel(false);
        let run_state_writer = run_state_path
            .map(|path| tokio::spawn(write_run_state(shared.watch_run_state(), path, stop_rx)));
        let (quit, _) = watch::channel(false);
        Ok(Conductor {
            inner: Arc::new(Inner {
                registry,
                paths,
                database_path,
                services,
                index,
                shared,
                logs,
                common_env,
                database: Arc::new(Mutex::new(None)),
                event_history: settings.event_history,
                database_interrupt: Arc::new(Mutex::new(None)),
                quit,
                run_id,
                stopping: std::sync::atomic::AtomicBool::new(false),
                owners: Mutex::new(owners),
                tasks: Mutex::new(tasks),
                run_state_writer: Mutex::new(run_state_writer),
                run_state_stop,
                shutdown_done: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The registry this fleet was built from.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The directories in use.
    pub fn paths(&self) -> &Paths {
        &self.inner.paths
    }

    /// The SQLite file given to services as `DATABASE_URL`.
    pub fn database_path(&self) -> &Path {
        &self.inner.database_path
    }

    /// Opens (creating if missing) and migrates the database: SPEC §4 step 3. A failed
    /// migration was restored from its backup by the `db` crate. Emits `database:initialized`.
    pub async fn init_database(&self) -> Result<InitReport, DatabaseError> {
        let database = self.inner.database.clone();
        let path = self.inner.database_path.clone();
        let migrations = match &self.inner.registry.database.migrations {
            Some(dir) => Migrations::Dir(dir.clone()),
            None => Migrations::Embedded,
        };
        let backups = self.inner.paths.user_data.join("backups");
        let interrupt = self.inner.database_interrupt.clone();
        let recorder_options = conductor_db::RecorderOptions {
            max_rows: self.inner.event_history,
        };
        // rusqlite blocks: run it off the runtime's workers.
        let result = tokio::task::spawn_blocking(
            move || -> Result<(InitReport, Option<EventRecorder>), DatabaseError> {
                let mut guard = database.lock_recovered();
                if guard.is_none() {
                    *guard = Some(Database::open(&path, &OpenOptions::default())?);
                }
                let db = guard.as_mut().expect("opened just above");
                *interrupt.lock_recovered() = Some(db.interrupt_handle());
                let report = db.init(&migrations, &backups)?;
                let recorder = EventRecorder::start_with(&path, &recorder_options)?;
                Ok((report, Some(recorder)))
            },
        )
        .await
        .map_err(|err| DatabaseError::Task(err.to_string()))
        .and_then(|result| result);
        match result {
            Ok((report, recorder)) => {
                let mut slot = self.inner.shared.recorder.lock_recovered();
                if slot.is_none() {
                    *slot = recorder;
                }
                drop(slot);
                self.inner.shared.bus.publish(Event::DatabaseInitialized {
                    success: true,
                    migrations_run: report.migrations_run,
                });
                Ok(report)
            }
            Err(err) => {
                self.inner.shared.bus.publish(Event::DatabaseInitialized {
                    success: false,
                    migrations_run: 0,
                });
                Err(err)
            }
        }
    }

    /// Interrupts the statement [`Conductor::init_database`] is running, if any: the migration
    /// rolls back and the backup is restored, so `init_database` soon returns an error. Call it
    /// repeatedly until `init_database` returns (between statements it does nothing).
    pub fn interrupt_database(&self) {
        if let Some(interrupt) = self.inner.database_interrupt.lock_recovered().as_ref() {
            interrupt.interrupt();
        }
    }

    /// `database:status`.
    pub async fn database_status(&self) -> Result<DatabaseStatus, DatabaseError> {
        let database = self.inner.database.clone();
        let path = self.inner.database_path.clone();
        let status = tokio::task::spawn_blocking(
            move || -> Result<conductor_db::DbStatus, DatabaseError> {
                let mut guard = database.lock_recovered();
                if guard.is_none() {
                    *guard = Some(Database::open(&path, &OpenOptions::default())?);
                }
                Ok(guard.as_ref().expect("opened just above").status()?)
            },
        )
        .await
        .map_err(|err| DatabaseError::Task(err.to_string()))??;
        Ok(DatabaseStatus {
            initialized: status.initialized,
            version: status.version,
            path: status.path.display().to_string(),
        })
    }

    /// Starts every active service: in `dependency` mode each as soon as its dependencies are
    /// running (independent ones concurrently), in `sequential` mode one at a time. A critical
    /// service that cannot start (after its retries) stops everything again and is reported;
    /// a non-critical one is left `failed`, and so are the services that depend on it.
    pub async fn start_all(&self) -> Result<StartReport, StartupError> {
        let plan = self.inner.registry.start_plan();
        let order: Vec<String> = plan.levels.iter().flatten().cloned().collect();
        let mut results: HashMap<String, Result<(), String>> = HashMap::new();
        // SPEC §4 step 4, before anything is spawned: a busy port is not retried with backoff.
        for (name, reason) in self.busy_ports() {
            if self.is_critical(&name) {
                return Err(StartupError {
                    service: name,
                    reason,
                    last_lines: Vec::new(),
                });
            }
            let _ = self
                .send(&name, |reply| Command::Abandon(reason.clone(), reply))
                .await;
            results.insert(name, Err(reason));
        }
        let outcome = match self.inner.registry.app.startup {
            StartupMode::Sequential => {
                let mut failure = None;
                for name in &order {
                    if results.contains_key(name) {
                        continue;
                    }
                    let result = self.start_after_dependencies(name, &results).await;
                    if let Err(reason) = &result
                        && self.is_critical(name)
                    {
                        failure = Some((name.clone(), reason.clone()));
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
        if let Some((service, reason)) = outcome {
            self.stop_all_services().await;
            let last_lines = self.inner.logs.get(Some(&service), 10);
            return Err(StartupError {
                service,
                reason,
                last_lines,
            });
        }
        let services = self
            .inner
            .registry
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
                        None => StartOutcome::Failed("not started".to_owned()),
                    },
                },
            })
            .collect();
        Ok(StartReport { services })
    }

    /// The active services whose port another process holds, in registry order, each with a
    /// message naming the port and the holder. Orphans of a previous run were reclaimed before
    /// (SPEC §4 step 2), so a holder now is a foreign process.
    fn busy_ports(&self) -> Vec<(String, String)> {
        self.inner
            .registry
            .services
            .iter()
            .filter(|spec| spec.is_active())
            .filter_map(|spec| Some((spec.name.clone(), service::port_taken(spec)?)))
            .collect()
    }

    async fn start_concurrently(
        &self,
        order: &[String],
        results: &mut HashMap<String, Result<(), String>>,
    ) -> Option<(String, String)> {
        // One watch per service carries its startup result to the services that depend on it.
        let mut senders = HashMap::new();
        let mut receivers = HashMap::new();
        for name in order {
            let (tx, rx) = watch::channel::<Option<Result<(), String>>>(None);
            senders.insert(name.clone(), tx);
            receivers.insert(name.clone(), rx);
        }
        let mut starts = JoinSet::new();
        for name in order {
            let spec = self
                .inner
                .registry
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
                let mut result = Ok(());
                for (dependency, mut rx) in dependencies {
                    let outcome = rx
                        .wait_for(Option::is_some)
                        .await
                        .map(|value| value.clone());
                    if !matches!(outcome, Ok(Some(Ok(())))) {
                        result = Err(format!("dependency \"{dependency}\" did not start"));
                        break;
                    }
                }
                let result = match result {
                    Ok(()) => conductor.start(&name).await.map_err(|err| err.to_string()),
                    Err(reason) => {
                        let _ = conductor
                            .send(&name, |reply| Command::Abandon(reason.clone(), reply))
                            .await;
                        Err(reason)
                    }
                };
                let _ = done.send(Some(result.clone()));
                (name, result)
            });
        }
        while let Some(joined) = starts.join_next().await {
            let Ok((name, result)) = joined else { continue };
            if let Err(reason) = &result
                && self.is_critical(&name)
            {
                starts.abort_all();
                return Some((name, reason.clone()));
            }
            results.insert(name, result);
        }
        None
    }

    async fn start_after_dependencies(
        &self,
        name: &str,
        results: &HashMap<String, Result<(), String>>,
    ) -> Result<(), String> {
        let spec = self
            .inner
            .registry
            .service(name)
            .expect("the plan names registry services");
        if let Some(dependency) = spec
            .depends_on
            .iter()
            .find(|dep| !matches!(results.get(*dep), Some(Ok(()))))
        {
            let reason = format!("dependency \"{dependency}\" did not start");
            let _ = self
                .send(name, |reply| Command::Abandon(reason.clone(), reply))
                .await;
            return Err(reason);
        }
        self.start(name).await.map_err(|err| err.to_string())
    }

    fn is_critical(&self, name: &str) -> bool {
        self.inner
            .registry
            .service(name)
            .is_some_and(|spec| spec.critical)
    }

    fn lookup(&self, name: &str) -> Result<&ServiceHandle, UnknownService> {
        self.inner
            .index
            .get(name)
            .map(|&i| &self.inner.services[i])
            .ok_or_else(|| UnknownService {
                name: name.to_owned(),
                known: self.inner.services.iter().map(|s| s.name.clone()).collect(),
            })
    }

    async fn send(
        &self,
        name: &str,
        command: impl FnOnce(service::Reply) -> Command,
    ) -> Result<(), ActionError> {
        let handle = self.lookup(name)?;
        let (tx, rx) = oneshot::channel();
        let gone = || {
            let reason = if self
                .inner
                .stopping
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                "conductor is shutting down".to_owned()
            } else {
                format!(
                    "conductor's task for service \"{name}\" stopped while handling this request \
                     (see conductor.log); its status says what became of the service"
                )
            };
            ActionError::Failed(reason)
        };
        if handle.commands().send(command(tx)).await.is_err() {
            return Err(gone());
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(ActionError::Failed(reason)),
            Err(_) => Err(gone()),
        }
    }

    /// `services:start`: resolves once the service is running (a no-op success if it already
    /// is), or with the reason it could not start after its retries.
    pub async fn start(&self, name: &str) -> Result<(), ActionError> {
        self.send(name, Command::Start).await
    }

    /// `services:stop`: resolves once its process group is gone.
    pub async fn stop(&self, name: &str) -> Result<(), ActionError> {
        self.send(name, Command::Stop).await
    }

    /// `services:restart`: stops it if running, starts it again, resolves once it is running.
    pub async fn restart(&self, name: &str) -> Result<(), ActionError> {
        self.send(name, Command::Restart).await
    }

    /// Makes the owner task of `name` panic: how tests prove that a panic is contained (the
    /// service ends `failed`, its processes killed, the rest untouched). Only in builds with the
    /// `test-faults` feature, which nothing shipped enables.
    #[cfg(feature = "test-faults")]
    pub async fn inject_panic(&self, name: &str) -> Result<(), UnknownService> {
        let _ = self.lookup(name)?.commands().send(Command::Panic).await;
        Ok(())
    }

    /// `services:get-all`: every service in registry order. Never waits on a service.
    pub fn statuses(&self) -> Vec<ServiceStatus> {
        self.inner.shared.statuses()
    }

    /// One service's status.
    pub fn status(&self, name: &str) -> Result<ServiceStatus, UnknownService> {
        self.lookup(name)?;
        Ok(self.inner.shared.status(self.inner.index[name]))
    }

    /// `app:health`.
    pub fn health(&self) -> AppHealth {
        self.inner.shared.health()
    }

    /// `logs:get`: the newest `lines` entries of one service, or of all merged by time.
    pub fn logs(
        &self,
        service: Option<&str>,
        lines: usize,
    ) -> Result<Vec<LogEntry>, UnknownService> {
        if let Some(name) = service
            && !self.has_log_source(name)
        {
            self.lookup(name)?;
        }
        Ok(self.inner.logs.get(service, lines))
    }

    fn has_log_source(&self, name: &str) -> bool {
        name == "window" && self.inner.registry.app.window.is_some()
    }

    /// `logs:clear`.
    pub async fn clear_logs(&self) -> Result<(), conductor_logs::LogsError> {
        self.inner.logs.clear().await
    }

    /// The log store, for following new entries (`conductor logs -f`) or capturing the output
    /// of a process the binary starts itself (the window command).
    pub fn log_store(&self) -> &Logs {
        &self.inner.logs
    }

    /// The event stream; `last_event_id` replays what a reconnecting client missed.
    pub fn subscribe(&self, last_event_id: Option<u64>) -> Subscription {
        self.inner.shared.bus.subscribe(last_event_id)
    }

    /// Starts the registry's window command, if any: after every service is ready, with the
    /// common environment plus `extra_env` (the binary adds the IPC URL and token). Its output
    /// is logged as service `window`; its exit is the app's signal to quit.
    pub fn start_window(
        &self,
        extra_env: Vec<(OsString, OsString)>,
    ) -> Result<Option<Window>, conductor_spawn::SpawnError> {
        let Some(window) = &self.inner.registry.app.window else {
            return Ok(None);
        };
        let mut env = self.inner.common_env.clone();
        env.extend(
            window
                .env
                .iter()
                .map(|(key, value)| (key.into(), value.into())),
        );
        env.extend(extra_env);
        let spec = conductor_spawn::SpawnSpec {
            program: window.command.clone().into(),
            args: window.args.iter().map(OsString::from).collect(),
            cwd: Some(window.cwd.clone()),
            env,
            marker: Some(conductor_spawn::TreeMarker::new(
                MARKER_VARIABLE,
                format!("{}/{WINDOW}", self.inner.run_id),
            )),
        };
        let mut process = conductor_spawn::spawn(&spec)?;
        if let Some(stdout) = process.take_stdout() {
            drop(
                self.inner
                    .logs
                    .capture(WINDOW, conductor_logs::Stream::Stdout, stdout),
            );
        }
        if let Some(stderr) = process.take_stderr() {
            drop(
                self.inner
                    .logs
                    .capture(WINDOW, conductor_logs::Stream::Stderr, stderr),
            );
        }
        self.inner.shared.remember_group(WINDOW, process.record());
        self.inner.logs.record(
            WINDOW,
            conductor_protocol::LogLevel::Info,
            format!("started pid {}", process.pid()),
        );
        Ok(Some(Window {
            process,
            shared: self.inner.shared.clone(),
        }))
    }

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

    /// This run's id, the first half of every service's marker value (see [`MARKER_VARIABLE`]).
    pub fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    /// Asks whoever runs the app to shut it down (`app:quit`).
    pub fn quit(&self) {
        self.inner.quit.send_replace(true);
    }

    /// Resolves once [`Conductor::quit`] has been called.
    pub async fn quit_requested(&self) {
        let mut rx = self.inner.quit.subscribe();
        let _ = rx.wait_for(|quit| *quit).await;
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
        for handle in &self.inner.services {
            let (closed, _) = mpsc::channel(1);
            *handle.commands.lock_recovered() = closed;
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

    async fn stop_all_services(&self) -> Vec<StoppedService> {
        let plan = self.inner.registry.start_plan();
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
            level_done.sort_by_key(|(name, _)| self.inner.index.get(name).copied());
            for (name, outcome) in level_done {
                let title = self
                    .inner
                    .registry
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

/// The log source name of the window command.
const WINDOW: &str = "window";

/// The running window command (SPEC §2 `[app] window`).
pub struct Window {
    process: conductor_spawn::ProcessGroup,
    shared: Arc<Shared>,
}

impl Window {
    /// The window process's pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Resolves when the window exits, describing how. Cancel-safe.
    pub async fn exited(&mut self) -> String {
        let description = match self.process.wait().await {
            Ok(status) => crate::service::describe_exit(status),
            Err(err) => format!("could not be awaited: {err}"),
        };
        self.shared.forget_group(WINDOW);
        description
    }

    /// Stops the window's process group (SIGTERM, wait, SIGKILL).
    pub async fn stop(&mut self, timeout: std::time::Duration) {
        let _ = self.process.stop(timeout).await;
        self.shared.forget_group(WINDOW);
    }
}

async fn forward_log_problems(
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

/// How long shutdown waits for the owner tasks to end once their queues are closed; they have
/// nothing left to stop, so this is only reached if one is stuck.
const OWNER_END_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How often a service's owner task may panic and be relaunched before it stays gone: a bug
/// that fires on every relaunch must not spin.
const MAX_OWNER_RELAUNCHES: u32 = 10;

/// Awaits a service's owner task and contains its panic (the panic policy, ARCHITECTURE.md):
/// unwinding dropped its `ProcessGroup`, which SIGKILLed the group and its marked tree; the
/// service is then marked `failed` with `lastError` saying so, by a fresh owner task that
/// takes over the command queue, so a manual start works again and nothing else is touched.
async fn supervise_owner_task(
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
        let error = format!(
            "internal error: conductor's task for this service panicked ({panic}); its processes \
             were killed. Start it again; please report this with conductor.log"
        );
        tracing::error!(service = %name, "{error}");
        context.shared.forget_group(&name);
        context.shared.report_error(&name, error.clone());
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

/// SIGKILLs every live process that carries this run's marker (any service's) and started
/// after the conductor that wrote `state`; returns how many. Blocking.
fn kill_run_tree(state: &RunState) -> usize {
    let (Some(run_id), Some(since)) = (&state.run_id, state.start_time) else {
        return 0;
    };
    let prefix = format!("{MARKER_VARIABLE}={run_id}/");
    conductor_spawn::kill_marked(prefix.as_bytes(), since)
}

/// Reaps the orphans adopted as subreaper, on every SIGCHLD, until the fleet is dropped.
async fn reap_adopted_orphans() {
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

fn write_run_state_now(state: &RunState, path: &Path) {
    let json = serde_json::to_vec_pretty(state).expect("run state always serialises");
    let tmp = path.with_extension("json.tmp");
    if let Err(err) = std::fs::write(&tmp, json).and(std::fs::rename(&tmp, path)) {
        tracing::warn!(path = %path.display(), "could not write run state: {err}");
    }
}

/// Rewrites the run-state file whenever the set of live process groups changes.
/// Ends once `stop` turns true, never in the middle of a write.
async fn write_run_state(
    mut rx: watch::Receiver<RunState>,
    path: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        // Both arms are cancel-safe; the write below is never raced against `stop`.
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let state = rx.borrow_and_update().clone();
        let json = serde_json::to_vec_pretty(&state).expect("run state always serialises");
        let tmp = path.with_extension("json.tmp");
        let written = tokio::fs::write(&tmp, json)
            .await
            .and(tokio::fs::rename(&tmp, &path).await);
        if let Err(err) = written {
            tracing::warn!(path = %path.display(), "could not write run state: {err}");
        }
    }
}

/// SPEC §4 step 2: terminates the process groups a previous run recorded in
/// `<userData>/run-state.json` and did not stop (it died without cleaning up). Groups are only
/// killed when provably ours (leader pid and start time), so a reused pid is never touched.
/// Returns one line per group for the log; removes the file.
pub fn reclaim_orphans(user_data: &Path) -> Vec<String> {
    let path = user_data.join("run-state.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let lines = match serde_json::from_str::<RunState>(&text) {
        // Start times count from boot: after a reboot they prove nothing, and every recorded
        // group died with the old boot anyway.
        Ok(state) if state.boot_id != conductor_spawn::boot_id() => {
            vec![format!(
                "ignored {}: written before the last reboot",
                path.display()
            )]
        }
        Ok(state) => {
            let records = state.records();
            let mut lines: Vec<String> = conductor_spawn::reclaim(&records)
                .iter()
                .map(|reclaimed| reclaimed.to_string())
                .collect();
            // Descendants that left their groups (daemons) are found by the run's marker.
            let n_marked = kill_run_tree(&state);
            if n_marked > 0 {
                lines.push(format!(
                    "killed {n_marked} leftover process(es) carrying {MARKER_VARIABLE}={}/…",
                    state.run_id.as_deref().unwrap_or_default()
                ));
            }
            lines
        }
        Err(err) => vec![format!("ignored unreadable {}: {err}", path.display())],
    };
    let _ = std::fs::remove_file(&path);
    lines
}
