//! Simulated clients. Each sends requests or WebSocket messages on its socket, reads what comes
//! back, and checks it: every answer belongs to the next request in order, none comes twice or
//! unasked, text replies are the reversed message. Well-behaved clients (they read promptly and
//! answer pings and closes) also check completeness: when their connection ends, every request
//! the server read in full was answered, unless an answer that closes came first.

use std::collections::VecDeque;

use wsdrain::base::timers::Rng;
use wsdrain::net::Listener;

use crate::net::World;

mod reading;
mod sending;

use sending::client_frame; // reading.rs answers pings and closes with it

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
}
