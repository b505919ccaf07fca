//! wsdrain: a WebSocket server on a hand-rolled `mio` event loop, built to show how a WebSocket
//! service should behave while Kubernetes replaces its pod: serve through preStop, stop
//! accepting on SIGTERM, drain open connections in an orderly, spread-out way, exit 0 in time.
//!
//! The modules are layers; each uses only the layers below it (its `//!` says which):
//!
//! | layer | modules | holds |
//! |---|---|---|
//! | 5 | [`server`] | the event loop: the slab of connections, accept, timers, the drain, and the mio shell that polls |
//! | 4 | [`connection`] | one connection's state machine (HTTP → WebSocket → closing), sans-IO |
//! | 3 | [`app`] | what this server does: routes, static files, the WebSocket service, lifecycle, metrics |
//! | 2 | [`protocol`] | HTTP/1.1 and WebSocket (RFC 6455) as bytes in, bytes out |
//! | 1 | [`net`] | sockets: the traits the loop works through, and their mio implementation |
//! | 0 | [`config`], [`base`] | settings; time, deadlines and output buffers |
//!
//! Follow one request in `docs/ARCHITECTURE.md`. The public items are what the binary, the tests,
//! the simulation and the fuzz targets use.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod base;
pub mod config;
pub mod connection;
pub mod net;
pub mod protocol;
pub mod server;
