//! One plain, blocking HTTP exchange on a fresh connection, bounded in time: the harness's
//! probes (`/readyz`, `/prestop`, `/healthz`), the evidence reader's `/metrics`, and the rollout
//! harness's calls to Prometheus's API. Tests that examine HTTP itself (keep-alive, HEAD,
//! malformed requests) have their own raw client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A response to [`get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body (the bytes after the head, up to `Content-Length` when there is one).
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` on a new connection to `addr` with `Connection: close`; the whole exchange
/// (connect, write, read to the server's close) must end within `timeout`.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Answer, String> {
    let head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    exchange(addr, &format!("GET http://{addr}{path}"), &head, timeout)
}

/// `METHOD path` as HTTP/1.0 (so the answer is never chunked: its body runs to the close) with
/// an empty body, on a new connection, within `timeout`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<Answer, String> {
    let head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n");
    exchange(
        addr,
        &format!("{method} http://{addr}{path}"),
        &head,
        timeout,
    )
}

/// Sends `head` and reads the answer to the server's close, all within `timeout`; `what` names
/// the exchange in errors.
fn exchange(addr: SocketAddr, what: &str, head: &str, timeout: Duration) -> Result<Answer, String> {
    let deadline = Instant::now() + timeout;
    let failed = |e: std::io::Error| format!("{what}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(failed)?;
    stream.set_write_timeout(Some(timeout)).map_err(failed)?;
    stream.write_all(head.as_bytes()).map_err(failed)?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{what}: no complete answer within {timeout:?}"));
        }
        stream.set_read_timeout(Some(left)).map_err(failed)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed(e)),
        }
    }
    parse(&response).ok_or_else(|| {
        format!(
            "{what}: not an HTTP response: {:?}",
            String::from_utf8_lossy(&response)
        )
    })
}

/// The head of an HTTP/1.x response at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Its `Content-Length`, if it has one.
    pub content_length: Option<usize>,
    /// Bytes of the head, its blank line included: the body starts here.
    pub len: usize,
}

/// Reads the response head at the start of `buf`: `Ok(None)` while it is incomplete, `Err` when
/// it is not an HTTP/1.x response head. For a reader of responses on a kept-alive connection as
/// much as for [`get`]'s, which reads to the server's close.
pub fn response_head(buf: &[u8]) -> Result<Option<ResponseHead>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not a status line: {status_line:?}"))?;
    let content_length = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    Ok(Some(ResponseHead {
        status,
        content_length,
        len: end + 4,
    }))
}

/// A whole response as read up to the server's close.
fn parse(response: &[u8]) -> Option<Answer> {
    let head = response_head(response).ok()??;
    let body = &response[head.len..];
    let body = match head.content_length {
        Some(n) => body.get(..n)?,
        None => body,
    };
    Some(Answer {
        status: head.status,
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    //! Responses parse; a silent server is an error within the bound.

    use super::*;

    #[test]
    fn a_head_is_read_once_complete_and_refused_when_not_http() {
        let one = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        let head = ResponseHead {
            status: 200,
            content_length: Some(3),
            len: one.len() - 3,
        };
        assert_eq!(response_head(one), Ok(Some(head)));
        assert_eq!(response_head(&one[..20]), Ok(None));
        assert!(response_head(b"SSH-2.0-x\r\n\r\n").is_err());
    }

    #[test]
    fn responses_parse() {
        let a =
            parse(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 6\r\n\r\nnot re").unwrap();
        assert_eq!((a.status, a.text().as_str()), (503, "not re"));
        let a = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA").unwrap();
        assert_eq!(a.body, b"ok");
        let a = parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end").unwrap();
        assert_eq!(a.text(), "to the end");
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"),
            None
        );
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(parse(b"SSH-2.0\r\n\r\n"), None);
    }

    #[test]
    fn a_server_that_never_answers_is_an_error_in_time() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let started = Instant::now();
        let err = get(addr, "/readyz", Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "{err}");
        assert!(err.contains("/readyz"), "{err}");
    }
}
