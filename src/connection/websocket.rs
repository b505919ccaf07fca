//! The connection once upgraded: its frames go through the protocol's session, whole messages
//! to the application's service; its deadlines are the session's (ping, close), the service's
//! (alive, the drain's close) and the client's reading (a client that takes nothing while output
//! waits is dropped).

use tungstenite::protocol::frame::coding::CloseCode;

use crate::app::context::Context;
use crate::app::service::Service;
use crate::base::time::{Millis, NEVER, Stamp, after};
use crate::config::Config;
use crate::connection::{Connection, Processed, State, Verdict, high_water};
use crate::protocol::websocket::codec::MAX_SERVER_HEADER_BYTES;
use crate::protocol::websocket::{Flow, Received, Session};

/// An upgraded connection: the protocol's state and the application's.
#[derive(Debug)]
pub(super) struct WebSocket {
    pub(super) session: Session,
    pub(super) service: Service,
}

impl Connection {
    /// When an upgraded connection next needs the loop.
    pub(super) fn websocket_deadline(
        &self,
        ws: &WebSocket,
        config: &Config,
        now: Millis,
    ) -> Millis {
        let session = &ws.session;
        let stalled = self.stalled_at(session, config, now);
        if self.close_after_flush {
            return stalled; // the WebSocket is over: only the flush is left
        }
        let service = if session.closing() {
            NEVER
        } else {
            ws.service.next_deadline(config, now)
        };
        session.next_deadline(config, now).min(service).min(stalled)
    }

    /// An upgraded connection's deadline passed.
    pub(super) fn websocket_timeout(&mut self, ctx: &mut Context) -> Verdict {
        let now = ctx.now;
        let config = &ctx.config;
        let stalled = match &self.state {
            State::WebSocket(ws) => self.stalled_at(&ws.session, config, now),
            _ => return Verdict::Keep,
        };
        let State::WebSocket(ws) = &mut self.state else {
            return Verdict::Keep;
        };
        if now >= stalled {
            log::debug!("conn #{}: client stopped reading its WebSocket", self.id);
            ws.session.drop_not_reading(
                "not reading",
                &mut self.output,
                &mut ctx.session_env(self.id),
            );
            return Verdict::Close;
        }
        if self.close_after_flush {
            return Verdict::Keep;
        }
        if !ws.session.closing()
            && let Some(close) = ws.service.on_timeout(&mut self.output, ctx)
        {
            let mut env = ctx.session_env(self.id);
            ws.session
                .start_close(close.code, close.reason, &mut self.output, &mut env);
            self.waiting_begins(stalled, now);
            return Verdict::Keep;
        }
        match ws
            .session
            .on_timeout(&mut self.output, &mut ctx.session_env(self.id))
        {
            Flow::Open => {}
            Flow::Finish => self.close_after_flush = true,
            Flow::Drop => return Verdict::Close,
        }
        Verdict::Keep
    }

    /// At its deadline: whether all there is to do is the alive message of an open WebSocket
    /// with nothing queued, nothing buffered or owed to it and nothing else due (no ping, no
    /// goaway, no close), what most deadlines of an idle WebSocket are. The loop then sends the
    /// alive frame it made for this moment ([`crate::app::service::alive_frame`]) straight to
    /// the socket and tells the connection with [`Connection::on_alive_sent`], instead of
    /// running it ([`Connection::on_timeout`] would queue a copy of the same bytes, which the
    /// loop would then write). The same state either way.
    pub fn only_alive_due(&self, ctx: &Context) -> bool {
        let State::WebSocket(ws) = &self.state else {
            return false;
        };
        let now = ctx.now;
        self.output.is_empty()
            && self.input.is_empty()
            && !self.input_ready
            && !self.input_closed
            && !self.close_after_flush
            && !ws.session.closing()
            && now < ws.session.next_deadline(&ctx.config, now)
            && ws.service.only_alive_due(&ctx.config, now)
    }

