//! What a reload would change: two effective registries (after `[defaults]`, platform and
//! features) compared service by service. Pure; the supervisor applies the result.
//!
//! A service is `unchanged` when its spec is equal, `retuned` when only what its owner task
//! can take while the process runs differs (probes, restart policy, timeouts, sampling, the
//! memory limit, criticality, dependencies: nothing the process itself sees), and `restarted`
//! otherwise (command, arguments, directory, environment, port, rlimits). Being started or not
//! (enabled, feature selection) is part of the spec: a service that becomes inactive is
//! restarted into `disabled`, one that becomes active is started. `[services.X.deploy]` is
//! `conductor export`'s alone: a change there leaves a service unchanged.

use crate::spec::{DeploySpec, Registry, ServiceSpec};

/// The outcome of comparing the running registry with a new one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryDiff {
    /// Changes that cannot be applied while the app runs, each saying what changed; when any
    /// is present nothing of the reload may be applied.
    pub refused: Vec<String>,
    /// In the new registry only, in its order.
    pub added: Vec<String>,
    /// In the old registry only, in its order.
    pub removed: Vec<String>,
    /// Changed in what the process sees: stopped and started with the new spec.
    pub restarted: Vec<String>,
    /// Changed only in what the owner task uses: applied without touching the process.
    pub retuned: Vec<String>,
    /// Equal.
    pub unchanged: Vec<String>,
}

impl RegistryDiff {
    /// Compares `old` (running) with `new` (to apply).
    pub fn between(old: &Registry, new: &Registry) -> RegistryDiff {
        let mut diff = RegistryDiff {
            refused: refused_changes(old, new),
            ..RegistryDiff::default()
        };
        for spec in &new.services {
            match old.service(&spec.name) {
                None => diff.added.push(spec.name.clone()),
                Some(before) if same_for_up(before, spec) => diff.unchanged.push(spec.name.clone()),
                Some(before) if process_sees_the_same(before, spec) => {
                    diff.retuned.push(spec.name.clone())
                }
                Some(_) => diff.restarted.push(spec.name.clone()),
            }
        }
        diff.removed = old
            .services
            .iter()
            .filter(|spec| new.service(&spec.name).is_none())
            .map(|spec| spec.name.clone())
            .collect();
        diff
    }

    /// Whether applying it changes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.refused.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.restarted.is_empty()
            && self.retuned.is_empty()
    }
}

/// Whether `up` sees no difference: everything but `deploy`, which only `export` reads.
fn same_for_up(before: &ServiceSpec, after: &ServiceSpec) -> bool {
    let strip = |spec: &ServiceSpec| ServiceSpec {
        deploy: DeploySpec::default(),
        ..spec.clone()
    };
    strip(before) == strip(after)
}

/// Whether the process of `before` could go on running as `after`: every difference is in
/// what the owner task alone uses.
fn process_sees_the_same(before: &ServiceSpec, after: &ServiceSpec) -> bool {
    before.port == after.port
        && before.command == after.command
        && before.args == after.args
        && before.cwd == after.cwd
        && before.env == after.env
        && before.selection == after.selection
        && before.limits.open_files == after.limits.open_files
        && before.limits.processes == after.limits.processes
}

