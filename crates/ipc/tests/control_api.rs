//! SPEC §5, the request/response part: every channel over real HTTP against a real conductor,
//! and every refusal (401, 403, 400, 404, 405, 413) with its message.

// `pub` so the helpers this file does not use are not dead code.
pub mod common;

use std::time::Duration;

use common::{Fixture, raw_request};
use conductor_ipc::{ClientError, ServeError, ServerConfig};
use conductor_protocol::{
    AppHealth, AppHealthStatus, Channel, DatabaseInitResponse, DatabaseStatus, GetPathRequest,
    GetPathResponse, IpcInfo, LogsGetRequest, LogsGetResponse, PathName, ServiceActionResponse,
    ServiceRequest, ServiceState, ServiceStatus, SuccessResponse,
};
use conductor_test_support::{DEADLINE, TempDir, wait_until_async};

fn service(name: &str) -> ServiceRequest {
    ServiceRequest {
        service_name: name.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_answers_on_success() {
    let fixture = Fixture::new("channels", true).await;
    let client = fixture.client();

    let statuses: Vec<ServiceStatus> = client
        .call::<(), _>(Channel::ServicesGetAll, None)
        .await
        .unwrap();
    let names: Vec<(&str, ServiceState)> = statuses
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        names,
        [
            ("alpha", ServiceState::Running),
            ("beta", ServiceState::Running)
        ]
    );

    let health: AppHealth = client
        .call::<(), _>(Channel::AppHealth, None)
        .await
        .unwrap();
    assert_eq!(
        health,
        AppHealth {
            status: AppHealthStatus::Healthy,
            failing: vec![]
        }
    );

    let stopped: ServiceActionResponse = client
        .call(Channel::ServicesStop, Some(&service("alpha")))
        .await
        .unwrap();
    assert_eq!(stopped, ServiceActionResponse::ok());
    let statuses: Vec<ServiceStatus> = client
        .call::<(), _>(Channel::ServicesGetAll, None)
        .await
        .unwrap();
    assert_eq!(statuses[0].status, ServiceState::Stopped, "{statuses:?}");
    assert_eq!(statuses[0].pid, None);

    let started: ServiceActionResponse = client
        .call(Channel::ServicesStart, Some(&service("alpha")))
        .await
        .unwrap();
    assert_eq!(started, ServiceActionResponse::ok());
    let before = client
        .call::<(), Vec<ServiceStatus>>(Channel::ServicesGetAll, None)
        .await
        .unwrap()[1]
        .pid;
    let restarted: ServiceActionResponse = client
        .call(Channel::ServicesRestart, Some(&service("beta")))
        .await
        .unwrap();
    assert_eq!(restarted, ServiceActionResponse::ok());
    let statuses: Vec<ServiceStatus> = client
        .call::<(), _>(Channel::ServicesGetAll, None)
        .await
        .unwrap();
    assert_eq!(statuses[0].status, ServiceState::Running);
    assert_eq!(statuses[1].status, ServiceState::Running);
    assert!(
        statuses[1].pid.is_some() && statuses[1].pid != before,
        "restart gives beta a new pid: {before:?} -> {:?}",
        statuses[1].pid
    );

    let initialized: DatabaseInitResponse = client
        .call::<(), _>(Channel::DatabaseInit, None)
        .await
        .unwrap();
    assert!(initialized.success, "{initialized:?}");
    assert!(initialized.migrations_run >= 1, "{initialized:?}");
    let status: DatabaseStatus = client
        .call::<(), _>(Channel::DatabaseStatus, None)
        .await
        .unwrap();
    assert!(status.initialized, "{status:?}");
    assert!(status.version.is_some(), "{status:?}");
    assert!(status.path.ends_with("ipctest.db"), "{status:?}");
    // Running it again has nothing left to do.
    let again: DatabaseInitResponse = client
        .call::<(), _>(Channel::DatabaseInit, None)
        .await
        .unwrap();
    assert_eq!(
        again,
        DatabaseInitResponse {
            success: true,
            migrations_run: 0,
            error: None
        }
    );

    // fake-service prints a line once it listens; both services have by now.
    let all: LogsGetResponse = client.call::<(), _>(Channel::LogsGet, None).await.unwrap();
    assert!(
        all.logs.iter().any(|entry| entry.service == "alpha"),
        "{all:?}"
    );
    assert!(
        all.logs.iter().any(|entry| entry.service == "beta"),
        "{all:?}"
    );
    let request = LogsGetRequest {
        service_name: Some("beta".to_owned()),
        lines: Some(1),
    };
    let one: LogsGetResponse = client.call(Channel::LogsGet, Some(&request)).await.unwrap();
    assert_eq!(one.logs.len(), 1, "{one:?}");
    assert_eq!(one.logs[0].service, "beta");
    let cleared: SuccessResponse = client
        .call::<(), _>(Channel::LogsClear, None)
        .await
        .unwrap();
    assert_eq!(cleared, SuccessResponse { success: true });

    let data = fixture.dir.path().join("data");
    for (name, expected) in [
        (PathName::UserData, data.clone()),
        (PathName::Logs, data.join("logs")),
        (PathName::Temp, data.join("tmp")),
    ] {
        let response: GetPathResponse = client
            .call(
                Channel::AppGetPath,
                Some(&GetPathRequest { path_name: name }),
            )
            .await
            .unwrap();
        assert_eq!(response.path, expected.display().to_string());
    }

    let quit = fixture.conductor.clone();
    let answer = raw_request(
        fixture.addr(),
        &format!("POST /ipc/app:quit HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nContent-Length: 0", fixture.port, fixture.info.token),
        b"",
    )
    .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (202, r#"{"success":true}"#)
    );
    tokio::time::timeout(DEADLINE, quit.quit_requested())
        .await
        .expect("app:quit asks the conductor to quit");

    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_action_is_success_false_not_an_http_error() {
    let broken = "\n[services.broken]\nport = 1\ncommand = \"/nonexistent/fake-service\"\ncritical = false\n\
                  restart = { max_retries = 0 }\n";
    let fixture = Fixture::with("failed-action", false, Duration::from_secs(15), broken).await;
    let client = fixture.client();
    let answer: ServiceActionResponse = client
        .call(Channel::ServicesStart, Some(&service("broken")))
        .await
        .unwrap();
    assert!(!answer.success, "{answer:?}");
    assert!(
        answer.error.as_deref().is_some_and(|e| !e.is_empty()),
        "{answer:?}"
    );
    fixture.finish().await;
}

/// Every refusal, its status and its message, through a raw connection (headers a real client
/// would never send), snapshotted with the port redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_what_was_wrong() {
    let fixture = Fixture::new("refusals", false).await;
    let host = format!("127.0.0.1:{}", fixture.port);
    let auth = format!("Authorization: Bearer {}", fixture.info.token);
    let big = vec![b' '; 70 * 1024];
    let mut chunked = Vec::new();
    for chunk in big.chunks(8 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let post = |channel: &str, extra: &str| {
        format!("POST /ipc/{channel} HTTP/1.1\r\nHost: {host}\r\n{extra}")
    };
    let cases: Vec<(&str, u16, String, Vec<u8>)> = vec![
        (
            "missing token",
            401,
            post("services:get-all", "Content-Length: 0"),
            vec![],
        ),
        (
            "wrong token",
            401,
            post(
                "services:get-all",
                &format!(
                    "Authorization: Bearer {}\r\nContent-Length: 0",
                    "0".repeat(64)
                ),
            ),
            vec![],
        ),
        (
            "basic auth",
            401,
            post(
                "services:get-all",
                "Authorization: Basic dXNlcjpwYXNz\r\nContent-Length: 0",
            ),
            vec![],
        ),
        (
            "foreign host",
            403,
            format!(
                "POST /ipc/services:get-all HTTP/1.1\r\nHost: evil.example:{}\r\n{auth}\r\nContent-Length: 0",
                fixture.port
            ),
            vec![],
        ),
        (
            "foreign host without token",
            403,
            "GET /events HTTP/1.1\r\nHost: evil.example".to_owned(),
            vec![],
        ),
        (
            "malformed json",
            400,
            post("services:start", &format!("{auth}\r\nContent-Length: 16")),
            b"{\"serviceName\": ".to_vec(),
        ),
        (
            "wrong field",
            400,
            post("services:stop", &format!("{auth}\r\nContent-Length: 15")),
            br#"{"service":"x"}"#.to_vec(),
        ),
        (
            "empty body where one is needed",
            400,
            post("services:restart", &format!("{auth}\r\nContent-Length: 0")),
            vec![],
        ),
        (
            "unknown path name",
            400,
            post("app:get-path", &format!("{auth}\r\nContent-Length: 19")),
            br#"{"pathName":"home"}"#.to_vec(),
        ),
        (
            "arguments to a channel without",
            400,
            post("app:health", &format!("{auth}\r\nContent-Length: 7")),
            br#"{"x":1}"#.to_vec(),
        ),
        (
            "unknown service",
            400,
            post("services:start", &format!("{auth}\r\nContent-Length: 23")),
            br#"{"serviceName":"gamma"}"#.to_vec(),
        ),
        (
            "unknown service in logs:get",
            400,
            post("logs:get", &format!("{auth}\r\nContent-Length: 23")),
            br#"{"serviceName":"gamma"}"#.to_vec(),
        ),
        (
            "unknown channel",
            404,
            post("services:list", &format!("{auth}\r\nContent-Length: 0")),
            vec![],
        ),
        (
            "unknown path",
            404,
            format!("GET /health HTTP/1.1\r\nHost: {host}\r\n{auth}"),
            vec![],
        ),
        (
            "wrong method on a channel",
            405,
            format!("GET /ipc/services:get-all HTTP/1.1\r\nHost: {host}\r\n{auth}"),
            vec![],
        ),
        (
            "wrong method on events",
            405,
            format!("POST /events HTTP/1.1\r\nHost: {host}\r\n{auth}\r\nContent-Length: 0"),
            vec![],
        ),
        // Refused on the declared length alone: nothing of the body is sent.
        (
            "declared body over 64 KiB",
            413,
            post(
                "logs:get",
                &format!("{auth}\r\nContent-Length: {}", big.len()),
            ),
            vec![],
        ),
        (
            "chunked body over 64 KiB",
            413,
            post("logs:get", &format!("{auth}\r\nTransfer-Encoding: chunked")),
            chunked,
        ),
    ];
    let mut seen = Vec::new();
    for (case, expected, head, body) in cases {
        let response = raw_request(fixture.addr(), &head, &body).await;
        assert_eq!(response.status, expected, "{case}: {response:?}");
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{case}: {response:?}"
        );
        let json: serde_json::Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|err| panic!("{case}: {err}: {response:?}"));
        let error = json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{case}: no error field: {json}"));
        seen.push(serde_json::json!({ "case": case, "status": response.status, "error": fixture.redact(error) }));
        match expected {
            401 => assert_eq!(
                response.header("www-authenticate"),
                Some("Bearer"),
                "{case}"
            ),
            405 => assert!(response.header("allow").is_some(), "{case}: {response:?}"),
            _ => {}
        }
    }
    insta::assert_json_snapshot!(seen);
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reports_api_errors_with_the_servers_message() {
    let fixture = Fixture::new("client-errors", false).await;
    let err = fixture
        .client()
        .call::<_, ServiceActionResponse>(Channel::ServicesStop, Some(&service("gamma")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 400, message } if message.contains("unknown service \"gamma\"")),
        "{err:?}"
    );
    let wrong = conductor_ipc::Client::new(IpcInfo {
        token: "nope".to_owned(),
        ..fixture.info.clone()
    });
    let err = wrong
        .call::<(), Vec<ServiceStatus>>(Channel::ServicesGetAll, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Api { status: 401, .. }),
        "{err:?}"
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_gone_instance_says_it_is_unreachable() {
    let port = conductor_test_support::free_port();
    let client = conductor_ipc::Client::new(IpcInfo {
        url: format!("http://127.0.0.1:{port}"),
        token: "t".to_owned(),
        pid: 1,
    })
    .with_timeout(DEADLINE);
    let err = client
        .call::<(), Vec<ServiceStatus>>(Channel::ServicesGetAll, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    let message = err.to_string().replace(&port.to_string(), "[port]");
    assert!(
        message.starts_with("cannot reach conductor at http://127.0.0.1:[port]: "),
        "{message}"
    );
    assert!(
        message.ends_with("; it may have exited without removing its ipc.json"),
        "{message}"
    );
}

#[test]
fn ipc_json_is_written_private_and_read_back() {
    let dir = TempDir::new("info");
    let err = conductor_ipc::read_info(dir.path()).unwrap_err();
    assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
    assert_eq!(
        err.to_string()
            .replace(&dir.path().display().to_string(), "[dir]"),
        "no conductor is running for [dir]: start one with `conductor up`"
    );

    let info = IpcInfo {
        url: "http://127.0.0.1:41234".to_owned(),
        token: "ab".repeat(32),
        pid: 4242,
    };
    conductor_ipc::write_info(dir.path(), &info).unwrap();
    let path = dir.path().join(conductor_ipc::INFO_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "ipc.json holds the token: owner-only");
    }
    assert_eq!(conductor_ipc::read_info(dir.path()).unwrap(), info);
    // Rewriting replaces it whole and leaves no temporary file behind.
    let next = IpcInfo { pid: 4243, ..info };
    conductor_ipc::write_info(dir.path(), &next).unwrap();
    assert_eq!(conductor_ipc::read_info(dir.path()).unwrap(), next);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["ipc.json"]);

    std::fs::write(&path, "{not json").unwrap();
    let err = conductor_ipc::read_info(dir.path()).unwrap_err();
    assert!(matches!(err, ClientError::InvalidInfo { .. }), "{err:?}");

    conductor_ipc::remove_info(dir.path());
    assert!(!path.exists());
    conductor_ipc::remove_info(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_a_non_loopback_address() {
    let dir = TempDir::new("not-loopback");
    let registry = conductor_registry::Registry::builtin();
    let conductor = conductor_supervisor::Conductor::new(
        registry,
        conductor_supervisor::Paths::under(dir.path()),
        conductor_supervisor::Settings {
            write_run_state: false,
            ..Default::default()
        },
    )
    .unwrap();
    let config = ServerConfig {
        addr: "0.0.0.0:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let err = conductor_ipc::serve(conductor.clone(), config)
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::NotLoopback { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "refusing to serve the control API on 0.0.0.0:0: use a loopback address such as 127.0.0.1"
    );
    conductor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_listener() {
    let mut fixture = Fixture::new("shutdown", false).await;
    let addr = fixture.addr();
    let server = fixture.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown is bounded");
    wait_until_async(
        DEADLINE,
        "the listener to be closed",
        || match std::net::TcpStream::connect(addr) {
            Err(_) => Ok(()),
            Ok(_) => Err("a connection was accepted".to_owned()),
        },
    )
    .await;
    fixture.finish().await;
}
