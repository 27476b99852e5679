//! Reads registry TOML into the model, collecting every problem instead of stopping at the first.
//!
//! The text is parsed into toml's spanned document tree and walked by hand rather than through
//! serde, so that an unknown key or a wrong type in one service does not hide the problems of
//! another, and every problem carries its line and column.
//! Checks that need the whole registry (dependencies, cycles, ports) live in `validate`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{LoadError, Problem, ProblemKind};
use crate::spec::{
    AppSpec, DatabaseSpec, HealthCheck, HealthSpec, LoadOptions, LogsSpec, Registry, RestartSpec,
    Selection, ServiceSpec, StartupMode, WindowSpec, fallback,
};
use crate::suggest::closest;
use crate::units::{parse_duration, parse_size};

type Span = Range<usize>;
type Value<'i> = Spanned<DeValue<'i>>;

const ROOT_KEYS: &[&str] = &["app", "database", "logs", "defaults", "services"];
const APP_KEYS: &[&str] = &["name", "deployment_env", "startup", "features", "window"];
const WINDOW_KEYS: &[&str] = &["command", "args", "cwd", "env"];
const DATABASE_KEYS: &[&str] = &["path", "migrations"];
const LOGS_KEYS: &[&str] = &["max_size", "max_files", "tail", "tail_bytes"];
const DEFAULTS_KEYS: &[&str] = &["health", "ready_timeout", "stop_timeout", "restart"];
const SERVICE_KEYS: &[&str] = &[
    "port",
    "command",
    "args",
    "cwd",
    "env",
    "depends_on",
    "critical",
    "feature",
    "enabled",
    "platform",
    "health",
    "ready_timeout",
    "stop_timeout",
    "restart",
];
const PLATFORM_KEYS: &[&str] = &["linux", "macos", "windows"];
const OVERRIDE_KEYS: &[&str] = &["command", "args", "env", "cwd"];
const HEALTH_KEYS: &[&str] = &[
    "kind",
    "path",
    "command",
    "args",
    "interval",
    "timeout",
    "failure_threshold",
];
const HEALTH_KINDS: &[&str] = &["http", "tcp", "exec", "none"];
const RESTART_KEYS: &[&str] = &["max_retries", "backoff", "backoff_max", "reset_after"];
const STARTUP_MODES: &[&str] = &["dependency", "sequential"];

/// The platform table whose overrides apply to this build.
const CURRENT_PLATFORM: &str = if cfg!(target_os = "windows") {
    "windows"
} else if cfg!(target_os = "macos") {
    "macos"
} else {
    "linux"
};

impl Registry {
    /// Reads, parses and validates the registry file at `path`.
    ///
    /// # Errors
    /// [`LoadError`] listing every problem, or the read failure when the file cannot be read.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Registry, LoadError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Registry::parse(&text, path, options),
            Err(error) => {
                let help = if error.kind() == std::io::ErrorKind::NotFound {
                    "check the path; without --registry conductor uses ./conductor.toml, \
                     or the built-in registry when that file does not exist"
                } else {
                    "check that the file is a readable UTF-8 text file"
                };
                Err(LoadError {
                    file: path.to_path_buf(),
                    problems: vec![Problem {
                        location: String::new(),
                        line_col: None,
                        kind: ProblemKind::Read(error),
                        help: Some(help.to_owned()),
                    }],
                })
            }
        }
    }

    /// Parses and validates registry text; `path` names the file in messages and its directory
    /// is the base for relative paths.
    ///
    /// # Errors
    /// [`LoadError`] listing every problem found.
    pub fn parse(text: &str, path: &Path, options: &LoadOptions) -> Result<Registry, LoadError> {
        let mut ctx = Ctx::new(text);
        let (root, syntax_errors) = DeTable::parse_recoverable(text);
        if !syntax_errors.is_empty() {
            // A recovered tree after a syntax error is a guess; checking it would report
            // problems the user did not make, so report only the syntax and stop.
            for error in syntax_errors {
                ctx.report(
                    "",
                    error.span(),
                    ProblemKind::Syntax(error.message().trim().to_owned()),
                    Some("fix the TOML syntax here; the rest is checked once the file parses"),
                );
            }
            return Err(ctx.into_error(path));
        }
        let root = Section {
            table: root.get_ref(),
            path: String::new(),
            span: None,
        };
        let parsed = read_registry(&mut ctx, &root, base_dir_of(path), options);
        crate::validate::check(&mut ctx, &parsed);
        if ctx.problems.is_empty() {
            Ok(parsed.registry)
        } else {
            Err(ctx.into_error(path))
        }
    }
}

