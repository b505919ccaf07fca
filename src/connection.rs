//! One client connection as a state machine. The loop calls [`Connection::on_ready`] when the
//! socket is readable or writable and [`Connection::on_timeout`] when its deadline passes; both
//! return whether to keep it.
//!
//! ```text
//! accept ─▶ Http ─(GET /prestop)─▶ AwaitPreStop ─(deadline)─▶ Http
//!            │
//!            ╰─(answer that closes: error, Connection: close, draining)─▶ Lingering ─(EOF, deadline)─▶ gone
//! ```
//!
//! Reading: bytes are read into the loop's scratch buffer and requests are parsed from there;
//! only the bytes of an incomplete head are copied into the connection, so an idle connection
//! holds no buffer. The socket is registered once for both directions (edge-triggered), so no
//! `epoll_ctl` is needed while it lives: the connection remembers when it stopped reading
//! (output above the high-water mark, waiting for the preStop answer) and resumes by itself.
//!
//! Deadlines: a request head must be complete within `HEADER_TIMEOUT` of accept, or of its first
//! byte on a kept-alive connection (progress does not extend it); a kept-alive connection is
//! closed after `IDLE_TIMEOUT` without a request; a client that stops reading its answer is
//! dropped after `IDLE_TIMEOUT` without write progress.

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

/// Stop serving pipelined requests (and reading) while this much output is queued.
pub const OUTPUT_HIGH_WATER_BYTES: usize = 64 * 1024;
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
    AwaitPreStop { head_only: bool, keep_alive: bool },
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
        }
    }

    /// The socket, for registration with the poll.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// When this connection next needs the loop's attention.
    pub fn next_deadline(&self, ctx: &Context) -> Millis {
        let config = &ctx.config;
        match self.state {
            State::Lingering { until, .. } => until,
            State::AwaitPreStop { .. } => ctx.lifecycle.prestop_answer_at().unwrap_or(NEVER),
            State::Http { head_started } => match head_started {
                Some(start) if self.output.is_empty() => after(start, config.header_timeout),
                _ => after(self.last_active, config.idle_timeout),
            },
        }
    }

    /// The socket is ready (or the loop asks the connection to re-examine itself): write what
    /// is queued, serve what is buffered, read until the socket would block.
    pub fn on_ready(&mut self, ctx: &mut Context, scratch: &mut [u8]) -> Verdict {
        loop {
            if !self.output.is_empty() {
                match self.output.write_to(&mut self.stream) {
                    Ok(n) => {
                        ctx.metrics.bytes_out += n as u64;
                        if n > 0 {
                            self.last_active = ctx.now;
                        }
                    }
                    Err(e) => {
                        log::debug!("conn #{}: write failed: {e}", self.generation);
                        return Verdict::Close;
                    }
                }
            }
            if self.close_after_flush
                && self.output.is_empty()
                && !matches!(self.state, State::Lingering { .. })
                && self.start_lingering(ctx) == Verdict::Close
            {
                return Verdict::Close;
            }
            if self.input_ready && self.can_serve() {
                let mut buffered = std::mem::take(&mut self.input);
                let (used, partial) = self.serve(&buffered, ctx);
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
            if !self.wants_read() {
                return Verdict::Keep;
            }
            match self.stream.read(scratch) {
                Ok(0) => {
                    self.read_closed = true;
                    if matches!(self.state, State::Lingering { .. }) {
                        return Verdict::Close;
                    }
                }
                Ok(n) => {
                    ctx.metrics.bytes_in += n as u64;
                    if self.on_bytes(&scratch[..n], ctx) == Verdict::Close {
                        return Verdict::Close;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return if self.idle_while_draining(ctx) {
                        log::debug!(
                            "conn #{}: closing idle connection for drain",
                            self.generation
                        );
                        Verdict::Close
                    } else {
                        Verdict::Keep
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("conn #{}: read failed: {e}", self.generation);
                    return Verdict::Close;
                }
            }
        }
    }

    /// The connection's deadline has passed.
    pub fn on_timeout(&mut self, ctx: &mut Context, scratch: &mut [u8]) -> Verdict {
        let now = ctx.now;
        let config = &ctx.config;
        match self.state {
            State::Lingering { .. } => return Verdict::Close,
            State::AwaitPreStop {
                head_only,
                keep_alive,
            } => {
                if ctx
                    .lifecycle
                    .prestop_answer_at()
                    .is_some_and(|at| at <= now)
                {
                    self.state = State::Http {
                        head_started: (!self.input.is_empty()).then_some(now),
                    };
                    let mut response = routes::prestop_done(ctx);
                    response.close |= !keep_alive;
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
        self.on_ready(ctx, scratch)
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

    fn can_serve(&self) -> bool {
        matches!(self.state, State::Http { .. })
            && !self.close_after_flush
            && self.output.len() < OUTPUT_HIGH_WATER_BYTES
    }

    fn wants_read(&self) -> bool {
        match self.state {
            State::Http { .. } => self.can_serve(),
            State::AwaitPreStop { .. } => false,
            State::Lingering { .. } => true,
        }
    }

    /// New bytes from the socket.
    fn on_bytes(&mut self, data: &[u8], ctx: &mut Context) -> Verdict {
        match &mut self.state {
            State::Lingering { discarded, .. } => {
                *discarded += data.len();
                if *discarded > LINGER_MAX_BYTES {
                    return Verdict::Close;
                }
            }
            State::Http { head_started } => {
                head_started.get_or_insert(ctx.now);
                if self.input.is_empty() && !self.input_ready {
                    // The common case: whole requests straight from the scratch buffer.
                    let (used, partial) = self.serve(data, ctx);
                    self.keep_input(data[used..].to_vec(), partial);
                } else {
                    self.input.extend_from_slice(data);
                    self.input_ready = true;
                }
            }
            State::AwaitPreStop { .. } => {
                // Not read in this state; kept for when the answer has gone.
                self.input.extend_from_slice(data);
                self.input_ready = true;
            }
        }
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
        while self.can_serve() {
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
        match routes::handle(head, self.side, ctx) {
            Action::Respond(mut response) => {
                response.close |= !keep_alive;
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
                };
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
