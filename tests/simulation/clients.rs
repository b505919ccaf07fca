//! Simulated clients. Each sends requests or WebSocket messages on its socket, reads what comes
//! back, and checks it: every answer belongs to the next request in order, none comes twice or
//! unasked, text replies are the reversed message. Well-behaved clients (they read promptly and
//! answer pings and closes) also check completeness: when their connection ends, every request
//! the server read in full was answered, unless an answer that closes came first.

use std::collections::VecDeque;

use testkit::ws;
use wsdrain::base::timers::Rng;
use wsdrain::net::Listener;

use crate::net::World;

/// What a client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Keep-alive HTTP on the public port: a few requests, pipelined or one by one.
    Http,
    /// A WebSocket that sends messages, reads promptly, answers pings and closes.
    WebSocket,
    /// A WebSocket that sends and never reads.
    NonReading,
    /// Reads now and then, a few bytes at a time.
    SlowReader,
    /// Sends its request one byte at a time, slowly.
    Dribbler,
    /// Sends what the server must refuse: garbage, bad frames.
    Abusive,
    /// Resets the connection, or shuts down its sending side, at a random moment.
    Vanisher,
    /// A WebSocket peer that went quiet: reads, but answers no ping and no close.
    Mute,
    /// Sends its requests, then at once shuts down its sending side, and reads the answers.
    HalfClose,
    /// The kubelet's preStop hook, and a probe pipelined behind it, on the admin port.
    PreStop,
    /// Probes and metrics on the admin port.
    Prober,
}

impl Behaviour {
    pub fn pick(rng: &mut Rng) -> Self {
        match rng.below(22) {
            0..=4 => Behaviour::Http,
            21 => Behaviour::HalfClose,
            5..=10 => Behaviour::WebSocket,
            20 => Behaviour::Mute,
            11 => Behaviour::NonReading,
            12 => Behaviour::SlowReader,
            13 => Behaviour::Dribbler,
            14..=15 => Behaviour::Abusive,
            16 => Behaviour::Vanisher,
            17 => Behaviour::PreStop,
            _ => Behaviour::Prober,
        }
    }

    fn side(self) -> Listener {
        match self {
            Behaviour::PreStop | Behaviour::Prober => Listener::Admin,
            _ => Listener::Public,
        }
    }

    /// Whether this client reads promptly and plays by the rules, so that completeness can be
    /// asked of the server.
    fn well_behaved(self) -> bool {
        matches!(
            self,
            Behaviour::Http
                | Behaviour::WebSocket
                | Behaviour::PreStop
                | Behaviour::Prober
                | Behaviour::HalfClose
        )
    }
}

/// The answer a request or message is owed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owed {
    /// An HTTP response with one of these statuses (503 is always allowed for the first: the
    /// server refuses at accept when full).
    Status { allowed: Vec<u16>, head_only: bool },
    /// The text reply: the message reversed.
    Reply(String),
    /// A close frame with one of these codes (a protocol error was sent).
    Close(Vec<u16>),
}

#[derive(Debug)]
struct Expect {
    /// Where the request ends in the bytes sent on this socket.
    end: usize,
    owed: Owed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Http,
    /// Sent the upgrade; its answer decides.
    Upgrading,
    WebSocket,
    Done,
}

/// One simulated client.
#[derive(Debug)]
pub struct Client {
    pub socket: usize,
    pub behaviour: Behaviour,
    mode: Mode,
    rx: Vec<u8>,
    outstanding: VecDeque<Expect>,
    sent: usize,
    /// Bytes the dribbler still has to send.
    dribble: VecDeque<u8>,
    /// A response with `Connection: close`, or the server's close frame, was received: what
    /// is still outstanding is excused.
    closing_seen: bool,
    /// The client sent its close frame or FIN: it sends nothing more.
    sending_done: bool,
    pub server_close_code: Option<u16>,
    messages: u32,
    /// The run is strict (no clock jumps): a 408 for a whole request is then a violation.
    strict: bool,
    /// HTTP answers received.
    answers: u32,
    requests_left: u32,
    /// The hello came (it must be the first frame), and frames received so far.
    hello_seen: bool,
    frames_seen: u32,
    /// When the vanisher resets.
    vanish_after: u32,
    ticks: u32,
}

