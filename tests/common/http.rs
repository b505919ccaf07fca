//! A raw HTTP/1.1 client for the tests: requests written as given (valid or not), responses read
//! and parsed with bounded waits.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::WAIT;

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that speaks raw HTTP/1.1.
pub struct Client {
    pub stream: TcpStream,
    /// Read past the last response: after an upgrade, the server's first frames.
    pub(super) buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Whether nothing has arrived from the server yet (not even a close), looked at without
    /// waiting.
    pub fn nothing_arrived(&mut self) -> bool {
        self.stream.set_nonblocking(true).expect("nonblocking");
        let mut byte = [0u8; 1];
        let nothing =
            matches!(self.stream.peek(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock);
        self.stream.set_nonblocking(false).expect("blocking");
        nothing && self.buf.is_empty()
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("send");
    }

    /// Sends `GET path` with keep-alive.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.response()
    }

    /// Reads one response; `head_only` for answers to HEAD (no body is read).
    pub fn read_response(&mut self, head_only: bool) -> Response {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) =
                parsed.parse(&self.buf).expect("valid response")
            {
                let status = parsed.code.unwrap();
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let length = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse::<usize>().unwrap())
                    .unwrap_or(0);
                let length = if head_only { 0 } else { length };
                while self.buf.len() < len + length {
                    self.fill();
                }
                let body = self.buf[len..len + length].to_vec();
                self.buf.drain(..len + length);
                return Response {
                    status,
                    headers,
                    body,
                };
            }
            self.fill();
        }
    }

    pub fn response(&mut self) -> Response {
        self.read_response(false)
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 16384];
        // A signal to the test process (the harness's children ending) interrupts a blocking
        // read; that is no answer from the server, so read again.
        let mut read = self.stream.read(&mut chunk);
        while matches!(&read, Err(e) if e.kind() == ErrorKind::Interrupted) {
            read = self.stream.read(&mut chunk);
        }
        match read {
            Ok(0) => panic!(
                "connection closed mid-response; got {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!(
                "read failed: {e}; got {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Reads until the server closes; returns what arrived, or the error that ended it.
    pub fn read_to_close(&mut self, timeout: Duration) -> Result<Vec<u8>, std::io::Error> {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut all = std::mem::take(&mut self.buf);
        let mut chunk = [0u8; 16384];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(all),
                Ok(n) => all.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the server has closed this connection within `timeout` (EOF or reset).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        match self.read_to_close(timeout) {
            Ok(_) => true,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }
}

/// One request on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    Client::connect(addr).get(path)
}

/// Sends raw bytes on a fresh connection and reads one response.
pub fn raw(addr: SocketAddr, request: &[u8]) -> Response {
    let mut client = Client::connect(addr);
    client.send(request);
    client.response()
}
