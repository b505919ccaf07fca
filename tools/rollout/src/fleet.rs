//! A fleet of reconnecting WebSocket clients on one `mio` loop: the logic every real client
//! needs to ride through a rollout. Two kinds of client share the loop:
//!
//! - **Old** clients know only today's protocol. They take every text that starts with
//!   `{"type":"alive"` (hello and goaway notices included) for an alive message, and leave a pod
//!   when it closes them with 1012.
//! - **Aware** clients implement the handover (issue 13, `handover-spec.md`): on a goaway
//!   notice they open a second connection through the same address; once it is open (101), new
//!   and queued messages go on it; the old one keeps delivering the replies to what was in flight
//!   on it and, once nothing is in flight there, is closed by the client (close 1000, then the
//!   server's close and the end of TCP are awaited). Only what the old connection could not
//!   answer (it closed with messages unanswered) is re-sent, on the new one. If the new one
//!   cannot be opened before the old one closes, the client falls back to the old clients' path.
//!   A notice on a connection being given up is ignored; a notice on the new connection while the
//!   old one is still finishing is acted on once the old one is gone; at most two connections per
//!   client.
//!
//! Both kinds:
//!
//! - reconnect with exponential backoff and full jitter (`random(0, min(cap, base × 2^attempt))`),
//!   the attempt count reset after a stable period; after a 1012/1001 close (the server asked),
//!   a short random delay instead, which spreads the reconnects over the new pods;
//! - number every message; messages sent but not answered when a connection ends are re-sent
//!   first, in order, on the next one; replies are matched first-in, first-out per connection.
//!
//! Each client has two connection slots; the `mio` token of a connection is `id * 2 + slot`.

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

/// Every text the server sends of its own starts with this (alive, hello, goaway).
const ALIVE_PREFIX: &[u8] = b"{\"type\":\"alive\"";

/// Connections a client may hold at once (the old one being handed over, and the new one).
const SLOTS: usize = 2;

/// Which protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Implements the handover.
    Aware,
    /// Today's client: sees hello and goaway as alive messages.
    Old,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Aware, Kind::Old];

    pub fn index(self) -> usize {
        match self {
            Kind::Aware => 0,
            Kind::Old => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Aware => "aware",
            Kind::Old => "old",
        }
    }
}

/// Whether client `id` of `clients` is one of the `old` old clients: spread evenly over the ids
/// (so over the connect ramp), exactly `old` of them.
pub fn is_old(id: usize, clients: usize, old: usize) -> bool {
    let old = old.min(clients);
    clients > 0 && (id + 1) * old / clients != id * old / clients
}

/// Fleet settings.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub addr: SocketAddr,
    pub clients: usize,
    /// How many of the clients are old ones (the rest are handover-aware); see [`is_old`].
    pub old_clients: usize,
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
    /// A connection that is closing (a close frame sent, ours or our answer to the server's)
    /// is dropped if TCP has not ended this long after.
    pub close_wait: Duration,
}

/// What the clients of one kind saw.
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: u64,
    /// Messages sent on a connection that ended (or was closed) before their reply arrived, and
    /// so queued to be sent again on the next one. A message is answered twice only if it was
    /// sent twice, so `duplicates` can never exceed this.
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
    /// When connections opened (101), after each client's first.
    pub reopened_at: Vec<Instant>,
    pub connect_failures: u64,
    /// Hello messages received, per instance, and the `handover_ms` they announced (the last).
    pub hellos: HashMap<String, (u64, Option<u64>)>,
    /// Goaway notices received: when, and from which instance.
    pub notices: Vec<(Instant, String)>,
    /// Notices not acted on (old clients: all of them; aware: a second notice, or one on a
    /// connection being given up).
    pub notices_ignored: u64,
    /// Notices on the new connection while the old one was still finishing: acted on later.
    pub notices_deferred: u64,
    /// Handovers begun (a second connection opened on a notice).
    pub handovers: u64,
    /// Old connections closed by the client (close 1000) once the new one was open and nothing
    /// was in flight on the old one.
    pub closed_by_client: u64,
    /// Handovers where the new connection failed before it opened while the old one was still
    /// there (the client then stays on the old one: today's path).
    pub handover_failed: u64,
    /// Handovers where the old connection ended before the new one was open.
    pub handover_late: u64,
    /// From a notice to the client's close of that connection (its handover's length).
    pub handover_took: Vec<Duration>,
    /// Closing connections dropped because TCP did not end within `close_wait`.
    pub close_waits_expired: u64,
    /// When a client closed its connection after the handover (each of `closed_by_client`),
    /// and the instance that connection served.
    pub left: Vec<(Instant, String)>,
}

/// The sockets the clients hold over time (from the 101 to the end of TCP, as a server counts
/// its open WebSockets), for comparing with what the servers report in their metrics.
#[derive(Debug, Default)]
pub struct SocketLog {
    /// After each change: when, and the counts then.
    pub changes: Vec<(Instant, Held)>,
    /// When each socket opened (its 101).
    pub opened: Vec<Instant>,
    /// Sockets per server: when a socket learned its server's name (its first message from the
    /// server, the hello, right after the 101), `true`; when such a socket ended, `false`.
    pub by_instance: Vec<(Instant, String, bool)>,
}

