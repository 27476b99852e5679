//! The UI's contract: one JSON snapshot per request, response and event, each parsed back equal,
//! and a proptest round-trip for every wire type. A renamed field fails here.

use conductor_protocol::*;
use proptest::prelude::*;
use serde::{Serialize, de::DeserializeOwned};

fn status_sample() -> ServiceStatus {
    ServiceStatus {
        name: "records".into(),
        port: 3001,
        status: ServiceState::Running,
        pid: Some(4242),
        uptime: 17,
        last_health_check: Some("2026-11-25T10:00:00.123Z".into()),
        restarts: 1,
        critical: true,
        last_error: None,
        cpu_percent: Some(12.5),
        memory_bytes: Some(48_234_496),
        processes: Some(3),
    }
}

fn metrics_sample(second: u32) -> MetricsSample {
    MetricsSample {
        timestamp: format!("2026-11-25T10:00:{second:02}.000Z"),
        cpu_percent: 3.5,
        memory_bytes: 20_971_520,
        memory_kind: MemoryKind::Pss,
        processes: 2,
        threads: 9,
        open_files: 14,
    }
}

/// Snapshots the JSON of `value` and checks it parses back equal.
fn wire<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, value: T) {
    let json = serde_json::to_value(&value).expect("wire types serialise");
    insta::assert_json_snapshot!(name, json);
    let back: T = serde_json::from_value(json).expect("a snapshot parses back");
    assert_eq!(back, value, "{name} did not round-trip");
}

#[test]
fn requests() {
    wire(
        "service_request",
        ServiceRequest {
            service_name: "records".into(),
        },
    );
    wire("logs_get_request_empty", LogsGetRequest::default());
    wire(
        "logs_get_request_full",
        LogsGetRequest {
            service_name: Some("export".into()),
            lines: Some(50),
        },
    );
    wire(
        "get_path_request",
        GetPathRequest {
            path_name: PathName::UserData,
        },
    );
    wire("metrics_get_request_empty", MetricsGetRequest::default());
    wire("reload_request_empty", ReloadRequest::default());
    wire(
        "reload_request_file",
        ReloadRequest {
            registry: Some("/srv/app/conductor.toml".into()),
        },
    );
    wire(
        "metrics_get_request_full",
        MetricsGetRequest {
            service_name: Some("records".into()),
            seconds: Some(60),
        },
    );
}

fn summary() -> ReloadSummary {
    ReloadSummary {
        added: vec!["ocr".into()],
        removed: vec!["legacy".into()],
        changed: vec!["records".into()],
        unchanged: vec!["export".into(), "search".into()],
    }
}

#[test]
fn reloads() {
    wire(
        "reload_applied",
        ReloadResponse {
            success: true,
            summary: summary(),
            errors: vec![],
        },
    );
    wire(
        "reload_refused",
        ReloadResponse {
            success: false,
            summary: ReloadSummary::default(),
            errors: vec!["[database] changed: a reload never reopens the database or runs migrations; restart conductor to apply it".into()],
        },
    );
}

#[test]
fn metrics() {
    wire(
        "metrics_get",
        MetricsGetResponse {
            services: vec![ServiceMetrics {
                service_name: "records".into(),
                interval_ms: 2000,
                samples: vec![metrics_sample(0), metrics_sample(2)],
            }],
            conductor: vec![MetricsSample {
                memory_kind: MemoryKind::Rss,
                ..metrics_sample(2)
            }],
        },
    );
}