/// A violation found by a client, with what it saw.
pub type Violation = String;

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: sim\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Public-port requests: the request line and the statuses allowed.
const PUBLIC_REQUESTS: &[(&str, &[u16])] = &[
    ("GET / HTTP/1.1", &[200]),
    ("HEAD /app.js HTTP/1.1", &[200]),
    ("GET /sub HTTP/1.1", &[301]),
    ("GET //sub HTTP/1.1", &[301]),
    ("GET ///sub?x=1 HTTP/1.1", &[301]),
    ("GET /sub/ HTTP/1.1", &[200]),
    ("GET /big.txt HTTP/1.1", &[200]),
    ("GET /nope HTTP/1.1", &[404]),
    ("GET /healthz HTTP/1.1", &[200]),
    ("GET /readyz HTTP/1.1", &[200, 503]),
    ("POST /healthz HTTP/1.1", &[405]),
    ("GET HTTP://sim/app.js HTTP/1.1", &[200]),
    ("GET /%2e%2e/x HTTP/1.1", &[400]),
];

const ADMIN_REQUESTS: &[(&str, &[u16])] = &[
    ("GET /healthz HTTP/1.1", &[200]),
    ("GET /readyz HTTP/1.1", &[200, 503]),
    ("GET /metrics HTTP/1.1", &[200]),
];

/// Statuses that close the connection after them.
fn closes(status: u16) -> bool {
    !matches!(status, 101 | 200 | 301 | 304 | 404 | 405)
}

fn chance(rng: &mut Rng, percent: u64) -> bool {
    rng.below(100) < percent
}

impl Client {
    /// A new client of a random behaviour, connecting now.
    pub fn connect(world: &mut World) -> Client {
        let behaviour = Behaviour::pick(&mut world.rng);
        Self::with_behaviour(world, behaviour)
    }

    /// The kubelet calling the preStop hook, now.
    pub fn prestop_hook(world: &mut World) -> Client {
        Self::with_behaviour(world, Behaviour::PreStop)
    }

    fn with_behaviour(world: &mut World, behaviour: Behaviour) -> Client {
        let socket = world.connect(behaviour.side());
        let requests_left = 1 + world.rng.below(4) as u32;
        let vanish_after = world.rng.below(40) as u32;
        Client {
            socket,
            behaviour,
            mode: Mode::Http,
            rx: Vec::new(),
            outstanding: VecDeque::new(),
            sent: 0,
            dribble: VecDeque::new(),
            closing_seen: false,
            sending_done: false,
            server_close_code: None,
            messages: 0,
            strict: true,
            answers: 0,
            requests_left,
            hello_seen: false,
            frames_seen: 0,
            vanish_after,
            ticks: 0,
        }
    }

    pub fn done(&self) -> bool {
        self.mode == Mode::Done
    }

    fn send(&mut self, world: &mut World, bytes: &[u8], owed: Option<Owed>) {
        let socket = &mut world.sockets[self.socket];
        if socket.reset || socket.client_fin || socket.refused {
            return;
        }
        socket.c2s_wire.extend(bytes);
        self.sent += bytes.len();
        if let Some(owed) = owed {
            self.outstanding.push_back(Expect {
                end: self.sent,
                owed,
            });
        }
    }

    /// Sends one request from a table (its line and the statuses allowed), with
    /// `Connection: close` if `close`.
    fn send_request(&mut self, world: &mut World, (line, allowed): (&str, &[u16]), close: bool) {
        let close = if close { "Connection: close\r\n" } else { "" };
        let request = format!("{line}\r\nHost: sim\r\n{close}\r\n");
        self.send(
            world,
            request.as_bytes(),
            Some(Owed::Status {
                allowed: allowed.to_vec(),
                head_only: line.starts_with("HEAD"),
            }),
        );
    }

    fn finish_sending(&mut self, world: &mut World) {
        self.sending_done = true;
        world.sockets[self.socket].client_fin = true;
    }

