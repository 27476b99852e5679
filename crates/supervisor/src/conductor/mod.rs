//! The [`Conductor`] handle: builds the fleet from a registry and paths, and offers the
//! operations the IPC channels map onto (start/stop/restart, statuses, logs, quit). The other
//! files of this module add the database ([`database`]), startup ([`startup`]), shutdown
//! ([`shutdown`]), the window command ([`window`]), the fleet's background tasks ([`tasks`])
//! and the run-state file with orphan reclaim ([`run_state`]).

mod database;
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
use conductor_registry::Registry;
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinSet,
};

pub use self::{
    database::DatabaseError,
    run_state::reclaim_orphans,
    settings::{MARKER_VARIABLE, Paths, Settings, SetupError},
    shutdown::{ShutdownReport, StoppedService},
    startup::{ServiceOutcome, StartOutcome, StartReport, StartupError},
    window::Window,
};
use self::{
    run_state::{write_run_state, write_run_state_now},
    tasks::{forward_log_problems, reap_adopted_orphans, supervise_owner_task},
};
use crate::{
    events::{EventBus, Subscription},
    failure::{ActionError, UnknownService},
    fleet::{Member, Shared},
    metrics::{
        MetricsStore,
        sampler::{self, SampledService, Sampler},
    },
    service::{self, Command, ServiceContext},
    sync::LockExt,
};

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
    /// The metrics history the sampler fills.
    metrics: Arc<MetricsStore>,
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
        let sampled: Vec<SampledService> = registry
            .services
            .iter()
            .zip(&services)
            .map(|(spec, handle)| SampledService {
                name: spec.name.clone(),
                interval: if spec.is_active() {
                    spec.metrics_interval
                } else {
                    std::time::Duration::ZERO
                },
                memory_limit: spec.limits.memory,
                commands: handle.commands.clone(),
            })
            .collect();
        let metrics = Arc::new(MetricsStore::new(
            &sampled
                .iter()
                .map(|service| (service.name.clone(), service.interval))
                .collect::<Vec<_>>(),
            sampler::tick(sampled.iter().map(|service| service.interval)).unwrap_or_default(),
        ));
        tasks.spawn(
            Sampler {
                store: metrics.clone(),
                shared: shared.clone(),
                services: sampled,
                marker_prefix: format!("{MARKER_VARIABLE}={run_id}/"),
                since: conductor_spawn::process_start_time(std::process::id()).unwrap_or(0),
            }
            .run(),
        );
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
                metrics,
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
        self.lookup(name)?;
        Ok(self.inner.shared.status(self.inner.index[name]))
    }

    /// `metrics:get`: one service's resource history (or every service's) and conductor's,
    /// cut to the last `seconds` if given.
    pub fn metrics(
        &self,
        service: Option<&str>,
        seconds: Option<u64>,
    ) -> Result<MetricsGetResponse, UnknownService> {
        let index = match service {
            Some(name) => {
                self.lookup(name)?;
                Some(self.inner.index[name])
            }
            None => None,
        };
        Ok(self.inner.metrics.query(index, seconds))
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
