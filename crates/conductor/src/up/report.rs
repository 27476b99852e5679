//! What `up` prints while starting (SPEC §7): the live `(x/n ready)` line on a terminal and
//! the `✓`/`✗` line of each service.

use std::io::{IsTerminal, Write};

use conductor_protocol::{Event, ServiceState};
use conductor_supervisor::{Conductor, StartOutcome, StartReport, StartupError};

pub(super) fn print_start_report(report: &StartReport) {
    let mut degraded = Vec::new();
    for service in &report.services {
        match &service.outcome {
            StartOutcome::Started => {
                say!(
                    "✓ Starting {} Service... OK (port {})",
                    service.title,
                    service.port
                )
            }
            StartOutcome::Failed(reason) => {
                degraded.push(service.name.clone());
                say!(
                    "✗ Starting {} Service... FAILED (port {}): {reason}",
                    service.title,
                    service.port
                )
            }
            StartOutcome::Disabled => say!(
                "- {} Service disabled (port {})",
                service.title,
                service.port
            ),
            StartOutcome::Skipped(feature) => {
                say!(
                    "- {} Service skipped: feature \"{feature}\" is not enabled",
                    service.title
                )
            }
        }
    }
    if degraded.is_empty() {
        say!("✓ All services ready");
    } else {
        say!("! Running degraded without: {}", degraded.join(", "));
    }
}

/// The `✗` line of the critical service that stopped the startup; the error itself is the
/// process's failure report.
pub(super) fn print_startup_failure(conductor: &Conductor, error: &StartupError) {
    let title = conductor
        .registry()
        .service(&error.service)
        .map(|s| s.title())
        .unwrap_or_default();
    say!("✗ Starting {title} Service... FAILED");
}

/// On a terminal, a live `(x/n ready)` line while services start; [`ProgressLine::finish`]
/// ends it and clears the line.
pub(super) struct ProgressLine(tokio::task::JoinHandle<()>);

impl ProgressLine {
    pub(super) fn show(conductor: &Conductor) -> ProgressLine {
        let mut events = conductor.subscribe(None).live;
        let total = conductor
            .registry()
            .services
            .iter()
            .filter(|s| s.is_active())
            .count();
        let interactive = std::io::stdout().is_terminal();
        ProgressLine(tokio::spawn(async move {
            if !interactive {
                return;
            }
            let mut ready = std::collections::BTreeSet::new();
            while let Ok(event) = events.recv().await {
                if let Event::ServiceStatusChanged {
                    service_name,
                    status,
                } = &event.event
                    && status.status == ServiceState::Running
                {
                    ready.insert(service_name.clone());
                    say_inline!("\r  starting services... ({}/{total} ready)", ready.len());
                    let _ = std::io::stdout().flush();
                }
            }
        }))
    }

    pub(super) fn finish(self) {
        self.0.abort();
        if std::io::stdout().is_terminal() {
            say_inline!("\r\x1b[2K");
        }
    }
}
