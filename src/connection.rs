//! One client connection as a state machine. The loop calls [`Connection::on_ready`] when the
//! socket is readable or writable and [`Connection::on_timeout`] when its deadline passes; both
//! return whether to keep it.
//!
//! ```text
//! accept ─▶ Http ─(GET /prestop)─▶ AwaitPreStop ─(deadline)─▶ Http
//!            │  ╰─(GET /ws, 101)─▶ WebSocket ─(close handshake, failure)─╮
//!            ╰─(answer that closes: error, Connection: close, draining)───┴─▶ Lingering ─(EOF, deadline)─▶ gone
//! ```
//!
//! Reading: bytes are read into the loop's scratch buffer and requests (or WebSocket frames) are
//! parsed from there; only the bytes of an incomplete head or frame are copied into the
//! connection, so an idle connection holds no buffer. At most [`READS_PER_EVENT`] reads are done
//! per event, so one busy client cannot starve the others; the loop comes back to it. The socket is registered once for both directions (edge-triggered), so no
//! `epoll_ctl` is needed while it lives: the connection remembers when it stopped reading
//! (output above the high-water mark, waiting for the preStop answer) and resumes by itself.
//!
//! Deadlines: a request head must be complete within `HEADER_TIMEOUT` of accept, or of its first
//! byte on a kept-alive connection (progress does not extend it); a kept-alive connection is
//! closed after `IDLE_TIMEOUT` without a request; a client that stops reading its answer is
//! dropped after `IDLE_TIMEOUT` without write progress. A WebSocket client whose output stays
//! above the high-water mark without write progress for `PONG_TIMEOUT` is closed with 1008.

use std::io::{self, Read};
use std::net::Shutdown;
use std::time::Duration;

use mio::net::TcpStream;

use crate::context::Context;
use crate::http::{self, HttpError, Method, Parsed, Response};
use crate::lifecycle::Phase;
use crate::metrics::Side;
use crate::outbuf::OutQueue;
use crate::routes::{self, Action};
use crate::timers::{Deadline, Millis, NEVER, after};
use crate::websocket::{Flow, Session};

/// Stop serving pipelined requests or WebSocket frames (and reading) while this much output is
/// queued (or half of `MAX_OUTPUT_BYTES`, if smaller).
pub const OUTPUT_HIGH_WATER_BYTES: usize = 64 * 1024;
/// Reads per readiness event before the loop moves on to other connections.
pub const READS_PER_EVENT: usize = 16;
/// After an answer that closes, how long to read and discard what the client still sends, so
/// it reads our answer instead of a reset.
pub const LINGER: Duration = Duration::from_secs(2);
/// At most this much is discarded while lingering.
pub const LINGER_MAX_BYTES: usize = 64 * 1024;

/// Keep the connection, or drop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it; its deadline may have changed.
    Keep,
    /// Close and forget it.
    Close,
}

#[derive(Debug)]
enum State {
    /// Reading and answering HTTP requests. `head_started` is when the clock of the current
    /// head started (accept, or its first byte); `None` while idle between requests.
    Http { head_started: Option<Millis> },
    /// A `GET /prestop` waits for the preStop deadline; later requests wait behind it.
    AwaitPreStop {
        head_only: bool,
        keep_alive: bool,
        http10: bool,
    },
    /// Upgraded: speaking WebSocket.
    WebSocket(Session),
    /// Our side is shut down; reading and discarding until EOF or the deadline.
    Lingering { until: Millis, discarded: usize },
}

/// A client connection.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    /// Distinguishes this connection from earlier ones in the same slab slot.
    pub generation: u32,
    /// The listener it came from.
    pub side: Side,
    /// Its place in the loop's timer heap.
    pub deadline: Deadline,
    state: State,
    /// Bytes read but not yet consumed (an incomplete head, or requests waiting behind output).
    input: Vec<u8>,
    /// `input` may hold complete requests not yet served.
    input_ready: bool,
    output: OutQueue,
    /// An answer that closes the connection is queued.
    close_after_flush: bool,
    /// The client shut down its sending side.
    read_closed: bool,
    /// Last request completed or write progress.
    last_active: Millis,
    /// The read budget ran out with input possibly left in the socket: run again soon.
    rerun: bool,
    /// Upgraded to WebSocket at some point.
    upgraded: bool,
    /// The socket may hold bytes that no pending readiness event will report (reading stopped
    /// for back-pressure, the read budget, or the preStop wait).
    unread: bool,
}

