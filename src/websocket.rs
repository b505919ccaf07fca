//! WebSocket (RFC 6455) on the loop: the upgrade handshake, and a frame layer that works on the
//! loop's read buffer.
//!
//! # Why a frame layer of our own (and not `tungstenite::WebSocket` per connection)
//!
//! Very many sockets per pod is the point of this server, so what an *idle* WebSocket costs is
//! the headline number. `tungstenite::WebSocket` (0.30) allocates its read buffer up front
//! (128 KiB by default, zero-filled) and keeps its write buffer's capacity: even with 4 KiB
//! buffers a connection holds kilobytes while doing nothing. Here the loop owns one read buffer;
//! frames are parsed and unmasked in place there and answered at once. Per connection we keep
//! only [`Session`] (timers and close state, a few dozen bytes), plus, while they exist, the
//! bytes of an incomplete frame and the fragments of an unfinished message. An idle connection
//! therefore holds no buffer at all, which is the only way toward the ≤ 100 B goal.
//!
//! The price is owning the protocol rules that `tungstenite` would otherwise enforce:
//! fragmentation, control frames, UTF-8 validity (checked incrementally, so an invalid fragment
//! fails at once) and the close handshake. We still use `tungstenite`'s public pieces where they
//! fit: [`FrameHeader::parse`] for the header, [`OpCode`] and [`CloseCode`] for their meaning,
//! and [`derive_accept_key`] for the handshake. The Autobahn|Testsuite run in the test command
//! checks the rules.
//!
//! Every failure is answered with a close frame the client can read (1002 protocol error, 1007
//! invalid UTF-8, 1009 too big, 1003 unsupported data, 1008 policy, 1011 internal error), then
//! the TCP connection is closed.

use std::io::Cursor;

use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

use crate::config::Config;
use crate::config::EchoMode;
use crate::context::SessionCtx;
use crate::http::{Head, HttpError, Response};
use crate::lifecycle::Phase;
use crate::outbuf::OutQueue;
use crate::timers::{Millis, NEVER, after};

/// Largest server frame header: 2 bytes, plus 8 for a 64-bit length (no mask).
const MAX_SERVER_HEADER_BYTES: usize = 10;

/// [`Session::close_sent_at`] while our close frame is queued but not yet written.
const CLOSE_QUEUED: Millis = NEVER - 1;

/// Payload of the server's pings.
const PING_PAYLOAD: &[u8] = b"wsdrain";

