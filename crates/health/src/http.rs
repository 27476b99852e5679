//! The HTTP probe: `GET http://127.0.0.1:<port><path>` through a pooled hyper-util client,
//! falling back to `[::1]` when 127.0.0.1 refuses, and the pure rule that turns a status code
//! and body into a [`ProbeOutcome`].
//! It never follows redirects and never reads more than [`MAX_BODY_BYTES`] of a body.

use std::{
    error::Error as StdError,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use bytes::Bytes;
use conductor_protocol::error_chain;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, StatusCode, Uri, header};
use hyper_util::{
    client::legacy::{self, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use serde_json::Value;

use crate::{ProbeOutcome, duration::human};

/// The shared client type: plain HTTP, empty request bodies.
pub(crate) type Client = legacy::Client<HttpConnector, Empty<Bytes>>;

/// A health body larger than this is not read in full; its status code alone decides.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Idle pooled connections are closed after this; probes usually come every few seconds.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn client() -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        // Without a timer idle connections are only dropped when next checked out; with it
        // a stopped service's kept-alive socket is closed within the idle timeout.
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// One HTTP probe, all of it (both addresses, request and body) within `timeout`.
pub(crate) async fn probe(
    client: &Client,
    port: u16,
    path: &str,
    timeout: Duration,
    correlation_id: &str,
) -> ProbeOutcome {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    // hyper-util has no per-request timeout; dropping the future on timeout drops the
    // connection too, so a hung server cannot poison the pool.
    match tokio::time::timeout(
        timeout,
        probe_any_address(client, port, &path, correlation_id),
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(_elapsed) => ProbeOutcome::Unhealthy(format!("timed out after {}", human(timeout))),
    }
}

async fn probe_any_address(
    client: &Client,
    port: u16,
    path: &str,
    correlation_id: &str,
) -> ProbeOutcome {
    let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    match get(client, v4, path, correlation_id).await {
        // Node services bound to "localhost" may listen on ::1 only.
        Err(GetError::Refused) => {
            let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port);
            match get(client, v6, path, correlation_id).await {
                // Refused, or no IPv6 at all: 127.0.0.1's refusal is the news.
                Err(GetError::Refused | GetError::Connect) => {
                    ProbeOutcome::Unhealthy("connection refused".to_owned())
                }
                result => outcome(path, result),
            }
        }
        result => outcome(path, result),
    }
}

#[derive(Debug)]
enum GetError {
    /// The connection was refused: nobody listens there.
    Refused,
    /// Connecting failed another way.
    Connect,
    /// Anything else, as a message.
    Other(String),
}

/// What a GET returned: the status and the body, `None` if it was over the limit.
type Answer = (StatusCode, Option<Bytes>);

async fn get(
    client: &Client,
    address: SocketAddr,
    path: &str,
    correlation_id: &str,
) -> Result<Answer, GetError> {
    let uri: Uri = format!("http://{address}{path}")
        .parse()
        .map_err(|err| GetError::Other(format!("invalid health path {path:?}: {err}")))?;
    let mut request = Request::get(uri).header(header::HOST, address.to_string());
    if !correlation_id.is_empty() {
        match header::HeaderValue::from_str(correlation_id) {
            Ok(value) => request = request.header("x-correlation-id", value),
            Err(_) => {
                tracing::warn!(correlation_id, "correlation id is not a valid header value")
            }
        }
    }
    let request = request
        .body(Empty::new())
        .map_err(|err| GetError::Other(format!("cannot build the request: {err}")))?;
    let response = client.request(request).await.map_err(|err| {
        if err.is_connect() {
            if find_io_error(&err).is_some_and(|io| io.kind() == io::ErrorKind::ConnectionRefused) {
                GetError::Refused
            } else {
                GetError::Connect
            }
        } else {
            GetError::Other(error_chain(&err))
        }
    })?;
    let status = response.status();
    let body = match Limited::new(response.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Some(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => None,
        Err(err) => {
            return Err(GetError::Other(format!(
                "reading the body: {}",
                error_chain(err.as_ref())
            )));
        }
    };
    Ok((status, body))
}

fn outcome(path: &str, result: Result<Answer, GetError>) -> ProbeOutcome {
    match result {
        Ok((status, body)) => classify(path, status, body.as_deref()),
        Err(GetError::Refused) => ProbeOutcome::Unhealthy("connection refused".to_owned()),
        Err(GetError::Connect) => {
            ProbeOutcome::Unhealthy(format!("GET {path} failed: cannot connect"))
        }
        Err(GetError::Other(message)) => {
            ProbeOutcome::Unhealthy(format!("GET {path} failed: {message}"))
        }
    }
}

/// The SPEC's rule: 2xx is healthy unless the body is JSON with a `"status"` that says
/// otherwise (`"ok"`/`"healthy"` healthy, `"degraded"` degraded, anything else unhealthy).
/// Status words are compared ignoring ASCII case. A body over the limit (`None`) is not
/// looked at.
pub(crate) fn classify(path: &str, status: StatusCode, body: Option<&[u8]>) -> ProbeOutcome {
    if !status.is_success() {
        return ProbeOutcome::Unhealthy(format!("GET {path} answered {}", status.as_u16()));
    }
    let Some(Ok(Value::Object(fields))) = body.map(serde_json::from_slice::<Value>) else {
        return ProbeOutcome::Healthy;
    };
    let Some(reported) = fields.get("status") else {
        return ProbeOutcome::Healthy;
    };
    // A service that says why ("message", "reason", "error") gets its words into the outcome.
    let detail = ["message", "reason", "error"]
        .iter()
        .find_map(|key| fields.get(*key).and_then(Value::as_str))
        .map(|text| format!(": {text}"))
        .unwrap_or_default();
    let word = reported.as_str().map(str::to_ascii_lowercase);
    match word.as_deref() {
        Some("ok" | "healthy") => ProbeOutcome::Healthy,
        Some("degraded") => {
            ProbeOutcome::Degraded(format!("GET {path} reported status \"degraded\"{detail}"))
        }
        _ => ProbeOutcome::Unhealthy(format!("GET {path} reported status {reported}{detail}")),
    }
}

fn find_io_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_body(status: u16, body: &str) -> ProbeOutcome {
        let status = StatusCode::from_u16(status).unwrap();
        classify("/health", status, Some(body.as_bytes()))
    }

    #[test]
    fn status_codes_and_bodies() {
        let cases = [
            (200, r#"{"status":"ok"}"#, ProbeOutcome::Healthy),
            (
                200,
                r#"{"status":"healthy","uptime":3}"#,
                ProbeOutcome::Healthy,
            ),
            (200, r#"{"status":"OK"}"#, ProbeOutcome::Healthy),
            (204, "", ProbeOutcome::Healthy),
            (200, "pong", ProbeOutcome::Healthy),
            (200, r#"{"uptime":3}"#, ProbeOutcome::Healthy),
            (200, r#"["status"]"#, ProbeOutcome::Healthy),
            (
                200,
                r#"{"status":"degraded"}"#,
                ProbeOutcome::Degraded(r#"GET /health reported status "degraded""#.to_owned()),
            ),
            (
                200,
                r#"{"status":"degraded","message":"db slow"}"#,
                ProbeOutcome::Degraded(
                    r#"GET /health reported status "degraded": db slow"#.to_owned(),
                ),
            ),
            (
                200,
                r#"{"status":"starting"}"#,
                ProbeOutcome::Unhealthy(r#"GET /health reported status "starting""#.to_owned()),
            ),
            (
                200,
                r#"{"status":false}"#,
                ProbeOutcome::Unhealthy("GET /health reported status false".to_owned()),
            ),
            (
                503,
                r#"{"status":"ok"}"#,
                ProbeOutcome::Unhealthy("GET /health answered 503".to_owned()),
            ),
            (
                301,
                "",
                ProbeOutcome::Unhealthy("GET /health answered 301".to_owned()),
            ),
        ];
        for (status, body, expected) in cases {
            assert_eq!(classify_body(status, body), expected, "{status} {body}");
        }
    }

    #[test]
    fn a_body_over_the_limit_is_judged_by_its_status_code() {
        assert_eq!(
            classify("/health", StatusCode::OK, None),
            ProbeOutcome::Healthy
        );
        assert!(!classify("/health", StatusCode::BAD_GATEWAY, None).is_up());
    }

    #[test]
    fn chain_skips_repeated_sources() {
        let inner = io::Error::new(io::ErrorKind::ConnectionReset, "connection reset");
        let outer = io::Error::other(inner);
        assert_eq!(error_chain(&outer), "connection reset");
    }
}
