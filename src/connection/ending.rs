//! How a connection ends early: its part in the drain (the goaway's schedule, the waiting
//! `/prestop` answered, an idle keep-alive closed), a second signal's close, the last word after
//! a panic, and what the exit would cut.

use crate::app::context::Context;
use crate::app::lifecycle::Phase;
use crate::base::time::Millis;
use crate::connection::{Connection, State, Verdict};
use crate::net::Listener;
use crate::protocol::http::{HttpError, Response};

impl Connection {
    /// Whether this is a WebSocket whose close frame has not been handed to the kernel yet:
    /// ending it now would leave its client without one (EOF or reset instead).
    pub fn owes_close_frame(&self) -> bool {
        match &self.state {
            State::WebSocket(ws) => !(ws.session.closing() && self.output.is_empty()),
            _ => false,
        }
    }

    /// Schedules the drain's goaway notice of a WebSocket at `at`, its close `handover_ms`
    /// later, at `now`: `Some(true)` if its notice is still to come, `Some(false)` if it went
    /// out before (the age limit's), `None` for a connection that is not an open WebSocket.
    pub fn schedule_drain(&mut self, at: Millis, handover_ms: Millis, now: Millis) -> Option<bool> {
        match &mut self.state {
            State::WebSocket(ws) if !ws.session.closing() => {
                Some(ws.service.schedule_drain(at, handover_ms, now))
            }
            _ => None,
        }
    }

    /// The drain has begun: a waiting `/prestop` is answered now (the kubelet only signals after
    /// preStop returned, so nobody is waiting for the rest of the delay).
    pub fn on_drain_begins(&mut self, now: Millis) {
        if let State::AwaitPreStop(answer) = &mut self.state {
            answer.at = answer.at.min(now);
        }
    }

    /// Stopping now (a second signal): queues a close frame on a WebSocket, so clients see 1012
    /// rather than a dropped connection.
    pub fn close_now(&mut self, ctx: &mut Context) {
        if let State::WebSocket(ws) = &mut self.state {
            ws.session.start_close(
                tungstenite::protocol::frame::coding::CloseCode::Restart,
                "server stopping now; reconnect",
                &mut self.output,
                &mut ctx.session_env(self.id),
            );
        }
    }

    /// The socket had nothing more to read for now.
    pub fn on_input_drained(&self, ctx: &Context) -> Verdict {
        if self.listener == Listener::Public
            && ctx.lifecycle.phase() == Phase::Draining
            && self.is_idle()
        {
            log::debug!("conn #{}: closing idle connection for drain", self.id);
            return Verdict::Close;
        }
        Verdict::Keep
    }

    /// After a panic while handling this connection (a bug): queue what the client can be
    /// told, 1011 on a WebSocket or 500 over HTTP; the loop then drops the connection.
    pub fn internal_error(&mut self, ctx: &mut Context) -> Verdict {
        match &mut self.state {
            State::WebSocket(ws) => ws.session.start_close(
                tungstenite::protocol::frame::coding::CloseCode::Error,
                "internal error",
                &mut self.output,
                &mut ctx.session_env(self.id),
            ),
            State::Http { .. } | State::AwaitPreStop(_) => {
                let e = HttpError {
                    status: 500,
                    reason: "internal error",
                };
                self.respond(Response::error(e), false, ctx);
            }
            State::Lingering { .. } => {}
        }
        Verdict::Close
    }

    /// Whether this connection is between requests with nothing in flight. A fresh one that
    /// has not sent its first request yet is not: it was accepted to be answered (in the drain,
    /// a 503 for an upgrade), and gets its header timeout to say what it wants.
    fn is_idle(&self) -> bool {
        matches!(self.state, State::Http { head_started: None })
            && self.input.is_empty()
            && self.output.is_empty()
            && !self.close_after_flush
    }
}
