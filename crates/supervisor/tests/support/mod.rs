//! Test fixtures for the supervisor: a fleet of real fake-service processes on free ports in a
//! temp data dir, and waits on statuses, events and pids with deadlines (on the workspace
//! harness's `wait_until_async`).

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::time::Duration;

use conductor_protocol::{Event, ServiceState, ServiceStatus};
use conductor_registry::{LoadOptions, Registry};
use conductor_supervisor::{Conductor, Paths, Settings, Subscription};
use conductor_test_support::{DEADLINE, TempDir, free_port, process, wait_until_async};

/// One service of a test registry: a fake-service with extra TOML lines and env knobs.
pub struct Svc {
    pub name: &'static str,
    pub port: u16,
    pub toml: String,
    pub env: Vec<(&'static str, String)>,
}

pub fn svc(name: &'static str) -> Svc {
    Svc {
        name,
        port: free_port(),
        toml: String::new(),
        env: Vec::new(),
    }
}

impl Svc {
    pub fn with(mut self, toml: &str) -> Svc {
        self.toml.push_str(toml);
        self.toml.push('\n');
        self
    }

    pub fn env(mut self, key: &'static str, value: impl ToString) -> Svc {
        self.env.push((key, value.to_string()));
        self
    }
}

/// The registry text: fast health checks and short timeouts so tests see reactions quickly.
pub fn registry_text(services: &[Svc], app_extra: &str) -> String {
    let binary = fake_service::binary();
    let mut text = format!(
        "[app]\nname = \"testapp\"\n{app_extra}\n\n[defaults]\nhealth = {{ kind = \"http\", path = \"/health\", interval = \"100ms\", timeout = \"1s\", failure_threshold = 2 }}\nready_timeout = \"20s\"\nstop_timeout = \"3s\"\nrestart = {{ max_retries = 2, backoff = \"10ms\", backoff_max = \"50ms\", reset_after = \"60s\" }}\n"
    );
    for service in services {
        text.push_str(&format!(
            "\n[services.{}]\nport = {}\ncommand = {:?}\n{}",
            service.name,
            service.port,
            binary.display().to_string(),
            service.toml
        ));
        if !service.env.is_empty() {
            let pairs: Vec<String> = service
                .env
                .iter()
                .map(|(k, v)| format!("{k} = {v:?}"))
                .collect();
            text.push_str(&format!("env = {{ {} }}\n", pairs.join(", ")));
        }
    }
    text
}

/// A running fleet: the conductor, its data dir and an event subscription taken before start.
pub struct Fleet {
    pub conductor: Conductor,
    pub events: Subscription,
    pub dir: TempDir,
    pub seen: Vec<Event>,
}

impl Fleet {
    /// Builds the conductor and migrates its database; starts nothing.
    pub async fn new(services: &[Svc], app_extra: &str) -> Fleet {
        let dir = TempDir::new("fleet");
        let path = dir.join("conductor.toml");
        let text = registry_text(services, app_extra);
        std::fs::write(&path, &text).unwrap();
        let registry = Registry::parse(&text, &path, &LoadOptions::default())
            .unwrap_or_else(|err| panic!("test registry is valid: {err}\n{text}"));
        let conductor = Conductor::new(
            registry,
            Paths::under(&dir.join("data")),
            Settings::default(),
        )
        .expect("conductor builds");
        let events = conductor.subscribe(None);
        conductor
            .init_database()
            .await
            .expect("database initialises");
        Fleet {
            conductor,
            events,
            dir,
            seen: Vec::new(),
        }
    }

    pub fn status(&self, name: &str) -> ServiceStatus {
        self.conductor.status(name).unwrap()
    }

    /// Waits until `name`'s status satisfies `condition`, or fails showing the last status.
    pub async fn wait_status(
        &self,
        name: &str,
        what: &str,
        condition: impl Fn(&ServiceStatus) -> bool,
    ) -> ServiceStatus {
        wait_until_async(DEADLINE, &format!("{name}: {what}"), || {
            let status = self.status(name);
            if condition(&status) {
                Ok(status)
            } else {
                Err(format!("{status:?}"))
            }
        })
        .await
    }

    /// Waits for the next event matching `condition`; every event seen is kept in `seen`.
    pub async fn wait_event(&mut self, what: &str, condition: impl Fn(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, self.events.live.recv()).await {
                Ok(Ok(event)) => {
                    self.seen.push(event.event.clone());
                    if condition(&event.event) {
                        return event.event.clone();
                    }
                }
                Ok(Err(err)) => panic!("event stream broke waiting for {what}: {err}"),
                Err(_) => panic!("no event {what} within 30 s; seen: {:#?}", self.seen),
            }
        }
    }

    /// Every status change seen so far, queued ones included, as (service, status).
    fn status_changes(&mut self) -> impl Iterator<Item = (&str, &ServiceStatus)> {
        while let Ok(event) = self.events.live.try_recv() {
            self.seen.push(event.event.clone());
        }
        self.seen.iter().filter_map(|event| match event {
            Event::ServiceStatusChanged {
                service_name,
                status,
            } => Some((service_name.as_str(), status)),
            _ => None,
        })
    }

    /// Every (service, state) change seen so far, in order, including those still queued.
    pub fn transitions(&mut self) -> Vec<(String, ServiceState)> {
        // An event whose state is the service's last one (a pid appeared, lastError changed)
        // is no transition.
        let mut last: std::collections::HashMap<String, ServiceState> = Default::default();
        self.status_changes()
            .filter(|(name, status)| {
                last.insert((*name).to_owned(), status.status) != Some(status.status)
            })
            .map(|(name, status)| (name.to_owned(), status.status))
            .collect()
    }

    /// The states `name` went through, from the events seen so far plus any still queued.
    pub fn drain_states(&mut self, name: &str) -> Vec<(ServiceState, Option<u32>)> {
        self.status_changes()
            .filter(|(service_name, _)| *service_name == name)
            .map(|(_, status)| (status.status, status.pid))
            .collect()
    }
}

pub fn is_state(state: ServiceState) -> impl Fn(&ServiceStatus) -> bool {
    move |status| status.status == state
}

/// Whether a process with this pid is still running. A zombie counts as gone: it has exited,
/// and an orphan's zombie is reaped by init, not by us (in some containers PID 1 never reaps).
pub fn alive(pid: u32) -> bool {
    !process::is_gone(pid)
}

/// Waits until every pid is gone, or fails naming the survivors.
pub async fn wait_gone(pids: &[u32], within: Duration) {
    wait_until_async(within, "the processes to be gone", || {
        let alive: Vec<u32> = pids.iter().copied().filter(|&pid| alive(pid)).collect();
        if alive.is_empty() {
            Ok(())
        } else {
            Err(format!("still alive: {alive:?}"))
        }
    })
    .await;
}

/// SIGKILL to a pid the test got from the supervisor's status.
pub fn sigkill(pid: u32) {
    let _ = process::signal(pid, process::SIGKILL);
}