    /// The loop sent `written` bytes of the alive `frame` that [`Connection::only_alive_due`]
    /// found due: what the socket did not take is queued (and written when it is writable
    /// again), the progress recorded, the alive message counted and the next one scheduled.
    pub fn on_alive_sent(&mut self, frame: &[u8], written: usize, ctx: &mut Context) {
        let State::WebSocket(ws) = &mut self.state else {
            return;
        };
        ws.service.alive_sent(ctx);
        let rest = &frame[written.min(frame.len())..];
        if !rest.is_empty() {
            self.output
                .extend_with(rest.len(), |v| v.extend_from_slice(rest));
        }
        self.on_written(written, ctx.now);
    }

    /// Frames at the start of `buf`: each whole message to the service, its answer queued,
    /// until the input ends inside a frame, the output reaches its high-water mark, or the
    /// WebSocket ends.
    pub(super) fn process_websocket(&mut self, buf: &mut [u8], ctx: &mut Context) -> Processed {
        let State::WebSocket(ws) = &mut self.state else {
            return Processed::keep(0, false);
        };
        let high_water = high_water(&ctx.config);
        let waiting_before = self.output.len() >= high_water;
        let mut used = 0;
        let end = loop {
            if self.output.len() >= high_water {
                break None;
            }
            let received = ws.session.receive(
                buf,
                &mut used,
                &mut self.output,
                &mut ctx.session_env(self.id),
            );
            let (text, payload) = match received {
                Received::Wait => break None,
                Received::End(flow) => break Some(flow),
                Received::ClientClosed => {
                    ws.service.on_client_close(ctx);
                    self.peer_finished = true;
                    break Some(Flow::Finish);
                }
                Received::CloseAnswered => {
                    self.peer_finished = true;
                    break Some(Flow::Finish);
                }
                Received::Message { text, payload } => (text, payload),
            };
            let answered = ws.service.on_message(text, &payload, &mut self.output, ctx);
            drop(payload);
            // MAX_OUTPUT_BYTES counts payload: a frame header on top of it is allowed, so
            // a reply of the largest message fits a cap of the same size (Autobahn 9.1.6:
            // 16 MiB and 16 MiB).
            let cap = ctx.config.max_output_bytes + MAX_SERVER_HEADER_BYTES;
            let refusal = match answered {
                Err(close) => Some((close.code, close.reason)),
                Ok(()) if self.output.len() > cap => Some((
                    CloseCode::Policy,
                    "too much output queued: the client is not reading",
                )),
                Ok(()) => None,
            };
            if let Some((code, reason)) = refusal {
                let mut env = ctx.session_env(self.id);
                break Some(ws.session.fail(code, reason, &mut self.output, &mut env));
            }
        };
        // Output that crosses the high-water mark, or a close frame queued behind output: the
        // client must now take what waits for it, within PONG_TIMEOUT from now.
        if !waiting_before && (self.output.len() >= high_water || end.is_some()) {
            self.last_active = Stamp::of(ctx.now);
        }
        match end {
            None => Processed {
                used,
                incomplete: self.output.len() < high_water,
                verdict: Verdict::Keep,
            },
            Some(Flow::Open | Flow::Finish) => {
                self.close_after_flush = true;
                Processed::keep(buf.len(), false)
            }
            Some(Flow::Drop) => Processed {
                used: buf.len(),
                incomplete: false,
                verdict: Verdict::Close,
            },
        }
    }
}

impl Connection {
    /// A close frame was queued at `now` (`stalled`: the stall deadline before it). If nothing
    /// waited for the client before, its wait starts now: `PONG_TIMEOUT` counts from here, not
    /// from a write long ago (an idle client's last alive message), which would make the stall
    /// deadline already past as it is set.
    fn waiting_begins(&mut self, stalled: Millis, now: Millis) {
        if stalled == NEVER {
            self.last_active = Stamp::of(now);
        }
    }

    /// When a client that takes nothing is given up on: while output waits for it (above the
    /// high-water mark, or anything at all once the WebSocket is closing: its close frame must
    /// get out), `PONG_TIMEOUT` after the last write progress or the moment the wait began;
    /// [`NEVER`] otherwise.
    fn stalled_at(&self, session: &Session, config: &Config, now: Millis) -> Millis {
        let closing = session.closing() || self.close_after_flush;
        let waiting =
            self.output.len() >= high_water(config) || (closing && !self.output.is_empty());
        if waiting {
            after(self.last_active.at(now), config.pong_timeout)
        } else {
            NEVER
        }
    }
}
