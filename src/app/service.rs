//! What this server does on a WebSocket: the part to replace to build your own service on this
//! skeleton. The protocol ([`crate::protocol::websocket`]) hands over whole messages and asks for
//! nothing else; this module decides what a message gets (the text reversed by Unicode scalar
//! values, or the same bytes in echo mode), sends an alive message every `ALIVE_INTERVAL`, and
//! says when a WebSocket is to be closed: at its turn in the drain, or at `MAX_CONNECTION_AGE`.
//!
//! To build another service: keep the signatures of [`Service`] (open, on_message, on_timeout,
//! next_deadline, schedule_drain) and change their bodies; state your service keeps per
//! WebSocket goes in the struct (keep it small: it is paid for by every idle connection), state
//! it shares goes in [`Context`]. Persisting state before the drain disconnects anyone is the
//! drain's step 2 (`finish_in_flight_work` in `src/server/drain.rs`).

use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};

use crate::app::context::Context;
use crate::app::lifecycle::Phase;
use crate::base::outbuf::OutQueue;
use crate::base::timers::{Millis, NEVER};
use crate::config::EchoMode;
use crate::protocol::websocket::codec::{write_frame, write_header};

/// A close the service asks for: its code and the reason the client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// The close code (1012 to send the client elsewhere, 1003 for data the service refuses).
    pub code: CloseCode,
    /// Why, for the client.
    pub reason: &'static str,
}

/// This service's state for one WebSocket.
#[derive(Debug)]
pub struct Service {
    /// Next alive message ([`NEVER`] when they are off).
    next_alive: Millis,
    /// When this WebSocket is closed with 1012: at its maximum age, or at its turn in the drain
    /// ([`NEVER`] for neither).
    close_at: Millis,
}

impl Service {
    /// A WebSocket has just been opened. Its first alive message comes at a random point of
    /// the first interval, so clients that connected together do not all get theirs in one
    /// tick; its age limit (if any) is spread over the last tenth of the age, so clients that
    /// connected together (after the previous rollout) do not all reconnect at once.
    pub fn open(ctx: &mut Context) -> Self {
        let interval = ctx.config.alive_interval.as_millis() as u64;
        let next_alive = if interval == 0 {
            NEVER
        } else {
            ctx.now + 1 + ctx.rng.below(interval)
        };
        let age = ctx.config.max_connection_age.as_millis() as u64;
        let close_at = if age == 0 {
            NEVER
        } else {
            ctx.now + age - ctx.rng.below(age / 10 + 1)
        };
        Service {
            next_alive,
            close_at,
        }
    }

    /// When the service next needs the loop.
    pub fn next_deadline(&self) -> Millis {
        self.next_alive.min(self.close_at)
    }

    /// The drain has begun: close this WebSocket with 1012 at `at`.
    pub fn schedule_drain(&mut self, at: Millis) {
        self.close_at = self.close_at.min(at);
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

    /// The service's deadline passed: send an alive message, or ask for the close (the drain's
    /// or the age limit's). Replies already queued go out first: the close frame is queued
    /// behind them.
    pub fn on_timeout(&mut self, out: &mut OutQueue, ctx: &mut Context) -> Option<Close> {
        let now = ctx.now;
        if now >= self.close_at {
            if ctx.lifecycle.phase() == Phase::Draining {
                ctx.lifecycle.record_drain_close(now);
                return Some(Close {
                    code: CloseCode::Restart,
                    reason: "server restarting; reconnect",
                });
            }
            ctx.metrics.ws.age_closes += 1;
            return Some(Close {
                code: CloseCode::Restart,
                reason: "connection age limit; reconnect",
            });
        }
        if now >= self.next_alive {
            let interval = ctx.config.alive_interval.as_millis() as u64;
            // Skipped while output is pending: a client that is behind needs no more of them.
            if out.is_empty() {
                send_alive(out, ctx);
            }
            self.next_alive = if now >= self.next_alive + interval {
                now + interval // fell behind (e.g. a stalled loop): re-anchor
            } else {
                self.next_alive + interval
            };
        }
        None
    }
}

/// The alive message: who is answering (the instance), in which phase, how often.
fn send_alive(out: &mut OutQueue, ctx: &mut Context) {
    let text = format!(
        "{{\"type\":\"alive\",\"instance\":{},\"phase\":\"{}\",\"interval_ms\":{},\"uptime_ms\":{}}}",
        ctx.instance_json,
        ctx.lifecycle.phase().as_str(),
        ctx.config.alive_interval.as_millis(),
        ctx.now
    );
    write_frame(out, OpCode::Data(Data::Text), text.as_bytes());
    ctx.metrics.ws.alive_sent += 1;
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
    fn age_closes_spread_over_the_last_tenth() {
        let Ok(crate::config::Command::Run(config)) =
            crate::config::Config::parse(Vec::<String>::new(), |name| {
                (name == "MAX_CONNECTION_AGE").then(|| "100s".to_string())
            })
        else {
            panic!("config")
        };
        let mut ctx = Context::new(
            *config,
            crate::app::static_files::StaticFiles::default(),
            "t",
            crate::base::timers::Rng::seeded(3),
            std::time::SystemTime::now,
        );
        ctx.now = 1_000;
        let mut per_tenth = [0u32; 10];
        for _ in 0..2_000 {
            let at = Service::open(&mut ctx).close_at - 1_000;
            assert!((90_000..=100_000).contains(&at), "{at}");
            per_tenth[((at - 90_000) / 1_000).min(9) as usize] += 1;
        }
        // Uniform over the last tenth of the age: about 200 in each hundredth.
        assert!(
            per_tenth.iter().all(|&n| (120..=280).contains(&n)),
            "{per_tenth:?}"
        );
    }
}
