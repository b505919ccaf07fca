//! wsdrain: a WebSocket server on a hand-rolled `mio` event loop, built to show how a WebSocket
//! service should behave while Kubernetes replaces its pod: serve through preStop, stop
//! accepting on SIGTERM, drain open connections in an orderly, spread-out way, exit 0 in time.
//!
//! Follow one request: [`server`] accepts it and owns the loop → [`connection`] reads it and
//! runs its state machine → [`http`] parses the head → [`routes`] picks the endpoint
//! ([`static_files`], health, [`metrics`], preStop via [`lifecycle`]) → [`outbuf`] queues the
//! answer → [`connection`] writes it. Deadlines live in [`timers`]; settings in [`config`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod connection;
pub mod context;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod net;
pub mod outbuf;
pub mod routes;
pub mod server;
pub mod static_files;
pub mod timers;
pub mod websocket;
