//! A small blocking HTTP/1.1 client over `std::net::TcpStream`, for loopback servers under
//! test: one request per connection ([`send`], `Connection: close`) or request after request
//! on a keep-alive [`Connection`]; `Content-Length` and chunked bodies; and a Server-Sent
//! Events stream read line by line ([`open_stream`]).
//! Deliberately tiny: no async, no TLS, no redirects, no pooling, so figures measured through
//! it are the server's, and headers go out as given, so a test can send a wrong `Host`.
//! Every connect, read and write is bounded by the timeout given.

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

/// What to send. `headers` go out as given; `Host` (the address connected to) is added unless
/// given, and `Content-Length` when there is a body or the method is `POST`.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST` …
    pub method: &'a str,
    /// The request target, `/ipc/services:get-all`.
    pub path: &'a str,
    /// Header names and values.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body, empty for none.
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// `GET path` without headers.
    pub fn get(path: &'a str) -> Request<'a> {
        Request {
            method: "GET",
            path,
            headers: &[],
            body: b"",
        }
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lowercased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as text, invalid UTF-8 replaced, shortened to 300 characters for messages.
    pub fn body_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        match text.char_indices().nth(300) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.into_owned(),
        }
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> io::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).map_err(|err| {
            invalid(format!(
                "HTTP {} with a body that is not JSON ({err}): {}",
                self.status,
                self.body_text()
            ))
        })
    }

    /// Itself if its status is `status`; else an error naming `what`, the status and the body.
    pub fn expect_status(self, status: u16, what: &str) -> io::Result<Response> {
        if self.status == status {
            Ok(self)
        } else {
            Err(io::Error::other(format!(
                "{what} answered {} (expected {status}): {}",
                self.status,
                self.body_text()
            )))
        }
    }
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn write_head(out: &mut Vec<u8>, request: &Request<'_>, host: &str, close: bool) {
    // Writes into a Vec cannot fail.
    let _ = write!(out, "{} {} HTTP/1.1\r\n", request.method, request.path);
    if !request
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        let _ = write!(out, "Host: {host}\r\n");
    }
    for (name, value) in request.headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    if !request.body.is_empty() || request.method == "POST" {
        let _ = write!(out, "Content-Length: {}\r\n", request.body.len());
    }
    out.extend_from_slice(b"\r\n");
}

fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    // Requests go out in one write; Nagle would hold the next one back on a kept-alive stream.
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the whole response.
///
/// A server may answer before reading all of a large body (413) and close; a failed write of
/// the body is then ignored and the response that was sent is still read.
pub fn send(addr: SocketAddr, request: &Request<'_>, timeout: Duration) -> io::Result<Response> {
    let mut stream = connect(addr, timeout)?;
    let mut head = Vec::new();
    write_head(&mut head, request, &addr.to_string(), true);
    stream.write_all(&head)?;
    let body_written = stream.write_all(request.body);
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    match (read, body_written) {
        // Whatever arrived before a reset may still be a whole response.
        (Err(err), _) if raw.is_empty() => return Err(err),
        (_, Err(err)) if raw.is_empty() => return Err(err),
        _ => {}
    }
    parse(&raw)
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<Response> {
    send(addr, &Request::get(path), timeout)
}

/// Parses a whole response (as read to the end of its stream).
pub fn parse(mut raw: &[u8]) -> io::Result<Response> {
    read_response(&mut raw)
}

/// Reads a response's status line and headers (names lowercased).
fn read_head(reader: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    read_line(reader, &mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {:?}", line.trim_end())))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        read_line(reader, &mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            return Ok((status, headers));
        }
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header {header:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
}

/// Reads one response off `reader`, leaving it at the start of the next.
fn read_response(reader: &mut impl BufRead) -> io::Result<Response> {
    let (status, headers) = read_head(reader)?;
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let mut body = Vec::new();
    let mut line = String::new();
    if matches!(status, 100..=199 | 204 | 304) {
        // No body, whatever the headers say (RFC 9112 §6.3).
    } else if response
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            read_line(reader, &mut line)?;
            let size_text = line.trim_end().split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailers, if any, up to the blank line; a stream read to its end may stop
                // right after the last chunk.
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader
                .read_exact(&mut body[start..])
                .map_err(|err| cut_short(err, "chunk"))?;
            line.clear();
            read_line(reader, &mut line)?;
        }
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid(format!("bad content-length {length:?}")))?;
        body.resize(length, 0);
        reader
            .read_exact(&mut body)
            .map_err(|err| cut_short(err, "body"))?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    response.body = body;
    Ok(response)
}

fn read_line(reader: &mut impl BufRead, line: &mut String) -> io::Result<()> {
    if reader.read_line(line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed mid-response",
        ));
    }
    Ok(())
}

