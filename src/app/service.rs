//! What this server does on a WebSocket: the part to replace to build your own service on this
//! skeleton. The protocol ([`crate::protocol::websocket`]) hands over whole messages and asks for
//! nothing else; this module decides what a message gets (the text reversed by Unicode scalar
//! values, or the same bytes in echo mode), what the server says of its own (a hello on connect,
//! an alive message every `ALIVE_INTERVAL`), and when a WebSocket is asked to go: at its turn in
//! the drain, or at `MAX_CONNECTION_AGE`.
//!
//! Asking a client to go is a handover, like HTTP/2's GOAWAY: first a goaway notice, while the
//! socket keeps being served, so the client can open its next connection (on another pod) and
//! let this one finish its replies; if the client has not closed it after `HANDOVER_TIMEOUT`,
//! close 1012. With `HANDOVER_TIMEOUT=0`, close 1012 at once.
//!
//! Every message the server sends of its own is an alive message (`"type":"alive"`); the hello
//! and the notice say which they are in `"event"`. A client that knows only alive messages thus
//! never takes one for a reply (its replies are matched first-in, first-out), and reads the
//! notice as one more alive message until the close 1012 comes, as before. In echo mode (for
//! conformance suites, which expect nothing but their echoes) there is no hello and no notice.
//!
//! To build another service: keep the signatures of [`Service`] (open, on_message, on_timeout,
//! on_client_close, next_deadline, schedule_drain) and change their bodies; state your service
//! keeps per WebSocket goes in the struct (keep it small: it is paid for by every idle
//! connection), state it shares goes in [`Context`]. Persisting state before the drain
//! disconnects anyone is the drain's step 2 (`finish_in_flight_work` in `src/server/drain.rs`).

use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};

use crate::app::context::Context;
use crate::app::lifecycle::Phase;
use crate::base::outbuf::OutQueue;
use crate::base::time::{Due, Millis, NEVER};
use crate::config::{Config, EchoMode};
use crate::protocol::websocket::codec::{frame_into, write_frame, write_header};

/// A close the service asks for: its code and the reason the client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// The close code (1012 to send the client elsewhere, 1003 for data the service refuses).
    pub code: CloseCode,
    /// Why, for the client.
    pub reason: &'static str,
}

/// This service's state for one WebSocket: two 32-bit deadlines and a tag, since every idle
/// connection holds one.
#[derive(Debug)]
pub struct Service {
    /// Next alive message (unused when they are off).
    next_alive: Due,
    /// When this WebSocket is asked to go, and whether it has been already.
    goodbye: Goodbye,
}

/// When a WebSocket is asked to go: its turn in the drain, or its maximum age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goodbye {
    /// Not asked to go.
    None,
    /// The goaway notice (or the close, without handover) is due then.
    Due(Due),
    /// The notice went out; the close is due then.
    Noticed(Due),
}

impl Goodbye {
    fn at(self, now: Millis) -> Millis {
        match self {
            Goodbye::None => NEVER,
            Goodbye::Due(at) | Goodbye::Noticed(at) => at.at(now),
        }
    }

    fn notice_sent(self) -> bool {
        matches!(self, Goodbye::Noticed(_))
    }
}

impl Service {
    /// A WebSocket has just been opened (`id`: its connection's accept number): queue the
    /// hello. Its first alive message comes within the first interval, at its block's point of
    /// the grid (`first_alive`), so clients that connected together do not all get theirs in
    /// one tick; its age limit (if any) is spread over the last tenth of the age, so clients
    /// that connected together (after the previous rollout) do not all reconnect at once.
    pub fn open(out: &mut OutQueue, ctx: &mut Context, id: u32) -> Self {
        let interval = alive_interval_ms(&ctx.config);
        let next_alive = Due::of(first_alive(ctx.now, interval, id));
        let age = ctx.config.max_connection_age.as_millis() as u64;
        let goodbye = if age == 0 {
            Goodbye::None
        } else {
            Goodbye::Due(Due::of(ctx.now + age - ctx.rng.below(age / 10 + 1)))
        };
        if sends_own(&ctx.config) {
            let handover_ms = handover_ms(ctx);
            send_own(out, ctx, Some(("hello", "handover_ms", handover_ms)));
        }
        Service {
            next_alive,
            goodbye,
        }
    }

    /// When the service next needs the loop (at `now` or later).
    pub fn next_deadline(&self, config: &Config, now: Millis) -> Millis {
        let alive = if alive_interval_ms(config) == 0 {
            NEVER
        } else {
            self.next_alive.at(now)
        };
        alive.min(self.goodbye.at(now))
    }

    /// The drain has begun at `now`: ask this WebSocket to go at `at` (unless it already was),
    /// its close to follow `handover_ms` later. One already asked (at its age limit) keeps its
    /// close time, unless the drain's is sooner (a short drain). Returns whether its notice is
    /// still to come (false: it went out before the drain).
    pub fn schedule_drain(&mut self, at: Millis, handover_ms: Millis, now: Millis) -> bool {
        let (goodbye, planned) = match self.goodbye {
            Goodbye::Noticed(close) => (
                Goodbye::Noticed(Due::of(close.at(now).min(at + handover_ms))),
                false,
            ),
            other => (Goodbye::Due(Due::of(other.at(now).min(at))), true),
        };
        self.goodbye = goodbye;
        planned
    }

