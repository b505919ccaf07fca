//! Routing: which endpoint a request names on which port, and what each endpoint answers.
//!
//! | port   | path        | methods   | answer |
//! |--------|-------------|-----------|--------|
//! | both   | `/healthz`  | GET, HEAD | 200 `ok` while the loop runs |
//! | both   | `/readyz`   | GET, HEAD | 200 while serving, 503 after preStop or during drain |
//! | admin  | `/metrics`  | GET, HEAD | Prometheus text |
//! | admin  | `/prestop`  | GET       | 200 after `PRESTOP_DELAY` (a timer; the connection waits) |
//! | public | `/ws`       | GET       | 101 and WebSocket, or 400/426/503 saying why not |
//! | public | anything else | GET, HEAD | a static file, 301 to add a directory's slash, or 404 |
//!
//! `/metrics` and `/prestop` on the public port are 404: the public port is what the internet
//! reaches, and anyone could otherwise start the pod's shutdown.

use crate::app::context::Context;
use crate::app::lifecycle::{EventLine, Phase};
use crate::app::metrics::Gauges;
use crate::app::static_files::{Lookup, add_slash_location};
use crate::base::time::Millis;
use crate::net::Listener;
use crate::protocol::http::{Body, Head, HttpError, Method, Response};
use crate::protocol::websocket;

/// What the connection should do with a request.
#[derive(Debug)]
pub enum Action {
    /// Send this response.
    Respond(Response),
    /// Hold the answer until the preStop deadline, `answer_at`.
    AwaitPreStop {
        /// When to answer (a finite time: at once while draining).
        answer_at: Millis,
    },
    /// Send this `101 Switching Protocols` and speak WebSocket from then on.
    Upgrade(Response),
}

/// The endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// Liveness.
    Healthz,
    /// Readiness.
    Readyz,
    /// Prometheus metrics (admin only).
    Metrics,
    /// The preStop hook (admin only).
    PreStop,
    /// The WebSocket endpoint (public only).
    WebSocket,
    /// A file from `STATIC_DIR` (public only).
    Static,
    /// No such endpoint on this port.
    NotFound,
}

/// The endpoints with a path of their own, and the port each answers on (`None`: both). Every
/// other path is a static file on the public port and 404 on the admin port.
const NAMED: [(&str, Option<Listener>, Endpoint); 5] = [
    ("/healthz", None, Endpoint::Healthz),
    ("/readyz", None, Endpoint::Readyz),
    ("/metrics", Some(Listener::Admin), Endpoint::Metrics),
    ("/prestop", Some(Listener::Admin), Endpoint::PreStop),
    ("/ws", Some(Listener::Public), Endpoint::WebSocket),
];

/// The paths of the named endpoints and the port each answers on (`None`: both): what the
/// documentation must describe (`tests/docs.rs`).
pub fn named_endpoints() -> impl Iterator<Item = (&'static str, Option<Listener>)> {
    NAMED.iter().map(|(path, port, _)| (*path, *port))
}

impl Endpoint {
    /// The endpoint a path names on a port.
    pub fn of(listener: Listener, path: &str) -> Endpoint {
        match NAMED.iter().find(|(named, _, _)| *named == path) {
            Some((_, port, endpoint)) if port.is_none_or(|only| only == listener) => *endpoint,
            // /metrics and /prestop on the public port: the internet must not reach them.
            Some(_) => Endpoint::NotFound,
            None if listener == Listener::Admin => Endpoint::NotFound,
            None => Endpoint::Static,
        }
    }

    /// The `Allow` header value.
    fn allow(self) -> &'static str {
        match self {
            Endpoint::PreStop | Endpoint::WebSocket => "GET",
            _ => "GET, HEAD",
        }
    }

    fn allows(self, method: Method) -> bool {
        match self {
            Endpoint::PreStop | Endpoint::WebSocket => method == Method::Get,
            _ => matches!(method, Method::Get | Method::Head),
        }
    }
}

