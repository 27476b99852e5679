//! Golden files of each target for the demo registry (`fixtures/demo.toml`), so that any
//! change in a translation is reviewed as a snapshot diff.
//!
//! The registry is parsed as if it lived in `/srv/factsway/fixtures`, so paths in the files
//! are the same on every machine; the checkers in `tests/export.rs` run on real paths.

use std::path::Path;

use conductor_export::{Options, Target, export};
use conductor_registry::{LoadOptions, Registry};

const DEMO: &str = include_str!("../../../fixtures/demo.toml");

fn demo() -> Registry {
    Registry::parse(
        DEMO,
        Path::new("/srv/factsway/fixtures/demo.toml"),
        &LoadOptions::default(),
    )
    .unwrap_or_else(|error| panic!("the demo registry is valid: {error}"))
}

fn options() -> Options {
    Options {
        image_prefix: Some("registry.example/factsway/".to_owned()),
        conductor_image: Some("registry.example/factsway/conductor:0.1".to_owned()),
        ..Options::default()
    }
}

fn all_files(target: Target) -> String {
    let exported = export(&demo(), target, &options()).unwrap_or_else(|error| panic!("{error}"));
    exported
        .files
        .iter()
        .map(|file| format!("==> {} <==\n{}", file.name, file.contents))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn systemd_units_of_the_demo_registry() {
    insta::assert_snapshot!(all_files(Target::Systemd));
}

#[test]
fn compose_file_of_the_demo_registry() {
    insta::assert_snapshot!(all_files(Target::Compose));
}

#[test]
fn kubernetes_manifests_of_the_demo_registry() {
    insta::assert_snapshot!(all_files(Target::Kubernetes));
}
