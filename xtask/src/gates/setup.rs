//! What a gate runs: the binaries under test and the reference app's registry (eight
//! fake-services on free ports) that gates adjust and the self-test breaks, and `Setup::up`,
//! which writes it into a temp dir and starts a [`Fleet`] on it (whose guard ends everything
//! it started and removes the dir, whatever the gate's outcome).
//! It judges nothing: the checks are the gates' (`gates.rs`).

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context, anyhow};
use conductor_test_support::{Fleet, TempDir, toml_string};

/// What the gates run: the binaries under test and how many migrations the database gets.
#[derive(Debug, Clone)]
pub(crate) struct GateEnv {
    pub(crate) conductor: PathBuf,
    /// conductor built with `self-test-break-group-kill`, for the self-test only.
    pub(crate) broken_group_kill: Option<PathBuf>,
    pub(crate) fake_service: PathBuf,
    /// `V*__*.sql` files in `migrations/`, embedded in the binary.
    pub(crate) n_migrations: usize,
}

/// One `[services.<name>]` table of the registry.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub(crate) name: &'static str,
    pub(crate) port: u16,
    pub(crate) depends_on: &'static [&'static str],
    pub(crate) critical: bool,
    pub(crate) enabled: bool,
    /// The service's `env`; `{fleet_dir}` in a value becomes the fleet's temp dir.
    pub(crate) env: Vec<(&'static str, String)>,
    /// More `key = value` lines for the table (`ready_timeout = "1s"`, `restart = {…}`).
    pub(crate) extra: Vec<String>,
}

/// The reference app's eight services and their edges (as `fixtures/demo.toml`):
/// `(name, depends_on, critical, enabled)`.
const REFERENCE: &[(&str, &[&str], bool, bool)] = &[
    ("records", &[], true, true),
    ("ingestion", &["records"], true, true),
    ("export", &["records"], true, true),
    ("citation", &["records"], true, true),
    ("evidence", &["records", "ingestion"], true, true),
    ("template", &["records"], false, true),
    ("analysis", &["evidence", "citation"], false, true),
    ("reserved", &[], false, false),
];

/// Everything a fleet is started from; gates adjust it, the self-test breaks it.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) services: Vec<Service>,
    /// Extra environment of the conductor process.
    pub(crate) conductor_env: Vec<(&'static str, String)>,
    /// Run the `self-test-break-group-kill` build of conductor instead of the real one.
    pub(crate) broken_group_kill: bool,
    /// Set: the gates' client sends this token instead of the one in ipc.json.
    pub(crate) client_token: Option<String>,
    /// `[database] migrations`, relative to the registry file; `None`: the embedded ones.
    pub(crate) migrations: Option<String>,
}

impl Setup {
    /// The reference app on free ports: seven enabled services and the disabled `reserved`.
    pub(crate) fn reference() -> anyhow::Result<Setup> {
        let ports = conductor_test_support::free_ports(REFERENCE.len());
        Ok(Setup {
            services: REFERENCE
                .iter()
                .zip(ports)
                .map(|(&(name, depends_on, critical, enabled), port)| Service {
                    name,
                    port,
                    depends_on,
                    critical,
                    enabled,
                    env: Vec::new(),
                    extra: Vec::new(),
                })
                .collect(),
            conductor_env: Vec::new(),
            broken_group_kill: false,
            client_token: None,
            migrations: None,
        })
    }

    pub(crate) fn service(&self, name: &str) -> anyhow::Result<&Service> {
        self.services
            .iter()
            .find(|service| service.name == name)
            .ok_or_else(|| anyhow!("the gate setup has no service {name:?}"))
    }

    pub(crate) fn service_mut(&mut self, name: &str) -> &mut Service {
        let index = self
            .services
            .iter()
            .position(|service| service.name == name)
            .unwrap_or_else(|| panic!("the reference setup has a service {name:?}"));
        &mut self.services[index]
    }

    pub(crate) fn enabled(&self) -> impl Iterator<Item = &Service> {
        self.services.iter().filter(|service| service.enabled)
    }

