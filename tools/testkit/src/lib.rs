//! The kit that wsdrain's integration tests, the rollout harness (`tools/rollout`) and the load
//! generator (`benches/loadgen`) share, so each piece exists once:
//!
//! - [`ws`]: the client side of the WebSocket frame layer (encode any frame, decode any frame)
//!   and the upgrade handshake;
//! - [`server`]: the launcher of a `wsdrain` process on loopback ephemeral ports, following its
//!   log;
//! - [`evidence`]: the readers of what the server states in structured form: its lifecycle lines
//!   (logfmt `event key=value …`) and its `/metrics`;
//! - [`http`]: one bounded, blocking HTTP GET (probes, `/metrics`).
//!
//! It reads the server only from outside and does not depend on the `wsdrain` package (whose
//! tests depend on this crate). Every wait is bounded; failures are `Err(String)` with the
//! context a reader needs, so the harness can report them and the tests can panic with them.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod evidence;
pub mod http;
pub mod server;
pub mod ws;
