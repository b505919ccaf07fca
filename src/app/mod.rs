//! Layer 3, the application: what this server does with a request or a message. Routes and
//! static files, the WebSocket service (what a message gets, alive messages, when to close for
//! the drain), the lifecycle phases, metrics, and the [`context::Context`] a connection lends
//! them. Uses the protocols, the sockets' [`crate::net::Listener`], the base and the settings.

pub mod context;
pub mod drain_plan;
pub mod lifecycle;
pub mod log_json;
pub mod metrics;
pub mod routes;
pub mod service;
pub mod static_files;
