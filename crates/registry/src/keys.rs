//! The registry's keys, one table per section: name, type, default and description of each.
//!
//! This is the one list of what `conductor.toml` may contain. The parser checks every table's
//! unknown keys against it (and takes its choices and ranges from it), and [`json_schema`]
//! turns it into the JSON Schema editors use, so the two cannot drift apart.
//! It does not read anything: what a key means once read is the section readers' job.

use serde_json::{Map, Value, json};

/// What a key's value is, as far as the schema can say.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Type {
    /// Any string.
    String,
    /// A string that must not be blank.
    Word,
    /// `true` or `false`.
    Bool,
    /// A whole number in `min..=max`.
    Integer { min: i64, max: i64 },
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// A humantime duration string (`"500ms"`, `"1m 30s"`).
    Duration,
    /// A size string with a unit (`"10MB"`) or a count of bytes.
    Size,
    /// An array of strings.
    Strings,
    /// A table of string values (`env`).
    Env,
    /// A sub-table.
    Table(&'static Table),
    /// A table of named sub-tables (`[services.NAME]`), each name matching `pattern`.
    Named {
        pattern: &'static str,
        table: &'static Table,
    },
}

/// One key of a table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) value: Type,
    /// The value used when the key is left out, as it would be written in the file.
    pub(crate) default: Option<DefaultValue>,
    pub(crate) required: bool,
    pub(crate) description: &'static str,
}

/// A default value as written in TOML.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DefaultValue {
    Str(&'static str),
    Int(i64),
    Bool(bool),
    EmptyList,
}

/// The keys of one table.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) description: &'static str,
    pub(crate) keys: &'static [Key],
}

impl Table {
    /// The key names, in table order, for `check_keys` and its help line.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.keys.iter().map(|key| key.name).collect()
    }
}

const fn key(name: &'static str, value: Type, description: &'static str) -> Key {
    Key {
        name,
        value,
        default: None,
        required: false,
        description,
    }
}

const fn with_default(
    name: &'static str,
    value: Type,
    default: DefaultValue,
    description: &'static str,
) -> Key {
    Key {
        name,
        value,
        default: Some(default),
        required: false,
        description,
    }
}

const fn required(name: &'static str, value: Type, description: &'static str) -> Key {
    Key {
        name,
        value,
        default: None,
        required: true,
        description,
    }
}

const U32_MAX: i64 = u32::MAX as i64;

/// `[app] startup`.
pub(crate) const STARTUP_MODES: &[&str] = &["dependency", "sequential"];
/// `health.kind`.
pub(crate) const HEALTH_KINDS: &[&str] = &["http", "tcp", "exec", "none"];
/// The platform tables under `[services.NAME.platform]`.
pub(crate) const PLATFORMS: &[&str] = &["linux", "macos", "windows"];
/// `limits.open_files`: a process needs its stdin, stdout and stderr, and most runtimes a few
/// more; beyond 2^30 the kernel refuses or the number means nothing.
pub(crate) const OPEN_FILES: (i64, i64) = (8, 1 << 30);
/// `limits.processes`.
pub(crate) const PROCESSES: (i64, i64) = (1, 1 << 30);
/// A service name: it names log files and is injected as `SERVICE_NAME`.
pub(crate) const SERVICE_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_-]*$";

pub(crate) static ROOT: Table = Table {
    description: "A conductor service registry (conductor.toml): the app, its database, logs, defaults and services.",
    keys: &[
        key(
            "app",
            Type::Table(&APP),
            "What the application is and how it starts.",
        ),
        key(
            "database",
            Type::Table(&DATABASE),
            "Where the SQLite database and its migrations are.",
        ),
        key(
            "logs",
            Type::Table(&LOGS),
            "Log rotation and the in-memory tail.",
        ),
        key(
            "defaults",
            Type::Table(&DEFAULTS),
            "Values every service falls back to, key by key.",
        ),
        key(
            "services",
            Type::Named {
                pattern: SERVICE_NAME_PATTERN,
                table: &SERVICE,
            },
            "The services, one [services.NAME] table each; NAME is letters, digits, - and _.",
        ),
    ],
};

