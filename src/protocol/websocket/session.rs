//! One WebSocket's protocol state (RFC 6455): frames in, with their rules (masking, reserved
//! bits, control frames, fragmentation, UTF-8 checked as text arrives); pings and pongs; the
//! close handshake and its timeout. Complete messages go out to the caller as
//! [`Received::Message`]; what they get is the application's business ([`crate::app::service`]).
//! Sans-IO: bytes and "now" in, bytes queued in an [`OutQueue`] and a [`Flow`] out.

use std::borrow::Cow;
use std::io::Cursor;

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

use crate::base::outbuf::OutQueue;
use crate::base::time::{Millis, NEVER, Stamp, after};
use crate::config::Config;
use crate::protocol::websocket::codec::{unmask, utf8_so_far, write_close, write_frame};
use crate::protocol::websocket::{Flow, Received, SessionEnv};

/// Payload of the server's pings.
const PING_PAYLOAD: &[u8] = b"wsdrain";

/// An unfinished fragmented message.
#[derive(Debug)]
struct Fragments {
    text: bool,
    payload: Vec<u8>,
    /// Bytes of `payload` already known to be valid UTF-8 (text only).
    utf8_checked: usize,
}

/// Where the session is between the handshakes. Every idle connection holds one, so the time
/// it needs rides with it in [`Session::sent_at`] rather than in a field of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Open, no ping outstanding.
    Open,
    /// Open, our ping (sent at `sent_at`) unanswered.
    PingSent,
    /// Our close frame waits behind other output.
    CloseQueued,
    /// Our close frame was written at `sent_at`. `CLOSE_TIMEOUT` counts from the write, so a
    /// client still reading the replies queued ahead of the close is not dropped for being slow
    /// (the connection drops a client that makes no progress at all).
    CloseSent,
}

/// One WebSocket's protocol state, besides its buffers (which the connection holds).
#[derive(Debug)]
pub struct Session {
    fragments: Option<Box<Fragments>>,
    /// Last frame from the client (for the silence before a ping).
    last_input: Stamp,
    /// When our ping or close frame went out (see [`Phase`]).
    sent_at: Stamp,
    /// Payload bytes of the frame still arriving whose UTF-8 is already known to be valid (up
    /// to a character boundary): text is checked as it arrives, not only when its frame ends.
    partial_checked: u32,
    phase: Phase,
}

/// What a frame did.
enum Step {
    /// A control frame, or a fragment: read on.
    Continue,
    /// A whole message in one frame, at `start..end` of the buffer.
    Message {
        text: bool,
        start: usize,
        end: usize,
    },
    /// The last fragment of a message reassembled in `fragments`.
    Reassembled,
    /// The client's close frame began the close handshake (answered).
    ClientClosed,
    /// The client's close frame answered ours.
    CloseAnswered,
    End(Flow),
}

impl Session {
    /// A session that has just been upgraded, at `now`.
    pub fn new(now: Millis) -> Self {
        Session {
            fragments: None,
            last_input: Stamp::of(now),
            sent_at: Stamp::of(now),
            partial_checked: 0,
            phase: Phase::Open,
        }
    }

    /// Bytes of an unfinished fragmented message held for this session.
    pub fn buffered_bytes(&self) -> usize {
        self.fragments.as_ref().map_or(0, |f| f.payload.len())
    }

    /// Whether our close frame is queued or sent (the session only waits for the client's).
    pub fn closing(&self) -> bool {
        matches!(self.phase, Phase::CloseQueued | Phase::CloseSent)
    }

    /// The connection wrote all its output: a queued close frame has gone out now.
    pub fn on_output_written(&mut self, now: Millis) {
        if self.phase == Phase::CloseQueued {
            self.phase = Phase::CloseSent;
            self.sent_at = Stamp::of(now);
        }
    }

    /// When the session next needs the loop (at `now` or later): a ping, a missing pong, a
    /// missing close.
    pub fn next_deadline(&self, config: &Config, now: Millis) -> Millis {
        match self.phase {
            Phase::CloseQueued => NEVER,
            Phase::CloseSent => after(self.sent_at.at(now), config.close_timeout),
            _ if config.ping_interval.is_zero() => NEVER,
            Phase::Open => after(self.last_input.at(now), config.ping_interval),
            Phase::PingSent => after(self.sent_at.at(now), config.pong_timeout),
        }
    }