    /// One tick of the client: read, check, send, maybe leave. `strict` asks completeness of
    /// well-behaved clients.
    pub fn tick(&mut self, world: &mut World, strict: bool) -> Vec<Violation> {
        let mut violations = Vec::new();
        if self.done() {
            return violations;
        }
        self.ticks += 1;
        if self.behaviour == Behaviour::Vanisher && self.ticks > self.vanish_after {
            // Half the vanishers reset; the others shut down their sending side mid-conversation
            // and read on.
            if self.vanish_after.is_multiple_of(2) {
                world.reset(self.socket);
                self.mode = Mode::Done;
                return violations;
            }
            if !self.sending_done {
                self.finish_sending(world);
            }
        }
        // Read.
        let max = match self.behaviour {
            Behaviour::NonReading => 0,
            Behaviour::SlowReader if chance(&mut world.rng, 80) => 0,
            Behaviour::SlowReader => 1 + world.rng.below(64) as usize,
            _ => usize::MAX,
        };
        let bytes = world.client_read(self.socket, max);
        self.rx.extend_from_slice(&bytes);
        self.strict = strict;
        self.parse(world, &mut violations);
        // Send.
        if !self.sending_done {
            self.send_more(world);
        }
        // The end.
        if world.client_sees_eof(self.socket) && self.behaviour != Behaviour::NonReading {
            if strict && self.behaviour.well_behaved() {
                self.check_complete(world, &mut violations);
            }
            if !self.sending_done {
                self.finish_sending(world);
            }
            self.mode = Mode::Done;
        }
        violations
            .into_iter()
            .map(|v| {
                format!(
                    "client on socket {} ({:?}): {v}",
                    self.socket, self.behaviour
                )
            })
            .collect()
    }

    fn check_complete(&self, world: &World, violations: &mut Vec<Violation>) {
        let socket = &world.sockets[self.socket];
        // The exit drops admin connections (probes, the hook) after one last write: their
        // answers are best effort. Public ones the drain has closed before.
        if socket.refused || (socket.open_at_exit && self.behaviour.side() == Listener::Admin) {
            return;
        }
        // An answer still being sent at the drain deadline is cut by the exit (the contract),
        // and with it what was pipelined behind it.
        if socket.answer_cut_at_exit {
            return;
        }
        // Accepted, then closed without a word: a well-behaved client speaks within a few
        // ticks, far inside HEADER_TIMEOUT, and must be answered, in the drain too (a 503 for
        // an upgrade), not closed as if it were idle before its request arrived.
        if socket.server_written == 0 && !socket.open_at_exit {
            violations.push(format!(
                "the server closed the connection without a word; the client sent {} bytes, \
                 the server read {}",
                self.sent, socket.server_read
            ));
        }
        if !self.rx.is_empty() {
            violations.push(format!(
                "the connection ended inside an answer: {:?}",
                String::from_utf8_lossy(&self.rx)
            ));
        }
        if self.mode == Mode::WebSocket && self.server_close_code.is_none() {
            violations.push("the WebSocket ended without a close frame from the server".into());
        }
        if self.closing_seen {
            return;
        }
        if let Some(e) = self.outstanding.front()
            && e.end <= socket.server_read
        {
            violations.push(format!(
                "the server read a whole request and closed without answering it: {:?}",
                e.owed
            ));
        }
    }

