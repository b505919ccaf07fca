//! Test harness: runs the real `wsdrain` binary on ephemeral loopback ports, follows its log, and
//! talks to it over real sockets. Every wait is bounded, so a broken server fails a test instead
//! of hanging it.
//!
//! The launcher, the WebSocket codec and the readers of log lines and `/metrics` are the test
//! kit's (`tools/testkit`, shared with the rollout harness and the load generator); this module
//! gives them the tests' shape: test defaults, and a panic with the server's log on failure.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use testkit::server::{Launch, Server};
use testkit::ws;
pub use testkit::ws::ALIVE_PREFIX;

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use testkit::evidence::{DrainPlan, EventFields, Metrics};
#[allow(unused_imports)]
pub use testkit::ws::{Frame, encode as encode_frame};

/// Default bound on any single wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// The test kit's result, or a panic with its message (which carries the server's log), at
/// the test's line.
#[track_caller]
fn ok<T>(result: Result<T, String>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{e}"),
    }
}

/// A running server process.
pub struct TestServer {
    server: Server,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub static_dir: PathBuf,
    /// How many lines [`TestServer::next_log_line`] has handed out, by needle.
    handed_out: HashMap<String, usize>,
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wsdrain-test-{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A static directory with known content, including links that point out of it.
pub fn fixture_static_dir() -> PathBuf {
    let dir = temp_dir("static");
    let write = |rel: &str, body: &str| {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    write(
        "index.html",
        "<!doctype html><title>fixture</title>root index\n",
    );
    write("app.js", "console.log('app');\n");
    write("style.css", "body { color: black }\n");
    write("sub/index.html", "sub index\n");
    write("sub/page.txt", "sub page\n");
    write("space name.txt", "spaced\n");
    write(".hidden", "secret\n");
    let outside = temp_dir("outside");
    std::fs::write(outside.join("secret.txt"), "OUTSIDE-SECRET\n").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), dir.join("link-out.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("dir-out")).unwrap();
    std::os::unix::fs::symlink(dir.join("app.js"), dir.join("link-in.js")).unwrap();
    dir
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_wsdrain")
}

impl TestServer {
    /// Starts the server with test defaults (loopback, ephemeral ports, fixture files) and the
    /// given environment overrides; returns once it logged its addresses.
    #[track_caller]
    pub fn start(env: &[(&str, &str)]) -> TestServer {
        Self::start_with(Command::new(binary()), env)
    }

    /// Like [`TestServer::start`], with a prepared command (e.g. a wrapper that lowers limits).
    #[track_caller]
    pub fn start_with(command: Command, env: &[(&str, &str)]) -> TestServer {
        let static_dir = fixture_static_dir();
        let server = ok(Launch::with_command(command)
            .name("wsdrain")
            .env("STATIC_DIR", &static_dir.display().to_string())
            .env("RUST_LOG", "debug")
            .env("INSTANCE_ID", "test-instance")
            .envs(env.iter().copied())
            .start());
        TestServer {
            public: server.public(),
            admin: server.admin(),
            server,
            static_dir,
            handed_out: HashMap::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Waits for a log line containing `needle` (seen before or arriving within `timeout`).
    #[track_caller]
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> String {
        ok(self.server.wait_log(needle, timeout))
    }

    /// Waits until `count` log lines contain `needle` and returns them.
    #[track_caller]
    pub fn wait_log_lines(&mut self, needle: &str, count: usize) -> Vec<String> {
        ok(self.server.wait_log_lines(needle, count, WAIT))
    }

    /// The next log line with `needle` that no earlier call for the same needle returned: one
    /// per input of a table of alike bad inputs, whose lines differ only in the connection's
    /// number (`wait_log` would find the first one again).
    #[track_caller]
    pub fn next_log_line(&mut self, needle: &str) -> String {
        let count = self.handed_out.entry(needle.to_string()).or_default();
        *count += 1;
        let nth = *count;
        self.wait_log_lines(needle, nth).swap_remove(nth - 1)
    }

    /// Waits for the lifecycle line `event` (seen before or arriving within `timeout`) and
    /// returns its fields: tests read numbers by key, never from prose.
    #[track_caller]
    pub fn wait_event(&mut self, event: &str, timeout: Duration) -> EventFields {
        ok(self.server.wait_event(event, timeout))
    }

    /// The fields of the lifecycle line `event`, if it was logged.
    pub fn find_event(&self, event: &str) -> Option<EventFields> {
        self.server.find_event(event)
    }

    /// Every log line so far.
    pub fn log_text(&self) -> String {
        self.server.log_text()
    }

    /// Sends a signal by name (TERM, INT, KILL) with kill(1).
    #[track_caller]
    pub fn signal(&self, name: &str) {
        ok(self.server.signal(name))
    }

    /// Waits for the process to exit (its output closes) and returns its status.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        ok(self.server.wait_exit(timeout))
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.server.running()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = std::fs::remove_dir_all(&self.static_dir);
    }
}

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
    buf: Vec<u8>,
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

/// Reads a file under the repository root.
pub fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// A WebSocket client that writes frames byte by byte as told, valid or not.
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// How the server's hello (its first frame on every WebSocket) begins.
pub const HELLO_PREFIX: &str = "{\"type\":\"alive\",\"event\":\"hello\"";

/// A complete upgrade request for `/ws`.
pub const UPGRADE: &str = ws::UPGRADE_REQUEST;

impl RawWs {
    /// Connects and upgrades; `extra` is sent in the same write as the request. Expects the
    /// server's hello as the first frame, before anything `extra` asks for, and reads it.
    pub fn connect_with(addr: SocketAddr, extra: &[u8]) -> RawWs {
        let mut ws = Self::upgrade(addr, extra);
        let hello = ws.read_frame();
        assert!(
            hello.opcode == 1 && hello.text().starts_with(HELLO_PREFIX),
            "the first frame is not the hello: {hello:?} ({:?})",
            String::from_utf8_lossy(&hello.payload)
        );
        ws
    }

    /// Connects and upgrades to a server in echo mode, which sends no hello.
    pub fn connect_echo(addr: SocketAddr) -> RawWs {
        Self::upgrade(addr, b"")
    }

    fn upgrade(addr: SocketAddr, extra: &[u8]) -> RawWs {
        let mut client = Client::connect(addr);
        let mut request = UPGRADE.as_bytes().to_vec();
        request.extend_from_slice(extra);
        client.send(&request);
        let r = client.read_response(true);
        assert_eq!(r.status, 101, "upgrade refused: {}", r.text());
        assert_eq!(r.header("sec-websocket-accept"), Some(ws::ACCEPT));
        RawWs {
            stream: client.stream,
            buf: client.buf,
        }
    }

    pub fn connect(addr: SocketAddr) -> RawWs {
        Self::connect_with(addr, b"")
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send frame");
    }

    /// Sends a masked frame.
    pub fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let bytes = ws::encode(fin, opcode, payload, Some([0x12, 0x34, 0x56, 0x78]), 0);
        self.send_raw(&bytes);
    }

    pub fn send_text(&mut self, text: &str) {
        self.send(true, 1, text.as_bytes());
    }

    pub fn read_frame(&mut self) -> Frame {
        loop {
            if let Some(head) = ws::frame_at(&self.buf) {
                assert_eq!(head.mask, None, "server frames must not be masked");
                let frame = Frame::at(&self.buf, &head);
                self.buf.drain(..head.frame_len());
                return frame;
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("connection closed while waiting for a frame"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("no frame: {e}"),
            }
        }
    }

    /// Reads frames, skipping alive messages and pings.
    pub fn read_reply(&mut self) -> Frame {
        loop {
            let f = self.read_frame();
            let alive = f.opcode == 1 && f.payload.starts_with(ALIVE_PREFIX.as_bytes());
            if !alive && f.opcode != 9 {
                return f;
            }
        }
    }

    /// Expects a close frame with `code` next (after any alive/ping), then the TCP close;
    /// returns the frame's reason.
    pub fn expect_close(&mut self, code: u16) -> String {
        let f = self.read_reply();
        assert_eq!(
            (f.opcode, f.close_code()),
            (8, Some(code)),
            "expected close {code}, got {f:?} ({:?})",
            String::from_utf8_lossy(&f.payload)
        );
        self.expect_tcp_close();
        f.close_reason()
    }

    /// Sends `frame` over and over until a write makes no progress for 500 ms (the server has
    /// stopped reading); returns how many were sent. Bounded: 200,000 frames or 20 s.
    pub fn write_until_the_server_stops_reading(&mut self, frame: &[u8]) -> usize {
        self.stream
            .set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let started = Instant::now();
        let mut sent = 0;
        while self.stream.write_all(frame).is_ok() {
            sent += 1;
            assert!(
                sent < 200_000 && started.elapsed() < Duration::from_secs(20),
                "the server kept reading a client that does not read ({sent} messages)"
            );
        }
        sent
    }

    /// Expects the server to give up on this client for not reading: the drop counted (and not
    /// as a close frame sent: the 1008 it attempts on the way out rarely reaches a client that
    /// does not read), then the TCP connection closed. Nothing is read before the drop is
    /// counted: reading is write progress for the server, which would then rightly keep it.
    pub fn expect_dropped_for_not_reading(&mut self, admin: SocketAddr) {
        eventually(
            WAIT,
            "the server gave up on a client that does not read",
            || metric(admin, "wsdrain_websocket_not_reading_drops_total") == Some(1.0),
        );
        assert_eq!(
            metric(
                admin,
                "wsdrain_websocket_closes_total{code=\"1008\",by=\"server\"}"
            ),
            None,
            "a close frame that could not get out is not counted as sent"
        );
        self.expect_tcp_close();
    }

    /// Answers the server's close frame with `code` (completing the close handshake), then
    /// expects the server to close the TCP connection.
    pub fn answer_close(&mut self, code: u16) {
        self.send(true, 8, &code.to_be_bytes());
        self.expect_tcp_close();
    }

    /// Expects the server to end the TCP connection with a FIN (EOF), not a reset, within the
    /// wait bound, and nothing after its close frame.
    pub fn expect_tcp_eof(&mut self) {
        self.stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut chunk = [0u8; 64];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => panic!("{n} bytes after the close frame"),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("the TCP connection did not end with a FIN: {e}"),
            }
        }
    }

    /// Expects the server to close the TCP connection (EOF or reset) within the wait bound.
    pub fn expect_tcp_close(&mut self) {
        self.stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("TCP connection not closed: {e}"),
            }
        }
    }
}

