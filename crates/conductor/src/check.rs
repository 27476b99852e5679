//! `conductor check`: validate a registry and print its start plan without starting anything.
//!
//! Printing only; validation and planning are `conductor-registry`'s.

use std::path::Path;

use conductor_registry::LoadOptions;

use crate::{failure::Failure, registry_choice::RegistryChoice};

/// Arguments of `conductor check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Enabled features, replacing [app] features in the registry
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    features: Option<Vec<String>>,
}

/// Prints the plan on success; a [`conductor_registry::LoadError`] lists every problem.
pub(crate) fn run(args: &CheckArgs, registry: Option<&Path>) -> Result<(), Failure> {
    let choice = RegistryChoice::from_arg(registry);
    let options = LoadOptions {
        features: args.features.clone(),
    };
    let registry = choice.load(&options)?;
    println!("registry: {choice}");
    print!("{}", registry.summary());
    println!("✓ Registry is valid");
    Ok(())
}
