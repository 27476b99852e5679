//! Everything that can be wrong with a registry file, collected so all of it is reported at once.
//!
//! [`Problem`] holds *where* (dotted key path, line and column) and a help line; [`ProblemKind`]
//! holds *what*. This module only formats; finding problems is the job of `parse` and `validate`.

use std::fmt;
use std::path::{Path, PathBuf};

/// Loading a registry failed; `problems` lists every problem found, in file order.
#[derive(Debug, thiserror::Error)]
#[error("{}", Report::new(.file, .problems))]
pub struct LoadError {
    /// The registry file, as the caller named it.
    pub file: PathBuf,
    /// Every problem found (never empty).
    pub problems: Vec<Problem>,
}

/// One problem in a registry file.
#[derive(Debug)]
pub struct Problem {
    /// Dotted key path such as `services.export.depends_on`; empty for the file as a whole.
    pub location: String,
    /// 1-based line and column (in characters) when the problem has a place in the text.
    pub line_col: Option<(usize, usize)>,
    /// What is wrong.
    pub kind: ProblemKind,
    /// What to do about it.
    pub help: Option<String>,
}

/// What is wrong; messages are lowercase fragments without a final period.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The file could not be read.
    #[error("cannot read the registry file")]
    Read(#[source] std::io::Error),
    /// The text is not valid TOML.
    #[error("invalid TOML: {0}")]
    Syntax(String),
    /// A key this table does not have (typo, or a key from another table).
    #[error("unknown key \"{0}\"")]
    UnknownKey(String),
    /// A required key is absent.
    #[error("missing key \"{0}\"")]
    MissingKey(&'static str),
    /// A value of the wrong TOML type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// The type wanted, with its article (`"a string"`).
        expected: &'static str,
        /// The type given, with its article.
        found: &'static str,
    },
    /// A string that must not be empty is empty.
    #[error("must not be empty")]
    Empty,
    /// A whole number outside its allowed range.
    #[error("{value} is out of range (allowed: {min} to {max})")]
    OutOfRange {
        /// The number given.
        value: i128,
        /// Smallest allowed value.
        min: i128,
        /// Largest allowed value.
        max: i128,
    },
    /// A value of the right type that is not acceptable here.
    #[error("\"{value}\" {reason}")]
    InvalidValue {
        /// The value given.
        value: String,
        /// What it must be (`must start with /`).
        reason: &'static str,
    },
    /// A port that cannot be used.
    #[error("{}", port_message(*.0))]
    InvalidPort(i128),
    /// Two services share a port.
    #[error("port {port} is also used by \"{other}\"")]
    DuplicatePort {
        /// The shared port.
        port: u16,
        /// The service declared first with this port.
        other: String,
    },
    /// A duration string that does not parse, or is zero where that makes no sense.
    #[error("\"{value}\" is not a valid duration: {reason}")]
    InvalidDuration {
        /// The string given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A size string that does not parse.
    #[error("\"{value}\" is not a valid size: {reason}")]
    InvalidSize {
        /// The string given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A string that must be one of a fixed set of words.
    #[error("\"{value}\" is not one of {}", quoted_list(.allowed))]
    UnknownChoice {
        /// The string given.
        value: String,
        /// The words allowed here.
        allowed: &'static [&'static str],
    },
    /// A key that only has a meaning for another health kind.
    #[error("\"{key}\" only applies to kind = \"{applies_to}\", but the kind is \"{kind}\"")]
    KeyNotForKind {
        /// The key given.
        key: &'static str,
        /// The kind the key belongs to.
        applies_to: &'static str,
        /// The effective kind.
        kind: &'static str,
    },
    /// A service name that cannot be used in file names and environment values.
    #[error("\"{0}\" is not a usable service name")]
    InvalidServiceName(String),
    /// A `depends_on` entry that names no service.
    #[error("\"{0}\" is not a service in this registry")]
    UnknownDependency(String),
    /// A `depends_on` entry listed twice.
    #[error("\"{0}\" is listed more than once")]
    DuplicateDependency(String),
    /// Services that depend on each other in a circle; the first name is repeated at the end.
    #[error("dependency cycle: {}", .0.join(" -> "))]
    DependencyCycle(Vec<String>),
    /// A started service depends on one that is not started.
    #[error("\"{dependency}\" is {reason}, but \"{service}\" depends on it")]
    InactiveDependency {
        /// The active service.
        service: String,
        /// Its inactive dependency.
        dependency: String,
        /// Why the dependency is not started (`disabled`, `skipped: feature "ocr" is not enabled`).
        reason: String,
    },
    /// The file declares no service.
    #[error("the registry declares no service")]
    EmptyRegistry,
}

fn port_message(value: i128) -> String {
    if value == 0 {
        "port 0 is not allowed: every service needs a fixed port".to_owned()
    } else {
        format!("port {value} is out of range (allowed: 1 to 65535)")
    }
}

fn quoted_list(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|word| format!("\"{word}\"")).collect();
    quoted.join(", ")
}

impl fmt::Display for Problem {
    /// `12:5: services.export.port: <what>`, without the file name and the help line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((line, column)) = self.line_col {
            write!(f, "{line}:{column}: ")?;
        }
        if !self.location.is_empty() {
            write!(f, "{}: ", self.location)?;
        }
        write!(f, "{}", self.kind)?;
        if let ProblemKind::Read(source) = &self.kind {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

/// The text of a [`LoadError`]: one `error:` block per problem, then a count.
struct Report<'a> {
    file: &'a Path,
    problems: &'a [Problem],
}

impl<'a> Report<'a> {
    fn new(file: &'a Path, problems: &'a [Problem]) -> Self {
        Report { file, problems }
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        for problem in self.problems {
            write!(f, "error: {file}:")?;
            if problem.line_col.is_none() {
                write!(f, " ")?;
            }
            writeln!(f, "{problem}")?;
            if let Some(help) = &problem.help {
                writeln!(f, "  help: {help}")?;
            }
        }
        let n_problems = self.problems.len();
        let noun = if n_problems == 1 {
            "problem"
        } else {
            "problems"
        };
        write!(f, "{n_problems} {noun} in {file}")
    }
}
