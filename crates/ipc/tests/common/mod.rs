//! Shared fixtures for the control API tests: a real `Conductor` over fake-service processes on
//! free ports, a real server on 127.0.0.1:0, and a raw HTTP/1.1 client for requests a
//! well-behaved client would never send. Temp dirs and waits are the workspace harness's.
//! Children die with the fixture even on panic: the runtime drops the supervisor's owner tasks,
//! whose process-group guards kill and reap on drop.

use std::{net::SocketAddr, time::Duration};

use conductor_ipc::{Client, Server, ServerConfig};
use conductor_protocol::IpcInfo;
use conductor_registry::{LoadOptions, Registry};
use conductor_supervisor::{Conductor, Paths, Settings};
use conductor_test_support::{DEADLINE, TempDir, free_port};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A running conductor (services `alpha` and `beta`) with the control API in front of it.
pub struct Fixture {
    pub dir: TempDir,
    pub conductor: Conductor,
    pub server: Option<Server>,
    pub info: IpcInfo,
    pub port: u16,
}

impl Fixture {
    /// Builds the fleet and the server; with `start`, starts every service and waits for them.
    pub async fn new(label: &str, start: bool) -> Fixture {
        Fixture::with(label, start, Duration::from_secs(15), "").await
    }

    /// As [`Fixture::new`], with the event stream's keep-alive interval and `extra` registry
    /// TOML appended (more services).
    pub async fn with(label: &str, start: bool, keep_alive: Duration, extra: &str) -> Fixture {
        Fixture::build(label, start, keep_alive, extra, &[]).await
    }

    /// As [`Fixture::new`] with services not started, the server allowing `origins` (CORS).
    pub async fn allowing(label: &str, origins: &[&str]) -> Fixture {
        Fixture::build(label, false, Duration::from_secs(15), "", origins).await
    }

    async fn build(
        label: &str,
        start: bool,
        keep_alive: Duration,
        extra: &str,
        origins: &[&str],
    ) -> Fixture {
        let dir = TempDir::new(label);
        let binary = fake_service::binary();
        let mut text = String::from(
            "[app]\nname = \"ipctest\"\n\n[defaults]\nready_timeout = \"20s\"\nstop_timeout = \"5s\"\n\
             health = { kind = \"http\", path = \"/health\", interval = \"1s\" }\n",
        );
        for name in ["alpha", "beta"] {
            text.push_str(&format!(
                "\n[services.{name}]\nport = {}\ncommand = {:?}\nenv = {{ FAKE_REQUIRE_DB = \"0\" }}\n",
                free_port(),
                binary.display().to_string(),
            ));
        }
        text.push_str(extra);
        let registry_path = dir.path().join("conductor.toml");
        let registry = match Registry::parse(&text, &registry_path, &LoadOptions::default()) {
            Ok(registry) => registry,
            Err(err) => panic!("the test registry is valid: {err}\n{text}"),
        };
        let settings = Settings {
            write_run_state: false,
            ..Settings::default()
        };
        let conductor = Conductor::new(registry, Paths::under(&dir.path().join("data")), settings)
            .expect("the data dir can be created");
        if start && let Err(err) = conductor.start_all().await {
            panic!("the test services start: {err}");
        }
        let token = conductor_ipc::generate_token();
        let config = ServerConfig {
            token: token.clone(),
            keep_alive,
            allowed_origins: origins.iter().map(|origin| (*origin).to_owned()).collect(),
            ..ServerConfig::default()
        };
        let server = conductor_ipc::serve(conductor.clone(), config)
            .await
            .expect("the server binds 127.0.0.1:0");
        let info = IpcInfo {
            url: server.url(),
            token,
            pid: std::process::id(),
        };
        let port = server.local_addr().port();
        Fixture {
            dir,
            conductor,
            server: Some(server),
            info,
            port,
        }
    }

    /// A client whose calls fail after [`DEADLINE`], so a hang names the channel it hung on.
    pub fn client(&self) -> Client {
        Client::new(self.info.clone()).with_timeout(DEADLINE)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Replaces the server's port in `text`, for snapshots.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&format!(":{}", self.port), ":[port]")
    }

    /// Shuts the server and the fleet down, as the binary does.
    pub async fn finish(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.conductor.shutdown().await;
    }
}

/// A response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Sends `head` (the request line and headers, `\r\n`-separated, without the blank line) and
/// `body` on a fresh connection with `Connection: close`, and reads the whole response.
pub async fn raw_request(addr: SocketAddr, head: &str, body: &[u8]) -> RawResponse {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the server accepts connections");
    let mut request = format!("{head}\r\nConnection: close\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    stream
        .write_all(&request)
        .await
        .expect("the request is written");
    let mut bytes = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut bytes))
        .await
        .expect("the server answers in time")
        .expect("the response is readable");
    parse_response(&bytes)
}

pub fn parse_response(bytes: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    RawResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}