    fn send_more(&mut self, world: &mut World) {
        let rng_roll = world.rng.below(100);
        match (self.behaviour, self.mode) {
            (_, Mode::Done | Mode::Upgrading) => {}
            (Behaviour::Dribbler, _) => {
                if self.dribble.is_empty() && self.sent == 0 {
                    let (line, allowed) = PUBLIC_REQUESTS[world.rng.below(4) as usize];
                    let mut allowed = allowed.to_vec();
                    allowed.push(408);
                    let request = format!("{line}\r\nHost: sim\r\n\r\n");
                    self.dribble.extend(request.as_bytes());
                    self.outstanding.push_back(Expect {
                        end: request.len(),
                        owed: Owed::Status {
                            allowed,
                            head_only: line.starts_with("HEAD"),
                        },
                    });
                }
                if rng_roll < 30
                    && let Some(b) = self.dribble.pop_front()
                {
                    self.send(world, &[b], None);
                }
            }
            (Behaviour::Http | Behaviour::Prober | Behaviour::Vanisher, Mode::Http) => {
                if self.requests_left == 0 || rng_roll >= 40 {
                    if self.requests_left == 0 && self.outstanding.is_empty() && rng_roll < 5 {
                        self.finish_sending(world);
                    }
                    return;
                }
                // Pipelined: send without waiting for the answers.
                let n = if rng_roll < 15 { self.requests_left } else { 1 };
                if rng_roll >= 15 && !self.outstanding.is_empty() {
                    return; // one at a time
                }
                for _ in 0..n {
                    self.requests_left -= 1;
                    let table = if self.behaviour == Behaviour::Prober {
                        ADMIN_REQUESTS
                    } else {
                        PUBLIC_REQUESTS
                    };
                    let request = table[world.rng.below(table.len() as u64) as usize];
                    let last = self.requests_left == 0 && chance(&mut world.rng, 30);
                    self.send_request(world, request, last);
                }
            }
            (Behaviour::HalfClose, Mode::Http) => {
                for _ in 0..self.requests_left {
                    let request =
                        PUBLIC_REQUESTS[world.rng.below(PUBLIC_REQUESTS.len() as u64) as usize];
                    self.send_request(world, request, false);
                }
                self.finish_sending(world);
            }
            (Behaviour::PreStop, Mode::Http) => {
                if self.sent == 0 {
                    let request = "GET /prestop HTTP/1.1\r\nHost: sim\r\n\r\nGET /healthz HTTP/1.1\r\nHost: sim\r\n\r\n";
                    let first = request.find("\r\n\r\n").map_or(0, |i| i + 4);
                    self.send(world, &request.as_bytes()[..first], None);
                    self.outstanding.push_back(Expect {
                        end: first,
                        owed: Owed::Status {
                            allowed: vec![200],
                            head_only: false,
                        },
                    });
                    self.send(
                        world,
                        &request.as_bytes()[first..],
                        Some(Owed::Status {
                            allowed: vec![200],
                            head_only: false,
                        }),
                    );
                } else if self.outstanding.is_empty() && rng_roll < 10 {
                    self.finish_sending(world);
                }
            }
            (_, Mode::Http) => {
                // WebSocket behaviours start with the upgrade; abusive HTTP clients send garbage.
                if self.behaviour == Behaviour::Abusive && rng_roll < 40 {
                    let garbage = garbage_request(&mut world.rng);
                    self.send(
                        world,
                        &garbage,
                        Some(Owed::Status {
                            allowed: vec![400, 405, 413, 431, 501, 505],
                            head_only: false,
                        }),
                    );
                    self.sending_done = true;
                    return;
                }
                self.send(
                    world,
                    UPGRADE.as_bytes(),
                    Some(Owed::Status {
                        allowed: vec![101],
                        head_only: false,
                    }),
                );
                self.mode = Mode::Upgrading;
                if self.behaviour == Behaviour::NonReading {
                    // Frames straight behind the upgrade: the server keeps them for the session.
                    self.mode = Mode::WebSocket;
                }
            }
            (_, Mode::WebSocket) => self.send_message(world, rng_roll),
        }
    }

    fn send_message(&mut self, world: &mut World, roll: u64) {
        match self.behaviour {
            Behaviour::Abusive if self.messages >= 2 && roll < 30 => {
                let (frame, codes) = bad_frame(&mut world.rng);
                self.send(world, &frame, Some(Owed::Close(codes)));
                self.sending_done = true;
            }
            Behaviour::Mute if self.messages >= 2 => {}
            _ if self.messages >= 12 && roll < 10 => {
                // The client closes: 1000, echoed by the server.
                let frame = client_frame(&mut world.rng, 0x8, true, &1000u16.to_be_bytes());
                self.send(world, &frame, None);
                self.sending_done = true;
            }
            _ if roll < 35 => {
                self.messages += 1;
                let text = message_text(&mut world.rng, self.socket, self.messages);
                let reply: String = text.chars().rev().collect();
                let fragments = if roll < 5 { 3 } else { 1 };
                let bytes = text.as_bytes();
                let mut frames = Vec::new();
                let step = bytes.len().div_ceil(fragments).max(1);
                let pieces: Vec<&[u8]> = bytes.chunks(step).collect();
                let pieces: Vec<&[u8]> = if pieces.is_empty() { vec![&[]] } else { pieces };
                for (i, piece) in pieces.iter().enumerate() {
                    let opcode = if i == 0 { 0x1 } else { 0x0 };
                    frames.extend(client_frame(
                        &mut world.rng,
                        opcode,
                        i + 1 == pieces.len(),
                        piece,
                    ));
                }
                self.send(world, &frames, Some(Owed::Reply(reply)));
            }
            _ => {}
        }
    }

