//! Binding the loopback listener, the accept loop and the connection tasks, and shutting them
//! all down. One task per connection, all owned by the accept loop's `JoinSet`, which
//! [`Server`] owns in turn: dropping or shutting down the server ends every connection.
//! What a request means is `routes`' business, not this module's.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use conductor_registry::Registry;
use conductor_supervisor::Conductor;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

use crate::routes::{self, State};

/// How long [`Server::shutdown`] lets in-flight requests finish before cutting them off.
/// `services:start` can legitimately run longer (it waits for readiness); by then the binary is
/// stopping every service anyway, and the client sees its connection close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A client must send its request headers within this time (slow-loris defence).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once. Well below a default file limit of 1024, so that a flood of
/// connections never leaves conductor without descriptors to spawn a service with. When
/// full, a new connection takes the place of the oldest one that has not sent a request yet
/// (an idle or trickling client); if every connection is busy, it is closed unread.
pub(crate) const MAX_CONNECTIONS: usize = 256;

/// Event streams open at once (a UI needs one, a few tools a few more).
pub(crate) const MAX_EVENT_STREAMS: usize = 64;

/// A kept-alive connection with no request in flight is closed after this long. hyper's
/// header-read timeout also runs while a kept-alive connection waits for its next request, so
/// it closes such a connection after [`HEADER_READ_TIMEOUT`] anyway (the JS client keeps idle
/// sockets for less); this is the same bound, not a longer one.
const KEEP_ALIVE_IDLE: Duration = HEADER_READ_TIMEOUT;

/// How the control server listens. Its `Debug` output leaves the token out.
#[derive(Clone)]
pub struct ServerConfig {
    /// Where to listen; must be a loopback address. Default `127.0.0.1:0` (the OS picks a port).
    pub addr: SocketAddr,
    /// The bearer token every request must carry (see [`crate::generate_token`]).
    pub token: String,
    /// How often an idle event stream gets a `: keep-alive` comment. Default 15 s.
    pub keep_alive: Duration,
    /// Origins whose pages may call the API from a browser (the registry's
    /// `[app] allowed_origins`), compared byte for byte with the `Origin` header. A request
    /// with any other `Origin` is refused with 403; one without the header is not affected.
    /// Default: none.
    pub allowed_origins: Vec<String>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("addr", &self.addr)
            .field("token", &"[redacted]")
            .field("keep_alive", &self.keep_alive)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

impl Default for ServerConfig {
    /// Listens on `127.0.0.1:0` with a fresh random token.
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            token: crate::generate_token(),
            keep_alive: Duration::from_secs(15),
            allowed_origins: Vec::new(),
        }
    }
}

/// The control server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configured address is not a loopback one: the API must not be reachable from
    /// another machine.
    #[error(
        "refusing to serve the control API on {addr}: use a loopback address such as 127.0.0.1"
    )]
    NotLoopback {
        /// The configured address.
        addr: SocketAddr,
    },
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {error}; choose another port or free this one")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why (in the message, so not also a `source()`).
        error: std::io::Error,
    },
    /// The configured port is a service's port in the registry: the service could never start.
    #[error(
        "cannot serve the control API on port {port}: the registry gives it to service '{service}'; \
         choose another port (or 0 to let the OS pick one)"
    )]
    PortOfService {
        /// The configured port.
        port: u16,
        /// The service the registry gives it to.
        service: String,
    },
    /// The OS kept handing out ports that services of the registry need.
    #[error(
        "cannot find a port for the control API on {addr}: the OS offered only ports that \
         services of the registry use; configure a port outside them"
    )]
    NoFreePort {
        /// The configured address.
        addr: SocketAddr,
    },
    /// The token is empty or not printable ASCII (it must fit in an HTTP header).
    #[error("the IPC token must be non-empty printable ASCII without spaces")]
    InvalidToken,
}

/// A running control server. Dropping it aborts every connection at once;
/// [`Server::shutdown`] is the graceful way.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept_loop: Option<tokio::task::JoinHandle<()>>,
}

