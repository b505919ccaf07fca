//! `static`: C keep-alive HTTP/1.1 connections, each asking for one file again and again (one
//! request in flight per connection, as a browser's connection does) for T seconds: requests per
//! second and the server's CPU time per request. Every response is checked: status 200 and the
//! same body length as the first one; a server that closes a connection fails the run.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::stats::cpu_seconds;

/// A response head larger than this is an error (no server here sends one).
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// What a run measured.
pub struct StaticResult {
    pub requests_per_sec: f64,
    pub server_cpu_us_per_request: f64,
    pub body_bytes: usize,
    pub errors: u64,
}

struct Conn {
    stream: TcpStream,
    /// Bytes of the response read so far.
    buf: Vec<u8>,
}

/// Where one response ends in `buf`, if it is complete: (head length, body length), or an
/// error for a status other than 200 or a head without `Content-Length`.
fn parse_response(buf: &[u8]) -> Result<Option<(usize, usize)>, String> {
    let Some(head) = testkit::http::response_head(buf)? else {
        if buf.len() > MAX_HEAD_BYTES {
            return Err("response head too large".into());
        }
        return Ok(None);
    };
    if head.status != 200 {
        return Err(format!("status {}, not 200", head.status));
    }
    let length = head.content_length.ok_or("no Content-Length")?;
    Ok((buf.len() >= head.len + length).then_some((head.len, length)))
}

/// Runs the load: `connections` keep-alive connections GET `path` for `duration` after
/// `warmup`; the server is process `pid`.
pub fn run(
    addr: SocketAddr,
    pid: u32,
    connections: usize,
    path: &str,
    warmup: Duration,
    duration: Duration,
) -> Result<StaticResult, String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: loadgen\r\n\r\n");
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut conns = Vec::with_capacity(connections);
    for i in 0..connections {
        let std_stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        std_stream.set_nodelay(true).map_err(|e| e.to_string())?;
        std_stream
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let mut stream = TcpStream::from_std(std_stream);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)
            .map_err(|e| e.to_string())?;
        conns.push(Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        });
    }
    for c in &mut conns {
        c.stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
    }
    let mut events = Events::with_capacity(1024);
    let mut chunk = vec![0u8; 256 * 1024];
    let mut body_bytes = None;
    let mut done = 0u64;
    let mut counted = 0u64;
    let mut errors = 0u64;
    let started = Instant::now();
    let mut measuring: Option<(Instant, f64)> = None;
    let deadline = started + warmup + duration;
    while Instant::now() < deadline {
        if measuring.is_none() && started.elapsed() >= warmup {
            measuring = Some((Instant::now(), cpu_seconds(pid)?));
            counted = done;
        }
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .map_err(|e| e.to_string())?;
        for event in &events {
            let c = &mut conns[event.token().0];
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => return Err("the server closed a keep-alive connection".into()),
                    Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
            while let Some((head, length)) = parse_response(&c.buf)? {
                if *body_bytes.get_or_insert(length) != length {
                    errors += 1;
                }
                c.buf.drain(..head + length);
                done += 1;
                // One request in flight: the next goes out once this answer is complete (a
                // few dozen bytes: the socket's buffer always takes them).
                c.stream
                    .write_all(request.as_bytes())
                    .map_err(|e| format!("send: {e}"))?;
            }
        }
    }
    let (measure_start, cpu_before) = measuring.ok_or("the run ended before the warm-up")?;
    let cpu = cpu_seconds(pid)? - cpu_before;
    let requests = (done - counted).max(1);
    Ok(StaticResult {
        requests_per_sec: requests as f64 / measure_start.elapsed().as_secs_f64(),
        server_cpu_us_per_request: cpu * 1e6 / requests as f64,
        body_bytes: body_bytes.unwrap_or(0),
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_response;

    #[test]
    fn responses_are_split_and_checked() {
        let one = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nETag: x\r\n\r\nabc";
        assert_eq!(parse_response(one), Ok(Some((47, 3))));
        assert_eq!(parse_response(&one[..40]), Ok(None));
        assert_eq!(parse_response(&one[..49]), Ok(None));
        assert!(parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }
}
