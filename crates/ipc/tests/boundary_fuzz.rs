//! Issue 12, "fuzz the boundary": random requests over loopback to the real server in front
//! of a real fleet (methods, paths, Host and Authorization, `Last-Event-ID`, Content-Length
//! and chunked framing, bodies of random JSON, deep nesting, huge numbers, wrong types,
//! invalid UTF-8, oversized). After every case the server has answered only documented status
//! codes (or closed a malformed connection), and an authorised `services:restart` of a real
//! fake-service succeeds: no request leaves conductor broken.

pub mod common;

use std::time::Duration;

use common::Fixture;
use conductor_protocol::{Channel, ServiceActionResponse, ServiceRequest};
use proptest::{prelude::*, test_runner::TestRunner};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Every status the control API documents (SPEC §5 and ARCHITECTURE.md's choices).
const DOCUMENTED: &[u16] = &[200, 202, 400, 401, 403, 404, 405, 408, 413, 431, 500, 503];

#[derive(Debug, Clone)]
struct Case {
    method: String,
    path: String,
    host: Option<String>,
    token: Option<bool>,
    last_event_id: Option<String>,
    framing: Framing,
    body: Vec<u8>,
}

#[derive(Debug, Clone)]
enum Framing {
    Length,
    WrongLength(u64),
    Chunked,
    None,
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("serviceName"),
            Just("lines"),
            Just("pathName"),
            Just("alpha")
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("serviceName".to_owned()),
                    Just("lines".to_owned()),
                    Just("pathName".to_owned()),
                    ".{0,8}"
                ],
                inner,
                0..4
            )
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => json().prop_map(|value| value.to_string().into_bytes()),
        1 => Just(Vec::new()),
        1 => (1usize..20_000).prop_map(|depth| {
            let mut text = "[".repeat(depth);
            text.push_str(&"]".repeat(depth));
            text.into_bytes()
        }),
        1 => Just(br#"{"serviceName":"alpha","lines":1e999999}"#.to_vec()),
        1 => Just(br#"{"lines":18446744073709551616,"serviceName":"alpha"}"#.to_vec()),
        1 => Just(br#"{"serviceName":42,"lines":"many"}"#.to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => Just(vec![b'x'; 70 * 1024]),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let channels: Vec<String> = Channel::ALL.iter().map(|c| format!("/ipc/{c}")).collect();
    (
        prop_oneof![
            4 => Just("POST".to_owned()),
            2 => Just("GET".to_owned()),
            1 => prop_oneof![Just("PUT"), Just("DELETE"), Just("OPTIONS"), Just("HEAD")].prop_map(str::to_owned),
            1 => "[A-Z]{1,10}",
        ],
        prop_oneof![
            4 => prop::sample::select(channels),
            2 => Just("/events".to_owned()),
            1 => Just("/".to_owned()),
            1 => "/[a-z:/%.?=&-]{0,30}",
        ],
        prop_oneof![
            4 => Just(Some("127.0.0.1".to_owned())),
            1 => Just(Some("evil.example".to_owned())),
            1 => Just(None),
        ],
        prop_oneof![4 => Just(Some(true)), 1 => Just(Some(false)), 1 => Just(None)],
        prop_oneof![
            3 => Just(None),
            1 => any::<u64>().prop_map(|n| Some(n.to_string())),
            1 => Just(Some(u64::MAX.to_string())),
            1 => "-?[0-9a-z]{0,25}".prop_map(Some),
        ],
        prop_oneof![
            4 => Just(Framing::Length),
            1 => (0u64..u64::MAX).prop_map(Framing::WrongLength),
            1 => Just(Framing::Chunked),
            1 => Just(Framing::None),
        ],
        body(),
    )
        .prop_map(|(method, path, host, token, last_event_id, framing, body)| Case {
            method,
            path,
            host,
            token,
            last_event_id,
            framing,
            body,
        })
}

fn request_bytes(case: &Case, fixture: &Fixture) -> Vec<u8> {
    let mut head = format!("{} {} HTTP/1.1\r\n", case.method, case.path);
    if let Some(host) = &case.host {
        head.push_str(&format!("Host: {host}:{}\r\n", fixture.port));
    }
    match case.token {
        Some(true) => head.push_str(&format!("Authorization: Bearer {}\r\n", fixture.info.token)),
        Some(false) => head.push_str("Authorization: Bearer 0000\r\n"),
        None => {}
    }
    if let Some(id) = &case.last_event_id {
        head.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    head.push_str("Connection: close\r\n");
    let mut body = Vec::new();
    match &case.framing {
        Framing::Length => {
            head.push_str(&format!("Content-Length: {}\r\n", case.body.len()));
            body.extend_from_slice(&case.body);
        }
        Framing::WrongLength(length) => {
            head.push_str(&format!("Content-Length: {length}\r\n"));
            body.extend_from_slice(&case.body);
        }
        Framing::Chunked => {
            head.push_str("Transfer-Encoding: chunked\r\n");
            for chunk in case.body.chunks(4096) {
                body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                body.extend_from_slice(chunk);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"0\r\n\r\n");
        }
        Framing::None => {}
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

/// Sends the request and returns the response's status, or `None` if the server closed the
/// connection without one.
async fn exchange(fixture: &Fixture, request: &[u8]) -> Option<u16> {
    let mut socket = tokio::net::TcpStream::connect(fixture.addr()).await.ok()?;
    // The server may answer (413, 400) and close before it has read everything.
    let _ = socket.write_all(request).await;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Some(end) = received.windows(2).position(|w| w == b"\r\n") {
                return Some(end);
            }
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .ok()??;
    let line = String::from_utf8_lossy(&received[..read]).into_owned();
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn random_requests_get_documented_answers_and_leave_conductor_working() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let fixture = runtime.block_on(Fixture::new("boundary-fuzz", true));
    let client = fixture.client();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&case(), |case| {
        let request = request_bytes(&case, &fixture);
        let status = runtime.block_on(exchange(&fixture, &request));
        if let Some(status) = status {
            prop_assert!(
                DOCUMENTED.contains(&status),
                "undocumented status {status} for {case:?}"
            );
        }
        let answer: ServiceActionResponse = runtime
            .block_on(client.call(
                Channel::ServicesRestart,
                Some(&ServiceRequest {
                    service_name: "alpha".to_owned(),
                }),
            ))
            .map_err(|error| TestCaseError::fail(format!("after {case:?}: {error}")))?;
        prop_assert!(answer.success, "after {case:?}: {answer:?}");
        Ok(())
    });
    runtime.block_on(fixture.finish());
    if let Err(error) = result {
        panic!("{error}");
    }
}
