//! The systemd target: `<app>-<service>.service` per service, `<app>-db-migrate.service` (a
//! `Type=oneshot` every service requires) and `<app>.target` grouping them, as user units by
//! default or system units.
//!
//! systemd has no pull probe: readiness is waited for by `ExecStartPost=conductor wait-ready`,
//! which uses conductor's own probes, so a unit is started (and its dependents ordered
//! `After=` it go) only once the service is ready. Liveness is a gap, listed in the notes.

use conductor_registry::HealthCheck;

use crate::notes::Notes;
use crate::plan::{DB_ONESHOT, EnvValue, Plan, Service};
use crate::text;
use crate::{Options, OutputFile, Scope};

/// Time systemd gives a start beyond `ready_timeout`, so `wait-ready` reports why the
/// service is not ready before systemd kills it for taking too long.
const START_MARGIN_SECS: u64 = 5;

pub(crate) fn render(plan: &Plan<'_>, options: &Options, notes: &mut Notes) -> Vec<OutputFile> {
    target_notes(plan, options, notes);
    let conductor = text::exec_word(&options.conductor_path.display().to_string());
    let target = format!("{}.target", plan.app);
    let oneshot = format!("{}-{DB_ONESHOT}.service", plan.app);
    let title = &text::setting(&plan.registry.app.name);

    let mut units = Vec::new();
    units.push(OutputFile {
        name: oneshot.clone(),
        contents: format!(
            "{}\n[Unit]\nDescription={title} database migrations\nPartOf={target}\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\nStateDirectory={app} {app}/evidence\nExecStart={conductor} {args}\n\n[Install]\nWantedBy={target}\n",
            notes.pointer("systemd", &format!("{title}: the database migrations every service waits for"), &target),
            app = plan.app,
            args = plan.migrate_args().iter().map(exec_arg).collect::<Vec<_>>().join(" "),
        ),
    });
    for service in &plan.services {
        units.push(OutputFile {
            name: format!("{}.service", service.name),
            contents: service_unit(plan, service, &conductor, &target, &oneshot, notes),
        });
    }
    let mut wants = vec![oneshot.clone()];
    wants.extend(
        plan.services
            .iter()
            .map(|service| format!("{}.service", service.name)),
    );
    let installed_by = match options.scope {
        Scope::User => "default.target",
        Scope::System => "multi-user.target",
    };
    units.push(OutputFile {
        name: target.clone(),
        contents: format!(
            "{}\n[Unit]\nDescription={title} (every service)\nWants={}\nAfter={oneshot}\n\n[Install]\nWantedBy={installed_by}\n",
            notes.header("systemd", &format!("{title}: start and stop every service with this target")),
            wants.join(" "),
        ),
    });
    // The target holds the whole list of gaps; it is the file a reader opens first.
    units.rotate_right(1);
    units
}

fn target_notes(plan: &Plan<'_>, options: &Options, notes: &mut Notes) {
    notes.app("systemd has no liveness probe: readiness is waited for once per start (ExecStartPost= conductor wait-ready), but a service that hangs while running is not restarted");
    notes.app("restart backoff does not double: every restart waits backoff (RestartSec=; RestartSteps= needs systemd 254), and max_retries restarts within reset_after make the unit failed (StartLimitBurst=)");
    notes.app("Requires=: an explicit restart of a critical dependency (systemctl restart) also restarts its dependents; conductor never restarts dependents");
    match options.scope {
        Scope::User => notes.app("user units: the data directory is ~/.local/state/<app> (%S); MemoryMax= needs the memory controller delegated to the user's manager"),
        Scope::System => notes.app("system units run as root unless you add User=; the data directory is /var/lib/<app> (%S)"),
    }
    if plan
        .services
        .iter()
        .any(|service| matches!(service.spec.health.check, HealthCheck::Exec { .. }))
    {
        notes.app("exec probes run on this machine with its tools, as under conductor");
    }
}

fn exec_arg(arg: &EnvValue) -> String {
    match arg {
        EnvValue::Literal(word) => text::exec_word(word),
        EnvValue::Native(word) => text::exec_word_native(word),
    }
}

