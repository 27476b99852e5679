//! `cargo xtask verify`: every check a change must pass, in the order that fails fastest:
//! formatting, clippy with warnings denied, the fixtures, every test (nextest when installed,
//! else `cargo test`), cargo-deny, then the five gates of SPEC §8 against the real binary.
//! Each step prints `✓ <step>` or `✗ <step>: <why>`; any ✗ makes verify fail.

use std::process::Command;

use anyhow::bail;

use crate::util::{cargo, has_cargo_plugin, run_checked};

pub(crate) fn run(_args: &[String]) -> anyhow::Result<()> {
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

    if failures.is_empty() {
        Ok(())
    } else {
        bail!("{} step(s) failed: {}", failures.len(), failures.join(", "))
    }
}
