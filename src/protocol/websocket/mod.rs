//! WebSocket (RFC 6455), in three pieces a reader can take one at a time: [`handshake`](mod@handshake) (the
//! upgrade), `codec` (frames out, payloads in) and [`session`] (one WebSocket's protocol
//! state). What a message gets is not here: that is the application's ([`crate::app::service`]).
//!
//! # Why a frame layer of our own (and not `tungstenite::WebSocket` per connection)
//!
//! Very many sockets per pod is the point of this server, so what an *idle* WebSocket costs is
//! the headline number. `tungstenite::WebSocket` (0.30) allocates its read buffer up front
//! (128 KiB by default, zero-filled) and keeps its write buffer's capacity: even with 4 KiB
//! buffers a connection holds kilobytes while doing nothing. Here the loop owns one read buffer;
//! frames are parsed and unmasked in place there and answered at once. Per connection we keep
//! only a [`Session`] (timers and close state, a few dozen bytes), plus, while they exist, the
//! bytes of an incomplete frame and the fragments of an unfinished message. An idle connection
//! therefore holds no buffer at all: with its 32-bit times, that is what brings it under 100 B
//! of server memory (93 B at N = 10,000, `benches/RESULTS.md`).
//!
//! The price is owning the protocol rules that `tungstenite` would otherwise enforce:
//! fragmentation, control frames, UTF-8 validity (checked incrementally, so an invalid fragment
//! fails at once) and the close handshake. We still use `tungstenite`'s public pieces where they
//! fit: `FrameHeader::parse` for the header, `OpCode` and `CloseCode` for their meaning, and
//! `derive_accept_key` for the handshake. The Autobahn|Testsuite run in the test command
//! checks the rules.
//!
//! Every failure is answered with a close frame the client can read (1002 protocol error, 1007
//! invalid UTF-8, 1009 too big, 1003 unsupported data, 1008 policy, 1011 internal error), then
//! the TCP connection is closed.

pub(crate) mod codec;
pub mod handshake;
pub mod session;

pub use handshake::handshake;
pub use session::Session;

use std::borrow::Cow;

use crate::base::time::Millis;
use crate::config::Config;

/// What the connection should do after the session has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Open,
    /// The WebSocket is over: send what is queued (the close frame last), then close the TCP
    /// connection.
    Finish,
    /// Close the TCP connection now (the peer is gone or will not answer).
    Drop,
}

/// What [`Session::receive`] found.
#[derive(Debug)]
pub enum Received<'a> {
    /// A whole message, for the application (text is valid UTF-8). Borrowed from the read
    /// buffer when it came in one frame; owned when it was reassembled from fragments.
    Message {
        /// Text (or binary).
        text: bool,
        /// Its payload, unmasked.
        payload: Cow<'a, [u8]>,
    },
    /// Nothing more until more bytes arrive.
    Wait,
    /// The WebSocket is over: a failure answered with a close frame (the client may still be
    /// sending), or the peer is gone.
    End(Flow),
    /// The client began the close handshake; its close frame is answered, and the WebSocket is
    /// over as with `End(Flow::Finish)`. Nothing more may come from the client.
    ClientClosed,
    /// The client answered our close frame: the close handshake is complete, and the WebSocket
    /// is over as with `End(Flow::Finish)`. Nothing more may come from the client.
    CloseAnswered,
}

/// What a session may use besides its own state: the loop's "now", the settings, its counters.
#[derive(Debug)]
pub struct SessionEnv<'a> {
    /// The connection's number, for its log lines.
    pub conn: u32,
    /// Loop time of the current iteration.
    pub now: Millis,
    /// Validated settings.
    pub config: &'a Config,
    /// The WebSocket counters.
    pub counters: &'a mut WsCounters,
}

/// The WebSocket counters: the session counts what arrives and how handshakes end, the
/// application what it sends.
#[derive(Debug, Default, Clone)]
pub struct WsCounters {
    /// Successful upgrades.
    pub upgrades: u64,
    /// Frames received (all opcodes).
    pub frames_in: u64,
    /// Messages received (after reassembly).
    pub messages_in: u64,
    /// Replies sent.
    pub messages_out: u64,
    /// Payload bytes of messages received.
    pub payload_bytes_in: u64,
    /// Payload bytes of replies sent.
    pub payload_bytes_out: u64,
    /// Messages that arrived after our close frame and could not be answered.
    pub messages_after_close: u64,
    /// Alive messages sent.
    pub alive_sent: u64,
    /// Alive turns that came more than one interval late (the loop fell behind), whether the
    /// message then went out or was skipped for a client with output pending.
    pub alive_late: u64,
    /// Close handshakes completed (both close frames exchanged).
    pub clean_closes: u64,
    /// Our close frame went unanswered for `CLOSE_TIMEOUT`.
    pub close_timeouts: u64,
    /// Clients dropped for not answering a ping.
    pub ping_timeouts: u64,
    /// Clients dropped for taking nothing for `PONG_TIMEOUT` while output waited for them: the
    /// close 1008 is attempted on the way out, not counted as a close frame sent.
    pub not_reading_drops: u64,
    /// WebSockets that reached `MAX_CONNECTION_AGE` (told to move, or closed with 1012).
    pub age_closes: u64,
    /// Goaway notices sent.
    pub handover_notices: u64,
    /// Clients that closed their WebSocket themselves after a goaway notice.
    pub handover_left: u64,
    /// WebSockets closed with 1012 once `HANDOVER_TIMEOUT` passed after their notice.
    pub handover_forced: u64,
    /// Close frames by code and sender: `(code, sent_by_server, count)`.
    closes: Vec<(u16, bool, u64)>,
}

impl WsCounters {
    /// Counts a close frame: sent by the server, or received from the client.
    pub fn close(&mut self, code: u16, by_server: bool) {
        // Clients choose codes 3000-4999 freely: one series per range, not one per code, so a
        // client cannot grow /metrics by 2,000 series.
        let code = if code >= 3000 {
            code / 1000 * 1000
        } else {
            code
        };
        match self
            .closes
            .iter_mut()
            .find(|(c, s, _)| *c == code && *s == by_server)
        {
            Some((_, _, n)) => *n += 1,
            None => {
                self.closes.push((code, by_server, 1));
                self.closes.sort_unstable();
            }
        }
    }

    /// Close frames counted so far with this code and sender (3000 and 4000 stand for their
    /// whole range).
    pub fn closes(&self, code: u16, by_server: bool) -> u64 {
        self.closes
            .iter()
            .find(|(c, s, _)| *c == code && *s == by_server)
            .map_or(0, |(_, _, n)| *n)
    }

    /// Every close series: `(code, sent_by_server, count)`, in order.
    pub fn close_series(&self) -> &[(u16, bool, u64)] {
        &self.closes
    }
}
