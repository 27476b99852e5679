//! The client side of the control API, for the CLI subcommands (`conductor status`, `logs -f`,
//! `start`, …): one call per channel, and the event stream parsed back into protocol events.
//! It does not find or start an instance: [`crate::read_info`] says where one is, or that none is.

use std::{collections::VecDeque, path::PathBuf, time::Duration};

use bytes::Bytes;
use conductor_protocol::{Channel, ErrorBody, Event, IpcInfo, error_chain};
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode, body::Incoming, header};
use hyper_util::{
    client::legacy::{self, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::{Serialize, de::DeserializeOwned};

/// How long a call may take by default. `services:start` and `services:restart` wait for the
/// service's readiness probe, through its retries, so this is far longer than a typical call.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long connecting to the server may take (it is on this machine: refused or instant).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed request to the control API, or a failed look-up of the instance.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// There is no `ipc.json`: no instance runs for this data directory.
    #[error("no conductor is running for {}: start one with `conductor up`", user_data.display())]
    NotRunning {
        /// The data directory looked in.
        user_data: PathBuf,
    },
    /// `ipc.json` exists but could not be read.
    #[error("cannot read {}: {error}", path.display())]
    ReadInfo {
        /// The file.
        path: PathBuf,
        /// Why (in the message, so not also a `source()`).
        error: std::io::Error,
    },
    /// `ipc.json` is not what conductor writes.
    #[error("{} is not a valid IPC info file: {error}; the next `conductor up` rewrites it", path.display())]
    InvalidInfo {
        /// The file.
        path: PathBuf,
        /// Why (in the message, so not also a `source()`).
        error: serde_json::Error,
    },
    /// The URL or token from `ipc.json` do not make a valid request.
    #[error("cannot build a request to {url:?} from ipc.json: {error}")]
    InvalidRequest {
        /// The URL.
        url: String,
        /// Why (in the message, so not also a `source()`).
        error: hyper::http::Error,
    },
    /// The server could not be reached (or the connection broke before an answer).
    #[error(
        "cannot reach conductor at {url}: {reason}; it may have exited without removing its ipc.json"
    )]
    Unreachable {
        /// The URL.
        url: String,
        /// Why, with the causes.
        reason: String,
    },
    /// No answer in time.
    #[error("conductor at {url} did not answer {what} within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The channel or stream asked for.
        what: String,
        /// The limit.
        timeout: Duration,
    },
    /// The server answered with an error status; `message` is its [`ErrorBody`].
    #[error("{message} (HTTP {status})")]
    Api {
        /// The HTTP status code.
        status: u16,
        /// What the server said was wrong.
        message: String,
    },
    /// The answer was not the JSON expected.
    #[error("unexpected answer to {what}: {error}")]
    Decode {
        /// The channel or event.
        what: String,
        /// Why (in the message, so not also a `source()`).
        error: serde_json::Error,
    },
}

/// A client of one running instance. Cheap to clone; connections are kept alive and reused.
/// Its `Debug` output leaves the token out.
#[derive(Clone)]
pub struct Client {
    info: IpcInfo,
    http: legacy::Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.info.url)
            .field("pid", &self.info.pid)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the instance `info` describes (see [`crate::read_info`]). Connects lazily.
    pub fn new(info: IpcInfo) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let http = legacy::Client::builder(TokioExecutor::new()).build(connector);
        Client {
            info,
            http,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Replaces the per-call time limit (default 5 minutes, enough for a slow `services:start`).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The instance this client talks to.
    pub fn info(&self) -> &IpcInfo {
        &self.info
    }

    /// Calls one channel: `POST /ipc/<channel>` with `request` as JSON (no body when `None`).
    ///
    /// # Errors
    /// [`ClientError::Api`] for a non-2xx answer, with the server's message; otherwise
    /// transport, timeout and decoding failures.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        channel: Channel,
        request: Option<&Req>,
    ) -> Result<Resp, ClientError> {
        let what = channel.as_str();
        let body = match request {
            Some(request) => serde_json::to_vec(request).map_err(|source| ClientError::Decode {
                what: what.to_owned(),
                error: source,
            })?,
            None => Vec::new(),
        };
        let url = format!("{}/ipc/{channel}", self.info.url);
        let request = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.info.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|source| ClientError::InvalidRequest {
                url: url.clone(),
                error: source,
            })?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|err| self.unreachable(&err))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|err| self.unreachable(&err))?
                .to_bytes();
            Ok::<_, ClientError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.timed_out(what))??;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
            what: what.to_owned(),
            error: source,
        })
    }

    /// Opens `GET /events`; with `last_event_id` the server first replays what came after it.
    /// Resolves once the server has subscribed, so every event published afterwards arrives.
    ///
    /// # Errors
    /// As [`Client::call`], for opening the stream.
    pub async fn events(&self, last_event_id: Option<u64>) -> Result<EventStream, ClientError> {
        let url = format!("{}/events", self.info.url);
        let mut builder = Request::builder()
            .method(Method::GET)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.info.token))
            .header(header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            builder = builder.header("last-event-id", id.to_string());
        }
        let request = builder.body(Full::new(Bytes::new())).map_err(|source| {
            ClientError::InvalidRequest {
                url: url.clone(),
                error: source,
            }
        })?;
        // The pool never lends a connection whose response is still being read, so the stream
        // holds its own connection until it is dropped.
        let response = tokio::time::timeout(self.timeout, self.http.request(request))
            .await
            .map_err(|_| self.timed_out("the event stream"))?
            .map_err(|err| self.unreachable(&err))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = tokio::time::timeout(self.timeout, response.into_body().collect())
                .await
                .map_err(|_| self.timed_out("the event stream"))?
                .map_err(|err| self.unreachable(&err))?
                .to_bytes();
            return Err(api_error(status, &bytes));
        }
        Ok(EventStream {
            body: response.into_body(),
            parser: SseParser::default(),
            last_id: last_event_id,
            ended: false,
            url: self.info.url.clone(),
        })
    }

    fn unreachable(&self, err: &(dyn std::error::Error + 'static)) -> ClientError {
        ClientError::Unreachable {
            url: self.info.url.clone(),
            reason: error_chain(err),
        }
    }

    fn timed_out(&self, what: &str) -> ClientError {
        ClientError::Timeout {
            url: self.info.url.clone(),
            what: what.to_owned(),
            timeout: self.timeout,
        }
    }
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) => body.error,
        Err(_) if body.is_empty() => status.canonical_reason().unwrap_or("error").to_owned(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    ClientError::Api {
        status: status.as_u16(),
        message,
    }
}

