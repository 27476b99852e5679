//! `cargo xtask verify`: every check a change must pass, in the order that fails fastest:
//! formatting, clippy with warnings denied, the fixtures, every test (nextest when installed,
//! else `cargo test`), the docs, cargo-deny, the TypeScript types' drift check, then the five
//! gates of SPEC §8 against the real binary (`gates.rs`), the browser tests in headless
//! Chromium (`browser.rs`), the gates' self-test, the JavaScript client's tests (node's test
//! runner, against the same binaries), the flood, then the bundle test. Each step prints
//! `✓ <step>` or `✗ <step>: <why>`; any ✗ makes verify fail.
//!
//! `--gates` runs only the build and the five gates; `--self-test` runs the build and then each
//! gate against a deliberately broken setup, failing if any gate passes there; `--browser`
//! builds and runs only the browser tests. The release
//! bundle is not built here (a release build takes minutes on two cores): verify packs the
//! debug binary the same way and runs the bundle test on it (`cargo xtask bundle --test` does
//! the real one).

use std::process::Command;

use anyhow::bail;

use crate::{
    browser, bundle, gates, ts_types,
    util::{cargo, has_cargo_plugin, project_root, run_checked, target_dir},
};

/// The workspace's library crates (the binary's `--help` text is not rustdoc).
const LIBRARY_CRATES: &[&str] = &[
    "conductor-protocol",
    "conductor-registry",
    "conductor-spawn",
    "conductor-health",
    "conductor-logs",
    "conductor-db",
    "conductor-supervisor",
    "conductor-ipc",
    "conductor-export",
    "conductor-test-support",
];

const USAGE: &str = "usage: cargo xtask verify [--gates | --self-test | --flood | --browser | --js]
  (no flag)    fmt, clippy, fixtures, tests, cargo-deny, the five gates, the browser
               tests, the gates' self-test, the flood, the bundle test (on the debug build)
  --gates      only build conductor and fake-service and run the five gates
  --self-test  only build and check that each gate fails against a broken setup
  --flood      only the connection flood against the release binary
  --browser    only build and run the browser tests (tests/browser, headless Chromium)
  --js         only build and run the JavaScript client's tests (clients/js/test)";

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => everything(),
        ["--gates"] => {
            let failed = build_and_run_gates()?;
            if failed.is_empty() {
                Ok(())
            } else {
                bail!("{} gate(s) failed: {}", failed.len(), failed.join(", "))
            }
        }
        ["--self-test"] => {
            build_binaries()?;
            gates::self_test(&gates::env()?)
        }
        ["--flood"] => flood(),
        ["--browser"] => {
            build_binaries()?;
            browser::run()
        }
        ["--js"] => js_client(),
        ["-h" | "--help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("unexpected arguments {args:?}\n{USAGE}"),
    }
}

/// The debug binaries the gates run.
fn build_binaries() -> anyhow::Result<()> {
    run_checked(cargo().args(["build", "--quiet", "-p", "conductor", "-p", "fake-service"]))
}

/// The connection flood (issue 12) against the release conductor: what ships is what must
/// hold under load.
fn flood() -> anyhow::Result<()> {
    run_checked(cargo().args(["build", "--release", "--quiet", "-p", "conductor"]))?;
    build_binaries()?;
    let target = crate::util::target_dir();
    crate::bench::flood::run(
        &target.join("release").join("conductor"),
        &target.join("debug").join("fake-service"),
    )
}

/// The JavaScript client's tests (`node --test`) against the debug binaries, which they find
/// through `CONDUCTOR_BIN` and `FAKE_SERVICE_BIN`.
fn js_client() -> anyhow::Result<()> {
    build_binaries()?;
    let tests = project_root().join("clients/js/test");
    let mut files: Vec<_> = std::fs::read_dir(&tests)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(".test.js"))
        .collect();
    // node 20's `--test` takes files, not a directory (node 21 reads globs); sorted, so a
    // failure report reads the same on every machine.
    files.sort();
    let debug = target_dir().join("debug");
    run_checked(
        Command::new("node")
            .arg("--test")
            .args(&files)
            .env("CONDUCTOR_BIN", debug.join("conductor"))
            .env("FAKE_SERVICE_BIN", debug.join("fake-service"))
            .current_dir(project_root()),
    )
}

/// Builds the binaries and runs the gates; returns the names of the failed gates.
fn build_and_run_gates() -> anyhow::Result<Vec<String>> {
    build_binaries()?;
    Ok(gates::run_all(&gates::env()?))
}

