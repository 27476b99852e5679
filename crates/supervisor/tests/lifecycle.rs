//! SPEC §3 and §4 against real fake-service processes: start order, readiness, crash restart,
//! crash loops, health failures, stop escalation, grandchildren, parent death, busy ports,
//! critical and non-critical startup failures, event order, and long idle periods.

mod support;

use std::time::{Duration, Instant};

use conductor_protocol::{Event, ServiceState};
use conductor_supervisor::{ActionError, StartOutcome};
use conductor_test_support::{TempDir, wait_until_async};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_are_running_before_a_dependent_is_spawned() {
    let services = [
        svc("api").with("depends_on = [\"db\", \"cache\"]"),
        svc("db").env("FAKE_START_DELAY_MS", 200),
        svc("cache"),
    ];
    let mut fleet = Fleet::new(&services, "").await;
    let report = fleet.conductor.start_all().await.expect("startup succeeds");
    assert!(
        report
            .services
            .iter()
            .all(|s| s.outcome == StartOutcome::Started),
        "{report:?}"
    );
    let events = fleet.transitions();
    let position = |name: &str, state| {
        events
            .iter()
            .position(|(n, s)| n == name && *s == state)
            .unwrap_or_else(|| panic!("{name} never {state}: {events:?}"))
    };
    let api_starting = position("api", ServiceState::Starting);
    assert!(
        position("db", ServiceState::Running) < api_starting,
        "{events:?}"
    );
    assert!(
        position("cache", ServiceState::Running) < api_starting,
        "{events:?}"
    );
    fleet.conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_starting_service_becomes_running_once_ready() {
    let services = [svc("slow").env("FAKE_START_DELAY_MS", 300)];
    let fleet = Fleet::new(&services, "").await;
    let started = Instant::now();
    fleet.conductor.start("slow").await.expect("starts");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "ready before the service listened"
    );
    let status = fleet.status("slow");
    assert_eq!(status.status, ServiceState::Running);
    assert!(status.pid.is_some());
    fleet.conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_sigkill_becomes_running_again_with_a_new_pid() {
    let services = [svc("records")];
    let mut fleet = Fleet::new(&services, "").await;
    fleet.conductor.start_all().await.expect("startup succeeds");
    let old = fleet.status("records").pid.expect("running has a pid");
    sigkill(old);
    fleet
        .wait_event("service:error for the crash", |event| {
            matches!(event, Event::ServiceError { error, .. } if error.contains("signal 9"))
        })
        .await;
    let status = fleet
        .wait_status("records", "running with a new pid", |s| {
            s.status == ServiceState::Running && s.pid.is_some_and(|pid| pid != old)
        })
        .await;
    assert_eq!(status.restarts, 1);
    wait_gone(&[old], Duration::from_secs(5)).await;
    fleet.conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_restarts_exactly_max_retries_times_then_fails() {
    // Exits 50 ms after start: it becomes ready first, so every round is a real crash.
    let services = [svc("crashy")
        .with("critical = false")
        .env("FAKE_EXIT_AFTER_MS", 150)
        .env("FAKE_EXIT_CODE", 7)];
    let mut fleet = Fleet::new(&services, "").await;
    let _ = fleet.conductor.start("crashy").await;
    fleet
        .wait_event("crashy failed", |event| {
            matches!(event, Event::ServiceStatusChanged { status, .. } if status.status == ServiceState::Failed)
        })
        .await;
    let pids: std::collections::BTreeSet<u32> = fleet
        .drain_states("crashy")
        .iter()
        .filter_map(|(_, pid)| *pid)
        .collect();
    assert_eq!(
        pids.len(),
        3,
        "one start plus max_retries = 2 restarts: {pids:?}"
    );
    let status = fleet.status("crashy");
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("exit code 7"),
        "{status:?}"
    );
    // No further spawn: within several backoff cycles, no status change follows `failed`
    // (the crash's own `service:error`, emitted after the state change, may still arrive).
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(received) = tokio::time::timeout_at(deadline, fleet.events.live.recv()).await {
        let event = received.expect("event stream open").event.clone();
        assert!(
            !matches!(event, Event::ServiceStatusChanged { .. }),
            "a status change after failed: {event:?}"
        );
    }
    assert_eq!(fleet.status("crashy").status, ServiceState::Failed);
    fleet.conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_health_checks_make_it_unhealthy_then_restart_it() {
    let services = [svc("flaky").env("FAKE_HEALTH_FAIL_AFTER_REQUESTS", 3)];
    let mut fleet = Fleet::new(&services, "").await;
    fleet.conductor.start("flaky").await.expect("starts");
    let old = fleet.status("flaky").pid.unwrap();
    fleet
        .wait_event("flaky unhealthy", |event| {
            matches!(event, Event::ServiceStatusChanged { status, .. } if status.status == ServiceState::Unhealthy)
        })
        .await;
    fleet
        .wait_status("flaky", "running again with a new pid", |s| {
            s.status == ServiceState::Running && s.pid != Some(old)
        })
        .await;
    let error = fleet.status("flaky").last_error.unwrap();
    assert!(error.contains("health check failed 2 times"), "{error}");
    fleet.conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_ignoring_service_is_killed_after_stop_timeout() {
    let services = [svc("stubborn")
        .with("stop_timeout = \"400ms\"")
        .env("FAKE_IGNORE_SIGTERM", 1)];
    let fleet = Fleet::new(&services, "").await;
    fleet.conductor.start("stubborn").await.expect("starts");
    let pid = fleet.status("stubborn").pid.unwrap();
    let started = Instant::now();
    fleet.conductor.stop("stubborn").await.expect("stops");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "stopped before stop_timeout"
    );
    assert!(!alive(pid), "still alive after stop returned");
    assert_eq!(fleet.status("stubborn").status, ServiceState::Stopped);
    fleet.conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grandchild_is_gone_after_stop() {
    let dir = TempDir::new("grandchild");
    let pid_file = dir.join("grandchild.pid");
    let services = [svc("forker")
        .env("FAKE_GRANDCHILD", 1)
        .env("FAKE_GRANDCHILD_PID_FILE", pid_file.display())];
    let fleet = Fleet::new(&services, "").await;
    fleet.conductor.start("forker").await.expect("starts");
    let grandchild: u32 =
        wait_until_async(Duration::from_secs(10), "the grandchild's pid file", || {
            std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.trim().parse().ok())
        })
        .await;
    assert!(alive(grandchild));
    fleet.conductor.stop("forker").await.expect("stops");
    wait_gone(&[grandchild], Duration::from_secs(5)).await;
    fleet.conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_fails_the_start_naming_the_holder() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let mut service = svc("blocked").with("critical = false");
    service.port = port;
    let fleet = Fleet::new(&[service], "").await;
    let err = fleet.conductor.start("blocked").await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!("port {port} is already in use")),
        "{message}"
    );
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    assert_eq!(fleet.status("blocked").status, ServiceState::Failed);
    fleet.conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_failure_aborts_startup_and_stops_what_started() {
    let services = [
        svc("base"),
        svc("broken")
            .with("depends_on = [\"base\"]")
            .env("FAKE_EXIT_AFTER_MS", 0)
            .env("FAKE_EXIT_CODE", 4),
        svc("other"),
    ];
    let fleet = Fleet::new(&services, "").await;
    let err = fleet.conductor.start_all().await.unwrap_err();
    assert_eq!(err.service, "broken");
    let message = err.to_string();
    assert!(message.contains("exit code 4"), "{message}");
    assert!(message.contains("last log lines"), "{message}");
    for name in ["base", "other", "broken"] {
        let status = fleet.status(name);
        assert!(
            status.pid.is_none(),
            "{name} still has a process: {status:?}"
        );
        assert!(
            matches!(status.status, ServiceState::Stopped | ServiceState::Failed),
            "{status:?}"
        );
    }
    fleet.conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_critical_failure_leaves_the_rest_running() {
    let services = [
        svc("core"),
        svc("optional")
            .with("critical = false")
            .env("FAKE_EXIT_AFTER_MS", 0),
        svc("needs-optional").with("critical = false\ndepends_on = [\"optional\"]"),
    ];
    let fleet = Fleet::new(&services, "").await;
    let report = fleet
        .conductor
        .start_all()
        .await
        .expect("startup continues");
    let outcome = |name: &str| {
        report
            .services
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .outcome
            .clone()
    };
    assert_eq!(outcome("core"), StartOutcome::Started);
    assert!(matches!(outcome("optional"), StartOutcome::Failed(_)));
    assert!(
        matches!(outcome("needs-optional"), StartOutcome::Failed(reason) if reason.to_string().contains("dependency \"optional\""))
    );
    assert_eq!(fleet.status("core").status, ServiceState::Running);
    let health = fleet.conductor.health();
    assert_eq!(health.status, conductor_protocol::AppHealthStatus::Degraded);
    assert_eq!(health.failing, ["optional", "needs-optional"]);
    fleet.conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_one_service_arrive_in_lifecycle_order() {
    let services = [svc("ordered")];
    let mut fleet = Fleet::new(&services, "").await;
    fleet.conductor.start("ordered").await.unwrap();
    fleet.conductor.restart("ordered").await.unwrap();
    fleet.conductor.stop("ordered").await.unwrap();
    let mut states: Vec<ServiceState> = fleet
        .drain_states("ordered")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    // A pid appearing within `starting` is an event of its own; the order of states is what
    // this test is about.
    states.dedup();
    use ServiceState::*;
    assert_eq!(
        states,
        [
            Starting, Running, Stopping, Starting, Running, Stopping, Stopped
        ]
    );
    fleet.conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_is_idempotent_and_concurrent_requests_are_serialised() {
    let services = [svc("single")];
    let fleet = Fleet::new(&services, "").await;
    let (a, b, c) = tokio::join!(
        fleet.conductor.start("single"),
        fleet.conductor.start("single"),
        fleet.conductor.start("single")
    );
    assert!(a.is_ok() && b.is_ok() && c.is_ok());
    let pid = fleet.status("single").pid.unwrap();
    fleet.conductor.start("single").await.unwrap();
    assert_eq!(
        fleet.status("single").pid,
        Some(pid),
        "a second start spawned again"
    );
    let (stop, restart) = tokio::join!(
        fleet.conductor.stop("single"),
        fleet.conductor.restart("single")
    );
    assert!(stop.is_ok() && restart.is_ok(), "{stop:?} {restart:?}");
    let status = fleet.status("single");
    assert!(
        status.status == ServiceState::Running || status.status == ServiceState::Stopped,
        "{status:?}"
    );
    fleet.conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_disabled_services_are_refused_with_a_reason() {
    let services = [svc("on"), svc("off").with("enabled = false")];
    let fleet = Fleet::new(&services, "").await;
    let err = fleet.conductor.start("nope").await.unwrap_err();
    assert!(matches!(err, ActionError::UnknownService(_)), "{err}");
    assert!(
        err.to_string()
            .contains("services in this registry: on, off"),
        "{err}"
    );
    let err = fleet.conductor.start("off").await.unwrap_err();
    assert!(
        err.to_string().contains("disabled in the registry"),
        "{err}"
    );
    assert_eq!(fleet.status("off").status, ServiceState::Disabled);
    fleet.conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_in_reverse_dependency_order_without_waiting_behind_a_slow_peer() {
    let services = [
        svc("base"),
        svc("slow")
            .with("depends_on = [\"base\"]\nstop_timeout = \"1s\"")
            .env("FAKE_IGNORE_SIGTERM", 1),
        svc("quick").with("depends_on = [\"base\"]"),
    ];
    let fleet = Fleet::new(&services, "").await;
    fleet.conductor.start_all().await.unwrap();
    let pids: Vec<u32> = ["base", "slow", "quick"]
        .iter()
        .map(|n| fleet.status(n).pid.unwrap())
        .collect();
    let started = Instant::now();
    let report = fleet.conductor.shutdown().await;
    let elapsed = started.elapsed();
    let order: Vec<&str> = report.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(order, ["slow", "quick", "base"]);
    assert!(
        elapsed < Duration::from_millis(2900),
        "stops were serialised: {elapsed:?}"
    );
    assert!(report.database_closed);
    wait_gone(&pids, Duration::from_secs(1)).await;
}

/// The parent-death signal follows the thread that spawned the child: a service must survive
/// the runtime retiring its idle blocking threads (10 s by default), because children are
/// spawned from worker threads only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_left_alone_past_the_idle_thread_lifetime_is_still_running() {
    let services = [svc("patient")];
    let fleet = Fleet::new(&services, "").await;
    fleet.conductor.start("patient").await.unwrap();
    let pid = fleet.status("patient").pid.unwrap();
    // This wait is the condition under test: time passing with nothing happening.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(alive(pid), "the service died while idle");
    assert_eq!(fleet.status("patient").status, ServiceState::Running);
    assert_eq!(fleet.status("patient").pid, Some(pid));
    fleet.conductor.shutdown().await;
}

const PARENT_ROLE: &str = "CONDUCTOR_TEST_SUPERVISOR_ROLE";

/// Run as a child of the test below (selected by `PARENT_ROLE`): starts a fleet, prints the
/// service pids, then waits to be SIGKILLed. As a normal test it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_parent_role() {
    if std::env::var_os(PARENT_ROLE).is_none() {
        return;
    }
    let services = [
        svc("one"),
        svc("two").with("depends_on = [\"one\"]"),
        svc("three"),
    ];
    let fleet = Fleet::new(&services, "").await;
    // SIGKILLed, this process never drops its temp dir: the test below removes it.
    println!("FLEET_DIR {}", fleet.dir.path().display());
    fleet.conductor.start_all().await.expect("startup succeeds");
    let pids: Vec<String> = ["one", "two", "three"]
        .iter()
        .map(|name| fleet.status(name).pid.unwrap().to_string())
        .collect();
    println!("PIDS {}", pids.join(" "));
    std::future::pending::<()>().await;
}

#[test]
fn a_sigkilled_supervisor_takes_its_services_with_it() {
    use std::io::BufRead;
    let mut parent = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "supervisor_parent_role",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(PARENT_ROLE, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the parent even if an assertion below fails.
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            sigkill(self.0);
        }
    }
    let _guard = KillOnDrop(parent.id());
    let stdout = std::io::BufReader::new(parent.stdout.take().unwrap());
    // libtest prints `test name ... ` without a newline first, so a marker may be mid-line.
    let mut fleet_dir = None;
    let pids: Vec<u32> = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            if let Some((_, dir)) = line.split_once("FLEET_DIR ") {
                fleet_dir = Some(std::path::PathBuf::from(dir));
            }
            line.split_once("PIDS ")
                .map(|(_, rest)| rest.split(' ').map(|p| p.parse().unwrap()).collect())
        })
        .expect("the parent printed its service pids");
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|&pid| alive(pid)));
    sigkill(parent.id());
    parent.wait().unwrap();
    if let Some(dir) = fleet_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(wait_gone(&pids, Duration::from_secs(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_startup_starts_one_service_at_a_time_in_file_order() {
    let services = [
        svc("first").env("FAKE_START_DELAY_MS", 100),
        svc("second"),
        svc("third"),
    ];
    let mut fleet = Fleet::new(&services, "startup = \"sequential\"").await;
    fleet.conductor.start_all().await.expect("startup succeeds");
    let transitions = fleet.transitions();
    use ServiceState::*;
    let expected: Vec<(String, ServiceState)> = ["first", "second", "third"]
        .iter()
        .flat_map(|name| [(name.to_string(), Starting), (name.to_string(), Running)])
        .collect();
    assert_eq!(transitions, expected, "not one at a time in file order");
    fleet.conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_with_different_data_dirs_work_side_by_side() {
    let first = Fleet::new(&[svc("alpha")], "").await;
    let second = Fleet::new(&[svc("alpha")], "").await;
    let (a, b) = tokio::join!(first.conductor.start_all(), second.conductor.start_all());
    a.expect("first fleet starts");
    b.expect("second fleet starts");
    let (pid_a, pid_b) = (
        first.status("alpha").pid.unwrap(),
        second.status("alpha").pid.unwrap(),
    );
    assert_ne!(pid_a, pid_b);
    assert_ne!(
        first.conductor.database_path(),
        second.conductor.database_path()
    );
    first.conductor.shutdown().await;
    assert!(!alive(pid_a));
    assert!(alive(pid_b), "stopping one fleet touched the other");
    assert_eq!(second.status("alpha").status, ServiceState::Running);
    second.conductor.shutdown().await;
}

/// Issue 12: requests waiting for one service are bounded; one more is refused at once with a
/// message, and the waiting ones are all answered when the service settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_requests_for_one_service_are_bounded() {
    let services = [svc("slow").env("FAKE_START_DELAY_MS", 1500)];
    let fleet = Fleet::new(&services, "").await;
    let mut waiting = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let conductor = fleet.conductor.clone();
        waiting.spawn(async move { conductor.start("slow").await });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(joined) = waiting.join_next().await {
        match joined.expect("no request task panics") {
            Ok(()) => ok += 1,
            Err(error) => {
                assert!(error.to_string().contains("already waiting"), "{error}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "200 waiters were all accepted");
    assert!((1..=128).contains(&ok), "{ok} answered ok");
    assert_eq!(fleet.status("slow").status, ServiceState::Running);
    fleet.conductor.shutdown().await;
}