/// Binds the listener and spawns the accept loop; requests are served until
/// [`Server::shutdown`] (or drop). Must be called inside a tokio runtime.
///
/// # Errors
/// [`ServeError`] when the address is not loopback, cannot be bound, or the token is unusable.
pub async fn serve(conductor: Conductor, config: ServerConfig) -> Result<Server, ServeError> {
    if !config.addr.ip().is_loopback() {
        return Err(ServeError::NotLoopback { addr: config.addr });
    }
    if config.token.is_empty() || !config.token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ServeError::InvalidToken);
    }
    let registry = conductor.registry();
    check_port(&registry, config.addr.port())?;
    let listener =
        bind_beside_services(config.addr, |port| service_on(&registry, port).is_some()).await?;
    let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.addr,
        error: source,
    })?;
    // A reload must not give this port to a service either.
    conductor.reserve_port(local_addr.port(), "the control API");
    let (shutdown, shutdown_rx) = watch::channel(false);
    let state = Arc::new(State {
        conductor,
        token: config.token,
        keep_alive: config.keep_alive.max(Duration::from_millis(1)),
        allowed_origins: config.allowed_origins,
        shutdown: shutdown_rx.clone(),
        event_streams: Arc::new(tokio::sync::Semaphore::new(MAX_EVENT_STREAMS)),
    });
    let accept_loop = tokio::spawn(accept_loop(listener, state, shutdown_rx));
    tracing::info!(%local_addr, "control API listening");
    Ok(Server {
        local_addr,
        shutdown,
        accept_loop: Some(accept_loop),
    })
}

/// How many ports the OS may offer that belong to services before [`serve`] gives up; with a few
/// hundred service ports at most among ~28 000 ephemeral ones, needing even two is rare.
const MAX_BIND_ATTEMPTS: usize = 32;

