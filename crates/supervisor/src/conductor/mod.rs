//! The [`Conductor`] handle: builds the fleet from a registry and paths, and offers the
//! operations the IPC channels map onto (start/stop/restart, statuses, logs, quit). The other
//! files of this module add the database ([`database`]), startup ([`startup`]), shutdown
//! ([`shutdown`]), the window command ([`window`]), the fleet's background tasks ([`tasks`])
//! and the run-state file with orphan reclaim ([`run_state`]).

mod database;
mod reload;
mod run_state;
mod settings;
mod shutdown;
mod startup;
mod tasks;
mod window;

use std::{
    collections::HashMap,
    ffi::OsString,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use conductor_db::Database;
use conductor_health::Prober;
use conductor_logs::{LogConfig, Logs};
use conductor_protocol::{AppHealth, LogEntry, MetricsGetResponse, ServiceStatus};
use conductor_registry::{Registry, ServiceSpec};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinSet,
};

pub use self::{
    database::DatabaseError,
    reload::ReloadError,
    run_state::reclaim_orphans,
    settings::{MARKER_VARIABLE, Paths, Settings, SetupError},
    shutdown::{ShutdownReport, StoppedService},
    startup::{ServiceOutcome, StartOutcome, StartReport, StartupError},
    window::Window,
};
use self::{
    run_state::{write_run_state, write_run_state_now},
    tasks::{forward_log_problems, publish_live_logs, reap_adopted_orphans, supervise_owner_task},
};
use crate::{
    events::{EventBus, Subscription},
    failure::{ActionError, Failure, UnknownService},
    fleet::{Member, Shared},
    metrics::{
        MetricsStore,
        sampler::{SampledService, Sampler},
    },
    service::{self, Command, ServiceContext},
    sync::LockExt,
};

#[derive(Clone)]
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

/// The fleet's services as the current registry has them. A reload replaces the registry and
/// adds or removes handles; a service keeps its slot (its status cell and metrics series) for
/// as long as it exists, and a removed service's slot is never reused.
struct Table {
    registry: Arc<Registry>,
    /// By slot; `None` once the service was removed.
    services: Vec<Option<ServiceHandle>>,
    /// Name to slot, for the services that exist.
    index: HashMap<String, usize>,
}

impl Table {
    fn handles(&self) -> impl Iterator<Item = &ServiceHandle> {
        self.services.iter().flatten()
    }

    /// Every existing service's slot, in registry order.
    fn slots_in_order(&self) -> Vec<usize> {
        self.registry
            .services
            .iter()
            .filter_map(|spec| self.index.get(&spec.name).copied())
            .collect()
    }
}

struct Inner {
    table: Mutex<Table>,
    paths: Paths,
    database_path: PathBuf,
    shared: Arc<Shared>,
    prober: Prober,
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
    /// The metrics history the sampler fills.
    metrics: Arc<MetricsStore>,
    /// The running sampler, replaced (aborted and started again) by a reload.
    sampler: Mutex<Option<tokio::task::AbortHandle>>,
    /// Held by startup and by a reload: they never interleave.
    lifecycle: tokio::sync::Mutex<()>,
    /// What a reload reads the registry from (the file `up` was started with, its features).
    source: Option<RegistrySource>,
    /// Ports conductor itself serves on, which a reload may not give to a service.
    reserved_ports: Mutex<Vec<(u16, String)>>,
}

/// Where the running registry came from, so a reload can read it again.
#[derive(Debug, Clone)]
pub struct RegistrySource {
    /// The registry file.
    pub path: PathBuf,
    /// The load options it was read with (`--features`).
    pub options: conductor_registry::LoadOptions,
}

