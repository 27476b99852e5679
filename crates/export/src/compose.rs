//! The Docker Compose target: one `compose.yaml` with a service per exported service and the
//! `db-migrate` one-shot every service waits for (`service_completed_successfully`).
//!
//! Kept to what both the compose specification and Debian's docker-compose 1.29 accept, so
//! `docker-compose config` checks it; it does not use `deploy:` (swarm) or Compose 2.20's
//! `required: false`.

use conductor_registry::HealthCheck;

use crate::OutputFile;
use crate::notes::Notes;
use crate::plan::{CONTAINER_DATA, DB_ONESHOT, Plan, Service};
use crate::text;
use crate::yaml::{Node, to_text};

/// The name of the volume that holds the data directory.
const VOLUME: &str = "data";

pub(crate) fn render(plan: &Plan<'_>, notes: &mut Notes) -> Vec<OutputFile> {
    target_notes(notes);
    let mut services = vec![(DB_ONESHOT.to_owned(), oneshot(plan))];
    for service in &plan.services {
        services.push((service.name.clone(), compose_service(plan, service, notes)));
    }
    let document = Node::map()
        .with("services", Node::Map(services))
        .with("volumes", Node::map().with(VOLUME, Node::map()));
    let header = notes.header(
        "compose",
        &format!("{} services for Docker Compose", plan.registry.app.name),
    );
    vec![OutputFile {
        name: "compose.yaml".to_owned(),
        contents: format!("{header}{}", to_text(&document)),
    }]
}

/// What Compose cannot express whatever the registry says.
fn target_notes(notes: &mut Notes) {
    notes.app("services run in their containers' network namespaces: each must listen on 0.0.0.0 (not 127.0.0.1) and reach another service by its compose name, not localhost; ports are published on the host's 127.0.0.1");
    notes.app("a path command on this machine becomes the image's own entrypoint given the service's args, and the working directory is the image's WORKDIR");
    notes.app("an unhealthy container is not restarted (Docker only marks it unhealthy): liveness is reported, not enforced");
    notes.app("restart backoff is Docker's own (doubling from 100ms), not backoff/backoff_max, and restarts are counted without reset_after");
    notes.app("a dependent waits for each dependency to be healthy, critical or not: docker-compose 1.29 has no optional dependency");
}

fn oneshot(plan: &Plan<'_>) -> Node {
    let mut volumes = vec![format!("{VOLUME}:{CONTAINER_DATA}")];
    if let Some(dir) = &plan.registry.database.migrations {
        volumes.push(format!("{}:/migrations:ro", dir.display()));
    }
    Node::map()
        .with("image", plan.conductor_image.as_str())
        .with("entrypoint", Node::strings(["conductor"]))
        .with(
            "command",
            Node::strings(plan.migrate_args().iter().map(|arg| arg.plain().to_owned())),
        )
        .with("volumes", Node::strings(volumes))
        .with("restart", "no")
}

fn compose_service(plan: &Plan<'_>, service: &Service<'_>, notes: &mut Notes) -> Node {
    let spec = service.spec;
    let mut node = Node::map().with("image", service.image.as_str());
    let (entrypoint, command) = container_command(service);
    node = node
        .with_some("entrypoint", entrypoint.map(Node::strings))
        .with_some(
            "command",
            (!command.is_empty()).then(|| Node::strings(command)),
        );
    let env: Vec<(String, Node)> = plan
        .env(service)
        .into_iter()
        .map(|(name, value)| (name, Node::Str(value.plain().to_owned())))
        .collect();
    node = node
        .with("environment", Node::Map(env))
        .with(
            "ports",
            Node::strings([format!("127.0.0.1:{0}:{0}", spec.port)]),
        )
        .with(
            "volumes",
            Node::strings([format!("{VOLUME}:{CONTAINER_DATA}")]),
        );

    let mut depends_on = vec![(
        DB_ONESHOT.to_owned(),
        Node::map().with("condition", "service_completed_successfully"),
    )];
    for dependency in &service.dependencies {
        // A dependency without a probe has no healthcheck to wait for: running is ready.
        let condition = if dependency.probed {
            "service_healthy"
        } else {
            "service_started"
        };
        depends_on.push((
            dependency.name.clone(),
            Node::map().with("condition", condition),
        ));
    }
    node = node.with("depends_on", Node::Map(depends_on));

    if let Some(test) = healthcheck_test(service, notes) {
        let health = &spec.health;
        node = node.with(
            "healthcheck",
            Node::map()
                .with("test", Node::strings(test))
                .with("interval", text::duration(health.interval))
                .with("timeout", text::duration(health.timeout))
                .with("retries", health.failure_threshold)
                .with("start_period", text::duration(spec.ready_timeout)),
        );
    }
    let restart = if spec.restart.max_retries == 0 {
        "no".to_owned()
    } else {
        format!("on-failure:{}", spec.restart.max_retries)
    };
    node = node
        .with("restart", restart)
        .with("stop_signal", "SIGTERM")
        .with("stop_grace_period", text::duration(spec.stop_timeout));
    if let Some(memory) = spec.limits.memory {
        node = node.with("mem_limit", memory);
    }
    let mut ulimits = Node::map();
    let mut any_ulimit = false;
    for (name, limit) in [
        ("nofile", spec.limits.open_files),
        ("nproc", spec.limits.processes),
    ] {
        if let Some(limit) = limit {
            ulimits = ulimits.with(name, Node::map().with("soft", limit).with("hard", limit));
            any_ulimit = true;
        }
    }
    if any_ulimit {
        node = node.with("ulimits", ulimits);
    }
    node
}

/// The container's entrypoint and command: a bare program name is run as the entrypoint (the
/// image has a PATH too); a path on this machine means nothing in the image, so the image's
/// own entrypoint runs, given the args.
pub(crate) fn container_command(service: &Service<'_>) -> (Option<Vec<String>>, Vec<String>) {
    let spec = service.spec;
    if spec.command.contains('/') {
        (None, spec.args.clone())
    } else {
        (Some(vec![spec.command.clone()]), spec.args.clone())
    }
}

fn healthcheck_test(service: &Service<'_>, notes: &mut Notes) -> Option<Vec<String>> {
    let spec = service.spec;
    match &spec.health.check {
        HealthCheck::Http { path } => {
            notes.app("HTTP probes run curl inside each container (the image needs curl) and judge the status code only: a 2xx answer counts as healthy whatever its JSON \"status\" says");
            Some(vec![
                "CMD".to_owned(),
                "curl".to_owned(),
                "-fsS".to_owned(),
                "-o".to_owned(),
                "/dev/null".to_owned(),
                format!("http://127.0.0.1:{}{path}", spec.port),
            ])
        }
        HealthCheck::Tcp => {
            notes.app("TCP probes run bash's /dev/tcp inside the container (the image needs bash)");
            Some(vec![
                "CMD".to_owned(),
                "bash".to_owned(),
                "-c".to_owned(),
                format!("exec 3<>/dev/tcp/127.0.0.1/{}", spec.port),
            ])
        }
        HealthCheck::Exec { command, args } => {
            notes.service(
                &spec.name,
                format!(
                    "the exec probe runs {command} inside the container: the image must have it"
                ),
            );
            let mut test = vec!["CMD".to_owned(), command.clone()];
            test.extend(args.iter().cloned());
            Some(test)
        }
        HealthCheck::None => None,
    }
}