/// Why the loop runs a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A readiness event; `peer_closed` when it reported the peer's shutdown or an error.
    Event {
        /// The event said the peer shut down (or the socket failed).
        peer_closed: bool,
    },
    /// No event: a deadline, or the loop coming back after the read budget.
    Internal,
    /// Look again, reading until `WouldBlock` (the drain: a request may have arrived whose
    /// event the loop has not handled yet; it must be answered, not dropped as "idle").
    Recheck,
}

impl Connection {
    /// A freshly accepted connection.
    pub fn new(stream: TcpStream, side: Side, generation: u32, now: Millis) -> Self {
        Connection {
            stream,
            generation,
            side,
            deadline: Deadline::none(),
            state: State::Http {
                head_started: Some(now),
            },
            input: Vec::new(),
            input_ready: false,
            output: OutQueue::new(),
            close_after_flush: false,
            read_closed: false,
            last_active: now,
            rerun: false,
            upgraded: false,
            unread: true,
        }
    }

    /// Whether this connection was upgraded to WebSocket (and is counted as one until it is
    /// gone, closing handshake and lingering included).
    pub fn is_websocket(&self) -> bool {
        self.upgraded
    }

    /// Schedules the drain's close of a WebSocket; false for other connections.
    pub fn schedule_drain(&mut self, at: Millis) -> bool {
        match &mut self.state {
            State::WebSocket(session) if !session.closing() => {
                session.schedule_drain(at);
                true
            }
            _ => false,
        }
    }

    /// Stopping now (a second signal): queues a close frame on a WebSocket and tries once to
    /// send what is queued, so clients see 1012 rather than a dropped connection.
    pub fn close_now(&mut self, ctx: &mut Context) {
        if let State::WebSocket(session) = &mut self.state {
            session.start_close(
                tungstenite::protocol::frame::coding::CloseCode::Restart,
                "server stopping now; reconnect",
                &mut self.output,
                ctx,
            );
        }
        let _ = self.flush(ctx);
    }

    /// Whether the loop must run this connection again without waiting for an event.
    pub fn take_rerun(&mut self) -> bool {
        std::mem::take(&mut self.rerun)
    }

    /// When this connection next needs the loop's attention.
    pub fn next_deadline(&self, ctx: &Context) -> Millis {
        let config = &ctx.config;
        match self.state {
            State::Lingering { until, .. } => until,
            State::AwaitPreStop { .. } => ctx.lifecycle.prestop_answer_at().unwrap_or(NEVER),
            State::WebSocket(ref session) => {
                let stalled = if self.output.len() >= high_water(config) {
                    after(self.last_active, config.pong_timeout)
                } else {
                    NEVER
                };
                session.next_deadline(ctx).min(stalled)
            }
            State::Http { head_started } => match head_started {
                Some(start) if self.output.is_empty() => after(start, config.header_timeout),
                _ => after(self.last_active, config.idle_timeout),
            },
        }
    }

