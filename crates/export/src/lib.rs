//! Translates an effective service registry into the files another engine runs: systemd
//! units, a Docker Compose file or Kubernetes manifests, each with the list of what does not
//! translate.
//!
//! Entry point: [`export`], a pure function from a [`Registry`] (defaults, platform and
//! features already applied) and [`Options`] to an [`Export`] (file names and contents, and
//! the notes). It reads no file, runs nothing and looks nothing up: bare command names are
//! resolved by the caller ([`bare_commands`] lists them, [`Options::commands`] carries the
//! answers). Writing the files is the caller's job.
//!
//! One module per target (`systemd`, `compose`, `kubernetes`); `plan` holds what they share
//! (the exported services, names, the injected environment, the data layout) and `notes` the
//! list of what does not translate.
#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

mod compose;
mod error;
mod kubernetes;
mod notes;
mod plan;
mod systemd;
mod text;
mod yaml;

use std::collections::BTreeMap;
use std::path::PathBuf;

use conductor_registry::{HealthCheck, Registry};

pub use crate::error::{ExportError, ExportProblem, ExportProblemKind};

/// The engine to export to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// systemd units: one `.service` per service, a one-shot for the database and a `.target`.
    Systemd,
    /// One Docker Compose file.
    Compose,
    /// One file of Kubernetes manifests (Deployments, Services, a PersistentVolumeClaim).
    Kubernetes,
}

impl Target {
    /// The target's name on the command line, also the default `DEPLOYMENT_ENV`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Systemd => "systemd",
            Target::Compose => "compose",
            Target::Kubernetes => "kubernetes",
        }
    }
}

/// Which systemd manager the units are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// `systemctl --user`: the units run as the user who installs them.
    #[default]
    User,
    /// The system manager.
    System,
}

/// What the registry does not say about the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `DEPLOYMENT_ENV` given to every service; `None` means the target's name.
    pub deployment_env: Option<String>,
    /// `LOG_LEVEL` given to every service (as `conductor up --log-level`).
    pub log_level: String,
    /// Image of a service without `[services.NAME.deploy] image`: this prefix followed by the
    /// service's name (lowercase, `_` as `-`), for the container targets.
    pub image_prefix: Option<String>,
    /// Image holding the `conductor` binary that runs the database migrations in the container
    /// targets; `None` means `<image_prefix>conductor`.
    pub conductor_image: Option<String>,
    /// systemd only: user or system units.
    pub scope: Scope,
    /// systemd only: the absolute path of the `conductor` binary the units run (migrations,
    /// readiness waits).
    pub conductor_path: PathBuf,
    /// The absolute path of each bare command name ([`bare_commands`]), for systemd, which
    /// runs absolute programs only.
    pub commands: BTreeMap<String, PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            deployment_env: None,
            log_level: "info".to_owned(),
            image_prefix: None,
            conductor_image: None,
            scope: Scope::User,
            conductor_path: PathBuf::from("/usr/local/bin/conductor"),
            commands: BTreeMap::new(),
        }
    }
}

/// The files of one export, and what did not translate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// Each file's name (no directory) and contents, in the order they are best read.
    pub files: Vec<OutputFile>,
    /// What could not be expressed, one sentence each (also a comment at the top of the files).
    pub notes: Vec<String>,
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// File name, such as `factsway-records.service` or `compose.yaml`.
    pub name: String,
    /// Its text.
    pub contents: String,
}

/// Translates `registry` for `target`; every problem (a service without an image, a command
/// not resolved, names that clash) is reported at once.
///
/// # Errors
/// [`ExportError`] listing every problem.
pub fn export(
    registry: &Registry,
    target: Target,
    options: &Options,
) -> Result<Export, ExportError> {
    let plan = plan::Plan::new(registry, target, options)?;
    let mut notes = plan.notes.clone();
    let files = match target {
        Target::Systemd => systemd::render(&plan, options, &mut notes),
        Target::Compose => compose::render(&plan, &mut notes),
        Target::Kubernetes => kubernetes::render(&plan, &mut notes),
    };
    Ok(Export {
        files,
        notes: notes.lines(),
    })
}

/// The bare program names (looked up in `PATH`) of the services that would be exported and of
/// their exec probes, each once: what [`Options::commands`] must resolve for systemd.
pub fn bare_commands(registry: &Registry) -> Vec<String> {
    let mut names = Vec::new();
    for service in registry.services.iter().filter(|s| s.is_active()) {
        let mut programs = vec![service.command.as_str()];
        if let HealthCheck::Exec { command, .. } = &service.health.check {
            programs.push(command);
        }
        for program in programs {
            if !program.contains('/') && !names.iter().any(|name| name == program) {
                names.push(program.to_owned());
            }
        }
    }
    names
}
