//! The local control API (SPEC §5): an HTTP/1.1 server on a loopback address that authenticates
//! each request and maps `POST /ipc/<channel>` onto the supervisor's [`Conductor`] handle, plus
//! the `GET /events` Server-Sent Events stream, and the small [`Client`] the CLI subcommands use.
//!
//! Entry points: [`serve`] (the binary keeps the returned [`Server`] and calls
//! [`Server::shutdown`]), [`Client`], and [`read_info`] / [`write_info`] for `<userData>/ipc.json`.
//!
//! It never spawns, probes or stops a service itself: every request becomes one call on the
//! handle. It does not decide when the app quits either: `app:quit` only calls
//! [`Conductor::quit`] and the binary runs the shutdown.
//!
//! [`Conductor`]: conductor_supervisor::Conductor
//! [`Conductor::quit`]: conductor_supervisor::Conductor::quit
#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

mod auth;
mod client;
mod info;
mod panel;
mod routes;
mod server;
mod sse;

pub use crate::{
    auth::{generate_token, try_generate_token},
    client::{Client, ClientError, EventStream},
    info::{INFO_FILE, read_info, remove_info, write_info},
    server::{ServeError, Server, ServerConfig, check_port, serve},
};