/// The absolute directory that holds `path`; `.` components are dropped, symlinks are kept.
fn base_dir_of(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        // "conductor.toml" has the empty path as parent, which std::path::absolute rejects.
        _ => Path::new("."),
    };
    // std::path::absolute only fails when the current directory is unreadable; a relative base
    // then still resolves correctly for a process started in the same directory.
    clean(&std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf()))
}

/// `base` joined with `relative` (which may be absolute), without `.` components.
pub(crate) fn resolve(base: &Path, relative: &str) -> PathBuf {
    clean(&base.join(relative))
}

fn clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|component| *component != Component::CurDir)
        .collect()
}

/// A command with a path separator is relative to the registry; a bare name is found in `PATH`.
pub(crate) fn resolve_command(base: &Path, command: &str) -> String {
    if command.contains('/') || command.contains(std::path::MAIN_SEPARATOR) {
        resolve(base, command).to_string_lossy().into_owned()
    } else {
        command.to_owned()
    }
}

/// The problem list and what is needed to give each problem a line and column.
pub(crate) struct Ctx<'t> {
    text: &'t str,
    line_starts: Vec<usize>,
    pub(crate) problems: Vec<Problem>,
}

impl<'t> Ctx<'t> {
    fn new(text: &'t str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(index, _)| index + 1))
            .collect();
        Ctx {
            text,
            line_starts,
            problems: Vec::new(),
        }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|start| *start <= offset);
        let line_start = self.line_starts[line.saturating_sub(1)];
        let offset = offset.min(self.text.len());
        let column = self
            .text
            .get(line_start..offset)
            .map_or(offset - line_start, |prefix| prefix.chars().count());
        (line, column + 1)
    }

    pub(crate) fn report(
        &mut self,
        location: &str,
        span: Option<Span>,
        kind: ProblemKind,
        help: Option<&str>,
    ) {
        self.report_owned(location, span, kind, help.map(str::to_owned));
    }

    pub(crate) fn report_owned(
        &mut self,
        location: &str,
        span: Option<Span>,
        kind: ProblemKind,
        help: Option<String>,
    ) {
        let line_col = span.map(|span| self.line_col(span.start));
        self.problems.push(Problem {
            location: location.to_owned(),
            line_col,
            kind,
            help,
        });
    }

    fn into_error(mut self, path: &Path) -> LoadError {
        // Problems are found section by section and then across services; reading them in
        // file order is easier, with the ones that have no place in the file last.
        self.problems
            .sort_by_key(|problem| (problem.line_col.is_none(), problem.line_col));
        LoadError {
            file: path.to_path_buf(),
            problems: self.problems,
        }
    }
}

/// A table being read, with its dotted path for messages.
struct Section<'a, 'i> {
    table: &'a DeTable<'i>,
    path: String,
    /// Where the table is named (its key), for problems about a key that is missing.
    span: Option<Span>,
}

