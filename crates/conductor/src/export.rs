//! `conductor export systemd|compose|kubernetes`: writes the files `conductor-export`
//! translates the registry into, and `conductor schema`, the registry's JSON Schema.
//!
//! Wiring only: this module chooses the registry, resolves bare command names through `PATH`
//! (systemd runs absolute programs only), writes the files and prints what it wrote and what
//! did not translate; the translation itself is the library's.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use conductor_export::{Options, Scope, Target};
use conductor_registry::LoadOptions;

use crate::{failure::Failure, registry_choice::RegistryChoice};

/// Arguments of `conductor export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The engine to export to
    #[arg(value_enum)]
    target: TargetArg,
    /// Directory to write the files into, or - for stdout (compose and kubernetes: one file)
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Enabled features, replacing [app] features in the registry
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// DEPLOYMENT_ENV given to every service [default: the target's name]
    #[arg(long, value_name = "NAME")]
    deployment_env: Option<String>,
    /// LOG_LEVEL given to every service
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
    /// Image of each service without [services.NAME.deploy] image: this prefix and its name
    #[arg(long, value_name = "PREFIX")]
    image_prefix: Option<String>,
    /// Image with conductor on its PATH, for the database migrations [default: <image-prefix>conductor]
    #[arg(long, value_name = "IMAGE")]
    conductor_image: Option<String>,
    /// systemd: user units (systemctl --user), the default
    #[arg(long, conflicts_with = "system")]
    user: bool,
    /// systemd: system units
    #[arg(long)]
    system: bool,
    /// systemd: the conductor binary the units run [default: this one]
    #[arg(long, value_name = "PATH")]
    conductor: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TargetArg {
    Systemd,
    Compose,
    Kubernetes,
}

pub(crate) fn run(args: &ExportArgs, registry: Option<&Path>) -> Result<(), Failure> {
    let choice = RegistryChoice::from_arg(registry);
    let registry = choice.load(&LoadOptions {
        features: args.features.clone(),
    })?;
    let target = match args.target {
        TargetArg::Systemd => Target::Systemd,
        TargetArg::Compose => Target::Compose,
        TargetArg::Kubernetes => Target::Kubernetes,
    };
    let conductor_path = match &args.conductor {
        Some(path) => std::path::absolute(path).context("resolving --conductor")?,
        None => std::env::current_exe()
            .context("finding this conductor binary; pass --conductor PATH")?,
    };
    let mut options = Options {
        deployment_env: args.deployment_env.clone(),
        log_level: args.log_level.clone(),
        image_prefix: args.image_prefix.clone(),
        conductor_image: args.conductor_image.clone(),
        scope: if args.system {
            Scope::System
        } else {
            Scope::User
        },
        conductor_path,
        commands: Default::default(),
    };
    if target == Target::Systemd {
        for name in conductor_export::bare_commands(&registry) {
            if let Some(path) = find_in_path(&name) {
                options.commands.insert(name, path);
            }
        }
    }
    let exported = conductor_export::export(&registry, target, &options)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    for note in &exported.notes {
        eprintln!("note: {note}");
    }
    if args.out == Path::new("-") {
        let [file] = exported.files.as_slice() else {
            return Err(anyhow::anyhow!(
                "{} writes {} files, so they cannot all go to stdout\n  help: pass --out DIR",
                target.name(),
                exported.files.len()
            )
            .into());
        };
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(file.contents.as_bytes())
            .and_then(|()| stdout.flush())
            .context("writing to stdout")?;
        return Ok(());
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for file in &exported.files {
        let path = args.out.join(&file.name);
        std::fs::write(&path, &file.contents)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The first executable file named `name` in `PATH`, as the shell would run it.
fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// `conductor schema`: the JSON Schema of conductor.toml, from the parser's own key tables.
pub(crate) fn schema() -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(&conductor_registry::json_schema())
        .context("writing the schema")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .context("writing to stdout")?;
    Ok(())
}
