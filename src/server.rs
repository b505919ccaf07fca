//! The event loop: one `mio::Poll` over the two listeners, signal-hook's self-pipe and a slab of
//! connections, with one heap of deadlines. Nothing blocks and there are no other threads: the
//! poll timeout is the nearest deadline, and a signal wakes the poll through its pipe.
//!
//! One iteration: poll → accept until `WouldBlock` on each ready listener → let each ready
//! connection read, serve and write → fire due deadlines → check whether the drain is over.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::config::{Config, FD_RESERVE, MAX_ADMIN_CONNECTIONS};
use crate::connection::{Connection, Verdict, Wake};
use crate::context::Context;
use crate::lifecycle::{DrainSchedule, Phase, SignalAction};
use crate::metrics::{RejectReason, Side};
use crate::net::{self, FdLimits, SpareFd};
use crate::static_files::StaticFiles;
use crate::timers::{Clock, Millis, after};

const PUBLIC: Token = Token(usize::MAX - 1);
const ADMIN: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);

/// Readiness events taken per poll.
const EVENTS_CAPACITY: usize = 1024;
/// The loop's one read buffer, lent to whichever connection is reading.
const SCRATCH_BYTES: usize = 64 * 1024;
/// When accept fails and nothing else will wake the loop, try again after this long.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Descriptor exhaustion is logged at most this often.
const FD_WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// The server, bound and ready to run.
pub struct Server {
    poll: Poll,
    public: Option<TcpListener>,
    admin: TcpListener,
    signals: Signals,
    conns: Slab<Connection>,
    timers: crate::timers::Timers,
    ctx: Context,
    clock: Clock,
    scratch: Box<[u8]>,
    spare: SpareFd,
    max_public: usize,
    next_generation: u32,
    /// Accepting paused after an error; retry at this time.
    accept_retry_at: Option<Millis>,
    last_fd_warning: Option<Millis>,
    drain_deadline: Option<Millis>,
    exit_now: bool,
    /// Connections whose read budget ran out: `(slot, generation)`, run again next iteration.
    rerun: Vec<(usize, u32)>,
}

impl Server {
    /// Loads the static files, raises the open-files limit, binds both listeners and registers
    /// everything with a new poll.
    pub fn bind(config: Config, instance_id: String) -> io::Result<Server> {
        let clock = Clock::new();
        let limits = net::raise_fd_limit()?;
        let max_public = config
            .max_connections
            .unwrap_or_else(|| limits.soft.saturating_sub(FD_RESERVE).max(1) as usize);
        let files = StaticFiles::load(&config.static_dir)?;

        let poll = Poll::new()?;
        let mut public = net::listen(config.public_addr, config.listen_backlog)
            .map_err(|e| annotate(e, "PORT", config.public_addr))?;
        let mut admin = net::listen(config.admin_addr, config.listen_backlog)
            .map_err(|e| annotate(e, "ADMIN_PORT", config.admin_addr))?;
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        poll.registry()
            .register(&mut public, PUBLIC, Interest::READABLE)?;
        poll.registry()
            .register(&mut admin, ADMIN, Interest::READABLE)?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let public_addr = public.local_addr()?;
        let admin_addr = admin.local_addr()?;

        log_listening(&config, &files, limits, max_public, public_addr, admin_addr);
        let mut ctx = Context::new(config, files, instance_id);
        ctx.tick(clock.now());
        Ok(Server {
            poll,
            public: Some(public),
            admin,
            signals,
            conns: Slab::new(),
            timers: crate::timers::Timers::new(),
            ctx,
            clock,
            scratch: vec![0; SCRATCH_BYTES].into_boxed_slice(),
            spare: SpareFd::new(),
            max_public,
            next_generation: 0,
            accept_retry_at: None,
            last_fd_warning: None,
            drain_deadline: None,
            exit_now: false,
            rerun: Vec::new(),
        })
    }