pub(crate) static APP: Table = Table {
    description: "What the application is and how it starts.",
    keys: &[
        required(
            "name",
            Type::Word,
            "Application name; names the data directory and the default database file.",
        ),
        with_default(
            "deployment_env",
            Type::Word,
            DefaultValue::Str("desktop"),
            "Injected into every service as DEPLOYMENT_ENV.",
        ),
        with_default(
            "startup",
            Type::Choice(STARTUP_MODES),
            DefaultValue::Str("dependency"),
            "\"dependency\": a service starts once its dependencies are ready, independent ones concurrently; \"sequential\": one at a time, in file order.",
        ),
        with_default(
            "features",
            Type::Strings,
            DefaultValue::EmptyList,
            "Enabled features; services with another feature are skipped (\"core\" is always enabled). --features replaces this list.",
        ),
        key(
            "window",
            Type::Table(&WINDOW),
            "Started after every service is ready; its exit quits the app.",
        ),
        with_default(
            "allowed_origins",
            Type::Strings,
            DefaultValue::EmptyList,
            "Origins (scheme://host[:port], as browsers send them) whose pages may call the control API.",
        ),
    ],
};

pub(crate) static WINDOW: Table = Table {
    description: "The window command: started after every service is ready; its exit quits the app.",
    keys: &[
        required(
            "command",
            Type::Word,
            "Program to run: a path relative to the registry, or a name looked up in PATH.",
        ),
        with_default(
            "args",
            Type::Strings,
            DefaultValue::EmptyList,
            "Arguments passed to the program.",
        ),
        key(
            "cwd",
            Type::String,
            "Working directory, relative to the registry (default: the registry's directory).",
        ),
        key("env", Type::Env, "Extra environment variables."),
    ],
};

pub(crate) static DATABASE: Table = Table {
    description: "Where the SQLite database and its migrations are.",
    keys: &[
        key(
            "path",
            Type::Word,
            "Database file, relative to the registry (default: <userData>/<app name>.db); injected as DATABASE_URL.",
        ),
        key(
            "migrations",
            Type::Word,
            "Directory of refinery migrations read at run time (default: the migrations embedded in conductor).",
        ),
    ],
};

pub(crate) static LOGS: Table = Table {
    description: "Log rotation and the in-memory tail.",
    keys: &[
        with_default(
            "max_size",
            Type::Size,
            DefaultValue::Str("10MB"),
            "Rotate a service's log file at this size (1 KB = 1024 bytes).",
        ),
        with_default(
            "max_files",
            Type::Integer {
                min: 0,
                max: U32_MAX,
            },
            DefaultValue::Int(10),
            "Rotated files kept per service (gzip-compressed).",
        ),
        with_default(
            "tail",
            Type::Integer {
                min: 0,
                max: U32_MAX,
            },
            DefaultValue::Int(10_000),
            "Entries kept in memory per service for logs:get.",
        ),
        with_default(
            "tail_bytes",
            Type::Size,
            DefaultValue::Str("4MB"),
            "Bytes of those entries kept in memory per service.",
        ),
    ],
};

pub(crate) static DEFAULTS: Table = Table {
    description: "Values every service falls back to, key by key.",
    keys: &[
        key(
            "health",
            Type::Table(&HEALTH),
            "The default readiness and liveness probe.",
        ),
        with_default(
            "ready_timeout",
            Type::Duration,
            DefaultValue::Str("30s"),
            "How long a start may take before it counts as failed (greater than zero).",
        ),
        with_default(
            "stop_timeout",
            Type::Duration,
            DefaultValue::Str("5s"),
            "How long to wait after SIGTERM before SIGKILL.",
        ),
        key(
            "restart",
            Type::Table(&RESTART),
            "The default restart policy.",
        ),
        with_default(
            "metrics_interval",
            Type::Duration,
            DefaultValue::Str("2s"),
            "How often each service's CPU and memory are sampled; \"0s\" is off, else at least 100ms.",
        ),
    ],
};

