//! Project automation behind `cargo xtask`: fixtures, verify (the gates), bench, bundle, demo,
//! ts-types.
//! Each subcommand is a module with `run(args)`; this file only parses and dispatches.
//! Tasks are Rust, need no network (except `npm ci` of the browser tests' locked
//! dependencies when they are missing), and write only under `target/` (and that
//! `tests/browser/node_modules`).

mod bench;
mod browser;
mod bundle;
mod demo;
mod fixtures;
mod gates;
mod tidy;
mod ts_types;
mod util;
mod verify;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  fixtures   build the fake-service fixture (debug)
  verify     fmt, clippy, every test, cargo-deny, then the five verification gates
             (--self-test: check each gate fails against a deliberately broken setup)
  demo       run conductor with fixtures/demo.toml in a fresh temp data dir
  bench      measure startup, recovery, footprint, logs, control API, shutdown, scale
  bundle     build the release tar.gz in target/bundle/
  ts-types   regenerate clients/js's TypeScript wire types (--check: fail when they drift)";

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(command) = args.next() else {
        eprintln!("{USAGE}");
        return std::process::ExitCode::from(1);
    };
    let rest: Vec<String> = args.collect();
    let result = match command.as_str() {
        "fixtures" => fixtures::run(&rest),
        "verify" => verify::run(&rest),
        "demo" => demo::run(&rest),
        "bench" => bench::run(&rest),
        "bundle" => bundle::run(&rest),
        "ts-types" => ts_types::run(&rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(anyhow::anyhow!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(1)
        }
    }
}
