//! End-to-end tests of `conductor check` (SPEC §2 validation, §7 command line): the real binary
//! against real registry files, checking output and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use conductor_test_support::TempDir;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/registries")
        .join(name)
}

fn conductor(dir: &Path, args: &[&str]) -> Output {
    match Command::new(env!("CARGO_BIN_EXE_conductor"))
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(output) => output,
        Err(error) => panic!("cannot run conductor {args:?}: {error}"),
    }
}

/// stdout and stderr as text, with the test's directory replaced by `[DIR]`.
fn texts(output: &Output, dir: &Path) -> (String, String) {
    let redact =
        |bytes: &[u8]| String::from_utf8_lossy(bytes).replace(&dir.display().to_string(), "[DIR]");
    (redact(&output.stdout), redact(&output.stderr))
}

fn copy_fixture(name: &str, to: &Path) {
    if let Err(error) = std::fs::copy(fixture(name), to) {
        panic!("cannot copy fixture {name} to {}: {error}", to.display());
    }
}

#[test]
fn good_registry_prints_the_plan_and_exits_0() {
    let dir = TempDir::new("good");
    copy_fixture("good.toml", &dir.path().join("app.toml"));
    let registry = dir.path().join("app.toml");
    let output = conductor(
        dir.path(),
        &["check", "--registry", &registry.display().to_string()],
    );
    let (stdout, stderr) = texts(&output, dir.path());
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(stderr, "");
    insta::assert_snapshot!("good_registry", stdout);
}

#[test]
fn features_flag_replaces_the_file_features() {
    let dir = TempDir::new("features");
    copy_fixture("good.toml", &dir.path().join("conductor.toml"));
    let output = conductor(dir.path(), &["check", "--features", "gpu,extra"]);
    let (stdout, stderr) = texts(&output, dir.path());
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.starts_with("registry: conductor.toml\n"), "{stdout}");
    assert!(stdout.contains("features: gpu, extra\n"), "{stdout}");
    assert!(stdout.contains("gpu (port 3004)"), "{stdout}");
    assert!(
        stdout.contains("not started: ocr (port 3003): feature \"ocr\" not enabled"),
        "{stdout}"
    );
}

#[test]
fn without_a_file_the_builtin_registry_is_checked() {
    let dir = TempDir::new("builtin");
    let output = conductor(dir.path(), &["check"]);
    let (stdout, stderr) = texts(&output, dir.path());
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    insta::assert_snapshot!("builtin_registry", stdout);
}

#[test]
fn registry_with_several_errors_lists_all_and_exits_1() {
    let dir = TempDir::new("errors");
    copy_fixture("several-errors.toml", &dir.path().join("conductor.toml"));
    let output = conductor(dir.path(), &["check"]);
    let (stdout, stderr) = texts(&output, dir.path());
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(stdout, "", "nothing but errors is printed");
    assert_eq!(stderr.matches("error: ").count(), 9, "{stderr}");
    insta::assert_snapshot!("several_errors", stderr);
}

#[test]
fn missing_registry_file_exits_1_with_a_clear_error() {
    let dir = TempDir::new("missing");
    let missing = dir.path().join("nowhere.toml");
    let output = conductor(
        dir.path(),
        &["check", "--registry", &missing.display().to_string()],
    );
    let (stdout, stderr) = texts(&output, dir.path());
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(stdout, "");
    insta::assert_snapshot!("missing_file", stderr);
}

#[test]
fn usage_error_exits_1_not_clap_default_2() {
    let dir = TempDir::new("usage");
    let output = conductor(dir.path(), &["check", "--registyr", "x.toml"]);
    let (_, stderr) = texts(&output, dir.path());
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--registyr"), "{stderr}");

    let help = conductor(dir.path(), &["check", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--registry <FILE>"));
}