pub(crate) static HEALTH: Table = Table {
    description: "Readiness and liveness probe; a service's table overrides only the keys it names.",
    keys: &[
        with_default(
            "kind",
            Type::Choice(HEALTH_KINDS),
            DefaultValue::Str("http"),
            "http: GET path answers 2xx; tcp: a connection to the port succeeds; exec: a command exits 0; none: alive means running.",
        ),
        with_default(
            "path",
            Type::Word,
            DefaultValue::Str("/health"),
            "kind = \"http\" only: the request path, starting with /.",
        ),
        key(
            "command",
            Type::Word,
            "kind = \"exec\" only: the program to run.",
        ),
        with_default(
            "args",
            Type::Strings,
            DefaultValue::EmptyList,
            "kind = \"exec\" only: its arguments.",
        ),
        with_default(
            "interval",
            Type::Duration,
            DefaultValue::Str("10s"),
            "Time between liveness probes (greater than zero).",
        ),
        with_default(
            "timeout",
            Type::Duration,
            DefaultValue::Str("2s"),
            "Time one probe may take (greater than zero).",
        ),
        with_default(
            "failure_threshold",
            Type::Integer {
                min: 1,
                max: U32_MAX,
            },
            DefaultValue::Int(3),
            "Consecutive failed probes that make a service unhealthy.",
        ),
    ],
};

pub(crate) static RESTART: Table = Table {
    description: "Restart policy; a service's table overrides only the keys it names.",
    keys: &[
        with_default(
            "max_retries",
            Type::Integer {
                min: 0,
                max: U32_MAX,
            },
            DefaultValue::Int(3),
            "Restarts allowed without a stable period of reset_after before the service is failed.",
        ),
        with_default(
            "backoff",
            Type::Duration,
            DefaultValue::Str("1s"),
            "Delay before the first restart; doubled for each further attempt.",
        ),
        with_default(
            "backoff_max",
            Type::Duration,
            DefaultValue::Str("30s"),
            "Upper bound of the doubled delay.",
        ),
        with_default(
            "reset_after",
            Type::Duration,
            DefaultValue::Str("60s"),
            "Time a service must stay running and healthy for its restart count to reset.",
        ),
    ],
};

pub(crate) static SERVICE: Table = Table {
    description: "One service: a local HTTP server conductor starts, watches and restarts.",
    keys: &[
        required(
            "port",
            Type::Integer {
                min: 1,
                max: 65_535,
            },
            "The fixed port it listens on, unique in the registry; injected as PORT.",
        ),
        key(
            "command",
            Type::Word,
            "Program to run: a path relative to the registry, or a name looked up in PATH (required here or in the current platform's table).",
        ),
        with_default(
            "args",
            Type::Strings,
            DefaultValue::EmptyList,
            "Arguments passed to the program.",
        ),
        key(
            "cwd",
            Type::String,
            "Working directory, relative to the registry (default: the registry's directory).",
        ),
        key(
            "env",
            Type::Env,
            "The service's own environment variables, applied after the injected ones.",
        ),
        with_default(
            "depends_on",
            Type::Strings,
            DefaultValue::EmptyList,
            "Names of the services this one needs ready before it starts.",
        ),
        with_default(
            "critical",
            Type::Bool,
            DefaultValue::Bool(true),
            "false: the app runs degraded without this service instead of aborting startup.",
        ),
        key(
            "feature",
            Type::Word,
            "The feature this service belongs to; it is skipped unless the feature is enabled.",
        ),
        with_default(
            "enabled",
            Type::Bool,
            DefaultValue::Bool(true),
            "false: listed in status as disabled, never started.",
        ),
        key(
            "platform",
            Type::Table(&PLATFORM),
            "Per-OS overrides of command, args, cwd and env.",
        ),
        key(
            "health",
            Type::Table(&HEALTH),
            "This service's probe; keys not named come from [defaults.health].",
        ),
        key(
            "ready_timeout",
            Type::Duration,
            "How long a start may take before it counts as failed (default: [defaults] ready_timeout).",
        ),
        key(
            "stop_timeout",
            Type::Duration,
            "How long to wait after SIGTERM before SIGKILL (default: [defaults] stop_timeout).",
        ),
        key(
            "restart",
            Type::Table(&RESTART),
            "This service's restart policy; keys not named come from [defaults.restart].",
        ),
        key(
            "metrics_interval",
            Type::Duration,
            "How often its CPU and memory are sampled (default: [defaults] metrics_interval).",
        ),
        key(
            "limits",
            Type::Table(&LIMITS),
            "Resource limits of the service's process tree.",
        ),
        key(
            "deploy",
            Type::Table(&DEPLOY),
            "For `conductor export` only (ignored by `up`): how the service runs on another engine.",
        ),
    ],
};

