//! The event-driven client side: many WebSocket connections on one `mio` loop, so the load
//! generator is not the bottleneck. A mode supplies a [`Behaviour`]; the driver does TCP and
//! the upgrade, and frames with the test kit's codec (`testkit::ws`), which appends to the
//! connection's buffer and reads headers in place: nothing is allocated per frame.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use testkit::ws;

/// The masking key of every frame the load generator sends.
pub const MASK: [u8; 4] = [0x5a, 0x17, 0x99, 0x03];

/// Connections per source address. A socket bound before it connects gets its port at bind
/// time, and Linux gives bind() the even half of the ephemeral range (~14k of ~28k ports):
/// past that, each bind searches the range, and 19,000 connections from one address took 42 s
/// to open instead of 2 s.
const PER_SOURCE: usize = 10_000;

/// The source address for the `i`-th connection: 127.0.0.2, then .3 after 10,000, …
pub fn source_address(i: usize) -> Ipv4Addr {
    let n = 2 + (i / PER_SOURCE) as u32;
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) + n)
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Handshaking,
    Open,
    Closed,
}

/// One client connection.
pub struct Conn {
    stream: TcpStream,
    phase: Phase,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
}

impl Conn {
    /// Queues a masked text frame.
    pub fn send_text(&mut self, payload: &[u8]) {
        ws::encode_into(&mut self.outbuf, true, ws::TEXT, payload, Some(MASK), 0);
    }

    /// Queues a close frame (1000).
    pub fn send_close(&mut self) {
        let code = 1000u16.to_be_bytes();
        ws::encode_into(&mut self.outbuf, true, ws::CLOSE, &code, Some(MASK), 0);
    }

    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// A close frame arrived.
    Close,
    /// The stream ended (EOF or reset) without a close frame.
    Eof,
    /// The driver gave up on it and counted it in [`Driver::errors`] (the connect, a write, or
    /// the upgrade failed): a mode that counts closes as errors need not count it again.
    Error,
}

/// What a mode does with its connections.
pub trait Behaviour {
    /// The connection `id` finished its upgrade.
    fn on_open(&mut self, id: usize, conn: &mut Conn, now: Instant);
    /// A text message arrived (alive messages included).
    fn on_text(&mut self, id: usize, conn: &mut Conn, payload: &[u8], now: Instant);
    /// The connection ended, and how.
    fn on_closed(&mut self, id: usize, how: Ended, now: Instant);
}

/// The loop and its connections (a slot per connection; `None` once removed).
pub struct Driver {
    poll: Poll,
    events: Events,
    pub conns: Vec<Option<Conn>>,
    server: SocketAddr,
    pub errors: u64,
}

impl Driver {
    pub fn new(server: SocketAddr) -> io::Result<Driver> {
        Ok(Driver {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            conns: Vec::new(),
            server,
            errors: 0,
        })
    }

    /// Starts connection number `index` (for its source address); returns its id.
    pub fn connect(&mut self, index: usize) -> io::Result<usize> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        // Closing sends RST, not FIN: no TIME_WAIT piles up on the client's source ports over
        // back-to-back runs (the servers see a reset only after the run or the close handshake).
        socket.set_linger(Some(Duration::ZERO))?;
        socket.bind(&SocketAddr::V4(SocketAddrV4::new(source_address(index), 0)).into())?;
        match socket.connect(&self.server.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(115) => {} // EINPROGRESS
            Err(e) => return Err(e),
        }
        let mut stream = TcpStream::from_std(socket.into());
        let id = match self.conns.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        self.poll.registry().register(
            &mut stream,
            Token(id),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let mut outbuf = Vec::with_capacity(256);
        outbuf.extend_from_slice(ws::UPGRADE_REQUEST.as_bytes());
        self.conns[id] = Some(Conn {
            stream,
            phase: Phase::Connecting,
            inbuf: Vec::new(),
            outbuf,
        });
        Ok(id)
    }

    /// Number of connections that finished their upgrade and are still open.
    pub fn open(&self) -> usize {
        self.conns.iter().flatten().filter(|c| c.is_open()).count()
    }

    /// One turn of the loop: wait up to `timeout`, handle what is ready.
    pub fn turn(&mut self, behaviour: &mut impl Behaviour, timeout: Duration) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
        for id in ready {
            self.service(id, behaviour);
        }
        Ok(())
    }

    /// Writes what `id` has queued and reads what arrived.
    pub fn service(&mut self, id: usize, behaviour: &mut impl Behaviour) {
        let now = Instant::now();
        let Some(conn) = self.conns.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        if conn.phase == Phase::Connecting {
            match conn.stream.peer_addr() {
                Ok(_) => conn.phase = Phase::Handshaking,
                Err(_) => match conn.stream.take_error() {
                    Ok(None) => return, // still connecting
                    _ => {
                        self.errors += 1;
                        self.remove(id, Ended::Error, behaviour, now);
                        return;
                    }
                },
            }
        }
        if flush(conn).is_err() {
            self.errors += 1;
            self.remove(id, Ended::Error, behaviour, now);
            return;
        }
        let mut chunk = [0u8; 65536];
        let mut eof = false;
        loop {
            match conn.stream.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => conn.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        if conn.phase == Phase::Handshaking
            && let Some(upgrade) = ws::upgrade_response(&conn.inbuf)
        {
            let Ok(end) = upgrade else {
                self.errors += 1;
                self.remove(id, Ended::Error, behaviour, now);
                return;
            };
            conn.inbuf.drain(..end);
            conn.phase = Phase::Open;
            behaviour.on_open(id, conn, now);
        }
        let mut clean = false;
        if conn.phase == Phase::Open {
            let mut consumed = 0;
            while let Some(head) = ws::frame_at(&conn.inbuf[consumed..]) {
                let payload_range = consumed + head.header_len..consumed + head.frame_len();
                consumed += head.frame_len();
                match head.opcode {
                    ws::TEXT => {
                        let payload = conn.inbuf[payload_range].to_vec();
                        behaviour.on_text(id, conn, &payload, now);
                    }
                    ws::CLOSE => {
                        clean = true;
                        conn.phase = Phase::Closed;
                        break;
                    }
                    ws::PING => {
                        let payload = conn.inbuf[payload_range].to_vec();
                        ws::encode_into(&mut conn.outbuf, true, ws::PONG, &payload, Some(MASK), 0);
                    }
                    _ => {}
                }
            }
            conn.inbuf.drain(..consumed);
        }
        if flush(conn).is_err() {
            eof = true;
        }
        if clean {
            self.remove(id, Ended::Close, behaviour, now);
        } else if eof {
            self.remove(id, Ended::Eof, behaviour, now);
        }
    }

    fn remove(&mut self, id: usize, how: Ended, behaviour: &mut impl Behaviour, now: Instant) {
        if let Some(mut conn) = self.conns[id].take() {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            behaviour.on_closed(id, how, now);
        }
    }
}

fn flush(conn: &mut Conn) -> io::Result<()> {
    while !conn.outbuf.is_empty() && conn.phase != Phase::Connecting {
        match conn.stream.write(&conn.outbuf) {
            Ok(n) => {
                conn.outbuf.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
