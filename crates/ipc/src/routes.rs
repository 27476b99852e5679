//! What each request means: the `Host` and token checks, the routes (`POST /ipc/<channel>`,
//! `GET /events`, and the debug panel's files at `GET /` and `/panel/…`, served without the
//! token), body limits and parsing, and the mapping of every channel onto one call on
//! the [`Conductor`] handle, with JSON error bodies that say what was wrong and what to do.
//! It knows nothing about sockets or connection lifetimes (see `server`).
//!
//! Check order: `Host` (403), then `Origin` (403), then the token (401), then path (404),
//! method (405), body size (413) and body content (400). `Host` comes first so that a page
//! reached through DNS rebinding is refused the same way whatever it sends, and learns nothing
//! about the token. `Origin` comes before the token for the same reason: a web page the user
//! happens to visit is refused whatever it sends, and a preflight (which carries no token) from
//! an allowed origin is answered before the token check.
//!
//! CORS: only an origin in [`State::allowed_origins`] gets CORS headers, its own value echoed
//! (never `*`); a request without `Origin` (the CLI, Node, curl) is served as before, and so is
//! one from the server's own origin (the panel's page).

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use conductor_protocol::{
    Channel, DEFAULT_LOG_LINES, DatabaseInitResponse, ErrorBody, GetPathRequest, GetPathResponse,
    LogsGetRequest, LogsGetResponse, MAX_BODY_BYTES, MetricsGetRequest, PathName, ReloadRequest,
    ReloadResponse, ServiceActionResponse, ServiceRequest, SuccessResponse, error_chain,
};
use conductor_supervisor::{ActionError, Conductor};
use http_body_util::{BodyExt as _, Either, Full, LengthLimitError, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderName, HeaderValue},
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::watch;

use crate::{auth, panel, sse::SseBody};

/// A client must finish sending its request body within this time.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// After a chunked body went over the limit, up to this much more is read and thrown away so
/// the connection closes cleanly and the client sees the 413 (closing a socket with unread
/// data resets it, and the client may lose the response).
const DRAIN_BYTES: usize = 1024 * 1024;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything a request handler needs; shared by all connections.
pub(crate) struct State {
    pub(crate) conductor: Conductor,
    pub(crate) token: String,
    pub(crate) keep_alive: Duration,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Places for event streams; a stream holds one until it ends.
    pub(crate) event_streams: Arc<tokio::sync::Semaphore>,
    /// Origins whose pages may call the API (CORS); every other `Origin` is refused.
    pub(crate) allowed_origins: Vec<String>,
}

/// How long a browser may cache a preflight answer. Short, so an edited list (applied when
/// conductor restarts) is not shadowed for long; Chromium caps it at 2 hours anyway.
const PREFLIGHT_MAX_AGE: &str = "600";

pub(crate) type ResponseBody = Either<Full<Bytes>, SseBody>;