#[test]
fn responses() {
    wire(
        "services_get_all",
        vec![
            status_sample(),
            ServiceStatus {
                name: "reserved".into(),
                port: 3008,
                status: ServiceState::Disabled,
                pid: None,
                uptime: 0,
                last_health_check: None,
                restarts: 0,
                critical: false,
                last_error: Some("exited with code 1".into()),
                cpu_percent: None,
                memory_bytes: None,
                processes: None,
            },
        ],
    );
    wire("service_action_ok", ServiceActionResponse::ok());
    wire(
        "service_action_failed",
        ServiceActionResponse::failed("unknown service \"recrods\""),
    );
    wire(
        "database_init",
        DatabaseInitResponse {
            success: true,
            migrations_run: 2,
            error: None,
        },
    );
    wire(
        "database_init_failed",
        DatabaseInitResponse {
            success: false,
            migrations_run: 0,
            error: Some("V3__things failed: near \"TABEL\": syntax error".into()),
        },
    );
    wire(
        "database_status",
        DatabaseStatus {
            initialized: true,
            version: Some(2),
            path: "/data/factsway.db".into(),
        },
    );
    wire(
        "logs_get",
        LogsGetResponse {
            logs: vec![LogEntry {
                timestamp: "2026-11-25T10:00:00.123Z".into(),
                service: "records".into(),
                level: LogLevel::Warn,
                message: "slow query".into(),
            }],
        },
    );
    wire("logs_clear", SuccessResponse { success: true });
    wire(
        "get_path",
        GetPathResponse {
            path: "/data".into(),
        },
    );
    wire(
        "app_health",
        AppHealth {
            status: AppHealthStatus::Degraded,
            failing: vec!["analysis".into()],
        },
    );
    wire(
        "error_body",
        ErrorBody {
            error: "unknown service \"x\"".into(),
        },
    );
    wire(
        "ipc_info",
        IpcInfo {
            url: "http://127.0.0.1:41234".into(),
            token: "abc".into(),
            pid: 77,
        },
    );
}

#[test]
fn events() {
    let events = [
        Event::ServiceStatusChanged {
            service_name: "records".into(),
            status: status_sample(),
        },
        Event::ServiceError {
            service_name: "records".into(),
            error: "exited with signal 9".into(),
            timestamp: "2026-11-25T10:00:00.123Z".into(),
        },
        Event::DatabaseInitialized {
            success: true,
            migrations_run: 2,
        },
        Event::AppHealthChanged(AppHealth {
            status: AppHealthStatus::Critical,
            failing: vec!["records".into()],
        }),
        Event::AppMetrics(AppMetrics {
            timestamp: "2026-11-25T10:00:02.000Z".into(),
            services: vec![ServiceSample {
                service_name: "records".into(),
                sample: metrics_sample(2),
            }],
            conductor: metrics_sample(2),
            total: MetricsSample {
                processes: 3,
                ..metrics_sample(2)
            },
        }),
        Event::AppReloaded(summary()),
        Event::AppReloadFailed {
            errors: vec!["conductor.toml:3:8: services.records.port: port 80 is below 1024".into()],
        },
        Event::LogsEntry {
            entries: vec![LogEntry {
                timestamp: "2026-11-25T10:00:03.004Z".into(),
                service: "records".into(),
                level: LogLevel::Warn,
                message: "slow query: 412 ms".into(),
            }],
            skipped: vec![
                SkippedLines {
                    service_name: Some("records".into()),
                    lines: 9_900,
                    file: "/data/logs/records.log".into(),
                },
                SkippedLines {
                    service_name: None,
                    lines: 12,
                    file: "/data/logs".into(),
                },
            ],
        },
        Event::Resync {
            oldest_available: 120,
        },
        Event::Lagged { missed: 4096 },
    ];
    for event in events {
        let name = event.name().as_str();
        let payload = event.payload_json();
        let payload_value: serde_json::Value = serde_json::from_str(&payload).unwrap();
        insta::assert_json_snapshot!(format!("event_{}", name.replace(':', "_")), payload_value);
        assert_eq!(Event::from_wire(name, &payload).unwrap(), event);
    }
}

#[test]
fn state_wire_names_are_the_seven_of_the_spec() {
    let names: Vec<String> = ServiceState::ALL
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "\"stopped\"",
            "\"starting\"",
            "\"running\"",
            "\"unhealthy\"",
            "\"stopping\"",
            "\"failed\"",
            "\"disabled\""
        ]
    );
    for state in ServiceState::ALL {
        assert_eq!(
            serde_json::to_string(&state).unwrap(),
            format!("\"{}\"", state.as_str())
        );
    }
}