    /// Runs until the drain is over (or a second signal), then returns.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut due = Vec::new();
        log::info!("ready: serving");
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.ctx.tick(self.clock.now());
            for (slot, generation) in std::mem::take(&mut self.rerun) {
                if self
                    .conns
                    .get(slot)
                    .is_some_and(|c| c.generation == generation)
                {
                    self.on_conn_ready(slot, Wake::Internal);
                }
            }
            for event in events.iter() {
                match event.token() {
                    PUBLIC => self.accept_all(Side::Public),
                    ADMIN => self.accept_all(Side::Admin),
                    SIGNALS => self.on_signals(),
                    Token(slot) => {
                        let peer_closed = event.is_read_closed() || event.is_error();
                        self.on_conn_ready(slot, Wake::Event { peer_closed });
                    }
                }
            }
            self.fire_timers(&mut due);
            if self.accept_retry_at.is_some_and(|at| at <= self.ctx.now) {
                self.accept_retry_at = None;
                self.accept_all(Side::Public);
                self.accept_all(Side::Admin);
            }
            if self.finished() {
                break;
            }
        }
        self.log_exit();
        Ok(())
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.rerun.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = [
            self.timers.next(),
            self.accept_retry_at,
            self.drain_deadline,
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(Duration::from_millis(next.saturating_sub(self.clock.now())))
    }

    fn accept_all(&mut self, side: Side) {
        loop {
            let listener = match side {
                Side::Public => match &self.public {
                    Some(listener) => listener,
                    None => return, // closed for the drain
                },
                Side::Admin => &self.admin,
            };
            match listener.accept() {
                Ok((stream, _)) => self.admit(stream, side),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if net::is_fd_exhaustion(&e) => {
                    if !self.shed_one(side, &e) {
                        return;
                    }
                }
                Err(e) if net::is_transient_accept_error(&e) => {}
                Err(e) => {
                    log::warn!("accept on the {} port failed: {e}", side.as_str());
                    self.accept_retry_at = Some(after(self.ctx.now, ACCEPT_RETRY));
                    return;
                }
            }
        }
    }

    /// Out of descriptors: use the spare one to accept a waiting client, refuse it, take the
    /// spare back. Returns whether to keep accepting (false when the backlog is empty, or when
    /// there was no spare: then the loop retries after [`ACCEPT_RETRY`]).
    fn shed_one(&mut self, side: Side, e: &io::Error) -> bool {
        let now = self.ctx.now;
        if self
            .last_fd_warning
            .is_none_or(|t| now >= after(t, FD_WARNING_INTERVAL))
        {
            self.last_fd_warning = Some(now);
            log::warn!(
                "out of file descriptors ({e}) with {} connections open; refusing new clients",
                self.conns.len()
            );
        }
        if !self.spare.release() {
            self.spare.refill();
            self.accept_retry_at = Some(after(now, ACCEPT_RETRY));
            return false;
        }
        let listener = match side {
            Side::Public => self.public.as_ref(),
            Side::Admin => Some(&self.admin),
        };
        let accepted = listener.map(TcpListener::accept);
        let more = match accepted {
            Some(Ok((stream, _))) => {
                self.ctx.metrics.bytes_out += net::reject(stream, &mut self.scratch);
                self.ctx.metrics.rejected(RejectReason::FdExhausted);
                true
            }
            // EMFILE hides an empty backlog; with a free descriptor, WouldBlock reveals it.
            Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => false,
            Some(Err(e)) => {
                log::warn!("accept on the {} port failed: {e}", side.as_str());
                self.accept_retry_at = Some(after(now, ACCEPT_RETRY));
                false
            }
            None => false,
        };
        self.spare.refill();
        more
    }

    fn admit(&mut self, mut stream: mio::net::TcpStream, side: Side) {
        let (open, cap) = match side {
            Side::Public => (
                &mut self.ctx.open.http,
                self.max_public.saturating_sub(self.ctx.open.websocket),
            ),
            Side::Admin => (&mut self.ctx.open.admin, MAX_ADMIN_CONNECTIONS),
        };
        if *open >= cap {
            self.ctx.metrics.bytes_out += net::reject(stream, &mut self.scratch);
            self.ctx.metrics.rejected(RejectReason::MaxConnections);
            log::debug!("{} port full ({cap}): answered 503", side.as_str());
            return;
        }
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        // Both directions, once: edge-triggered, so no epoll_ctl is needed while it lives.
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("cannot register a connection: {e}");
            return;
        }
        *open += 1;
        self.ctx.metrics.accepted(side);
        self.next_generation = self.next_generation.wrapping_add(1);
        let conn = entry.insert(Connection::new(
            stream,
            side,
            self.next_generation,
            self.ctx.now,
        ));
        log::debug!(
            "conn #{}: accepted on the {} port",
            conn.generation,
            side.as_str()
        );
        self.settle(slot, Verdict::Keep);
    }

    fn on_conn_ready(&mut self, slot: usize, wake: Wake) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let verdict = guarded(conn, &mut self.ctx, |conn, ctx| {
            conn.on_ready(ctx, &mut self.scratch, wake)
        });
        if verdict == Verdict::Keep && conn.take_rerun() {
            self.rerun.push((slot, conn.generation));
        }
        self.settle(slot, verdict);
    }

    /// After a connection has run: drop it, or move its deadline.
    fn settle(&mut self, slot: usize, verdict: Verdict) {
        match verdict {
            Verdict::Close => {
                let conn = self.conns.remove(slot);
                match conn.side {
                    Side::Public if conn.is_websocket() => self.ctx.open.websocket -= 1,
                    Side::Public => self.ctx.open.http -= 1,
                    Side::Admin => self.ctx.open.admin -= 1,
                }
                log::debug!("conn #{}: closed", conn.generation);
            }
            Verdict::Keep => {
                let conn = &mut self.conns[slot];
                let at = conn.next_deadline(&self.ctx);
                self.timers
                    .set(&mut conn.deadline, slot, conn.generation, at);
            }
        }
    }

    fn fire_timers(&mut self, due: &mut Vec<usize>) {
        let now = self.ctx.now;
        while let Some(entry) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get_mut(entry.slot) else {
                continue;
            };
            if conn.generation == entry.generation
                && self.timers.fire(entry, &mut conn.deadline, now)
            {
                due.push(entry.slot);
            }
        }
        for slot in due.drain(..) {
            let verdict = guarded(&mut self.conns[slot], &mut self.ctx, |conn, ctx| {
                conn.on_timeout(ctx, &mut self.scratch)
            });
            self.settle(slot, verdict);
        }
    }

    fn on_signals(&mut self) {
        let pending: Vec<i32> = self.signals.pending().collect();
        for signal in pending {
            let name = if signal == SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            match self.ctx.lifecycle.on_signal(self.ctx.now) {
                SignalAction::BeginDrain => self.begin_drain(name),
                SignalAction::ExitNow => self.close_all_now(name),
            }
        }
    }

    /// The drain, in its named steps. Kubernetes has already stopped routing new connections
    /// here (preStop), so from now on every public connection only winds down.
    fn begin_drain(&mut self, signal: &str) {
        let now = self.ctx.now;
        let window_ms = self.ctx.config.drain_window.as_millis() as u64;
        let budget = self.ctx.config.drain_window + self.ctx.config.close_timeout;
        self.drain_deadline = Some(after(now, budget));

        // 1. Stop accepting: with the listener closed the kernel refuses new connections, so
        //    clients fail fast and retry on another pod. The admin port stays open for probes.
        //    Connections already in the backlog are taken first: they are answered (a WebSocket
        //    upgrade with 503) instead of being reset.
        self.accept_all(Side::Public);
        if let Some(mut listener) = self.public.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        log::info!(
            "{signal}: draining: {} WebSocket, {} HTTP and {} admin connections open; \
             WebSockets close over {:.1}s; deadline {:.1}s",
            self.ctx.open.websocket,
            self.ctx.open.http,
            self.ctx.open.admin,
            self.ctx.config.drain_window.as_secs_f64(),
            budget.as_secs_f64()
        );

        // 2. Finish in-flight work and persist state.
        self.finish_in_flight_work();

        // 3. Disconnect WebSockets at random times spread uniformly over DRAIN_WINDOW, so their
        //    clients do not reconnect to the new pods all at once.
        let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
        let mut schedule = DrainSchedule::new(window_ms);
        for slot in slots {
            let offset = self.ctx.rng.below(window_ms.max(1));
            if self.conns[slot].schedule_drain(now + offset) {
                schedule.add(offset);
                self.settle(slot, Verdict::Keep);
            }
        }
        log::info!("{schedule}");
    }

    /// The drain step where work in flight is finished before anyone is disconnected. For this
    /// server that means: answer the requests and messages already read, and hand every queued
    /// reply to the kernel (replies are queued ahead of any close frame, so none is lost); idle
    /// HTTP connections are closed, and a waiting `/prestop` is answered. An application with
    /// state (sessions, jobs, counters) would persist it here, before step 3 disconnects its
    /// clients, so that they find it on the pod they reconnect to.
    fn finish_in_flight_work(&mut self) {
        let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            let verdict = guarded(&mut self.conns[slot], &mut self.ctx, |conn, ctx| {
                conn.on_ready(ctx, &mut self.scratch, Wake::Recheck)
            });
            self.settle(slot, verdict);
        }
    }

    /// A second signal: tell every WebSocket client (1012) as far as the socket takes it, and
    /// stop.
    fn close_all_now(&mut self, signal: &str) {
        log::info!(
            "{signal} again: closing {} connections now",
            self.conns.len()
        );
        for (_, conn) in self.conns.iter_mut() {
            conn.close_now(&mut self.ctx);
        }
        self.exit_now = true;
    }

    /// Whether the loop should stop: a second signal, or a drain with nothing left to wait for.
    fn finished(&self) -> bool {
        if self.exit_now {
            return true;
        }
        if self.ctx.lifecycle.phase() != Phase::Draining {
            return false;
        }
        let public = self.ctx.open.http + self.ctx.open.websocket;
        if public == 0 {
            log::info!("drain complete: every public connection closed");
            return true;
        }
        if self.drain_deadline.is_some_and(|at| self.ctx.now >= at) {
            log::warn!(
                "drain deadline passed with {public} public connections still open; closing them"
            );
            return true;
        }
        false
    }

    fn log_exit(&self) {
        let m = &self.ctx.metrics;
        if let Some(started) = self.ctx.lifecycle.drain_started_at() {
            let closes = self.ctx.lifecycle.drain_closes();
            let spread = match (closes.first(), closes.last()) {
                (Some(first), Some(last)) => format!("first +{first}ms, last +{last}ms"),
                _ => "none".to_string(),
            };
            log::info!(
                "drain end after {}ms: {} close frames sent (1012) ({spread}); {} close handshakes completed, \
                 {} clients did not answer within CLOSE_TIMEOUT, {} connections still open at exit",
                self.ctx.now.saturating_sub(started),
                closes.len(),
                m.ws_clean_closes,
                m.ws_close_timeouts,
                self.conns.len()
            );
        }
        log::info!(
            "exit: accepted {} public and {} admin connections, refused {} (full) and {} (out of descriptors), \
             answered {} requests; WebSocket messages: {} in, {} out, {} after close; \
             WebSocket closes: {} clean, {} timed out; {} bytes in, {} bytes out",
            m.accepted[Side::Public as usize],
            m.accepted[Side::Admin as usize],
            m.rejected_max_connections,
            m.rejected_fd_exhausted,
            m.requests_total(),
            m.ws_messages_in,
            m.ws_messages_out,
            m.ws_messages_after_close,
            m.ws_clean_closes,
            m.ws_close_timeouts,
            m.bytes_in,
            m.bytes_out
        );
    }
}

