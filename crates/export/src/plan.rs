//! What every target shares: the services that are exported (the active ones, in file
//! order), their names on the target, dependencies, images and resolved programs, the data
//! layout, the SPEC §3 environment, and the gaps common to all targets.
//!
//! Problems that stop an export (no image, a program not found, clashing names) are all found
//! here, before any file is rendered, so a target module never fails.

use std::path::Path;

use conductor_registry::{
    HealthCheck, Registry, Selection, ServiceSpec, StartupMode, image_reference_problem,
};

use crate::error::{ExportError, ExportProblem, ExportProblemKind};
use crate::notes::Notes;
use crate::text;
use crate::{Options, Target};

/// The database one-shot's name on every target (a unit stem, a compose service, an init
/// container); no service may have it.
pub(crate) const DB_ONESHOT: &str = "db-migrate";

/// The longest Kubernetes object name of a service: 63 less `wait-for-`.
const K8S_NAME_MAX: usize = 63 - "wait-for-".len();

const PREFIX_HELP: &str =
    "--image-prefix is put before each service's name, like --image-prefix ghcr.io/acme/";
const NOT_FOUND_HELP: &str =
    "systemd runs absolute programs only: install it, or write its absolute path as the command";
const CONDUCTOR_IMAGE_HELP: &str =
    "--conductor-image is an image reference, like ghcr.io/acme/conductor:1.0";
const PREFIX_CONDUCTOR_HELP: &str = "--image-prefix is put before \"conductor\" for the one-shot's image, or pass --conductor-image";
const NO_CONDUCTOR_IMAGE_HELP: &str = "the database one-shot runs `conductor db migrate`: pass --conductor-image IMAGE (an image with the conductor binary on its PATH), or --image-prefix";
const CLASH_HELP: &str = "rename the service: \"db-migrate\" is reserved, and on Kubernetes names are lowercase with - for _";

const LONG_NAME: &str = "Kubernetes names are DNS labels of at most 63 characters, \
     and the init container waiting for this one is named wait-for-<name>";
const DIGIT_NAME: &str =
    "Kubernetes Service names start with a letter, and every name here starts with the app's";

/// How problems of the database one-shot are placed.
const ONESHOT_PLACE: &str = "the database one-shot";

/// Where the data directory is mounted in every container.
pub(crate) const CONTAINER_DATA: &str = "/data";

/// The export of one registry to one target, checked.
pub(crate) struct Plan<'r> {
    pub(crate) registry: &'r Registry,
    /// The app's name as a name part (`factsway`).
    pub(crate) app: String,
    pub(crate) services: Vec<Service<'r>>,
    pub(crate) notes: Notes,
    pub(crate) deployment_env: String,
    pub(crate) log_level: String,
    /// The container targets' image holding `conductor` (for the database one-shot).
    pub(crate) conductor_image: String,
    pub(crate) layout: Layout,
}

/// One exported service.
pub(crate) struct Service<'r> {
    pub(crate) spec: &'r ServiceSpec,
    /// Its name on the target: a unit stem, a compose service or a Kubernetes object name.
    pub(crate) name: String,
    pub(crate) dependencies: Vec<Dependency>,
    /// Its image (container targets).
    pub(crate) image: String,
    /// The program, absolute for systemd (resolved through [`Options::commands`]).
    pub(crate) program: String,
    /// The exec probe's program, resolved like `program`.
    pub(crate) probe_program: Option<String>,
}

/// One edge of the dependency graph, seen from the dependent.
pub(crate) struct Dependency {
    /// The dependency's name on the target.
    pub(crate) name: String,
    pub(crate) critical: bool,
    pub(crate) port: u16,
    /// Whether it has a probe (`kind = "none"` has none: alive means running).
    pub(crate) probed: bool,
    pub(crate) ready_timeout: std::time::Duration,
}

/// The data directory, the database file and the evidence directory, written as the target
/// reads them (for systemd with `%S`, the state directory, and every literal `%` doubled).
pub(crate) struct Layout {
    pub(crate) data_dir: String,
    pub(crate) database: String,
    pub(crate) evidence: String,
    /// `[database] migrations` as the one-shot sees it, when the registry names a directory.
    pub(crate) migrations: Option<String>,
}

/// An environment value: one the target must escape, or one already in its syntax.
pub(crate) enum EnvValue {
    Literal(String),
    Native(String),
}

impl EnvValue {
    /// The value as a container receives it (no target syntax involved).
    pub(crate) fn plain(&self) -> &str {
        match self {
            EnvValue::Literal(value) | EnvValue::Native(value) => value,
        }
    }
}