/// A refused request: its status and the message for [`ErrorBody`].
struct ApiError {
    status: StatusCode,
    message: String,
    header: Option<(HeaderName, HeaderValue)>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            header: None,
        }
    }

    fn with_header(mut self, name: HeaderName, value: &'static str) -> ApiError {
        self.header = Some((name, HeaderValue::from_static(value)));
        self
    }

    fn into_response(self) -> Response<ResponseBody> {
        let mut response = json_response(
            self.status,
            &ErrorBody {
                error: self.message,
            },
        );
        if let Some((name, value)) = self.header {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// Serves one request. Never fails: every problem becomes a JSON error response.
pub(crate) async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = match admit(&state, &request) {
        Err(refusal) => refusal.into_response(),
        Ok(None) => route(&state, request)
            .await
            .unwrap_or_else(ApiError::into_response),
        Ok(Some(origin)) => {
            let mut response = if method == Method::OPTIONS {
                preflight()
            } else {
                route(&state, request)
                    .await
                    .unwrap_or_else(ApiError::into_response)
            };
            // Errors too: a page must be able to read why it was refused.
            let headers = response.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
            response
        }
    };
    tracing::debug!(%method, %path, status = response.status().as_u16(), "control API request");
    Ok(response)
}

/// The checks made before anything else, token included: `Host`, then `Origin`. `Ok` holds
/// the request's origin when it is an allowed one, `None` when the request has no `Origin`.
fn admit(state: &State, request: &Request<Incoming>) -> Result<Option<HeaderValue>, ApiError> {
    check_host(request)?;
    check_origin(state, request)
}

/// An allowed `Origin` (returned for echoing), none, or a 403 naming the origin.
fn check_origin(
    state: &State,
    request: &Request<Incoming>,
) -> Result<Option<HeaderValue>, ApiError> {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return Ok(None);
    };
    if is_own_origin(request, origin) {
        // The debug panel, served from here: browsers send `Origin` on its POSTs. Same
        // origin, so no CORS headers.
        return Ok(None);
    }
    if state
        .allowed_origins
        .iter()
        .any(|allowed| allowed.as_bytes() == origin.as_bytes())
    {
        return Ok(Some(origin.clone()));
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "Origin {:?} may not call the control API; if it is the app's own page, add it to \
             [app] allowed_origins in the registry and restart conductor",
            String::from_utf8_lossy(origin.as_bytes())
        ),
    ))
}

/// Whether `origin` is this server's own, `http://<Host>`; the `Host` check has already made
/// sure that is a loopback name, so a page of another site (DNS rebinding included) never
/// matches.
fn is_own_origin(request: &Request<Incoming>, origin: &HeaderValue) -> bool {
    let Some(host) = request.headers().get(header::HOST) else {
        return false;
    };
    origin
        .as_bytes()
        .strip_prefix(b"http://")
        .is_some_and(|rest| rest.eq_ignore_ascii_case(host.as_bytes()))
}

/// The answer to a CORS preflight from an allowed origin: it carries no token, and says which
/// methods and headers the real request may use.
fn preflight() -> Response<ResponseBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, last-event-id"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    response
}

async fn route(
    state: &State,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, ApiError> {
    let path = request.uri().path().to_owned();
    if panel::is_panel_path(&path) {
        // The page and its modules hold no secret; the page brings the token to the API.
        // HEAD too, as for any file (hyper sends no body in answer to it).
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Err(
                method_not_allowed(&request, "GET or HEAD").with_header(header::ALLOW, "GET, HEAD")
            );
        }
        return panel::asset(&path).map_err(|(status, message)| ApiError::new(status, message));
    }
    let query = request.uri().query().unwrap_or("").to_owned();
    // Browsers' EventSource cannot set headers, so the event stream also takes `?token=`.
    // Only there: a token in a URL ends up in histories and logs.
    let query_token = if path == "/events" {
        query_param(&query, "token")
    } else {
        None
    };
    check_token(state, &request, query_token)?;

    if path == "/events" {
        if request.method() != Method::GET {
            return Err(
                method_not_allowed(&request, "GET /events").with_header(header::ALLOW, "GET")
            );
        }
        return events(state, &request, &query);
    }
    let Some(name) = path.strip_prefix("/ipc/") else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no such path {path:?}; the control API serves POST /ipc/<channel>, GET /events and the debug panel at GET /"
            ),
        ));
    };
    let channel: Channel =
        name.parse()
            .map_err(|unknown: conductor_protocol::UnknownChannel| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("{unknown}; send POST /ipc/<channel>"),
                )
            })?;
    if request.method() != Method::POST {
        return Err(
            method_not_allowed(&request, &format!("POST /ipc/{channel}"))
                .with_header(header::ALLOW, "POST"),
        );
    }
    let body = read_body(request).await?;
    dispatch(&state.conductor, channel, &body).await
}

