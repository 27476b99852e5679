//! Probes against real processes: fake-service instances on free ports, plain TCP listeners
//! that never answer, and real commands for exec probes.
//! Every process a test starts is in its own group, killed and reaped when its guard drops.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use conductor_health::{NotReady, Probe, ProbeOutcome, Prober};
use conductor_test_support::{
    DEADLINE, GroupGuard, TempDir, free_port, http, process, wait_until_async,
};
use nix::{sys::signal, unistd::Pid};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running fake-service; its process group is SIGKILLed and the child reaped on drop.
struct FakeService {
    _guard: GroupGuard,
    port: u16,
}

impl FakeService {
    /// Starts fake-service on a free port (no database) and waits until it accepts connections.
    async fn start(env: &[(&str, &str)]) -> FakeService {
        let service = FakeService::spawn(env);
        service.wait_listening().await;
        service
    }

    /// Starts fake-service on a free port without waiting for it.
    fn spawn(env: &[(&str, &str)]) -> FakeService {
        let port = free_port();
        let mut command = Command::new(fake_service::binary());
        command
            .env("PORT", port.to_string())
            .env("FAKE_REQUIRE_DB", "0")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let guard = GroupGuard::spawn(&mut command).expect("fake-service starts");
        FakeService {
            _guard: guard,
            port,
        }
    }

    async fn wait_listening(&self) {
        let port = self.port;
        wait_until_async(DEADLINE, "fake-service accepts connections", || {
            TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|err| err.to_string())
        })
        .await;
    }

    fn http(&self) -> Probe {
        Probe::Http {
            port: self.port,
            path: "/health".to_owned(),
        }
    }

    /// `GET /info` of this instance, as JSON.
    fn info(&self) -> serde_json::Value {
        http::get(
            SocketAddr::from(([127, 0, 0, 1], self.port)),
            "/info",
            DEADLINE,
        )
        .and_then(|response| response.json())
        .expect("/info answers JSON")
    }
}

/// A server that accepts connections and reads from them but never answers.
async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            // Keep reading so the client's request is taken, but never write a byte back.
            let reader = tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
            held.push(reader);
        }
    });
    (port, task)
}

/// A server that answers every request with `response` (raw bytes) and closes.
async fn canned_server(response: Vec<u8>) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(&response).await;
            });
        }
    });
    (port, task)
}

fn unhealthy(reason: &str) -> ProbeOutcome {
    ProbeOutcome::Unhealthy(reason.to_owned())
}

#[tokio::test]
async fn http_ok_is_healthy() {
    let service = FakeService::start(&[]).await;
    let outcome = Prober::new()
        .probe(&service.http(), PROBE_TIMEOUT, "id")
        .await;
    assert_eq!(outcome, ProbeOutcome::Healthy);
}

