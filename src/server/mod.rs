//! Layer 5, the event loop; uses every layer below. [`run`] is the thin shell that makes the
//! syscalls: it binds the sockets, polls, reads the clock and turns what the poll reported into
//! [`Event`]s. [`Server`] is the loop's logic, generic over the sockets ([`Net`]): a slab of
//! connections, one timing wheel of deadlines, accepting, the drain. It never reads a clock or
//! blocks: [`Server::step`] takes "now" and the events of one poll, and says when it next needs
//! to run.
//! The simulation (`tests/simulation/`) drives the same `Server` over simulated sockets and time.
//!
//! One step: run connections whose read budget ran out last time → accept until `WouldBlock`
//! on each ready listener → let each ready connection read, serve and write → fire due
//! deadlines → check whether the drain is over.

use std::time::Duration;

use slab::Slab;

use crate::app::context::Context;
use crate::app::lifecycle::{Phase, SignalAction};
use crate::app::service;
use crate::base::time::Millis;
use crate::base::timers::Timers;
use crate::connection::{Connection, Kind, Verdict};
use crate::net::{Listener, Net, Sender};
use crate::protocol::websocket::WsCounters;

mod accept;
mod drain;
mod drive;
mod shell;

pub use shell::run;

use accept::Throttled;
use drive::{count_of, drive, guarded, send_alive};
/// When accept fails and nothing else will wake the loop, try again after this long.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// The most slots reserved up front (beyond, the slab grows as usual).
const MAX_RESERVED_SLOTS: usize = 1 << 20;
/// Descriptor exhaustion, and a port full at its connection cap, are each logged at most this
/// often.
const WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// How hard the loop works per event. The defaults are the server's; the simulation uses tiny
/// values so that budgets run out and buffers fill in every run.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// The loop's one read buffer, lent to whichever connection is reading.
    pub scratch_bytes: usize,
    /// Reads per readiness event before the loop moves on to other connections (it comes back
    /// to this one in the next step).
    pub reads_per_event: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            scratch_bytes: 64 * 1024,
            reads_per_event: 16,
        }
    }
}

/// A termination signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: what the kubelet sends.
    Term,
    /// SIGINT: Ctrl-C.
    Int,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
        }
    }
}

/// What one poll reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A listener has connections waiting.
    Acceptable(Listener),
    /// The socket in slab slot `slot` became readable or writable.
    Ready {
        /// The connection's slab slot (its poll token).
        slot: usize,
        /// The event said the peer shut down (or the socket failed).
        peer_closed: bool,
    },
    /// A termination signal arrived.
    Signal(Signal),
}

/// What the loop does after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Poll again; run the next step at `wake_at` at the latest, even if nothing happens.
    Running {
        /// The nearest deadline (`None`: only an event can wake the loop).
        wake_at: Option<Millis>,
    },
    /// The drain is over (or a second signal came): exit.
    Exited,
}

/// Why the loop runs a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// A readiness event; `peer_closed` when it reported the peer's shutdown or an error.
    Event { peer_closed: bool },
    /// Its deadline passed: the connection handles that first, then runs as for `Internal`.
    Deadline,
    /// No event: the loop coming back after the read budget.
    Internal,
    /// Look again, reading until `WouldBlock` (the drain: a request may have arrived whose
    /// event the loop has not handled yet; it must be answered, not dropped as "idle").
    Recheck,
}

/// A connection with its socket and the loop's bookkeeping for it.
#[derive(Debug)]
struct Slot<S> {
    stream: S,
    /// The state machine; its id is the generation that tells this connection from earlier
    /// ones in the same slab slot.
    conn: Connection,
    /// What it is counted as in [`Context::open`].
    counted_as: Kind,
    /// The socket may hold bytes that no pending readiness event will report (reading stopped
    /// for back-pressure, the read budget, or the preStop wait).
    unread: bool,
    /// The read budget ran out: run it again in the next step.
    rerun: bool,
}

/// One connection as the simulation's invariant checks see it.
#[derive(Debug)]
pub struct ConnectionView<'a> {
    /// Slab slot (poll token).
    pub slot: usize,
    /// Generation number (the `conn #N` of the logs).
    pub generation: u32,
    /// The connection's state machine.
    pub conn: &'a Connection,
    /// Its current deadline ([`NEVER`](crate::base::time::NEVER) for none).
    pub deadline: Millis,
    /// Whether the loop will run it in the next step without an event.
    pub rerun_queued: bool,
    /// Whether the loop knows the socket may hold bytes no event will report.
    pub unread: bool,
}