/// Validates an upgrade request and builds the `101 Switching Protocols` answer, or the error
/// the client gets instead (400 with the reason, 426 for another protocol version, 403 for an
/// Origin not in `ALLOWED_ORIGINS`, 503 while draining).
pub fn handshake(
    head: &Head<'_>,
    phase: Phase,
    allowed_origins: &[String],
) -> Result<Response, Response> {
    let bad = |reason| {
        Err(Response::error(HttpError {
            status: 400,
            reason,
        }))
    };
    if head.version != 1 {
        return bad("a WebSocket upgrade needs HTTP/1.1");
    }
    if !head.has_token("upgrade", "websocket") {
        return bad("expected Upgrade: websocket");
    }
    if !head.has_token("connection", "upgrade") {
        return bad("expected Connection: Upgrade");
    }
    // Each is a single value (RFC 6455 §4.2.1, §11.3.1): a second field is not one to pick from.
    if head.count("sec-websocket-key") > 1 {
        return bad("more than one Sec-WebSocket-Key");
    }
    if head.count("sec-websocket-version") > 1 {
        return bad("more than one Sec-WebSocket-Version");
    }
    if head.header("sec-websocket-version") != Some("13") {
        return Err(Response::error(HttpError {
            status: 426,
            reason: "only WebSocket version 13 is supported",
        })
        .header("Sec-WebSocket-Version", "13"));
    }
    let Some(key) = head.header("sec-websocket-key").filter(|k| valid_key(k)) else {
        return bad("missing or invalid Sec-WebSocket-Key");
    };
    // Cross-site WebSocket hijacking: a browser always sends the page's Origin; clients that
    // are not browsers may send none, and are not what this check protects against.
    if let Some(origin) = head.header("origin")
        && !allowed_origins.is_empty()
        && !allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
    {
        return Err(Response::error(HttpError {
            status: 403,
            reason: "this Origin may not open a WebSocket here",
        }));
    }
    if phase == Phase::Draining {
        let mut r = Response::error(HttpError {
            status: 503,
            reason: "this instance is shutting down; reconnect",
        });
        r.close = true;
        return Err(r.header("Retry-After", "1"));
    }
    // No extension is negotiated (permessage-deflate is not offered) and no subprotocol chosen.
    Ok(Response::empty(101)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", derive_accept_key(key.as_bytes())))
}

/// A key is the base64 encoding of 16 bytes: 22 significant characters and `==`.
fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && b.ends_with(b"==")
        && b[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

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

/// An unfinished fragmented message.
#[derive(Debug)]
struct Fragments {
    text: bool,
    payload: Vec<u8>,
    /// Bytes of `payload` already known to be valid UTF-8 (text only).
    utf8_checked: usize,
}

/// One WebSocket's protocol state, besides its buffers (which the connection holds).
#[derive(Debug)]
pub struct Session {
    fragments: Option<Box<Fragments>>,
    /// Last frame from the client (for the silence before a ping).
    last_input: Millis,
    /// When our unanswered ping went out ([`NEVER`] if none is outstanding).
    ping_sent_at: Millis,
    /// Next alive message ([`NEVER`] when they are off).
    next_alive: Millis,
    /// When our close frame was written to the socket: [`NEVER`] while open, [`CLOSE_QUEUED`]
    /// while it waits behind other output. `CLOSE_TIMEOUT` counts from the write, so a client
    /// still reading the replies queued ahead of the close is not dropped for being slow (the
    /// connection drops a client that makes no progress at all).
    close_sent_at: Millis,
    /// When this WebSocket is closed with 1012: its maximum age, or its turn in the drain
    /// ([`NEVER`] for neither).
    restart_at: Millis,
    /// Payload bytes of the frame still arriving whose UTF-8 is already known to be valid (up
    /// to a character boundary): text is checked as it arrives, not only when its frame ends.
    partial_checked: u32,
}

impl Session {
    /// A session that has just been upgraded. The first alive message is at a random point of
    /// the first interval, so clients that connected together do not all get theirs in one tick.
    pub fn new(ctx: &mut SessionCtx<'_>) -> Self {
        let interval = ctx.config.alive_interval.as_millis() as u64;
        let next_alive = if interval == 0 {
            NEVER
        } else {
            ctx.now + 1 + ctx.rng.below(interval)
        };
        // Spread over the last tenth of the age, so clients that connected together (after the
        // previous rollout) do not all reconnect at once.
        let age = ctx.config.max_connection_age.as_millis() as u64;
        let restart_at = if age == 0 {
            NEVER
        } else {
            ctx.now + age - ctx.rng.below(age / 10 + 1)
        };
        Session {
            fragments: None,
            last_input: ctx.now,
            ping_sent_at: NEVER,
            next_alive,
            close_sent_at: NEVER,
            restart_at,
            partial_checked: 0,
        }
    }

    /// Bytes of an unfinished fragmented message held for this session.
    pub fn buffered_bytes(&self) -> usize {
        self.fragments.as_ref().map_or(0, |f| f.payload.len())
    }

    /// Whether our close frame is queued or sent (the session only waits for the client's).
    pub fn closing(&self) -> bool {
        self.close_sent_at != NEVER
    }

    /// The connection wrote all its output: a queued close frame has gone out now.
    pub fn on_output_written(&mut self, now: Millis) {
        if self.close_sent_at == CLOSE_QUEUED {
            self.close_sent_at = now;
        }
    }

    /// When the session next needs the loop.
    pub fn next_deadline(&self, config: &Config) -> Millis {
        if self.closing() {
            return match self.close_sent_at {
                CLOSE_QUEUED => NEVER,
                sent => after(sent, config.close_timeout),
            };
        }
        let liveness = if config.ping_interval.is_zero() {
            NEVER
        } else if self.ping_sent_at == NEVER {
            after(self.last_input, config.ping_interval)
        } else {
            after(self.ping_sent_at, config.pong_timeout)
        };
        liveness.min(self.next_alive).min(self.restart_at)
    }

    /// The drain has begun: close this WebSocket with 1012 at `at`.
    pub fn schedule_drain(&mut self, at: Millis) {
        self.restart_at = self.restart_at.min(at);
    }

    /// The session's deadline passed: send an alive message or a ping, or give up on a client
    /// that does not answer.
    pub fn on_timeout(&mut self, out: &mut OutQueue, ctx: &mut SessionCtx<'_>) -> Flow {
        let now = ctx.now;
        let config = ctx.config;
        if self.closing() {
            if self.close_sent_at != CLOSE_QUEUED
                && now >= after(self.close_sent_at, config.close_timeout)
            {
                log::debug!("websocket: no close frame from the client within the close timeout");
                ctx.metrics.ws_close_timeouts += 1;
                return Flow::Drop;
            }
            return Flow::Open;
        }
        if now >= self.restart_at {
            // Replies already queued go out first: the close frame is queued behind them.
            if ctx.lifecycle.phase() == Phase::Draining {
                self.start_close(CloseCode::Restart, "server restarting; reconnect", out, ctx);
                ctx.lifecycle.record_drain_close(now);
            } else {
                self.start_close(
                    CloseCode::Restart,
                    "connection age limit; reconnect",
                    out,
                    ctx,
                );
                ctx.metrics.ws_age_closes += 1;
            }
            return Flow::Open;
        }
        if self.ping_sent_at != NEVER && now >= after(self.ping_sent_at, config.pong_timeout) {
            log::debug!(
                "websocket: no pong within {:?}; dropping",
                config.pong_timeout
            );
            ctx.metrics.ws_ping_timeouts += 1;
            return Flow::Drop;
        }
        if !config.ping_interval.is_zero()
            && self.ping_sent_at == NEVER
            && now >= after(self.last_input, config.ping_interval)
        {
            write_frame(out, OpCode::Control(Control::Ping), PING_PAYLOAD);
            self.ping_sent_at = now;
        }
        if now >= self.next_alive {
            let interval = config.alive_interval.as_millis() as u64;
            // Skipped while output is pending: a client that is behind needs no more of them.
            if out.is_empty() {
                self.send_alive(out, ctx);
            }
            self.next_alive = if now >= self.next_alive + interval {
                now + interval // fell behind (e.g. a stalled loop): re-anchor
            } else {
                self.next_alive + interval
            };
        }
        Flow::Open
    }

    fn send_alive(&mut self, out: &mut OutQueue, ctx: &mut SessionCtx<'_>) {
        let text = format!(
            "{{\"type\":\"alive\",\"instance\":{},\"phase\":\"{}\",\"interval_ms\":{},\"uptime_ms\":{}}}",
            ctx.instance_json,
            ctx.lifecycle.phase().as_str(),
            ctx.config.alive_interval.as_millis(),
            ctx.now
        );
        write_frame(out, OpCode::Data(Data::Text), text.as_bytes());
        ctx.metrics.ws_alive_sent += 1;
    }

    /// Sends our close frame (e.g. 1012 during the drain); the client's close is then awaited
    /// for up to `CLOSE_TIMEOUT`.
    pub fn start_close(
        &mut self,
        code: CloseCode,
        reason: &str,
        out: &mut OutQueue,
        ctx: &mut SessionCtx<'_>,
    ) {
        if self.closing() {
            return;
        }
        write_close(out, code, reason);
        ctx.metrics.ws_close(code.into(), true);
        self.close_sent_at = CLOSE_QUEUED;
    }

    /// Consumes the complete frames at the start of `buf` (unmasking them in place) and queues
    /// the answers. Stops early when `out` reaches `high_water` (the caller stops reading until
    /// it drains). Returns the bytes consumed and what to do next; the caller keeps the rest.
    pub fn on_input(
        &mut self,
        buf: &mut [u8],
        out: &mut OutQueue,
        high_water: usize,
        ctx: &mut SessionCtx<'_>,
    ) -> (usize, Flow) {
        let mut pos = 0;
        while out.len() < high_water {
            let rest = &mut buf[pos..];
            let mut cursor = Cursor::new(&*rest);
            let (header, length) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => break,
                Err(_) => {
                    return (
                        buf.len(),
                        self.fail(CloseCode::Protocol, "reserved opcode", out, ctx),
                    );
                }
            };
            let header_len = cursor.position() as usize;
            if let Err((code, reason)) =
                self.check_header(&header, length, ctx.config.max_message_size)
            {
                return (buf.len(), self.fail(code, reason, out, ctx));
            }
            // check_header bounded `length` by MAX_MESSAGE_SIZE, so this cannot overflow.
            let frame_len = header_len + length as usize;
            if rest.len() < frame_len {
                // Wait for the rest of the frame, but fail fast if its text is already invalid.
                if self.partial_text_is_invalid(&header, &rest[header_len..]) {
                    let flow = self.fail(
                        CloseCode::Invalid,
                        "invalid UTF-8 in a text message",
                        out,
                        ctx,
                    );
                    return (buf.len(), flow);
                }
                break;
            }
            self.partial_checked = 0;
            let payload = &mut rest[header_len..frame_len];
            if let Some(mask) = header.mask {
                unmask(payload, mask);
            }
            pos += frame_len;
            self.last_input = ctx.now;
            ctx.metrics.ws_frames_in += 1;
            let flow = self.on_frame(header.opcode, header.is_final, payload, out, ctx);
            if flow != Flow::Open {
                return (buf.len(), flow);
            }
        }
        (pos, Flow::Open)
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

    fn on_frame(
        &mut self,
        opcode: OpCode,
        is_final: bool,
        payload: &[u8],
        out: &mut OutQueue,
        ctx: &mut SessionCtx<'_>,
    ) -> Flow {
        match opcode {
            OpCode::Control(Control::Ping) => {
                if !self.closing() {
                    write_frame(out, OpCode::Control(Control::Pong), payload);
                }
                Flow::Open
            }
            OpCode::Control(Control::Pong) => {
                self.ping_sent_at = NEVER;
                Flow::Open
            }
            OpCode::Control(Control::Close) => self.on_close_frame(payload, out, ctx),
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                self.fail(CloseCode::Protocol, "reserved opcode", out, ctx)
            }
            OpCode::Data(Data::Continue) => {
                let Some(fragments) = self.fragments.as_mut() else {
                    return self.fail(
                        CloseCode::Protocol,
                        "continuation frame without a message",
                        out,
                        ctx,
                    );
                };
                fragments.payload.extend_from_slice(payload);
                if fragments.text && !utf8_so_far(fragments, is_final) {
                    return self.fail(
                        CloseCode::Invalid,
                        "invalid UTF-8 in a text message",
                        out,
                        ctx,
                    );
                }
                if !is_final {
                    return Flow::Open;
                }
                let Some(done) = self.fragments.take() else {
                    return Flow::Open;
                };
                self.on_message(done.text, &done.payload, out, ctx)
            }
            OpCode::Data(data) => {
                let text = data == Data::Text;
                if is_final {
                    if text && std::str::from_utf8(payload).is_err() {
                        return self.fail(
                            CloseCode::Invalid,
                            "invalid UTF-8 in a text message",
                            out,
                            ctx,
                        );
                    }
                    return self.on_message(text, payload, out, ctx);
                }
                let mut fragments = Box::new(Fragments {
                    text,
                    payload: payload.to_vec(),
                    utf8_checked: 0,
                });
                if text && !utf8_so_far(&mut fragments, false) {
                    return self.fail(
                        CloseCode::Invalid,
                        "invalid UTF-8 in a text message",
                        out,
                        ctx,
                    );
                }
                self.fragments = Some(fragments);
                Flow::Open
            }
        }
    }

    /// A whole message arrived: answer it.
    fn on_message(
        &mut self,
        text: bool,
        payload: &[u8],
        out: &mut OutQueue,
        ctx: &mut SessionCtx<'_>,
    ) -> Flow {
        ctx.metrics.ws_messages_in += 1;
        ctx.metrics.ws_payload_bytes_in += payload.len() as u64;
        ctx.fault.check(payload);
        if self.closing() {
            // Our close frame has gone out; nothing may follow it. The client re-sends elsewhere.
            ctx.metrics.ws_messages_after_close += 1;
            return Flow::Open;
        }

        match (ctx.config.echo_mode, text) {
            (EchoMode::Reverse, true) => {
                write_header(out, OpCode::Data(Data::Text), payload.len(), |v| {
                    reverse_scalars(payload, v);
                });
            }
            (EchoMode::Reverse, false) => {
                return self.fail(
                    CloseCode::Unsupported,
                    "binary messages are not accepted",
                    out,
                    ctx,
                );
            }
            (EchoMode::Echo, text) => {
                let opcode = OpCode::Data(if text { Data::Text } else { Data::Binary });
                write_frame(out, opcode, payload);
            }
        }
        ctx.metrics.ws_messages_out += 1;
        ctx.metrics.ws_payload_bytes_out += payload.len() as u64;
        // MAX_OUTPUT_BYTES counts payload: a frame header on top of it is allowed, so a reply
        // of the largest message fits a cap of the same size (Autobahn 9.1.6: 16 MiB and 16 MiB).
        if out.len() > ctx.config.max_output_bytes + MAX_SERVER_HEADER_BYTES {
            return self.fail(
                CloseCode::Policy,
                "too much output queued: the client is not reading",
                out,
                ctx,
            );
        }
        Flow::Open
    }

    fn on_close_frame(
        &mut self,
        payload: &[u8],
        out: &mut OutQueue,
        ctx: &mut SessionCtx<'_>,
    ) -> Flow {
        let code = match payload {
            [] => None,
            [_] => {
                return self.fail(
                    CloseCode::Protocol,
                    "close frame with a 1-byte payload",
                    out,
                    ctx,
                );
            }
            [hi, lo, reason @ ..] => {
                let code = CloseCode::from(u16::from_be_bytes([*hi, *lo]));
                if !code.is_allowed() {
                    return self.fail(CloseCode::Protocol, "invalid close code", out, ctx);
                }
                if std::str::from_utf8(reason).is_err() {
                    return self.fail(CloseCode::Invalid, "close reason is not UTF-8", out, ctx);
                }
                Some(code)
            }
        };
        ctx.metrics.ws_close(code.map_or(1005, u16::from), false);
        ctx.metrics.ws_clean_closes += 1;
        if self.closing() {
            log::debug!("websocket: close handshake complete");
        } else {
            // Echo the client's code, as RFC 6455 §5.5.1 asks.
            match code {
                Some(code) => write_close(out, code, ""),
                None => write_frame(out, OpCode::Control(Control::Close), &[]),
            }
            self.close_sent_at = CLOSE_QUEUED;
        }
        Flow::Finish
    }

    /// Fails the connection: a close frame with `code`, then the TCP close.
    fn fail(
        &mut self,
        code: CloseCode,
        reason: &str,
        out: &mut OutQueue,
        ctx: &mut SessionCtx<'_>,
    ) -> Flow {
        log::debug!("websocket: closing with {}: {reason}", u16::from(code));
        self.start_close(code, reason, out, ctx);
        Flow::Finish
    }
}

/// Checks the UTF-8 of a growing text message: valid so far, allowing an incomplete character
/// at the end unless the message is complete. Resumes where the last check stopped.
fn utf8_so_far(fragments: &mut Fragments, is_final: bool) -> bool {
    match std::str::from_utf8(&fragments.payload[fragments.utf8_checked..]) {
        Ok(_) => {
            fragments.utf8_checked = fragments.payload.len();
            true
        }
        Err(e) if e.error_len().is_none() && !is_final => {
            fragments.utf8_checked += e.valid_up_to();
            true
        }
        Err(_) => false,
    }
}

/// Appends `text` (UTF-8, validated by the caller) reversed by Unicode scalar values: each
/// character's bytes move as a unit. Works on bytes, without decoding, and never panics even on
/// invalid input (a stray byte is moved alone).
pub fn reverse_scalars(text: &[u8], out: &mut Vec<u8>) {
    if text.is_ascii() {
        out.extend(text.iter().rev());
        return;
    }
    let n = text.len();
    let start = out.len();
    out.resize(start + n, 0);
    let dst = &mut out[start..];
    let mut i = 0;
    while i < n {
        let len = match text[i] {
            0xf0..=0xf7 => 4,
            0xe0..=0xef => 3,
            0xc0..=0xdf => 2,
            _ => 1,
        }
        .min(n - i);
        let end = n - i;
        dst[end - len..end].copy_from_slice(&text[i..i + len]);
        i += len;
    }
}

/// XORs a client payload with its mask, eight bytes at a time.
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// Queues an unmasked server frame whose payload `fill` writes (exactly `len` bytes).
fn write_header(out: &mut OutQueue, opcode: OpCode, len: usize, fill: impl FnOnce(&mut Vec<u8>)) {
    out.extend_with(MAX_SERVER_HEADER_BYTES + len, |v| {
        v.push(0x80 | u8::from(opcode));
        match len {
            0..=125 => v.push(len as u8),
            126..=0xffff => {
                v.push(126);
                v.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                v.push(127);
                v.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        fill(v);
    });
}

/// Queues an unmasked server frame.
pub fn write_frame(out: &mut OutQueue, opcode: OpCode, payload: &[u8]) {
    write_header(out, opcode, payload.len(), |v| v.extend_from_slice(payload));
}

/// Queues a close frame; the reason is cut to fit the 125-byte control payload.
pub fn write_close(out: &mut OutQueue, code: CloseCode, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    write_header(
        out,
        OpCode::Control(Control::Close),
        2 + reason.len(),
        |v| {
            v.extend_from_slice(&u16::from(code).to_be_bytes());
            v.extend_from_slice(reason);
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_scalars_matches_chars_rev() {
        for text in [
            "",
            "a",
            "abc",
            "héllo",
            "😀 ñ 中文",
            "a\u{301}b",
            "€€",
            "x😀",
        ] {
            let mut out = Vec::new();
            reverse_scalars(text.as_bytes(), &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                text.chars().rev().collect::<String>()
            );
        }
        let mut out = Vec::new();
        reverse_scalars(&[0xff, 0xe2, 0x82], &mut out); // invalid: must not panic
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn unmask_matches_the_byte_by_byte_definition() {
        let mask = [1, 2, 3, 250];
        for len in [0, 1, 7, 8, 9, 31, 64, 100] {
            let original: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut fast = original.clone();
            unmask(&mut fast, mask);
            let slow: Vec<u8> = original
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(fast, slow, "len {len}");
        }
    }

    #[test]
    fn server_frame_lengths() {
        for (len, header) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut out = OutQueue::new();
            write_frame(&mut out, OpCode::Data(Data::Binary), &vec![0; len]);
            let bytes = out.to_vec();
            assert_eq!(bytes.len(), header + len, "len {len}");
            let mut cursor = Cursor::new(&bytes[..]);
            let (parsed, parsed_len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert_eq!(
                (parsed_len, parsed.is_final, parsed.mask),
                (len as u64, true, None)
            );
        }
    }

    #[test]
    fn close_reason_is_cut_on_a_character_boundary() {
        let mut out = OutQueue::new();
        write_close(&mut out, CloseCode::Restart, &"é".repeat(100));
        let bytes = out.to_vec();
        assert_eq!(bytes[1] as usize, bytes.len() - 2);
        assert!(bytes.len() - 2 <= 125);
        assert_eq!(u16::from_be_bytes([bytes[2], bytes[3]]), 1012);
        assert!(std::str::from_utf8(&bytes[4..]).is_ok());
    }

    #[test]
    fn age_closes_spread_over_the_last_tenth() {
        let Ok(crate::config::Command::Run(config)) = Config::parse(Vec::<String>::new(), |name| {
            (name == "MAX_CONNECTION_AGE").then(|| "100s".to_string())
        }) else {
            panic!("config")
        };
        let mut metrics = crate::metrics::Metrics::default();
        let mut lifecycle = crate::lifecycle::Lifecycle::new();
        let mut rng = crate::timers::Rng::seeded(3);
        let fault = crate::context::FaultTrigger::default();
        let mut ctx = SessionCtx {
            now: 1_000,
            config: &config,
            metrics: &mut metrics,
            lifecycle: &mut lifecycle,
            rng: &mut rng,
            instance_json: "\"t\"",
            fault: &fault,
        };
        let mut per_tenth = [0u32; 10];
        for _ in 0..2_000 {
            let at = Session::new(&mut ctx).restart_at - 1_000;
            assert!((90_000..=100_000).contains(&at), "{at}");
            per_tenth[((at - 90_000) / 1_000).min(9) as usize] += 1;
        }
        // Uniform over the last tenth of the age: about 200 in each hundredth.
        assert!(
            per_tenth.iter().all(|&n| (120..=280).contains(&n)),
            "{per_tenth:?}"
        );
    }

    #[test]
    fn keys() {
        assert!(valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        for bad in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25j!Q==",
        ] {
            assert!(!valid_key(bad), "{bad}");
        }
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn utf8_is_checked_across_fragment_boundaries() {
        let euro = "€".as_bytes(); // 3 bytes
        let mut f = Fragments {
            text: true,
            payload: euro[..1].to_vec(),
            utf8_checked: 0,
        };
        assert!(utf8_so_far(&mut f, false));
        f.payload.extend_from_slice(&euro[1..]);
        assert!(utf8_so_far(&mut f, false));
        assert_eq!(f.utf8_checked, 3);
        f.payload.push(0xff);
        assert!(
            !utf8_so_far(&mut f, false),
            "fails fast on a byte that can never be valid"
        );
        let mut f = Fragments {
            text: true,
            payload: euro[..2].to_vec(),
            utf8_checked: 0,
        };
        assert!(
            !utf8_so_far(&mut f, true),
            "an incomplete character at the end of the message"
        );
    }
}