    fn parse(&mut self, world: &mut World, violations: &mut Vec<Violation>) {
        loop {
            let consumed = match self.mode {
                Mode::Http | Mode::Upgrading => self.parse_response(violations),
                Mode::WebSocket => self.parse_frame(world, violations),
                Mode::Done => None,
            };
            match consumed {
                Some(n) => {
                    self.rx.drain(..n);
                }
                None => return,
            }
        }
    }

    fn parse_response(&mut self, violations: &mut Vec<Violation>) -> Option<usize> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(&self.rx) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return None,
            Err(e) => {
                violations.push(format!(
                    "unparsable response ({e}): {:?}",
                    String::from_utf8_lossy(&self.rx)
                ));
                return Some(self.rx.len());
            }
        };
        let status = response.code.unwrap_or(0);
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).to_string())
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let connection_close =
            header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let location = header("location");
        let first = self.outstanding.front().map(|e| e.owed.clone());
        let head_only = matches!(
            first,
            Some(Owed::Status {
                head_only: true,
                ..
            })
        );
        // An answer that closes for a request the server could not read (the refusal at accept,
        // a head that timed out or did not parse) has its body even for a HEAD: the server did
        // not know the method (harmless: the connection closes behind it).
        let unread = connection_close && status >= 400;
        let body = if (head_only && !unread) || status == 101 || status == 304 {
            0
        } else {
            length
        };
        if self.rx.len() < head_len + body {
            return None;
        }
        if let Some(location) = &location
            && (location.starts_with("//") || location.starts_with("/\\"))
        {
            violations.push(format!("a redirect off the site: Location {location:?}"));
        }
        match first {
            // Refused at accept, before any request was sent.
            None if status == 503 && connection_close && self.answers == 0 => self.answers += 1,
            None => violations.push(format!("an answer ({status}) to no request")),
            Some(Owed::Status { allowed, .. }) => {
                self.outstanding.pop_front();
                // 503 with close: refused at accept (full, or out of descriptors), before any
                // other answer; or an upgrade refused during the drain.
                let refused = status == 503
                    && connection_close
                    && (self.answers == 0 || allowed.contains(&101));
                self.answers += 1;
                // After a clock jump, the header timeout may pass while a request travels.
                let late = status == 408 && !self.strict;
                if !allowed.contains(&status) && !refused && !late {
                    violations.push(format!("status {status}, expected one of {allowed:?}"));
                }
                if status == 101 {
                    self.mode = Mode::WebSocket;
                }
            }
            Some(other) => violations.push(format!("status {status} where {other:?} was owed")),
        }
        if connection_close || closes(status) {
            self.closing_seen = true;
        }
        Some(head_len + body)
    }

    fn parse_frame(&mut self, world: &mut World, violations: &mut Vec<Violation>) -> Option<usize> {
        let head = ws::frame_at(&self.rx)?;
        if head.mask.is_some() {
            violations.push("the server masked a frame".into());
        }
        let ws::Frame {
            fin,
            opcode,
            payload,
        } = ws::Frame::at(&self.rx, &head);
        let len = head.frame_len();
        if !fin {
            violations.push("the server fragmented a frame".into());
        }
        match opcode {
            0x1 => {
                let text = String::from_utf8(payload.clone()).unwrap_or_default();
                let hello = text.starts_with("{\"type\":\"alive\",\"event\":\"hello\"");
                if hello == self.hello_seen {
                    violations.push(format!(
                        "{text:?} as frame {} (the hello must be the first, and only once)",
                        self.frames_seen
                    ));
                }
                self.hello_seen |= hello;
                self.frames_seen += 1;
                if text.starts_with("{\"type\":\"alive\",\"event\":\"goaway\"")
                    && self.behaviour == Behaviour::WebSocket
                    && !self.sending_done
                    && chance(&mut world.rng, 70)
                {
                    // A client that knows the handover leaves at once (its replies still come
                    // first); the others wait for the close 1012.
                    let frame = client_frame(&mut world.rng, 0x8, true, &1000u16.to_be_bytes());
                    self.send(world, &frame, None);
                    self.sending_done = true;
                }
                if text.starts_with("{\"type\":\"alive\"") {
                    return Some(len);
                }
                match self.outstanding.pop_front() {
                    Some(Expect {
                        owed: Owed::Reply(expected),
                        ..
                    }) => {
                        if text != expected {
                            violations.push(format!("reply {text:?}, expected {expected:?}"));
                        }
                    }
                    other => violations.push(format!("reply {text:?} where {other:?} was owed")),
                }
            }
            0x9 => {
                if !self.sending_done
                    && !matches!(self.behaviour, Behaviour::NonReading | Behaviour::Mute)
                {
                    let pong = client_frame(&mut world.rng, 0xA, true, &payload);
                    self.send(world, &pong, None);
                }
            }
            0xA => {}
            0x8 => {
                let code =
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                if self.server_close_code.is_some() {
                    violations.push("a second close frame".into());
                }
                self.server_close_code = Some(code.unwrap_or(1005));
                self.closing_seen = true;
                if let Some(Expect {
                    owed: Owed::Close(codes),
                    ..
                }) = self.outstanding.front()
                {
                    let code = code.unwrap_or(1005);
                    // The drain's (or the age limit's) close may come first.
                    if !codes.contains(&code) && code != 1012 {
                        violations.push(format!("close {code}, expected one of {codes:?}"));
                    }
                }
                if !self.sending_done && self.behaviour != Behaviour::Mute {
                    // Echo the close, then wait for the server's FIN.
                    let echo =
                        client_frame(&mut world.rng, 0x8, true, &payload[..payload.len().min(2)]);
                    self.send(world, &echo, None);
                    self.sending_done = true;
                }
            }
            other => violations.push(format!("a frame with opcode {other}")),
        }
        Some(len)
    }
}

