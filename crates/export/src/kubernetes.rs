//! The Kubernetes target: one file of manifests, a PersistentVolumeClaim for the data
//! directory and, per service, a Deployment (one replica, `Recreate`) and a Service.
//!
//! Kubernetes has no start order, so each pod's init containers do what conductor's startup
//! does: first `conductor db migrate`, then a wait for each dependency's Service to accept
//! connections (it has endpoints only once a pod passes its readinessProbe). No Job: a pod
//! cannot wait for a Job, and the migration is idempotent under the data directory's lock.

use conductor_registry::HealthCheck;

use crate::OutputFile;
use crate::compose::container_command;
use crate::notes::Notes;
use crate::plan::{CONTAINER_DATA, DB_ONESHOT, Dependency, Plan, Service};
use crate::text;
use crate::yaml::{Node, to_text};

/// The image of the init containers that wait for a dependency: busybox has `nc`.
const WAIT_IMAGE: &str = "busybox:1.37";
/// How long a pod's migration waits for another pod's to finish (`db migrate --lock-timeout`).
const LOCK_TIMEOUT: &str = "10m";
const VOLUME: &str = "data";

pub(crate) fn render(plan: &Plan<'_>, notes: &mut Notes) -> Vec<OutputFile> {
    target_notes(notes);
    let claim = format!("{}-data", plan.app);
    let mut documents = vec![
        Node::map()
            .with("apiVersion", "v1")
            .with("kind", "PersistentVolumeClaim")
            .with("metadata", metadata(&claim, &plan.app))
            .with(
                "spec",
                Node::map()
                    .with("accessModes", Node::strings(["ReadWriteOnce"]))
                    .with(
                        "resources",
                        Node::map().with("requests", Node::map().with("storage", "1Gi")),
                    ),
            ),
    ];
    for service in &plan.services {
        documents.push(deployment(plan, service, &claim, notes));
        documents.push(
            Node::map()
                .with("apiVersion", "v1")
                .with("kind", "Service")
                .with("metadata", metadata(&service.name, &plan.app))
                .with(
                    "spec",
                    Node::map()
                        .with(
                            "selector",
                            Node::map().with("app.kubernetes.io/name", service.name.as_str()),
                        )
                        .with(
                            "ports",
                            vec![
                                Node::map()
                                    .with("port", service.spec.port)
                                    .with("targetPort", service.spec.port),
                            ],
                        ),
                ),
        );
    }
    let header = notes.header(
        "kubernetes",
        &format!("{} services for Kubernetes", plan.registry.app.name),
    );
    let body: Vec<String> = documents.iter().map(to_text).collect();
    vec![OutputFile {
        name: format!("{}.yaml", plan.app),
        contents: format!("{header}---\n{}", body.join("---\n")),
    }]
}

fn target_notes(notes: &mut Notes) {
    notes.app("Kubernetes always restarts a container that exits (restartPolicy: Always, the kubelet's backoff from 10s doubling to 5m): max_retries, backoff, backoff_max and reset_after are not translated, and a service never ends failed");
    notes.app("services run in their pods: each must listen on 0.0.0.0 (not 127.0.0.1) and reach another service through its Service name (<app>-<service>:<port>), not localhost");
    notes.app("a path command on this machine becomes the image's own entrypoint given the service's args, and the working directory is the image's WORKDIR");
    notes.app("a pod starts once each dependency's Service accepts connections (its init containers wait with busybox nc); a non-critical dependency is waited for at most its ready_timeout");
    notes.app("every pod runs `conductor db migrate` as its first init container: the lock in the data directory lets one run at a time, and the others find nothing pending");
    notes.app("the data volume asks for 1Gi: change the PersistentVolumeClaim to fit");
}

fn metadata(name: &str, app: &str) -> Node {
    Node::map().with("name", name).with(
        "labels",
        Node::map()
            .with("app.kubernetes.io/name", name)
            .with("app.kubernetes.io/part-of", app)
            .with("app.kubernetes.io/managed-by", "conductor-export"),
    )
}

