//! HTTP/1.1, sans-IO: request heads parsed with `httparse` straight from the read buffer
//! ([`request`]), and responses serialised into a connection's output queue ([`response`]).
//!
//! The server never accepts a request body (none of its endpoints takes one), so a request is
//! just its head: `Content-Length: 0` is fine, any other length or a `Transfer-Encoding` is
//! answered 413 and the connection closed (the unread body would otherwise be read as the next
//! request). Ambiguous framing (both headers, or two lengths) is 400: the classic smuggling shapes.

pub mod request;
pub mod response;

pub use request::{Head, HttpError, MAX_HEADERS, Method, Parsed, parse};
pub use response::{Body, Response, reason_phrase};