impl<'a, 'i> Section<'a, 'i> {
    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.table.get(key)
    }

    /// Reports every key not in `known`, suggesting the closest known one.
    fn check_keys(&self, ctx: &mut Ctx<'_>, known: &[&'static str]) {
        let mut keys: Vec<&Spanned<_>> = self.table.keys().collect();
        keys.sort_by_key(|key| key.span().start);
        for key in keys {
            let name: &str = key.get_ref();
            if known.contains(&name) {
                continue;
            }
            let header = if self.path.is_empty() {
                "at the top level".to_owned()
            } else {
                format!("in [{}]", self.path)
            };
            let help = match closest(name, known.iter().copied()) {
                Some(suggestion) => format!(
                    "did you mean \"{suggestion}\"? Keys allowed {header}: {}",
                    known.join(", ")
                ),
                None => format!("remove it; keys allowed {header}: {}", known.join(", ")),
            };
            ctx.report_owned(
                &self.key_path(name),
                Some(key.span()),
                ProblemKind::UnknownKey(name.to_owned()),
                Some(help),
            );
        }
    }

    /// The sub-table under `key`; a value of another type is reported.
    fn table(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<Section<'a, 'i>> {
        let value = self.get(key)?;
        let key_span = self.table.get_key_value(key).map(|(key, _)| key.span());
        match value.get_ref() {
            DeValue::Table(table) => Some(Section {
                table,
                path: self.key_path(key),
                span: key_span,
            }),
            other => {
                wrong_type(ctx, &self.key_path(key), value.span(), "a table", other);
                None
            }
        }
    }

    fn string(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<Spanned<String>> {
        let value = self.get(key)?;
        as_string(ctx, &self.key_path(key), value)
    }

    /// A string that must not be empty or blank.
    fn word(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<Spanned<String>> {
        let value = self.string(ctx, key)?;
        if value.get_ref().trim().is_empty() {
            let help = if key == "command" {
                "name the program to run, like \"node\" or \"./bin/server\""
            } else {
                "give it a value, or remove the key to use the default"
            };
            ctx.report(
                &self.key_path(key),
                Some(value.span()),
                ProblemKind::Empty,
                Some(help),
            );
            return None;
        }
        Some(value)
    }

    fn strings(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<Vec<Spanned<String>>> {
        let value = self.get(key)?;
        let location = self.key_path(key);
        let DeValue::Array(items) = value.get_ref() else {
            wrong_type(
                ctx,
                &location,
                value.span(),
                "an array of strings",
                value.get_ref(),
            );
            return None;
        };
        let mut strings = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            if let Some(string) = as_string(ctx, &format!("{location}[{index}]"), item) {
                strings.push(string);
            }
        }
        Some(strings)
    }

    fn bool(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<bool> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(flag) => Some(*flag),
            other => {
                wrong_type(ctx, &self.key_path(key), value.span(), "a boolean", other);
                None
            }
        }
    }

    fn integer(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<(i128, Span)> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Integer(integer) => {
                // TOML integers are 64-bit, so this only fails on text the parser rejected.
                let number =
                    i128::from_str_radix(integer.as_str(), integer.radix()).unwrap_or(i128::MAX);
                Some((number, value.span()))
            }
            other => {
                wrong_type(ctx, &self.key_path(key), value.span(), "an integer", other);
                None
            }
        }
    }

    fn bounded<T: TryFrom<i128>>(
        &self,
        ctx: &mut Ctx<'_>,
        key: &str,
        min: i128,
        max: i128,
    ) -> Option<T> {
        let (number, span) = self.integer(ctx, key)?;
        let in_range = (min..=max).contains(&number);
        match T::try_from(number) {
            Ok(converted) if in_range => Some(converted),
            _ => {
                ctx.report(
                    &self.key_path(key),
                    Some(span),
                    ProblemKind::OutOfRange {
                        value: number,
                        min,
                        max,
                    },
                    None,
                );
                None
            }
        }
    }

    /// A duration string; `positive` rejects zero where zero would mean busy-looping or
    /// giving up at once.
    fn duration(&self, ctx: &mut Ctx<'_>, key: &str, positive: bool) -> Option<Duration> {
        let value = self.get(key)?;
        let location = self.key_path(key);
        let DeValue::String(text) = value.get_ref() else {
            wrong_type(
                ctx,
                &location,
                value.span(),
                "a duration string",
                value.get_ref(),
            );
            return None;
        };
        let reason = match parse_duration(text) {
            Ok(duration) if positive && duration.is_zero() => {
                "must be greater than zero".to_owned()
            }
            Ok(duration) => return Some(duration),
            Err(error) => error.to_string(),
        };
        ctx.report(
            &location,
            Some(value.span()),
            ProblemKind::InvalidDuration {
                value: text.to_string(),
                reason,
            },
            Some("write a number with a unit: \"500ms\", \"10s\", \"2m\", \"1h 30m\""),
        );
        None
    }

    /// A size: a string with a unit (`"10MB"`) or an integer count of bytes; never zero.
    fn size(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<u64> {
        let value = self.get(key)?;
        let location = self.key_path(key);
        let help = Some(
            "write a whole number with a unit: \"512KB\", \"10MB\", \"1GB\" (1 KB = 1024 bytes)",
        );
        let (text, result) = match value.get_ref() {
            DeValue::String(text) => (
                text.to_string(),
                parse_size(text).map_err(|e| e.to_string()),
            ),
            DeValue::Integer(integer) => (
                integer.to_string(),
                integer
                    .as_str()
                    .parse::<u64>()
                    .map_err(|_| "must be a positive number of bytes".to_owned()),
            ),
            other => {
                wrong_type(ctx, &location, value.span(), "a size string", other);
                return None;
            }
        };
        let reason = match result {
            Ok(0) => "must be greater than zero".to_owned(),
            Ok(bytes) => return Some(bytes),
            Err(reason) => reason,
        };
        ctx.report(
            &location,
            Some(value.span()),
            ProblemKind::InvalidSize {
                value: text,
                reason,
            },
            help,
        );
        None
    }

    /// A string that must be one of `allowed`.
    fn choice(
        &self,
        ctx: &mut Ctx<'_>,
        key: &str,
        allowed: &'static [&'static str],
    ) -> Option<Spanned<&'static str>> {
        let value = self.string(ctx, key)?;
        let text = value.get_ref().as_str();
        if let Some(word) = allowed.iter().find(|word| **word == text) {
            return Some(Spanned::new(value.span(), *word));
        }
        let help = closest(text, allowed.iter().copied())
            .map(|word| format!("did you mean \"{word}\"?"))
            .or_else(|| (key == "startup").then(|| {
                "\"dependency\" starts each service once its dependencies are ready, \"sequential\" one at a time in file order".to_owned()
            }));
        ctx.report_owned(
            &self.key_path(key),
            Some(value.span()),
            ProblemKind::UnknownChoice {
                value: text.to_owned(),
                allowed,
            },
            help,
        );
        None
    }

    /// A table of string values (`env = { NODE_ENV = "production" }`).
    fn env(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<BTreeMap<String, String>> {
        let section = self.table(ctx, key)?;
        let mut env = BTreeMap::new();
        let mut entries: Vec<_> = section.table.iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        for (name, value) in entries {
            let location = section.key_path(name.get_ref());
            if let DeValue::String(text) = value.get_ref() {
                env.insert(name.get_ref().to_string(), text.to_string());
            } else {
                wrong_type(ctx, &location, value.span(), "a string", value.get_ref());
                if let Some(problem) = ctx.problems.last_mut() {
                    problem.help = Some(format!(
                        "environment values are strings: write {} = \"…\" with quotes",
                        name.get_ref()
                    ));
                }
            }
        }
        Some(env)
    }
}