    /// The session's deadline passed: send a ping, or give up on a client that does not answer
    /// a ping or our close frame.
    pub fn on_timeout(&mut self, out: &mut OutQueue, env: &mut SessionEnv<'_>) -> Flow {
        let now = env.now;
        let config = env.config;
        if now < self.next_deadline(config, now) {
            return Flow::Open;
        }
        match self.phase {
            Phase::CloseQueued => Flow::Open,
            Phase::CloseSent => {
                log::debug!(
                    "conn #{}: websocket: no close frame in CLOSE_TIMEOUT",
                    env.conn
                );
                env.counters.close_timeouts += 1;
                Flow::Drop
            }
            Phase::PingSent => {
                log::debug!("conn #{}: websocket: no pong within PONG_TIMEOUT", env.conn);
                env.counters.ping_timeouts += 1;
                Flow::Drop
            }
            Phase::Open => {
                write_frame(out, OpCode::Control(Control::Ping), PING_PAYLOAD);
                self.phase = Phase::PingSent;
                self.sent_at = Stamp::of(now);
                Flow::Open
            }
        }
    }

    /// Sends our close frame (e.g. 1012 during the drain); the client's close is then awaited
    /// for up to `CLOSE_TIMEOUT` once the frame is written.
    pub fn start_close(
        &mut self,
        code: CloseCode,
        reason: &str,
        out: &mut OutQueue,
        env: &mut SessionEnv<'_>,
    ) {
        if self.closing() {
            return;
        }
        write_close(out, code, reason);
        env.counters.close(code.into(), true);
        self.phase = Phase::CloseQueued;
    }

    /// The client has taken nothing for too long: its close frame is queued for a last attempt
    /// as the connection is dropped, and counted as a drop, not as a close frame sent (it can
    /// rarely get out to a client that does not read).
    pub fn drop_not_reading(&mut self, reason: &str, out: &mut OutQueue, env: &mut SessionEnv<'_>) {
        if !self.closing() {
            write_close(out, CloseCode::Policy, reason);
            self.phase = Phase::CloseQueued;
        }
        env.counters.not_reading_drops += 1;
    }

    /// Fails the connection: a close frame with `code`, then the TCP close.
    pub fn fail(
        &mut self,
        code: CloseCode,
        reason: &str,
        out: &mut OutQueue,
        env: &mut SessionEnv<'_>,
    ) -> Flow {
        let (conn, number) = (env.conn, u16::from(code));
        log::debug!("conn #{conn}: websocket: closing with {number}: {reason}");
        self.start_close(code, reason, out, env);
        Flow::Finish
    }

