//! Which registry a command uses: `--registry FILE`, else `./conductor.toml` when it exists,
//! else the built-in registry.
//!
//! Shared by every subcommand that reads a registry; it does not validate anything itself.

use std::fmt;
use std::path::{Path, PathBuf};

use conductor_registry::{LoadError, LoadOptions, Registry};

/// The file looked for in the current directory when `--registry` is not given.
const DEFAULT_FILE: &str = "conductor.toml";

/// Where the registry comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegistryChoice {
    /// A file named with `--registry`, or `./conductor.toml` found in the current directory.
    File(PathBuf),
    /// Neither was given or found: the reference app's registry.
    Builtin,
}

impl RegistryChoice {
    /// The registry named on the command line, or the default one.
    pub(crate) fn from_arg(registry: Option<&Path>) -> RegistryChoice {
        match registry {
            Some(path) => RegistryChoice::File(path.to_path_buf()),
            None if Path::new(DEFAULT_FILE).is_file() => RegistryChoice::File(DEFAULT_FILE.into()),
            None => RegistryChoice::Builtin,
        }
    }

    /// Loads and validates the chosen registry.
    pub(crate) fn load(&self, options: &LoadOptions) -> Result<Registry, LoadError> {
        match self {
            RegistryChoice::File(path) => Registry::load(path, options),
            RegistryChoice::Builtin => {
                let mut registry = Registry::builtin();
                if let Some(features) = &options.features {
                    registry.app.features = features.clone();
                }
                Ok(registry)
            }
        }
    }
}

impl fmt::Display for RegistryChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryChoice::File(path) => write!(f, "{}", path.display()),
            RegistryChoice::Builtin => {
                write!(f, "built-in (no ./{DEFAULT_FILE} in the current directory)")
            }
        }
    }
}