fn as_string(ctx: &mut Ctx<'_>, location: &str, value: &Value<'_>) -> Option<Spanned<String>> {
    match value.get_ref() {
        DeValue::String(text) => Some(Spanned::new(value.span(), text.to_string())),
        other => {
            wrong_type(ctx, location, value.span(), "a string", other);
            None
        }
    }
}

fn wrong_type(
    ctx: &mut Ctx<'_>,
    location: &str,
    span: Span,
    expected: &'static str,
    found: &DeValue<'_>,
) {
    let key = location.rsplit('.').next().unwrap_or(location);
    let quote_help;
    let help = match expected {
        "a string" if key.ends_with(']') => "put each entry in double quotes",
        "a string" => {
            quote_help = format!("put the value in double quotes: {key} = \"…\"");
            quote_help.as_str()
        }
        "an integer" => "write a whole number without quotes, like 3001",
        "a boolean" => "write true or false, without quotes",
        "an array of strings" => "write a list of quoted strings: [\"a\", \"b\"]",
        "a table" => {
            "write a table: a [header] line followed by key = value lines, or { key = value }"
        }
        "a duration string" => "write a quoted number with a unit, like \"10s\" or \"500ms\"",
        "a size string" => "write a quoted size like \"10MB\", or a number of bytes",
        _ => "",
    };
    ctx.report(
        location,
        Some(span),
        ProblemKind::WrongType {
            expected,
            found: type_name(found),
        },
        (!help.is_empty()).then_some(help),
    );
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// What `read_registry` found, with the places `validate` needs to point at.
pub(crate) struct Parsed {
    pub(crate) registry: Registry,
    /// One entry per `registry.services` element, same order.
    pub(crate) places: Vec<ServicePlaces>,
    /// Whether the file has at least one `[services.NAME]` table (even an unreadable one).
    pub(crate) has_services: bool,
}

/// Where a service's cross-checked values are written.
pub(crate) struct ServicePlaces {
    /// The port value, when it was a usable port.
    pub(crate) port: Option<Span>,
    /// Each `depends_on` entry, aligned with `ServiceSpec::depends_on`.
    pub(crate) depends_on: Vec<Span>,
}

fn read_registry(
    ctx: &mut Ctx<'_>,
    root: &Section<'_, '_>,
    base_dir: PathBuf,
    options: &LoadOptions,
) -> Parsed {
    root.check_keys(ctx, ROOT_KEYS);
    let app = read_app(ctx, root, &base_dir, options);
    let database = read_database(ctx, root, &base_dir);
    let logs = read_logs(ctx, root);
    let defaults = read_defaults(ctx, root, &base_dir);

    let mut services = Vec::new();
    let mut places = Vec::new();
    let mut has_services = false;
    if let Some(section) = root.table(ctx, "services") {
        let mut entries: Vec<_> = section.table.iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        has_services = !entries.is_empty();
        for (name, value) in entries {
            let location = section.key_path(name.get_ref());
            let DeValue::Table(table) = value.get_ref() else {
                wrong_type(ctx, &location, value.span(), "a table", value.get_ref());
                if let Some(problem) = ctx.problems.last_mut() {
                    problem.help = Some(format!(
                        "declare a service as a table: [services.{}] with port and command",
                        name.get_ref()
                    ));
                }
                continue;
            };
            let service = Section {
                table,
                path: location,
                span: Some(name.span()),
            };
            let (spec, place) =
                read_service(ctx, name, &service, &base_dir, &defaults, &app.features);
            services.push(spec);
            places.push(place);
        }
    }
    Parsed {
        registry: Registry {
            app,
            database,
            logs,
            services,
            base_dir,
        },
        places,
        has_services,
    }
}

fn read_app(
    ctx: &mut Ctx<'_>,
    root: &Section<'_, '_>,
    base_dir: &Path,
    options: &LoadOptions,
) -> AppSpec {
    let app = root.table(ctx, "app");
    let mut spec = AppSpec {
        name: String::new(),
        deployment_env: fallback::DEPLOYMENT_ENV.to_owned(),
        startup: StartupMode::Dependency,
        features: Vec::new(),
        window: None,
    };
    let name_help =
        "add name = \"MyApp\" under [app]; it names the data directory and the default database";
    let Some(app) = app else {
        if root.get("app").is_none() {
            ctx.report(
                "app.name",
                None,
                ProblemKind::MissingKey("name"),
                Some(name_help),
            );
        }
        spec.features = options.features.clone().unwrap_or_default();
        return spec;
    };
    app.check_keys(ctx, APP_KEYS);
    match app.word(ctx, "name") {
        Some(name) if name.get_ref().contains(['/', '\\']) => ctx.report(
            "app.name",
            Some(name.span()),
            ProblemKind::InvalidValue {
                value: name.into_inner(),
                reason: "must not contain / or \\",
            },
            Some("the name is used as a directory name"),
        ),
        Some(name) => spec.name = name.into_inner(),
        None if app.get("name").is_none() => {
            ctx.report(
                "app.name",
                app.span.clone(),
                ProblemKind::MissingKey("name"),
                Some(name_help),
            );
        }
        None => {}
    }
    if let Some(env) = app.word(ctx, "deployment_env") {
        spec.deployment_env = env.into_inner();
    }
    if let Some(mode) = app.choice(ctx, "startup", STARTUP_MODES) {
        spec.startup = if *mode.get_ref() == "sequential" {
            StartupMode::Sequential
        } else {
            StartupMode::Dependency
        };
    }
    let file_features = app.strings(ctx, "features").unwrap_or_default();
    spec.features = match &options.features {
        Some(features) => features.clone(),
        None => file_features.into_iter().map(Spanned::into_inner).collect(),
    };
    if let Some(window) = app.table(ctx, "window") {
        window.check_keys(ctx, WINDOW_KEYS);
        let command = window.word(ctx, "command");
        if command.is_none() && window.get("command").is_none() {
            ctx.report(
                &window.path,
                window.span.clone(),
                ProblemKind::MissingKey("command"),
                Some("add command = \"…\": the program that shows the app's window"),
            );
        }
        let args = window.strings(ctx, "args").unwrap_or_default();
        let cwd = window.string(ctx, "cwd");
        let env = window.env(ctx, "env").unwrap_or_default();
        if let Some(command) = command {
            spec.window = Some(WindowSpec {
                command: resolve_command(base_dir, command.get_ref()),
                args: args.into_iter().map(Spanned::into_inner).collect(),
                cwd: cwd.map_or_else(
                    || base_dir.to_path_buf(),
                    |cwd| resolve(base_dir, cwd.get_ref()),
                ),
                env,
            });
        }
    }
    spec
}

fn read_database(ctx: &mut Ctx<'_>, root: &Section<'_, '_>, base_dir: &Path) -> DatabaseSpec {
    let Some(database) = root.table(ctx, "database") else {
        return DatabaseSpec::default();
    };
    database.check_keys(ctx, DATABASE_KEYS);
    DatabaseSpec {
        path: database
            .word(ctx, "path")
            .map(|path| resolve(base_dir, path.get_ref())),
        migrations: database
            .word(ctx, "migrations")
            .map(|path| resolve(base_dir, path.get_ref())),
    }
}

fn read_logs(ctx: &mut Ctx<'_>, root: &Section<'_, '_>) -> LogsSpec {
    let mut spec = LogsSpec::default();
    let Some(logs) = root.table(ctx, "logs") else {
        return spec;
    };
    logs.check_keys(ctx, LOGS_KEYS);
    if let Some(max_size) = logs.size(ctx, "max_size") {
        spec.max_size = max_size;
    }
    if let Some(max_files) = logs.bounded(ctx, "max_files", 0, i128::from(u32::MAX)) {
        spec.max_files = max_files;
    }
    if let Some(tail) = logs.bounded(ctx, "tail", 0, i128::from(u32::MAX)) {
        spec.tail = tail;
    }
    if let Some(tail_bytes) = logs.size(ctx, "tail_bytes") {
        spec.tail_bytes = usize::try_from(tail_bytes).unwrap_or(usize::MAX);
    }
    spec
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    Tcp,
    Exec,
    None,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tcp => "tcp",
            Kind::Exec => "exec",
            Kind::None => "none",
        }
    }
}

