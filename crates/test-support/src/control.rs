//! conductor's control API as a test client speaks it: the address and token from
//! `<data dir>/ipc.json`, `POST /ipc/<channel>` with the bearer token, and the checks every
//! caller makes (200, JSON, `success: true`).
//! It knows the wire only as JSON (`serde_json::Value`): this crate depends on no crate of
//! ours, so it cannot use conductor-protocol's types.

use std::{io, net::SocketAddr, path::Path, time::Duration};

use serde_json::Value;

use crate::http::{self, Connection, Request, Response};

/// How long one control API request may take, connect included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the control API listens and the token it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlApi {
    /// The listening address (loopback).
    pub addr: SocketAddr,
    /// The bearer token.
    pub token: String,
}

impl ControlApi {
    /// Reads `<data_dir>/ipc.json` (`{"url": "http://<ip>:<port>", "token": …}`).
    pub fn read(data_dir: &Path) -> io::Result<ControlApi> {
        let path = data_dir.join("ipc.json");
        let context = |what: String| io::Error::other(format!("{}: {what}", path.display()));
        let text = std::fs::read_to_string(&path).map_err(|err| {
            io::Error::new(err.kind(), format!("reading {}: {err}", path.display()))
        })?;
        let info: Value =
            serde_json::from_str(&text).map_err(|err| context(format!("not JSON: {err}")))?;
        let url = info["url"]
            .as_str()
            .ok_or_else(|| context("no url".to_owned()))?;
        let addr = url
            .strip_prefix("http://")
            .and_then(|rest| rest.trim_end_matches('/').parse().ok())
            .ok_or_else(|| context(format!("url {url:?} is not http://<ip>:<port>")))?;
        let token = info["token"]
            .as_str()
            .ok_or_else(|| context("no token".to_owned()))?;
        Ok(ControlApi {
            addr,
            token: token.to_owned(),
        })
    }

    /// The `Host` value conductor accepts: the address itself.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The `Authorization` header's value.
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// A keep-alive connection for request after request.
    pub fn connect(&self) -> io::Result<ControlConnection> {
        let connection = Connection::connect(self.addr, REQUEST_TIMEOUT).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("connecting to the control API at {}: {err}", self.addr),
            )
        })?;
        Ok(ControlConnection {
            connection,
            authorization: self.authorization(),
        })
    }

    /// A request exactly as given (wrong tokens, foreign hosts, huge bodies) on a connection
    /// of its own.
    pub fn send(&self, request: &Request<'_>) -> io::Result<Response> {
        http::send(self.addr, request, REQUEST_TIMEOUT).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!(
                    "{} {} to {}: {err}",
                    request.method, request.path, self.addr
                ),
            )
        })
    }

    /// [`ControlConnection::call`] on a connection of its own.
    pub fn call(&self, channel: &str, body: Option<&Value>) -> io::Result<Response> {
        self.connect()?.call(channel, body)
    }

    /// [`ControlConnection::ok`] on a connection of its own.
    pub fn ok(&self, channel: &str, body: Option<&Value>) -> io::Result<Value> {
        self.connect()?.ok(channel, body)
    }

    /// [`ControlConnection::statuses`] on a connection of its own.
    pub fn statuses(&self) -> io::Result<Vec<Value>> {
        self.connect()?.statuses()
    }

    /// One service's entry of `services:get-all`.
    pub fn status_of(&self, name: &str) -> io::Result<Value> {
        self.statuses()?
            .into_iter()
            .find(|status| status["name"] == name)
            .ok_or_else(|| io::Error::other(format!("services:get-all has no entry for {name:?}")))
    }
}

/// A keep-alive connection to the control API, authenticated.
#[derive(Debug)]
pub struct ControlConnection {
    connection: Connection,
    authorization: String,
}

impl ControlConnection {
    /// The control API's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.connection.peer_addr()
    }

    /// `POST /ipc/<channel>` with a JSON body (or none), whatever it answers.
    pub fn call(&mut self, channel: &str, body: Option<&Value>) -> io::Result<Response> {
        let body = body.map(Value::to_string).unwrap_or_default();
        self.connection
            .request(&Request {
                method: "POST",
                path: &format!("/ipc/{channel}"),
                headers: &[
                    ("Authorization", &self.authorization),
                    ("Content-Type", "application/json"),
                ],
                body: body.as_bytes(),
            })
            .map_err(|err| io::Error::new(err.kind(), format!("{channel}: {err}")))
    }

    /// A channel that must answer 200 with JSON; the JSON.
    pub fn ok(&mut self, channel: &str, body: Option<&Value>) -> io::Result<Value> {
        self.call(channel, body)?
            .expect_status(200, channel)?
            .json()
            .map_err(|err| io::Error::new(err.kind(), format!("{channel}: {err}")))
    }

    /// A service action (`services:start` …) that must answer 200 with `"success": true`.
    pub fn action(&mut self, channel: &str, body: &Value) -> io::Result<()> {
        let answer = self.ok(channel, Some(body))?;
        if answer["success"] == true {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{channel} {body} did not succeed: {answer}"
            )))
        }
    }

    /// `services:get-all`: one JSON object per service.
    pub fn statuses(&mut self) -> io::Result<Vec<Value>> {
        match self.ok("services:get-all", None)? {
            Value::Array(statuses) => Ok(statuses),
            other => Err(io::Error::other(format!(
                "services:get-all answered {other}, not an array"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipc_json_gives_address_and_token() {
        let dir = crate::TempDir::new("ipc-json");
        dir.write(
            "ipc.json",
            r#"{"url":"http://127.0.0.1:4567/","token":"abc","pid":1}"#,
        );
        let api = ControlApi::read(dir.path()).unwrap();
        assert_eq!(api.addr, SocketAddr::from(([127, 0, 0, 1], 4567)));
        assert_eq!(
            (api.token.as_str(), api.host()),
            ("abc", "127.0.0.1:4567".to_owned())
        );
        dir.write("ipc.json", r#"{"url":"unix:/x","token":"abc"}"#);
        let err = ControlApi::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is not http://"), "{err}");
    }
}
