//! The `browser` step of `cargo xtask verify`: the control API driven from pages in a real
//! headless Chromium (`tests/browser`: node's test runner and puppeteer-core), against the
//! debug `conductor` and `fake-service`, whose paths it passes in `CONDUCTOR_BIN`,
//! `FAKE_SERVICE_BIN` and `CHROMIUM_BIN`.
//!
//! It installs nothing but the test package's locked dependencies: `npm ci` when
//! `tests/browser/node_modules` is missing (the one step of verify that may reach the npm
//! registry). A missing Chromium, Node or install fails the step with the command to run;
//! it never skips.

use std::{path::PathBuf, process::Command};

use anyhow::{Context, bail};

use crate::{
    gates,
    util::{project_root, run_checked},
};

/// Installs Chromium on the Debian machines CI runs on (`.ci/run` does it when missing).
pub(crate) const CHROMIUM_INSTALL: &str = "sudo apt-get install -y chromium";

pub(crate) fn run() -> anyhow::Result<()> {
    let chromium = prepare()?;
    let binaries = gates::env()?;
    run_checked(
        Command::new("node")
            .arg("--test")
            .current_dir(browser_dir())
            .env("CONDUCTOR_BIN", &binaries.conductor)
            .env("FAKE_SERVICE_BIN", &binaries.fake_service)
            .env("CHROMIUM_BIN", &chromium),
    )
}

/// What any script in `tests/browser` needs (the tests, the bench's panel figures): Chromium,
/// whose path it returns, and the package's locked dependencies.
pub(crate) fn prepare() -> anyhow::Result<PathBuf> {
    let Some(chromium) = chromium() else {
        bail!("chromium is missing: {CHROMIUM_INSTALL} (or set CHROMIUM_BIN to a Chromium binary)");
    };
    let dir = browser_dir();
    if !dir.join("node_modules").is_dir() {
        run_checked(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
        )
        .with_context(|| {
            format!(
                "installing the browser tests' dependencies failed; run `npm ci` in {}",
                dir.display()
            )
        })?;
    }
    Ok(chromium)
}

fn browser_dir() -> PathBuf {
    project_root().join("tests").join("browser")
}

/// `$CHROMIUM_BIN`, else `chromium` in `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM_BIN") {
        return Some(PathBuf::from(path)).filter(|path| path.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
}