    /// The client closed the WebSocket itself (its close frame came first): after a notice,
    /// that is the handover done right.
    pub fn on_client_close(&self, ctx: &mut Context) {
        if self.goodbye.notice_sent() {
            ctx.metrics.ws.handover_left += 1;
        }
    }

    /// A whole message (text is valid UTF-8): queue the answer, or refuse it with a close.
    pub fn on_message(
        &mut self,
        text: bool,
        payload: &[u8],
        out: &mut OutQueue,
        ctx: &mut Context,
    ) -> Result<(), Close> {
        ctx.fault.check(payload);
        match (ctx.config.echo_mode, text) {
            (EchoMode::Reverse, true) => {
                write_header(out, OpCode::Data(Data::Text), payload.len(), |v| {
                    reverse_scalars(payload, v);
                });
            }
            (EchoMode::Reverse, false) => {
                return Err(Close {
                    code: CloseCode::Unsupported,
                    reason: "binary messages are not accepted",
                });
            }
            (EchoMode::Echo, text) => {
                let opcode = OpCode::Data(if text { Data::Text } else { Data::Binary });
                write_frame(out, opcode, payload);
            }
        }
        ctx.metrics.ws.messages_out += 1;
        ctx.metrics.ws.payload_bytes_out += payload.len() as u64;
        Ok(())
    }

    /// The service's deadline passed: send an alive message, the goaway notice, or ask for the
    /// close (the drain's or the age limit's). Replies already queued go out first: the notice
    /// and the close frame are queued behind them.
    pub fn on_timeout(&mut self, out: &mut OutQueue, ctx: &mut Context) -> Option<Close> {
        let now = ctx.now;
        let goodbye_at = self.goodbye.at(now);
        if now >= goodbye_at {
            let draining = ctx.lifecycle.phase() == Phase::Draining;
            let noticed = self.goodbye.notice_sent();
            if noticed {
                ctx.metrics.ws.handover_forced += 1;
            } else if !draining {
                ctx.metrics.ws.age_closes += 1;
            }
            // The handover counts from the time the notice was due, not from when the loop got
            // to it: a stalled loop leaves the client less time rather than pushing the close
            // (and the drain) later.
            let close_at = goodbye_at.saturating_add(handover_ms(ctx));
            if noticed || now >= close_at {
                if draining {
                    ctx.lifecycle.record_drain_close(now);
                }
                return Some(Close {
                    code: CloseCode::Restart,
                    reason: if draining {
                        "server restarting; reconnect"
                    } else {
                        "connection age limit; reconnect"
                    },
                });
            }
            send_own(out, ctx, Some(("goaway", "close_in_ms", close_at - now)));
            ctx.metrics.ws.handover_notices += 1;
            self.goodbye = Goodbye::Noticed(Due::of(close_at));
        }
        let interval = alive_interval_ms(&ctx.config);
        if interval > 0 && now >= self.next_alive.at(now) {
            // Skipped while output is pending: a client that is behind needs no more of them.
            if out.is_empty() {
                send_own(out, ctx, None);
                ctx.metrics.ws.alive_sent += 1;
            }
            self.schedule_next_alive(ctx);
        }
        None
    }

    /// Whether all this service has due at `now` is its alive message: nothing else for
    /// [`Service::on_timeout`] to do but send [`alive_frame`] (which the loop then sends
    /// itself, made once for every WebSocket due at that moment: [`Service::alive_sent`]).
    pub fn only_alive_due(&self, config: &Config, now: Millis) -> bool {
        alive_interval_ms(config) > 0
            && now >= self.next_alive.at(now)
            && now < self.goodbye.at(now)
    }

    /// The alive message that [`Service::only_alive_due`] found due has gone to the socket (or
    /// is queued behind what the socket took): counted, and the next one scheduled, as
    /// [`Service::on_timeout`] does.
    pub fn alive_sent(&mut self, ctx: &mut Context) {
        ctx.metrics.ws.alive_sent += 1;
        self.schedule_next_alive(ctx);
    }

    /// The alive message due now was sent (or skipped): the next is one interval after it;
    /// after a stall, the first time its point of the grid comes again, within one interval from
    /// now. Its point is kept either way: were the late ones moved to one interval from now,
    /// every connection a stall caught would share one point of the grid ever after, and the
    /// spread would be lost.
    fn schedule_next_alive(&mut self, ctx: &mut Context) {
        let now = ctx.now;
        let interval = alive_interval_ms(&ctx.config);
        let next_alive = self.next_alive.at(now);
        let mut next = next_alive + interval;
        if now >= next {
            // Fell behind (a stalled or overloaded loop): skip the rounds missed, and let it be
            // seen.
            ctx.metrics.ws.alive_late += 1;
            next += (now - next) / interval * interval + interval;
        }
        self.next_alive = Due::of(on_alive_grid(next, interval));
    }
}

