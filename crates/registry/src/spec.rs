//! The validated registry model: what the supervisor reads after [`Registry::load`] succeeded.
//!
//! Every value here is already resolved (defaults merged, platform overrides applied, paths
//! absolute, durations parsed), so consumers never re-interpret the file.
//! This module holds plain data and two small helpers; it does not parse or validate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A parsed and validated service registry (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// The `[app]` table.
    pub app: AppSpec,
    /// The `[database]` table.
    pub database: DatabaseSpec,
    /// The `[logs]` table.
    pub logs: LogsSpec,
    /// Every service in file order, including disabled and feature-skipped ones.
    pub services: Vec<ServiceSpec>,
    /// Absolute directory of the registry file; relative paths in the file are resolved against it.
    pub base_dir: PathBuf,
}

/// The `[app]` table: what the application is and how it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// Application name; names the data directory and the default database file.
    pub name: String,
    /// Injected into every service as `DEPLOYMENT_ENV` (default `"desktop"`).
    pub deployment_env: String,
    /// Whether services start by dependency level or one at a time.
    pub startup: StartupMode,
    /// Enabled features, after `--features` replaced the file's list if given.
    pub features: Vec<String>,
    /// The window command started once every service is ready, if any.
    pub window: Option<WindowSpec>,
    /// Origins whose pages may call the control API from a browser or webview (CORS), each
    /// `scheme://host[:port]` exactly as a browser sends it in the `Origin` header.
    pub allowed_origins: Vec<String>,
}

/// The optional window command (`[app] window = { command, args, cwd, env }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// Program to run: absolute when the file gave a path, else a bare name looked up in `PATH`.
    pub command: String,
    /// Arguments passed to the program.
    pub args: Vec<String>,
    /// Absolute working directory (default: the registry's directory).
    pub cwd: PathBuf,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
}

/// How services are started (`[app] startup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartupMode {
    /// A service starts once its dependencies are ready; independent ones start concurrently.
    #[default]
    Dependency,
    /// One service at a time, in file order (never before its dependencies).
    Sequential,
}

impl StartupMode {
    /// The name used in the registry file (`"dependency"` or `"sequential"`).
    pub fn as_str(self) -> &'static str {
        match self {
            StartupMode::Dependency => "dependency",
            StartupMode::Sequential => "sequential",
        }
    }
}

/// The `[database]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseSpec {
    /// Absolute database file path when the file names one; `None` means `<userData>/<app name>.db`.
    pub path: Option<PathBuf>,
    /// Absolute migrations directory when given; `None` means the migrations embedded in the binary.
    pub migrations: Option<PathBuf>,
}

/// The `[logs]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogsSpec {
    /// Rotate a service's log file once it reaches this many bytes (default 10 MiB).
    pub max_size: u64,
    /// Rotated files kept per service (default 10).
    pub max_files: usize,
    /// Entries kept in memory per service for `logs:get` (default 10 000).
    pub tail: usize,
    /// Bytes of those entries kept in memory per service (default 4 MiB): a service that
    /// writes long lines keeps fewer of them.
    pub tail_bytes: usize,
}

impl Default for LogsSpec {
    fn default() -> Self {
        LogsSpec {
            max_size: 10 * 1024 * 1024,
            max_files: 10,
            tail: 10_000,
            tail_bytes: 4 * 1024 * 1024,
        }
    }
}

/// One `[services.NAME]` table, with defaults, platform overrides and features applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The table name under `[services]`.
    pub name: String,
    /// The fixed port the service listens on; unique in the registry.
    pub port: u16,
    /// Program to run: absolute when the file gave a path, else a bare name looked up in `PATH`.
    pub command: String,
    /// Arguments passed to the program.
    pub args: Vec<String>,
    /// Absolute working directory (default: the registry's directory).
    pub cwd: PathBuf,
    /// The service's own environment variables, applied after the injected ones.
    pub env: BTreeMap<String, String>,
    /// Names of the services this one needs ready before it starts.
    pub depends_on: Vec<String>,
    /// `false`: the app runs degraded without this service instead of aborting startup.
    pub critical: bool,
    /// The feature this service belongs to, if any.
    pub feature: Option<String>,
    /// The file's `enabled` flag.
    pub enabled: bool,
    /// Whether this service is started, and if not, why.
    pub selection: Selection,
    /// Readiness and liveness probe.
    pub health: HealthSpec,
    /// How long a start may take before it counts as failed.
    pub ready_timeout: Duration,
    /// How long to wait after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
    /// Restart policy.
    pub restart: RestartSpec,
    /// How often its process tree's CPU and memory are sampled; zero means never.
    pub metrics_interval: Duration,
    /// Resource limits (`limits = { memory, open_files, processes }`).
    pub limits: Limits,
    /// How `conductor export` runs it elsewhere (`[services.NAME.deploy]`); `up` ignores it.
    pub deploy: DeploySpec,
}

