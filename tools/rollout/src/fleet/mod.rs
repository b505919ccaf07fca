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
//!   first, in order, on the next one; replies are matched first-in, first-out per connection;
//! - recover from a pod that ends without a word ([`watch`]): an end without a close frame (EOF,
//!   reset) is a connection ended; an Open connection on which nothing arrived for twice the
//!   alive interval the servers announced is given up (a frozen pod, a lost node: the socket
//!   stays open and silent); a connect whose upgrade is not answered within the handshake
//!   timeout is given up (a frozen pod still takes TCP into its backlog, and the load balancer
//!   waits for it). What a connection given up owed is re-sent on the next one, or on the new
//!   one of a handover in progress.
//!
//! Each client has two connection slots; the `mio` token of a connection is `id * 2 + slot`.

mod client;
mod ends;
mod handover;
mod stats;
mod watch;
mod wire;

#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use client::{Client, Conn, Phase};
pub use stats::{ClientReport, Held, SocketLog, Stats};

/// The masking key of every frame the clients send.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Every text the server sends of its own starts with this (alive, hello, goaway).
const ALIVE_PREFIX: &[u8] = testkit::ws::ALIVE_PREFIX.as_bytes();

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
    /// Where to connect: client `id` uses `addrs[id % addrs.len()]` (see
    /// [`crate::cluster::addresses_for`]).
    pub addrs: Vec<SocketAddr>,
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
    /// A connection whose upgrade has not been answered (101) this long after its connect
    /// began is given up.
    pub handshake_timeout: Duration,
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
    /// The longest the loop spent handling one turn's events and timers (not waiting), and
    /// when that turn ended: a loop too busy to keep time would show as gaps it did not see.
    pub slowest_turn: (Duration, Option<Instant>),
}

fn token(id: usize, slot: usize) -> Token {
    Token(id * SLOTS + slot)
}

/// Takes out of `timers` every one due at `now`, earliest first, before any is handled: a timer
/// a handler sets for `now` or earlier (a send interval of zero would) waits for the next turn,
/// so no timer can keep a turn from ending.
fn take_due(timers: &mut BinaryHeap<Reverse<(Instant, usize)>>, now: Instant) -> Vec<usize> {
    let mut due = Vec::new();
    while let Some(&Reverse((at, id))) = timers.peek() {
        if at > now {
            break;
        }
        timers.pop();
        due.push(id);
    }
    due
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
            slowest_turn: (Duration::ZERO, None),
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
                spans: Vec::new(),
                restarts_from: Vec::new(),
                interval: None,
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

    /// Runs the loop for at most `max`, or until `done` holds. An error of the poll itself
    /// stops it: the clients can no longer see their sockets, so the run cannot go on.
    pub fn run(
        &mut self,
        max: Duration,
        mut done: impl FnMut(&Fleet) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + max;
        while Instant::now() < deadline && !done(self) {
            self.turn(Duration::from_millis(20))
                .map_err(|e| format!("the clients' poll: {e}"))?;
        }
        Ok(())
    }

    fn turn(&mut self, max_wait: Duration) -> io::Result<()> {
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
            return Err(e);
        }
        let busy_from = Instant::now();
        let ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
        for t in ready {
            self.on_ready(t / SLOTS, t % SLOTS);
        }
        let now = Instant::now();
        for id in take_due(&mut self.timers, now) {
            self.on_timer(id, now);
        }
        let busy = busy_from.elapsed();
        if busy > self.slowest_turn.0 {
            self.slowest_turn = (busy, Some(Instant::now()));
        }
        Ok(())
    }

    /// A timer of client `id` is due: its connect time, its next message, a close deadline, a
    /// handshake timeout, a silence check. Timers are not cancelled, so each check is against
    /// the client's state.
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
        self.check_watch(id, now);
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
                spans: c.spans.clone(),
                restarts_from: c.restarts_from.clone(),
            })
            .collect()
    }
}