fn deployment(plan: &Plan<'_>, service: &Service<'_>, claim: &str, notes: &mut Notes) -> Node {
    let spec = service.spec;
    let mount = vec![
        Node::map()
            .with("name", VOLUME)
            .with("mountPath", CONTAINER_DATA),
    ];
    let mut migrate = vec!["conductor".to_owned()];
    migrate.extend(plan.migrate_args().iter().map(|arg| arg.plain().to_owned()));
    migrate.extend(["--lock-timeout".to_owned(), LOCK_TIMEOUT.to_owned()]);
    let mut init = vec![
        Node::map()
            .with("name", DB_ONESHOT)
            .with("image", plan.conductor_image.as_str())
            .with("command", Node::strings(migrate))
            .with("volumeMounts", mount.clone()),
    ];
    for dependency in &service.dependencies {
        init.push(wait_for(dependency));
    }

    let (entrypoint, args) = container_command(service);
    let env: Vec<Node> = plan
        .env(service)
        .into_iter()
        .map(|(name, value)| Node::map().with("name", name).with("value", value.plain()))
        .collect();
    let mut container = Node::map()
        .with("name", text::dns_label(&spec.name))
        .with("image", service.image.as_str())
        .with_some("command", entrypoint.map(Node::strings))
        .with_some("args", (!args.is_empty()).then(|| Node::strings(args)))
        .with("env", env)
        .with("ports", vec![Node::map().with("containerPort", spec.port)])
        .with("volumeMounts", mount);
    if let Some(handler) = probe_handler(service, notes) {
        let health = &spec.health;
        let timeout = text::seconds_up(health.timeout, 1);
        let period = text::seconds_up(health.interval, 1);
        if health.interval.subsec_nanos() > 0
            || health.timeout.subsec_nanos() > 0
            || spec.ready_timeout.subsec_nanos() > 0
        {
            notes.service(
                &spec.name,
                "probe timings are whole seconds on Kubernetes: sub-second values are rounded up",
            );
        }
        let probe = |extra: Node| -> Node {
            let Node::Map(mut entries) = handler.clone() else {
                return handler.clone();
            };
            if let Node::Map(more) = extra {
                entries.extend(more);
            }
            Node::Map(entries)
        };
        container = container
            .with(
                "startupProbe",
                probe(
                    Node::map()
                        .with("periodSeconds", 1u64)
                        .with("timeoutSeconds", timeout)
                        .with("failureThreshold", text::seconds_up(spec.ready_timeout, 1)),
                ),
            )
            .with(
                "readinessProbe",
                probe(
                    Node::map()
                        .with("periodSeconds", period)
                        .with("timeoutSeconds", timeout)
                        .with("failureThreshold", health.failure_threshold),
                ),
            )
            .with(
                "livenessProbe",
                probe(
                    Node::map()
                        .with("periodSeconds", period)
                        .with("timeoutSeconds", timeout)
                        .with("failureThreshold", health.failure_threshold),
                ),
            );
    }
    if let Some(memory) = spec.limits.memory {
        container = container.with(
            "resources",
            Node::map().with("limits", Node::map().with("memory", text::quantity(memory))),
        );
    }
    if spec.limits.open_files.is_some() || spec.limits.processes.is_some() {
        notes.service(&spec.name, "limits.open_files and limits.processes are not translated: Kubernetes has no per-container rlimits");
    }

    let labels = Node::map().with("app.kubernetes.io/name", service.name.as_str());
    Node::map()
        .with("apiVersion", "apps/v1")
        .with("kind", "Deployment")
        .with("metadata", metadata(&service.name, &plan.app))
        .with(
            "spec",
            Node::map()
                .with("replicas", 1u64)
                // One process per service, and the ReadWriteOnce volume: the old pod goes first.
                .with("strategy", Node::map().with("type", "Recreate"))
                .with("selector", Node::map().with("matchLabels", labels.clone()))
                .with(
                    "template",
                    Node::map()
                        .with("metadata", Node::map().with("labels", labels))
                        .with(
                            "spec",
                            Node::map()
                                .with(
                                    "terminationGracePeriodSeconds",
                                    text::seconds_up(spec.stop_timeout, 0),
                                )
                                .with("restartPolicy", "Always")
                                .with("initContainers", init)
                                .with("containers", vec![container])
                                .with(
                                    "volumes",
                                    vec![Node::map().with("name", VOLUME).with(
                                        "persistentVolumeClaim",
                                        Node::map().with("claimName", claim),
                                    )],
                                ),
                        ),
                ),
        )
}

/// An init container that waits until `dependency`'s Service accepts connections; for a
/// non-critical one at most its ready_timeout, then the pod starts without it.
fn wait_for(dependency: &Dependency) -> Node {
    let check = format!("nc -z -w 2 {} {}", dependency.name, dependency.port);
    let script = if dependency.critical {
        format!("until {check}; do sleep 1; done")
    } else {
        let attempts = text::seconds_up(dependency.ready_timeout, 1);
        // `$$` is Kubernetes' escape for `$`, since it expands `$(NAME)` in a command.
        format!(
            "i=0; until {check}; do i=$$((i+1)); if [ $i -ge {attempts} ]; then exit 0; fi; sleep 1; done"
        )
    };
    Node::map()
        .with("name", format!("wait-for-{}", dependency.name))
        .with("image", WAIT_IMAGE)
        .with("command", Node::strings(["sh", "-c", script.as_str()]))
}

fn probe_handler(service: &Service<'_>, notes: &mut Notes) -> Option<Node> {
    let spec = service.spec;
    match &spec.health.check {
        HealthCheck::Http { path } => {
            notes.app("HTTP probes judge the status code only: a 2xx answer counts as healthy whatever its JSON \"status\" says");
            Some(
                Node::map().with(
                    "httpGet",
                    Node::map()
                        .with("path", path.as_str())
                        .with("port", spec.port),
                ),
            )
        }
        HealthCheck::Tcp => {
            Some(Node::map().with("tcpSocket", Node::map().with("port", spec.port)))
        }
        HealthCheck::Exec { command, args } => {
            notes.service(
                &spec.name,
                format!(
                    "the exec probe runs {command} inside the container: the image must have it"
                ),
            );
            let mut words = vec![command.clone()];
            words.extend(args.iter().cloned());
            Some(Node::map().with("exec", Node::map().with("command", Node::strings(words))))
        }
        HealthCheck::None => None,
    }
}
