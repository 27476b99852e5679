//! The panic policy (ARCHITECTURE.md): a panic in a service's owner task, injected through the
//! `test-faults` feature, leaves that service `failed` with `lastError` saying so and its
//! process group killed, while every other service, the status table, the event stream and
//! a later manual start of the same service keep working.

mod support;

use std::time::Duration;

use conductor_protocol::ServiceState;
use conductor_test_support::{DEADLINE, TempDir, wait_until_async};
use support::{Fleet, alive, svc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_owner_task_fails_its_service_and_nothing_else() {
    let pid_dir = TempDir::new("panic-pids");
    let grandchild_file = pid_dir.join("grandchild.pid");
    let services = [
        svc("victim")
            .env("FAKE_GRANDCHILD", 1)
            .env("FAKE_GRANDCHILD_PID_FILE", grandchild_file.display()),
        svc("bystander"),
    ];
    let fleet = Fleet::new(&services, "").await;
    fleet.conductor.start_all().await.expect("startup succeeds");
    let victim = fleet.status("victim").pid.expect("victim runs");
    let bystander = fleet.status("bystander").pid.expect("bystander runs");
    let grandchild: u32 = wait_until_async(DEADLINE, "the grandchild's pid file", || {
        std::fs::read_to_string(&grandchild_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
    })
    .await;

    fleet
        .conductor
        .inject_panic("victim")
        .await
        .expect("victim is a service");
    let failed = fleet
        .wait_status("victim", "failed after its task panicked", |status| {
            status.status == ServiceState::Failed
        })
        .await;
    let error = failed.last_error.unwrap_or_default();
    assert!(error.contains("panicked"), "{error}");
    assert_eq!(failed.pid, None);
    wait_until_async(DEADLINE, "the victim's process group to be killed", || {
        !alive(victim) && !alive(grandchild)
    })
    .await;

    // Everything else keeps working, with no lock poisoned on the way.
    assert_eq!(fleet.status("bystander").pid, Some(bystander));
    fleet
        .conductor
        .restart("bystander")
        .await
        .expect("another service restarts");
    assert_eq!(fleet.conductor.statuses().len(), 2);
    let _ = fleet.conductor.health();
    let mut events = fleet.conductor.subscribe(None);
    fleet
        .conductor
        .start("victim")
        .await
        .expect("a manual start brings the victim back");
    let restarted = fleet.status("victim");
    assert_eq!(restarted.status, ServiceState::Running);
    assert!(restarted.pid.is_some_and(|pid| pid != victim));
    let event = tokio::time::timeout(Duration::from_secs(30), events.live.recv()).await;
    assert!(
        matches!(event, Ok(Ok(_))),
        "the event stream is alive: {event:?}"
    );
    fleet.conductor.shutdown().await;
}
