//! Layer 4, one connection; uses the application, the protocols, the sockets' `Listener`, the
//! base and the settings. One client connection as a sans-IO state machine: it never touches a
//! socket or a clock. The loop feeds it what happened (bytes read, end of input, bytes written,
//! "now", a deadline passed) and asks it what it needs next ([`Connection::next_io`]: read,
//! wait, shut down the write side, close), what to send ([`Connection::output`]) and when to
//! wake it ([`Connection::next_deadline`]). The same code runs over real sockets in the server
//! and over simulated ones in the simulation (`tests/simulation/`). The HTTP side is in
//! `http.rs`, the WebSocket side in `websocket.rs`, how a connection ends early (the drain, a
//! second signal, a panic) in `ending.rs`.
//!
//! ```text
//! accept ─▶ Http ─(GET /prestop)─▶ AwaitPreStop ─(deadline)─▶ Http
//!            │  ╰─(GET /ws, 101)─▶ WebSocket ─(close handshake done, close frames out)──────────────────▶ gone
//!            │                         ╰─(failure)───────────────────╮
//!            ╰─(answer that closes: error, Connection: close, draining)───┴─▶ Lingering ─(EOF, deadline)─▶ gone
//! ```
//!
//! A WebSocket whose close handshake is done closes its socket as soon as its close frame is
//! out: the client's close frame was its last word, so nothing is left to read and nothing can
//! turn our close into a reset. Lingering (shut down our side, read until EOF) is for a client
//! that may still be sending: an HTTP client mid-request, or a WebSocket client we failed.
//!
//! Reading: the loop reads into its scratch buffer and hands the bytes to
//! [`Connection::on_bytes`], which parses requests (or WebSocket frames) straight from there;
//! only the bytes of an incomplete head or frame are copied into the connection, so an idle
//! connection holds no buffer. The connection stops asking for input while its output is above
//! the high-water mark or a `/prestop` answer is pending, and asks again by itself.
//!
//! Deadlines: a request head must be complete within `HEADER_TIMEOUT` of accept, or of its first
//! byte on a kept-alive connection (progress does not extend it); a kept-alive connection is
//! closed after `IDLE_TIMEOUT` without a request; a client that stops reading its answer is
//! dropped after `IDLE_TIMEOUT` without write progress. A WebSocket client whose output stays
//! above the high-water mark without write progress for `PONG_TIMEOUT` is closed with 1008.

mod ending;
mod http;
mod websocket;

use crate::app::context::Context;
use crate::base::inbuf::InBuf;
use crate::base::outbuf::OutQueue;
use crate::base::time::{Millis, Stamp, after};
use crate::config::LINGER;
use crate::net::Listener;
use websocket::WebSocket;

/// Stop serving pipelined requests or WebSocket frames (and reading) while this much output is
/// queued (or half of `MAX_OUTPUT_BYTES`, if smaller).
pub const OUTPUT_HIGH_WATER_BYTES: usize = 64 * 1024;
/// At most this much is discarded while lingering.
pub const LINGER_MAX_BYTES: usize = 64 * 1024;

/// Keep the connection, or drop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it; its deadline may have changed.
    Keep,
    /// Close it: the loop makes one last attempt to send what is queued (a close frame, an
    /// error answer), then forgets it.
    Close,
}

/// What the connection needs from its socket next, once its queued output has been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextIo {
    /// It served buffered input: write the output, then ask again.
    Continue,
    /// Read: it can take more input now.
    Read,
    /// Not reading for now (output above the high-water mark, a `/prestop` answer pending, a
    /// close frame waiting to be flushed): the socket may fill without the loop looking. The
    /// loop runs the connection again on a writable event or its deadline.
    Paused,
    /// The client has shut down its sending side: nothing more will be read; the connection
    /// stays for its output or its pending `/prestop` answer.
    InputClosed,
    /// Every answer is written and the connection ends: shut down our sending side, then call
    /// [`Connection::on_write_shut`].
    ShutdownWrite,
    /// Drop the connection.
    Close,
}

