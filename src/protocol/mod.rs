//! Layer 2, the protocols: HTTP/1.1 requests and responses, and WebSocket (RFC 6455) handshake,
//! frames and session, as bytes in and bytes out; no socket, no clock, no application. Uses the
//! base and the settings.

pub mod http;
pub mod websocket;