impl<'r> Plan<'r> {
    pub(crate) fn new(
        registry: &'r Registry,
        target: Target,
        options: &Options,
    ) -> Result<Plan<'r>, ExportError> {
        let app = text::slug(&registry.app.name);
        let mut problems = Vec::new();
        let mut notes = Notes::default();
        let containers = target != Target::Systemd;
        let active: Vec<&ServiceSpec> =
            registry.services.iter().filter(|s| s.is_active()).collect();

        let name_of = |spec: &ServiceSpec| match target {
            Target::Systemd => format!("{app}-{}", spec.name),
            Target::Compose => spec.name.clone(),
            Target::Kubernetes => format!("{app}-{}", text::dns_label(&spec.name)),
        };
        if target == Target::Kubernetes && !app.starts_with(|c: char| c.is_ascii_lowercase()) {
            problems.push(ExportProblem {
                location: "[app] name".to_owned(),
                service: None,
                kind: ExportProblemKind::BadName {
                    name: app.clone(),
                    reason: DIGIT_NAME,
                },
                help: "start [app] name with a letter".to_owned(),
            });
        }
        let mut taken: Vec<(String, String)> = vec![(
            name_of_oneshot(target, &app),
            "the database one-shot".to_owned(),
        )];
        for spec in &active {
            let name = name_of(spec);
            if let Some((_, other)) = taken.iter().find(|(taken, _)| *taken == name) {
                problems.push(service_problem(
                    spec,
                    ExportProblemKind::NameClash {
                        name: name.clone(),
                        other: other.clone(),
                    },
                    CLASH_HELP,
                ));
            }
            // The init container that waits for a service is `wait-for-<name>`, and a
            // container name is a DNS label of at most 63 characters too.
            if target == Target::Kubernetes && name.len() > K8S_NAME_MAX {
                problems.push(service_problem(spec, ExportProblemKind::BadName {
                        name: name.clone(),
                        reason: LONG_NAME,
                    }, format!("shorten the service's or the app's name to at most {K8S_NAME_MAX} characters together")));
            }
            taken.push((name, format!("service \"{}\"", spec.name)));
        }

        let image_for = |spec: &ServiceSpec, problems: &mut Vec<ExportProblem>| -> String {
            if !containers {
                return String::new();
            }
            if let Some(image) = &spec.deploy.image {
                return image.clone();
            }
            match &options.image_prefix {
                Some(prefix) => {
                    let image = format!("{prefix}{}", text::dns_label(&spec.name));
                    if let Some(reason) = image_reference_problem(&image) {
                        problems.push(service_problem(
                            spec,
                            ExportProblemKind::BadImage {
                                image: image.clone(),
                                reason,
                            },
                            PREFIX_HELP,
                        ));
                    }
                    image
                }
                None => {
                    problems.push(service_problem(spec, ExportProblemKind::NoImage, format!(
                            "add image = \"…\" under [services.{}.deploy], or pass --image-prefix REGISTRY/PATH/ for every service",
                            spec.name
                        )));
                    String::new()
                }
            }
        };
        let resolve =
            |spec: &ServiceSpec, program: &str, problems: &mut Vec<ExportProblem>| -> String {
                if containers {
                    return program.to_owned();
                }
                if Path::new(program).is_absolute() {
                    return text::normalize(program);
                }
                match options.commands.get(program) {
                    Some(path) => text::normalize(&path.display().to_string()),
                    None => {
                        problems.push(service_problem(
                            spec,
                            ExportProblemKind::CommandNotFound(program.to_owned()),
                            NOT_FOUND_HELP,
                        ));
                        program.to_owned()
                    }
                }
            };

        let mut services = Vec::new();
        for spec in &active {
            let image = image_for(spec, &mut problems);
            let program = resolve(spec, &spec.command, &mut problems);
            let probe_program = match &spec.health.check {
                HealthCheck::Exec { command, .. } => Some(resolve(spec, command, &mut problems)),
                _ => None,
            };
            let dependencies = spec
                .depends_on
                .iter()
                .filter_map(|dependency| registry.services.iter().find(|s| s.name == *dependency))
                .map(|dependency| Dependency {
                    name: name_of(dependency),
                    critical: dependency.critical,
                    port: dependency.port,
                    probed: dependency.health.check != HealthCheck::None,
                    ready_timeout: dependency.ready_timeout,
                })
                .collect();
            services.push(Service {
                spec,
                name: name_of(spec),
                dependencies,
                image,
                program,
                probe_program,
            });
        }