/// The loop's logic over the sockets of `N`.
#[derive(Debug)]
pub struct Server<N: Net> {
    net: N,
    conns: Slab<Slot<N::Stream>>,
    timers: Timers,
    ctx: Context,
    scratch: Box<[u8]>,
    tuning: Tuning,
    next_generation: u32,
    public_open: bool,
    /// Accepting paused after an error; retry at this time.
    accept_retry_at: Option<Millis>,
    fd_warning: Throttled,
    full_warning: Throttled,
    /// Refusals at a connection cap since `full_warning` last let a line through.
    refused_full_since_warning: u64,
    drain: Option<DrainProgress>,
    exit_now: bool,
    /// Connections whose read budget ran out: `(slot, generation)`, run again next step.
    rerun: Vec<(usize, u32)>,
    /// The alive message of the moment, made once for every WebSocket it is due to.
    alive: AliveFrame,
}

/// The alive message as a whole frame, made for one moment and phase and sent as it is to every
/// WebSocket whose alive message is due then (at 10,000 connections and 1 s, 1,000 of them at
/// each point of the 100 ms grid): one text made per moment instead of one per message, and no
/// copy queued per connection.
#[derive(Debug, Default)]
struct AliveFrame {
    /// The moment and phase the frame was made for.
    made_for: Option<(Millis, Phase)>,
    /// Where its text is made (kept to reuse its memory).
    text: String,
    frame: Vec<u8>,
}

/// What the drain's end line reports: counts since the drain began, not since the start.
#[derive(Debug, Clone)]
struct DrainProgress {
    deadline: Millis,
    /// The WebSocket counters when the drain began.
    ws_before: WsCounters,
}

impl<N: Net> Server<N> {
    /// A server over `net`'s listeners, at the time `ctx.now`, serving at most `max_public`
    /// public connections at once.
    pub fn new(net: N, mut ctx: Context, max_public: usize, tuning: Tuning) -> Self {
        ctx.max_public = max_public;
        // Room for every connection reserved up front: address space only, touched as the slab
        // fills, and no freed copies left behind as it grows (they would stay resident).
        let reserved = max_public
            .saturating_add(ctx.config.max_admin_connections)
            .min(MAX_RESERVED_SLOTS);
        Server {
            net,
            conns: Slab::with_capacity(reserved),
            timers: Timers::with_capacity(reserved),
            ctx,
            scratch: vec![0; tuning.scratch_bytes.max(1)].into_boxed_slice(),
            tuning,
            next_generation: 0,
            public_open: true,
            accept_retry_at: None,
            fd_warning: Throttled::default(),
            full_warning: Throttled::default(),
            refused_full_since_warning: 0,
            drain: None,
            exit_now: false,
            rerun: Vec::new(),
            alive: AliveFrame::default(),
        }
    }

    /// One iteration of the loop at time `now`, with the events of one poll.
    pub fn step(&mut self, now: Millis, events: impl IntoIterator<Item = Event>) -> Status {
        self.ctx.tick(now);
        for (slot, generation) in std::mem::take(&mut self.rerun) {
            if self
                .conns
                .get(slot)
                .is_some_and(|s| s.conn.id() == generation)
            {
                self.run_connection(slot, Wake::Internal);
            }
        }
        for event in events {
            match event {
                Event::Acceptable(listener) => self.accept_all(listener),
                Event::Ready { slot, peer_closed } => {
                    if self.conns.contains(slot) {
                        self.run_connection(slot, Wake::Event { peer_closed });
                    }
                }
                Event::Signal(signal) => self.on_signal(signal),
            }
        }
        self.fire_timers();
        if self.accept_retry_at.is_some_and(|at| at <= now) {
            self.accept_retry_at = None;
            self.accept_all(Listener::Public);
            self.accept_all(Listener::Admin);
        }
        if self.finished() {
            self.flush_all();
            self.log_exit();
            return Status::Exited;
        }
        Status::Running {
            wake_at: self.wake_at(),
        }
    }

    /// The shared state (settings, lifecycle, metrics, open counts).
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Every open connection, for checks from outside (the simulation's invariants).
    pub fn connections(&self) -> impl Iterator<Item = ConnectionView<'_>> {
        self.conns.iter().map(|(slot, s)| ConnectionView {
            slot,
            generation: s.conn.id(),
            conn: &s.conn,
            deadline: self.timers.deadline(slot, self.ctx.now),
            rerun_queued: self.rerun.contains(&(slot, s.conn.id())),
            unread: s.unread,
        })
    }

