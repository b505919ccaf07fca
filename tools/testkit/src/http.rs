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

/// A whole response as read up to the server's close.
fn parse(response: &[u8]) -> Option<Answer> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .strip_prefix("HTTP/1.")?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    let length = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let body = &response[end + 4..];
    let body = match length {
        Some(n) => body.get(..n)?,
        None => body,
    };
    Some(Answer {
        status,
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    //! Responses parse; a silent server is an error within the bound.

    use super::*;

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