fn check_host(request: &Request<Incoming>) -> Result<(), ApiError> {
    match request.headers().get(header::HOST) {
        Some(host) if auth::is_loopback_host(host.as_bytes()) => Ok(()),
        Some(host) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Host {:?} is not a loopback name; the control API only answers requests addressed to \
                 127.0.0.1, localhost or [::1]",
                String::from_utf8_lossy(host.as_bytes())
            ),
        )),
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "missing Host header; send Host: 127.0.0.1:<port> as HTTP/1.1 requires",
        )),
    }
}

fn check_token(
    state: &State,
    request: &Request<Incoming>,
    query_token: Option<&str>,
) -> Result<(), ApiError> {
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| auth::bearer_token(value.as_bytes()));
    let presented = match (from_header, query_token) {
        (Some(Some(token)), _) => Some(token),
        (_, Some(token)) => Some(token.as_bytes()),
        _ => None,
    };
    let refusal = match presented {
        Some(token) if auth::token_matches(token, state.token.as_bytes()) => return Ok(()),
        Some(_) => {
            "wrong bearer token; use the token in ipc.json under the running instance's data directory"
        }
        None => {
            "missing bearer token; send Authorization: Bearer <token> with the token from ipc.json \
             under the running instance's data directory"
        }
    };
    Err(ApiError::new(StatusCode::UNAUTHORIZED, refusal)
        .with_header(header::WWW_AUTHENTICATE, "Bearer"))
}

fn method_not_allowed(request: &Request<Incoming>, allowed: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {} is not allowed here; use {allowed}",
            request.method()
        ),
    )
}

/// The value of `name` in a query string. Values are not percent-decoded: the two parameters
/// read here (a hex token, a decimal id) never need it.
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

fn events(
    state: &State,
    request: &Request<Incoming>,
    query: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let header_value = request
        .headers()
        .get("last-event-id")
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let raw = header_value.or_else(|| query_param(query, "lastEventId").map(str::to_owned));
    // Whatever a client sends, it gets a stream: an id it cannot have been given (negative,
    // not a number, too large) is answered like one of an earlier run, with `resync`.
    let last_event_id = match raw.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(text.parse::<u64>().unwrap_or(u64::MAX)),
    };
    let Ok(place) = state.event_streams.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many event streams are open ({}); close one (a UI needs one stream)",
                crate::server::MAX_EVENT_STREAMS
            ),
        ));
    };
    let subscription = state.conductor.subscribe(last_event_id);
    let body = SseBody::new(
        subscription,
        state.keep_alive,
        state.shutdown.clone(),
        Some(place),
    );
    let mut response = Response::new(Either::Right(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is over {} KiB; requests are small JSON objects",
                MAX_BODY_BYTES / 1024
            ),
        )
        .with_header(header::CONNECTION, "close")
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = request.into_body();
    let collected = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        Limited::new(&mut body, MAX_BODY_BYTES).collect(),
    )
    .await;
    match collected {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
            drain(&mut body).await;
            Err(too_large())
        }
        Ok(Err(err)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("could not read the request body: {err}"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {BODY_READ_TIMEOUT:?}"),
        )
        .with_header(header::CONNECTION, "close")),
    }
}

