//! End-to-end tests of SPEC §7 (command line) for a running instance: the `conductor up`
//! startup and shutdown lines (snapshot, ports and paths redacted), `status --json` parsing as
//! `ServiceStatus[]`, and the client subcommands' output and exit codes. `conductor check` is
//! covered by `cli_check.rs`.

// `pub` so that helpers this file does not use are not dead code.
pub mod support;

use std::process::Output;

use conductor_protocol::{ServiceState, ServiceStatus};
use support::{Conductor, TempDir, conductor_cli, fake_service, free_ports, registry_head};

fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a client subcommand that must succeed; returns its stdout.
fn cli_ok(conductor: &Conductor, args: &[&str]) -> String {
    let output = conductor_cli(&conductor.data_dir, args);
    let (stdout, stderr) = texts(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "conductor {args:?}:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

#[test]
fn up_prints_the_startup_and_shutdown_lines() {
    let dir = TempDir::new("up-output");
    let ports @ [records, ingestion, export, reserved] = free_ports();
    // A chain, so that start and stop order are fully determined.
    let registry = format!(
        r#"{head}
[services.records]
port = {records}
command = {bin}

[services.ingestion]
port = {ingestion}
command = {bin}
depends_on = ["records"]

[services.export]
port = {export}
command = {bin}
depends_on = ["ingestion"]
critical = false

[services.reserved]
port = {reserved}
command = {bin}
enabled = false
"#,
        head = registry_head("OutputTest"),
        bin = fake_service(),
    );
    let mut conductor = Conductor::start(&dir, &registry);
    let url = conductor.info().url.clone();
    cli_ok(&conductor, &["quit"]);
    let status = conductor.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", conductor.output());
    assert_eq!(conductor.stderr(), "");

    let mut stdout = conductor
        .stdout()
        .replace(&url, "http://127.0.0.1:[IPC_PORT]")
        .replace(&conductor.data_dir.display().to_string(), "[DATA]");
    for (name, port) in ["records", "ingestion", "export", "reserved"]
        .iter()
        .zip(ports)
    {
        stdout = stdout.replace(&format!("(port {port})"), &format!("(port [{name}])"));
    }
    insta::assert_snapshot!("up_output", stdout);
}

#[test]
fn client_subcommands_talk_to_the_running_instance() {
    let dir = TempDir::new("clients");
    let [records, export] = free_ports();
    let registry = format!(
        r#"{head}
[services.records]
port = {records}
command = {bin}

[services.export]
port = {export}
command = {bin}
depends_on = ["records"]
critical = false
"#,
        head = registry_head("ClientTest"),
        bin = fake_service(),
    );
    let mut conductor = Conductor::start(&dir, &registry);

    // status --json is exactly services:get-all, as ServiceStatus[].
    let json = cli_ok(&conductor, &["status", "--json"]);
    let statuses: Vec<ServiceStatus> = match serde_json::from_str(&json) {
        Ok(statuses) => statuses,
        Err(error) => panic!("status --json is not ServiceStatus[] ({error}):\n{json}"),
    };
    let names: Vec<(&str, u16, ServiceState)> = statuses
        .iter()
        .map(|s| (s.name.as_str(), s.port, s.status))
        .collect();
    assert_eq!(
        names,
        [
            ("records", records, ServiceState::Running),
            ("export", export, ServiceState::Running)
        ]
    );
    let from_api: Vec<Option<u32>> = conductor.statuses().iter().map(|s| s.pid).collect();
    let from_cli: Vec<Option<u32>> = statuses.iter().map(|s| s.pid).collect();
    assert_eq!(from_cli, from_api);

    let table = cli_ok(&conductor, &["status"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    for column in ["SERVICE", "STATUS", "PID", "PORT", "UPTIME", "RESTARTS"] {
        assert!(header.contains(column), "no {column} in {header:?}");
    }
    for (line, name) in lines.zip(["records", "export"]) {
        assert!(
            line.starts_with(name) && line.contains("running"),
            "{line:?} should show {name} running"
        );
    }

    assert!(cli_ok(&conductor, &["stop", "export"]).contains("✓ export stopped"));
    assert_eq!(conductor.status("export").status, ServiceState::Stopped);
    assert!(cli_ok(&conductor, &["start", "export"]).contains("✓ export started"));
    assert_eq!(conductor.status("export").status, ServiceState::Running);
    let before = conductor.status("records").pid;
    assert!(cli_ok(&conductor, &["restart", "records"]).contains("✓ records restarted"));
    let after = conductor.status("records");
    assert_eq!(after.status, ServiceState::Running);
    assert_ne!(after.pid, before);

    let refused = conductor_cli(&conductor.data_dir, &["start", "nosuch"]);
    let (_, stderr) = texts(&refused);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unknown service \"nosuch\""), "{stderr}");

    let db = cli_ok(&conductor, &["db", "status"]);
    assert!(
        db.contains("initialized: true") && db.contains("version:     2"),
        "{db}"
    );
    let paths = cli_ok(&conductor, &["paths"]);
    assert!(
        paths.contains(&format!("userData  {}", conductor.data_dir.display())),
        "{paths}"
    );
    let logs = cli_ok(&conductor, &["logs", "records", "-n", "50"]);
    assert!(
        logs.lines()
            .any(|line| line.contains("records |") && line.contains("listening on")),
        "{logs}"
    );

    assert!(cli_ok(&conductor, &["quit"]).contains("✓ conductor stopped"));
    assert_eq!(conductor.wait_exit().code(), Some(0));

    // With no instance left, a client says so and exits 1.
    let orphan = conductor_cli(&conductor.data_dir, &["status"]);
    let (_, stderr) = texts(&orphan);
    assert_eq!(orphan.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no conductor is running"), "{stderr}");
}

#[test]
fn up_refuses_an_ipc_port_that_a_service_needs_before_touching_anything() {
    let dir = TempDir::new("ipc-port-of-service");
    let [records] = free_ports();
    let registry = dir.write(
        "conductor.toml",
        &format!(
            "{head}\n[services.records]\nport = {records}\ncommand = {bin}\n",
            head = registry_head("IpcPortTest"),
            bin = fake_service(),
        ),
    );
    let data_dir = dir.join("data");
    let mut up = Conductor::spawn(&registry, &data_dir, &["--ipc-port", &records.to_string()]);
    let status = up.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", up.output());
    assert!(
        up.stderr().contains(&format!(
            "cannot serve the control API on port {records}: the registry gives it to service \
             'records'; choose another port (or 0 to let the OS pick one)"
        )),
        "{}",
        up.output()
    );
    assert_eq!(up.stdout(), "", "something was started");
    assert!(!data_dir.exists(), "the data dir was created");
}

/// Runs `up` with `CONDUCTOR_LOG=<filter>` on a registry whose one service cannot start (so
/// `up` ends by itself) and returns conductor.log.
fn conductor_log_with_filter(name: &str, filter: &str) -> String {
    let dir = TempDir::new(name);
    let [port] = free_ports();
    let registry = dir.write(
        "conductor.toml",
        &format!(
            "{head}\n[services.records]\nport = {port}\ncommand = {missing}\n",
            head = registry_head("LogFilterTest"),
            missing = support::toml_path(&dir.join("no-such-program")),
        ),
    );
    let data_dir = dir.join("data");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_conductor"))
        .arg("up")
        .arg("--registry")
        .arg(&registry)
        .arg("--data-dir")
        .arg(&data_dir)
        .env("CONDUCTOR_LOG", filter)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("conductor runs");
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    std::fs::read_to_string(data_dir.join("logs").join("conductor.log"))
        .expect("conductor.log is written")
}

#[test]
fn conductor_log_follows_the_conductor_log_filter_and_warns_about_a_bad_one() {
    let verbose = conductor_log_with_filter("log-filter-debug", "debug");
    assert!(
        verbose.contains(" DEBUG "),
        "no debug line at CONDUCTOR_LOG=debug:\n{verbose}"
    );

    let quiet = conductor_log_with_filter("log-filter-default", "info");
    assert!(
        !quiet.contains(" DEBUG "),
        "a debug line at CONDUCTOR_LOG=info:\n{quiet}"
    );

    let bad = conductor_log_with_filter("log-filter-bad", "conductor=loud");
    assert!(
        bad.contains("ignoring CONDUCTOR_LOG \"conductor=loud\"") && !bad.contains(" DEBUG "),
        "a bad filter is warned about and info is used:\n{bad}"
    );
}