/// Runs one connection's handler. A panic in it is a bug, but it costs that connection only:
/// its client is told (1011, or 500) and dropped while the loop goes on serving everyone else,
/// instead of the pod losing every connection at once. (The panic message itself is printed
/// by the default hook, just before the log line.)
fn guarded(
    conn: &mut Connection,
    ctx: &mut Context,
    handler: impl FnOnce(&mut Connection, &mut Context) -> Verdict,
) -> Verdict {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(conn, ctx))) {
        Ok(verdict) => verdict,
        Err(_) => {
            log::error!(
                "conn #{}: internal error (the panic above); closing this connection only",
                conn.generation
            );
            conn.internal_error(ctx)
        }
    }
}

fn annotate(e: io::Error, setting: &str, addr: SocketAddr) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("cannot listen on {addr} ({setting}): {e}"),
    )
}

fn log_listening(
    config: &Config,
    files: &StaticFiles,
    limits: FdLimits,
    max_public: usize,
    public: SocketAddr,
    admin: SocketAddr,
) {
    log::info!(
        "listening public={public} admin={admin} max_connections={max_public} \
         open_files_limit={} (was {}, hard {}) backlog={} static_files={} ({} bytes from {:?})",
        limits.soft,
        limits.soft_before,
        limits.hard,
        config.listen_backlog,
        files.len(),
        files.total_bytes(),
        config.static_dir
    );
}