pub(crate) static PLATFORM: Table = Table {
    description: "Per-OS overrides; every platform's table is checked, only the current one applies.",
    keys: &[
        key("linux", Type::Table(&OVERRIDES), "Overrides on Linux."),
        key("macos", Type::Table(&OVERRIDES), "Overrides on macOS."),
        key("windows", Type::Table(&OVERRIDES), "Overrides on Windows."),
    ],
};

pub(crate) static OVERRIDES: Table = Table {
    description: "One platform's overrides: command, args and cwd replace the service's; env adds to it.",
    keys: &[
        key("command", Type::Word, "Replaces the service's command."),
        key("args", Type::Strings, "Replaces the service's args."),
        key(
            "env",
            Type::Env,
            "Added to the service's env, replacing values of the same names.",
        ),
        key("cwd", Type::String, "Replaces the service's cwd."),
    ],
};

pub(crate) static LIMITS: Table = Table {
    description: "Resource limits of the service's process tree; a key left out is unlimited.",
    keys: &[
        key(
            "memory",
            Type::Size,
            "Memory of the whole tree, enforced by measurement: over it for two samples in a row, the service is restarted.",
        ),
        key(
            "open_files",
            Type::Integer {
                min: OPEN_FILES.0,
                max: OPEN_FILES.1,
            },
            "RLIMIT_NOFILE of each of its processes.",
        ),
        key(
            "processes",
            Type::Integer {
                min: PROCESSES.0,
                max: PROCESSES.1,
            },
            "RLIMIT_NPROC of each of its processes (the kernel counts every process of the user).",
        ),
    ],
};

pub(crate) static DEPLOY: Table = Table {
    description: "How `conductor export` runs this service elsewhere; `up` ignores it.",
    keys: &[key(
        "image",
        Type::Word,
        "Container image for the compose and kubernetes targets, like \"ghcr.io/acme/records:1.4\" (else --image-prefix).",
    )],
};

/// The JSON Schema (draft 2020-12) of `conductor.toml`, built from the same key tables the
/// parser checks files against. Unknown keys are refused (`additionalProperties: false`), as
/// the parser refuses them.
pub fn json_schema() -> Value {
    let mut schema = table_schema(&ROOT);
    if let Value::Object(object) = &mut schema {
        object.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        object.insert(
            "$id".into(),
            json!("https://example.invalid/conductor/conductor.schema.json"),
        );
        object.insert("title".into(), json!("conductor.toml"));
    }
    schema
}

