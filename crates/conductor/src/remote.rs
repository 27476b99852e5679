//! The subcommands that talk to a running conductor through `<userData>/ipc.json`:
//! `status`, `logs`, `start|stop|restart`, `db status|init`, `paths`, `quit` (`db migrate`,
//! which works without one, is parsed here with its siblings but run by `migrate.rs`).
//!
//! Presentation only: requests and responses are the protocol crate's, transport is `ipc`'s.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use conductor_ipc::Client;
use conductor_protocol::{
    Channel, DatabaseInitResponse, DatabaseStatus, GetPathRequest, GetPathResponse, IpcInfo,
    LogEntry, LogsGetRequest, LogsGetResponse, PathName, ReloadRequest, ReloadResponse,
    ServiceActionResponse, ServiceRequest, ServiceStatus, SuccessResponse,
};
use conductor_registry::LoadOptions;

use crate::{instance, registry_choice::RegistryChoice};

/// Which registry and data directory a command works on (global options).
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// Registry file [default: ./conductor.toml if it exists, else the built-in registry]
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) registry: Option<PathBuf>,
    /// Data directory [default: $CONDUCTOR_DATA_DIR, else the platform's per-app data dir
    /// named after the registry's app]
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
}

/// A client subcommand.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Remote {
    /// Show every service's status
    Status {
        /// Print the raw `services:get-all` JSON
        #[arg(long, conflicts_with = "watch")]
        json: bool,
        /// Redraw the table every metrics interval until q or Ctrl-C
        #[arg(long)]
        watch: bool,
    },
    /// Print recent log lines (all services merged by time, or one)
    Logs {
        /// Only this service
        service: Option<String>,
        /// How many lines
        #[arg(short = 'n', long = "lines", default_value_t = 100)]
        lines: usize,
        /// Keep printing new lines until interrupted
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Start a service
    Start {
        /// The service
        service: String,
    },
    /// Stop a service
    Stop {
        /// The service
        service: String,
    },
    /// Restart a service
    Restart {
        /// The service
        service: String,
    },
    /// Database status or migrations
    #[command(subcommand)]
    Db(DbCommand),
    /// Print conductor's directories
    Paths,
    /// Stop the running conductor and wait until it has exited
    Quit,
    /// Apply the registry file again: only the services it changes are touched
    Reload {
        /// Apply this file instead of the one conductor was started with
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// `conductor db …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum DbCommand {
    /// Whether the database is initialised, and its version
    Status,
    /// Run pending migrations (in the running conductor)
    Init,
    /// Run pending migrations without a running conductor, under its lock, and start nothing
    Migrate(crate::migrate::MigrateArgs),
}

fn client(target: &Target) -> anyhow::Result<(Client, PathBuf)> {
    let (info, user_data) = running_instance(target)?;
    Ok((Client::new(info), user_data))
}

/// The `ipc.json` of the instance `target` names, and its data directory.
pub(crate) fn running_instance(target: &Target) -> anyhow::Result<(IpcInfo, PathBuf)> {
    let app_name = match &target.data_dir {
        Some(_) => String::new(),
        None => {
            let choice = RegistryChoice::from_arg(target.registry.as_deref());
            choice.load(&LoadOptions::default())?.app.name
        }
    };
    let user_data = instance::data_dir(target.data_dir.as_deref(), &app_name)?;
    let info = conductor_ipc::read_info(&user_data)?;
    Ok((info, user_data))
}

pub(crate) fn run(command: &Remote, target: &Target) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(dispatch(command, target))
}