        let conductor_image = if containers {
            match (&options.conductor_image, &options.image_prefix) {
                (Some(image), _) => {
                    if let Some(reason) = image_reference_problem(image) {
                        problems.push(oneshot_problem(
                            ExportProblemKind::BadImage {
                                image: image.clone(),
                                reason,
                            },
                            CONDUCTOR_IMAGE_HELP,
                        ));
                    }
                    image.clone()
                }
                (None, Some(prefix)) => {
                    let image = format!("{prefix}conductor");
                    if let Some(reason) = image_reference_problem(&image) {
                        problems.push(oneshot_problem(
                            ExportProblemKind::BadImage {
                                image: image.clone(),
                                reason,
                            },
                            PREFIX_CONDUCTOR_HELP,
                        ));
                    }
                    image
                }
                (None, None) => {
                    problems.push(oneshot_problem(
                        ExportProblemKind::NoImage,
                        NO_CONDUCTOR_IMAGE_HELP,
                    ));
                    String::new()
                }
            }
        } else {
            String::new()
        };

        if !problems.is_empty() {
            return Err(ExportError {
                target: target.name(),
                problems,
            });
        }

        common_notes(registry, target, &mut notes);
        let layout = layout(registry, target, &app, &mut notes);
        Ok(Plan {
            registry,
            app,
            services,
            notes,
            deployment_env: options
                .deployment_env
                .clone()
                .unwrap_or_else(|| target.name().to_owned()),
            log_level: options.log_level.clone(),
            conductor_image,
            layout,
        })
    }

    /// SPEC §3's environment for `service`, in the order conductor builds it; the service's own
    /// `env` comes last and replaces an injected variable of the same name, as it does under
    /// conductor. `CONDUCTOR_CORRELATION_ID` is a gap the targets note.
    pub(crate) fn env(&self, service: &Service<'_>) -> Vec<(String, EnvValue)> {
        let layout = &self.layout;
        let mut env = vec![
            (
                "PORT".to_owned(),
                EnvValue::Literal(service.spec.port.to_string()),
            ),
            (
                "SERVICE_NAME".to_owned(),
                EnvValue::Literal(service.spec.name.clone()),
            ),
            (
                "DATABASE_URL".to_owned(),
                EnvValue::Native(format!("sqlite://{}", layout.database)),
            ),
            (
                "DATABASE_PATH".to_owned(),
                EnvValue::Native(layout.database.clone()),
            ),
            (
                "DEPLOYMENT_ENV".to_owned(),
                EnvValue::Literal(self.deployment_env.clone()),
            ),
            (
                "LOG_LEVEL".to_owned(),
                EnvValue::Literal(self.log_level.clone()),
            ),
            (
                "EVIDENCE_STORAGE_PATH".to_owned(),
                EnvValue::Native(layout.evidence.clone()),
            ),
        ];
        for (name, value) in &service.spec.env {
            match env.iter_mut().find(|(existing, _)| existing == name) {
                Some(slot) => slot.1 = EnvValue::Literal(value.clone()),
                None => env.push((name.clone(), EnvValue::Literal(value.clone()))),
            }
        }
        env
    }

    /// The arguments of `conductor` in the database one-shot, as the target reads them.
    pub(crate) fn migrate_args(&self) -> Vec<EnvValue> {
        let layout = &self.layout;
        let mut args = vec![
            EnvValue::Literal("db".to_owned()),
            EnvValue::Literal("migrate".to_owned()),
            EnvValue::Literal("--data-dir".to_owned()),
            EnvValue::Native(layout.data_dir.clone()),
            EnvValue::Literal("--database".to_owned()),
            EnvValue::Native(layout.database.clone()),
        ];
        if let Some(migrations) = &layout.migrations {
            args.push(EnvValue::Literal("--migrations".to_owned()));
            args.push(EnvValue::Native(migrations.clone()));
        }
        args
    }
}

fn service_problem(
    spec: &ServiceSpec,
    kind: ExportProblemKind,
    help: impl Into<String>,
) -> ExportProblem {
    ExportProblem {
        location: format!("services.{}", spec.name),
        service: Some(spec.name.clone()),
        kind,
        help: help.into(),
    }
}

fn oneshot_problem(kind: ExportProblemKind, help: impl Into<String>) -> ExportProblem {
    ExportProblem {
        location: ONESHOT_PLACE.to_owned(),
        service: None,
        kind,
        help: help.into(),
    }
}