/// A standard client (tungstenite) connected to `/ws`.
pub fn ws_client(addr: SocketAddr) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    let (ws, response) =
        tungstenite::client(format!("ws://{addr}/ws"), stream).expect("WebSocket handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// Raises this test process's open-files limit to its hard limit, and fails unless `needed`
/// descriptors fit: the common default soft limit, 1,024, is less than the largest tests open.
#[track_caller]
pub fn raise_open_files_limit(needed: u64) {
    let limit = ok(rlimit::increase_nofile_limit(u64::MAX).map_err(|e| e.to_string()));
    assert!(
        limit >= needed,
        "this test needs {needed} open files; the hard limit allows {limit} (ulimit -Hn)"
    );
}

/// Waits until `condition` holds, checking every 20 ms, for at most `timeout`; for state the
/// server reports only when asked (metrics), where no event can be awaited.
pub fn eventually(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One scrape of the admin port's `/metrics`, parsed.
#[track_caller]
pub fn metrics(admin: SocketAddr) -> Metrics {
    ok(testkit::evidence::scrape(admin))
}

/// The value of one series (`name` or `name{label="value",…}`, all its labels) in the admin
/// port's `/metrics`; `None` if the server does not expose it.
#[track_caller]
pub fn metric(admin: SocketAddr, series: &str) -> Option<f64> {
    ok(testkit::evidence::metric(admin, series))
}

/// Asserts the value of each series (as for [`metric`]) in one scrape of `/metrics`.
#[track_caller]
pub fn assert_metrics(admin: SocketAddr, expected: &[(&str, f64)]) {
    let scraped = metrics(admin);
    for &(series, value) in expected {
        assert_eq!(
            scraped.get(series),
            Some(value),
            "{series} in /metrics:\n{scraped}"
        );
    }
}