/// What kind of connection this is, for the loop's open-connection counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Speaking HTTP on the public port.
    Http,
    /// Upgraded to WebSocket on the public port (until it is gone, closing handshake and
    /// lingering included).
    WebSocket,
    /// On the admin port.
    Admin,
}

/// How an HTTP answer that waits (`/prestop`) will be sent.
#[derive(Debug, Clone, Copy)]
struct PendingAnswer {
    /// When it is due: always a finite time.
    at: Millis,
    head_only: bool,
    keep_alive: bool,
    http10: bool,
}

#[derive(Debug)]
enum State {
    /// Reading and answering HTTP requests. `head_started` is when the clock of the current
    /// head started (accept, or its first byte); `None` while idle between requests.
    Http { head_started: Option<Millis> },
    /// A `GET /prestop` waits for the preStop deadline; later requests wait behind it.
    AwaitPreStop(PendingAnswer),
    /// Upgraded: speaking WebSocket.
    WebSocket(WebSocket),
    /// Our side is shut down; reading and discarding until EOF or the deadline.
    Lingering {
        until: Millis,
        discarded: usize,
        upgraded: bool,
    },
}

/// A client connection, without its socket.
#[derive(Debug)]
pub struct Connection {
    /// A number for the logs (the loop's generation counter).
    id: u32,
    state: State,
    /// The listener it came from.
    listener: Listener,
    /// Bytes read but not yet consumed (an incomplete head, or requests waiting behind output).
    input: InBuf,
    /// `input` may hold complete requests not yet served.
    input_ready: bool,
    output: OutQueue,
    /// An answer that closes the connection is queued.
    close_after_flush: bool,
    /// The client shut down its sending side.
    input_closed: bool,
    /// The client has said its last word (its WebSocket close frame): once our output is out,
    /// the socket is closed at once. Lingering is for a client that may still be sending, whose
    /// data would make the kernel answer our close with a reset that can destroy our last reply.
    peer_finished: bool,
    /// Last request completed or write progress.
    last_active: Stamp,
}

impl Connection {
    /// A freshly accepted connection.
    pub fn new(id: u32, listener: Listener, now: Millis) -> Self {
        Connection {
            id,
            state: State::Http {
                head_started: Some(now),
            },
            listener,
            input: InBuf::new(),
            input_ready: false,
            output: OutQueue::new(),
            close_after_flush: false,
            input_closed: false,
            peer_finished: false,
            last_active: Stamp::of(now),
        }
    }

    /// Its number: the loop's generation counter at accept (`conn #N` in the logs).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// What it counts as.
    pub fn kind(&self) -> Kind {
        match (self.listener, &self.state) {
            (Listener::Admin, _) => Kind::Admin,
            (_, State::WebSocket(_)) | (_, State::Lingering { upgraded: true, .. }) => {
                Kind::WebSocket
            }
            _ => Kind::Http,
        }
    }

    /// The output waiting for the socket; the loop writes from it and reports with
    /// [`Connection::on_written`].
    pub fn output(&mut self) -> &mut OutQueue {
        &mut self.output
    }

    /// Bytes of output waiting.
    pub fn output_len(&self) -> usize {
        self.output.len()
    }

    /// Bytes held for this connection: input not yet consumed, output not yet written, and an
    /// unfinished WebSocket message.
    pub fn buffered_bytes(&self) -> usize {
        let fragments = match &self.state {
            State::WebSocket(ws) => ws.session.buffered_bytes(),
            _ => 0,
        };
        self.input.len() + self.output.len() + fragments
    }

    /// When a waiting `/prestop` is answered, if one waits.
    pub fn prestop_answer_at(&self) -> Option<Millis> {
        match self.state {
            State::AwaitPreStop(answer) => Some(answer.at),
            _ => None,
        }
    }

    /// Whether this is a WebSocket whose close frame has not been sent yet.
    pub fn is_open_websocket(&self) -> bool {
        matches!(&self.state, State::WebSocket(ws) if !ws.session.closing())
    }

