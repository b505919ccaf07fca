//! WebSocket clients for the tests: `RawWs` writes frames byte by byte as told, valid or not, and
//! reads the server's frames; `ws_client` is a standard client (tungstenite).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use testkit::ws::{self, ALIVE_PREFIX, Frame};

use super::{Client, WAIT, eventually, metric};

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

/// The next text message on `ws` that is not an alive message, skipping pings and pongs.
pub fn next_text(ws: &mut tungstenite::WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().expect("read") {
            tungstenite::Message::Text(t) if t.starts_with(ALIVE_PREFIX) => {}
            tungstenite::Message::Text(t) => return t.to_string(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