fn table_schema(table: &Table) -> Value {
    let mut properties = Map::new();
    for key in table.keys {
        properties.insert(key.name.to_owned(), key_schema(key));
    }
    let required: Vec<&str> = table
        .keys
        .iter()
        .filter(|key| key.required)
        .map(|key| key.name)
        .collect();
    let mut schema = json!({
        "type": "object",
        "description": table.description,
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

fn key_schema(key: &Key) -> Value {
    let mut schema = type_schema(key.value);
    if let Value::Object(object) = &mut schema {
        object.insert("description".into(), json!(key.description));
        if let Some(default) = key.default {
            let default = match default {
                DefaultValue::Str(text) => json!(text),
                DefaultValue::Int(number) => json!(number),
                DefaultValue::Bool(flag) => json!(flag),
                DefaultValue::EmptyList => json!([]),
            };
            object.insert("default".into(), default);
        }
    }
    schema
}

/// A humantime duration: numbers each followed by a unit (`"1h 30m"`). Loose on the units
/// (the parser names a wrong one precisely), strict on the shape, so `"10"` is refused.
const DURATION_PATTERN: &str = r"^\s*([0-9]+\s*[A-Za-zµ]+\s*)+$";
const SIZE_PATTERN: &str = r"^\s*[0-9]+\s*[A-Za-z]*\s*$";

fn type_schema(value: Type) -> Value {
    match value {
        Type::String => json!({ "type": "string" }),
        Type::Word => json!({ "type": "string", "pattern": r"\S" }),
        Type::Bool => json!({ "type": "boolean" }),
        Type::Integer { min, max } => json!({ "type": "integer", "minimum": min, "maximum": max }),
        Type::Choice(words) => json!({ "type": "string", "enum": words }),
        Type::Duration => json!({ "type": "string", "pattern": DURATION_PATTERN }),
        Type::Size => json!({
            "oneOf": [
                { "type": "string", "pattern": SIZE_PATTERN },
                { "type": "integer", "minimum": 1 },
            ]
        }),
        Type::Strings => json!({ "type": "array", "items": { "type": "string" } }),
        Type::Env => json!({ "type": "object", "additionalProperties": { "type": "string" } }),
        Type::Table(table) => table_schema(table),
        Type::Named { pattern, table } => json!({
            "type": "object",
            "propertyNames": { "pattern": pattern },
            "additionalProperties": table_schema(table),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{LogsSpec, fallback};
    use crate::units::{parse_duration, parse_size};

    fn default_of(table: &Table, name: &str) -> DefaultValue {
        match table.keys.iter().find(|key| key.name == name) {
            Some(Key {
                default: Some(default),
                ..
            }) => *default,
            _ => panic!("{name} has a default in the key table"),
        }
    }

    fn duration_default(table: &Table, name: &str) -> std::time::Duration {
        match default_of(table, name) {
            DefaultValue::Str(text) => {
                parse_duration(text).unwrap_or_else(|e| panic!("{name}: {e}"))
            }
            other => panic!("{name}: {other:?} is not a duration"),
        }
    }

    /// The schema's defaults are what the parser falls back to, so an editor's hover is true.
    #[test]
    fn documented_defaults_are_the_parser_s_fallbacks() {
        assert_eq!(duration_default(&HEALTH, "interval"), fallback::INTERVAL);
        assert_eq!(duration_default(&HEALTH, "timeout"), fallback::TIMEOUT);
        assert_eq!(
            duration_default(&DEFAULTS, "ready_timeout"),
            fallback::READY_TIMEOUT
        );
        assert_eq!(
            duration_default(&DEFAULTS, "stop_timeout"),
            fallback::STOP_TIMEOUT
        );
        assert_eq!(
            duration_default(&DEFAULTS, "metrics_interval"),
            fallback::METRICS_INTERVAL
        );
        assert_eq!(duration_default(&RESTART, "backoff"), fallback::BACKOFF);
        assert_eq!(
            duration_default(&RESTART, "backoff_max"),
            fallback::BACKOFF_MAX
        );
        assert_eq!(
            duration_default(&RESTART, "reset_after"),
            fallback::RESET_AFTER
        );
        assert!(
            matches!(default_of(&RESTART, "max_retries"), DefaultValue::Int(n) if n == i64::from(fallback::MAX_RETRIES))
        );
        assert!(
            matches!(default_of(&HEALTH, "failure_threshold"), DefaultValue::Int(n) if n == i64::from(fallback::FAILURE_THRESHOLD))
        );
        assert!(
            matches!(default_of(&HEALTH, "path"), DefaultValue::Str(p) if p == fallback::HEALTH_PATH)
        );
        assert!(
            matches!(default_of(&APP, "deployment_env"), DefaultValue::Str(e) if e == fallback::DEPLOYMENT_ENV)
        );
        let logs = LogsSpec::default();
        let size = |name| match default_of(&LOGS, name) {
            DefaultValue::Str(text) => parse_size(text).unwrap_or_default(),
            _ => 0,
        };
        assert_eq!(size("max_size"), logs.max_size);
        assert_eq!(
            usize::try_from(size("tail_bytes")).ok(),
            Some(logs.tail_bytes)
        );
        assert!(
            matches!(default_of(&LOGS, "max_files"), DefaultValue::Int(n) if n == 10 && logs.max_files == 10)
        );
        assert!(
            matches!(default_of(&LOGS, "tail"), DefaultValue::Int(n) if usize::try_from(n).ok() == Some(logs.tail))
        );
    }

    /// The fixture that uses every key must use every key of these tables (and parse), so the
    /// schema and the parser are both tried on all of them.
    #[test]
    fn the_every_key_fixture_names_every_key_and_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/registries/every-key.toml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        if let Err(error) = crate::Registry::parse(&text, &path, &crate::LoadOptions::default()) {
            panic!("{error}");
        }
        let document: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}"));
        // A key counts as used when some table of its kind has it: a service's exec probe
        // cannot also have an HTTP path, which [defaults.health] has instead.
        type Used = std::collections::BTreeSet<(usize, &'static str)>;
        fn id(table: &Table) -> usize {
            std::ptr::from_ref(table) as usize
        }
        fn walk(table: &'static Table, value: &toml::Table, used: &mut Used) {
            for key in table.keys {
                let Some(given) = value.get(key.name) else {
                    continue;
                };
                used.insert((id(table), key.name));
                match (given, key.value) {
                    (toml::Value::Table(inner), Type::Table(keys)) => walk(keys, inner, used),
                    (toml::Value::Table(named), Type::Named { table: keys, .. }) => {
                        for inner in named.values() {
                            if let toml::Value::Table(inner) = inner {
                                walk(keys, inner, used);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        fn all(table: &'static Table, at: &str, out: &mut Vec<(usize, &'static str, String)>) {
            for key in table.keys {
                let path = format!("{at}{}", key.name);
                if !out
                    .iter()
                    .any(|(t, k, _)| *t == id(table) && *k == key.name)
                {
                    out.push((id(table), key.name, path.clone()));
                }
                if let Type::Table(inner) | Type::Named { table: inner, .. } = key.value {
                    all(inner, &format!("{path}."), out);
                }
            }
        }
        let mut used = Used::new();
        walk(&ROOT, &document, &mut used);
        let mut every = Vec::new();
        all(&ROOT, "", &mut every);
        let missing: Vec<String> = every
            .into_iter()
            .filter(|(table, key, _)| !used.contains(&(*table, *key)))
            .map(|(_, _, path)| path)
            .collect();
        assert_eq!(
            missing,
            Vec::<String>::new(),
            "keys the fixture does not use"
        );
    }

    /// The schema as editors get it, so a change of a key, type, default or description is
    /// reviewed as a diff.
    #[test]
    fn the_schema_as_editors_get_it() {
        insta::assert_json_snapshot!(json_schema());
    }

    #[test]
    fn the_platform_table_is_the_platforms_the_parser_reads() {
        assert_eq!(PLATFORM.names(), PLATFORMS);
    }

    #[test]
    fn every_key_has_a_description_and_the_schema_refuses_unknown_keys() {
        let schema = json_schema();
        assert_eq!(schema["additionalProperties"], json!(false));
        let service = &schema["properties"]["services"]["additionalProperties"];
        assert_eq!(service["additionalProperties"], json!(false));
        assert_eq!(service["required"], json!(["port"]));
        assert!(service["properties"]["deploy"]["properties"]["image"].is_object());
        fn walk(table: &Table) {
            for key in table.keys {
                assert!(
                    !key.description.is_empty(),
                    "{} has no description",
                    key.name
                );
                match key.value {
                    Type::Table(inner) | Type::Named { table: inner, .. } => walk(inner),
                    _ => {}
                }
            }
        }
        walk(&ROOT);
    }
}
