//! The event loop. [`run`] is the thin shell that makes the syscalls: it binds the sockets,
//! polls, reads the clock and turns what the poll reported into [`Event`]s. [`Server`] is the
//! loop's logic, generic over the sockets ([`Net`]): a slab of connections, one heap of
//! deadlines, accepting, the drain. It never reads a clock or blocks: [`Server::step`] takes
//! "now" and the events of one poll, and says when it next needs to run. The simulation in
//! `tests/simulation.rs` drives the same `Server` over simulated sockets and time.
//!
//! One step: run connections whose read budget ran out last time → accept until `WouldBlock`
//! on each ready listener → let each ready connection read, serve and write → fire due
//! deadlines → check whether the drain is over.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use mio::{Events, Interest, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::app::context::Context;
use crate::app::lifecycle::{DrainSchedule, EventLine, Phase, SignalAction};
use crate::app::metrics::{OpenConnections, RejectReason};
use crate::app::static_files::StaticFiles;
use crate::base::timers::{Clock, Deadline, Millis, NEVER, Rng, Timers, after};
use crate::config::{Config, FD_RESERVE, MAX_ADMIN_CONNECTIONS};
use crate::connection::{Connection, Kind, NextIo, Verdict};
use crate::net::{self, ADMIN_TOKEN, FdLimits, Listener, MioNet, Net, PUBLIC_TOKEN, Stream};

const SIGNALS_TOKEN: Token = Token(usize::MAX - 3);

/// Readiness events taken per poll.
const EVENTS_CAPACITY: usize = 1024;
/// When accept fails and nothing else will wake the loop, try again after this long.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Descriptor exhaustion is logged at most this often.
const FD_WARNING_INTERVAL: Duration = Duration::from_secs(1);

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
    /// No event: a deadline, or the loop coming back after the read budget.
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
    /// Its place in the timer heap.
    deadline: Deadline,
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
    /// Its current deadline ([`NEVER`] for none).
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
    max_public: usize,
    next_generation: u32,
    public_open: bool,
    /// Accepting paused after an error; retry at this time.
    accept_retry_at: Option<Millis>,
    last_fd_warning: Option<Millis>,
    drain: Option<DrainProgress>,
    exit_now: bool,
    /// Connections whose read budget ran out: `(slot, generation)`, run again next step.
    rerun: Vec<(usize, u32)>,
    /// Connections whose deadline passed, gathered before they run (kept to reuse its memory).
    due: Vec<usize>,
}

/// What the drain's end line reports: counts since the drain began, not since the start.
#[derive(Debug, Clone, Copy)]
struct DrainProgress {
    started_at: Millis,
    deadline: Millis,
    clean_closes_before: u64,
    close_timeouts_before: u64,
}

