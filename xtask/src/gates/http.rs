//! A minimal HTTP/1.1 client over `std::net::TcpStream` for the gates: one request per
//! connection (`Connection: close`), the response read to end of stream, chunked bodies
//! decoded; plus reading a Server-Sent Events stream until a line shows up.
//! Deliberately tiny and blocking: no redirects, no keep-alive, no TLS. Every read and write
//! is bounded by the timeout given.

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

/// A complete response.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// Names lowercased.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The first header with this (lowercase) name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as text, invalid UTF-8 replaced, shortened for messages.
    pub(crate) fn body_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        match text.char_indices().nth(300) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.into_owned(),
        }
    }
}

/// What to send: `headers` are sent as given (the caller chooses `Host`, so it can also send a
/// wrong one); `Connection: close` and, when there is a body, `Content-Length` are added.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) headers: &'a [(&'a str, &'a str)],
    pub(crate) body: &'a [u8],
}

fn head(request: &Request<'_>) -> String {
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for (name, value) in request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n");
    if !request.body.is_empty() || request.method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("\r\n");
    head
}

fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// Sends one request and reads the whole response.
///
/// A server may answer before reading all of a large body (413) and close; a failed write of
/// the body is then ignored and the response that was sent is still read.
pub(crate) fn send(
    addr: SocketAddr,
    request: &Request<'_>,
    timeout: Duration,
) -> io::Result<Response> {
    let mut stream = connect(addr, timeout)?;
    stream.write_all(head(request).as_bytes())?;
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

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Parses a response read to end of stream.
pub(crate) fn parse(raw: &[u8]) -> io::Result<Response> {
    let end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| invalid(format!("no end of headers in {} bytes", raw.len())))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse::<usize>().ok());
        match length {
            Some(length) if length <= rest.len() => rest[..length].to_vec(),
            Some(length) => {
                return Err(invalid(format!(
                    "body cut short: {} of {length} bytes",
                    rest.len()
                )));
            }
            None => rest.to_vec(),
        }
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|window| window == b"\r\n")
            .ok_or_else(|| invalid("chunk size line cut short"))?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or_else(|| invalid("chunk cut short"))?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

/// An open event stream: the response head has been read, lines follow.
pub(crate) struct EventStream {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    reader: BufReader<TcpStream>,
}

/// Opens a long-lived GET (Server-Sent Events) and reads its response head.
pub(crate) fn open_stream(
    addr: SocketAddr,
    request: &Request<'_>,
    timeout: Duration,
) -> io::Result<EventStream> {
    let mut stream = connect(addr, timeout)?;
    stream.write_all(head(request).as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let mut content_type = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("stream closed inside the response head"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-type")
        {
            content_type = value.trim().to_owned();
        }
    }
    Ok(EventStream {
        status,
        content_type,
        reader,
    })
}

impl EventStream {
    /// Reads lines until one satisfies `wanted` or the deadline passes; returns the line, or
    /// an error naming the last lines seen. Chunk-size lines of a chunked stream are just
    /// lines that never match.
    pub(crate) fn read_until(
        &mut self,
        deadline: Instant,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let mut seen: Vec<String> = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "not seen in time; last lines: {:?}",
                    last(&seen, 6)
                ));
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|err| err.to_string())?;
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(format!("stream ended; last lines: {:?}", last(&seen, 6))),
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

fn last(lines: &[String], n: usize) -> &[String] {
    &lines[lines.len().saturating_sub(n)..]
}

#[cfg(test)]
mod tests {
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
}