    fn wake_at(&self) -> Option<Millis> {
        if !self.rerun.is_empty() {
            return Some(self.ctx.now);
        }
        [
            self.timers.next(self.ctx.now),
            self.accept_retry_at,
            self.drain.as_ref().map(|d| d.deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs one connection (it must exist), then settles it ([`Server::after_run`], which every
    /// run ends with, this one and [`Server::send_alive`]).
    fn run_connection(&mut self, slot: usize, wake: Wake) {
        let slot_ref = &mut self.conns[slot];
        let reads = self.tuning.reads_per_event;
        let verdict = guarded(slot_ref, &mut self.ctx, |s, ctx| {
            if wake == Wake::Deadline && s.conn.on_timeout(ctx) == Verdict::Close {
                return Verdict::Close;
            }
            drive(s, ctx, &mut self.scratch, reads, wake)
        });
        self.after_run(slot, verdict);
    }

    /// After a connection ran: drop it, or keep it with its open count, its rerun and its
    /// deadline brought up to date.
    fn after_run(&mut self, slot: usize, verdict: Verdict) {
        match verdict {
            Verdict::Close => {
                let mut gone = self.conns.remove(slot);
                self.timers.remove(slot);
                if gone.conn.output_len() > 0 {
                    // One last attempt: a close frame or an error answer may still fit.
                    let mut sender = Sender {
                        stream: &mut gone.stream,
                        last: true,
                    };
                    if let Ok(n) = gone.conn.output().write_to(&mut sender) {
                        self.ctx.metrics.bytes_out += n as u64;
                    }
                }
                *count_of(&mut self.ctx.open, gone.counted_as) -= 1;
                log::debug!("conn #{}: closed", gone.conn.id());
            }
            Verdict::Keep => {
                let s = &mut self.conns[slot];
                let kind = s.conn.kind();
                if kind != s.counted_as {
                    *count_of(&mut self.ctx.open, s.counted_as) -= 1;
                    *count_of(&mut self.ctx.open, kind) += 1;
                    s.counted_as = kind;
                }
                if std::mem::take(&mut s.rerun) {
                    self.rerun.push((slot, s.conn.id()));
                }
                let at = s.conn.next_deadline(&self.ctx);
                self.timers.set(slot, at, self.ctx.now);
            }
        }
    }

    /// Runs every connection whose deadline has passed. Most of them, on a server of idle
    /// WebSockets, have nothing due but their alive message: that is sent straight from the
    /// frame made for this moment ([`Server::send_alive`]); the others run as for any wake-up.
    ///
    /// Each is taken out just before it runs (its deadline's entry is then in the cache when the
    /// run sets the next), and only those due as the step began: one whose deadline a run sets
    /// to now again waits for the next step, so each connection runs once per step.
    fn fire_timers(&mut self) {
        let now = self.ctx.now;
        for _ in 0..self.timers.due_count(now) {
            let Some(slot) = self.timers.pop_due(now) else {
                break;
            };
            let Some(s) = self.conns.get(slot) else {
                continue;
            };
            // With bytes possibly unread in the socket, the run reads them first.
            if !s.unread && s.conn.only_alive_due(&self.ctx) {
                self.send_alive(slot);
            } else {
                self.run_connection(slot, Wake::Deadline);
            }
        }
    }

    /// Sends the alive message of a connection that has nothing else due
    /// ([`Connection::only_alive_due`]), then settles it as any run.
    fn send_alive(&mut self, slot: usize) {
        let made_for = Some((self.ctx.now, self.ctx.lifecycle.phase()));
        let alive = &mut self.alive;
        if alive.made_for != made_for {
            service::alive_frame(&self.ctx, &mut alive.text, &mut alive.frame);
            alive.made_for = made_for;
        }
        let frame = &self.alive.frame;
        let verdict = guarded(&mut self.conns[slot], &mut self.ctx, |s, ctx| {
            send_alive(s, ctx, frame)
        });
        self.after_run(slot, verdict);
    }

    fn on_signal(&mut self, signal: Signal) {
        match self.ctx.lifecycle.on_signal(self.ctx.now, &self.ctx.config) {
            SignalAction::BeginDrain => self.begin_drain(signal.name()),
            SignalAction::ExitNow => self.close_all_now(signal.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slab entry is what an idle connection costs the server: keep an eye on it.
    #[test]
    fn a_slot_stays_small() {
        // The slab's stride: what each connection takes in it, the entry's tag included.
        let mut slab = Slab::new();
        let entry = |listener| Slot {
            stream: 0u32, // a descriptor's size, as mio's TcpStream
            conn: Connection::new(1, listener, 0),
            counted_as: Kind::Http,
            unread: false,
            rerun: false,
        };
        let a = slab.insert(entry(Listener::Public));
        let b = slab.insert(entry(Listener::Admin));
        let stride = std::ptr::from_ref(&slab[b]) as usize - std::ptr::from_ref(&slab[a]) as usize;
        println!(
            "slab stride: {stride} bytes, connection: {} bytes",
            std::mem::size_of::<Connection>()
        );
        assert!(stride <= 80, "a slab entry grew to {stride} bytes");
    }
}
