//! A fleet of reconnecting WebSocket clients on one `mio` loop: the logic every real client
//! needs to ride through a rollout.
//!
//! - Reconnect with exponential backoff and full jitter (`random(0, min(cap, base × 2^attempt))`),
//!   the attempt count reset after a stable period; after a 1012/1001 close (the server asked),
//!   a short random delay instead, which spreads the reconnects over the new pods.
//! - Every message has a sequence number; messages sent but not answered when a connection ends
//!   are re-sent first, in order, on the next one; replies are matched first-in, first-out.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use testkit::ws;

/// The masking key of every frame the clients send.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Fleet settings.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub addr: SocketAddr,
    pub clients: usize,
    /// Each client sends one message per interval while sending is on.
    pub send_interval: Duration,
    /// Messages a client may have unanswered on a connection.
    pub in_flight: usize,
    /// Delay range after a 1012/1001 close.
    pub restart_delay: (Duration, Duration),
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// A connection open this long resets the backoff.
    pub stable_after: Duration,
}

/// What the fleet saw.
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: u64,
    /// Messages sent on a connection that ended before their reply arrived, and so queued to
    /// be sent again on the next one. A message is answered twice only if it was sent twice,
    /// so `duplicates` can never exceed this.
    pub resent: u64,
    pub replies: u64,
    pub duplicates: u64,
    pub mismatches: u64,
    /// Close codes received in close frames; 1006 counts closes without one.
    pub closes: HashMap<u16, u64>,
    /// Closes without a close frame while the given instance was serving the client.
    pub abnormal_by_instance: HashMap<String, u64>,
    /// Times 1012 arrived, and from which instance.
    pub restarts: Vec<(Instant, String)>,
    /// From losing a connection to the next open one.
    pub reconnect_delays: Vec<Duration>,
    /// When connections opened (after the first).
    pub reopened_at: Vec<Instant>,
    pub connect_failures: u64,
}

#[derive(Debug)]
enum Phase {
    /// Waiting to connect at the given time.
    Waiting(Instant),
    Connecting,
    /// Upgrade request sent, 101 awaited.
    Handshaking,
    Open,
    /// We answered a close frame; waiting for the server to close TCP.
    Closing,
}

struct Client {
    stream: Option<TcpStream>,
    phase: Phase,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    next_seq: u64,
    /// Not yet sent on the current connection (re-sends first).
    queue: VecDeque<u64>,
    /// Sent on the current connection, not yet answered.
    in_flight: VecDeque<u64>,
    /// Replies per sequence number.
    answered: Vec<u8>,
    pub instance: String,
    attempt: u32,
    opened_at: Option<Instant>,
    lost_at: Option<Instant>,
    next_send: Instant,
    ever_opened: bool,
    /// The code of the close frame received on the current connection, if one was.
    close_code: Option<u16>,
}

/// The clients, their loop and what they saw.
pub struct Fleet {
    config: FleetConfig,
    poll: Poll,
    events: Events,
    clients: Vec<Client>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    rng: u64,
    pub sending: bool,
    pub stats: Stats,
}

