//! The human-readable start plan printed by `conductor check`.
//!
//! Formatting only: counts, levels with ports, and the services that will not start and why.

use std::fmt;

use crate::spec::{Registry, Selection, StartupMode};

/// A registry's plan for people; see [`Registry::summary`].
#[derive(Debug)]
pub struct Summary<'a> {
    registry: &'a Registry,
}

impl Registry {
    /// What `conductor check` prints: counts, the start plan with ports, and what is not started.
    pub fn summary(&self) -> Summary<'_> {
        Summary { registry: self }
    }
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registry = self.registry;
        let services = &registry.services;
        let n_active = services
            .iter()
            .filter(|service| service.is_active())
            .count();
        let n_disabled = services
            .iter()
            .filter(|service| service.selection == Selection::Disabled)
            .count();
        let n_skipped = services.len() - n_active - n_disabled;
        let noun = if services.len() == 1 {
            "service"
        } else {
            "services"
        };
        write!(f, "{} {noun}, {n_active} to start", services.len())?;
        if n_disabled > 0 {
            write!(f, ", {n_disabled} disabled")?;
        }
        if n_skipped > 0 {
            write!(f, ", {n_skipped} skipped by feature")?;
        }
        writeln!(f, "; {} startup", registry.app.startup.as_str())?;
        if !registry.app.features.is_empty() {
            writeln!(f, "features: {}", registry.app.features.join(", "))?;
        }
        let with_port = |name: &String| match registry.service(name) {
            Some(service) => format!("{name} (port {})", service.port),
            None => name.clone(),
        };
        for (index, level) in registry.start_plan().levels.iter().enumerate() {
            let names: Vec<String> = level.iter().map(with_port).collect();
            match registry.app.startup {
                StartupMode::Dependency => writeln!(f, "level {index}: {}", names.join(", "))?,
                StartupMode::Sequential => writeln!(f, "{}. {}", index + 1, names.join(", "))?,
            }
        }
        for service in services {
            let why = match &service.selection {
                Selection::Active => continue,
                Selection::Disabled => "disabled".to_owned(),
                Selection::SkippedByFeature(feature) => {
                    format!("feature \"{feature}\" not enabled")
                }
            };
            writeln!(
                f,
                "not started: {} (port {}): {why}",
                service.name, service.port
            )?;
        }
        Ok(())
    }
}