/// Answers one request.
pub fn handle(head: &Head<'_>, listener: Listener, ctx: &mut Context) -> Action {
    let endpoint = Endpoint::of(listener, head.path);
    if endpoint == Endpoint::NotFound {
        return Action::Respond(not_found());
    }
    if endpoint == Endpoint::Static {
        return Action::Respond(static_file(head, ctx));
    }
    if !endpoint.allows(head.method) {
        return Action::Respond(method_not_allowed(endpoint.allow()));
    }
    Action::Respond(match endpoint {
        Endpoint::Healthz => Response::text(200, "ok").header("Cache-Control", "no-store"),
        Endpoint::Readyz => {
            let phase = ctx.lifecycle.phase();
            if ctx.lifecycle.ready() {
                Response::text(200, "ready")
            } else {
                Response::text(503, &format!("not ready: {}", phase.as_str()))
            }
            .header("Cache-Control", "no-store")
        }
        Endpoint::Metrics => {
            let secs = |ms: Millis| ms as f64 / 1000.0;
            let text = ctx.metrics.render(&Gauges {
                phase: ctx.lifecycle.phase(),
                open: ctx.open,
                max_connections: ctx.max_public,
                drain_closes: ctx.lifecycle.drain_closes().len(),
                drain_plan: ctx.lifecycle.drain_plan().map(|p| p.kind()),
                drain_deadline_secs: ctx
                    .lifecycle
                    .drain_plan()
                    .map_or(ctx.config.drain_deadline().as_secs_f64(), |p| {
                        secs(p.deadline_ms())
                    }),
                drain_elapsed_secs: ctx
                    .lifecycle
                    .drain_started_at()
                    .map_or(0.0, |start| secs(ctx.now.saturating_sub(start))),
                uptime_secs: secs(ctx.uptime_ms()),
                memory: (ctx.memory_probe)(),
            });
            Response::new(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                Body::Owned(text.into_bytes()),
            )
            .header("Cache-Control", "no-store")
        }
        Endpoint::PreStop => {
            let first = ctx.lifecycle.phase() == Phase::Serving;
            let delay = ctx.config.prestop_answer_delay();
            let answer_at = ctx.lifecycle.request_prestop(ctx.now, delay);
            if first {
                log::info!(
                    "{}",
                    EventLine::new("prestop")
                        .field("ready", false)
                        .field("answer_in_ms", delay.as_millis())
                        .field("websockets", ctx.open.websocket)
                        .field("http", ctx.open.http)
                        .field("admin", ctx.open.admin)
                );
            }
            return Action::AwaitPreStop { answer_at };
        }
        Endpoint::WebSocket => {
            let draining = ctx.lifecycle.phase() == Phase::Draining;
            match websocket::handshake(head, draining, &ctx.config.allowed_origins) {
                Ok(switching) => return Action::Upgrade(switching),
                Err(refusal) => refusal,
            }
        }
        Endpoint::Static | Endpoint::NotFound => not_found(),
    })
}

/// The answer to `/prestop` once its deadline has come.
pub fn prestop_done(ctx: &Context) -> Response {
    let phase = ctx.lifecycle.phase();
    Response::text(200, &format!("prestop done; phase {}", phase.as_str()))
        .header("Cache-Control", "no-store")
}

fn not_found() -> Response {
    Response::error(HttpError {
        status: 404,
        reason: "not found",
    })
}

fn method_not_allowed(allow: &'static str) -> Response {
    Response::error(HttpError {
        status: 405,
        reason: "method not allowed",
    })
    .header("Allow", allow)
}

fn static_file(head: &Head<'_>, ctx: &Context) -> Response {
    let lookup = match ctx.files.lookup(head.path) {
        Ok(lookup) => lookup,
        Err(reason) => {
            return Response::error(HttpError {
                status: 400,
                reason,
            });
        }
    };
    match lookup {
        Lookup::NotFound => not_found(),
        _ if !Endpoint::Static.allows(head.method) => method_not_allowed(Endpoint::Static.allow()),
        Lookup::AddSlash(key) => Response::text(301, "moved")
            .header("Location", add_slash_location(&key, head.query))
            .header("Cache-Control", "no-cache"),
        Lookup::File(file) => {
            let fresh = file.not_modified(
                head.header("if-none-match"),
                head.header("if-modified-since"),
            );
            let (status, body) = if fresh {
                (304, Body::None)
            } else {
                (200, Body::Shared(file.body.clone()))
            };
            Response::new(status, file.content_type, body)
                .header("ETag", &file.etag)
                .header("Last-Modified", &file.last_modified)
                .header("Cache-Control", "no-cache")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_table() {
        let cases = [
            (Listener::Public, "/healthz", Endpoint::Healthz),
            (Listener::Admin, "/healthz", Endpoint::Healthz),
            (Listener::Public, "/readyz", Endpoint::Readyz),
            (Listener::Admin, "/readyz", Endpoint::Readyz),
            (Listener::Admin, "/metrics", Endpoint::Metrics),
            (Listener::Admin, "/prestop", Endpoint::PreStop),
            (Listener::Public, "/metrics", Endpoint::NotFound),
            (Listener::Public, "/prestop", Endpoint::NotFound),
            (Listener::Admin, "/", Endpoint::NotFound),
            (Listener::Admin, "/index.html", Endpoint::NotFound),
            (Listener::Public, "/", Endpoint::Static),
            (Listener::Public, "/healthz/", Endpoint::Static),
            (Listener::Public, "/ws", Endpoint::WebSocket),
            (Listener::Admin, "/ws", Endpoint::NotFound),
        ];
        for (listener, path, endpoint) in cases {
            assert_eq!(
                Endpoint::of(listener, path),
                endpoint,
                "{listener:?} {path}"
            );
        }
        assert!(Endpoint::PreStop.allows(Method::Get));
        assert!(!Endpoint::PreStop.allows(Method::Head));
        assert!(Endpoint::Healthz.allows(Method::Head));
        assert!(!Endpoint::Metrics.allows(Method::Other));
    }
}