/// The events of `GET /events`, in order. See [`EventStream::next`].
#[derive(Debug)]
pub struct EventStream {
    body: Incoming,
    parser: SseParser,
    last_id: Option<u64>,
    ended: bool,
    url: String,
}

impl EventStream {
    /// The next event and its id, or `None` once the server ended the stream (at its shutdown,
    /// or after a `lagged` event). An event sent without an `id:` (`lagged`) carries the id of
    /// the event before it, which is the one to reconnect from. Waits as long as the stream is
    /// idle: the server sends keep-alive comments, which are skipped here.
    pub async fn next(&mut self) -> Option<Result<(u64, Event), ClientError>> {
        loop {
            if let Some(raw) = self.parser.next_event() {
                if let Some(id) = raw.id.as_deref().and_then(|id| id.parse().ok()) {
                    self.last_id = Some(id);
                }
                let id = self.last_id.unwrap_or(0);
                return Some(
                    Event::from_wire(&raw.name, &raw.data)
                        .map(|event| (id, event))
                        .map_err(|source| ClientError::Decode {
                            what: format!("event {:?}", raw.name),
                            error: source,
                        }),
                );
            }
            if self.ended {
                return None;
            }
            match self.body.frame().await {
                // An event cut off by the end of the stream is dropped, as EventSource does.
                None => self.ended = true,
                Some(Err(err)) => {
                    self.ended = true;
                    return Some(Err(ClientError::Unreachable {
                        url: self.url.clone(),
                        reason: error_chain(&err),
                    }));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.parser.push(&data);
                    }
                }
            }
        }
    }

    /// The id of the last event received (or the one the stream was opened after).
    pub fn last_event_id(&self) -> Option<u64> {
        self.last_id
    }
}

/// One event as framed on the wire, before its payload is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawEvent {
    id: Option<String>,
    name: String,
    data: String,
}

/// Incremental SSE parser (the WHATWG event-stream format): lines end in `\n` or `\r\n`;
/// `:` starts a comment; `data:` lines join with `\n`; a blank line ends an event, and an
/// event without `data` is dropped. A lone `\r` as line end is not supported (our server never
/// sends one).
#[derive(Debug, Default)]
struct SseParser {
    buffer: Vec<u8>,
    id: Option<String>,
    name: Option<String>,
    data: Option<String>,
    ready: VecDeque<RawEvent>,
}

impl SseParser {
    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(offset) = self.buffer[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            let line = self.buffer[start..end]
                .strip_suffix(b"\r")
                .unwrap_or(&self.buffer[start..end]);
            let line = String::from_utf8_lossy(line).into_owned();
            self.line(&line);
            start = end + 1;
        }
        self.buffer.drain(..start);
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() {
            let id = self.id.take();
            let name = self.name.take();
            if let Some(data) = self.data.take() {
                self.ready.push_back(RawEvent {
                    id,
                    name: name.unwrap_or_else(|| "message".to_owned()),
                    data,
                });
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            // `retry` and unknown fields are ignored, as the format says.
            _ => {}
        }
    }

    fn next_event(&mut self) -> Option<RawEvent> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(id: Option<&str>, name: &str, data: &str) -> RawEvent {
        RawEvent {
            id: id.map(str::to_owned),
            name: name.to_owned(),
            data: data.to_owned(),
        }
    }

    #[test]
    fn parses_events_split_anywhere_and_skips_comments() {
        let stream = b": keep-alive\n\nid: 4\nevent: lagged\ndata: {\"missed\":3}\n\r\nevent: x\r\ndata: a\r\ndata:b\r\n\r\n";
        // Every split point must give the same events.
        for split in 0..stream.len() {
            let mut parser = SseParser::default();
            parser.push(&stream[..split]);
            parser.push(&stream[split..]);
            let events: Vec<RawEvent> = std::iter::from_fn(|| parser.next_event()).collect();
            assert_eq!(
                events,
                [
                    raw(Some("4"), "lagged", "{\"missed\":3}"),
                    raw(None, "x", "a\nb")
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn an_event_without_data_is_dropped_and_an_unfinished_one_waits() {
        let mut parser = SseParser::default();
        parser.push(b"event: nothing\n\nevent: a\ndata: 1\n");
        assert_eq!(parser.next_event(), None);
        parser.push(b"\n");
        assert_eq!(parser.next_event(), Some(raw(None, "a", "1")));
    }

    #[test]
    fn api_errors_carry_the_servers_message() {
        let err = api_error(StatusCode::NOT_FOUND, br#"{"error":"unknown channel"}"#);
        assert_eq!(err.to_string(), "unknown channel (HTTP 404)");
        let err = api_error(StatusCode::BAD_GATEWAY, b"");
        assert_eq!(err.to_string(), "Bad Gateway (HTTP 502)");
    }
}