    /// The socket is ready (or the loop asks the connection to re-examine itself): write what
    /// is queued, process what is buffered, read until the socket would block.
    ///
    /// Reads are spared where readiness is known. After an event that did not report the
    /// peer's shutdown, a read that returns less than the buffer holds means the socket is empty
    /// for now: the read that would only say `WouldBlock` is skipped (with edge-triggered
    /// readiness, data or a FIN arriving later raises a new event). Without an event (a timer,
    /// the drain), the socket is read only if an earlier call left bytes in it unread.
    pub fn on_ready(&mut self, ctx: &mut Context, scratch: &mut [u8], wake: Wake) -> Verdict {
        let mut reads = 0;
        let trust_short_read = wake == Wake::Event { peer_closed: false };
        let mut drained = wake == Wake::Internal && !self.unread;
        loop {
            if !self.output.is_empty() && self.flush(ctx).is_err() {
                return Verdict::Close;
            }
            if self.close_after_flush
                && self.output.is_empty()
                && !matches!(self.state, State::Lingering { .. })
                && self.start_lingering(ctx) == Verdict::Close
            {
                return Verdict::Close;
            }
            if self.input_ready && self.can_process(ctx) {
                let mut buffered = std::mem::take(&mut self.input);
                let (used, partial, verdict) = self.process(&mut buffered, ctx);
                if verdict == Verdict::Close {
                    return Verdict::Close;
                }
                buffered.drain(..used);
                self.keep_input(buffered, partial);
                continue;
            }
            if self.read_closed {
                let waiting = matches!(self.state, State::AwaitPreStop { .. });
                return if self.output.is_empty() && !waiting {
                    Verdict::Close
                } else {
                    Verdict::Keep
                };
            }
            if !self.wants_read(ctx) {
                self.unread = true;
                return Verdict::Keep;
            }
            if drained {
                self.unread = false;
                return self.socket_empty(ctx);
            }
            if reads == READS_PER_EVENT {
                self.rerun = true;
                self.unread = true;
                return Verdict::Keep;
            }
            reads += 1;
            match self.stream.read(scratch) {
                Ok(0) => {
                    self.read_closed = true;
                    if matches!(self.state, State::Lingering { .. }) {
                        return Verdict::Close;
                    }
                }
                Ok(n) => {
                    ctx.metrics.bytes_in += n as u64;
                    drained = trust_short_read && n < scratch.len();
                    if self.on_bytes(&mut scratch[..n], ctx) == Verdict::Close {
                        return Verdict::Close;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.unread = false;
                    return self.socket_empty(ctx);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("conn #{}: read failed: {e}", self.generation);
                    return Verdict::Close;
                }
            }
        }
    }

    /// Nothing more to read for now.
    fn socket_empty(&self, ctx: &Context) -> Verdict {
        if self.idle_while_draining(ctx) {
            log::debug!(
                "conn #{}: closing idle connection for drain",
                self.generation
            );
            return Verdict::Close;
        }
        Verdict::Keep
    }

    /// Writes what the kernel takes.
    fn flush(&mut self, ctx: &mut Context) -> io::Result<()> {
        match self.output.write_to(&mut self.stream) {
            Ok(n) => {
                ctx.metrics.bytes_out += n as u64;
                if n > 0 {
                    self.last_active = ctx.now;
                }
                Ok(())
            }
            Err(e) => {
                log::debug!("conn #{}: write failed: {e}", self.generation);
                Err(e)
            }
        }
    }

    /// After a panic while handling this connection (a bug): tell the client what it can,
    /// 1011 on a WebSocket or 500 over HTTP, then drop the connection.
    pub fn internal_error(&mut self, ctx: &mut Context) -> Verdict {
        match &mut self.state {
            State::WebSocket(session) => session.start_close(
                tungstenite::protocol::frame::coding::CloseCode::Error,
                "internal error",
                &mut self.output,
                ctx,
            ),
            State::Http { .. } | State::AwaitPreStop { .. } => {
                let e = http::HttpError {
                    status: 500,
                    reason: "internal error",
                };
                self.respond(Response::error(e), false, ctx);
            }
            State::Lingering { .. } => {}
        }
        self.abandon(ctx)
    }

    /// Gives up on the connection after one last attempt to send what is queued (a close frame).
    fn abandon(&mut self, ctx: &mut Context) -> Verdict {
        let _ = self.flush(ctx);
        Verdict::Close
    }

    /// The connection's deadline has passed.
    pub fn on_timeout(&mut self, ctx: &mut Context, scratch: &mut [u8]) -> Verdict {
        let now = ctx.now;
        let config = &ctx.config;
        match self.state {
            State::Lingering { .. } => return Verdict::Close,
            State::WebSocket(ref mut session) => {
                if self.output.len() >= high_water(config)
                    && now >= after(self.last_active, config.pong_timeout)
                {
                    log::debug!(
                        "conn #{}: client stopped reading its WebSocket",
                        self.generation
                    );
                    session.start_close(
                        tungstenite::protocol::frame::coding::CloseCode::Policy,
                        "not reading",
                        &mut self.output,
                        ctx,
                    );
                    return self.abandon(ctx);
                }
                match session.on_timeout(&mut self.output, ctx) {
                    Flow::Open => {}
                    Flow::Finish => self.close_after_flush = true,
                    Flow::Drop => return self.abandon(ctx),
                }
            }
            State::AwaitPreStop {
                head_only,
                keep_alive,
                http10,
            } => {
                if ctx
                    .lifecycle
                    .prestop_answer_at()
                    .is_some_and(|at| at <= now)
                {
                    self.state = State::Http {
                        head_started: (!self.input.is_empty()).then_some(now),
                    };
                    let response = routes::prestop_done(ctx).keep_alive(keep_alive, http10);
                    self.respond(response, head_only, ctx);
                    self.input_ready = !self.input.is_empty();
                }
            }
            State::Http { head_started } => {
                if !self.output.is_empty() {
                    if now >= after(self.last_active, config.idle_timeout) {
                        log::debug!("conn #{}: client stopped reading; closing", self.generation);
                        return Verdict::Close;
                    }
                } else if let Some(start) = head_started {
                    if now >= after(start, config.header_timeout) {
                        if self.input.is_empty() {
                            log::debug!(
                                "conn #{}: no request within the header timeout",
                                self.generation
                            );
                            return Verdict::Close;
                        }
                        log::debug!(
                            "conn #{}: request head incomplete at the header timeout",
                            self.generation
                        );
                        self.input = Vec::new();
                        self.respond(
                            Response::error(HttpError {
                                status: 408,
                                reason: "request head not received in time",
                            }),
                            false,
                            ctx,
                        );
                    }
                } else if now >= after(self.last_active, config.idle_timeout) {
                    log::debug!("conn #{}: keep-alive idle timeout", self.generation);
                    return Verdict::Close;
                }
            }
        }
        self.on_ready(ctx, scratch, Wake::Internal)
    }

    /// Whether this connection is between requests with nothing in flight.
    fn is_idle(&self) -> bool {
        matches!(self.state, State::Http { .. })
            && self.input.is_empty()
            && self.output.is_empty()
            && !self.close_after_flush
    }

    fn idle_while_draining(&self, ctx: &Context) -> bool {
        self.side == Side::Public && ctx.lifecycle.phase() == Phase::Draining && self.is_idle()
    }

    /// Whether buffered input may be processed now: in a state that reads requests or frames,
    /// not closing, and with room in the output queue.
    fn can_process(&self, ctx: &Context) -> bool {
        matches!(self.state, State::Http { .. } | State::WebSocket(_))
            && !self.close_after_flush
            && self.output.len() < high_water(&ctx.config)
    }

    fn wants_read(&self, ctx: &Context) -> bool {
        match self.state {
            State::Http { .. } | State::WebSocket(_) => self.can_process(ctx),
            State::AwaitPreStop { .. } => false,
            State::Lingering { .. } => true,
        }
    }

    /// Processes `buf` according to the state. Returns the bytes consumed, whether the rest is
    /// an incomplete head or frame (nothing to do until more arrives), and whether to drop the
    /// connection.
    fn process(&mut self, buf: &mut [u8], ctx: &mut Context) -> (usize, bool, Verdict) {
        match &mut self.state {
            State::Http { .. } => {
                let (used, partial) = self.serve(buf, ctx);
                (used, partial, Verdict::Keep)
            }
            State::WebSocket(session) => {
                let high_water = high_water(&ctx.config);
                let (used, flow) = session.on_input(buf, &mut self.output, high_water, ctx);
                match flow {
                    Flow::Open => (used, self.output.len() < high_water, Verdict::Keep),
                    Flow::Finish => {
                        self.close_after_flush = true;
                        (used, false, Verdict::Keep)
                    }
                    Flow::Drop => (used, false, self.abandon(ctx)),
                }
            }
            State::AwaitPreStop { .. } | State::Lingering { .. } => (0, false, Verdict::Keep),
        }
    }

    /// New bytes from the socket (in the loop's scratch buffer).
    fn on_bytes(&mut self, data: &mut [u8], ctx: &mut Context) -> Verdict {
        match &mut self.state {
            State::Lingering { discarded, .. } => {
                *discarded += data.len();
                if *discarded > LINGER_MAX_BYTES {
                    return Verdict::Close;
                }
                return Verdict::Keep;
            }
            State::Http { head_started } => {
                head_started.get_or_insert(ctx.now);
            }
            State::WebSocket(_) | State::AwaitPreStop { .. } => {}
        }
        if self.input.is_empty() && !self.input_ready && self.can_process(ctx) {
            // The common case: whole requests or frames straight from the scratch buffer.
            let (used, partial, verdict) = self.process(data, ctx);
            if verdict == Verdict::Keep {
                self.keep_input(data[used..].to_vec(), partial);
            }
            return verdict;
        }
        self.input.extend_from_slice(data);
        self.input_ready = true;
        Verdict::Keep
    }

    /// Keeps unconsumed bytes; `partial` means they are an incomplete head (nothing to serve
    /// until more arrives).
    fn keep_input(&mut self, rest: Vec<u8>, partial: bool) {
        self.input_ready = !rest.is_empty() && !partial;
        // An empty Vec::new() holds no allocation: idle connections keep no buffer.
        self.input = if rest.is_empty() { Vec::new() } else { rest };
    }

    /// Serves the complete requests at the start of `buf`, in order, while answers may be
    /// queued. Returns the bytes consumed and whether it stopped at an incomplete head.
    fn serve(&mut self, buf: &[u8], ctx: &mut Context) -> (usize, bool) {
        let mut used = 0;
        while matches!(self.state, State::Http { .. }) && self.can_process(ctx) {
            let rest = &buf[used..];
            if rest.is_empty() {
                return (used, true);
            }
            let mut storage = [httparse::EMPTY_HEADER; http::MAX_HEADERS];
            match http::parse(rest, &mut storage, ctx.config.max_header_bytes) {
                Parsed::Partial => return (used, true),
                Parsed::Invalid(e) => {
                    log::debug!(
                        "conn #{}: bad request: {} {}",
                        self.generation,
                        e.status,
                        e.reason
                    );
                    self.respond(Response::error(e), false, ctx);
                    return (buf.len(), false);
                }
                Parsed::Complete(head, len) => {
                    used += len;
                    self.last_active = ctx.now;
                    self.state = State::Http {
                        head_started: (used < buf.len()).then_some(ctx.now),
                    };
                    self.on_request(&head, ctx);
                }
            }
        }
        (used, false)
    }

    fn on_request(&mut self, head: &http::Head<'_>, ctx: &mut Context) {
        let head_only = head.method == Method::Head;
        let draining = ctx.lifecycle.phase() == Phase::Draining && self.side == Side::Public;
        let keep_alive = head.keep_alive && !draining;
        let http10 = head.version == 0;
        ctx.inject_fault(head.path.as_bytes());
        match routes::handle(head, self.side, ctx) {
            Action::Respond(response) => {
                let response = response.keep_alive(keep_alive, http10);
                log::debug!(
                    "conn #{}: {} {} -> {}",
                    self.generation,
                    head.method_name,
                    head.path,
                    response.status
                );
                self.respond(response, head_only, ctx);
            }
            Action::AwaitPreStop => {
                log::debug!(
                    "conn #{}: GET /prestop waits for the deadline",
                    self.generation
                );
                self.state = State::AwaitPreStop {
                    head_only,
                    keep_alive,
                    http10,
                };
            }
            Action::Upgrade(switching) => {
                log::debug!("conn #{}: upgraded to WebSocket", self.generation);
                self.respond(switching, false, ctx);
                self.state = State::WebSocket(Session::new(ctx));
                self.upgraded = true;
                ctx.open.http -= 1;
                ctx.open.websocket += 1;
                ctx.metrics.ws_upgrades += 1;
            }
        }
    }

    fn respond(&mut self, response: Response, head_only: bool, ctx: &mut Context) {
        ctx.metrics.request(response.status);
        self.close_after_flush |= response.close;
        response.write_to(&mut self.output, &ctx.date, head_only);
    }

    /// Shuts down our sending side and waits for the client's EOF, so a client still sending
    /// gets our answer rather than a reset.
    fn start_lingering(&mut self, ctx: &Context) -> Verdict {
        if self.read_closed || self.stream.shutdown(Shutdown::Write).is_err() {
            return Verdict::Close;
        }
        self.input = Vec::new();
        self.input_ready = false;
        self.state = State::Lingering {
            until: after(ctx.now, LINGER),
            discarded: 0,
        };
        Verdict::Keep
    }
}

/// Output queued above which a connection stops reading.
fn high_water(config: &crate::config::Config) -> usize {
    OUTPUT_HIGH_WATER_BYTES.min(config.max_output_bytes / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-connection state is the floor of memory per idle socket: keep an eye on it.
    #[test]
    fn connection_state_stays_small() {
        let size = std::mem::size_of::<Connection>();
        println!(
            "Connection: {size} bytes, Session: {} bytes",
            std::mem::size_of::<Session>()
        );
        assert!(size <= 256, "Connection grew to {size} bytes");
    }
}