/// The parts of the registry a running app cannot take: each names what changed and why a
/// restart of conductor is needed.
fn refused_changes(old: &Registry, new: &Registry) -> Vec<String> {
    let mut refused = Vec::new();
    let mut refuse = |changed: bool, what: &str, why: &str| {
        if changed {
            refused.push(format!(
                "{what} changed: {why}; restart conductor to apply it"
            ));
        }
    };
    refuse(
        old.app.name != new.app.name,
        "[app] name",
        "it names the data directory and the database",
    );
    refuse(
        old.app.deployment_env != new.app.deployment_env,
        "[app] deployment_env",
        "every running service was given it as DEPLOYMENT_ENV",
    );
    refuse(
        old.app.window != new.app.window,
        "[app] window",
        "a reload never restarts the window command",
    );
    refuse(
        old.app.allowed_origins != new.app.allowed_origins,
        "[app] allowed_origins",
        "the control API took its list of origins when it started",
    );
    refuse(
        old.database != new.database,
        "[database]",
        "a reload never reopens the database or runs migrations",
    );
    refuse(
        old.logs != new.logs,
        "[logs]",
        "the log files and tails were sized when conductor started",
    );
    refused
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::LoadOptions;

    fn registry(services: &str, app: &str) -> Registry {
        let text = format!("[app]\nname = \"demo\"\n{app}\n{services}");
        Registry::parse(
            &text,
            Path::new("/srv/demo/conductor.toml"),
            &LoadOptions::default(),
        )
        .unwrap_or_else(|error| panic!("{error}"))
    }

    const FOUR: &str = r#"
[services.same]
port = 4001
command = "srv"
[services.env]
port = 4002
command = "srv"
env = { MODE = "a" }
[services.probe]
port = 4003
command = "srv"
health = { kind = "http", interval = "5s" }
[services.gone]
port = 4004
command = "srv"
"#;

    #[test]
    fn each_service_is_sorted_by_what_its_process_would_see() {
        let new = FOUR
            .replace("MODE = \"a\"", "MODE = \"b\"")
            .replace("interval = \"5s\"", "interval = \"1s\"")
            .replace(
                "[services.gone]\nport = 4004",
                "[services.new]\nport = 4005",
            );
        let diff = RegistryDiff::between(&registry(FOUR, ""), &registry(&new, ""));
        assert_eq!(
            diff,
            RegistryDiff {
                refused: vec![],
                added: vec!["new".into()],
                removed: vec!["gone".into()],
                restarted: vec!["env".into()],
                retuned: vec!["probe".into()],
                unchanged: vec!["same".into()],
            }
        );
        assert!(!diff.is_empty());
    }

    #[test]
    fn a_change_of_the_deploy_image_alone_leaves_a_service_unchanged() {
        let new = FOUR.replace(
            "[services.same]\nport = 4001",
            "[services.same]\nport = 4001\ndeploy = { image = \"acme/same:2\" }",
        );
        let diff = RegistryDiff::between(&registry(FOUR, ""), &registry(&new, ""));
        assert_eq!(diff.unchanged, ["same", "env", "probe", "gone"]);
        assert!(diff.is_empty());
    }

    #[test]
    fn disabling_a_service_restarts_it_into_disabled() {
        let new = FOUR.replace(
            "[services.same]\nport = 4001",
            "[services.same]\nport = 4001\nenabled = false",
        );
        let diff = RegistryDiff::between(&registry(FOUR, ""), &registry(&new, ""));
        assert_eq!(diff.restarted, ["same"]);
    }

    #[test]
    fn app_database_and_logs_changes_are_refused_with_the_reason() {
        let old = registry(FOUR, "");
        let new = registry(
            FOUR,
            "deployment_env = \"test\"\n[database]\npath = \"/tmp/x.db\"",
        );
        let diff = RegistryDiff::between(&old, &new);
        assert_eq!(diff.refused.len(), 2, "{:#?}", diff.refused);
        assert!(diff.refused[0].starts_with("[app] deployment_env changed"));
        assert!(diff.refused[1].contains("restart conductor"));
        assert!(RegistryDiff::between(&old, &old).is_empty());
    }

    #[test]
    fn a_change_of_allowed_origins_is_refused() {
        let old = registry(FOUR, "allowed_origins = [\"app://demo\"]");
        let new = registry(
            FOUR,
            "allowed_origins = [\"app://demo\", \"http://localhost:5173\"]",
        );
        let diff = RegistryDiff::between(&old, &new);
        assert_eq!(
            diff.refused,
            [
                "[app] allowed_origins changed: the control API took its list of origins when it \
              started; restart conductor to apply it"
            ]
        );
    }
}
