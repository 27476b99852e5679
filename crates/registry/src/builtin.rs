//! The built-in registry: the reference app's eight services, used when no file is given.
//!
//! Dependencies chosen for it (the SPEC names the services, not their edges): every service
//! needs `records`; `export` also needs `template` (documents are rendered from templates);
//! `analysis` also needs `evidence` and `citation` (it analyses both). So records starts alone,
//! then ingestion, citation, evidence and template together, then export and analysis.
//! `reserved` is a disabled placeholder slot.

use std::collections::BTreeMap;

use crate::spec::{
    AppSpec, DatabaseSpec, DeploySpec, HealthCheck, HealthSpec, Limits, LogsSpec, Registry,
    RestartSpec, Selection, ServiceSpec, StartupMode, fallback,
};

/// `(name, port, depends_on)` of the reference app, in file order.
const SERVICES: &[(&str, u16, &[&str])] = &[
    ("records", 3001, &[]),
    ("ingestion", 3002, &["records"]),
    ("export", 3003, &["records", "template"]),
    ("citation", 3004, &["records"]),
    ("evidence", 3005, &["records"]),
    ("template", 3006, &["records"]),
    ("analysis", 3007, &["records", "evidence", "citation"]),
    ("reserved", 3008, &["records"]),
];

impl Registry {
    /// The reference app's registry (SPEC §2), rooted at the current directory: each service
    /// runs `node dist/index.js` in `services/<name>`; `reserved` (port 3008) is disabled.
    /// Every service depends on `records`; `export` also on `template`, `analysis` also on
    /// `evidence` and `citation`.
    ///
    /// If the current directory cannot be read, paths are relative to `.` instead.
    pub fn builtin() -> Registry {
        let base_dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
        let services = SERVICES
            .iter()
            .map(|(name, port, depends_on)| {
                let enabled = *name != "reserved";
                ServiceSpec {
                    name: (*name).to_owned(),
                    port: *port,
                    command: "node".to_owned(),
                    args: vec!["dist/index.js".to_owned()],
                    cwd: base_dir.join("services").join(name),
                    env: BTreeMap::new(),
                    depends_on: depends_on
                        .iter()
                        .map(|dependency| (*dependency).to_owned())
                        .collect(),
                    critical: true,
                    feature: None,
                    enabled,
                    selection: if enabled {
                        Selection::Active
                    } else {
                        Selection::Disabled
                    },
                    health: HealthSpec {
                        check: HealthCheck::Http {
                            path: fallback::HEALTH_PATH.to_owned(),
                        },
                        interval: fallback::INTERVAL,
                        timeout: fallback::TIMEOUT,
                        failure_threshold: fallback::FAILURE_THRESHOLD,
                    },
                    ready_timeout: fallback::READY_TIMEOUT,
                    stop_timeout: fallback::STOP_TIMEOUT,
                    restart: RestartSpec {
                        max_retries: fallback::MAX_RETRIES,
                        backoff: fallback::BACKOFF,
                        backoff_max: fallback::BACKOFF_MAX,
                        reset_after: fallback::RESET_AFTER,
                    },
                    metrics_interval: fallback::METRICS_INTERVAL,
                    limits: Limits::default(),
                    deploy: DeploySpec::default(),
                }
            })
            .collect();
        Registry {
            app: AppSpec {
                name: "FACTSWAY".to_owned(),
                deployment_env: fallback::DEPLOYMENT_ENV.to_owned(),
                startup: StartupMode::Dependency,
                features: Vec::new(),
                window: None,
                allowed_origins: Vec::new(),
            },
            database: DatabaseSpec::default(),
            logs: LogsSpec::default(),
            services,
            base_dir,
        }
    }
}