fn service_unit(
    plan: &Plan<'_>,
    service: &Service<'_>,
    conductor: &str,
    target: &str,
    oneshot: &str,
    notes: &mut Notes,
) -> String {
    let spec = service.spec;
    let mut requires = vec![oneshot.to_owned()];
    let mut wants = Vec::new();
    let mut after = vec![oneshot.to_owned()];
    for dependency in &service.dependencies {
        let unit = format!("{}.service", dependency.name);
        if dependency.critical {
            requires.push(unit.clone());
        } else {
            wants.push(unit.clone());
        }
        after.push(unit);
    }
    let mut unit = notes.pointer(
        "systemd",
        &format!("{}: {} service", plan.registry.app.name, spec.title()),
        target,
    );
    unit.push_str(&format!(
        "\n[Unit]\nDescription={} {} Service\nPartOf={target}\nRequires={}\n",
        text::setting(&plan.registry.app.name),
        spec.title(),
        requires.join(" ")
    ));
    if !wants.is_empty() {
        unit.push_str(&format!("Wants={}\n", wants.join(" ")));
    }
    unit.push_str(&format!("After={}\n", after.join(" ")));
    // conductor fails a service after max_retries restarts without a stable reset_after;
    // systemd fails a unit after StartLimitBurst starts within StartLimitIntervalSec.
    unit.push_str(&format!(
        "StartLimitIntervalSec={}\nStartLimitBurst={}\n",
        text::duration(spec.restart.reset_after),
        spec.restart.max_retries.saturating_add(1),
    ));

    let mut exec = vec![text::exec_word(&service.program)];
    exec.extend(spec.args.iter().map(|arg| text::exec_word(arg)));
    unit.push_str(&format!(
        "\n[Service]\nType=exec\nExecStart={}\n",
        exec.join(" ")
    ));
    let ready = text::duration(spec.ready_timeout);
    let wait = match &spec.health.check {
        HealthCheck::Http { path } => Some(format!("http {} {}", spec.port, text::exec_word(path))),
        HealthCheck::Tcp => Some(format!("tcp {}", spec.port)),
        HealthCheck::Exec { args, .. } => {
            let mut words = vec!["exec".to_owned(), "--".to_owned()];
            words.push(text::exec_word(
                service.probe_program.as_deref().unwrap_or_default(),
            ));
            words.extend(args.iter().map(|arg| text::exec_word(arg)));
            Some(words.join(" "))
        }
        HealthCheck::None => None,
    };
    if let Some(wait) = wait {
        unit.push_str(&format!(
            "ExecStartPost={conductor} wait-ready --timeout {ready} {wait}\n"
        ));
    }
    unit.push_str(&format!(
        "WorkingDirectory={}\n",
        text::setting(&text::normalize(&spec.cwd.display().to_string()))
    ));
    for (name, value) in plan.env(service) {
        let assignment = match value {
            EnvValue::Literal(value) => text::environment(&name, &value),
            EnvValue::Native(value) => text::environment_raw(&name, &value),
        };
        unit.push_str(&format!("Environment={assignment}\n"));
    }
    let start_timeout = spec.ready_timeout + std::time::Duration::from_secs(START_MARGIN_SECS);
    unit.push_str(&format!(
        "Restart={}\nRestartSec={}\nTimeoutStartSec={}\nTimeoutStopSec={}\nKillMode=control-group\nKillSignal=SIGTERM\n",
        if spec.restart.max_retries == 0 { "no" } else { "always" },
        text::duration(spec.restart.backoff),
        text::duration(start_timeout),
        text::duration(spec.stop_timeout),
    ));
    if let Some(memory) = spec.limits.memory {
        unit.push_str(&format!("MemoryMax={memory}\n"));
    }
    if let Some(open_files) = spec.limits.open_files {
        unit.push_str(&format!("LimitNOFILE={open_files}\n"));
    }
    if let Some(processes) = spec.limits.processes {
        unit.push_str(&format!("LimitNPROC={processes}\n"));
    }
    unit.push_str(&format!("\n[Install]\nWantedBy={target}\n"));
    unit
}
