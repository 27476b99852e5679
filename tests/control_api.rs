//! End-to-end tests of the control API (SPEC §5) against the real `conductor up`: every channel's
//! success path, every refusal (401, 403, 400, 404, 405, 413) over raw HTTP on loopback, and the
//! `GET /events` stream seeing a service that was killed, and the registry's allowed origins
//! (CORS, issue 17) reaching the server.

// `pub` so that helpers this file does not use are not dead code.
pub mod support;

use std::time::Instant;

use conductor_protocol::{ServiceState, ServiceStatus};
use serde_json::{Value, json};
use support::{
    Conductor, DEADLINE, EventStream, TempDir, fake_service, free_ports, http, http_raw, is_gone,
    registry_head, running_pid, wait_all_gone, wait_until,
};

/// Two fake services: `records` (critical) and `export` (not critical, depends on records).
fn two_service_registry(records: u16, export: u16) -> String {
    format!(
        r#"{head}
[services.records]
port = {records}
command = {bin}
critical = true

[services.export]
port = {export}
command = {bin}
depends_on = ["records"]
critical = false
"#,
        head = registry_head("ApiTest"),
        bin = fake_service(),
    )
}

fn log_messages(conductor: &Conductor, request: &Value) -> Vec<(String, String)> {
    let response: Value = conductor.call_ok("logs:get", &request.to_string());
    let Some(logs) = response.get("logs").and_then(Value::as_array) else {
        panic!("logs:get answered without a logs array: {response}");
    };
    logs.iter()
        .map(|entry| {
            let field = |name: &str| {
                entry
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("log entry without {name}: {entry}"))
                    .to_owned()
            };
            // Every entry carries the four LogEntry fields.
            let _ = (field("timestamp"), field("level"));
            (field("service"), field("message"))
        })
        .collect()
}