/// Programs the tests drive besides our own, each with the one command that installs it on
/// the Debian-based machines CI runs on. A missing one stops verify at once: a test never
/// skips silently.
/// Each is `(program, flag that prints its version and exits, install command)`.
const TOOLS: &[(&str, &str, &str)] = &[
    ("python3", "-V", "sudo apt-get install -y python3"),
    ("tmux", "-V", "sudo apt-get install -y tmux"),
    ("node", "--version", "sudo apt-get install -y nodejs npm"),
    ("npm", "--version", "sudo apt-get install -y nodejs npm"),
    ("chromium", "--version", browser::CHROMIUM_INSTALL),
    // The engines' checkers of `conductor export` (tests/export.rs, tests/schema.rs).
    (
        "systemd-analyze",
        "--version",
        "sudo apt-get install -y systemd",
    ),
    (
        "docker-compose",
        "--version",
        "sudo apt-get install -y docker-compose",
    ),
    (
        "kubernetes-validate",
        "--version",
        "python3 -m pip install kubernetes-validate",
    ),
    (
        "check-jsonschema",
        "--version",
        "python3 -m pip install check-jsonschema",
    ),
];

fn check_tools() -> anyhow::Result<()> {
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(tool, version, _)| {
            Command::new(tool)
                .arg(version)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_err()
        })
        .map(|(tool, _, install)| format!("{tool} is missing: {install}"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        bail!(
            "the tests need programs this machine lacks:\n  {}",
            missing.join("\n  ")
        )
    }
}

fn everything() -> anyhow::Result<()> {
    check_tools()?;
    let mut failures = Vec::new();
    let mut step = |name: &str, command: &mut Command| match run_checked(command) {
        Ok(()) => println!("✓ {name}"),
        Err(err) => {
            println!("✗ {name}: {err:#}");
            failures.push(name.to_owned());
        }
    };

    step("fmt", cargo().args(["fmt", "--all", "--check"]));
    step(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    );
    step("fixtures", cargo().args(["build", "-p", "fake-service"]));
    if has_cargo_plugin("nextest") {
        step(
            "tests",
            cargo().args(["nextest", "run", "--workspace", "--no-fail-fast"]),
        );
        // nextest does not run doctests.
        step("doctests", cargo().args(["test", "--workspace", "--doc"]));
    } else {
        step(
            "tests",
            cargo().args(["test", "--workspace", "--no-fail-fast"]),
        );
    }

    // Each library crate's docs build without a warning (its README is its crate docs).
    let mut docs = cargo();
    docs.env("RUSTDOCFLAGS", "-D warnings")
        .args(["doc", "--no-deps", "--quiet"]);
    for library in LIBRARY_CRATES {
        docs.args(["-p", library]);
    }
    step("docs", &mut docs);

    if has_cargo_plugin("deny") {
        // --offline needs every platform's crates downloaded first; the advisory database
        // cannot be fetched on our machines, so advisories are not checked.
        step("fetch", cargo().args(["fetch", "--quiet"]));
        step(
            "deny",
            cargo().args(["deny", "--offline", "check", "bans", "licenses", "sources"]),
        );
    } else {
        println!("✗ deny: cargo-deny is not installed; run `cargo install cargo-deny --locked`");
        failures.push("deny".to_owned());
    }

    match ts_types::check() {
        Ok(()) => println!("✓ ts types"),
        Err(err) => {
            println!("✗ ts types: {err:#}");
            failures.push("ts types".to_owned());
        }
    }

    match build_and_run_gates() {
        Ok(failed) => failures.extend(failed),
        Err(err) => {
            println!("✗ gates: {err:#}");
            failures.push("gates".to_owned());
        }
    }

    // Needs the debug binaries the gates built.
    match browser::run() {
        Ok(()) => println!("✓ browser"),
        Err(err) => {
            println!("✗ browser: {err:#}");
            failures.push("browser".to_owned());
        }
    }

    // Cheap (a few seconds), and it proves each gate above can fail.
    match gates::env().and_then(|env| gates::self_test(&env)) {
        Ok(()) => println!("✓ gates self-test"),
        Err(err) => {
            println!("✗ gates self-test: {err:#}");
            failures.push("gates self-test".to_owned());
        }
    }

    match js_client() {
        Ok(()) => println!("✓ js client"),
        Err(err) => {
            println!("✗ js client: {err:#}");
            failures.push("js client".to_owned());
        }
    }

    match flood() {
        Ok(()) => println!("✓ flood"),
        Err(err) => {
            println!("✗ flood: {err:#}");
            failures.push("flood".to_owned());
        }
    }

    match bundle::test_debug_bundle() {
        Ok(()) => println!("✓ bundle"),
        Err(err) => {
            println!("✗ bundle: {err:#}");
            failures.push("bundle".to_owned());
        }
    }

    if failures.is_empty() {
        Ok(())
    } else {
        bail!("{} step(s) failed: {}", failures.len(), failures.join(", "))
    }
}
