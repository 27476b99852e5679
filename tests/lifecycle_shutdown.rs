//! End-to-end tests of shutdown (SPEC §4 "Shutdown", §7 `conductor quit`): SIGTERM, `app:quit`
//! through the CLI and the window command's exit each stop the whole fleet (grandchildren and a
//! service that ignores SIGTERM included), remove `ipc.json`, release the lock and exit 0; a
//! second SIGINT during a slow stop kills everything at once and exits 1.

// `pub` so that helpers this file does not use are not dead code.
pub mod support;

use std::path::Path;

use conductor_protocol::ServiceState;
use support::{
    Conductor, DEADLINE, TempDir, conductor_cli, fake_service, free_ports, is_gone, read_pid_file,
    registry_head, toml_path, toml_string, wait_all_gone, wait_until,
};

/// `records` forks a grandchild that ignores SIGTERM, `export` shuts down slowly, `stubborn`
/// ignores SIGTERM: only the group SIGKILL after a (short) stop_timeout ends the grandchild and
/// `stubborn`.
fn stubborn_registry(dir: &TempDir, [records, export, stubborn]: [u16; 3]) -> String {
    format!(
        r#"{head}
[services.records]
port = {records}
command = {bin}
stop_timeout = "300ms"
env = {{ FAKE_GRANDCHILD = "1", FAKE_GRANDCHILD_PID_FILE = {grandchild} }}

[services.export]
port = {export}
command = {bin}
depends_on = ["records"]
env = {{ FAKE_SHUTDOWN_DELAY_MS = "200" }}

[services.stubborn]
port = {stubborn}
command = {bin}
critical = false
stop_timeout = "300ms"
env = {{ FAKE_IGNORE_SIGTERM = "1" }}
"#,
        head = registry_head("ShutdownTest"),
        bin = fake_service(),
        grandchild = toml_path(&dir.join("grandchild.pid")),
    )
}

/// Every fleet pid: the services' and the grandchild's (whose pid file is removed first, so a
/// later run's grandchild is not confused with this one's).
fn fleet_pids(conductor: &Conductor, dir: &TempDir) -> Vec<u32> {
    let grandchild_file = dir.join("grandchild.pid");
    let grandchild = read_pid_file(&grandchild_file);
    let _ = std::fs::remove_file(&grandchild_file);
    conductor.track(grandchild);
    let mut pids: Vec<u32> = conductor.statuses().iter().filter_map(|s| s.pid).collect();
    assert_eq!(pids.len(), 3, "every service should have a pid");
    pids.push(grandchild);
    for &pid in &pids {
        assert!(
            !is_gone(pid),
            "fleet process {pid} should be alive before shutdown"
        );
    }
    pids
}

fn assert_clean_exit(conductor: &mut Conductor, reason: &str) {
    let status = conductor.wait_exit();
    let output = conductor.output();
    assert_eq!(status.code(), Some(0), "{output}");
    for line in [
        format!("  reason: {reason}"),
        "✓ Records Service stopped".to_owned(),
        "✓ Export Service stopped".to_owned(),
        "✓ Stubborn Service stopped".to_owned(),
        "✓ Database connections closed".to_owned(),
        "✓ Logs flushed".to_owned(),
        "✓ Exiting".to_owned(),
    ] {
        assert!(
            conductor.stdout().contains(&line),
            "no {line:?} in:\n{output}"
        );
    }
    assert_eq!(conductor.stderr(), "", "{output}");
    let data = &conductor.data_dir;
    for file in ["ipc.json", "run-state.json"] {
        assert!(
            !data.join(file).exists(),
            "{file} left behind after a clean exit"
        );
    }
    // conductor's own log is written through a non-blocking appender: its last lines only
    // reach the file if the appender is flushed on exit.
    let own_log = std::fs::read_to_string(data.join("logs").join("conductor.log"))
        .expect("conductor.log exists after a clean exit");
    let last = own_log.lines().last().unwrap_or_default();
    assert!(own_log.contains("shutting down"), "{own_log}");
    assert!(
        own_log.contains(reason),
        "the shutdown reason is not in conductor.log:\n{own_log}"
    );
    assert!(
        last.contains("conductor exiting"),
        "conductor.log was not flushed on exit; its last line: {last:?}"
    );
}

#[test]
fn sigterm_then_quit_stop_every_process_and_release_the_lock() {
    let dir = TempDir::new("sigterm");
    let ports = free_ports();
    let mut first = Conductor::start(&dir, &stubborn_registry(&dir, ports));
    let fleet = fleet_pids(&first, &dir);

    first.signal(libc::SIGTERM);
    assert_clean_exit(&mut first, "SIGTERM");
    wait_all_gone(
        &fleet,
        "every fleet process (grandchild included) after SIGTERM",
    );

    // The lock is released: a new `up` on the same data dir starts; `conductor quit` stops it.
    let mut second = Conductor::spawn(&dir.join("conductor.toml"), &dir.join("data"), &[]);
    second.wait_up();
    assert!(
        !second.stdout().contains("Reclaimed orphans"),
        "a clean exit left orphans to reclaim:\n{}",
        second.output()
    );
    let fleet = fleet_pids(&second, &dir);
    let quit = conductor_cli(&second.data_dir, &["quit"]);
    let quit_stdout = String::from_utf8_lossy(&quit.stdout);
    assert_eq!(
        quit.status.code(),
        Some(0),
        "conductor quit: {quit_stdout}{}",
        String::from_utf8_lossy(&quit.stderr)
    );
    assert!(quit_stdout.contains("✓ conductor stopped"), "{quit_stdout}");
    assert_clean_exit(&mut second, "app:quit");
    wait_all_gone(
        &fleet,
        "every fleet process (grandchild included) after quit",
    );
}

