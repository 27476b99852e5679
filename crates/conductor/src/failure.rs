//! How the binary fails: every subcommand returns a [`Failure`], and [`Failure::exit_code`] is
//! the one place an exit code is chosen (SPEC §7), in one exhaustive match over the named
//! [`exit_codes`]. [`Failure::report`] is the one place a failure is printed. The library crates'
//! messages never name this binary's flags; the advice that does is added here.

use conductor_db::OpenErrorKind;
use conductor_registry::LoadError;
use conductor_supervisor::{DatabaseError, SetupError, StartupError};

use crate::instance::AlreadyRunning;

/// The process exit codes (SPEC §7).
pub(crate) mod exit_codes {
    /// Everything went as asked (and `--help`, `--version`).
    pub(crate) const OK: u8 = 0;
    /// A usage error, an invalid registry, or a runtime error.
    pub(crate) const ERROR: u8 = 1;
    /// `up`: the database or a critical service could not start; everything started was
    /// stopped again.
    pub(crate) const STARTUP_FAILED: u8 = 2;
    /// `up`: another conductor holds this data directory.
    pub(crate) const ALREADY_RUNNING: u8 = 3;
}

/// Why a subcommand did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The registry is invalid; the error lists every problem with its help.
    #[error(transparent)]
    Registry(LoadError),
    /// `up`: another conductor runs for this data directory.
    #[error(transparent)]
    AlreadyRunning(#[from] AlreadyRunning),
    /// `up`: a directory conductor needs could not be created.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// `up`: the database could not be opened or migrated; no service was started.
    #[error("{0}\n  no service was started")]
    Database(DatabaseError),
    /// `up`: a critical service could not start; the others were stopped again.
    #[error(transparent)]
    Service(Box<StartupError>),
    /// `up`: a second Ctrl-C forced every process group down.
    #[error("interrupted twice: every service was killed with SIGKILL")]
    ForcedExit,
    /// Anything else: I/O with context, a control API client error, a refused request.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<StartupError> for Failure {
    fn from(error: StartupError) -> Failure {
        Failure::Service(Box::new(error))
    }
}

impl Failure {
    /// The exit code for this failure: the only place one is chosen.
    pub(crate) fn exit_code(&self) -> u8 {
        use exit_codes::*;
        match self {
            Failure::Registry(_) | Failure::Setup(_) | Failure::ForcedExit | Failure::Other(_) => {
                ERROR
            }
            Failure::Database(_) | Failure::Service(_) => STARTUP_FAILED,
            Failure::AlreadyRunning(_) => ALREADY_RUNNING,
        }
    }

    /// The text printed on stderr. Each error's cause appears once: the library errors carry
    /// theirs in their message, `anyhow` contexts as their chain.
    pub(crate) fn report(&self) -> String {
        match self {
            // Already a complete report: every problem with its position and help.
            Failure::Registry(problems) => problems.to_string(),
            Failure::Other(error) => format!("error: {error:#}"),
            Failure::Setup(error) => {
                format!("error: {error}\n  help: choose another --data-dir or fix its permissions")
            }
            Failure::Database(error) => match data_dir_advice(error) {
                Some(advice) => format!("error: {self}\n  help: {advice}"),
                None => format!("error: {self}"),
            },
            Failure::AlreadyRunning(_) | Failure::Service(_) | Failure::ForcedExit => {
                format!("error: {self}")
            }
        }
    }
}

/// The registry's problems, with the help that names this binary's flags added: the library
/// knows nothing of `--registry` or `--features`.
impl From<LoadError> for Failure {
    fn from(mut error: LoadError) -> Failure {
        use conductor_registry::ProblemKind;
        for problem in &mut error.problems {
            let advice = match &problem.kind {
                ProblemKind::Read(io) if io.kind() == std::io::ErrorKind::NotFound => {
                    "without --registry conductor uses ./conductor.toml, or the built-in \
                     registry when that file does not exist"
                }
                ProblemKind::InactiveDependency { reason, .. } if reason.contains("feature") => {
                    "--features A,B on the command line replaces [app] features"
                }
                _ => continue,
            };
            problem.help = Some(match problem.help.take() {
                Some(help) => format!("{help}; {advice}"),
                None => advice.to_owned(),
            });
        }
        Failure::Registry(error)
    }
}

/// The flag to mention when the database's directory is the problem.
fn data_dir_advice(error: &DatabaseError) -> Option<&'static str> {
    let DatabaseError::Open(open) = error else {
        return None;
    };
    match open.kind {
        OpenErrorKind::MissingDirectory { .. }
        | OpenErrorKind::NotADirectory { .. }
        | OpenErrorKind::ReadOnlyDirectory { .. } => {
            Some("the data directory is chosen with --data-dir DIR or $CONDUCTOR_DATA_DIR")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_exit_code() {
        let already = AlreadyRunning {
            data_dir: "/d".into(),
            pid: "7".into(),
            url: "http://127.0.0.1:1".into(),
        };
        assert_eq!(
            Failure::from(already).exit_code(),
            exit_codes::ALREADY_RUNNING
        );
        let service = StartupError {
            service: "api".into(),
            error: conductor_supervisor::ActionError::ShuttingDown,
            last_lines: Vec::new(),
        };
        assert_eq!(
            Failure::from(service).exit_code(),
            exit_codes::STARTUP_FAILED
        );
        assert_eq!(Failure::ForcedExit.exit_code(), exit_codes::ERROR);
        let other = Failure::from(anyhow::anyhow!("boom"));
        assert_eq!(other.exit_code(), exit_codes::ERROR);
        assert_ne!(exit_codes::OK, exit_codes::ERROR);
    }

    #[test]
    fn a_context_chain_prints_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let error = anyhow::Error::new(io).context("creating the log directory /x");
        assert_eq!(
            Failure::from(error).report(),
            "error: creating the log directory /x: denied"
        );
    }

    #[test]
    fn setup_advice_names_the_flag_the_library_does_not() {
        let setup = SetupError {
            path: "/ro/logs".into(),
            error: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        };
        let report = Failure::from(setup).report();
        assert_eq!(report.matches("denied").count(), 1, "{report}");
        assert!(report.contains("--data-dir"), "{report}");
    }
}