/// Fails if `port` is one the registry gives to a service: the control API must not take it.
/// Port 0 (the OS picks) always passes; [`serve`] then avoids service ports by itself.
///
/// # Errors
/// [`ServeError::PortOfService`] naming the service.
pub fn check_port(registry: &Registry, port: u16) -> Result<(), ServeError> {
    match service_on(registry, port) {
        Some(service) if port != 0 => Err(ServeError::PortOfService {
            port,
            service: service.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// The service the registry gives `port` to, disabled ones included (they can be started later).
fn service_on(registry: &Registry, port: u16) -> Option<&str> {
    registry
        .services
        .iter()
        .find(|service| service.port == port)
        .map(|service| service.name.as_str())
}

/// Binds `addr`, but not on a port the registry gives to a service. A port the OS picks comes
/// from the ephemeral range, where service ports may well lie; taking one would make that
/// service fail its port check when it starts. `is_taken` says whether a port the OS offered is
/// a service's; such a listener is held open while binding again, so the OS offers another.
async fn bind_beside_services(
    addr: SocketAddr,
    mut is_taken: impl FnMut(u16) -> bool,
) -> Result<TcpListener, ServeError> {
    let mut rejected = Vec::new();
    while rejected.len() < MAX_BIND_ATTEMPTS {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr,
                error: source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| ServeError::Bind {
                addr,
                error: source,
            })?
            .port();
        if !is_taken(port) {
            return Ok(listener);
        }
        tracing::debug!(port, "the OS offered a service's port; binding again");
        rejected.push(listener);
    }
    Err(ServeError::NoFreePort { addr })
}

impl Server {
    /// The bound address (with the port the OS chose).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The base URL clients use, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting connections, ends every event stream, lets in-flight requests finish
    /// for a bounded time (5 s), then drops whatever is left.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(accept_loop) = self.accept_loop.take() {
            // The loop only ends with an error if it panicked; nothing is left to clean up then.
            let _ = accept_loop.await;
        }
        tracing::info!(local_addr = %self.local_addr, "control API stopped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(accept_loop) = self.accept_loop.take() {
            // Aborting drops the loop's JoinSet, which aborts every connection task.
            accept_loop.abort();
        }
    }
}

/// What the accept loop knows of one live connection.
struct Live {
    task: tokio::task::AbortHandle,
    activity: Arc<Activity>,
}

/// One connection's use, shared by its task and the accept loop.
struct Activity {
    /// Set once a request has reached the router: the client speaks HTTP.
    spoke: std::sync::atomic::AtomicBool,
    /// Requests being answered, event streams included.
    in_flight: std::sync::atomic::AtomicUsize,
    opened: tokio::time::Instant,
    /// When a request last began or ended, in milliseconds since `opened`.
    last_active_ms: std::sync::atomic::AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            spoke: Default::default(),
            in_flight: Default::default(),
            opened: tokio::time::Instant::now(),
            last_active_ms: Default::default(),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms
            .store(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// How long nothing has been in flight; zero while something is.
    fn idle_for(&self) -> Duration {
        use std::sync::atomic::Ordering::SeqCst;
        if self.in_flight.load(SeqCst) > 0 {
            return Duration::ZERO;
        }
        let last = self.opened + Duration::from_millis(self.last_active_ms.load(SeqCst));
        last.elapsed()
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    // In accept order, so the first silent one is the oldest.
    let mut live: std::collections::VecDeque<Live> = std::collections::VecDeque::new();
    loop {
        tokio::select! {
            // Cancel-safe: a shutdown wins over a connection that is accepted at the same time.
            biased;
            _ = stopped(&mut shutdown) => break,
            Some(joined) = connections.join_next_with_id(), if !connections.is_empty() => {
                let id = match joined {
                    Ok((id, ())) => id,
                    Err(error) => error.id(),
                };
                live.retain(|connection| connection.task.id() != id);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if live.len() >= MAX_CONNECTIONS && !evict_silent(&mut live) {
                        // Every place is busy answering: close this one without reading it.
                        tracing::debug!(%peer, "control API full; connection refused");
                        drop(stream);
                        continue;
                    }
                    let activity = Arc::new(Activity::new());
                    let task = connections.spawn(serve_connection(
                        stream,
                        peer,
                        state.clone(),
                        activity.clone(),
                    ));
                    live.push_back(Live { task, activity });
                }
                Err(err) => {
                    // Per-connection failures (ECONNABORTED, EMFILE) must not end the server;
                    // pause briefly so a persistent one (EMFILE) does not spin the loop.
                    tracing::warn!("control API accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            n_connections = connections.len(),
            "control API connections still busy after {SHUTDOWN_GRACE:?}; closing them"
        );
        connections.shutdown().await;
    }
}

/// Closes the oldest connection that has not sent a request, or else the oldest one idle
/// between kept-alive requests; `false` if every connection is answering something.
fn evict_silent(live: &mut std::collections::VecDeque<Live>) -> bool {
    use std::sync::atomic::Ordering::SeqCst;
    let position = live
        .iter()
        .position(|c| !c.activity.spoke.load(SeqCst))
        .or_else(|| {
            live.iter()
                .position(|c| c.activity.in_flight.load(SeqCst) == 0)
        });
    match position.and_then(|position| live.remove(position)) {
        Some(connection) => {
            connection.task.abort();
            true
        }
        None => false,
    }
}

/// Resolves once the server is shutting down (or the server is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await in the caller: drop it here.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    activity: Arc<Activity>,
) {
    use std::sync::atomic::Ordering::SeqCst;
    let mut shutdown = state.shutdown.clone();
    let service_state = state.clone();
    let request_activity = activity.clone();
    let service = hyper::service::service_fn(move |request| {
        let state = service_state.clone();
        let activity = request_activity.clone();
        async move {
            activity.spoke.store(true, SeqCst);
            activity.in_flight.fetch_add(1, SeqCst);
            activity.touch();
            let _done = InFlight(activity);
            routes::handle(state, request).await.map(|response| {
                // An event stream stays in flight until its body ends.
                response.map(|body| TrackedBody {
                    body,
                    _in_flight: _done,
                })
            })
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut idle_check = tokio::time::interval(KEEP_ALIVE_IDLE / 8);
    let result = loop {
        tokio::select! {
            result = connection.as_mut() => break result,
            _ = stopped(&mut shutdown) => {
                // Finish the request in flight (event streams end on the same signal), then close.
                connection.as_mut().graceful_shutdown();
                break connection.await;
            }
            _ = idle_check.tick() => {
                if activity.idle_for() >= KEEP_ALIVE_IDLE {
                    connection.as_mut().graceful_shutdown();
                    break connection.await;
                }
            }
        }
    };
    if let Err(err) = result {
        tracing::debug!(%peer, "control API connection ended: {err}");
    }
}

/// Counts a request as in flight until dropped (with its response body).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in flight until the body is done.
struct TrackedBody<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ports_the_os_offers_for_services_are_held_and_never_used() {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let mut offered = Vec::new();
        // The first three ports the OS offers stand for service ports.
        let listener = bind_beside_services(addr, |port| {
            offered.push(port);
            offered.len() <= 3
        })
        .await
        .unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(
            offered.len(),
            4,
            "bound again after each rejected port: {offered:?}"
        );
        assert_eq!(offered[3], port);
        assert!(
            !offered[..3].contains(&port),
            "the chosen port {port} was rejected before: {offered:?}"
        );
    }

    #[tokio::test]
    async fn gives_up_with_a_clear_error_when_every_offered_port_is_a_service_s() {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let mut attempts = 0;
        let err = bind_beside_services(addr, |_| {
            attempts += 1;
            true
        })
        .await
        .unwrap_err();
        assert_eq!(attempts, MAX_BIND_ATTEMPTS);
        assert_eq!(
            err.to_string(),
            "cannot find a port for the control API on 127.0.0.1:0: the OS offered only ports \
             that services of the registry use; configure a port outside them"
        );
    }

    #[test]
    fn a_configured_port_of_a_service_is_refused_naming_the_service() {
        let registry = Registry::builtin();
        let records = registry.service("records").unwrap().port;
        let err = check_port(&registry, records).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot serve the control API on port {records}: the registry gives it to \
                 service 'records'; choose another port (or 0 to let the OS pick one)"
            )
        );
        assert!(check_port(&registry, 0).is_ok());
        assert!(check_port(&registry, 1).is_ok());
    }
}