#[test]
fn window_gets_the_control_api_and_its_exit_shuts_the_app_down() {
    let dir = TempDir::new("window");
    let [records] = free_ports();
    let seen = dir.join("window.env");
    let release = dir.join("close-window");
    // The window records what it was given, then stays open until the test closes it.
    let script = format!(
        "printf '%s %s' \"$CONDUCTOR_IPC_URL\" \"$CONDUCTOR_IPC_TOKEN\" > {seen}.tmp && \
         mv {seen}.tmp {seen}; while [ ! -e {release} ]; do sleep 0.02; done",
        seen = shell_quote(&seen),
        release = shell_quote(&release),
    );
    let head = registry_head("WindowTest").replace(
        "startup = \"dependency\"\n",
        &format!(
            "startup = \"dependency\"\nwindow = {{ command = \"sh\", args = [\"-c\", {}] }}\n",
            toml_string(&script)
        ),
    );
    let registry = format!(
        "{head}\n[services.records]\nport = {records}\ncommand = {bin}\n",
        bin = fake_service()
    );
    let mut conductor = Conductor::start(&dir, &registry);
    let records_pid = conductor.status("records").pid;

    let given = wait_until(DEADLINE, "the window to write its environment", || {
        std::fs::read_to_string(&seen).map_err(|e| e.to_string())
    });
    let info = conductor.info();
    assert_eq!(given, format!("{} {}", info.url, info.token));
    assert!(
        conductor.stdout().contains("✓ Creating window"),
        "{}",
        conductor.output()
    );
    // While the window is open the app keeps running.
    assert!(conductor.try_exit().is_none(), "{}", conductor.output());
    assert_eq!(conductor.status("records").status, ServiceState::Running);
    conductor.track_fleet();
    let fleet = conductor.tracked_pids();
    assert!(
        fleet.len() >= 2,
        "run-state.json should list the service and the window: {fleet:?}"
    );

    if let Err(error) = std::fs::write(&release, "") {
        panic!("cannot close the window: {error}");
    }
    let status = conductor.wait_exit();
    let output = conductor.output();
    assert_eq!(status.code(), Some(0), "{output}");
    for line in [
        "  reason: the window exited",
        "✓ Records Service stopped",
        "✓ Exiting",
    ] {
        assert!(
            conductor.stdout().contains(line),
            "no {line:?} in:\n{output}"
        );
    }
    assert!(!conductor.data_dir.join("ipc.json").exists());
    let mut gone: Vec<u32> = fleet;
    gone.extend(records_pid);
    wait_all_gone(&gone, "the service and the window after the window exited");
}

/// `path` in single quotes for `sh` (test paths hold no single quote; checked).
fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    assert!(!text.contains('\''), "temp path {text:?} holds a quote");
    format!("'{text}'")
}

#[test]
fn second_sigint_during_a_slow_stop_kills_every_group_and_exits_1() {
    let dir = TempDir::new("sigint");
    let [port] = free_ports();
    // It ignores SIGTERM and would be SIGKILLed only after 60 s: the second signal must end it.
    let registry = format!(
        "{head}\n[services.stubborn]\nport = {port}\ncommand = {bin}\nstop_timeout = \"60s\"\n\
         env = {{ FAKE_IGNORE_SIGTERM = \"1\" }}\n",
        head = registry_head("SigintTest"),
        bin = fake_service(),
    );
    let mut conductor = Conductor::start(&dir, &registry);
    let pid = match conductor.status("stubborn").pid {
        Some(pid) => pid,
        None => panic!("stubborn has no pid: {}", conductor.output()),
    };

    conductor.signal(libc::SIGINT);
    wait_until(DEADLINE, "the graceful stop to begin", || {
        let stdout = conductor.stdout();
        if stdout.contains("  reason: SIGINT") {
            Ok(())
        } else {
            Err(stdout)
        }
    });
    assert!(
        !is_gone(pid),
        "stubborn ignores SIGTERM and should still run"
    );
    conductor.signal(libc::SIGINT);
    let status = conductor.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", conductor.output());
    assert!(
        conductor.stderr().contains("interrupted twice"),
        "{}",
        conductor.output()
    );
    wait_all_gone(&[pid], "the stubborn service after the second SIGINT");
}

/// Issue 12: the switch that once broke the group kill for the gates' self-test is a build
/// feature now; the shipped binary ignores the variable, and the grandchild dies with its
/// service as always.
#[test]
fn a_test_switch_in_the_environment_changes_nothing() {
    let dir = TempDir::new("no-test-switch");
    let registry = dir.write("conductor.toml", &stubborn_registry(&dir, free_ports()));
    let mut conductor = Conductor::spawn_with_env(
        &registry,
        &dir.join("data"),
        &[],
        &[("CONDUCTOR_TEST_DISABLE_GROUP_KILL", "1")],
    );
    conductor.wait_up();
    let fleet = fleet_pids(&conductor, &dir);
    conductor.signal(libc::SIGTERM);
    assert_eq!(
        conductor.wait_exit().code(),
        Some(0),
        "{}",
        conductor.output()
    );
    wait_all_gone(&fleet, "every fleet process, the grandchild included");
}
