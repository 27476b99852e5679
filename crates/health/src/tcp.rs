//! The TCP probe: a connection to the port on 127.0.0.1 (else `[::1]`) is accepted in time.
//! It sends nothing and closes the connection at once.

use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use tokio::net::TcpStream;

use crate::{ProbeOutcome, duration::human};

pub(crate) async fn probe(port: u16, timeout: Duration) -> ProbeOutcome {
    match tokio::time::timeout(timeout, connect(port)).await {
        Ok(Ok(())) => ProbeOutcome::Healthy,
        Ok(Err(reason)) => ProbeOutcome::Unhealthy(reason),
        Err(_elapsed) => ProbeOutcome::Unhealthy(format!("timed out after {}", human(timeout))),
    }
}

async fn connect(port: u16) -> Result<(), String> {
    match TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await {
        Ok(_stream) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            // Refused or no IPv6 at all: 127.0.0.1's refusal is the news either way.
            TcpStream::connect((Ipv6Addr::LOCALHOST, port))
                .await
                .map(drop)
                .map_err(|_| "connection refused".to_owned())
        }
        Err(err) => Err(format!("connect to 127.0.0.1:{port}: {err}")),
    }
}