async fn dispatch(command: &Remote, target: &Target) -> anyhow::Result<()> {
    let (client, user_data) = client(target)?;
    match command {
        Remote::Status { watch: true, .. } => crate::status::watch(&client).await?,
        Remote::Status { json, .. } => {
            let statuses: Vec<ServiceStatus> =
                client.call(Channel::ServicesGetAll, None::<&()>).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&statuses)?);
            } else {
                print!("{}", crate::status::table(&statuses));
            }
        }
        Remote::Logs {
            service,
            lines,
            follow,
        } => logs(&client, service.clone(), *lines, *follow).await?,
        Remote::Start { service } => {
            act(&client, Channel::ServicesStart, service, "started").await?
        }
        Remote::Stop { service } => act(&client, Channel::ServicesStop, service, "stopped").await?,
        Remote::Restart { service } => {
            act(&client, Channel::ServicesRestart, service, "restarted").await?
        }
        Remote::Db(DbCommand::Status) => {
            let status: DatabaseStatus = client.call(Channel::DatabaseStatus, None::<&()>).await?;
            let version = status.version.map_or("none".to_owned(), |v| v.to_string());
            println!("path:        {}", status.path);
            println!("initialized: {}", status.initialized);
            println!("version:     {version}");
        }
        Remote::Db(DbCommand::Init) => {
            let response: DatabaseInitResponse =
                client.call(Channel::DatabaseInit, None::<&()>).await?;
            match response.error {
                None if response.success => println!(
                    "✓ Database initialized ({} migrations run)",
                    response.migrations_run
                ),
                error => bail!("database init failed: {}", error.unwrap_or_default()),
            }
        }
        Remote::Db(DbCommand::Migrate(_)) => {
            bail!("conductor db migrate runs without a running conductor; it is never sent to one")
        }
        Remote::Paths => {
            for (label, path_name) in [
                ("userData", PathName::UserData),
                ("logs", PathName::Logs),
                ("temp", PathName::Temp),
            ] {
                let response: GetPathResponse = client
                    .call(Channel::AppGetPath, Some(&GetPathRequest { path_name }))
                    .await?;
                println!("{label:9} {}", response.path);
            }
        }
        Remote::Reload { file } => {
            let registry = match file {
                Some(file) => Some(
                    std::path::absolute(file)
                        .context("resolving the registry path")?
                        .display()
                        .to_string(),
                ),
                None => None,
            };
            let response: ReloadResponse = client
                .call(Channel::AppReload, Some(&ReloadRequest { registry }))
                .await?;
            if !response.success {
                bail!(
                    "reload not applied; nothing changed:\n  {}",
                    response.errors.join("\n  ")
                );
            }
            let summary = response.summary;
            println!("✓ Registry reloaded");
            for (label, names) in [
                ("added", &summary.added),
                ("removed", &summary.removed),
                ("changed", &summary.changed),
                ("unchanged", &summary.unchanged),
            ] {
                if !names.is_empty() {
                    println!("  {label:9} {}", names.join(", "));
                }
            }
        }
        Remote::Quit => {
            let _: SuccessResponse = client.call(Channel::AppQuit, None::<&()>).await?;
            wait_until_gone(&user_data).await?;
            println!("✓ conductor stopped");
        }
    }
    Ok(())
}

async fn act(client: &Client, channel: Channel, service: &str, done: &str) -> anyhow::Result<()> {
    let request = ServiceRequest {
        service_name: service.to_owned(),
    };
    let response: ServiceActionResponse = client.call(channel, Some(&request)).await?;
    if response.success {
        println!("✓ {service} {done}");
        Ok(())
    } else {
        bail!(
            "{service}: {}",
            response.error.unwrap_or_else(|| "failed".to_owned())
        )
    }
}

async fn logs(
    client: &Client,
    service: Option<String>,
    lines: usize,
    follow: bool,
) -> anyhow::Result<()> {
    let fetch = |lines: usize| {
        let request = LogsGetRequest {
            service_name: service.clone(),
            lines: Some(lines),
        };
        async move {
            let response: LogsGetResponse = client.call(Channel::LogsGet, Some(&request)).await?;
            anyhow::Ok(response.logs)
        }
    };
    let mut last: Option<LogEntry> = None;
    for entry in fetch(lines).await? {
        print_entry(&entry);
        last = Some(entry);
    }
    if !follow {
        return Ok(());
    }
    // Polls `logs:get`: the control API has no log stream, and a quarter second is live
    // enough for a terminal.
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let recent = fetch(1000).await?;
        // Print what follows the last entry printed; if it scrolled out, print everything.
        let start = match &last {
            Some(seen) => recent
                .iter()
                .rposition(|entry| entry == seen)
                .map_or(0, |i| i + 1),
            None => 0,
        };
        for entry in &recent[start..] {
            print_entry(entry);
        }
        if let Some(entry) = recent.last() {
            last = Some(entry.clone());
        }
    }
}

fn print_entry(entry: &LogEntry) {
    println!(
        "{} {:5} {:>10} | {}",
        entry.timestamp,
        entry.level.as_str(),
        entry.service,
        entry.message
    );
}

async fn wait_until_gone(user_data: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while user_data.join("ipc.json").exists() {
        if Instant::now() > deadline {
            bail!("conductor accepted quit but is still running after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