    /// The kernel took `n` bytes of the output.
    pub fn on_written(&mut self, n: usize, now: Millis) {
        if n > 0 {
            self.last_active = Stamp::of(now);
        }
        if self.output.is_empty()
            && let State::WebSocket(ws) = &mut self.state
        {
            ws.session.on_output_written(now);
        }
    }

    /// When this connection next needs the loop's attention.
    pub fn next_deadline(&self, ctx: &Context) -> Millis {
        let config = &ctx.config;
        match self.state {
            State::Lingering { until, .. } => until,
            State::AwaitPreStop(answer) => answer.at,
            State::WebSocket(ref ws) => self.websocket_deadline(ws, config, ctx.now),
            State::Http { head_started } => match head_started {
                Some(start) if self.output.is_empty() => after(start, config.header_timeout),
                _ => after(self.last_active.at(ctx.now), config.idle_timeout),
            },
        }
    }

    /// Whether the socket is closed as soon as the queued output is written (no lingering):
    /// the loop then sends it as the last data (`last` of [`crate::net::Stream::send`]).
    pub fn closes_after_output(&self) -> bool {
        self.close_after_flush
            && (self.input_closed || self.peer_finished)
            && !matches!(self.state, State::Lingering { .. })
    }

    /// What the connection needs next. It serves buffered requests or frames one batch per
    /// call ([`NextIo::Continue`]), so the loop writes [`Connection::output`] between batches.
    pub fn next_io(&mut self, ctx: &mut Context) -> NextIo {
        if self.close_after_flush
            && self.output.is_empty()
            && !matches!(self.state, State::Lingering { .. })
        {
            return if self.closes_after_output() {
                NextIo::Close
            } else {
                NextIo::ShutdownWrite
            };
        }
        if self.input_ready && self.can_process(ctx) {
            let mut buffered = self.input.take();
            let processed = self.process(&mut buffered, ctx);
            if processed.verdict == Verdict::Close {
                return NextIo::Close;
            }
            buffered.drain(..processed.used);
            self.keep_input(buffered, processed.incomplete);
            return NextIo::Continue;
        }
        if self.input_closed {
            let waiting = matches!(self.state, State::AwaitPreStop(_));
            return if self.output.is_empty() && !waiting {
                NextIo::Close
            } else {
                NextIo::InputClosed
            };
        }
        if self.wants_input(ctx) {
            NextIo::Read
        } else {
            NextIo::Paused
        }
    }

    /// Feeds `bytes` to the connection as the loop would over a socket that takes all output at
    /// once: serves what is buffered, writes it to `sink`, until the connection wants more
    /// input. Returns how it ended, if it did. For tests and fuzzing, which have no socket (the
    /// loop itself does this in `drive`, with real reads and writes).
    pub fn feed(
        &mut self,
        bytes: &mut [u8],
        ctx: &mut Context,
        sink: &mut Vec<u8>,
    ) -> Option<NextIo> {
        if self.on_bytes(bytes, ctx) == Verdict::Close {
            return Some(NextIo::Close);
        }
        loop {
            let n = self.output.write_to(sink).unwrap_or(0);
            self.on_written(n, ctx.now);
            match self.next_io(ctx) {
                NextIo::Continue => {}
                NextIo::Read => return None,
                end => return Some(end),
            }
        }
    }

    /// Our sending side is shut down (after [`NextIo::ShutdownWrite`]): linger, reading and
    /// discarding, so a client still sending gets our answer rather than a reset.
    pub fn on_write_shut(&mut self, now: Millis) {
        let upgraded = self.kind() == Kind::WebSocket;
        self.input.clear();
        self.input_ready = false;
        self.state = State::Lingering {
            until: after(now, LINGER),
            discarded: 0,
            upgraded,
        };
    }

    /// The client shut down its sending side (a read returned 0).
    pub fn on_input_closed(&mut self) -> Verdict {
        self.input_closed = true;
        if matches!(self.state, State::Lingering { .. }) {
            return Verdict::Close;
        }
        Verdict::Keep
    }

