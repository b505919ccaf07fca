//! The connection speaking HTTP/1.1: serving pipelined requests in order, the routes' answers,
//! the `/prestop` answer that waits for its time, and the header and keep-alive timeouts.

use crate::app::context::Context;
use crate::app::lifecycle::Phase;
use crate::app::routes::{self, Action};
use crate::app::service::Service;
use crate::base::time::{Millis, Stamp, after};
use crate::connection::websocket::WebSocket;
use crate::connection::{Connection, PendingAnswer, Processed, State, Verdict};
use crate::net::Listener;
use crate::protocol::http::{self, HttpError, Method, Parsed, Response};
use crate::protocol::websocket::Session;

impl Connection {
    /// Serves the complete requests at the start of `buf`, in order, while answers may be
    /// queued.
    pub(super) fn serve(&mut self, buf: &[u8], ctx: &mut Context) -> Processed {
        let mut used = 0;
        while matches!(self.state, State::Http { .. }) && self.can_process(ctx) {
            let rest = &buf[used..];
            if rest.is_empty() {
                return Processed::keep(used, true);
            }
            let mut storage = [httparse::EMPTY_HEADER; http::MAX_HEADERS];
            match http::parse(rest, &mut storage, ctx.config.max_header_bytes) {
                Parsed::Partial => return Processed::keep(used, true),
                Parsed::Invalid(e) => {
                    log::debug!("conn #{}: bad request: {} {}", self.id, e.status, e.reason);
                    self.respond(Response::error(e), false, ctx);
                    return Processed::keep(buf.len(), false);
                }
                Parsed::Complete(head, len) => {
                    used += len;
                    self.last_active = Stamp::of(ctx.now);
                    self.state = State::Http {
                        head_started: (used < buf.len()).then_some(ctx.now),
                    };
                    self.on_request(&head, ctx);
                }
            }
        }
        Processed::keep(used, false)
    }

    fn on_request(&mut self, head: &http::Head<'_>, ctx: &mut Context) {
        let head_only = head.method == Method::Head;
        let draining =
            ctx.lifecycle.phase() == Phase::Draining && self.listener == Listener::Public;
        let keep_alive = head.keep_alive && !draining;
        let http10 = head.version == 0;
        ctx.fault.check(head.path.as_bytes());
        match routes::handle(head, self.listener, ctx) {
            Action::Respond(response) => {
                let response = response.keep_alive(keep_alive, http10);
                log::debug!(
                    "conn #{}: {} {} -> {}",
                    self.id,
                    head.method_name,
                    head.path,
                    response.status
                );
                self.respond(response, head_only, ctx);
            }
            Action::AwaitPreStop { answer_at } => {
                log::debug!(
                    "conn #{}: GET /prestop at uptime {} ms, answered at {} ms",
                    self.id,
                    ctx.uptime_ms(),
                    ctx.uptime_at(answer_at)
                );
                self.state = State::AwaitPreStop(PendingAnswer {
                    at: answer_at,
                    head_only,
                    keep_alive,
                    http10,
                });
            }
            Action::Upgrade(switching) => {
                log::debug!("conn #{}: upgraded to WebSocket", self.id);
                self.respond(switching, false, ctx);
                self.state = State::WebSocket(WebSocket {
                    session: Session::new(ctx.now),
                    service: Service::open(&mut self.output, ctx, self.id),
                });
                ctx.metrics.ws.upgrades += 1;
            }
        }
    }

    #[inline(never)]
    pub(super) fn respond(&mut self, response: Response, head_only: bool, ctx: &mut Context) {
        // The client has IDLE_TIMEOUT from now to take the answer: an answer queued long after
        // the last progress (a 408 at the header timeout, a /prestop answer after its delay, a
        // clock that jumped) must not find that time already spent, or its deadline would be
        // due again as it is set and the client dropped before it could read.
        self.last_active = Stamp::of(ctx.now);
        ctx.metrics.request(response.status);
        self.close_after_flush |= response.close;
        response.write_to(&mut self.output, &ctx.date, head_only);
    }

    /// A waiting `/prestop` whose time has come is answered; requests behind it are served next.
    pub(super) fn answer_prestop_if_due(&mut self, answer: PendingAnswer, ctx: &mut Context) {
        let now = ctx.now;
        if answer.at <= now {
            self.state = State::Http {
                head_started: (!self.input.is_empty()).then_some(now),
            };
            let response = routes::prestop_done(ctx).keep_alive(answer.keep_alive, answer.http10);
            self.respond(response, answer.head_only, ctx);
            self.input_ready = !self.input.is_empty();
        }
    }

    /// An HTTP connection's deadline passed: the request head came too late (408), the client
    /// stopped reading, or a kept-alive connection stayed idle.
    pub(super) fn http_timeout(
        &mut self,
        head_started: Option<Millis>,
        ctx: &mut Context,
    ) -> Verdict {
        let now = ctx.now;
        let config = &ctx.config;
        if !self.output.is_empty() {
            if now >= after(self.last_active.at(now), config.idle_timeout) {
                log::debug!("conn #{}: client stopped reading; closing", self.id);
                return Verdict::Close;
            }
        } else if let Some(start) = head_started {
            if now >= after(start, config.header_timeout) {
                if self.input.is_empty() {
                    log::debug!("conn #{}: no request within the header timeout", self.id);
                    return Verdict::Close;
                }
                log::debug!(
                    "conn #{}: request head incomplete at the header timeout",
                    self.id
                );
                self.input.clear();
                self.respond(
                    Response::error(HttpError {
                        status: 408,
                        reason: "request head not received in time",
                    }),
                    false,
                    ctx,
                );
            }
        } else if now >= after(self.last_active.at(now), config.idle_timeout) {
            log::debug!("conn #{}: keep-alive idle timeout", self.id);
            return Verdict::Close;
        }
        Verdict::Keep
    }
}