/// Sockets held by the fleet at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Sockets open (101 received, TCP not yet ended).
    pub sockets: u32,
    /// Clients that had a socket before and hold none now (between a close and a reconnect).
    pub without: u32,
    /// Clients holding two sockets (a handover in progress).
    pub two: u32,
}

/// What one client saw, for the per-client figures.
#[derive(Debug, Clone)]
pub struct ClientReport {
    pub kind: Kind,
    /// Time with no connection in the Open state, from its first open until the report.
    pub gap: Duration,
    /// Messages it re-sent.
    pub resent: u64,
    /// Messages it numbered that were never answered.
    pub lost: u64,
    /// The instance each of its connections served, in the order they opened (empty while the
    /// connection had said nothing yet).
    pub served: Vec<String>,
    /// The instances it received close 1012 from.
    pub restarts_from: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Connecting,
    /// Upgrade request sent, 101 awaited.
    Handshaking,
    Open,
    /// A close frame was sent (ours, or our answer to the server's); waiting for the end of
    /// TCP until the deadline.
    Closing {
        deadline: Instant,
    },
}

struct Conn {
    /// Unique in the fleet: tells a connection from a later one in the same slot.
    serial: u64,
    stream: TcpStream,
    phase: Phase,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    /// Sent on this connection, not yet answered.
    in_flight: VecDeque<u64>,
    instance: String,
    /// Index of this connection in the client's `served`, once it opened.
    served_index: Option<usize>,
    /// The code of the close frame received, if one was.
    close_code: Option<u16>,
    /// Being given up (a notice arrived): no new messages once another connection is open.
    retiring: bool,
    /// A notice arrived while the other connection was still finishing.
    deferred_notice: bool,
    /// When the notice that began this connection's handover arrived.
    notice_at: Option<Instant>,
    opened_at: Option<Instant>,
}

struct Client {
    kind: Kind,
    conns: [Option<Conn>; SLOTS],
    /// With no connection: when to connect.
    waiting: Option<Instant>,
    next_seq: u64,
    /// Not yet sent (re-sends first, in order).
    queue: VecDeque<u64>,
    /// Replies per sequence number.
    answered: Vec<u8>,
    attempt: u32,
    next_send: Instant,
    /// A send timer is pending.
    send_armed: bool,
    ever_opened: bool,
    /// Since when no connection has been Open (after the first open).
    gap_since: Option<Instant>,
    gap: Duration,
    resent: u64,
    served: Vec<String>,
    restarts_from: Vec<String>,
}

impl Client {
    fn any_open(&self) -> bool {
        self.conns
            .iter()
            .flatten()
            .any(|c| matches!(c.phase, Phase::Open))
    }

    /// The connection new messages go on: the one not being given up when it is open, else
    /// (while the new one is still opening, or could not open) the one being given up.
    fn send_slot(&self) -> Option<usize> {
        let open = |s: usize, retiring: bool| {
            self.conns[s]
                .as_ref()
                .is_some_and(|c| matches!(c.phase, Phase::Open) && c.retiring == retiring)
        };
        (0..SLOTS)
            .find(|&s| open(s, false))
            .or_else(|| (0..SLOTS).find(|&s| open(s, true)))
    }

    /// Starts or ends the current gap after a change of phase.
    fn update_gap(&mut self, now: Instant) {
        let open = self.any_open();
        match self.gap_since {
            Some(since) if open => {
                self.gap += now.saturating_duration_since(since);
                self.gap_since = None;
            }
            None if !open && self.ever_opened => self.gap_since = Some(now),
            _ => {}
        }
    }

    /// Puts messages back in the queue, keeping the order of sequence numbers.
    fn requeue(&mut self, messages: impl IntoIterator<Item = u64>) -> u64 {
        let before = self.queue.len();
        self.queue.extend(messages);
        let n = (self.queue.len() - before) as u64;
        if n > 0 {
            self.queue.make_contiguous().sort_unstable();
            self.resent += n;
        }
        n
    }

    /// Sockets past their 101 (open or closing).
    fn held(&self) -> usize {
        self.conns
            .iter()
            .flatten()
            .filter(|k| k.opened_at.is_some())
            .count()
    }

    fn lost(&self) -> u64 {
        (0..self.next_seq as usize)
            .filter(|&s| self.answered.get(s).copied().unwrap_or(0) == 0)
            .count() as u64
    }
}

/// The clients, their loop and what they saw.
pub struct Fleet {
    config: FleetConfig,
    poll: Poll,
    events: Events,
    clients: Vec<Client>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    rng: u64,
    serials: u64,
    pub sending: bool,
    /// Per kind, indexed by [`Kind::index`].
    pub stats: [Stats; 2],
    pub sockets: SocketLog,
    held: Held,
}

