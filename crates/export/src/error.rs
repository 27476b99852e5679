//! Why a registry cannot be exported: every problem at once, each naming the service (where)
//! apart from the problem (what) and saying what to do.

use std::fmt;

/// The export failed; `problems` lists every reason (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Report(.problems))]
pub struct ExportError {
    /// The target's name, as on the command line.
    pub target: &'static str,
    /// Every problem found.
    pub problems: Vec<ExportProblem>,
}

/// One reason the export failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportProblem {
    /// Where: `services.NAME`, `[app] name` or `the database one-shot`.
    pub location: String,
    /// The service it is about, if any.
    pub service: Option<String>,
    /// What is wrong.
    pub kind: ExportProblemKind,
    /// What to do about it.
    pub help: String,
}

/// What is wrong; messages are lowercase fragments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportProblemKind {
    /// A container target needs an image and none was given.
    #[error("has no container image")]
    NoImage,
    /// `--image-prefix` made a reference no engine can pull.
    #[error("image \"{image}\" (from --image-prefix) {reason}")]
    BadImage {
        /// The reference made.
        image: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// systemd runs absolute programs only, and the name was not found.
    #[error("command \"{0}\" was not found in PATH")]
    CommandNotFound(String),
    /// Two services, or a service and the database one-shot, get the same name.
    #[error("is named \"{name}\" on this target, as is {other}")]
    NameClash {
        /// The name on the target.
        name: String,
        /// Who else has it.
        other: String,
    },
    /// A name the target cannot take.
    #[error("cannot be named \"{name}\" on this target: {reason}")]
    BadName {
        /// The name on the target.
        name: String,
        /// Why.
        reason: &'static str,
    },
}

impl fmt::Display for ExportProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}\n  help: {}", self.location, self.kind, self.help)
    }
}

struct Report<'a>(&'a [ExportProblem]);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n_problems = self.0.len();
        let plural = if n_problems == 1 { "" } else { "s" };
        write!(f, "cannot export: {n_problems} problem{plural}")?;
        for problem in self.0 {
            write!(f, "\n{problem}")?;
        }
        Ok(())
    }
}