/// A `health` table as written: only the keys it names are `Some`.
#[derive(Clone, Default)]
struct HealthDraft {
    /// Where the table is named, to point at when a key it needs is missing.
    span: Option<Span>,
    kind: Option<Kind>,
    path: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
    args: Option<Spanned<Vec<String>>>,
    interval: Option<Duration>,
    timeout: Option<Duration>,
    failure_threshold: Option<u32>,
}

impl HealthDraft {
    fn read(ctx: &mut Ctx<'_>, section: &Section<'_, '_>) -> HealthDraft {
        section.check_keys(ctx, HEALTH_KEYS);
        let kind = section
            .choice(ctx, "kind", HEALTH_KINDS)
            .map(|kind| match *kind.get_ref() {
                "tcp" => Kind::Tcp,
                "exec" => Kind::Exec,
                "none" => Kind::None,
                _ => Kind::Http,
            });
        let path = section.word(ctx, "path");
        if let Some(path) = path
            .as_ref()
            .filter(|path| !path.get_ref().starts_with('/'))
        {
            ctx.report(
                &section.key_path("path"),
                Some(path.span()),
                ProblemKind::InvalidValue {
                    value: path.get_ref().clone(),
                    reason: "must start with /",
                },
                Some("write the HTTP path from its leading /, like \"/health\""),
            );
        }
        let args_span = section.get("args").map(Spanned::span);
        HealthDraft {
            span: section.span.clone(),
            kind,
            path,
            command: section.word(ctx, "command"),
            args: section
                .strings(ctx, "args")
                .zip(args_span)
                .map(|(args, span)| {
                    Spanned::new(span, args.into_iter().map(Spanned::into_inner).collect())
                }),
            interval: section.duration(ctx, "interval", true),
            timeout: section.duration(ctx, "timeout", true),
            failure_threshold: section.bounded(ctx, "failure_threshold", 1, i128::from(u32::MAX)),
        }
    }

