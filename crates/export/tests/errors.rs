//! What an export refuses: every problem at once, each naming the service and what to do
//! (a snapshot of the whole message), and the notes a registry's desktop-only parts produce.

use std::path::Path;

use conductor_export::{ExportProblemKind, Options, Target, export};
use conductor_registry::{LoadOptions, Registry};

fn registry(text: &str) -> Registry {
    Registry::parse(
        text,
        Path::new("/srv/app/conductor.toml"),
        &LoadOptions::default(),
    )
    .unwrap_or_else(|error| panic!("the test's registry is valid: {error}"))
}

#[test]
fn every_problem_is_reported_at_once_naming_its_service() {
    let registry = registry(
        "[app]\nname = \"app\"\n\
         [services.db-migrate]\nport = 4001\ncommand = \"./x\"\n\
         [services.web]\nport = 4002\ncommand = \"./x\"\n\
         [services.api]\nport = 4003\ncommand = \"./x\"\ndeploy = { image = \"acme/api\" }\n",
    );
    let error = match export(&registry, Target::Compose, &Options::default()) {
        Ok(_) => panic!("an export without images must fail"),
        Err(error) => error,
    };
    insta::assert_snapshot!(error.to_string());
}

#[test]
fn an_image_prefix_that_makes_no_image_reference_is_refused() {
    let registry =
        registry("[app]\nname = \"app\"\n[services.web]\nport = 4002\ncommand = \"./x\"\n");
    let options = Options {
        image_prefix: Some("Acme Registry/".to_owned()),
        ..Options::default()
    };
    let error = export(&registry, Target::Kubernetes, &options).err();
    let kinds: Vec<ExportProblemKind> = error
        .into_iter()
        .flat_map(|e| e.problems)
        .map(|p| p.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            ExportProblemKind::BadImage {
                image: "Acme Registry/web".to_owned(),
                reason: "must not contain spaces"
            },
            ExportProblemKind::BadImage {
                image: "Acme Registry/conductor".to_owned(),
                reason: "must not contain spaces"
            },
        ]
    );
}

#[test]
fn kubernetes_names_must_be_dns_labels_that_start_with_a_letter() {
    let long = "s".repeat(50);
    let registry = registry(&format!(
        "[app]\nname = \"1st app\"\n[services.{long}]\nport = 4002\ncommand = \"./x\"\n[services.ok]\nport = 4003\ncommand = \"./x\"\n"
    ));
    let options = Options {
        image_prefix: Some("acme/".to_owned()),
        ..Options::default()
    };
    let error = export(&registry, Target::Kubernetes, &options).err();
    let problems: Vec<String> = error
        .into_iter()
        .flat_map(|e| e.problems)
        .map(|p| p.to_string())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with("[app] name: cannot be named \"1st-app\" on this target"),
        "{problems:#?}"
    );
    assert!(
        problems[1].starts_with(&format!(
            "services.{long}: cannot be named \"1st-app-{long}\""
        )),
        "{problems:#?}"
    );
    // The same registry is fine where names have no such rule.
    assert!(export(&registry, Target::Compose, &options).is_ok());
}

#[test]
fn desktop_only_parts_are_listed_as_notes_at_the_top_and_in_the_export() {
    let registry = registry(
        "[app]\nname = \"app\"\nfeatures = [\"ocr\"]\nwindow = { command = \"./ui\" }\n\
         [services.web]\nport = 4002\ncommand = \"./x\"\nhealth = { kind = \"exec\", command = \"./probe\" }\n\
         [services.ocr]\nport = 4003\ncommand = \"./x\"\nfeature = \"ocr\"\n\
         [services.gpu]\nport = 4004\ncommand = \"./x\"\nfeature = \"gpu\"\n",
    );
    let options = Options {
        image_prefix: Some("acme/".to_owned()),
        ..Options::default()
    };
    let exported =
        export(&registry, Target::Compose, &options).unwrap_or_else(|error| panic!("{error}"));
    let header: String = exported.files[0]
        .contents
        .lines()
        .take_while(|line| line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    for expected in [
        "features are chosen at export time, not at run time (enabled: ocr)",
        "not exported: gpu (feature \"gpu\" is not enabled)",
        "[app] window is not exported",
        "web: the exec probe runs /srv/app/probe inside the container",
    ] {
        assert!(
            exported.notes.iter().any(|note| note.contains(expected)),
            "{expected} in {:#?}",
            exported.notes
        );
        assert!(header.contains(expected), "{expected} in\n{header}");
    }
}

#[test]
fn deployment_env_is_the_target_s_name_unless_given_and_a_service_s_env_replaces_it() {
    let registry = registry(
        "[app]\nname = \"app\"\n[services.web]\nport = 4002\ncommand = \"/bin/web\"\n\
         [services.api]\nport = 4003\ncommand = \"/bin/api\"\nenv = { DEPLOYMENT_ENV = \"mine\", PORT = \"9\" }\n",
    );
    let unit = |options: &Options, name: &str| -> String {
        let exported =
            export(&registry, Target::Systemd, options).unwrap_or_else(|error| panic!("{error}"));
        exported
            .files
            .into_iter()
            .find(|file| file.name == name)
            .map(|file| file.contents)
            .unwrap_or_default()
    };
    let web = unit(&Options::default(), "app-web.service");
    assert!(
        web.contains("Environment=\"DEPLOYMENT_ENV=systemd\"\n"),
        "{web}"
    );
    let staging = Options {
        deployment_env: Some("staging".to_owned()),
        ..Options::default()
    };
    assert!(unit(&staging, "app-web.service").contains("Environment=\"DEPLOYMENT_ENV=staging\"\n"));
    // As under conductor, the service's own env wins, and keeps the injected variable's place.
    let api = unit(&staging, "app-api.service");
    let env: Vec<&str> = api
        .lines()
        .filter(|line| line.starts_with("Environment="))
        .collect();
    assert_eq!(env[0], "Environment=\"PORT=9\"", "{api}");
    assert!(
        env.contains(&"Environment=\"DEPLOYMENT_ENV=mine\""),
        "{api}"
    );
    assert_eq!(
        env.iter()
            .filter(|line| line.contains("DEPLOYMENT_ENV"))
            .count(),
        1,
        "{api}"
    );
}
