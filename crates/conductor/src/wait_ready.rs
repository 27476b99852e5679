//! `conductor wait-ready`: waits until a service answers its probe, with conductor's own
//! probes and polling (fast at first), or fails after the timeout. Exported systemd units run
//! it as `ExecStartPost=`, since systemd has no readiness probe of its own.
//!
//! Wiring only: probing and polling are `conductor-health`'s.

use std::time::Duration;

use anyhow::{Context, bail};
use conductor_health::{Probe, Prober};

/// Arguments of `conductor wait-ready`.
#[derive(Debug, clap::Args)]
pub(crate) struct WaitArgs {
    /// Give up after this long (like "30s")
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "30s")]
    timeout: Duration,
    #[command(subcommand)]
    probe: ProbeArg,
}

#[derive(Debug, clap::Subcommand)]
enum ProbeArg {
    /// GET http://127.0.0.1:PORT/PATH answers 2xx (and a JSON "status" is healthy or degraded)
    Http {
        /// The service's port
        port: u16,
        /// The request path
        #[arg(default_value = "/health")]
        path: String,
    },
    /// A TCP connection to 127.0.0.1:PORT is accepted
    Tcp {
        /// The service's port
        port: u16,
    },
    /// PROGRAM ARGS… exits with status 0
    Exec {
        /// The program and its arguments
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

pub(crate) fn run(args: &WaitArgs) -> anyhow::Result<()> {
    let probe = match &args.probe {
        ProbeArg::Http { port, path } => Probe::Http {
            port: *port,
            path: path.clone(),
        },
        ProbeArg::Tcp { port } => Probe::Tcp { port: *port },
        ProbeArg::Exec { command } => {
            let Some((program, rest)) = command.split_first() else {
                bail!("wait-ready exec needs a program to run");
            };
            Probe::Exec {
                program: program.clone(),
                args: rest.to_vec(),
                cwd: None,
                marker: None,
            }
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(Prober::new().wait_ready(&probe, args.timeout, ""))
        .map(|_| ())
        .map_err(|not_ready| anyhow::anyhow!("{not_ready}"))
}