fn token(id: usize, slot: usize) -> Token {
    Token(id * SLOTS + slot)
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
            serials: 0,
            sending: true,
            stats: Default::default(),
            sockets: SocketLog::default(),
            held: Held::default(),
            config,
        };
        for id in 0..fleet.config.clients {
            // Spread the first connects over a short ramp.
            let start = now + Duration::from_micros(200 * id as u64);
            let kind = if is_old(id, fleet.config.clients, fleet.config.old_clients) {
                Kind::Old
            } else {
                Kind::Aware
            };
            fleet.clients.push(Client {
                kind,
                conns: [None, None],
                waiting: Some(start),
                next_seq: 0,
                queue: VecDeque::new(),
                answered: Vec::new(),
                attempt: 0,
                next_send: start,
                send_armed: false,
                ever_opened: false,
                gap_since: None,
                gap: Duration::ZERO,
                resent: 0,
                served: Vec::new(),
                restarts_from: Vec::new(),
            });
            fleet.timers.push(Reverse((start, id)));
        }
        Ok(fleet)
    }

    pub fn stats(&self, kind: Kind) -> &Stats {
        &self.stats[kind.index()]
    }

    /// Clients of each kind.
    pub fn count(&self, kind: Kind) -> usize {
        self.clients.iter().filter(|c| c.kind == kind).count()
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
        for t in ready {
            self.on_ready(t / SLOTS, t % SLOTS);
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

    /// A timer of client `id` is due: its connect time, its next message, a close deadline.
    /// Timers are not cancelled, so each check is against the client's state.
    fn on_timer(&mut self, id: usize, now: Instant) {
        let c = &mut self.clients[id];
        if c.conns.iter().all(Option::is_none)
            && let Some(at) = c.waiting
            && at <= now
        {
            c.waiting = None;
            self.connect(id, 0);
        }
        for slot in 0..SLOTS {
            if let Some(Conn {
                phase: Phase::Closing { deadline, .. },
                ..
            }) = self.clients[id].conns[slot]
                && deadline <= now
            {
                self.stats[self.clients[id].kind.index()].close_waits_expired += 1;
                self.conn_ended(id, slot);
            }
        }
        let c = &mut self.clients[id];
        if c.send_armed && now >= c.next_send {
            if c.any_open() {
                if self.sending {
                    c.queue.push_back(c.next_seq);
                    c.next_seq += 1;
                    self.stats[c.kind.index()].sent += 1;
                }
                c.next_send = now + self.config.send_interval;
                self.timers.push(Reverse((c.next_send, id)));
                if let Some(slot) = c.send_slot() {
                    self.flush(id, slot);
                }
            } else {
                c.send_armed = false;
            }
        }
    }

    fn connect(&mut self, id: usize, slot: usize) {
        debug_assert!(self.clients[id].conns[slot].is_none());
        let mut stream = match TcpStream::connect(self.config.addr) {
            Ok(s) => s,
            Err(_) => {
                self.conn_ended(id, slot);
                return;
            }
        };
        if self
            .poll
            .registry()
            .register(
                &mut stream,
                token(id, slot),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            self.conn_ended(id, slot);
            return;
        }
        let _ = stream.set_nodelay(true);
        self.serials += 1;
        self.clients[id].conns[slot] = Some(Conn {
            serial: self.serials,
            stream,
            phase: Phase::Connecting,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            in_flight: VecDeque::new(),
            instance: String::new(),
            served_index: None,
            close_code: None,
            retiring: false,
            deferred_notice: false,
            notice_at: None,
            opened_at: None,
        });
    }

    fn on_ready(&mut self, id: usize, slot: usize) {
        let Some(conn) = self.clients[id].conns[slot].as_mut() else {
            return;
        };
        if matches!(conn.phase, Phase::Connecting) {
            match conn.stream.peer_addr() {
                Ok(_) => {
                    conn.outbuf
                        .extend_from_slice(ws::UPGRADE_REQUEST.as_bytes());
                    conn.phase = Phase::Handshaking;
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    // Still connecting, or refused: take_error tells.
                    if let Ok(Some(_)) | Err(_) = conn.stream.take_error() {
                        self.conn_ended(id, slot);
                    }
                    return;
                }
                Err(_) => {
                    self.conn_ended(id, slot);
                    return;
                }
            }
        }
        self.pump(id, slot);
    }

    /// Writes what is queued on the connection, reads what arrived, handles it, and writes
    /// what that produced.
    fn pump(&mut self, id: usize, slot: usize) {
        if !self.flush(id, slot) {
            return;
        }
        let mut chunk = [0u8; 16384];
        let mut ended = false;
        let Some(serial) = self.clients[id].conns[slot].as_ref().map(|c| c.serial) else {
            return;
        };
        loop {
            let Some(conn) = self.clients[id].conns[slot].as_mut() else {
                return;
            };
            match conn.stream.read(&mut chunk) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => conn.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    ended = true;
                    break;
                }
            }
        }
        // What arrived before the end (a close frame, the last replies) is handled first.
        self.process_input(id, slot);
        if ended
            && self.clients[id].conns[slot]
                .as_ref()
                .is_some_and(|c| c.serial == serial)
        {
            self.conn_ended(id, slot);
        }
    }

    /// Fills the connection's output when it is the one messages go on, and writes what the
    /// socket takes. False when the connection is gone.
    fn flush(&mut self, id: usize, slot: usize) -> bool {
        let in_flight = self.config.in_flight;
        let c = &mut self.clients[id];
        if c.send_slot() == Some(slot)
            && let Some(conn) = c.conns[slot].as_mut()
        {
            while conn.in_flight.len() < in_flight {
                let Some(seq) = c.queue.pop_front() else {
                    break;
                };
                let text = format!("c{id}:{seq}");
                ws::encode_into(
                    &mut conn.outbuf,
                    true,
                    ws::TEXT,
                    text.as_bytes(),
                    Some(MASK),
                    0,
                );
                conn.in_flight.push_back(seq);
            }
        }
        let Some(conn) = c.conns[slot].as_mut() else {
            return false;
        };
        if matches!(conn.phase, Phase::Connecting) {
            return true;
        }
        while !conn.outbuf.is_empty() {
            match conn.stream.write(&conn.outbuf) {
                Ok(n) => {
                    conn.outbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.conn_ended(id, slot);
                    return false;
                }
            }
        }
        true
    }

    fn process_input(&mut self, id: usize, slot: usize) {
        let Some(conn) = self.clients[id].conns[slot].as_mut() else {
            return;
        };
        if matches!(conn.phase, Phase::Handshaking) {
            let end = match ws::upgrade_response(&conn.inbuf) {
                None => return,
                Some(Ok(end)) => end,
                Some(Err(_)) => {
                    self.conn_ended(id, slot);
                    return;
                }
            };
            conn.inbuf.drain(..end);
            self.opened(id, slot);
        }
        loop {
            let c = &mut self.clients[id];
            let Some(conn) = c.conns[slot].as_mut() else {
                return;
            };
            let Some((
                ws::Frame {
                    opcode, payload, ..
                },
                used,
            )) = ws::decode(&conn.inbuf)
            else {
                break;
            };
            conn.inbuf.drain(..used);
            let st = &mut self.stats[c.kind.index()];
            match opcode {
                ws::TEXT => {
                    // A text equal to the reversal of the head in flight is its reply, whatever
                    // it looks like; other texts starting as an alive message are the server's.
                    let expected = conn
                        .in_flight
                        .front()
                        .map(|seq| format!("c{id}:{seq}").chars().rev().collect::<String>());
                    if expected.as_deref().map(str::as_bytes) != Some(&payload[..])
                        && payload.starts_with(ALIVE_PREFIX)
                    {
                        self.server_message(id, slot, &payload);
                        continue;
                    }
                    let Some(seq) = conn.in_flight.pop_front() else {
                        st.mismatches += 1;
                        continue;
                    };
                    if expected.as_deref().map(str::as_bytes) != Some(&payload[..]) {
                        st.mismatches += 1;
                        continue;
                    }
                    let seq = seq as usize;
                    if c.answered.len() <= seq {
                        c.answered.resize(seq + 1, 0);
                    }
                    c.answered[seq] = c.answered[seq].saturating_add(1);
                    st.replies += 1;
                    if c.answered[seq] > 1 {
                        st.duplicates += 1;
                    }
                }
                ws::CLOSE => {
                    let code = if payload.len() >= 2 {
                        u16::from_be_bytes([payload[0], payload[1]])
                    } else {
                        1005
                    };
                    *st.closes.entry(code).or_default() += 1;
                    if code == 1012 {
                        st.restarts.push((Instant::now(), conn.instance.clone()));
                        c.restarts_from.push(conn.instance.clone());
                    }
                    conn.close_code = Some(code);
                    let now = Instant::now();
                    if matches!(conn.phase, Phase::Open) {
                        ws::encode_into(
                            &mut conn.outbuf,
                            true,
                            ws::CLOSE,
                            &code.to_be_bytes(),
                            Some(MASK),
                            0,
                        );
                        conn.phase = Phase::Closing {
                            deadline: now + self.config.close_wait,
                        };
                        self.timers
                            .push(Reverse((now + self.config.close_wait, id)));
                    }
                    // What this connection can no longer answer goes to the other one (or the
                    // next one).
                    let unanswered: Vec<u64> = conn.in_flight.drain(..).collect();
                    let n = c.requeue(unanswered);
                    self.stats[c.kind.index()].resent += n;
                    c.update_gap(now);
                    self.flush(id, slot);
                    self.after_change(id);
                    return;
                }
                ws::PING => {
                    ws::encode_into(&mut conn.outbuf, true, ws::PONG, &payload, Some(MASK), 0);
                }
                _ => {}
            }
        }
        self.after_change(id);
    }

    /// The 101 arrived on the connection in `slot`.
    fn opened(&mut self, id: usize, slot: usize) {
        let now = Instant::now();
        let c = &mut self.clients[id];
        let Some(conn) = c.conns[slot].as_mut() else {
            return;
        };
        conn.phase = Phase::Open;
        conn.opened_at = Some(now);
        conn.served_index = Some(c.served.len());
        c.served.push(String::new());
        if c.ever_opened {
            self.stats[c.kind.index()].reopened_at.push(now);
        }
        let held = c.held();
        self.sockets.opened.push(now);
        self.held.sockets += 1;
        if held == 1 && c.ever_opened {
            self.held.without -= 1;
        }
        if held == 2 {
            self.held.two += 1;
        }
        self.sockets.changes.push((now, self.held));
        c.ever_opened = true;
        c.waiting = None;
        c.update_gap(now);
        if !c.send_armed {
            c.send_armed = true;
            c.next_send = c.next_send.max(now);
            self.timers.push(Reverse((c.next_send, id)));
        }
    }

    /// A text from the server itself: alive, hello, or a goaway notice.
    fn server_message(&mut self, id: usize, slot: usize, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload);
        let field = |key: &str| {
            text.split(&format!("\"{key}\":")).nth(1).map(|rest| {
                rest.trim_start_matches('"')
                    .split(['"', ',', '}'])
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
        };
        let c = &mut self.clients[id];
        let kind = c.kind;
        let Some(conn) = c.conns[slot].as_mut() else {
            return;
        };
        if let Some(instance) = field("instance") {
            if let Some(i) = conn.served_index
                && c.served[i].is_empty()
            {
                c.served[i] = instance.clone();
            }
            if conn.instance.is_empty() {
                self.sockets
                    .by_instance
                    .push((Instant::now(), instance.clone(), true));
            }
            conn.instance = instance;
        }
        let st = &mut self.stats[kind.index()];
        match field("event").as_deref() {
            Some("hello") => {
                let entry = st.hellos.entry(conn.instance.clone()).or_default();
                entry.0 += 1;
                entry.1 = field("handover_ms").and_then(|v| v.parse().ok());
            }
            Some("goaway") => {
                st.notices.push((Instant::now(), conn.instance.clone()));
                if kind == Kind::Old || conn.retiring || !matches!(conn.phase, Phase::Open) {
                    st.notices_ignored += 1;
                } else if c.conns[1 - slot].is_some() {
                    // The other connection is still finishing: hand over once it is gone.
                    let conn = c.conns[slot].as_mut().expect("checked above");
                    if conn.deferred_notice {
                        st.notices_ignored += 1;
                    } else {
                        conn.deferred_notice = true;
                        st.notices_deferred += 1;
                    }
                } else {
                    self.begin_handover(id, slot);
                }
            }
            _ => {}
        }
    }

    /// A notice on the connection in `slot`: it is given up, and a new one opened beside it.
    fn begin_handover(&mut self, id: usize, slot: usize) {
        let c = &mut self.clients[id];
        let Some(conn) = c.conns[slot].as_mut() else {
            return;
        };
        conn.retiring = true;
        conn.deferred_notice = false;
        conn.notice_at = Some(Instant::now());
        self.stats[c.kind.index()].handovers += 1;
        self.connect(id, 1 - slot);
    }

    /// After anything that may let a handover move on: a connection being given up whose
    /// successor is open and that has nothing in flight is closed (1000); a deferred notice is
    /// acted on once the other connection is gone; output the change made is written.
    fn after_change(&mut self, id: usize) {
        let now = Instant::now();
        let close_wait = self.config.close_wait;
        for slot in 0..SLOTS {
            let c = &mut self.clients[id];
            let successor_open = c.conns[1 - slot]
                .as_ref()
                .is_some_and(|o| !o.retiring && matches!(o.phase, Phase::Open));
            let Some(conn) = c.conns[slot].as_mut() else {
                continue;
            };
            if conn.retiring
                && successor_open
                && matches!(conn.phase, Phase::Open)
                && conn.in_flight.is_empty()
            {
                ws::encode_into(
                    &mut conn.outbuf,
                    true,
                    ws::CLOSE,
                    &1000u16.to_be_bytes(),
                    Some(MASK),
                    0,
                );
                conn.phase = Phase::Closing {
                    deadline: now + close_wait,
                };
                self.timers.push(Reverse((now + close_wait, id)));
                let st = &mut self.stats[c.kind.index()];
                st.closed_by_client += 1;
                st.left.push((now, conn.instance.clone()));
                if let Some(t) = conn.notice_at {
                    st.handover_took.push(now.saturating_duration_since(t));
                }
                c.update_gap(now);
                self.flush(id, slot);
            }
        }
        for slot in 0..SLOTS {
            let c = &self.clients[id];
            if c.conns[1 - slot].is_none()
                && c.conns[slot]
                    .as_ref()
                    .is_some_and(|k| k.deferred_notice && matches!(k.phase, Phase::Open))
            {
                self.begin_handover(id, slot);
            }
        }
        if let Some(slot) = self.clients[id].send_slot() {
            self.flush(id, slot);
        }
    }

    /// The connection in `slot` is gone (or never came to be): cleanly if a close frame was
    /// sent on it (phase `Closing`), abnormally otherwise (reset, EOF without a close frame,
    /// refused connect, a refused upgrade).
    fn conn_ended(&mut self, id: usize, slot: usize) {
        let now = Instant::now();
        let r = self.random();
        let (base, cap) = (self.config.backoff_base, self.config.backoff_cap);
        let restart = self.config.restart_delay;
        let stable = self.config.stable_after;
        let c = &mut self.clients[id];
        let st = &mut self.stats[c.kind.index()];
        let mut close_code = None;
        let mut was_retiring = false;
        let mut never_opened = true;
        if let Some(mut conn) = c.conns[slot].take() {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if conn.opened_at.is_some() {
                let held = c.held();
                self.held.sockets -= 1;
                if held == 0 {
                    self.held.without += 1;
                }
                if held == 1 {
                    self.held.two -= 1;
                }
                self.sockets.changes.push((now, self.held));
            }
            if !conn.instance.is_empty() {
                self.sockets
                    .by_instance
                    .push((now, conn.instance.clone(), false));
            }
            if matches!(conn.phase, Phase::Open) {
                *st.closes.entry(1006).or_default() += 1;
                *st.abnormal_by_instance
                    .entry(conn.instance.clone())
                    .or_default() += 1;
            }
            let unanswered: Vec<u64> = conn.in_flight.drain(..).collect();
            st.resent += c.requeue(unanswered);
            if conn.opened_at.is_some_and(|t| now - t >= stable) {
                c.attempt = 0;
            }
            close_code = conn.close_code;
            was_retiring = conn.retiring;
            never_opened = conn.opened_at.is_none();
        }
        if never_opened {
            // Refused, reset, or an upgrade answered with something else than 101.
            st.connect_failures += 1;
        }
        c.update_gap(now);
        if let Some(other) = c.conns[1 - slot].as_ref() {
            // The other connection carries on: no reconnect.
            if was_retiring && !matches!(other.phase, Phase::Open) {
                st.handover_late += 1;
            }
            if never_opened && other.retiring {
                st.handover_failed += 1;
            }
            self.after_change(id);
            return;
        }
        // No connection left: today's path. Only a server that said it is restarting (1012) or
        // going away (1001) gets the short delay: the client's next connect goes to another
        // pod. Any other close (1000, 1008, 1011, ...) or an abnormal end may recur on
        // reconnect, so it backs off as usual.
        let delay = if matches!(close_code, Some(1001 | 1012)) {
            restart.0 + (restart.1 - restart.0).mul_f64(r)
        } else {
            let exp = base.saturating_mul(1u32 << c.attempt.min(20));
            c.attempt = c.attempt.saturating_add(1);
            exp.min(cap).mul_f64(r)
        };
        let at = now + delay;
        c.waiting = Some(at);
        self.timers.push(Reverse((at, id)));
    }

    /// Clients whose connection for new messages is open on `instance` (as its last alive or
    /// hello message said).
    pub fn on_instance(&self, instance: &str) -> usize {
        self.clients
            .iter()
            .filter(|c| {
                c.send_slot()
                    .and_then(|s| c.conns[s].as_ref())
                    .is_some_and(|k| k.instance == instance)
            })
            .count()
    }

    /// Messages sent and not yet answered (queued or in flight).
    pub fn unanswered(&self) -> usize {
        self.clients
            .iter()
            .map(|c| {
                c.queue.len()
                    + c.conns
                        .iter()
                        .flatten()
                        .map(|k| k.in_flight.len())
                        .sum::<usize>()
            })
            .sum()
    }

    /// Each client's figures as of `now` (a gap still running counts up to `now`).
    pub fn reports(&self, now: Instant) -> Vec<ClientReport> {
        self.clients
            .iter()
            .map(|c| ClientReport {
                kind: c.kind,
                gap: c.gap
                    + c.gap_since
                        .map_or(Duration::ZERO, |s| now.saturating_duration_since(s)),
                resent: c.resent,
                lost: c.lost(),
                served: c.served.clone(),
                restarts_from: c.restarts_from.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    //! The fleet against a scripted server on loopback (threads, blocking sockets): its first
    //! connection plays pod A (a goaway notice after a while, close 1012 after the handover
    //! timeout unless the client closes first), every later one pod B.

    use super::*;
    use std::net::{Shutdown, TcpListener};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone, Copy)]
    struct Script {
        /// When the first connection (pod A) gets its notice.
        notice_after: Duration,
        /// When the second connection gets one (none: never).
        second_notice_after: Option<Duration>,
        /// Send each notice twice.
        repeat_notice: bool,
        /// After its notice, a connection holds each reply this long.
        slow_after_notice: Duration,
        /// The handover timeout: close 1012 this long after a notice.
        close_in: Duration,
        /// The second connection gets a 503 instead of a 101.
        refuse_second: bool,
    }

    const SCRIPT: Script = Script {
        notice_after: Duration::from_millis(200),
        second_notice_after: None,
        repeat_notice: false,
        slow_after_notice: Duration::ZERO,
        close_in: Duration::from_secs(3),
        refuse_second: false,
    };

    /// The sockets the fleet held after each change: (open, clients with none, clients with
    /// two).
    fn held(f: &Fleet) -> Vec<(u32, u32, u32)> {
        f.sockets
            .changes
            .iter()
            .map(|(_, h)| (h.sockets, h.without, h.two))
            .collect()
    }

    fn text(out: &mut std::net::TcpStream, s: &str) {
        let _ = out.write_all(&ws::encode(true, ws::TEXT, s.as_bytes(), None, 0));
    }

    fn serve(mut s: std::net::TcpStream, index: usize, script: Script) {
        let instance = ["pod-a", "pod-b", "pod-c"][index.min(2)];
        s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let start = Instant::now();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(_) if start.elapsed() < Duration::from_secs(5) => {}
                Err(_) => return,
            }
        }
        buf.clear();
        if index == 1 && script.refuse_second {
            let _ = s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
            return;
        }
        let _ = write!(
            s,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            ws::ACCEPT
        );
        let handover_ms = script.close_in.as_millis();
        text(
            &mut s,
            &format!(
                "{{\"type\":\"alive\",\"event\":\"hello\",\"instance\":\"{instance}\",\
                 \"phase\":\"serving\",\"interval_ms\":5000,\"uptime_ms\":1,\
                 \"handover_ms\":{handover_ms}}}"
            ),
        );
        let notice_after = match index {
            0 => Some(script.notice_after),
            1 => script.second_notice_after,
            _ => None,
        };
        let mut notice_at: Option<Instant> = None;
        let mut closed = false;
        // Replies held back: (due, text).
        let mut held: VecDeque<(Instant, String)> = VecDeque::new();
        while start.elapsed() < Duration::from_secs(20) {
            if notice_at.is_none() && notice_after.is_some_and(|a| start.elapsed() >= a) {
                let notice = format!(
                    "{{\"type\":\"alive\",\"event\":\"goaway\",\"instance\":\"{instance}\",\
                     \"phase\":\"draining\",\"interval_ms\":5000,\"uptime_ms\":1,\
                     \"close_in_ms\":{handover_ms}}}"
                );
                text(&mut s, &notice);
                if script.repeat_notice {
                    text(&mut s, &notice);
                }
                notice_at = Some(Instant::now());
            }
            while held.front().is_some_and(|(due, _)| *due <= Instant::now()) {
                let (_, reply) = held.pop_front().unwrap();
                text(&mut s, &reply);
            }
            if !closed && notice_at.is_some_and(|t| t.elapsed() >= script.close_in) {
                // Replies already queued go out before the close frame.
                for (_, reply) in held.drain(..) {
                    text(&mut s, &reply);
                }
                let close = ws::encode(true, ws::CLOSE, &1012u16.to_be_bytes(), None, 0);
                let _ = s.write_all(&close);
                closed = true;
            }
            match s.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
            while let Some((frame, used)) = ws::decode(&buf) {
                buf.drain(..used);
                match frame.opcode {
                    ws::TEXT if !closed => {
                        let reply = frame.text().chars().rev().collect::<String>();
                        if notice_at.is_some() && !script.slow_after_notice.is_zero() {
                            held.push_back((Instant::now() + script.slow_after_notice, reply));
                        } else {
                            text(&mut s, &reply);
                        }
                    }
                    ws::CLOSE => {
                        if !closed {
                            let _ =
                                s.write_all(&ws::encode(true, ws::CLOSE, &frame.payload, None, 0));
                        }
                        let _ = s.shutdown(Shutdown::Write);
                        let until = Instant::now() + Duration::from_secs(2);
                        while Instant::now() < until && !matches!(s.read(&mut chunk), Ok(0)) {}
                        return;
                    }
                    _ => {}
                }
            }
        }
    }

    fn scripted_server(script: Script) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let index = accepted.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(s, index, script));
            }
        });
        addr
    }

    fn fleet(addr: SocketAddr, old_clients: usize) -> Fleet {
        Fleet::new(FleetConfig {
            addr,
            clients: 1,
            old_clients,
            send_interval: Duration::from_millis(10),
            in_flight: 4,
            restart_delay: (Duration::from_millis(10), Duration::from_millis(20)),
            backoff_base: Duration::from_millis(10),
            backoff_cap: Duration::from_millis(100),
            stable_after: Duration::from_secs(30),
            close_wait: Duration::from_secs(2),
        })
        .unwrap()
    }

    /// Runs the client through the script: until it is on pod B with the old connection gone,
    /// then with sending off until every message is answered.
    fn play(f: &mut Fleet, to: &str) -> ClientReport {
        f.run(Duration::from_secs(5), |f| {
            f.on_instance(to) == 1 && f.clients[0].conns.iter().flatten().count() == 1
        });
        f.run(Duration::from_millis(100), |_| false);
        f.sending = false;
        f.run(Duration::from_secs(2), |f| f.unanswered() == 0);
        f.reports(Instant::now()).remove(0)
    }

    #[test]
    fn an_aware_client_hands_over_with_no_gap_and_no_resend() {
        let addr = scripted_server(SCRIPT);
        let mut f = fleet(addr, 0);
        let r = play(&mut f, "pod-b");
        let st = f.stats(Kind::Aware);
        assert_eq!(r.kind, Kind::Aware);
        assert_eq!(r.served, ["pod-a", "pod-b"]);
        assert_eq!((r.gap, r.resent, r.lost), (Duration::ZERO, 0, 0), "{r:?}");
        assert!(r.restarts_from.is_empty(), "{r:?}");
        assert_eq!((st.handovers, st.closed_by_client), (1, 1));
        assert_eq!((st.handover_failed, st.handover_late), (0, 0));
        assert_eq!(
            st.closes.get(&1000),
            Some(&1),
            "the server's echo of our close"
        );
        assert_eq!(st.closes.get(&1006), None);
        assert_eq!(st.notices.len(), 1);
        assert_eq!(st.hellos["pod-a"], (1, Some(3000)));
        assert!(st.sent > 20 && st.replies == st.sent, "{st:?}");
        assert_eq!(st.reopened_at.len(), 1);
        assert_eq!(st.left.len(), 1);
        assert_eq!(st.left[0].1, "pod-a");
        // Its sockets: one, two during the handover, one; never none.
        assert_eq!(held(&f), [(1, 0, 0), (2, 0, 1), (1, 0, 0)]);
        let by_instance: Vec<(&str, bool)> = f
            .sockets
            .by_instance
            .iter()
            .map(|(_, i, open)| (i.as_str(), *open))
            .collect();
        assert_eq!(
            by_instance,
            [("pod-a", true), ("pod-b", true), ("pod-a", false)]
        );
        assert_eq!(f.sockets.opened.len(), 2);
    }

    #[test]
    fn an_old_client_ignores_the_notice_and_leaves_on_1012() {
        let addr = scripted_server(Script {
            close_in: Duration::from_millis(300),
            ..SCRIPT
        });
        let mut f = fleet(addr, 1);
        let r = play(&mut f, "pod-b");
        let st = f.stats(Kind::Old);
        assert_eq!(r.kind, Kind::Old);
        assert_eq!(r.served, ["pod-a", "pod-b"]);
        assert_eq!(r.restarts_from, ["pod-a"]);
        assert!(r.gap >= Duration::from_millis(10), "{r:?}");
        assert_eq!(r.lost, 0);
        assert_eq!((st.notices_ignored, st.handovers), (1, 0));
        assert_eq!(st.closes.get(&1012), Some(&1));
        // Its sockets: one, none between the 1012 and the reconnect, one.
        assert_eq!(held(&f), [(1, 0, 0), (0, 1, 0), (1, 0, 0)]);
    }

    #[test]
    fn an_aware_client_falls_back_when_the_new_connection_cannot_open() {
        let addr = scripted_server(Script {
            close_in: Duration::from_millis(300),
            refuse_second: true,
            ..SCRIPT
        });
        let mut f = fleet(addr, 0);
        let r = play(&mut f, "pod-c");
        let st = f.stats(Kind::Aware);
        assert_eq!((st.handovers, st.handover_failed), (1, 1));
        assert_eq!(st.closed_by_client, 0);
        assert_eq!(
            r.restarts_from,
            ["pod-a"],
            "it stayed on pod A until its 1012"
        );
        assert_eq!(
            r.served,
            ["pod-a", "pod-c"],
            "the second connection was refused"
        );
        assert!(r.gap > Duration::ZERO);
        assert_eq!(r.lost, 0);
        assert_eq!(st.connect_failures, 1);
    }

    #[test]
    fn the_old_connection_delivers_its_replies_before_the_client_closes_it() {
        // After the notice pod A answers slowly: what was in flight on it still comes back
        // there, and a second notice on it changes nothing.
        let addr = scripted_server(Script {
            slow_after_notice: Duration::from_millis(150),
            repeat_notice: true,
            ..SCRIPT
        });
        let mut f = fleet(addr, 0);
        let r = play(&mut f, "pod-b");
        let st = f.stats(Kind::Aware);
        assert_eq!(r.served, ["pod-a", "pod-b"]);
        assert_eq!((r.gap, r.resent, r.lost), (Duration::ZERO, 0, 0), "{r:?}");
        assert_eq!((st.handovers, st.closed_by_client), (1, 1));
        assert_eq!((st.notices.len(), st.notices_ignored), (2, 1));
        assert_eq!(st.duplicates, 0);
    }

    #[test]
    fn a_notice_on_the_new_connection_waits_until_the_old_one_is_gone() {
        // Pod B's connection gets a notice at once, while pod A's is still finishing (slow
        // replies): the second handover starts only when pod A's connection is gone, so the
        // client never holds three.
        let addr = scripted_server(Script {
            slow_after_notice: Duration::from_millis(200),
            second_notice_after: Some(Duration::ZERO),
            ..SCRIPT
        });
        let mut f = fleet(addr, 0);
        let r = play(&mut f, "pod-c");
        let st = f.stats(Kind::Aware);
        assert_eq!(r.served, ["pod-a", "pod-b", "pod-c"]);
        assert_eq!((r.gap, r.resent, r.lost), (Duration::ZERO, 0, 0), "{r:?}");
        assert_eq!(st.notices_deferred, 1);
        assert_eq!((st.handovers, st.closed_by_client), (2, 2));
    }

    #[test]
    fn old_clients_are_spread_over_the_ids() {
        let old: Vec<usize> = (0..10).filter(|&i| is_old(i, 10, 5)).collect();
        assert_eq!(old, [1, 3, 5, 7, 9]);
        assert_eq!((0..1000).filter(|&i| is_old(i, 1000, 333)).count(), 333);
        assert_eq!((0..7).filter(|&i| is_old(i, 7, 7)).count(), 7);
        assert_eq!((0..7).filter(|&i| is_old(i, 7, 0)).count(), 0);
    }
}