    /// Combines this table with `base` (the defaults) into a probe.
    /// Only problems of keys this table names are reported, so `[defaults]` is blamed once.
    fn resolve(
        &self,
        ctx: &mut Ctx<'_>,
        location: &str,
        base: &HealthDraft,
        base_dir: &Path,
    ) -> HealthSpec {
        let kind = self.kind.or(base.kind).unwrap_or(Kind::Http);
        let misplaced = [
            ("path", self.path.as_ref().map(Spanned::span), Kind::Http),
            (
                "command",
                self.command.as_ref().map(Spanned::span),
                Kind::Exec,
            ),
            ("args", self.args.as_ref().map(Spanned::span), Kind::Exec),
        ];
        for (key, span, applies_to) in misplaced {
            if span.is_some() && kind != applies_to {
                ctx.report(
                    &format!("{location}.{key}"),
                    span,
                    ProblemKind::KeyNotForKind {
                        key,
                        applies_to: applies_to.name(),
                        kind: kind.name(),
                    },
                    Some("remove the key, or change kind"),
                );
            }
        }
        let check = match kind {
            Kind::Http => HealthCheck::Http {
                path: self.path.as_ref().or(base.path.as_ref()).map_or_else(
                    || fallback::HEALTH_PATH.to_owned(),
                    |path| path.get_ref().clone(),
                ),
            },
            Kind::Tcp => HealthCheck::Tcp,
            Kind::None => HealthCheck::None,
            Kind::Exec => {
                let command = self.command.as_ref().or(base.command.as_ref());
                if command.is_none() && self.kind == Some(Kind::Exec) {
                    ctx.report(
                        location,
                        self.span.clone(),
                        ProblemKind::MissingKey("command"),
                        Some("kind = \"exec\" runs a command: add command = \"…\" (and args = [ … ])"),
                    );
                }
                HealthCheck::Exec {
                    command: command.map_or_else(String::new, |command| {
                        resolve_command(base_dir, command.get_ref())
                    }),
                    args: self
                        .args
                        .as_ref()
                        .or(base.args.as_ref())
                        .map_or_else(Vec::new, |args| args.get_ref().clone()),
                }
            }
        };
        HealthSpec {
            check,
            interval: self
                .interval
                .or(base.interval)
                .unwrap_or(fallback::INTERVAL),
            timeout: self.timeout.or(base.timeout).unwrap_or(fallback::TIMEOUT),
            failure_threshold: self
                .failure_threshold
                .or(base.failure_threshold)
                .unwrap_or(fallback::FAILURE_THRESHOLD),
        }
    }
}