/// `[services.NAME.deploy]`: read and checked with the rest of the file, used only by
/// `conductor export`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploySpec {
    /// The container image for container targets (checked by [`image_reference_problem`]).
    pub image: Option<String>,
}

/// Why `image` is not a reference docker or a kubelet could pull, if it is not:
/// `[registry[:port]/]path[:tag][@algorithm:hex]`, where the path is lowercase components of
/// letters and digits joined by `.`, `_`, `__` or `-`, separated by `/`.
pub fn image_reference_problem(image: &str) -> Option<&'static str> {
    if image.chars().any(char::is_whitespace) {
        return Some("must not contain spaces");
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let valid = digest.split_once(':').is_some_and(|(algorithm, hex)| {
            !algorithm.is_empty()
                && algorithm
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !valid {
            return Some("has a digest that is not algorithm:hex (like @sha256:<64 hex digits>)");
        }
    }
    // The tag follows the last `:` after the last `/` (a `:` before it is a registry port).
    let last_slash = name.rfind('/').map_or(0, |at| at + 1);
    let (path, tag) = match name[last_slash..].rfind(':') {
        Some(colon) => (
            &name[..last_slash + colon],
            Some(&name[last_slash + colon + 1..]),
        ),
        None => (name, None),
    };
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            return Some(
                "has a tag that is not 1 to 128 letters, digits, _, . and - (not starting with . or -)",
            );
        }
    }
    let mut components: Vec<&str> = path.split('/').collect();
    // A first component with a `.` or `:`, or `localhost`, is a registry host, not a path.
    if components.len() > 1 && (components[0].contains(['.', ':']) || components[0] == "localhost")
    {
        let host = components.remove(0);
        let (host_name, port) = host.split_once(':').unwrap_or((host, ""));
        let host_ok = !host_name.is_empty()
            && host_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
        let port_ok = port.is_empty() || port.parse::<u16>().is_ok_and(|port| port != 0);
        if !host_ok || !port_ok || (host.contains(':') && port.is_empty()) {
            return Some("has a registry host that is not host[:port]");
        }
    }
    if components.iter().any(|component| component.is_empty()) {
        return Some("has an empty path component (a leading, trailing or double /)");
    }
    for component in components {
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Some("has an uppercase letter in its path; image paths are lowercase");
        }
        let chars_ok = component
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        let ends_ok = component.starts_with(|c: char| c.is_ascii_alphanumeric())
            && component.ends_with(|c: char| c.is_ascii_alphanumeric());
        let separators_ok = !component.contains("..")
            && !component.contains("___")
            && !component.contains("._")
            && !component.contains("_.");
        if !chars_ok || !ends_ok || !separators_ok {
            return Some(
                "has a path component that is not lowercase letters and digits joined by ., _, __ or -",
            );
        }
    }
    None
}

/// A service's resource limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of memory its whole tree may use, enforced by measurement: over it for two
    /// samples in a row, the service is restarted.
    pub memory: Option<u64>,
    /// `RLIMIT_NOFILE` of each of its processes (set before exec; the OS enforces it).
    pub open_files: Option<u64>,
    /// `RLIMIT_NPROC` of each of its processes: the kernel counts every process of the user,
    /// not only the service's.
    pub processes: Option<u64>,
}

impl ServiceSpec {
    /// Whether this service is started (neither disabled nor skipped by a feature).
    pub fn is_active(&self) -> bool {
        self.selection == Selection::Active
    }