/// The interval a service is sampled at: its own, or never while it is not started.
fn sampled_interval(spec: &ServiceSpec) -> std::time::Duration {
    if spec.is_active() {
        spec.metrics_interval
    } else {
        std::time::Duration::ZERO
    }
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
            std::fs::create_dir_all(dir).map_err(|error| SetupError {
                path: dir.clone(),
                error,
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
        let owners = JoinSet::new();
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
        tasks.spawn(forward_log_problems(logs.problems(), shared.clone()));
        tasks.spawn(publish_live_logs(
            logs.clone(),
            shared.clone(),
            paths.logs.clone(),
        ));
        let metrics = Arc::new(MetricsStore::new(
            &registry
                .services
                .iter()
                .map(|spec| (spec.name.clone(), sampled_interval(spec)))
                .collect::<Vec<_>>(),
        ));
        let (run_state_stop, stop_rx) = watch::channel(false);
        let run_state_writer = run_state_path
            .map(|path| tokio::spawn(write_run_state(shared.watch_run_state(), path, stop_rx)));
        let (quit, _) = watch::channel(false);
        let specs = registry.services.clone();
        let conductor = Conductor {
            inner: Arc::new(Inner {
                table: Mutex::new(Table {
                    registry: Arc::new(registry),
                    services: Vec::new(),
                    index: HashMap::new(),
                }),
                paths,
                database_path,
                shared,
                prober,
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
                metrics,
                sampler: Mutex::new(None),
                lifecycle: tokio::sync::Mutex::new(()),
                source: settings.registry_source,
                reserved_ports: Mutex::new(Vec::new()),
            }),
        };
        {
            let mut table = conductor.inner.table.lock_recovered();
            for (slot, spec) in specs.into_iter().enumerate() {
                let handle = conductor.launch_owner(spec.clone(), slot, None);
                table.index.insert(spec.name, slot);
                table.services.push(Some(handle));
            }
        }
        conductor.restart_sampler();
        Ok(conductor)
    }

    /// Starts the owner task of `spec` in `slot` (under its panic supervisor); returns its
    /// handle. With `failed`, it starts out failed (a relaunch after a panic).
    fn launch_owner(
        &self,
        spec: ServiceSpec,
        slot: usize,
        failed: Option<Failure>,
    ) -> ServiceHandle {
        let name = spec.name.clone();
        let context = ServiceContext {
            marker: conductor_spawn::TreeMarker::new(
                MARKER_VARIABLE,
                format!("{}/{name}", self.inner.run_id),
            ),
            spec,
            common_env: self.inner.common_env.clone(),
            prober: self.inner.prober.clone(),
            logs: self.inner.logs.clone(),
            shared: self.inner.shared.clone(),
            index: slot,
        };
        let (commands, task) = service::launch(context.clone(), failed);
        let commands = Arc::new(Mutex::new(commands));
        self.inner
            .owners
            .lock_recovered()
            .spawn(supervise_owner_task(context, commands.clone(), task));
        ServiceHandle { name, commands }
    }

    /// (Re)starts the sampler over the services that exist now.
    fn restart_sampler(&self) {
        let sampled: Vec<SampledService> = {
            let table = self.inner.table.lock_recovered();
            table
                .registry
                .services
                .iter()
                .filter_map(|spec| {
                    let slot = *table.index.get(&spec.name)?;
                    let handle = table.services[slot].as_ref()?;
                    Some(SampledService {
                        name: spec.name.clone(),
                        slot,
                        interval: sampled_interval(spec),
                        memory_limit: spec.limits.memory,
                        commands: handle.commands.clone(),
                    })
                })
                .collect()
        };
        let sampler = Sampler {
            store: self.inner.metrics.clone(),
            shared: self.inner.shared.clone(),
            services: sampled,
            marker_prefix: format!("{MARKER_VARIABLE}={}/", self.inner.run_id),
            since: conductor_spawn::process_start_time(std::process::id()).unwrap_or(0),
        };
        let handle = self.inner.tasks.lock_recovered().spawn(sampler.run());
        if let Some(previous) = self.inner.sampler.lock_recovered().replace(handle) {
            previous.abort();
        }
    }

    /// The registry the fleet runs now (the last one a reload applied).
    pub fn registry(&self) -> Arc<Registry> {
        self.inner.table.lock_recovered().registry.clone()
    }

    /// Marks `port` as conductor's own (`holder` says what serves on it): a reload that gives
    /// it to a service is refused.
    pub fn reserve_port(&self, port: u16, holder: &str) {
        self.inner
            .reserved_ports
            .lock_recovered()
            .push((port, holder.to_owned()));
    }

    /// The directories in use.
    pub fn paths(&self) -> &Paths {
        &self.inner.paths
    }

    /// The SQLite file given to services as `DATABASE_URL`.
    pub fn database_path(&self) -> &Path {
        &self.inner.database_path
    }

    fn lookup(&self, name: &str) -> Result<ServiceHandle, UnknownService> {
        self.slot(name).map(|(_, handle)| handle)
    }

    /// A service's slot and handle.
    fn slot(&self, name: &str) -> Result<(usize, ServiceHandle), UnknownService> {
        let table = self.inner.table.lock_recovered();
        table
            .index
            .get(name)
            .and_then(|&slot| Some((slot, table.services[slot].clone()?)))
            .ok_or_else(|| UnknownService {
                name: name.to_owned(),
                known: table.handles().map(|s| s.name.clone()).collect(),
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
            if self
                .inner
                .stopping
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                ActionError::ShuttingDown
            } else {
                ActionError::TaskEnded {
                    service: name.to_owned(),
                }
            }
        };
        if handle.commands().send(command(tx)).await.is_err() {
            return Err(gone());
        }
        rx.await.unwrap_or_else(|_| Err(gone()))
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
        let (slot, _) = self.slot(name)?;
        Ok(self.inner.shared.status(slot))
    }

    /// `metrics:get`: one service's resource history (or every service's) and conductor's,
    /// cut to the last `seconds` if given.
    pub fn metrics(
        &self,
        service: Option<&str>,
        seconds: Option<u64>,
    ) -> Result<MetricsGetResponse, UnknownService> {
        let slots = match service {
            Some(name) => vec![self.slot(name)?.0],
            None => self.inner.table.lock_recovered().slots_in_order(),
        };
        Ok(self.inner.metrics.query(&slots, seconds))
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
        name == "window" && self.registry().app.window.is_some()
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

    /// Publishes `event` to every subscriber as if the fleet had: the bench's event source.
    /// Only in builds with the `bench-events` feature, which nothing shipped enables.
    #[cfg(feature = "bench-events")]
    pub fn publish_for_bench(&self, event: conductor_protocol::Event) {
        self.inner.shared.bus.publish(event);
    }

    /// The event stream; `last_event_id` replays what a reconnecting client missed.
    pub fn subscribe(&self, last_event_id: Option<u64>) -> Subscription {
        self.inner.shared.bus.subscribe(last_event_id)
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
}
