//! Reads registry TOML into the model, collecting every problem instead of stopping at the first.
//!
//! The text is parsed into toml's spanned document tree and walked by hand rather than through
//! serde, so that an unknown key or a wrong type in one service does not hide the problems of
//! another, and every problem carries its line and column.
//! This file is the entry point and only wires the readers together: `walker` (with `units`)
//! takes typed values out of a table, `expected` reports a value of the wrong type, `ctx`
//! collects the problems, `paths` resolves paths against the registry's directory, and each
//! other file reads one section or table of the registry.
//! Checks that need the whole registry (dependencies, cycles, ports) live in `validate`.

mod app;
mod ctx;
mod database;
mod defaults;
mod deploy;
mod expected;
mod health;
mod limits;
mod logs;
mod paths;
mod platform;
mod restart;
mod service;
mod units;
mod walker;

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{LoadError, Problem, ProblemKind};
use crate::keys;
use crate::spec::{LoadOptions, Registry};

pub(crate) use self::ctx::Ctx;
pub(crate) use self::service::ServicePlaces;
pub use self::units::MIN_METRICS_INTERVAL;
use self::walker::Section;

type Span = Range<usize>;
type Value<'i> = Spanned<DeValue<'i>>;

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
                    "check the path"
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
        let root = Section::root(root.get_ref());
        let parsed = read_registry(&mut ctx, &root, paths::base_dir_of(path), options);
        crate::validate::check(&mut ctx, &parsed);
        if ctx.problems.is_empty() {
            Ok(parsed.registry)
        } else {
            Err(ctx.into_error(path))
        }
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

fn read_registry(
    ctx: &mut Ctx<'_>,
    root: &Section<'_, '_>,
    base_dir: PathBuf,
    options: &LoadOptions,
) -> Parsed {
    root.check_keys(ctx, &keys::ROOT);
    let app = app::read_app(ctx, root, &base_dir, options);
    let database = database::read_database(ctx, root, &base_dir);
    let logs = logs::read_logs(ctx, root);
    let defaults = defaults::read_defaults(ctx, root, &base_dir);
    let services = service::read_services(ctx, root, &base_dir, &defaults, &app.features);
    Parsed {
        registry: Registry {
            app,
            database,
            logs,
            services: services.services,
            base_dir,
        },
        places: services.places,
        has_services: services.has_services,
    }
}