    /// The name for people: words split on `-` and `_`, each capitalised
    /// (`"pdf-export"` becomes `"Pdf Export"`), as in `✓ Starting Pdf Export Service...`.
    pub fn title(&self) -> String {
        self.name
            .split(['-', '_'])
            .filter(|word| !word.is_empty())
            .map(|word| {
                let mut chars = word.chars();
                match chars.next() {
                    Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Whether a service is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Started with the app.
    Active,
    /// `enabled = false`: listed in status as `disabled`, never started.
    Disabled,
    /// Its `feature` (the payload) is not among the enabled features.
    SkippedByFeature(String),
}

/// A service's health probe and its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSpec {
    /// What the probe does.
    pub check: HealthCheck,
    /// Time between liveness probes.
    pub interval: Duration,
    /// Time one probe may take.
    pub timeout: Duration,
    /// Consecutive failed probes that make a service `unhealthy`.
    pub failure_threshold: u32,
}

/// The kind of health probe (`kind = "http" | "tcp" | "exec" | "none"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// `GET http://127.0.0.1:<port><path>` answers 2xx (default path `/health`).
    Http {
        /// Request path, starting with `/`.
        path: String,
    },
    /// A TCP connection to the port succeeds.
    Tcp,
    /// A command exits with status 0.
    Exec {
        /// Program to run (resolved like a service command).
        command: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// No probe: alive means running.
    None,
}

/// A service's restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartSpec {
    /// Restarts allowed without a stable period of `reset_after` before the service is `failed`.
    pub max_retries: u32,
    /// Delay before the first restart; doubled for each further attempt.
    pub backoff: Duration,
    /// Upper bound of the doubled delay.
    pub backoff_max: Duration,
    /// Time a service must stay running and healthy for its restart count to reset.
    pub reset_after: Duration,
}

/// Choices made by the caller rather than the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// `--features a,b`: when `Some`, replaces `[app] features`.
    pub features: Option<Vec<String>>,
}

/// SPEC §2 values used when neither a service nor `[defaults]` names a key.
pub(crate) mod fallback {
    use std::time::Duration;

    pub(crate) const HEALTH_PATH: &str = "/health";
    pub(crate) const INTERVAL: Duration = Duration::from_secs(10);
    pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);
    pub(crate) const FAILURE_THRESHOLD: u32 = 3;
    pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);
    pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(5);
    pub(crate) const METRICS_INTERVAL: Duration = Duration::from_secs(2);
    pub(crate) const MAX_RETRIES: u32 = 3;
    pub(crate) const BACKOFF: Duration = Duration::from_secs(1);
    pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(30);
    pub(crate) const RESET_AFTER: Duration = Duration::from_secs(60);
    pub(crate) const DEPLOYMENT_ENV: &str = "desktop";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> ServiceSpec {
        let mut service = crate::Registry::builtin().services[0].clone();
        service.name = name.to_owned();
        service
    }

    #[test]
    fn image_references_are_checked_as_docker_reads_them() {
        for good in [
            "records",
            "acme/records:1.4",
            "ghcr.io/acme/records:1.4",
            "localhost:5000/records",
            "registry.example:443/a/b-c/d_e__f:v1.0-rc_1",
            "records@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(image_reference_problem(good), None, "{good}");
        }
        for (bad, reason) in [
            ("Records", "has an uppercase"),
            ("acme//records", "has an empty path"),
            ("acme/records:", "has a tag"),
            ("acme/records:-x", "has a tag"),
            ("a b", "must not contain spaces"),
            ("-records", "has a path component"),
            ("records@sha256:xyz", "has a digest"),
            ("host:0/records", "has a registry host"),
        ] {
            match image_reference_problem(bad) {
                Some(problem) => assert!(problem.starts_with(reason), "{bad}: {problem}"),
                None => panic!("{bad} was taken as an image"),
            }
        }
    }

    #[test]
    fn title_capitalises_each_word() {
        assert_eq!(named("records").title(), "Records");
        assert_eq!(named("pdf-export").title(), "Pdf Export");
        assert_eq!(named("ocr_gpu").title(), "Ocr Gpu");
        assert_eq!(named("a--b").title(), "A B");
    }
}
