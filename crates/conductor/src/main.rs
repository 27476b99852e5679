//! The `conductor` binary: parses the command line, runs one subcommand and turns its outcome
//! into the process exit code (SPEC §7).
//!
//! Wiring only: the work is done by the library crates. Subcommands return a [`Failure`] and
//! never exit the process themselves; `failure.rs` chooses the exit code and prints it.

mod check;
mod export;
mod failure;
mod instance;
mod migrate;
mod open;
mod registry_choice;
mod remote;
mod status;
mod up;
mod wait_ready;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::failure::{Failure, exit_codes};

/// Runs a desktop app's local services: starts them in order, watches their health, restarts
/// the ones that crash, and stops everything on quit.
#[derive(Debug, Parser)]
#[command(name = "conductor", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    target: remote::Target,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the app in the foreground: database, services, control API, window; Ctrl-C stops it.
    Up(up::UpArgs),
    /// Validate a registry and print its start plan, without starting anything.
    Check(check::CheckArgs),
    /// Translate the registry into systemd units, a Docker Compose file or Kubernetes manifests.
    Export(export::ExportArgs),
    /// Print the JSON Schema of conductor.toml (for taplo, Even Better TOML, check-jsonschema).
    Schema,
    /// Wait until a service answers its probe (exported systemd units run it).
    WaitReady(wait_ready::WaitArgs),
    /// Print the debug panel's URL (with its token) and open it in the browser when there is
    /// a display.
    Open(open::OpenArgs),
    #[command(flatten)]
    Remote(remote::Remote),
}

fn run(cli: Cli) -> Result<(), Failure> {
    if !matches!(cli.command, Command::Up(_)) {
        restore_sigpipe();
    }
    match cli.command {
        Command::Up(args) => up::run(&args, &cli.target),
        Command::Check(args) => check::run(&args, cli.target.registry.as_deref()),
        Command::Export(args) => export::run(&args, cli.target.registry.as_deref()),
        Command::Schema => export::schema(),
        Command::WaitReady(args) => Ok(wait_ready::run(&args)?),
        Command::Open(args) => Ok(open::run(&args, &cli.target)?),
        Command::Remote(remote::Remote::Db(remote::DbCommand::Migrate(args))) => {
            migrate::run(&args, &cli.target)
        }
        Command::Remote(command) => Ok(remote::run(&command, &cli.target)?),
    }
}

fn main() -> ExitCode {
    let code = match Cli::try_parse() {
        // --help and --version arrive as "errors" that belong on stdout with status 0.
        Err(usage) if !usage.use_stderr() => {
            print_clap(&usage);
            exit_codes::OK
        }
        Err(usage) => {
            print_clap(&usage);
            exit_codes::ERROR
        }
        Ok(cli) => match run(cli) {
            Ok(()) => exit_codes::OK,
            Err(failure) => {
                eprintln!("{}", failure.report());
                failure.exit_code()
            }
        },
    };
    ExitCode::from(code)
}

/// Printing commands behave like other command-line tools in a pipeline: `conductor status |
/// head -1` ends quietly instead of panicking on a closed stdout. Rust ignores SIGPIPE by
/// default; `up` keeps ignoring it, because a closed terminal must not kill the supervisor
/// in the middle of running the fleet.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: resetting one signal's disposition to its default, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn print_clap(message: &clap::Error) {
    // Printing can only fail when stdout or stderr is closed; nothing is left to tell then.
    let _ = message.print();
}