/// Reads and discards the rest of an oversized body, within bounds (see [`DRAIN_BYTES`]).
async fn drain(body: &mut Incoming) {
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        let mut n_drained = 0;
        while let Some(Ok(frame)) = body.frame().await {
            n_drained += frame.data_ref().map_or(0, Bytes::len);
            if n_drained > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

async fn dispatch(
    conductor: &Conductor,
    channel: Channel,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    match channel {
        Channel::ServicesGetAll => {
            no_arguments(channel, body)?;
            Ok(json_response(StatusCode::OK, &conductor.statuses()))
        }
        Channel::ServicesStart | Channel::ServicesStop | Channel::ServicesRestart => {
            let request: ServiceRequest = arguments(channel, body)?;
            let name = request.service_name.as_str();
            let result = match channel {
                Channel::ServicesStart => conductor.start(name).await,
                Channel::ServicesStop => conductor.stop(name).await,
                _ => conductor.restart(name).await,
            };
            match result {
                Ok(()) => Ok(json_response(StatusCode::OK, &ServiceActionResponse::ok())),
                Err(ActionError::UnknownService(unknown)) => {
                    Err(ApiError::new(StatusCode::BAD_REQUEST, unknown.to_string()))
                }
                Err(error) => Ok(json_response(
                    StatusCode::OK,
                    &ServiceActionResponse::failed(error.to_string()),
                )),
            }
        }
        Channel::DatabaseInit => {
            no_arguments(channel, body)?;
            let response = match conductor.init_database().await {
                Ok(report) => DatabaseInitResponse {
                    success: true,
                    migrations_run: report.migrations_run,
                    error: None,
                },
                Err(err) => DatabaseInitResponse {
                    success: false,
                    migrations_run: 0,
                    error: Some(err.to_string()),
                },
            };
            Ok(json_response(StatusCode::OK, &response))
        }
        Channel::DatabaseStatus => {
            no_arguments(channel, body)?;
            match conductor.database_status().await {
                Ok(status) => Ok(json_response(StatusCode::OK, &status)),
                Err(err) => Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("could not read the database status: {err}"),
                )),
            }
        }
        Channel::LogsGet => {
            let request: LogsGetRequest = arguments(channel, body)?;
            let lines = request.lines.unwrap_or(DEFAULT_LOG_LINES);
            let logs = conductor
                .logs(request.service_name.as_deref(), lines)
                .map_err(|unknown| ApiError::new(StatusCode::BAD_REQUEST, unknown.to_string()))?;
            Ok(json_response(StatusCode::OK, &LogsGetResponse { logs }))
        }
        Channel::LogsClear => {
            no_arguments(channel, body)?;
            match conductor.clear_logs().await {
                Ok(()) => Ok(json_response(
                    StatusCode::OK,
                    &SuccessResponse { success: true },
                )),
                Err(err) => Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("could not clear the logs: {}", error_chain(&err)),
                )),
            }
        }
        Channel::AppGetPath => {
            let request: GetPathRequest = arguments(channel, body)?;
            let paths = conductor.paths();
            let path = match request.path_name {
                PathName::UserData => &paths.user_data,
                PathName::Logs => &paths.logs,
                PathName::Temp => &paths.temp,
            };
            Ok(json_response(
                StatusCode::OK,
                &GetPathResponse {
                    path: path.display().to_string(),
                },
            ))
        }
        Channel::AppQuit => {
            no_arguments(channel, body)?;
            // The binary reacts to this asynchronously and shuts the server down gracefully,
            // so this response is still written before the connection closes.
            conductor.quit();
            Ok(json_response(
                StatusCode::ACCEPTED,
                &SuccessResponse { success: true },
            ))
        }
        Channel::AppHealth => {
            no_arguments(channel, body)?;
            Ok(json_response(StatusCode::OK, &conductor.health()))
        }
        Channel::MetricsGet => {
            let request: MetricsGetRequest = arguments(channel, body)?;
            let metrics = conductor
                .metrics(request.service_name.as_deref(), request.seconds)
                .map_err(|unknown| ApiError::new(StatusCode::BAD_REQUEST, unknown.to_string()))?;
            Ok(json_response(StatusCode::OK, &metrics))
        }
        Channel::AppReload => {
            let request: ReloadRequest = arguments(channel, body)?;
            let path = request.registry.map(std::path::PathBuf::from);
            let response = match conductor.reload_file(path.as_deref()).await {
                Ok(summary) => ReloadResponse {
                    success: true,
                    summary,
                    errors: Vec::new(),
                },
                Err(error) => ReloadResponse {
                    success: false,
                    summary: Default::default(),
                    errors: error.messages(),
                },
            };
            Ok(json_response(StatusCode::OK, &response))
        }
    }
}