#[test]
fn every_channel_answers_as_specified() {
    let dir = TempDir::new("channels");
    let [records_port, export_port] = free_ports();
    let mut conductor = Conductor::start(&dir, &two_service_registry(records_port, export_port));
    let data_dir = conductor.data_dir.clone();

    // services:get-all: every service, in registry order, with the ServiceStatus fields.
    let all: Value = conductor.call_ok("services:get-all", "");
    let first = &all[0];
    for key in [
        "name",
        "port",
        "status",
        "pid",
        "uptime",
        "lastHealthCheck",
        "restarts",
        "critical",
        "lastError",
    ] {
        assert!(
            first.get(key).is_some(),
            "ServiceStatus lacks {key}: {first}"
        );
    }
    let statuses = conductor.statuses();
    let names: Vec<&str> = statuses.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["records", "export"]);
    assert_eq!(statuses[0].port, records_port);
    assert_eq!(statuses[1].port, export_port);
    assert!(statuses[0].critical && !statuses[1].critical);
    for status in &statuses {
        running_pid(status);
        assert_eq!(status.restarts, 0, "{status:?}");
        assert_eq!(status.last_error, None, "{status:?}");
    }

    // app:health
    let health: Value = conductor.call_ok("app:health", "");
    assert_eq!(health, json!({"status": "healthy", "failing": []}));

    // database:status and database:init (already migrated: nothing to run).
    let db: Value = conductor.call_ok("database:status", "");
    assert_eq!(db["initialized"], json!(true), "{db}");
    assert_eq!(db["version"], json!(2), "{db}");
    let db_path = db["path"].as_str().unwrap_or_default();
    assert!(
        db_path.starts_with(&data_dir.display().to_string()) && db_path.ends_with(".db"),
        "database path {db_path:?} is not a .db file under {}",
        data_dir.display()
    );
    let init: Value = conductor.call_ok("database:init", "");
    assert_eq!(init, json!({"success": true, "migrationsRun": 0}));

    // app:get-path
    let user_data: Value = conductor.call_ok("app:get-path", r#"{"pathName":"userData"}"#);
    assert_eq!(user_data, json!({"path": data_dir.display().to_string()}));
    for name in ["logs", "temp"] {
        let path: Value = conductor.call_ok("app:get-path", &json!({"pathName": name}).to_string());
        let path = path["path"].as_str().unwrap_or_default();
        assert!(!path.is_empty(), "app:get-path {name} gave no path");
    }

    // logs:get for one service, then for all, then logs:clear.
    let listening = |entries: &[(String, String)], service: &str| {
        entries
            .iter()
            .any(|(s, m)| s == service && m.contains("fake-service listening on"))
    };
    wait_until(DEADLINE, "both services' startup lines in logs:get", || {
        let all = log_messages(&conductor, &json!({}));
        if listening(&all, "records") && listening(&all, "export") {
            Ok(())
        } else {
            Err(format!("{all:?}"))
        }
    });
    let records_only = log_messages(&conductor, &json!({"serviceName": "records", "lines": 5}));
    assert!(
        records_only.len() <= 5 && records_only.iter().all(|(s, _)| s == "records"),
        "{records_only:?}"
    );
    let cleared: Value = conductor.call_ok("logs:clear", "");
    assert_eq!(cleared, json!({"success": true}));
    let after_clear = log_messages(&conductor, &json!({}));
    assert!(
        !listening(&after_clear, "records") && !listening(&after_clear, "export"),
        "logs:clear left old lines: {after_clear:?}"
    );

    // services:stop, services:start (twice: the second is a no-op), services:restart.
    let export_pid = running_pid(&conductor.status("export"));
    let stopped: Value = conductor.call_ok("services:stop", r#"{"serviceName":"export"}"#);
    assert_eq!(stopped, json!({"success": true}));
    let export = conductor.status("export");
    assert_eq!((export.status, export.pid), (ServiceState::Stopped, None));
    wait_all_gone(&[export_pid], "the stopped service's process to be gone");
    let started: Value = conductor.call_ok("services:start", r#"{"serviceName":"export"}"#);
    assert_eq!(started, json!({"success": true}));
    let new_export_pid = running_pid(&conductor.status("export"));
    assert_ne!(new_export_pid, export_pid);
    let again: Value = conductor.call_ok("services:start", r#"{"serviceName":"export"}"#);
    assert_eq!(again, json!({"success": true}));
    assert_eq!(running_pid(&conductor.status("export")), new_export_pid);

    let records_pid = running_pid(&conductor.status("records"));
    let restarted: Value = conductor.call_ok("services:restart", r#"{"serviceName":"records"}"#);
    assert_eq!(restarted, json!({"success": true}));
    let new_records_pid = running_pid(&conductor.status("records"));
    assert_ne!(new_records_pid, records_pid);
    wait_all_gone(
        &[records_pid],
        "the restarted service's old process to be gone",
    );

    // app:quit: 202, then a graceful shutdown with exit code 0 and no process left.
    let fleet = conductor.tracked_pids();
    let quit = conductor.call("app:quit", "");
    assert_eq!(
        quit.status, 202,
        "app:quit answered {}: {}",
        quit.status, quit.body
    );
    let status = conductor.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", conductor.output());
    wait_all_gone(&fleet, "every fleet process to be gone after app:quit");
}

#[test]
fn every_refusal_is_a_json_error_that_says_what_was_wrong() {
    let dir = TempDir::new("refusals");
    let [records_port, export_port] = free_ports();
    let conductor = Conductor::start(&dir, &two_service_registry(records_port, export_port));
    let addr = conductor.addr();
    let token = conductor.info().token.clone();
    let records_pid = running_pid(&conductor.status("records"));

    let post = |channel: &str, extra_headers: &str| {
        format!("POST /ipc/{channel} HTTP/1.1\r\nHost: {addr}{extra_headers}")
    };
    let auth = format!("\r\nAuthorization: Bearer {token}");
    let big = vec![b' '; 70 * 1024];
    let chunked_big = {
        let mut request = format!(
            "POST /ipc/services:get-all HTTP/1.1\r\nHost: {addr}{auth}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        for _ in 0..70 {
            request.extend_from_slice(b"400\r\n");
            request.extend_from_slice(&[b' '; 1024]);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        request
    };

    let cases: Vec<(&str, u16, support::Response)> = vec![
        (
            "missing token",
            401,
            http(&addr, &post("services:get-all", ""), b""),
        ),
        (
            "wrong token",
            401,
            http(
                &addr,
                &post(
                    "services:get-all",
                    &format!("\r\nAuthorization: Bearer x{token}"),
                ),
                b"",
            ),
        ),
        (
            "non-bearer scheme",
            401,
            http(
                &addr,
                &post("services:get-all", "\r\nAuthorization: Basic dXNlcjpwYXNz"),
                b"",
            ),
        ),
        (
            "Host not loopback (valid token)",
            403,
            http(
                &addr,
                &format!("POST /ipc/services:get-all HTTP/1.1\r\nHost: evil.example{auth}"),
                b"",
            ),
        ),
        (
            "malformed JSON body",
            400,
            http(&addr, &post("services:start", &auth), b"{\"serviceName\":"),
        ),
        (
            "wrong field name",
            400,
            http(
                &addr,
                &post("services:stop", &auth),
                br#"{"service":"records"}"#,
            ),
        ),
        (
            "unknown service (start)",
            400,
            http(
                &addr,
                &post("services:start", &auth),
                br#"{"serviceName":"nosuch"}"#,
            ),
        ),
        (
            "unknown service (stop)",
            400,
            http(
                &addr,
                &post("services:stop", &auth),
                br#"{"serviceName":"nosuch"}"#,
            ),
        ),
        (
            "unknown service (restart)",
            400,
            http(
                &addr,
                &post("services:restart", &auth),
                br#"{"serviceName":"nosuch"}"#,
            ),
        ),
        (
            "unknown service (logs:get)",
            400,
            http(
                &addr,
                &post("logs:get", &auth),
                br#"{"serviceName":"nosuch"}"#,
            ),
        ),
        (
            "unknown path name",
            400,
            http(
                &addr,
                &post("app:get-path", &auth),
                br#"{"pathName":"home"}"#,
            ),
        ),
        (
            "unknown channel",
            404,
            http(&addr, &post("services:explode", &auth), b""),
        ),
        (
            "wrong method",
            405,
            http(
                &addr,
                &format!("GET /ipc/services:get-all HTTP/1.1\r\nHost: {addr}{auth}"),
                b"",
            ),
        ),
        (
            "70 KiB body with Content-Length",
            413,
            http(&addr, &post("services:get-all", &auth), &big),
        ),
        ("70 KiB chunked body", 413, http_raw(&addr, &chunked_big)),
        (
            "event stream without token",
            401,
            http(&addr, &format!("GET /events HTTP/1.1\r\nHost: {addr}"), b""),
        ),
        (
            "event stream with a wrong query token",
            401,
            http(
                &addr,
                &format!("GET /events?token=x{token} HTTP/1.1\r\nHost: {addr}"),
                b"",
            ),
        ),
    ];

    let mut report = String::new();
    for (case, expected, response) in &cases {
        assert_eq!(
            response.status, *expected,
            "{case}: expected HTTP {expected}, got {}: {}",
            response.status, response.body
        );
        assert!(
            response.headers.contains("content-type: application/json"),
            "{case}: error is not JSON: {}",
            response.headers
        );
        let message = response.error_message();
        assert!(!message.is_empty(), "{case}: empty error message");
        report.push_str(&format!("{case} -> {}: {message}\n", response.status));
    }
    for (case, status, response) in &cases {
        if *status == 401 {
            assert!(
                response.headers.contains("www-authenticate: Bearer"),
                "{case}: 401 without WWW-Authenticate: {}",
                response.headers
            );
        }
    }
    let report = report
        .replace(&token, "[TOKEN]")
        .replace(&addr, "[IPC_ADDR]");
    insta::assert_snapshot!("refusals", report);

    // None of the refusals touched the fleet.
    assert_eq!(running_pid(&conductor.status("records")), records_pid);
    assert_eq!(conductor.status("export").status, ServiceState::Running);
}

/// Issue 17: the registry's `[app] allowed_origins` reaches the control API of `conductor up`.
#[test]
fn an_allowed_origin_is_served_and_another_refused_by_the_real_binary() {
    let dir = TempDir::new("origins");
    let [records_port, export_port] = free_ports();
    let registry = two_service_registry(records_port, export_port).replacen(
        "[app]\n",
        "[app]\nallowed_origins = [\"app://apitest\"]\n",
        1,
    );
    let conductor = Conductor::start(&dir, &registry);
    let addr = conductor.addr();
    let token = conductor.info().token.clone();

    let preflight = http(
        &addr,
        &format!(
            "OPTIONS /ipc/services:get-all HTTP/1.1\r\nHost: {addr}\r\nOrigin: app://apitest\r\n\
             Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization"
        ),
        b"",
    );
    assert_eq!(preflight.status, 204, "{preflight:?}");
    for header in [
        "access-control-allow-origin: app://apitest",
        "access-control-allow-methods: GET, POST, OPTIONS",
        "access-control-allow-headers: authorization, content-type, last-event-id",
        "vary: Origin",
    ] {
        assert!(
            preflight.headers.contains(header),
            "{header}: {preflight:?}"
        );
    }

    let post = |origin: &str| {
        http(
            &addr,
            &format!(
                "POST /ipc/services:get-all HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\n\
                 Authorization: Bearer {token}"
            ),
            b"",
        )
    };
    let allowed = post("app://apitest");
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert!(
        allowed
            .headers
            .contains("access-control-allow-origin: app://apitest"),
        "{allowed:?}"
    );
    let statuses: Vec<ServiceStatus> = serde_json::from_value(allowed.json()).unwrap();
    assert_eq!(statuses.len(), 2);

    let refused = post("http://localhost:5173");
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(!refused.headers.contains("access-control-"), "{refused:?}");
    assert!(
        refused
            .error_message()
            .contains("\"http://localhost:5173\" may not call the control API"),
        "{refused:?}"
    );

    // Without Origin, as before.
    let cli = http(
        &addr,
        &format!("POST /ipc/app:health HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}"),
        b"",
    );
    assert_eq!(cli.status, 200, "{cli:?}");
    assert!(!cli.headers.contains("access-control-"), "{cli:?}");
}

#[test]
fn event_stream_reports_a_killed_service_and_its_restart() {
    let dir = TempDir::new("events");
    let [records_port, export_port] = free_ports();
    let conductor = Conductor::start(&dir, &two_service_registry(records_port, export_port));
    let export_pid = running_pid(&conductor.status("export"));

    // The browser form (`?token=`) is accepted too.
    drop(EventStream::open(&conductor, true));
    let mut events = EventStream::open(&conductor, false);

    // SAFETY: kill(2) has no memory-safety preconditions; the pid is a running service that
    // conductor has not reaped yet (it is `running` in services:get-all).
    let rc = unsafe { libc::kill(export_pid as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0, "cannot SIGKILL export ({export_pid})");

    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    let mut saw_down = false;
    let mut saw_error = false;
    let mut last_id = None;
    let new_pid = loop {
        assert!(
            Instant::now() < deadline,
            "no status-changed down and back to running for export; events: {seen:#?}"
        );
        let event = events.next_event();
        if let (Some(previous), Some(id)) = (last_id, event.id) {
            assert_eq!(
                id,
                previous + 1,
                "event ids must increase by one: {seen:#?}"
            );
        }
        last_id = event.id.or(last_id);
        let about_export = event.data["serviceName"] == json!("export");
        match event.name.as_str() {
            "service:status-changed" if about_export => {
                let status: ServiceStatus =
                    match serde_json::from_value(event.data["status"].clone()) {
                        Ok(status) => status,
                        Err(error) => panic!("status is not a ServiceStatus ({error}): {event:?}"),
                    };
                if status.status != ServiceState::Running {
                    saw_down = true;
                } else if saw_down && let Some(pid) = status.pid {
                    break pid;
                }
            }
            "service:error" if about_export => saw_error = true,
            _ => {}
        }
        seen.push(event);
    };
    assert!(saw_down, "no status-changed away from running: {seen:#?}");
    assert!(
        saw_error,
        "no service:error for the killed service: {seen:#?}"
    );
    assert_ne!(new_pid, export_pid);
    assert!(is_gone(export_pid));
    let export = conductor.status("export");
    assert_eq!(export.restarts, 1, "{export:?}");
    assert_eq!(running_pid(&export), new_pid);
}
