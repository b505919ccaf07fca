//! A blocking client WebSocket with just enough protocol for `idle`, which holds many
//! connections open and reads each in turn.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use testkit::ws;

use crate::driver;

/// Any single read or connect waits at most this long.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection, upgraded; `buf` holds what was read and not yet decoded.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(server: SocketAddr, source: Ipv4Addr) -> Result<Client, String> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
        socket
            .bind(&SocketAddr::V4(SocketAddrV4::new(source, 0)).into())
            .map_err(|e| format!("bind {source}: {e}"))?;
        socket
            .connect_timeout(&server.into(), IO_TIMEOUT)
            .map_err(|e| format!("connect from {source}: {e}"))?;
        // An abortive close when the run ends (RST, no TIME_WAIT): back-to-back runs would
        // otherwise exhaust the source address's ephemeral ports.
        socket
            .set_linger(Some(Duration::ZERO))
            .map_err(|e| e.to_string())?;
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut client = Client {
            stream,
            buf: Vec::new(),
        };
        client
            .stream
            .write_all(ws::UPGRADE_REQUEST.as_bytes())
            .map_err(|e| e.to_string())?;
        let end = loop {
            if let Some(upgrade) = ws::upgrade_response(&client.buf) {
                break upgrade?;
            }
            client.fill()?;
        };
        client.buf.drain(..end);
        Ok(client)
    }

    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err("server closed the connection".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// How long the next reads may wait (`idle` waits for alive messages up to a deadline).
    pub fn set_read_timeout(&self, timeout: Duration) -> Result<(), String> {
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())
    }

    pub fn send_text(&mut self, text: &[u8]) -> Result<(), String> {
        let frame = ws::encode(true, ws::TEXT, text, Some(driver::MASK), 0);
        self.stream.write_all(&frame).map_err(|e| e.to_string())
    }

    /// Reads one text frame; `Ok((is_alive, payload))`.
    pub fn read_text(&mut self) -> Result<(bool, Vec<u8>), String> {
        loop {
            while let Some((frame, used)) = ws::decode(&self.buf) {
                self.buf.drain(..used);
                let payload = frame.payload;
                match frame.opcode {
                    ws::TEXT => {
                        return Ok((payload.starts_with(ws::ALIVE_PREFIX.as_bytes()), payload));
                    }
                    ws::PING | ws::PONG => {}
                    ws::CLOSE => return Err("server sent close".into()),
                    other => return Err(format!("unexpected opcode {other}")),
                }
            }
            self.fill()?;
        }
    }
}