/// A `restart` table as written: only the keys it names are `Some`.
#[derive(Clone, Copy, Default)]
struct RestartDraft {
    max_retries: Option<u32>,
    backoff: Option<Duration>,
    backoff_max: Option<Duration>,
    reset_after: Option<Duration>,
}

impl RestartDraft {
    fn read(ctx: &mut Ctx<'_>, section: &Section<'_, '_>) -> RestartDraft {
        section.check_keys(ctx, RESTART_KEYS);
        RestartDraft {
            max_retries: section.bounded(ctx, "max_retries", 0, i128::from(u32::MAX)),
            backoff: section.duration(ctx, "backoff", false),
            backoff_max: section.duration(ctx, "backoff_max", false),
            reset_after: section.duration(ctx, "reset_after", false),
        }
    }

    fn resolve(&self, base: &RestartDraft) -> RestartSpec {
        RestartSpec {
            max_retries: self
                .max_retries
                .or(base.max_retries)
                .unwrap_or(fallback::MAX_RETRIES),
            backoff: self.backoff.or(base.backoff).unwrap_or(fallback::BACKOFF),
            backoff_max: self
                .backoff_max
                .or(base.backoff_max)
                .unwrap_or(fallback::BACKOFF_MAX),
            reset_after: self
                .reset_after
                .or(base.reset_after)
                .unwrap_or(fallback::RESET_AFTER),
        }
    }
}

/// `[defaults]` as written; every service falls back to it key by key.
#[derive(Default)]
struct Defaults {
    health: HealthDraft,
    ready_timeout: Option<Duration>,
    stop_timeout: Option<Duration>,
    restart: RestartDraft,
}

fn read_defaults(ctx: &mut Ctx<'_>, root: &Section<'_, '_>, base_dir: &Path) -> Defaults {
    let Some(defaults) = root.table(ctx, "defaults") else {
        return Defaults::default();
    };
    defaults.check_keys(ctx, DEFAULTS_KEYS);
    let health = defaults
        .table(ctx, "health")
        .map(|section| {
            let draft = HealthDraft::read(ctx, &section);
            // Resolving once here reports problems of [defaults.health] itself (a misplaced key,
            // exec without command) once instead of once per service.
            draft.resolve(ctx, &section.path, &HealthDraft::default(), base_dir);
            draft
        })
        .unwrap_or_default();
    Defaults {
        health,
        ready_timeout: defaults.duration(ctx, "ready_timeout", true),
        stop_timeout: defaults.duration(ctx, "stop_timeout", false),
        restart: defaults
            .table(ctx, "restart")
            .map(|section| RestartDraft::read(ctx, &section))
            .unwrap_or_default(),
    }
}

