//! Issue 16, the debug panel as HTTP: `GET /` and `/panel/…` serve the page and the JS
//! client's own modules without the token, under a strict Content-Security-Policy; the `Host`
//! check still applies; the page's own origin may call the API with the token, and every
//! other origin is still refused. What the page does is tested in a real browser
//! (`tests/browser/panel.test.mjs`).

// `pub` so the helpers this file does not use are not dead code.
pub mod common;

use common::{Fixture, raw_request};

/// The head of a `method` request for `path` addressed to `host`.
fn request(method: &str, path: &str, host: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: {host}")
}

fn get(path: &str, host: &str) -> String {
    request("GET", path, host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_modules_are_served_without_the_token_under_a_strict_policy() {
    let fixture = Fixture::new("panel-assets", false).await;
    let host = format!("127.0.0.1:{}", fixture.port);
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/panel/", "text/html; charset=utf-8"),
        ("/panel/index.html", "text/html; charset=utf-8"),
        ("/panel/panel.js", "text/javascript; charset=utf-8"),
        ("/panel/panel.css", "text/css; charset=utf-8"),
        ("/panel/client/index.js", "text/javascript; charset=utf-8"),
    ] {
        let response = raw_request(fixture.addr(), &get(path, &host), b"").await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert_eq!(
            response.header("content-type"),
            Some(content_type),
            "{path}"
        );
        let policy = response
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{path} has no Content-Security-Policy"));
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(
            !policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"),
            "{path}: {policy}"
        );
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
        assert!(!response.body.is_empty(), "{path} is empty");
    }
    // The client is the package's own file, byte for byte: one client, not two.
    let served = raw_request(fixture.addr(), &get("/panel/client/index.js", &host), b"").await;
    let package = include_str!("../../../clients/js/src/index.js");
    assert_eq!(served.body, package);
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_keeps_the_host_check_and_answers_only_get_and_head() {
    let fixture = Fixture::new("panel-refusals", false).await;
    let host = format!("127.0.0.1:{}", fixture.port);
    let rebound = raw_request(
        fixture.addr(),
        &get("/", &format!("evil.example:{}", fixture.port)),
        b"",
    )
    .await;
    assert_eq!(rebound.status, 403, "{rebound:?}");
    assert!(rebound.body.contains("not a loopback name"), "{rebound:?}");

    let missing = raw_request(fixture.addr(), &get("/panel/secrets.js", &host), b"").await;
    assert_eq!(missing.status, 404, "{missing:?}");
    assert!(
        missing.body.contains("the panel is at GET /"),
        "{missing:?}"
    );

    let post = raw_request(
        fixture.addr(),
        &format!("{}\r\nContent-Length: 0", request("POST", "/", &host)),
        b"",
    )
    .await;
    assert_eq!(post.status, 405, "{post:?}");
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    let head = raw_request(
        fixture.addr(),
        &request("HEAD", "/panel/panel.js", &host),
        b"",
    )
    .await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.body, "", "a HEAD answer has no body: {head:?}");
    assert!(
        head.header("content-length")
            .is_some_and(|length| length != "0"),
        "{head:?}"
    );
    fixture.finish().await;
}

/// Browsers send `Origin` on the page's POSTs: its own origin is let through to the token
/// check, and gets no CORS headers (it needs none); another origin is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_own_origin_may_call_the_api_with_the_token() {
    let fixture = Fixture::new("panel-origin", false).await;
    let token = fixture.info.token.clone();
    let addr = fixture.addr();
    let call = |host: &str, origin: &str, token: &str| {
        let head = format!(
            "POST /ipc/app:health HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n\
             Authorization: Bearer {token}\r\nContent-Length: 0"
        );
        async move { raw_request(addr, &head, b"").await }
    };
    for host in [
        format!("127.0.0.1:{}", fixture.port),
        format!("localhost:{}", fixture.port),
    ] {
        let own = call(&host, &format!("http://{host}"), &token).await;
        assert_eq!(own.status, 200, "{host}: {own:?}");
        assert_eq!(own.header("access-control-allow-origin"), None);

        let no_token = call(&host, &format!("http://{host}"), "0000").await;
        assert_eq!(no_token.status, 401, "{host}: {no_token:?}");

        let other_port = call(&host, &format!("http://{host}0"), &token).await;
        assert_eq!(other_port.status, 403, "{host}: {other_port:?}");
        let other_scheme = call(&host, &format!("https://{host}"), &token).await;
        assert_eq!(other_scheme.status, 403, "{host}: {other_scheme:?}");
    }
    fixture.finish().await;
}