fn cut_short(err: io::Error, what: &str) -> io::Error {
    io::Error::new(err.kind(), format!("{what} cut short: {err}"))
}

/// One HTTP/1.1 connection, reused request after request.
#[derive(Debug)]
pub struct Connection {
    reader: BufReader<TcpStream>,
    host: String,
    buffer: Vec<u8>,
}

impl Connection {
    /// Connects; `timeout` bounds the connect and every later read and write.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Connection> {
        Ok(Connection {
            reader: BufReader::with_capacity(64 * 1024, connect(addr, timeout)?),
            host: addr.to_string(),
            buffer: Vec::with_capacity(512),
        })
    }

    /// The address this connection goes to.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.reader.get_ref().peer_addr()
    }

    /// Sends one request and reads its whole response; the connection stays open for the next.
    pub fn request(&mut self, request: &Request<'_>) -> io::Result<Response> {
        self.buffer.clear();
        write_head(&mut self.buffer, request, &self.host, false);
        self.buffer.extend_from_slice(request.body);
        self.reader.get_mut().write_all(&self.buffer)?;
        read_response(&mut self.reader)
    }
}

/// An open event stream: the response head has been read, lines follow.
#[derive(Debug)]
pub struct EventStream {
    /// The response's status code.
    pub status: u16,
    /// Its `Content-Type`, empty if none.
    pub content_type: String,
    reader: BufReader<TcpStream>,
}

/// Opens a long-lived request (`GET /events`) and reads its response head.
pub fn open_stream(
    addr: SocketAddr,
    request: &Request<'_>,
    timeout: Duration,
) -> io::Result<EventStream> {
    let mut stream = connect(addr, timeout)?;
    let mut head = Vec::new();
    write_head(&mut head, request, &addr.to_string(), true);
    stream.write_all(&head)?;
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader)?;
    let content_type = headers
        .into_iter()
        .find(|(name, _)| name == "content-type")
        .map(|(_, value)| value)
        .unwrap_or_default();
    Ok(EventStream {
        status,
        content_type,
        reader,
    })
}

impl EventStream {
    /// Reads lines until one satisfies `wanted` or `timeout` passes; returns the line, or an
    /// error naming the last lines seen. Chunk-size lines of a chunked stream are just lines
    /// that never match.
    pub fn read_until(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut seen: Vec<String> = Vec::new();
        let last = |seen: &[String]| seen[seen.len().saturating_sub(6)..].to_vec();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("not seen in time; last lines: {:?}", last(&seen)));
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|err| err.to_string())?;
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(format!("stream ended; last lines: {:?}", last(&seen))),
                Ok(_) => {
                    let line = line.trim_end().to_owned();
                    if wanted(&line) {
                        return Ok(line);
                    }
                    seen.push(line);
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(err) => return Err(format!("reading the stream: {err}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn content_length_and_chunked_bodies_are_read() {
        let plain =
            parse(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhi").unwrap();
        assert_eq!((plain.status, plain.body.as_slice()), (401, &b"hi"[..]));
        assert_eq!(plain.header("x-a"), Some("b"));
        let chunked = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.body, b"abcde");
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
        assert!(parse(b"garbage").is_err());
    }

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
        let mut connection = Connection::connect(addr, Duration::from_secs(5)).expect("connecting");
        let first = connection
            .request(&Request {
                method: "POST",
                path: "/ipc/x",
                headers: &[("Authorization", "Bearer t")],
                body: b"",
            })
            .expect("first response");
        assert_eq!((first.status, first.body.as_slice()), (200, &b"hello"[..]));
        let second = connection
            .request(&Request::get("/y"))
            .expect("second response");
        assert_eq!(
            (second.status, second.body.as_slice()),
            (404, &b"abcde"[..])
        );
        let third = connection
            .request(&Request::get("/z"))
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
        let mut connection = Connection::connect(addr, Duration::from_secs(5)).expect("connecting");
        let result = connection.request(&Request::get("/"));
        server.join().expect("the server thread");
        assert!(result.is_err(), "a body cut short must fail");
        let refused = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        assert!(get(refused, "/health", Duration::from_secs(5)).is_err());
    }

    #[test]
    fn a_given_host_is_sent_instead_of_the_address() {
        let (addr, server) = serve(vec!["HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n"]);
        let response = send(
            addr,
            &Request {
                headers: &[("Host", "evil.example:80")],
                ..Request::get("/")
            },
            Duration::from_secs(5),
        )
        .expect("a response");
        assert_eq!(response.status, 403);
        let requests = server.join().expect("the server thread");
        assert!(
            requests[0].contains("Host: evil.example:80\r\n")
                && !requests[0].contains(&addr.to_string())
                && requests[0].contains("Connection: close\r\n"),
            "{:?}",
            requests[0]
        );
    }
}
