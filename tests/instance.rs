//! End-to-end tests of SPEC §4 startup steps 1 and 2: the single-instance lock (a second `up`
//! on the same data dir exits 3 naming the first, touching nothing) and orphan reclaim (the
//! grandchild of a SIGKILLed conductor is killed at the next start, and nothing else is).

// `pub` so that helpers this file does not use are not dead code.
pub mod support;

use conductor_protocol::ServiceState;
use support::{
    Bystander, Conductor, TempDir, fake_service, free_ports, is_gone, read_pid_file, registry_head,
    toml_path, wait_all_gone,
};

fn one_service_registry(dir: &TempDir, port: u16) -> String {
    format!(
        r#"{head}
[services.records]
port = {port}
command = {bin}
env = {{ FAKE_GRANDCHILD = "1", FAKE_GRANDCHILD_PID_FILE = {grandchild} }}
"#,
        head = registry_head("InstanceTest"),
        bin = fake_service(),
        grandchild = toml_path(&dir.join("grandchild.pid")),
    )
}

#[test]
fn second_up_on_the_same_data_dir_exits_3_and_names_the_first() {
    let dir = TempDir::new("second");
    let [port] = free_ports();
    let first = Conductor::start(&dir, &one_service_registry(&dir, port));
    first.track(read_pid_file(&dir.join("grandchild.pid")));
    let records = first.status("records");
    let ipc_before = std::fs::read_to_string(first.data_dir.join("ipc.json")).unwrap_or_default();

    let mut second = Conductor::spawn(&dir.join("conductor.toml"), &first.data_dir, &[]);
    let status = second.wait_exit();
    let stderr = second.stderr();
    assert_eq!(status.code(), Some(3), "{}", second.output());
    assert!(
        stderr.contains(&format!("pid {}", first.pid())) && stderr.contains(&first.info().url),
        "the refusal should name the first instance's pid {} and URL {}:\n{stderr}",
        first.pid(),
        first.info().url
    );
    assert_eq!(second.stdout(), "", "the second instance started something");

    // Nothing of the first was touched.
    let ipc_after = std::fs::read_to_string(first.data_dir.join("ipc.json")).unwrap_or_default();
    assert_eq!(ipc_after, ipc_before);
    let after = first.status("records");
    assert_eq!(after.status, ServiceState::Running);
    assert_eq!(after.pid, records.pid);
    assert_eq!(after.restarts, 0);
}

#[test]
fn grandchild_of_a_sigkilled_conductor_is_reclaimed_at_the_next_start() {
    let dir = TempDir::new("reclaim");
    let [port] = free_ports();
    let bystander = Bystander::sleep();
    let mut first = Conductor::start(&dir, &one_service_registry(&dir, port));
    let grandchild_file = dir.join("grandchild.pid");
    let grandchild = read_pid_file(&grandchild_file);
    let _ = std::fs::remove_file(&grandchild_file);
    first.track(grandchild);
    let service = match first.status("records").pid {
        Some(pid) => pid,
        None => panic!("records has no pid: {}", first.output()),
    };

    first.signal(libc::SIGKILL);
    let status = first.wait_exit();
    assert_eq!(status.code(), None, "conductor should have died of SIGKILL");
    // The service dies with conductor (parent-death signal); its grandchild does not.
    wait_all_gone(&[service], "the service to die with conductor");
    assert!(
        !is_gone(grandchild),
        "the grandchild {grandchild} should outlive a SIGKILLed conductor until the next start"
    );
    assert!(
        first.data_dir.join("run-state.json").exists(),
        "run-state.json should survive a SIGKILL"
    );

    let mut second = Conductor::spawn(&dir.join("conductor.toml"), &first.data_dir, &[]);
    second.wait_up();
    let stdout = second.stdout();
    assert!(
        stdout.contains("✓ Reclaimed orphans of a previous run"),
        "{}",
        second.output()
    );
    // Reclaim finishes (and waits for the kill) before the first service starts.
    assert!(
        is_gone(grandchild),
        "the old grandchild {grandchild} survived the next start:\n{stdout}"
    );
    assert!(
        !is_gone(bystander.pid()),
        "an unrelated process ({}) was killed by orphan reclaim",
        bystander.pid()
    );
    assert!(
        !is_gone(std::process::id()),
        "the test process itself must survive"
    );
    let records = second.status("records");
    assert_eq!(records.status, ServiceState::Running, "{records:?}");
    second.track(read_pid_file(&grandchild_file));
}