impl Fleet {
    pub fn new(config: FleetConfig) -> io::Result<Fleet> {
        let now = Instant::now();
        let mut fleet = Fleet {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            clients: Vec::with_capacity(config.clients),
            timers: BinaryHeap::new(),
            rng: 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()),
            sending: true,
            stats: Stats::default(),
            config,
        };
        for id in 0..fleet.config.clients {
            // Spread the first connects over a short ramp.
            let start = now + Duration::from_micros(200 * id as u64);
            fleet.clients.push(Client {
                stream: None,
                phase: Phase::Waiting(start),
                inbuf: Vec::new(),
                outbuf: Vec::new(),
                next_seq: 0,
                queue: VecDeque::new(),
                in_flight: VecDeque::new(),
                answered: Vec::new(),
                instance: String::new(),
                attempt: 0,
                opened_at: None,
                lost_at: None,
                next_send: start,
                ever_opened: false,
                close_code: None,
            });
            fleet.timers.push(Reverse((start, id)));
        }
        Ok(fleet)
    }

    fn random(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Runs the loop for at most `max`, or until `done` holds.
    pub fn run(&mut self, max: Duration, mut done: impl FnMut(&Fleet) -> bool) {
        let deadline = Instant::now() + max;
        while Instant::now() < deadline && !done(self) {
            self.turn(Duration::from_millis(20));
        }
    }

    fn turn(&mut self, max_wait: Duration) {
        let now = Instant::now();
        let wait = self
            .timers
            .peek()
            .map(|Reverse((at, _))| at.saturating_duration_since(now))
            .unwrap_or(max_wait)
            .min(max_wait);
        if let Err(e) = self.poll.poll(&mut self.events, Some(wait))
            && e.kind() != io::ErrorKind::Interrupted
        {
            panic!("poll: {e}");
        }
        let ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
        for id in ready {
            self.on_ready(id);
        }
        let now = Instant::now();
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.on_timer(id, now);
        }
    }

    fn on_timer(&mut self, id: usize, now: Instant) {
        match self.clients[id].phase {
            Phase::Waiting(at) if at <= now => self.connect(id),
            Phase::Open => {
                let c = &mut self.clients[id];
                if now >= c.next_send {
                    if self.sending {
                        c.queue.push_back(c.next_seq);
                        c.next_seq += 1;
                        self.stats.sent += 1;
                    }
                    let c = &mut self.clients[id];
                    c.next_send = now + self.config.send_interval;
                    let next = c.next_send;
                    self.timers.push(Reverse((next, id)));
                    self.pump(id);
                }
            }
            _ => {}
        }
    }

    fn connect(&mut self, id: usize) {
        match TcpStream::connect(self.config.addr) {
            Ok(mut stream) => {
                if self
                    .poll
                    .registry()
                    .register(
                        &mut stream,
                        Token(id),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .is_err()
                {
                    self.lost(id);
                    return;
                }
                let _ = stream.set_nodelay(true);
                let c = &mut self.clients[id];
                c.stream = Some(stream);
                c.phase = Phase::Connecting;
            }
            Err(_) => self.lost(id),
        }
    }

    fn on_ready(&mut self, id: usize) {
        if matches!(self.clients[id].phase, Phase::Connecting) {
            let Some(stream) = self.clients[id].stream.as_ref() else {
                return;
            };
            match stream.peer_addr() {
                Ok(_) => {
                    let c = &mut self.clients[id];
                    c.outbuf.extend_from_slice(ws::UPGRADE_REQUEST.as_bytes());
                    c.phase = Phase::Handshaking;
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    // Still connecting, or refused: take_error tells.
                    if let Ok(Some(_)) | Err(_) = stream.take_error() {
                        self.stats.connect_failures += 1;
                        self.lost(id);
                    }
                    return;
                }
                Err(_) => {
                    self.stats.connect_failures += 1;
                    self.lost(id);
                    return;
                }
            }
        }
        self.pump(id);
    }

    /// Writes what is queued, reads what arrived, handles frames.
    fn pump(&mut self, id: usize) {
        if matches!(self.clients[id].phase, Phase::Open) {
            self.fill_output(id);
        }
        let c = &mut self.clients[id];
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        while !c.outbuf.is_empty() {
            match stream.write(&c.outbuf) {
                Ok(n) => {
                    c.outbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.lost(id);
                    return;
                }
            }
        }
        let mut chunk = [0u8; 16384];
        loop {
            let c = &mut self.clients[id];
            let Some(stream) = c.stream.as_mut() else {
                return;
            };
            match stream.read(&mut chunk) {
                Ok(0) => {
                    self.lost(id);
                    return;
                }
                Ok(n) => c.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.lost(id);
                    return;
                }
            }
        }
        self.process_input(id);
    }

    fn fill_output(&mut self, id: usize) {
        let c = &mut self.clients[id];
        while c.in_flight.len() < self.config.in_flight {
            let Some(seq) = c.queue.pop_front() else {
                break;
            };
            let text = format!("c{id}:{seq}");
            ws::encode_into(
                &mut c.outbuf,
                true,
                ws::TEXT,
                text.as_bytes(),
                Some(MASK),
                0,
            );
            c.in_flight.push_back(seq);
        }
    }

    fn process_input(&mut self, id: usize) {
        if matches!(self.clients[id].phase, Phase::Handshaking) {
            let c = &mut self.clients[id];
            let end = match ws::upgrade_response(&c.inbuf) {
                None => return,
                Some(Ok(end)) => end,
                Some(Err(_)) => {
                    self.stats.connect_failures += 1;
                    self.lost(id);
                    return;
                }
            };
            c.inbuf.drain(..end);
            c.phase = Phase::Open;
            let now = Instant::now();
            c.opened_at = Some(now);
            if let Some(lost) = c.lost_at.take() {
                self.stats.reconnect_delays.push(now - lost);
            }
            if c.ever_opened {
                self.stats.reopened_at.push(now);
            }
            c.ever_opened = true;
            if c.next_send < now {
                c.next_send = now;
            }
            self.timers.push(Reverse((now, id)));
            self.pump(id);
            return;
        }
        loop {
            let c = &mut self.clients[id];
            let Some((
                ws::Frame {
                    opcode, payload, ..
                },
                used,
            )) = ws::decode(&c.inbuf)
            else {
                return;
            };
            c.inbuf.drain(..used);
            match opcode {
                ws::TEXT if payload.starts_with(b"{\"type\":\"alive\"") => {
                    let text = String::from_utf8_lossy(&payload);
                    if let Some(rest) = text.split("\"instance\":\"").nth(1) {
                        c.instance = rest.split('"').next().unwrap_or("").to_string();
                    }
                }
                ws::TEXT => {
                    let Some(seq) = c.in_flight.pop_front() else {
                        self.stats.mismatches += 1;
                        continue;
                    };
                    let expected: String = format!("c{id}:{seq}").chars().rev().collect();
                    if payload != expected.as_bytes() {
                        self.stats.mismatches += 1;
                        continue;
                    }
                    let seq = seq as usize;
                    if c.answered.len() <= seq {
                        c.answered.resize(seq + 1, 0);
                    }
                    c.answered[seq] = c.answered[seq].saturating_add(1);
                    self.stats.replies += 1;
                    if c.answered[seq] > 1 {
                        self.stats.duplicates += 1;
                    }
                    self.fill_output(id);
                }
                ws::CLOSE => {
                    let code = if payload.len() >= 2 {
                        u16::from_be_bytes([payload[0], payload[1]])
                    } else {
                        1005
                    };
                    *self.stats.closes.entry(code).or_default() += 1;
                    if code == 1012 {
                        self.stats
                            .restarts
                            .push((Instant::now(), c.instance.clone()));
                    }
                    ws::encode_into(
                        &mut c.outbuf,
                        true,
                        ws::CLOSE,
                        &code.to_be_bytes(),
                        Some(MASK),
                        0,
                    );
                    c.phase = Phase::Closing;
                    c.close_code = Some(code);
                    self.stats.resent += c.in_flight.len() as u64;
                    c.queue.extend(c.in_flight.drain(..));
                    // Keep the re-send order: what was in flight goes before what was queued.
                    c.queue.make_contiguous().sort_unstable();
                    c.lost_at.get_or_insert(Instant::now());
                    let Some(stream) = c.stream.as_mut() else {
                        return;
                    };
                    let _ = stream.write(&c.outbuf);
                    c.outbuf.clear();
                    return;
                }
                ws::PING => {
                    ws::encode_into(&mut c.outbuf, true, ws::PONG, &payload, Some(MASK), 0);
                }
                _ => {}
            }
        }
    }

    /// The connection is gone: cleanly if we had answered a close frame (phase `Closing`),
    /// abnormally otherwise (reset, EOF without a close frame, refused connect).
    fn lost(&mut self, id: usize) {
        let now = Instant::now();
        let (base, cap) = (self.config.backoff_base, self.config.backoff_cap);
        let restart = self.config.restart_delay;
        let stable = self.config.stable_after;
        let r = self.random();
        let c = &mut self.clients[id];
        if let Some(mut stream) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        let was_open = matches!(c.phase, Phase::Open | Phase::Closing);
        // After we answered a close frame, any end of the TCP connection is the clean one.
        let clean = matches!(c.phase, Phase::Closing);
        if matches!(c.phase, Phase::Open) && !clean {
            *self.stats.closes.entry(1006).or_default() += 1;
            *self
                .stats
                .abnormal_by_instance
                .entry(c.instance.clone())
                .or_default() += 1;
        }
        self.stats.resent += c.in_flight.len() as u64;
        c.queue.extend(c.in_flight.drain(..));
        c.queue.make_contiguous().sort_unstable();
        c.inbuf.clear();
        c.outbuf.clear();
        if was_open {
            c.lost_at.get_or_insert(now);
        } else if c.lost_at.is_none() && c.ever_opened {
            c.lost_at = Some(now);
        }
        if c.opened_at.is_some_and(|t| now - t >= stable) {
            c.attempt = 0;
        }
        c.opened_at = None;
        // Only a server that said it is restarting (1012) or going away (1001) gets the short
        // delay: the client's next connect goes to another pod. Any other close (1000, 1008,
        // 1011, ...) or an abnormal end may recur on reconnect, so it backs off as usual.
        let asked_to_move = matches!(c.close_code.take(), Some(1001 | 1012));
        let delay = if asked_to_move {
            restart.0 + (restart.1 - restart.0).mul_f64(r)
        } else {
            let exp = base.saturating_mul(1u32 << c.attempt.min(20));
            c.attempt = c.attempt.saturating_add(1);
            exp.min(cap).mul_f64(r)
        };
        let at = now + delay;
        c.phase = Phase::Waiting(at);
        self.timers.push(Reverse((at, id)));
    }

    /// Clients whose last alive message came from `instance`.
    pub fn on_instance(&self, instance: &str) -> usize {
        self.clients
            .iter()
            .filter(|c| matches!(c.phase, Phase::Open) && c.instance == instance)
            .count()
    }

    /// Messages sent and not yet answered (queued or in flight).
    pub fn unanswered(&self) -> usize {
        self.clients
            .iter()
            .map(|c| c.queue.len() + c.in_flight.len())
            .sum()
    }

    /// Sequence numbers that were sent (numbered) but never answered.
    pub fn lost_messages(&self) -> u64 {
        self.clients
            .iter()
            .map(|c| {
                (0..c.next_seq as usize)
                    .filter(|&s| c.answered.get(s).copied().unwrap_or(0) == 0)
                    .count() as u64
            })
            .sum()
    }
}