impl<N: Net> Server<N> {
    /// A server over `net`'s listeners, at the time `ctx.now`.
    pub fn new(net: N, ctx: Context, max_public: usize, tuning: Tuning) -> Self {
        Server {
            net,
            conns: Slab::new(),
            timers: Timers::new(),
            ctx,
            scratch: vec![0; tuning.scratch_bytes.max(1)].into_boxed_slice(),
            tuning,
            max_public,
            next_generation: 0,
            public_open: true,
            accept_retry_at: None,
            last_fd_warning: None,
            drain: None,
            exit_now: false,
            rerun: Vec::new(),
            due: Vec::new(),
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

    /// The sockets.
    pub fn net(&self) -> &N {
        &self.net
    }

    /// The sockets, to change.
    pub fn net_mut(&mut self) -> &mut N {
        &mut self.net
    }

    /// Every open connection, for checks from outside (the simulation's invariants).
    pub fn connections(&self) -> impl Iterator<Item = ConnectionView<'_>> {
        self.conns.iter().map(|(slot, s)| ConnectionView {
            slot,
            generation: s.conn.id(),
            conn: &s.conn,
            deadline: s.deadline.at(),
            rerun_queued: self.rerun.contains(&(slot, s.conn.id())),
            unread: s.unread,
        })
    }

    /// When the drain must be over, once it has begun.
    pub fn drain_deadline(&self) -> Option<Millis> {
        self.drain.map(|d| d.deadline)
    }

    fn wake_at(&self) -> Option<Millis> {
        if !self.rerun.is_empty() {
            return Some(self.ctx.now);
        }
        [
            self.timers.next(),
            self.accept_retry_at,
            self.drain.map(|d| d.deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn accept_all(&mut self, listener: Listener) {
        loop {
            if listener == Listener::Public && !self.public_open {
                return; // closed for the drain
            }
            match self.net.accept(listener) {
                Ok(stream) => self.admit(stream, listener),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if net::is_fd_exhaustion(&e) => {
                    if !self.shed_one(listener, &e) {
                        return;
                    }
                }
                Err(e) if net::is_transient_accept_error(&e) => {}
                Err(e) => {
                    log::warn!("accept on the {} port failed: {e}", listener.as_str());
                    self.accept_retry_at = Some(after(self.ctx.now, ACCEPT_RETRY));
                    return;
                }
            }
        }
    }

    /// Out of descriptors: use the spare one to accept a waiting client, refuse it, take the
    /// spare back. Returns whether to keep accepting (false when the backlog is empty, or when
    /// there was no spare: then the loop retries after [`ACCEPT_RETRY`]).
    fn shed_one(&mut self, listener: Listener, e: &io::Error) -> bool {
        let now = self.ctx.now;
        if self
            .last_fd_warning
            .is_none_or(|t| now >= after(t, FD_WARNING_INTERVAL))
        {
            self.last_fd_warning = Some(now);
            log::warn!(
                "{}",
                EventLine::new("out_of_descriptors")
                    .field("error", e)
                    .field("open", self.conns.len())
                    .field("refusing", "new clients")
            );
        }
        if !self.net.release_spare() {
            self.net.refill_spare();
            self.accept_retry_at = Some(after(now, ACCEPT_RETRY));
            return false;
        }
        let more = match self.net.accept(listener) {
            Ok(stream) => {
                self.ctx.metrics.bytes_out += net::reject(stream, &mut self.scratch);
                self.ctx.metrics.rejected(RejectReason::FdExhausted);
                true
            }
            // EMFILE hides an empty backlog; with a free descriptor, WouldBlock reveals it.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => {
                log::warn!("accept on the {} port failed: {e}", listener.as_str());
                self.accept_retry_at = Some(after(now, ACCEPT_RETRY));
                false
            }
        };
        self.net.refill_spare();
        more
    }

    fn admit(&mut self, mut stream: N::Stream, listener: Listener) {
        let (open, cap) = match listener {
            Listener::Public => (
                self.ctx.open.http,
                self.max_public.saturating_sub(self.ctx.open.websocket),
            ),
            Listener::Admin => (self.ctx.open.admin, MAX_ADMIN_CONNECTIONS),
        };
        if open >= cap {
            self.ctx.metrics.bytes_out += net::reject(stream, &mut self.scratch);
            self.ctx.metrics.rejected(RejectReason::MaxConnections);
            log::debug!("{} port full ({cap}): answered 503", listener.as_str());
            return;
        }
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        if let Err(e) = self.net.register(&mut stream, slot) {
            log::warn!("cannot register a connection: {e}");
            return;
        }
        self.ctx.metrics.accepted(listener);
        self.next_generation = self.next_generation.wrapping_add(1);
        let conn = Connection::new(self.next_generation, listener, self.ctx.now);
        let counted_as = conn.kind();
        *count_of(&mut self.ctx.open, counted_as) += 1;
        entry.insert(Slot {
            stream,
            conn,
            deadline: Deadline::none(),
            counted_as,
            unread: true,
            rerun: false,
        });
        log::debug!(
            "conn #{}: accepted on the {} port",
            self.next_generation,
            listener.as_str()
        );
        self.after_run(slot, Verdict::Keep);
    }

    /// Runs one connection (it must exist), then settles it: the one path every caller takes.
    fn run_connection(&mut self, slot: usize, wake: Wake) {
        let slot_ref = &mut self.conns[slot];
        let reads = self.tuning.reads_per_event;
        let verdict = guarded(slot_ref, &mut self.ctx, |s, ctx| {
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
                if gone.conn.output_len() > 0 {
                    // One last attempt: a close frame or an error answer may still fit.
                    if let Ok(n) = gone.conn.output().write_to(&mut gone.stream) {
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
                self.timers.set(&mut s.deadline, slot, s.conn.id(), at);
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = self.ctx.now;
        let mut due = std::mem::take(&mut self.due);
        while let Some(entry) = self.timers.pop_due(now) {
            let Some(s) = self.conns.get_mut(entry.slot) else {
                continue;
            };
            if s.conn.id() == entry.generation && self.timers.fire(entry, &mut s.deadline, now) {
                due.push(entry.slot);
            }
        }
        for slot in due.drain(..) {
            let s = &mut self.conns[slot];
            let reads = self.tuning.reads_per_event;
            let verdict = guarded(s, &mut self.ctx, |s, ctx| match s.conn.on_timeout(ctx) {
                Verdict::Close => Verdict::Close,
                Verdict::Keep => drive(s, ctx, &mut self.scratch, reads, Wake::Internal),
            });
            self.after_run(slot, verdict);
        }
        self.due = due;
    }

    fn on_signal(&mut self, signal: Signal) {
        match self.ctx.lifecycle.on_signal(self.ctx.now) {
            SignalAction::BeginDrain => self.begin_drain(signal.name()),
            SignalAction::ExitNow => self.close_all_now(signal.name()),
        }
    }

    /// The drain, in its named steps. Kubernetes has already stopped routing new connections
    /// here (preStop), so from now on every public connection only winds down.
    fn begin_drain(&mut self, signal: &str) {
        let now = self.ctx.now;
        let config = &self.ctx.config;
        let window_ms = config.drain_window.as_millis() as u64;
        let budget = config.drain_deadline();
        self.drain = Some(DrainProgress {
            started_at: now,
            deadline: after(now, budget),
            clean_closes_before: self.ctx.metrics.ws.clean_closes,
            close_timeouts_before: self.ctx.metrics.ws.close_timeouts,
        });

        // 1. Stop accepting: with the listener closed the kernel refuses new connections, so
        //    clients fail fast and retry on another pod. The admin port stays open for probes.
        //    Connections already in the backlog are taken first: they are answered (a WebSocket
        //    upgrade with 503) instead of being reset.
        self.accept_all(Listener::Public);
        self.net.close_listener(Listener::Public);
        self.public_open = false;
        log::info!(
            "{}",
            EventLine::new("draining")
                .field("signal", signal)
                .field("websockets", self.ctx.open.websocket)
                .field("http", self.ctx.open.http)
                .field("admin", self.ctx.open.admin)
                .field("window_ms", window_ms)
                .field("deadline_ms", budget.as_millis())
        );

        // 2. Finish in-flight work and persist state.
        self.finish_in_flight_work();

        // 3. Disconnect WebSockets at random times spread uniformly over DRAIN_WINDOW, so their
        //    clients do not reconnect to the new pods all at once.
        let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
        let mut schedule = DrainSchedule::new(window_ms);
        for slot in slots {
            let offset = self.ctx.rng.below(window_ms.max(1));
            if self.conns[slot].conn.schedule_drain(now + offset) {
                schedule.add(offset);
                self.after_run(slot, Verdict::Keep);
            }
        }
        log::info!("{}", schedule.event_line());
    }

    /// The drain step where work in flight is finished before anyone is disconnected. For this
    /// server that means: answer the requests and messages already read, and hand every queued
    /// reply to the kernel (replies are queued ahead of any close frame, so none is lost); idle
    /// HTTP connections are closed, and a waiting `/prestop` is answered. An application with
    /// state (sessions, jobs, counters) would persist it here, before step 3 disconnects its
    /// clients, so that they find it on the pod they reconnect to.
    fn finish_in_flight_work(&mut self) {
        let now = self.ctx.now;
        let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            self.conns[slot].conn.on_drain_begins(now);
            self.run_connection(slot, Wake::Recheck);
        }
    }

    /// A second signal: tell every WebSocket client (1012) as far as the socket takes it, and
    /// stop.
    fn close_all_now(&mut self, signal: &str) {
        log::info!(
            "{}",
            EventLine::new("stop_now")
                .field("signal", signal)
                .field("open", self.conns.len())
        );
        for (_, s) in self.conns.iter_mut() {
            s.conn.close_now(&mut self.ctx);
        }
        self.exit_now = true;
    }

    /// Exiting: one last attempt to hand every connection's queued output to the kernel (a
    /// close frame, a probe's or the preStop hook's answer on the admin port).
    fn flush_all(&mut self) {
        for (_, s) in self.conns.iter_mut() {
            if s.conn.output_len() > 0
                && let Ok(n) = s.conn.output().write_to(&mut s.stream)
            {
                self.ctx.metrics.bytes_out += n as u64;
            }
        }
    }

    /// Whether the loop should stop: a second signal, or a drain with nothing left to wait for.
    fn finished(&self) -> bool {
        if self.exit_now {
            return true;
        }
        let Some(drain) = self.drain else {
            return false;
        };
        debug_assert_eq!(self.ctx.lifecycle.phase(), Phase::Draining);
        let public = self.ctx.open.http + self.ctx.open.websocket;
        if public == 0 {
            log::info!(
                "{}",
                EventLine::new("drain_complete").field("open_public", 0)
            );
            return true;
        }
        if self.ctx.now >= drain.deadline {
            log::warn!(
                "{}",
                EventLine::new("drain_deadline_passed").field("open_public", public)
            );
            return true;
        }
        false
    }

    fn log_exit(&self) {
        let m = &self.ctx.metrics;
        if let Some(drain) = self.drain {
            let closes = self.ctx.lifecycle.drain_closes();
            let mut line = EventLine::new("drain_end")
                .field("after_ms", self.ctx.now.saturating_sub(drain.started_at))
                .field("closes_sent", closes.len());
            if let (Some(first), Some(last)) = (closes.first(), closes.last()) {
                line = line.field("first_ms", first).field("last_ms", last);
            }
            log::info!(
                "{}",
                line.field("clean", m.ws.clean_closes - drain.clean_closes_before)
                    .field(
                        "timed_out",
                        m.ws.close_timeouts - drain.close_timeouts_before
                    )
                    .field("still_open", self.conns.len())
            );
        }
        log::info!(
            "{}",
            EventLine::new("exit")
                .field("accepted_public", m.accepted[Listener::Public as usize])
                .field("accepted_admin", m.accepted[Listener::Admin as usize])
                .field("refused_full", m.rejected_max_connections)
                .field("refused_no_descriptors", m.rejected_fd_exhausted)
                .field("requests", m.requests_total())
                .field("ws_messages_in", m.ws.messages_in)
                .field("ws_messages_out", m.ws.messages_out)
                .field("ws_messages_after_close", m.ws.messages_after_close)
                .field("ws_clean_closes", m.ws.clean_closes)
                .field("ws_close_timeouts", m.ws.close_timeouts)
                .field("bytes_in", m.bytes_in)
                .field("bytes_out", m.bytes_out)
        );
    }
}

/// Runs one connection: writes what is queued, lets it serve what it has buffered, reads until
/// the socket would block (or the read budget runs out), and repeats.
///
/// Reads are spared where readiness is known. After an event that did not report the peer's
/// shutdown, a read that returns less than the buffer holds means the socket is empty for now:
/// the read that would only say `WouldBlock` is skipped (with edge-triggered readiness, data or
/// a FIN arriving later raises a new event). Without an event (a timer, the drain), the socket
/// is read only if an earlier run left bytes in it unread.
fn drive<S: Stream>(
    s: &mut Slot<S>,
    ctx: &mut Context,
    scratch: &mut [u8],
    reads_per_event: usize,
    wake: Wake,
) -> Verdict {
    let mut reads = 0;
    let trust_short_read = wake == Wake::Event { peer_closed: false };
    let mut drained = wake == Wake::Internal && !s.unread;
    loop {
        if s.conn.output_len() > 0 {
            match s.conn.output().write_to(&mut s.stream) {
                Ok(n) => {
                    ctx.metrics.bytes_out += n as u64;
                    s.conn.on_written(n, ctx.now);
                }
                Err(e) => {
                    log::debug!("conn #{}: write failed: {e}", s.conn.id());
                    return Verdict::Close;
                }
            }
        }
        match s.conn.next_io(ctx) {
            NextIo::Continue => continue,
            NextIo::Close => return Verdict::Close,
            NextIo::ShutdownWrite => {
                if s.stream.shutdown_write().is_err() {
                    return Verdict::Close;
                }
                s.conn.on_write_shut(ctx.now);
                continue;
            }
            NextIo::InputClosed => return Verdict::Keep,
            NextIo::Paused => {
                s.unread = true;
                return Verdict::Keep;
            }
            NextIo::Read => {}
        }
        if drained {
            s.unread = false;
            return s.conn.on_input_drained(ctx);
        }
        if reads == reads_per_event {
            s.rerun = true;
            s.unread = true;
            return Verdict::Keep;
        }
        reads += 1;
        match s.stream.read(scratch) {
            Ok(0) => {
                if s.conn.on_input_closed() == Verdict::Close {
                    return Verdict::Close;
                }
            }
            Ok(n) => {
                ctx.metrics.bytes_in += n as u64;
                drained = trust_short_read && n < scratch.len();
                if s.conn.on_bytes(&mut scratch[..n], ctx) == Verdict::Close {
                    return Verdict::Close;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                s.unread = false;
                return s.conn.on_input_drained(ctx);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("conn #{}: read failed: {e}", s.conn.id());
                return Verdict::Close;
            }
        }
    }
}

/// The open count a kind of connection is counted in.
fn count_of(open: &mut OpenConnections, kind: Kind) -> &mut usize {
    match kind {
        Kind::Http => &mut open.http,
        Kind::WebSocket => &mut open.websocket,
        Kind::Admin => &mut open.admin,
    }
}

/// Runs one connection's handler. A panic in it is a bug, but it costs that connection only:
/// its client is told (1011, or 500) and dropped while the loop goes on serving everyone else,
/// instead of the pod losing every connection at once. (The panic message itself is printed
/// by the default hook, just before the log line.)
fn guarded<S>(
    s: &mut Slot<S>,
    ctx: &mut Context,
    handler: impl FnOnce(&mut Slot<S>, &mut Context) -> Verdict,
) -> Verdict {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(s, ctx))) {
        Ok(verdict) => verdict,
        Err(_) => {
            log::error!(
                "{}",
                EventLine::new("internal_error")
                    .field("conn", s.conn.id())
                    .field("cause", "the panic above")
                    .field("closing", "this connection only")
            );
            s.conn.internal_error(ctx)
        }
    }
}

/// Runs the server until the drain is over (or a second signal): loads the static files, raises
/// the open-files limit, binds both listeners, and polls.
pub fn run(config: Config, instance_id: &str) -> io::Result<()> {
    let clock = Clock::new();
    let limits = net::raise_fd_limit()?;
    let max_public = config
        .max_connections
        .unwrap_or_else(|| limits.soft.saturating_sub(FD_RESERVE).max(1) as usize);
    let files = StaticFiles::load(&config.static_dir)?;
    let net = MioNet::bind(config.public_addr, config.admin_addr, config.listen_backlog)?;
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    net.poll
        .registry()
        .register(&mut signals, SIGNALS_TOKEN, Interest::READABLE)?;
    log_listening(&config, &files, limits, max_public, &net);

    let mut ctx = Context::new(
        config,
        files,
        instance_id,
        Rng::from_entropy(),
        SystemTime::now,
    );
    ctx.tick(clock.now());
    let mut server = Server::new(net, ctx, max_public, Tuning::default());
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    let mut wake_at = None;
    log::info!("{}", EventLine::new("ready").field("phase", "serving"));
    loop {
        let timeout =
            wake_at.map(|at: Millis| Duration::from_millis(at.saturating_sub(clock.now())));
        if let Err(e) = server.net.poll.poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let batch = events.iter().flat_map(|event| {
            let (one, signals) = match event.token() {
                PUBLIC_TOKEN => (Some(Event::Acceptable(Listener::Public)), None),
                ADMIN_TOKEN => (Some(Event::Acceptable(Listener::Admin)), None),
                // The pipe is emptied before acting, so a signal arriving meanwhile wakes the
                // poll again.
                SIGNALS_TOKEN => (None, Some(signals.pending())),
                Token(slot) => (
                    Some(Event::Ready {
                        slot,
                        peer_closed: event.is_read_closed() || event.is_error(),
                    }),
                    None,
                ),
            };
            let signals = signals.into_iter().flatten().map(|n| {
                Event::Signal(if n == SIGINT {
                    Signal::Int
                } else {
                    Signal::Term
                })
            });
            one.into_iter().chain(signals)
        });
        match server.step(clock.now(), batch) {
            Status::Exited => return Ok(()),
            Status::Running { wake_at: next } => wake_at = next.filter(|&at| at != NEVER),
        }
    }
}

fn log_listening(
    config: &Config,
    files: &StaticFiles,
    limits: FdLimits,
    max_public: usize,
    net: &MioNet,
) {
    let addr = |listener| {
        net.local_addr(listener)
            .map_or_else(|| "?".to_string(), |a: SocketAddr| a.to_string())
    };
    log::info!(
        "{}",
        EventLine::new("listening")
            .field("public", addr(Listener::Public))
            .field("admin", addr(Listener::Admin))
            .field("max_connections", max_public)
            .field("open_files_limit", limits.soft)
            .field("open_files_limit_was", limits.soft_before)
            .field("open_files_limit_hard", limits.hard)
            .field("backlog", config.listen_backlog)
            .field("static_files", files.len())
            .field("static_bytes", files.total_bytes())
            .field("static_dir", config.static_dir.display())
    );
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
            deadline: Deadline::none(),
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
        assert!(stride <= 136, "a slab entry grew to {stride} bytes");
    }
}