#[test]
fn requests_reject_unknown_fields() {
    let err = serde_json::from_str::<ServiceRequest>(r#"{"service":"records"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `service`"), "{err}");
}

fn arb_text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

prop_compose! {
    fn arb_status()(
        name in arb_text(), port in any::<u16>(), state in 0usize..7, pid in any::<Option<u32>>(),
        uptime in any::<u64>(), last_health_check in proptest::option::of(arb_text()),
        restarts in any::<u32>(), critical in any::<bool>(), last_error in proptest::option::of(arb_text()),
        // Whole numbers: JSON carries them exactly (the product rounds to 0.1 anyway).
        cpu_percent in proptest::option::of(0u32..100_000), memory_bytes in any::<Option<u64>>(),
        processes in any::<Option<u32>>(),
    ) -> ServiceStatus {
        ServiceStatus {
            name, port, status: ServiceState::ALL[state], pid, uptime, last_health_check, restarts,
            critical, last_error, cpu_percent: cpu_percent.map(f64::from), memory_bytes, processes,
        }
    }
}

fn arb_level() -> impl Strategy<Value = LogLevel> {
    prop_oneof![
        Just(LogLevel::Debug),
        Just(LogLevel::Info),
        Just(LogLevel::Warn),
        Just(LogLevel::Error)
    ]
}

fn arb_health() -> impl Strategy<Value = AppHealth> {
    (
        prop_oneof![
            Just(AppHealthStatus::Healthy),
            Just(AppHealthStatus::Degraded),
            Just(AppHealthStatus::Critical)
        ],
        proptest::collection::vec(arb_text(), 0..4),
    )
        .prop_map(|(status, failing)| AppHealth { status, failing })
}

fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (arb_text(), arb_status()).prop_map(|(service_name, status)| Event::ServiceStatusChanged {
            service_name,
            status
        }),
        (arb_text(), arb_text(), arb_text()).prop_map(|(service_name, error, timestamp)| {
            Event::ServiceError {
                service_name,
                error,
                timestamp,
            }
        }),
        (any::<bool>(), any::<u32>()).prop_map(|(success, migrations_run)| {
            Event::DatabaseInitialized {
                success,
                migrations_run,
            }
        }),
        arb_health().prop_map(Event::AppHealthChanged),
        (
            proptest::collection::vec(
                (arb_text(), arb_text(), arb_level(), arb_text()).prop_map(
                    |(timestamp, service, level, message)| LogEntry {
                        timestamp,
                        service,
                        level,
                        message,
                    }
                ),
                0..3
            ),
            proptest::option::of(arb_text()),
            any::<u64>(),
            arb_text(),
        )
            .prop_map(|(entries, service_name, lines, file)| Event::LogsEntry {
                entries,
                skipped: vec![SkippedLines {
                    service_name,
                    lines,
                    file
                }],
            }),
        any::<u64>().prop_map(|oldest_available| Event::Resync { oldest_available }),
        any::<u64>().prop_map(|missed| Event::Lagged { missed }),
    ]
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let json = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, value);
}

proptest! {
    #[test]
    fn status_round_trips(status in arb_status()) { round_trip(&status); }

    #[test]
    fn event_round_trips_tagged_and_on_the_wire(event in arb_event()) {
        round_trip(&event);
        let back = Event::from_wire(event.name().as_str(), &event.payload_json()).unwrap();
        prop_assert_eq!(back, event);
    }

    #[test]
    fn requests_round_trip(name in arb_text(), lines in any::<Option<usize>>(), path in 0usize..3) {
        round_trip(&ServiceRequest { service_name: name.clone() });
        round_trip(&LogsGetRequest { service_name: Some(name), lines });
        let path_name = [PathName::UserData, PathName::Logs, PathName::Temp][path];
        round_trip(&GetPathRequest { path_name });
    }

    #[test]
    fn responses_round_trip(
        success in any::<bool>(), error in proptest::option::of(arb_text()), n in any::<u32>(),
        version in any::<Option<u32>>(), text in arb_text(), level in arb_level(), health in arb_health(),
        pid in any::<u32>(),
    ) {
        round_trip(&ServiceActionResponse { success, error: error.clone() });
        round_trip(&DatabaseInitResponse { success, migrations_run: n, error: error.clone() });
        round_trip(&DatabaseStatus { initialized: success, version, path: text.clone() });
        round_trip(&LogsGetResponse { logs: vec![LogEntry { timestamp: text.clone(), service: text.clone(), level, message: text.clone() }] });
        round_trip(&SuccessResponse { success });
        round_trip(&GetPathResponse { path: text.clone() });
        round_trip(&health);
        round_trip(&ErrorBody { error: text.clone() });
        round_trip(&IpcInfo { url: text.clone(), token: text, pid });
    }
}
