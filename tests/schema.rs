//! `conductor schema` (issue 18): the JSON Schema of conductor.toml, judged by
//! `check-jsonschema` (which reads TOML itself) on the demo registry and every fixture
//! registry, and on registries the parser refuses for a key it does not know.
//!
//! check-jsonschema is required, not optional: without it the tests fail with its install
//! command (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use conductor_test_support::TempDir;

const INSTALL: &str = "pip install check-jsonschema";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `conductor schema` into `dir` and returns its path.
fn schema(dir: &Path) -> PathBuf {
    let output = match Command::new(env!("CARGO_BIN_EXE_conductor"))
        .arg("schema")
        .output()
    {
        Ok(output) => output,
        Err(error) => panic!("cannot run conductor schema: {error}"),
    };
    assert!(output.status.success(), "{}", text(&output.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("conductor schema printed no JSON: {error}"));
    assert_eq!(
        parsed["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let path = dir.join("conductor.schema.json");
    std::fs::write(&path, &output.stdout).unwrap_or_else(|error| panic!("{error}"));
    path
}

fn check_jsonschema(schema: &Path, files: &[PathBuf]) -> Output {
    let found = Command::new("check-jsonschema")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "check-jsonschema is not installed, and this test validates registries with it; install it with: {INSTALL}"
    );
    match Command::new("check-jsonschema")
        .arg("--schemafile")
        .arg(schema)
        .args(files)
        .output()
    {
        Ok(output) => output,
        Err(error) => panic!("cannot run check-jsonschema: {error}"),
    }
}

#[test]
fn the_demo_registry_and_every_valid_fixture_registry_match_the_schema() {
    let dir = TempDir::new("schema-valid");
    let schema = schema(dir.path());
    let mut files = vec![fixtures().join("demo.toml")];
    for entry in
        std::fs::read_dir(fixtures().join("registries")).unwrap_or_else(|error| panic!("{error}"))
    {
        let path = entry.unwrap_or_else(|error| panic!("{error}")).path();
        // several-errors.toml is invalid on purpose (the next test).
        if path.extension().is_some_and(|ext| ext == "toml")
            && !path.ends_with("several-errors.toml")
        {
            files.push(path);
        }
    }
    assert!(files.len() >= 3, "{files:?}");
    let output = check_jsonschema(&schema, &files);
    assert!(
        output.status.success(),
        "check-jsonschema on {files:?}:\n{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

#[test]
fn a_misspelt_key_and_the_invalid_fixture_are_rejected_where_the_parser_rejects_them() {
    let dir = TempDir::new("schema-invalid");
    let schema = schema(dir.path());
    let misspelt = dir.path().join("misspelt.toml");
    std::fs::write(
        &misspelt,
        "[app]\nname = \"x\"\n[services.web]\nport = 3001\ncommand = \"node\"\ndepnds_on = []\n",
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let output = check_jsonschema(&schema, std::slice::from_ref(&misspelt));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    assert!(
        text(&output.stdout).contains(
            "$.services.web: Additional properties are not allowed ('depnds_on' was unexpected)"
        ),
        "{}",
        text(&output.stdout)
    );

    let output = check_jsonschema(
        &schema,
        &[fixtures().join("registries/several-errors.toml")],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    let stdout = text(&output.stdout);
    for expected in [
        "'depnds_on' was unexpected",
        "'parallel' is not one of",
        "70000 is greater than the maximum of 65535",
    ] {
        assert!(stdout.contains(expected), "{expected} in:\n{stdout}");
    }
}
