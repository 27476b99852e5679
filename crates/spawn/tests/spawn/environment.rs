//! SPEC §3: what a child starts with (inherited and added variables, working directory, piped
//! stdout and stderr), and the errors when it cannot start.

use std::os::unix::fs::PermissionsExt;

use conductor_spawn::{SpawnErrorKind, SpawnSpec, spawn};
use tokio::io::{AsyncReadExt, BufReader};

use conductor_test_support::{DEADLINE, TempDir};

use crate::support::{os, read_line, sh};

#[tokio::test]
async fn stdout_and_stderr_are_delivered_separately() {
    let mut group = spawn(&sh("echo to-out; echo to-err >&2")).expect("/bin/sh starts");
    let mut stdout = BufReader::new(group.take_stdout().expect("stdout is piped"));
    let mut stderr = BufReader::new(group.take_stderr().expect("stderr is piped"));
    assert_eq!(read_line(&mut stdout).await, "to-out");
    assert_eq!(read_line(&mut stderr).await, "to-err");
    assert!(group.take_stdout().is_none(), "a pipe can be taken once");
    let status = tokio::time::timeout(DEADLINE, group.wait())
        .await
        .expect("the script ends")
        .expect("it can be awaited");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn added_variables_come_on_top_of_the_inherited_environment() {
    let inherited_path = std::env::var("PATH").expect("tests run with PATH set");
    let spec = SpawnSpec {
        env: vec![
            (os("CONDUCTOR_TEST_ADDED"), os("first")),
            (os("CONDUCTOR_TEST_ADDED"), os("later entry wins")),
            (os("PORT"), os("3001")),
        ],
        ..sh(r#"echo "$CONDUCTOR_TEST_ADDED"; echo "$PORT"; echo "$PATH""#)
    };
    let mut group = spawn(&spec).expect("/bin/sh starts");
    let mut stdout = BufReader::new(group.take_stdout().expect("stdout is piped"));
    assert_eq!(read_line(&mut stdout).await, "later entry wins");
    assert_eq!(read_line(&mut stdout).await, "3001");
    assert_eq!(read_line(&mut stdout).await, inherited_path);
}

#[tokio::test]
async fn child_runs_in_the_given_directory_with_stdin_at_end_of_file() {
    let dir = TempDir::new("cwd");
    let spec = SpawnSpec {
        cwd: Some(dir.path().to_owned()),
        // `cat` ends at once only if stdin is empty (/dev/null), not a terminal or a pipe.
        ..sh("pwd; cat; echo after-cat")
    };
    let mut group = spawn(&spec).expect("/bin/sh starts");
    let mut stdout = group.take_stdout().expect("stdout is piped");
    let mut output = String::new();
    tokio::time::timeout(DEADLINE, stdout.read_to_string(&mut output))
        .await
        .expect("the script ends")
        .expect("stdout is readable");
    let expected_dir = dir.path().canonicalize().expect("the temp dir exists");
    assert_eq!(output, format!("{}\nafter-cat\n", expected_dir.display()));
}

#[tokio::test]
async fn start_failures_say_what_and_where() {
    let dir = TempDir::new("errors");
    let not_executable = dir.path().join("not-executable.sh");
    std::fs::write(&not_executable, "#!/bin/sh\n").expect("the temp dir is writable");
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644))
        .expect("permissions can be set");
    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, "").expect("the temp dir is writable");

    let cases = [
        (
            "bare name",
            SpawnSpec {
                program: os("conductor-test-no-such-program"),
                ..SpawnSpec::default()
            },
        ),
        (
            "relative path",
            SpawnSpec {
                program: os("./bin/no-such-program"),
                cwd: Some(dir.path().to_owned()),
                ..SpawnSpec::default()
            },
        ),
        (
            "absolute path",
            SpawnSpec {
                program: dir.path().join("missing").into(),
                ..SpawnSpec::default()
            },
        ),
        (
            "not executable",
            SpawnSpec {
                program: not_executable.into(),
                ..SpawnSpec::default()
            },
        ),
        (
            "missing cwd",
            SpawnSpec {
                cwd: Some(dir.path().join("gone")),
                ..sh("true")
            },
        ),
        (
            "cwd is a file",
            SpawnSpec {
                cwd: Some(a_file),
                ..sh("true")
            },
        ),
    ];
    let mut report = String::new();
    for (situation, spec) in cases {
        let error = match spawn(&spec) {
            Ok(mut group) => {
                let status = group.wait().await;
                panic!(
                    "{situation}: expected a spawn error, the child ran and ended with {status:?}"
                )
            }
            Err(error) => error,
        };
        let source = error
            .source
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        report.push_str(&format!("{situation}: {error}\n  caused by: {source}\n"));
    }
    let report = report.replace(&dir.path().display().to_string(), "[TEMP]");
    insta::assert_snapshot!(report);
}

#[tokio::test]
async fn error_kinds_carry_the_path_callers_act_on() {
    let dir = TempDir::new("error-kinds");
    let missing_dir = dir.path().join("gone");
    let error = spawn(&SpawnSpec {
        cwd: Some(missing_dir.clone()),
        ..sh("true")
    })
    .expect_err("a missing working directory is an error");
    assert_eq!(error.program, os("/bin/sh"));
    assert!(
        matches!(&error.kind, SpawnErrorKind::CwdMissing { dir } if *dir == missing_dir),
        "{error:?}"
    );
    let error = spawn(&SpawnSpec {
        program: os("conductor-test-no-such-program"),
        ..SpawnSpec::default()
    })
    .expect_err("a missing program is an error");
    assert!(
        matches!(error.kind, SpawnErrorKind::NotFoundOnPath),
        "{error:?}"
    );
    // The message is complete on its own line, for logs that do not print the source chain.
    assert!(!error.to_string().ends_with('.'));
}