/// An example body for the channels that take one, for error messages.
fn example(channel: Channel) -> &'static str {
    match channel {
        Channel::ServicesStart | Channel::ServicesStop | Channel::ServicesRestart => {
            r#"{"serviceName":"records"}"#
        }
        Channel::LogsGet => r#"{"serviceName":"records","lines":100} (both optional)"#,
        Channel::AppGetPath => r#"{"pathName":"userData"} (or "logs", "temp")"#,
        Channel::MetricsGet => r#"{"serviceName":"records","seconds":60} (both optional)"#,
        Channel::AppReload => r#"{"registry":"/path/to/conductor.toml"} (optional)"#,
        _ => "an empty body",
    }
}

/// Parses a channel's request. An empty body is read as `{}`, so a channel whose fields are all
/// optional (`logs:get`) gets its defaults and one with a required field names it.
fn arguments<T: DeserializeOwned>(channel: Channel, body: &[u8]) -> Result<T, ApiError> {
    let empty = body.trim_ascii().is_empty();
    let text = if empty { &b"{}"[..] } else { body };
    serde_json::from_slice(text).map_err(|err| {
        let message = if empty {
            // Positions in the `{}` stand-in would only confuse.
            let err = err.to_string();
            let err = err.split(" at line ").next().unwrap_or_default().to_owned();
            format!(
                "{channel} needs a request body: {err}; send for example {}",
                example(channel)
            )
        } else {
            format!(
                "malformed request body for {channel}: {err}; send for example {}",
                example(channel)
            )
        };
        ApiError::new(StatusCode::BAD_REQUEST, message)
    })
}

/// Checks the body of a channel without arguments: empty, `{}` or `null`.
fn no_arguments(channel: Channel, body: &[u8]) -> Result<(), ApiError> {
    if body.trim_ascii().is_empty() {
        return Ok(());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("malformed request body for {channel}: {err}; send an empty body"),
        )
    })?;
    match value {
        serde_json::Value::Null => Ok(()),
        serde_json::Value::Object(fields) if fields.is_empty() => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{channel} takes no arguments, got {value}; send an empty body"),
        )),
    }
}

fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<ResponseBody> {
    let (status, json) = match serde_json::to_vec(value) {
        Ok(json) => (status, json),
        // Our protocol types always serialise; if one ever did not, say so rather than panic.
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "error": format!("could not encode the response: {err}") })
                .to_string()
                .into_bytes(),
        ),
    };
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(json))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_found_by_exact_name() {
        assert_eq!(query_param("token=abc&lastEventId=4", "token"), Some("abc"));
        assert_eq!(
            query_param("token=abc&lastEventId=4", "lastEventId"),
            Some("4")
        );
        assert_eq!(query_param("xtoken=abc", "token"), None);
        assert_eq!(query_param("", "token"), None);
    }

    #[test]
    fn an_empty_body_names_the_missing_field() {
        let err = arguments::<ServiceRequest>(Channel::ServicesStart, b"")
            .err()
            .map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some(
                r#"services:start needs a request body: missing field `serviceName`; send for example {"serviceName":"records"}"#
            )
        );
        let defaults = arguments::<LogsGetRequest>(Channel::LogsGet, b" ").ok();
        assert_eq!(defaults, Some(LogsGetRequest::default()));
    }

    #[test]
    fn argument_free_channels_take_empty_braces_or_null_only() {
        for body in [&b""[..], b"{}", b" null ", b"\n"] {
            assert!(no_arguments(Channel::AppHealth, body).is_ok());
        }
        for body in [&b"{\"x\":1}"[..], b"[]", b"{"] {
            assert!(no_arguments(Channel::AppHealth, body).is_err());
        }
    }
}