/// A service name must be safe as a file name (`<logs>/<name>.log`) and in environment values.
fn is_usable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn read_service(
    ctx: &mut Ctx<'_>,
    name: &Spanned<std::borrow::Cow<'_, str>>,
    service: &Section<'_, '_>,
    base_dir: &Path,
    defaults: &Defaults,
    features: &[String],
) -> (ServiceSpec, ServicePlaces) {
    let name_text = name.get_ref().to_string();
    let location = &service.path;
    if !is_usable_name(&name_text) {
        ctx.report(
            location,
            Some(name.span()),
            ProblemKind::InvalidServiceName(name_text.clone()),
            Some("use letters, digits, - and _ (starting with a letter or digit): the name is used in log file names and SERVICE_NAME"),
        );
    }
    service.check_keys(ctx, SERVICE_KEYS);

    let mut port_span = None;
    let mut port = 0;
    match service.integer(ctx, "port") {
        Some((number, span)) => match u16::try_from(number) {
            Ok(valid) if valid != 0 => {
                port = valid;
                port_span = Some(span);
            }
            _ => ctx.report(
                &service.key_path("port"),
                Some(span),
                ProblemKind::InvalidPort(number),
                Some("choose a free port from 1024 to 65535 that no other service uses"),
            ),
        },
        None if service.get("port").is_none() => ctx.report_owned(
            &service.key_path("port"),
            Some(name.span()),
            ProblemKind::MissingKey("port"),
            Some(format!("add port = <number> under [{location}]: every service listens on its own fixed port")),
        ),
        None => {}
    }

    let mut command = service.word(ctx, "command").map(Spanned::into_inner);
    let command_given = service.get("command").is_some();
    let mut args: Vec<String> = service
        .strings(ctx, "args")
        .unwrap_or_default()
        .into_iter()
        .map(Spanned::into_inner)
        .collect();
    let mut cwd = service.string(ctx, "cwd").map(Spanned::into_inner);
    let mut env = service.env(ctx, "env").unwrap_or_default();
    let mut override_gives_command = false;

    if let Some(platforms) = service.table(ctx, "platform") {
        platforms.check_keys(ctx, PLATFORM_KEYS);
        for platform in PLATFORM_KEYS {
            let Some(overrides) = platforms.table(ctx, platform) else {
                continue;
            };
            overrides.check_keys(ctx, OVERRIDE_KEYS);
            // Every platform's table is checked so a typo in another OS's override is caught
            // on the developer's machine, but only the current one is applied.
            let o_command = overrides.word(ctx, "command");
            let o_given = overrides.get("command").is_some();
            let o_args = overrides.strings(ctx, "args");
            let o_cwd = overrides.string(ctx, "cwd");
            let o_env = overrides.env(ctx, "env");
            if *platform != CURRENT_PLATFORM {
                continue;
            }
            override_gives_command = o_given;
            if let Some(o_command) = o_command {
                command = Some(o_command.into_inner());
            }
            if let Some(o_args) = o_args {
                args = o_args.into_iter().map(Spanned::into_inner).collect();
            }
            if let Some(o_cwd) = o_cwd {
                cwd = Some(o_cwd.into_inner());
            }
            env.extend(o_env.unwrap_or_default());
        }
    }
    if command.is_none() && !command_given && !override_gives_command {
        ctx.report_owned(
            &service.key_path("command"),
            Some(name.span()),
            ProblemKind::MissingKey("command"),
            Some(format!(
                "add command = \"…\" under [{location}] (or under [{location}.platform.{CURRENT_PLATFORM}]): the program that runs the service"
            )),
        );
    }

    let mut depends_on = Vec::new();
    let mut depends_on_spans = Vec::new();
    for dependency in service.strings(ctx, "depends_on").unwrap_or_default() {
        if depends_on.contains(dependency.get_ref()) {
            ctx.report(
                &service.key_path("depends_on"),
                Some(dependency.span()),
                ProblemKind::DuplicateDependency(dependency.get_ref().clone()),
                Some("list each dependency once"),
            );
            continue;
        }
        depends_on_spans.push(dependency.span());
        depends_on.push(dependency.into_inner());
    }

    let feature = service.word(ctx, "feature").map(Spanned::into_inner);
    let enabled = service.bool(ctx, "enabled").unwrap_or(true);
    let selection = match &feature {
        _ if !enabled => Selection::Disabled,
        Some(feature) if feature != "core" && !features.contains(feature) => {
            Selection::SkippedByFeature(feature.clone())
        }
        _ => Selection::Active,
    };

    let own_health = service
        .table(ctx, "health")
        .map(|section| HealthDraft::read(ctx, &section))
        .unwrap_or_default();
    let health = own_health.resolve(ctx, &service.key_path("health"), &defaults.health, base_dir);
    let restart = service
        .table(ctx, "restart")
        .map(|section| RestartDraft::read(ctx, &section))
        .unwrap_or_default()
        .resolve(&defaults.restart);

    let spec = ServiceSpec {
        name: name_text,
        port,
        command: command.map_or_else(String::new, |command| resolve_command(base_dir, &command)),
        args,
        cwd: cwd.map_or_else(|| base_dir.to_path_buf(), |cwd| resolve(base_dir, &cwd)),
        env,
        depends_on,
        critical: service.bool(ctx, "critical").unwrap_or(true),
        feature,
        enabled,
        selection,
        health,
        ready_timeout: service
            .duration(ctx, "ready_timeout", true)
            .or(defaults.ready_timeout)
            .unwrap_or(fallback::READY_TIMEOUT),
        stop_timeout: service
            .duration(ctx, "stop_timeout", false)
            .or(defaults.stop_timeout)
            .unwrap_or(fallback::STOP_TIMEOUT),
        restart,
    };
    let places = ServicePlaces {
        port: port_span,
        depends_on: depends_on_spans,
    };
    (spec, places)
}
