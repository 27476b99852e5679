//! SPEC §5 as issue 17 extends it: pages on the origins the app names may call the control API
//! from a browser (CORS), every other origin is refused before its token is looked at, and a
//! request without `Origin` (CLI, Node) is served as before. Raw HTTP over loopback, so every
//! header is seen as a browser would see it.

// `pub` so the helpers this file does not use are not dead code.
pub mod common;

use common::{Fixture, RawResponse, parse_response, raw_request};
use conductor_test_support::DEADLINE;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const APP: &str = "app://factsway";
const DEV: &str = "http://localhost:5173";

/// Every `Access-Control-*` and `Vary` header of a response, lowercased names, in order.
fn cors_headers(response: &RawResponse) -> Vec<String> {
    response
        .head
        .lines()
        .filter(|line| {
            let name = line.to_ascii_lowercase();
            name.starts_with("access-control-") || name.starts_with("vary:")
        })
        .map(str::to_owned)
        .collect()
}

async fn allowing_both(label: &str) -> Fixture {
    Fixture::allowing(label, &[APP, DEV]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preflight_from_an_allowed_origin_is_answered_without_a_token() {
    let fixture = allowing_both("cors-preflight").await;
    for origin in [APP, DEV] {
        let response = raw_request(
            fixture.addr(),
            &format!(
                "OPTIONS /ipc/services:get-all HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {origin}\r\n\
                 Access-Control-Request-Method: POST\r\n\
                 Access-Control-Request-Headers: authorization, content-type",
                fixture.port
            ),
            b"",
        )
        .await;
        assert_eq!(response.status, 204, "{response:?}");
        assert_eq!(
            cors_headers(&response),
            [
                "access-control-allow-methods: GET, POST, OPTIONS".to_owned(),
                "access-control-allow-headers: authorization, content-type, last-event-id"
                    .to_owned(),
                "access-control-max-age: 600".to_owned(),
                format!("access-control-allow-origin: {origin}"),
                "vary: Origin".to_owned(),
            ],
            "{response:?}"
        );
        assert_eq!(response.body, "");
    }
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_origin_is_refused_before_the_token_and_gets_no_cors_headers() {
    let fixture = allowing_both("cors-refused").await;
    let token = &fixture.info.token;
    let port = fixture.port;
    let requests = [
        format!(
            "OPTIONS /ipc/services:get-all HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\nAccess-Control-Request-Method: POST"
        ),
        // A valid token does not help, and a wrong one is not even looked at (403, not 401).
        format!(
            "POST /ipc/services:get-all HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\nAuthorization: Bearer {token}\r\nContent-Length: 0"
        ),
        format!(
            "POST /ipc/services:get-all HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\nAuthorization: Bearer wrong\r\nContent-Length: 0"
        ),
        format!(
            "GET /events?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example"
        ),
        // A data: page or sandboxed frame; and an allowed origin spelled another way.
        format!(
            "POST /ipc/services:get-all HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: null\r\nAuthorization: Bearer {token}\r\nContent-Length: 0"
        ),
        format!(
            "POST /ipc/services:get-all HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://localhost:5173/\r\nAuthorization: Bearer {token}\r\nContent-Length: 0"
        ),
        format!(
            "POST /ipc/services:get-all HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: APP://factsway\r\nAuthorization: Bearer {token}\r\nContent-Length: 0"
        ),
    ];
    for request in &requests {
        let response = raw_request(fixture.addr(), request, b"").await;
        assert_eq!(response.status, 403, "{request}\n{response:?}");
        assert_eq!(cors_headers(&response), Vec::<String>::new(), "{request}");
        assert!(
            response.body.contains("may not call the control API")
                && response.body.contains("[app] allowed_origins"),
            "{request}\n{}",
            response.body
        );
    }
    let response = raw_request(fixture.addr(), &requests[0], b"").await;
    insta::assert_snapshot!(
        "unknown_origin",
        format!("{} {}", response.status, response.body)
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_origin_with_the_token_is_served_and_its_origin_echoed() {
    let fixture = allowing_both("cors-allowed").await;
    let port = fixture.port;
    let response = raw_request(
        fixture.addr(),
        &format!(
            "POST /ipc/services:get-all HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {DEV}\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 0",
            fixture.info.token
        ),
        b"",
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(response.body.contains("\"name\":\"alpha\""), "{response:?}");
    assert_eq!(
        cors_headers(&response),
        [
            format!("access-control-allow-origin: {DEV}"),
            "vary: Origin".to_owned()
        ]
    );
    // Refusals past the origin check carry the header too, so the page can read them.
    let wrong_token = raw_request(
        fixture.addr(),
        &format!(
            "POST /ipc/services:get-all HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {APP}\r\n\
             Authorization: Bearer wrong\r\nContent-Length: 0"
        ),
        b"",
    )
    .await;
    assert_eq!(wrong_token.status, 401, "{wrong_token:?}");
    assert_eq!(wrong_token.header("access-control-allow-origin"), Some(APP));
    // The Host check still comes first, origin allowed or not.
    let rebound = raw_request(
        fixture.addr(),
        &format!(
            "POST /ipc/services:get-all HTTP/1.1\r\nHost: evil.example:{port}\r\nOrigin: {APP}\r\n\
             Authorization: Bearer {}\r\nContent-Length: 0",
            fixture.info.token
        ),
        b"",
    )
    .await;
    assert_eq!(rebound.status, 403, "{rebound:?}");
    assert!(
        rebound.body.contains("is not a loopback name"),
        "{rebound:?}"
    );
    assert_eq!(cors_headers(&rebound), Vec::<String>::new());
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_origin_requests_are_served_as_before() {
    let fixture = allowing_both("cors-none").await;
    let port = fixture.port;
    let token = &fixture.info.token;
    let cases = [
        (
            format!(
                "POST /ipc/services:get-all HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0"
            ),
            200,
        ),
        (
            format!(
                "POST /ipc/services:get-all HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0"
            ),
            401,
        ),
        (
            format!("OPTIONS /ipc/services:get-all HTTP/1.1\r\nHost: 127.0.0.1:{port}"),
            401,
        ),
        (
            format!(
                "OPTIONS /ipc/services:get-all HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}"
            ),
            405,
        ),
    ];
    for (request, status) in &cases {
        let response = raw_request(fixture.addr(), request, b"").await;
        assert_eq!(response.status, *status, "{request}\n{response:?}");
        assert_eq!(cors_headers(&response), Vec::<String>::new(), "{request}");
    }
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_source_on_an_allowed_origin_gets_the_header() {
    let fixture = allowing_both("cors-events").await;
    let mut socket = tokio::net::TcpStream::connect(fixture.addr())
        .await
        .unwrap();
    // What Chromium's EventSource sends: no preflight, the token in the query.
    let request = format!(
        "GET /events?token={} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {APP}\r\n\
         Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
        fixture.info.token, fixture.port
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    // The stream never ends: read up to the end of the head.
    let mut received = Vec::new();
    let head = tokio::time::timeout(DEADLINE, async {
        let mut buffer = [0u8; 1024];
        while !received.windows(4).any(|window| window == b"\r\n\r\n") {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(head.is_ok(), "no response head within {DEADLINE:?}");
    let response = parse_response(&received);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert_eq!(
        cors_headers(&response),
        [
            format!("access-control-allow-origin: {APP}"),
            "vary: Origin".to_owned()
        ]
    );
    drop(socket);
    fixture.finish().await;
}