/// The alive message at `ctx.now` as a whole frame, in `frame` (`text`: a buffer to make it
/// in): the very bytes [`Service::on_timeout`] queues for one WebSocket then. They are the same
/// for every WebSocket at one moment and phase, so the loop makes them once per moment for all
/// those whose alive message is due, and sends them as they are.
pub fn alive_frame(ctx: &Context, text: &mut String, frame: &mut Vec<u8>) {
    text.clear();
    own_text(text, ctx, None);
    frame.clear();
    frame_into(frame, OpCode::Data(Data::Text), text.as_bytes());
}

/// Alive messages fall due on a grid of this many milliseconds: the loop then wakes once per
/// grid step and sends all that are due in one burst, instead of waking for each. At 10,000
/// connections and 5 s: 10 wake-ups a second with 200 messages each, rather than up to 1,000
/// with a few. For an interval that is not a multiple of it, the grid is the largest step that
/// divides both (50 ms for 150 ms, 1 ms for 101 ms), so that every gap is the interval
/// announced in `interval_ms`, never stretched to the next grid point.
pub const ALIVE_GRID_MS: u64 = 100;

/// The step of the alive grid for `interval`: [`ALIVE_GRID_MS`], or the largest step dividing
/// both.
fn alive_grid(interval: u64) -> u64 {
    gcd(ALIVE_GRID_MS, interval).max(1)
}

/// `at` moved up to the next point of the alive grid of `interval`.
fn on_alive_grid(at: Millis, interval: u64) -> Millis {
    let grid = alive_grid(interval);
    at.div_ceil(grid) * grid
}

/// Connections take the points of the alive grid in turn, in blocks of this many accepted one
/// after another (see [`first_alive`]).
const ALIVE_BLOCK: u64 = 64;

/// The first alive time of connection `id` (its accept number), opened at `now`: the first time
/// after `now` that its block's point of the grid comes. Blocks of [`ALIVE_BLOCK`] connections
/// take the grid's points in turn, so any crowd that connected together (a rollout's
/// reconnections) is spread evenly over the interval, as a random point would spread it. Unlike
/// a random point, the messages of one grid step then go to connections accepted one after
/// another, whose memory lies together, in the server's slab and in the kernel's socket objects
/// alike: measured on loopback (`benches/RESULTS.md`, issue 23), random points cost 1.2× the
/// CPU per alive message, for uWebSockets spreading its sends as much as for wsdrain, all of it
/// cache misses on sockets touched in no order.
fn first_alive(now: Millis, interval: u64, id: u32) -> Millis {
    if interval == 0 {
        return now + 1;
    }
    let grid = alive_grid(interval);
    let points = interval / grid;
    let phase = (u64::from(id) / ALIVE_BLOCK) % points * grid;
    let base = now + 1;
    base + (phase + interval - base % interval) % interval
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Whether the service sends messages of its own besides its answers (the hello, alive
/// messages, goaway notices): not in echo mode, where a conformance suite expects nothing but
/// its echoes.
fn sends_own(config: &Config) -> bool {
    config.echo_mode == EchoMode::Reverse
}

/// The alive messages' interval in ms, 0 when there are none (`ALIVE_INTERVAL=0`, echo mode).
fn alive_interval_ms(config: &Config) -> u64 {
    if sends_own(config) {
        config.alive_interval.as_millis() as u64
    } else {
        0
    }
}

/// The handover time a client is given after its notice, in ms: `HANDOVER_TIMEOUT` (or the
/// drain plan's, shorter in a short drain), or 0 (close at once) when no notice can be sent.
fn handover_ms(ctx: &Context) -> u64 {
    if !sends_own(&ctx.config) {
        return 0;
    }
    ctx.lifecycle
        .drain_plan()
        .map_or(ctx.config.handover_timeout.as_millis() as u64, |plan| {
            plan.handover_ms
        })
}

/// A message of the server's own, an alive message: who is answering (the instance), in which
/// phase, how often; with `event` (hello, goaway) and its one extra field when it is more.
fn send_own(out: &mut OutQueue, ctx: &Context, event: Option<(&str, &str, u64)>) {
    let mut text = String::with_capacity(160);
    own_text(&mut text, ctx, event);
    write_frame(out, OpCode::Data(Data::Text), text.as_bytes());
}

/// The text of a message of the server's own (see [`send_own`]), appended to `text`.
fn own_text(text: &mut String, ctx: &Context, event: Option<(&str, &str, u64)>) {
    use std::fmt::Write;
    text.push_str("{\"type\":\"alive\",");
    if let Some((name, _, _)) = event {
        text.push_str("\"event\":\"");
        text.push_str(name);
        text.push_str("\",");
    }
    // Writing into a String cannot fail.
    let _ = write!(
        text,
        "\"instance\":{},\"phase\":\"{}\",\"interval_ms\":{},\"uptime_ms\":{}",
        ctx.instance_json,
        ctx.lifecycle.phase().as_str(),
        ctx.config.alive_interval.as_millis(),
        ctx.uptime_ms()
    );
    if let Some((_, key, value)) = event {
        let _ = write!(text, ",\"{key}\":{value}");
    }
    text.push('}');
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

#[cfg(test)]
mod tests;