    /// The registry file's text. Health checks every 200 ms and short backoffs keep the
    /// gates quick; stop_timeout is short because the grandchild of the shutdown gate ignores
    /// SIGTERM, so its group always waits that long before SIGKILL.
    pub(crate) fn registry_toml(&self, fake_service: &Path, fleet_dir: &Path) -> String {
        let mut text = String::from(
            "# Written by `cargo xtask verify` for one gate run.\n\
             [app]\nname = \"conductor-gates\"\ndeployment_env = \"test\"\nstartup = \"dependency\"\n\n",
        );
        if let Some(migrations) = &self.migrations {
            let _ = writeln!(
                text,
                "[database]\nmigrations = {}\n",
                toml_string(migrations)
            );
        }
        text.push_str(
            "[defaults]\n\
             health = { kind = \"http\", path = \"/health\", interval = \"200ms\", timeout = \"2s\", failure_threshold = 3 }\n\
             ready_timeout = \"20s\"\n\
             stop_timeout = \"2s\"\n\
             restart = { max_retries = 3, backoff = \"100ms\", backoff_max = \"1s\", reset_after = \"60s\" }\n",
        );
        let fleet_dir = fleet_dir.display().to_string();
        for service in &self.services {
            let depends_on: Vec<String> =
                service.depends_on.iter().map(|d| toml_string(d)).collect();
            let _ = write!(
                text,
                "\n[services.{}]\nport = {}\ncommand = {}\ndepends_on = [{}]\ncritical = {}\nenabled = {}\n",
                service.name,
                service.port,
                toml_string(&fake_service.display().to_string()),
                depends_on.join(", "),
                service.critical,
                service.enabled,
            );
            if !service.env.is_empty() {
                let env: Vec<String> = service
                    .env
                    .iter()
                    .map(|(key, value)| {
                        format!(
                            "{key} = {}",
                            toml_string(&value.replace("{fleet_dir}", &fleet_dir))
                        )
                    })
                    .collect();
                let _ = writeln!(text, "env = {{ {} }}", env.join(", "));
            }
            for line in &service.extra {
                let _ = writeln!(text, "{line}");
            }
        }
        text
    }

    /// Writes the registry into a new temp dir and runs `conductor up` on it; the fleet's
    /// guard removes the dir.
    pub(crate) fn up(&self, env: &GateEnv, label: &str) -> anyhow::Result<Fleet> {
        let dir = TempDir::try_new(label)?;
        let registry = dir.join("conductor.toml");
        std::fs::write(&registry, self.registry_toml(&env.fake_service, dir.path()))
            .with_context(|| format!("writing {}", registry.display()))?;
        let data_dir = dir.join("data");
        let binary = match (&env.broken_group_kill, self.broken_group_kill) {
            (Some(broken), true) => broken,
            (None, true) => anyhow::bail!("the broken-group-kill conductor was not built"),
            (_, false) => &env.conductor,
        };
        let mut command = Fleet::up_command(binary, &registry, &data_dir);
        command.envs(self.conductor_env.iter().map(|(key, value)| (key, value)));
        let mut fleet = Fleet::spawn(command, &data_dir)?.owning(dir);
        if let Some(token) = &self.client_token {
            fleet.use_token(token.clone());
        }
        Ok(fleet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_text_has_every_service_and_substitutes_the_fleet_dir() {
        let mut setup = Setup::reference().unwrap();
        setup
            .service_mut("evidence")
            .env
            .push(("FAKE_GRANDCHILD_PID_FILE", "{fleet_dir}/g.pid".to_owned()));
        let text = setup.registry_toml(Path::new("/bin/fake \"x\""), Path::new("/tmp/f"));
        for service in &setup.services {
            assert!(text.contains(&format!(
                "[services.{}]\nport = {}\n",
                service.name, service.port
            )));
        }
        assert!(text.contains(r#"command = "/bin/fake \"x\"""#), "{text}");
        assert!(
            text.contains(r#"env = { FAKE_GRANDCHILD_PID_FILE = "/tmp/f/g.pid" }"#),
            "{text}"
        );
        assert_eq!(setup.enabled().count(), 7);
        let ports: std::collections::BTreeSet<u16> =
            setup.services.iter().map(|s| s.port).collect();
        assert_eq!(ports.len(), 8, "ports are distinct");
    }
}
