//! Property: whatever the registry, the dependency graph each target's files express is the
//! registry's, read back from the generated text (unit files' `Requires=`/`Wants=`/`After=`,
//! compose's `depends_on`, Kubernetes' init containers), and every service waits for the
//! database one-shot.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use conductor_export::{Options, Target, export};
use conductor_registry::{LoadOptions, Registry};
use proptest::prelude::*;
use serde_json::Value;

/// Per service, its critical dependencies and its other ones.
type SplitEdges = BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>;

/// `(name, dependencies, critical, probe kind)` per service, in file order.
type Shape = Vec<(String, Vec<String>, bool, &'static str)>;

/// Graphs without cycles: service `i` may depend on any service created before it; the file
/// order is then shuffled so dependencies are not always declared first.
fn shapes() -> impl Strategy<Value = Shape> {
    (1usize..8)
        .prop_flat_map(|n| {
            (
                proptest::collection::vec(proptest::collection::vec(any::<bool>(), n), n),
                proptest::collection::vec(any::<bool>(), n),
                proptest::collection::vec(
                    prop_oneof![Just("http"), Just("tcp"), Just("exec"), Just("none")],
                    n,
                ),
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            )
        })
        .prop_map(|(edges, critical, kinds, order)| {
            order
                .into_iter()
                .map(|i| {
                    let dependencies = (0..i)
                        .filter(|j| edges[i][*j])
                        .map(|j| format!("s{j}"))
                        .collect();
                    (format!("s{i}"), dependencies, critical[i], kinds[i])
                })
                .collect()
        })
}

fn registry_text(shape: &Shape) -> String {
    let mut text = String::from("[app]\nname = \"Prop App\"\n");
    for (index, (name, dependencies, critical, kind)) in shape.iter().enumerate() {
        let health = match *kind {
            "exec" => "{ kind = \"exec\", command = \"/bin/true\" }".to_owned(),
            kind => format!("{{ kind = \"{kind}\" }}"),
        };
        let dependencies: Vec<String> = dependencies.iter().map(|d| format!("\"{d}\"")).collect();
        text.push_str(&format!(
            "[services.{name}]\nport = {}\ncommand = \"/bin/sh\"\ndepends_on = [{}]\ncritical = {critical}\nhealth = {health}\ndeploy = {{ image = \"example/{name}\" }}\n",
            4000 + index,
            dependencies.join(", "),
        ));
    }
    text
}

/// The registry's edges, split by whether the dependency is critical.
fn registry_edges(registry: &Registry) -> SplitEdges {
    registry
        .services
        .iter()
        .map(|service| {
            let mut critical = BTreeSet::new();
            let mut optional = BTreeSet::new();
            for dependency in &service.depends_on {
                let is_critical = registry
                    .services
                    .iter()
                    .any(|s| s.name == *dependency && s.critical);
                if is_critical {
                    critical.insert(dependency.clone());
                } else {
                    optional.insert(dependency.clone());
                }
            }
            (service.name.clone(), (critical, optional))
        })
        .collect()
}

fn all_edges(edges: &SplitEdges) -> BTreeMap<String, BTreeSet<String>> {
    edges
        .iter()
        .map(|(name, (critical, optional))| {
            (name.clone(), critical.union(optional).cloned().collect())
        })
        .collect()
}

fn options() -> Options {
    Options {
        conductor_image: Some("example/conductor".to_owned()),
        ..Options::default()
    }
}

/// systemd: `Requires=` holds the critical dependencies, `Wants=` the others, `After=` both;
/// each service requires and comes after the one-shot.
fn systemd_edges(registry: &Registry) -> Result<SplitEdges, TestCaseError> {
    let exported = export(registry, Target::Systemd, &options())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let oneshot = "prop-app-db-migrate.service";
    let mut edges = BTreeMap::new();
    for file in &exported.files {
        let Some(stem) = file.name.strip_suffix(".service") else {
            continue;
        };
        if file.name == oneshot {
            continue;
        }
        let service = stem.strip_prefix("prop-app-").unwrap_or(stem).to_owned();
        let setting = |key: &str| -> BTreeSet<String> {
            file.contents
                .lines()
                .filter_map(|line| line.strip_prefix(key))
                .flat_map(|units| {
                    units
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let unit_to_service = |unit: &String| {
            unit.trim_end_matches(".service")
                .trim_start_matches("prop-app-")
                .to_owned()
        };
        let (requires, wants, after) = (setting("Requires="), setting("Wants="), setting("After="));
        prop_assert!(
            requires.contains(oneshot) && after.contains(oneshot),
            "{}",
            file.contents
        );
        let critical: BTreeSet<String> = requires
            .iter()
            .filter(|u| *u != oneshot)
            .map(unit_to_service)
            .collect();
        let optional: BTreeSet<String> = wants.iter().map(unit_to_service).collect();
        let ordered: BTreeSet<String> = after
            .iter()
            .filter(|u| *u != oneshot)
            .map(unit_to_service)
            .collect();
        prop_assert_eq!(
            &ordered,
            &critical.union(&optional).cloned().collect::<BTreeSet<_>>()
        );
        edges.insert(service, (critical, optional));
    }
    Ok(edges)
}

fn compose_edges(registry: &Registry) -> Result<BTreeMap<String, BTreeSet<String>>, TestCaseError> {
    let exported = export(registry, Target::Compose, &options())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let document: Value = serde_saphyr::from_str(&exported.files[0].contents)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut edges = BTreeMap::new();
    for (name, service) in document["services"].as_object().into_iter().flatten() {
        if name == "db-migrate" {
            continue;
        }
        let depends_on = service["depends_on"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        prop_assert_eq!(
            &depends_on["db-migrate"]["condition"],
            "service_completed_successfully"
        );
        edges.insert(
            name.clone(),
            depends_on
                .keys()
                .filter(|k| *k != "db-migrate")
                .cloned()
                .collect(),
        );
    }
    Ok(edges)
}

fn kubernetes_edges(
    registry: &Registry,
) -> Result<BTreeMap<String, BTreeSet<String>>, TestCaseError> {
    let exported = export(registry, Target::Kubernetes, &options())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut edges = BTreeMap::new();
    for text in exported.files[0].contents.split("\n---\n").skip(1) {
        let document: Value =
            serde_saphyr::from_str(text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if document["kind"] != "Deployment" {
            continue;
        }
        let name = document["metadata"]["name"].as_str().unwrap_or_default();
        let init = document["spec"]["template"]["spec"]["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        prop_assert_eq!(&init[0]["name"], "db-migrate");
        let waits = init
            .iter()
            .filter_map(|container| {
                container["name"]
                    .as_str()?
                    .strip_prefix("wait-for-prop-app-")
            })
            .map(str::to_owned)
            .collect();
        edges.insert(name.trim_start_matches("prop-app-").to_owned(), waits);
    }
    Ok(edges)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_target_expresses_exactly_the_registry_s_dependency_graph(shape in shapes()) {
        let text = registry_text(&shape);
        let registry = Registry::parse(&text, Path::new("/srv/prop/conductor.toml"), &LoadOptions::default())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let expected = registry_edges(&registry);
        prop_assert_eq!(&systemd_edges(&registry)?, &expected);
        prop_assert_eq!(&compose_edges(&registry)?, &all_edges(&expected));
        prop_assert_eq!(&kubernetes_edges(&registry)?, &all_edges(&expected));
    }
}