#[tokio::test]
async fn http_degraded_is_up_but_degraded() {
    let service = FakeService::start(&[("FAKE_HEALTH_STATUS", "degraded")]).await;
    let outcome = Prober::new()
        .probe(&service.http(), PROBE_TIMEOUT, "id")
        .await;
    assert_eq!(
        outcome,
        ProbeOutcome::Degraded(r#"GET /health reported status "degraded""#.to_owned())
    );
    assert!(outcome.is_up());
}

#[tokio::test]
async fn http_503_is_unhealthy() {
    let service = FakeService::start(&[("FAKE_HEALTH_STATUS", "unhealthy")]).await;
    let outcome = Prober::new()
        .probe(&service.http(), PROBE_TIMEOUT, "id")
        .await;
    assert_eq!(outcome, unhealthy("GET /health answered 503"));
}

#[tokio::test]
async fn http_json_status_other_than_ok_is_unhealthy() {
    let service = FakeService::start(&[("FAKE_HEALTH_BODY", r#"{"status":"starting"}"#)]).await;
    let outcome = Prober::new()
        .probe(&service.http(), PROBE_TIMEOUT, "id")
        .await;
    assert_eq!(
        outcome,
        unhealthy(r#"GET /health reported status "starting""#)
    );
}

#[tokio::test]
async fn http_2xx_with_a_plain_body_is_healthy() {
    let service = FakeService::start(&[("FAKE_HEALTH_BODY", "pong")]).await;
    let outcome = Prober::new()
        .probe(&service.http(), PROBE_TIMEOUT, "id")
        .await;
    assert_eq!(outcome, ProbeOutcome::Healthy);
}

#[tokio::test]
async fn http_status_changes_are_seen_over_a_reused_connection() {
    let service = FakeService::start(&[("FAKE_HEALTH_FAIL_AFTER_REQUESTS", "2")]).await;
    let prober = Prober::new();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(prober.probe(&service.http(), PROBE_TIMEOUT, "id").await);
    }
    assert_eq!(
        outcomes,
        [
            ProbeOutcome::Healthy,
            ProbeOutcome::Healthy,
            unhealthy("GET /health answered 503")
        ]
    );
    assert_eq!(service.info()["healthRequests"], 3);
}

#[tokio::test]
async fn http_large_2xx_body_is_not_read_in_full_and_is_healthy() {
    let body = vec![b'{'; 1 << 20];
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    let (port, server) = canned_server(response).await;
    let probe = Probe::Http {
        port,
        path: "/health".to_owned(),
    };
    let outcome = Prober::new().probe(&probe, PROBE_TIMEOUT, "id").await;
    server.abort();
    assert_eq!(outcome, ProbeOutcome::Healthy);
}

#[tokio::test]
async fn http_server_that_never_answers_times_out() {
    let (port, server) = silent_server().await;
    let probe = Probe::Http {
        port,
        path: "/health".to_owned(),
    };
    let outcome = tokio::time::timeout(
        DEADLINE,
        Prober::new().probe(&probe, Duration::from_millis(300), "id"),
    )
    .await
    .expect("the probe's own timeout ends it first");
    server.abort();
    assert_eq!(outcome, unhealthy("timed out after 300ms"));
}

#[tokio::test]
async fn refused_connections_are_reported_as_such() {
    let port = free_port();
    let prober = Prober::new();
    let http = Probe::Http {
        port,
        path: "/health".to_owned(),
    };
    assert_eq!(
        prober.probe(&http, PROBE_TIMEOUT, "id").await,
        unhealthy("connection refused")
    );
    let tcp = Probe::Tcp { port };
    assert_eq!(
        prober.probe(&tcp, PROBE_TIMEOUT, "id").await,
        unhealthy("connection refused")
    );
}

#[tokio::test]
async fn a_service_listening_on_ipv6_loopback_only_is_found() {
    let port = free_port();
    let mut command = Command::new(fake_service::binary());
    command
        .env("PORT", port.to_string())
        .env("FAKE_REQUIRE_DB", "0")
        .env("FAKE_HOST", "::1")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let service = FakeService {
        _guard: GroupGuard::spawn(&mut command).expect("fake-service starts"),
        port,
    };
    wait_until_async(
        DEADLINE,
        "fake-service accepts connections on [::1]",
        || {
            TcpStream::connect(("::1", port))
                .map(drop)
                .map_err(|err| err.to_string())
        },
    )
    .await;
    let prober = Prober::new();
    assert_eq!(
        prober.probe(&service.http(), PROBE_TIMEOUT, "id").await,
        ProbeOutcome::Healthy
    );
    assert_eq!(
        prober
            .probe(&Probe::Tcp { port }, PROBE_TIMEOUT, "id")
            .await,
        ProbeOutcome::Healthy
    );
}

#[tokio::test]
async fn tcp_up_then_down() {
    let service = FakeService::start(&[]).await;
    let probe = Probe::Tcp { port: service.port };
    let prober = Prober::new();
    assert_eq!(
        prober.probe(&probe, PROBE_TIMEOUT, "id").await,
        ProbeOutcome::Healthy
    );
    drop(service);
    assert_eq!(
        prober.probe(&probe, PROBE_TIMEOUT, "id").await,
        unhealthy("connection refused")
    );
}

fn exec(program: &str, args: &[&str]) -> Probe {
    Probe::Exec {
        program: program.to_owned(),
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        cwd: None,
        marker: None,
    }
}

#[tokio::test]
async fn exec_exit_code_decides() {
    let prober = Prober::new();
    assert_eq!(
        prober.probe(&exec("true", &[]), PROBE_TIMEOUT, "id").await,
        ProbeOutcome::Healthy
    );
    assert_eq!(
        prober.probe(&exec("false", &[]), PROBE_TIMEOUT, "id").await,
        unhealthy("`false` exited with code 1")
    );
    assert_eq!(
        prober
            .probe(
                &exec("sh", &["-c", "echo 'disk full' >&2; exit 3"]),
                PROBE_TIMEOUT,
                "id"
            )
            .await,
        unhealthy("`sh` exited with code 3: disk full")
    );
    let missing = prober
        .probe(&exec("/nonexistent/probe", &[]), PROBE_TIMEOUT, "id")
        .await;
    let reason = missing.reason().expect("unhealthy");
    assert!(
        reason.starts_with("cannot run `/nonexistent/probe`: "),
        "{reason}"
    );
}

#[tokio::test]
async fn exec_gets_its_cwd_and_the_correlation_id() {
    let dir = TempDir::new("exec-cwd");
    std::fs::write(dir.path().join("marker"), "").expect("write the marker");
    let probe = Probe::Exec {
        program: "sh".to_owned(),
        args: vec![
            "-c".to_owned(),
            r#"test -f marker && test "$CONDUCTOR_CORRELATION_ID" = c-7"#.to_owned(),
        ],
        cwd: Some(dir.path().to_owned()),
        marker: None,
    };
    assert_eq!(
        Prober::new().probe(&probe, PROBE_TIMEOUT, "c-7").await,
        ProbeOutcome::Healthy
    );
    assert!(
        !Prober::new()
            .probe(&probe, PROBE_TIMEOUT, "c-8")
            .await
            .is_up()
    );
}

fn is_gone(pid: i32) -> Result<(), String> {
    match signal::kill(Pid::from_raw(pid), None) {
        Err(nix::errno::Errno::ESRCH) => Ok(()),
        other => {
            // Killed but not yet reaped by its new parent counts as gone.
            match u32::try_from(pid).ok().and_then(process::stat) {
                Some(stat) if stat.has_exited() => Ok(()),
                stat => Err(format!(
                    "pid {pid} still exists (kill(0): {other:?}; stat: {stat:?})"
                )),
            }
        }
    }
}

#[tokio::test]
async fn exec_that_hangs_is_killed_with_its_children_on_timeout() {
    let dir = TempDir::new("exec-hang");
    let pid_file = dir.path().join("sleeper.pid");
    let script = format!(
        "sleep 300 & echo $! > {}.tmp; mv {0}.tmp {0}; wait",
        pid_file.display()
    );
    let probe = exec("sh", &["-c", &script]);
    let outcome = tokio::time::timeout(
        DEADLINE,
        Prober::new().probe(&probe, Duration::from_secs(2), "id"),
    )
    .await
    .expect("the probe's own timeout ends it first");
    assert_eq!(outcome, unhealthy("timed out after 2s"));
    let sleeper: i32 = std::fs::read_to_string(&pid_file)
        .expect("the script wrote the sleeper's pid before the timeout")
        .trim()
        .parse()
        .expect("a pid");
    wait_until_async(
        DEADLINE,
        "the probe's background sleeper to be killed",
        || is_gone(sleeper),
    )
    .await;
}

#[tokio::test]
async fn none_is_always_healthy() {
    let outcome = Prober::new()
        .probe(&Probe::None, Duration::ZERO, "id")
        .await;
    assert_eq!(outcome, ProbeOutcome::Healthy);
}

#[tokio::test]
async fn the_correlation_id_arrives() {
    let service = FakeService::start(&[]).await;
    let prober = Prober::new();
    prober
        .probe(&service.http(), PROBE_TIMEOUT, "attempt-7f3a")
        .await;
    assert_eq!(service.info()["lastCorrelationId"], "attempt-7f3a");
    prober
        .wait_ready(&service.http(), DEADLINE, "attempt-8b4c")
        .await
        .expect("ready");
    assert_eq!(service.info()["lastCorrelationId"], "attempt-8b4c");
}

#[tokio::test]
async fn wait_ready_sees_a_slow_starter_become_ready() {
    let ready_timeout = Duration::from_secs(30);
    let started = Instant::now();
    let service = FakeService::spawn(&[("FAKE_START_DELAY_MS", "300")]);
    let outcome = Prober::new()
        .wait_ready(&service.http(), ready_timeout, "id")
        .await;
    let waited = started.elapsed();
    assert_eq!(outcome, Ok(ProbeOutcome::Healthy));
    assert!(
        waited >= Duration::from_millis(300),
        "ready before the start delay: {waited:?}"
    );
    // Generous for a loaded machine, yet well short of the ready timeout.
    assert!(waited < ready_timeout / 2, "took {waited:?}");
    // It stops at the first healthy answer: the refused attempts never reached the service.
    assert_eq!(service.info()["healthRequests"], 1);
}

#[tokio::test]
async fn wait_ready_gives_up_on_a_port_nobody_listens_on() {
    let probe = Probe::Http {
        port: free_port(),
        path: "/health".to_owned(),
    };
    let ready_timeout = Duration::from_millis(300);
    let result = Prober::new().wait_ready(&probe, ready_timeout, "id").await;
    let NotReady {
        waited,
        attempts,
        last,
    } = result.clone().expect_err("nobody listens");
    assert_eq!(last, "connection refused");
    assert!(waited >= ready_timeout, "gave up early: {waited:?}");
    // 0, 1, 3, 7, 15, 31 ms …: fast polling makes several attempts in 300 ms.
    assert!(attempts >= 3, "only {attempts} attempts");
    let message = result.expect_err("nobody listens").to_string();
    assert!(message.starts_with("not ready after "), "{message}");
    assert!(
        message.ends_with(&format!("({attempts} probes): connection refused")),
        "{message}"
    );
}

#[tokio::test]
async fn a_hung_probe_does_not_hold_up_another() {
    let (silent_port, server) = silent_server().await;
    let service = FakeService::start(&[]).await;
    let prober = Prober::new();
    let hung = Probe::Http {
        port: silent_port,
        path: "/health".to_owned(),
    };
    let hung_probe = prober.probe(&hung, DEADLINE, "id");
    let healthy = service.http();
    let healthy_probe = prober.probe(&healthy, PROBE_TIMEOUT, "id");
    tokio::select! {
        biased;
        outcome = hung_probe => panic!("the hung probe finished first: {outcome}"),
        outcome = healthy_probe => assert_eq!(outcome, ProbeOutcome::Healthy),
    }
    server.abort();
}

/// Reads the pid a probe script wrote to `path` (write, then rename).
async fn pid_in(path: &std::path::Path) -> i32 {
    wait_until_async(DEADLINE, "the probe to write its child's pid", || {
        std::fs::read_to_string(path)
            .map_err(|e| e.to_string())?
            .trim()
            .parse::<i32>()
            .map_err(|e| e.to_string())
    })
    .await
}

/// Issue 12: a probe that exits 0 while something it started keeps running leaves nothing
/// behind: its group is killed once it exits.
#[tokio::test]
async fn exec_that_exits_leaves_no_background_process() {
    let dir = TempDir::new("exec-leftover");
    let pid_file = dir.path().join("sleeper.pid");
    let script = format!(
        "sleep 300 & echo $! > {0}.tmp; mv {0}.tmp {0}; exit 0",
        pid_file.display()
    );
    let outcome = Prober::new()
        .probe(&exec("sh", &["-c", &script]), PROBE_TIMEOUT, "id")
        .await;
    assert_eq!(outcome, ProbeOutcome::Healthy);
    let sleeper = pid_in(&pid_file).await;
    wait_until_async(DEADLINE, "the exited probe's sleeper to be killed", || {
        is_gone(sleeper)
    })
    .await;
}

/// Issue 12: a probe dropped half-way (its service stopped meanwhile) kills its whole group,
/// not only its direct child.
#[tokio::test]
async fn a_dropped_exec_probe_kills_its_whole_group() {
    let dir = TempDir::new("exec-dropped");
    let pid_file = dir.path().join("sleeper.pid");
    let script = format!(
        "sleep 300 & echo $! > {0}.tmp; mv {0}.tmp {0}; wait",
        pid_file.display()
    );
    let probe = exec("sh", &["-c", &script]);
    let prober = Prober::new();
    let running = prober.probe(&probe, Duration::from_secs(300), "id");
    let sleeper = tokio::select! {
        outcome = running => panic!("the probe ended by itself: {outcome:?}"),
        pid = pid_in(&pid_file) => pid,
    };
    // The probe future was dropped when the select ended.
    wait_until_async(DEADLINE, "the dropped probe's sleeper to be killed", || {
        is_gone(sleeper)
    })
    .await;
}

/// A probe carries its service's tree marker, so reclaim and the service's stop find what it
/// leaves behind.
#[tokio::test]
async fn exec_carries_the_services_tree_marker() {
    let probe = Probe::Exec {
        program: "sh".to_owned(),
        args: vec![
            "-c".to_owned(),
            r#"test "$CONDUCTOR_INSTANCE" = run-1/records"#.to_owned(),
        ],
        cwd: None,
        marker: Some(conductor_spawn::TreeMarker::new(
            "CONDUCTOR_INSTANCE",
            "run-1/records",
        )),
    };
    assert_eq!(
        Prober::new().probe(&probe, PROBE_TIMEOUT, "id").await,
        ProbeOutcome::Healthy
    );
}