    /// The connection's deadline has passed.
    pub fn on_timeout(&mut self, ctx: &mut Context) -> Verdict {
        match self.state {
            State::Lingering { .. } => Verdict::Close,
            State::WebSocket(_) => self.websocket_timeout(ctx),
            State::AwaitPreStop(answer) => {
                self.answer_prestop_if_due(answer, ctx);
                Verdict::Keep
            }
            State::Http { head_started } => self.http_timeout(head_started, ctx),
        }
    }

    /// Whether buffered input may be processed now: in a state that reads requests or frames,
    /// not closing, and with room in the output queue.
    fn can_process(&self, ctx: &Context) -> bool {
        matches!(self.state, State::Http { .. } | State::WebSocket(_))
            && !self.close_after_flush
            && self.output.len() < high_water(&ctx.config)
    }

    /// Whether the connection can take more input now.
    pub fn wants_input(&self, ctx: &Context) -> bool {
        match self.state {
            _ if self.input_closed => false,
            State::Http { .. } | State::WebSocket(_) => self.can_process(ctx),
            State::AwaitPreStop(_) => false,
            State::Lingering { .. } => true,
        }
    }

    /// Processes `buf` according to the state.
    fn process(&mut self, buf: &mut [u8], ctx: &mut Context) -> Processed {
        match &mut self.state {
            State::Http { .. } => self.serve(buf, ctx),
            State::WebSocket(_) => self.process_websocket(buf, ctx),
            State::AwaitPreStop(_) | State::Lingering { .. } => Processed::keep(0, false),
        }
    }

    /// Bytes read from the socket (in the loop's scratch buffer, which they may be changed in:
    /// WebSocket payloads are unmasked in place).
    pub fn on_bytes(&mut self, data: &mut [u8], ctx: &mut Context) -> Verdict {
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
            State::WebSocket(_) | State::AwaitPreStop(_) => {}
        }
        if self.input.is_empty() && !self.input_ready && self.can_process(ctx) {
            // The common case: whole requests or frames straight from the scratch buffer.
            let processed = self.process(data, ctx);
            if processed.verdict == Verdict::Keep {
                self.keep_input(data[processed.used..].to_vec(), processed.incomplete);
            }
            return processed.verdict;
        }
        // An incomplete request head gets a new verdict only when a line ends in it, a byte
        // no head may hold arrives, or it reaches its size limit (as `http::parse` counts it):
        // parsing it again at every read would scan the same bytes each time, quadratic in the
        // head (a 1 MiB head sent a byte at a time cost 95 s).
        let head_unchanged = matches!(self.state, State::Http { .. })
            && !self.input_ready
            && !data.contains(&b'\n')
            && !data.iter().copied().any(never_in_a_head)
            && self.input.len() + data.len() < ctx.config.max_header_bytes;
        self.input.extend(data);
        self.input_ready |= !head_unchanged;
        Verdict::Keep
    }

    /// Keeps unconsumed bytes; `incomplete` means they are an incomplete head or frame (nothing
    /// to serve until more arrives).
    fn keep_input(&mut self, rest: Vec<u8>, incomplete: bool) {
        self.input_ready = !rest.is_empty() && !incomplete;
        // Nothing left: no allocation kept, idle connections hold no buffer.
        self.input.set(rest);
    }
}

/// A control byte other than CR and tab: no request line or header field may hold one, so the
/// head it arrives in is refused (400) at once, not at the header timeout.
fn never_in_a_head(byte: u8) -> bool {
    (byte < 0x20 && byte != b'\r' && byte != b'\t') || byte == 0x7f
}

/// What processing a buffer did.
#[derive(Debug, Clone, Copy)]
pub(super) struct Processed {
    /// Bytes consumed from the front.
    used: usize,
    /// The rest is an incomplete head or frame: nothing to do until more arrives.
    incomplete: bool,
    /// Whether to drop the connection.
    verdict: Verdict,
}

impl Processed {
    pub(super) fn keep(used: usize, incomplete: bool) -> Self {
        Processed {
            used,
            incomplete,
            verdict: Verdict::Keep,
        }
    }
}

/// Output queued above which a connection stops reading.
pub(super) fn high_water(config: &crate::config::Config) -> usize {
    OUTPUT_HIGH_WATER_BYTES.min(config.max_output_bytes / 2)
}