/// A masked client frame (the test kit's codec), its masking key drawn from the seed.
pub fn client_frame(rng: &mut Rng, opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mask = (rng.next_u64() as u32).to_be_bytes();
    ws::encode(fin, opcode, payload, Some(mask), 0)
}

fn message_text(rng: &mut Rng, socket: usize, n: u32) -> String {
    const PIECES: &[&str] = &["a", "bc", "é", "😀", "中文", " ", "xyz", "ñ"];
    let mut text = format!("m{socket}-{n}-");
    let len = match rng.below(10) {
        0 => 200 + rng.below(1500),
        _ => rng.below(40),
    };
    for _ in 0..len {
        text.push_str(PIECES[rng.below(PIECES.len() as u64) as usize]);
    }
    text
}

/// A frame the server must refuse, with the close codes it may answer.
fn bad_frame(rng: &mut Rng) -> (Vec<u8>, Vec<u16>) {
    match rng.below(5) {
        0 => (vec![0x81, 0x03, b'a', b'b', b'c'], vec![1002]), // unmasked
        1 => (client_frame(rng, 0x3, true, b"x"), vec![1002]), // reserved opcode
        2 => (client_frame(rng, 0x1, true, &[0xff, 0xfe]), vec![1007]),
        3 => {
            // Longer than MAX_MESSAGE_SIZE, announced in the header.
            let mut f = vec![0x82, 0x80 | 127];
            f.extend_from_slice(&(1u64 << 40).to_be_bytes());
            f.extend_from_slice(&[1, 2, 3, 4]);
            (f, vec![1009])
        }
        _ => {
            // A 64-bit length with its top bit set.
            let mut f = vec![0x82, 0x80 | 127];
            f.extend_from_slice(&(1u64 << 63).to_be_bytes());
            f.extend_from_slice(&[1, 2, 3, 4]);
            (f, vec![1002])
        }
    }
}

fn garbage_request(rng: &mut Rng) -> Vec<u8> {
    match rng.below(5) {
        0 => b"this is not http\r\n\r\n".to_vec(),
        1 => b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n".to_vec(),
        2 => b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n".to_vec(),
        3 => format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(2000)).into_bytes(),
        _ => b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
    }
}
