//! A tiny HTTP/1.1 client over `std::net::TcpStream`, just enough for the bench: one request at
//! a time on a keep-alive connection, `Content-Length` or chunked bodies.
//! It deliberately has no async, no TLS, no redirects and no pooling: the latency figures must
//! measure conductor, not a client stack.

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

/// One HTTP/1.1 connection, reused for request after request.
pub(crate) struct Connection {
    reader: BufReader<TcpStream>,
    host: String,
    request: Vec<u8>,
}

/// A response: status code and body.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Connection {
    /// Connects with Nagle off (requests are written in one piece) and a 5 s read timeout.
    pub(crate) fn connect(addr: SocketAddr) -> io::Result<Self> {
        Self::connect_timeout(addr, Duration::from_secs(5))
    }

    /// The address this connection goes to.
    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.reader.get_ref().peer_addr()
    }

    /// Like [`Connection::connect`], giving up on the connect after `timeout`.
    pub(crate) fn connect_timeout(addr: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(Self {
            reader: BufReader::with_capacity(64 * 1024, stream),
            host: addr.to_string(),
            request: Vec::with_capacity(512),
        })
    }

    /// Sends one request and reads its whole response; the connection stays open for the next.
    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        self.request.clear();
        write!(
            self.request,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        )?;
        for (name, value) in headers {
            write!(self.request, "{name}: {value}\r\n")?;
        }
        self.request.extend_from_slice(b"\r\n");
        self.request.extend_from_slice(body);
        self.reader.get_mut().write_all(&self.request)?;
        self.read_response()
    }

    fn read_response(&mut self) -> io::Result<Response> {
        let mut line = String::new();
        self.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
        let mut content_length = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                return Err(invalid(format!("bad header {header:?}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| invalid(format!("bad content-length {value:?}")))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.read_line(&mut line)?;
                let size =
                    usize::from_str_radix(line.trim_end().split(';').next().unwrap_or(""), 16)
                        .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..])?;
                line.clear();
                self.read_line(&mut line)?;
                if size == 0 {
                    break;
                }
            }
        } else if let Some(length) = content_length {
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
        }
        Ok(Response { status, body })
    }

    fn read_line(&mut self, line: &mut String) -> io::Result<()> {
        if self.reader.read_line(line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-response",
            ));
        }
        Ok(())
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// `GET path` on a fresh connection; `None` while nothing answers (refused, reset, timeout).
pub(crate) fn get_once(addr: SocketAddr, path: &str) -> Option<Response> {
    let mut connection = Connection::connect_timeout(addr, Duration::from_millis(500)).ok()?;
    connection
        .request("GET", path, &[("Connection", "close")], b"")
        .ok()
}

#[cfg(test)]
mod tests {
    use std::{io::Write as _, net::TcpListener};

    use super::*;

    /// A one-connection server answering each request with the next canned response.
    fn serve(responses: Vec<&'static str>) -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding loopback");
        let addr = listener.local_addr().expect("a bound address");
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("one client");
            let mut reader = BufReader::new(stream.try_clone().expect("cloning the stream"));
            let mut writer = stream;
            let mut requests = Vec::new();
            for response in responses {
                let mut request = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return requests;
                    }
                    request.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                requests.push(request);
                writer.write_all(response.as_bytes()).expect("answering");
            }
            requests
        });
        (addr, server)
    }

    #[test]
    fn reads_sized_and_chunked_bodies_on_one_connection() {
        let (addr, server) = serve(vec![
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            "HTTP/1.1 204 No Content\r\n\r\n",
        ]);
        let mut connection = Connection::connect(addr).expect("connecting");
        let first = connection
            .request("POST", "/ipc/x", &[("Authorization", "Bearer t")], b"")
            .expect("first response");
        assert_eq!((first.status, first.body.as_slice()), (200, &b"hello"[..]));
        let second = connection
            .request("GET", "/y", &[], b"")
            .expect("second response");
        assert_eq!(
            (second.status, second.body.as_slice()),
            (404, &b"abcde"[..])
        );
        let third = connection
            .request("GET", "/z", &[], b"")
            .expect("third response");
        assert_eq!((third.status, third.body.len()), (204, 0));
        drop(connection);
        let requests = server.join().expect("the server thread");
        assert_eq!(requests.len(), 3);
        assert!(
            requests[0].starts_with("POST /ipc/x HTTP/1.1\r\n")
                && requests[0].contains(&format!("Host: {addr}\r\n"))
                && requests[0].contains("Content-Length: 0\r\n")
                && requests[0].contains("Authorization: Bearer t\r\n"),
            "{:?}",
            requests[0]
        );
    }

    #[test]
    fn a_closed_connection_is_an_error_not_a_hang() {
        let (addr, server) = serve(vec!["HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"]);
        let mut connection = Connection::connect(addr).expect("connecting");
        let result = connection.request("GET", "/", &[], b"");
        server.join().expect("the server thread");
        assert!(result.is_err(), "a body cut short must fail");
        let refused = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        assert!(get_once(refused, "/health").is_none());
    }
}