fn name_of_oneshot(target: Target, app: &str) -> String {
    match target {
        Target::Systemd => format!("{app}-{DB_ONESHOT}"),
        Target::Compose => DB_ONESHOT.to_owned(),
        Target::Kubernetes => format!("{app}-{DB_ONESHOT}"),
    }
}

fn layout(registry: &Registry, target: Target, app: &str, notes: &mut Notes) -> Layout {
    let default_file = format!("{}.db", registry.app.name.to_lowercase());
    let migrations_dir = registry
        .database
        .migrations
        .as_ref()
        .map(|dir| dir.display().to_string());
    if target == Target::Systemd {
        let data_dir = format!("%S/{app}");
        let database = match &registry.database.path {
            Some(path) => text::setting(&text::normalize(&path.display().to_string())),
            None => format!("{data_dir}/{}", text::setting(&default_file)),
        };
        return Layout {
            evidence: format!("{data_dir}/evidence"),
            data_dir,
            database,
            migrations: migrations_dir.map(|dir| text::setting(&text::normalize(&dir))),
        };
    }
    let file_name = registry
        .database
        .path
        .as_ref()
        .and_then(|path| path.file_name())
        .map_or(default_file, |name| name.to_string_lossy().into_owned());
    if let Some(path) = &registry.database.path {
        notes.app(format!(
            "[database] path {} is a path on this machine: the database is {CONTAINER_DATA}/{file_name} on the data volume",
            path.display()
        ));
    }
    if let Some(dir) = &migrations_dir {
        notes.app(format!(
            "[database] migrations {dir} must be inside the conductor image at /migrations{}",
            if target == Target::Compose {
                " (compose mounts it there from this machine, read-only)"
            } else {
                ""
            }
        ));
    }
    notes.app(format!(
        "the SQLite database is one file on one volume ({}): every service must run on the same node, so the services cannot be scaled out or spread over machines",
        if target == Target::Kubernetes { "a ReadWriteOnce PersistentVolumeClaim" } else { "a named volume" }
    ));
    Layout {
        data_dir: CONTAINER_DATA.to_owned(),
        database: format!("{CONTAINER_DATA}/{file_name}"),
        evidence: format!("{CONTAINER_DATA}/evidence"),
        migrations: migrations_dir.map(|_| "/migrations".to_owned()),
    }
}

/// Gaps every target shares: what conductor decides at run time, on the desktop, or by
/// measurement.
fn common_notes(registry: &Registry, target: Target, notes: &mut Notes) {
    let left_out: Vec<String> = registry
        .services
        .iter()
        .filter_map(|service| match &service.selection {
            Selection::Active => None,
            Selection::Disabled => Some(format!("{} (enabled = false)", service.name)),
            Selection::SkippedByFeature(feature) => Some(format!(
                "{} (feature \"{feature}\" is not enabled)",
                service.name
            )),
        })
        .collect();
    if registry
        .services
        .iter()
        .any(|service| service.feature.is_some())
    {
        let enabled = if registry.app.features.is_empty() {
            "none".to_owned()
        } else {
            registry.app.features.join(", ")
        };
        notes.app(format!(
            "features are chosen at export time, not at run time (enabled: {enabled}); export again with --features to change them"
        ));
    }
    if !left_out.is_empty() {
        notes.app(format!("not exported: {}", left_out.join(", ")));
    }
    if registry.app.window.is_some() {
        notes.app(format!(
            "[app] window is not exported: {} has no desktop window to start; start the app's window yourself",
            target.name()
        ));
    }
    if registry.app.startup == StartupMode::Sequential {
        notes.app("[app] startup = \"sequential\" is not translated: services start in dependency order, independent ones together");
    }
    let correlation = match target {
        Target::Systemd => {
            "CONDUCTOR_CORRELATION_ID is not set: systemd gives each start its own INVOCATION_ID instead"
        }
        Target::Compose | Target::Kubernetes => {
            "CONDUCTOR_CORRELATION_ID is not set and health requests carry no X-Correlation-ID: the engine starts and probes the services, not conductor"
        }
    };
    notes.app(correlation);
    notes.app("metrics_interval is not translated: use the engine's own resource accounting");
    for service in registry.services.iter().filter(|s| s.is_active()) {
        if service.limits.memory.is_some() {
            notes.service(
                &service.name,
                "limits.memory becomes a hard limit the kernel enforces (the service is OOM-killed at it), where conductor restarts it after two samples over it",
            );
        }
    }
}
