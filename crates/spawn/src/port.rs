//! Who holds a TCP port: [`port_is_free`] for the startup check, [`port_holder`] to name the
//! process in the error when a port is taken.
//! Not here: choosing ports or waiting for one to free up.

use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr, TcpListener},
};

use crate::sys;

/// The process that listens on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortHolder {
    /// Its pid.
    pub pid: u32,
    /// Its command line, arguments joined by spaces (`[name]` when it has none).
    pub command_line: String,
}

/// The process listening on TCP `port` (IPv4 or IPv6), if it can be found.
///
/// Linux: the LISTEN socket's inode from `/proc/net/tcp` and `/proc/net/tcp6`, then the lowest
/// pid with a descriptor on that socket. `None` if nothing listens, if the holder belongs to
/// another user (its descriptors are not readable) or another network namespace, and always on
/// other platforms. Blocking (walks `/proc`): call it from `spawn_blocking` in async code.
pub fn port_holder(port: u16) -> Option<PortHolder> {
    sys::port_holder(port)
}

/// Whether a service could listen on `port` on the loopback interface now: binds
/// `127.0.0.1:port`, and `[::1]:port` where IPv6 exists (a service asked to listen on
/// "localhost" may pick either), then lets go.
///
/// std sets `SO_REUSEADDR` on unix, so a port whose old connections linger in `TIME_WAIT`
/// counts as free, as it is for services that set it too (most servers do). `false` for port
/// 0 and for any port that cannot be bound, in use or not (a privileged port, for instance).
pub fn port_is_free(port: u16) -> bool {
    if port == 0 {
        return false;
    }
    let Ok(_v4) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    match TcpListener::bind((Ipv6Addr::LOCALHOST, port)) {
        Ok(_v6) => true,
        // No IPv6 on this machine (EADDRNOTAVAIL, EAFNOSUPPORT): only IPv4 matters.
        Err(error) => error.kind() != io::ErrorKind::AddrInUse,
    }
}