    /// Reads frames from `buf[*pos..]` (unmasking them in place), answering control frames, until
    /// a whole message is there, the input ends inside a frame, or the WebSocket ends. Moves
    /// `*pos` past what it consumed; on [`Received::End`] the rest of `buf` is to be dropped.
    pub fn receive<'a>(
        &'a mut self,
        buf: &'a mut [u8],
        pos: &mut usize,
        out: &mut OutQueue,
        env: &mut SessionEnv<'_>,
    ) -> Received<'a> {
        let step = loop {
            let rest = &mut buf[*pos..];
            let mut cursor = Cursor::new(&*rest);
            let (header, length) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Received::Wait,
                Err(_) => {
                    break Step::End(self.fail(CloseCode::Protocol, "reserved opcode", out, env));
                }
            };
            let header_len = cursor.position() as usize;
            if let Err((code, reason)) =
                self.check_header(&header, length, env.config.max_message_size)
            {
                break Step::End(self.fail(code, reason, out, env));
            }
            // check_header bounded `length` by MAX_MESSAGE_SIZE, so this cannot overflow.
            let frame_len = header_len + length as usize;
            if rest.len() < frame_len {
                // Wait for the rest of the frame, but fail fast if its text is already invalid.
                if self.partial_text_is_invalid(&header, &rest[header_len..]) {
                    let reason = "invalid UTF-8 in a text message";
                    break Step::End(self.fail(CloseCode::Invalid, reason, out, env));
                }
                return Received::Wait;
            }
            self.partial_checked = 0;
            let payload = &mut rest[header_len..frame_len];
            if let Some(mask) = header.mask {
                unmask(payload, mask);
            }
            let start = *pos + header_len;
            *pos += frame_len;
            self.last_input = Stamp::of(env.now);
            env.counters.frames_in += 1;
            match self.on_frame(header.opcode, header.is_final, payload, out, env) {
                Step::Continue => {}
                Step::Message { text, .. } => {
                    break Step::Message {
                        text,
                        start,
                        end: *pos,
                    };
                }
                step => break step,
            }
        };
        match step {
            Step::Continue => Received::Wait,
            Step::End(flow) => {
                *pos = buf.len();
                Received::End(flow)
            }
            Step::ClientClosed => {
                *pos = buf.len();
                Received::ClientClosed
            }
            Step::CloseAnswered => {
                *pos = buf.len();
                Received::CloseAnswered
            }
            Step::Message { text, start, end } => Received::Message {
                text,
                payload: Cow::Borrowed(&buf[start..end]),
            },
            Step::Reassembled => match self.fragments.take() {
                Some(done) => Received::Message {
                    text: done.text,
                    payload: Cow::Owned(done.payload),
                },
                None => Received::Wait,
            },
        }
    }

    /// Whether the received part of an unfinished text frame (still masked) can no longer be
    /// valid UTF-8. Checks only what arrived since the last call, plus the incomplete character
    /// an earlier fragment may have ended with.
    fn partial_text_is_invalid(&mut self, header: &FrameHeader, available: &[u8]) -> bool {
        let text = match header.opcode {
            OpCode::Data(Data::Text) => true,
            OpCode::Data(Data::Continue) => self.fragments.as_ref().is_some_and(|f| f.text),
            _ => false,
        };
        let start = self.partial_checked as usize;
        let Some(mask) = header.mask.filter(|_| text && available.len() > start) else {
            return false;
        };
        // A character may straddle the previous fragment and this frame.
        let carried: &[u8] = match (&self.fragments, start) {
            (Some(f), 0) if header.opcode == OpCode::Data(Data::Continue) => {
                &f.payload[f.utf8_checked..]
            }
            _ => &[],
        };
        let mut bytes = Vec::with_capacity(carried.len() + available.len() - start);
        bytes.extend_from_slice(carried);
        bytes.extend(
            available[start..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[(start + i) % 4]),
        );
        let valid_up_to = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => return true,
        };
        // The new boundary, in this frame's payload; a character still straddling stays unchecked.
        let advanced = valid_up_to.saturating_sub(carried.len());
        self.partial_checked = u32::try_from(start + advanced).unwrap_or(u32::MAX);
        false
    }

    /// Rules that can be checked from the header alone, before any payload is buffered.
    fn check_header(
        &self,
        header: &FrameHeader,
        length: u64,
        max_message: usize,
    ) -> Result<(), (CloseCode, &'static str)> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err((
                CloseCode::Protocol,
                "reserved bits set (no extension was negotiated)",
            ));
        }
        if header.mask.is_none() {
            return Err((CloseCode::Protocol, "client frames must be masked"));
        }
        if length >> 63 != 0 {
            // RFC 6455 §5.2: a 64-bit length's most significant bit MUST be 0. A malformed
            // header, not a big message.
            return Err((CloseCode::Protocol, "64-bit length with its top bit set"));
        }
        match header.opcode {
            OpCode::Control(_) => {
                if !header.is_final {
                    return Err((CloseCode::Protocol, "fragmented control frame"));
                }
                if length > 125 {
                    return Err((CloseCode::Protocol, "control frame payload over 125 bytes"));
                }
            }
            OpCode::Data(data) => {
                let so_far = self
                    .fragments
                    .as_ref()
                    .map_or(0, |f| f.payload.len() as u64);
                if length > max_message as u64 || so_far + length > max_message as u64 {
                    return Err((CloseCode::Size, "message too big"));
                }
                match (data, &self.fragments) {
                    (Data::Continue, None) => {
                        return Err((CloseCode::Protocol, "continuation frame without a message"));
                    }
                    (Data::Text | Data::Binary, Some(_)) => {
                        return Err((
                            CloseCode::Protocol,
                            "new message before the previous one ended",
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Handles one frame whose payload is unmasked.
    fn on_frame(
        &mut self,
        opcode: OpCode,
        is_final: bool,
        payload: &[u8],
        out: &mut OutQueue,
        env: &mut SessionEnv<'_>,
    ) -> Step {
        let invalid_text = "invalid UTF-8 in a text message";
        match opcode {
            OpCode::Control(Control::Ping) => {
                if !self.closing() {
                    write_frame(out, OpCode::Control(Control::Pong), payload);
                }
                Step::Continue
            }
            OpCode::Control(Control::Pong) => {
                if self.phase == Phase::PingSent {
                    self.phase = Phase::Open;
                }
                Step::Continue
            }
            OpCode::Control(Control::Close) => self.on_close_frame(payload, out, env),
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                Step::End(self.fail(CloseCode::Protocol, "reserved opcode", out, env))
            }
            OpCode::Data(Data::Continue) => {
                let Some(fragments) = self.fragments.as_mut() else {
                    let reason = "continuation frame without a message";
                    return Step::End(self.fail(CloseCode::Protocol, reason, out, env));
                };
                fragments.payload.extend_from_slice(payload);
                if fragments.text
                    && !utf8_so_far(&fragments.payload, &mut fragments.utf8_checked, is_final)
                {
                    return Step::End(self.fail(CloseCode::Invalid, invalid_text, out, env));
                }
                if !is_final {
                    return Step::Continue;
                }
                self.on_message(self.fragments.as_ref().map_or(0, |f| f.payload.len()), env)
                    .unwrap_or(Step::Reassembled)
            }
            OpCode::Data(data) => {
                let text = data == Data::Text;
                if is_final {
                    if text && std::str::from_utf8(payload).is_err() {
                        return Step::End(self.fail(CloseCode::Invalid, invalid_text, out, env));
                    }
                    return self
                        .on_message(payload.len(), env)
                        .unwrap_or(Step::Message {
                            text,
                            start: 0,
                            end: 0,
                        });
                }
                let mut fragments = Box::new(Fragments {
                    text,
                    payload: payload.to_vec(),
                    utf8_checked: 0,
                });
                if text && !utf8_so_far(&fragments.payload, &mut fragments.utf8_checked, false) {
                    return Step::End(self.fail(CloseCode::Invalid, invalid_text, out, env));
                }
                self.fragments = Some(fragments);
                Step::Continue
            }
        }
    }

    /// A whole message of `len` bytes arrived: counted; after our close frame it is not
    /// delivered (nothing may follow the close; the client re-sends it elsewhere), so the step
    /// is [`Step::Continue`]; otherwise `None`, and the caller hands it to the application.
    fn on_message(&mut self, len: usize, env: &mut SessionEnv<'_>) -> Option<Step> {
        env.counters.messages_in += 1;
        env.counters.payload_bytes_in += len as u64;
        if self.closing() {
            env.counters.messages_after_close += 1;
            self.fragments = None;
            return Some(Step::Continue);
        }
        None
    }

    fn on_close_frame(
        &mut self,
        payload: &[u8],
        out: &mut OutQueue,
        env: &mut SessionEnv<'_>,
    ) -> Step {
        let code = match payload {
            [] => None,
            [_] => {
                let reason = "close frame with a 1-byte payload";
                return Step::End(self.fail(CloseCode::Protocol, reason, out, env));
            }
            [hi, lo, reason @ ..] => {
                let code = CloseCode::from(u16::from_be_bytes([*hi, *lo]));
                if !code.is_allowed() {
                    let reason = "invalid close code";
                    return Step::End(self.fail(CloseCode::Protocol, reason, out, env));
                }
                if std::str::from_utf8(reason).is_err() {
                    let reason = "close reason is not UTF-8";
                    return Step::End(self.fail(CloseCode::Invalid, reason, out, env));
                }
                Some(code)
            }
        };
        env.counters.close(code.map_or(1005, u16::from), false);
        env.counters.clean_closes += 1;
        if self.closing() {
            log::debug!("conn #{}: websocket: close handshake complete", env.conn);
            return Step::CloseAnswered;
        }
        // Echo the client's code, as RFC 6455 §5.5.1 asks.
        match code {
            Some(code) => write_close(out, code, ""),
            None => write_frame(out, OpCode::Control(Control::Close), &[]),
        }
        self.phase = Phase::CloseQueued;
        Step::ClientClosed
    }
}
