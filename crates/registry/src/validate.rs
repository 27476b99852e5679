//! Checks that need the whole registry: an empty registry, shared ports, unknown, inactive and
//! cyclic dependencies.
//!
//! Runs after `parse` read every service, on whatever could be read, so a service with a bad
//! key still takes part in these checks. It reports; it never changes the registry.

use std::collections::HashMap;

use crate::error::ProblemKind;
use crate::graph::find_cycles;
use crate::parse::{Ctx, Parsed};
use crate::spec::Selection;
use crate::suggest::closest;

pub(crate) fn check(ctx: &mut Ctx<'_>, parsed: &Parsed) {
    let services = &parsed.registry.services;
    if !parsed.has_services {
        ctx.report(
            "services",
            None,
            ProblemKind::EmptyRegistry,
            Some("add a service: a [services.NAME] table with port = <number> and command = \"…\""),
        );
    }

    let mut port_owner: HashMap<u16, &str> = HashMap::new();
    for (service, places) in services.iter().zip(&parsed.places) {
        let Some(span) = places.port.clone() else {
            continue;
        };
        match port_owner.get(&service.port) {
            Some(other) => ctx.report_owned(
                &format!("services.{}.port", service.name),
                Some(span),
                ProblemKind::DuplicatePort {
                    port: service.port,
                    other: (*other).to_owned(),
                },
                Some(format!(
                    "every service needs its own port: change the port of \"{}\" or of \"{other}\"",
                    service.name
                )),
            ),
            None => {
                port_owner.insert(service.port, &service.name);
            }
        }
    }

    let index: HashMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(position, service)| (service.name.as_str(), position))
        .collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); services.len()];
    for (position, (service, places)) in services.iter().zip(&parsed.places).enumerate() {
        let location = format!("services.{}.depends_on", service.name);
        for (dependency, span) in service.depends_on.iter().zip(&places.depends_on) {
            let Some(&target) = index.get(dependency.as_str()) else {
                let others = services
                    .iter()
                    .map(|other| other.name.as_str())
                    .filter(|other| *other != service.name);
                let help = match closest(dependency, others) {
                    Some(suggestion) => format!(
                        "did you mean \"{suggestion}\"? Service names are the table names under [services]"
                    ),
                    None => format!(
                        "add a [services.{dependency}] table, or remove \"{dependency}\" from depends_on"
                    ),
                };
                ctx.report_owned(
                    &location,
                    Some(span.clone()),
                    ProblemKind::UnknownDependency(dependency.clone()),
                    Some(help),
                );
                continue;
            };
            edges[position].push(target);
            let reason = match &services[target].selection {
                _ if !service.is_active() => continue,
                Selection::Active => continue,
                Selection::Disabled => "disabled (enabled = false)".to_owned(),
                Selection::SkippedByFeature(feature) => {
                    format!("skipped because feature \"{feature}\" is not enabled")
                }
            };
            let help = match &services[target].selection {
                Selection::SkippedByFeature(feature) => format!(
                    "enable feature \"{feature}\" ([app] features), or remove \"{dependency}\" from depends_on, or give \"{}\" the same feature",
                    service.name
                ),
                _ => format!(
                    "enable \"{dependency}\", or remove it from depends_on, or disable \"{}\" too",
                    service.name
                ),
            };
            ctx.report_owned(
                &location,
                Some(span.clone()),
                ProblemKind::InactiveDependency {
                    service: service.name.clone(),
                    dependency: dependency.clone(),
                    reason,
                },
                Some(help),
            );
        }
    }

    for cycle in find_cycles(&edges) {
        let first = cycle[0];
        let second = cycle.get(1).copied().unwrap_or(first);
        let mut names: Vec<String> = cycle
            .iter()
            .map(|position| services[*position].name.clone())
            .collect();
        names.push(services[first].name.clone());
        // Point at the entry that closes the loop from the first service.
        let span = services[first]
            .depends_on
            .iter()
            .position(|name| *name == services[second].name)
            .and_then(|entry| parsed.places[first].depends_on.get(entry).cloned());
        let help = if cycle.len() == 1 {
            "a service cannot wait for itself: remove it from its own depends_on".to_owned()
        } else {
            "services in a cycle would wait for each other forever: remove one of these depends_on entries".to_owned()
        };
        ctx.report_owned(
            &format!("services.{}.depends_on", services[first].name),
            span,
            ProblemKind::DependencyCycle(names),
            Some(help),
        );
    }
}
