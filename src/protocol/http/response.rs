//! Responses: status, headers and a body (static, owned, or shared with other responses),
//! serialised into a connection's output queue.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::base::outbuf::{Chunk, OutQueue};
use crate::protocol::http::HttpError;

/// The reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A response body.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body at all (no Content-Length either): 304.
    None,
    /// A compile-time text.
    Static(&'static [u8]),
    /// Built for this response.
    Owned(Vec<u8>),
    /// A cached static file, shared by every response that sends it.
    Shared(Arc<[u8]>),
}

impl Body {
    fn len(&self) -> Option<usize> {
        match self {
            Body::None => None,
            Body::Static(b) => Some(b.len()),
            Body::Owned(b) => Some(b.len()),
            Body::Shared(b) => Some(b.len()),
        }
    }
}

/// A response ready to be queued.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra header lines, each `Name: value\r\n`.
    pub headers: String,
    /// The body.
    pub body: Body,
    /// Whether the connection closes after this response.
    pub close: bool,
}

impl Response {
    /// A response with a body and its content type.
    #[inline(never)]
    pub fn new(status: u16, content_type: &str, body: Body) -> Self {
        let mut r = Response {
            status,
            headers: String::new(),
            body,
            close: false,
        };
        r = r.header("Content-Type", content_type);
        r
    }

    /// A response with no body and no `Content-Length` (101, 304).
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: String::new(),
            body: Body::None,
            close: false,
        }
    }

    /// A short plain-text response (the body gets a trailing newline).
    #[inline(never)]
    pub fn text(status: u16, text: &str) -> Self {
        Self::new(
            status,
            "text/plain; charset=utf-8",
            Body::Owned(format!("{text}\n").into_bytes()),
        )
    }

    /// The answer to a request that cannot be served; 4xx/5xx other than 404/405 close the
    /// connection, since the rest of the stream cannot be trusted.
    #[inline(never)]
    pub fn error(e: HttpError) -> Self {
        let mut r = Self::text(e.status, e.reason);
        r.close = !matches!(e.status, 404 | 405);
        r
    }

    /// Whether the connection stays open after this answer: not when the request did not ask
    /// for it (or the answer already closes). An HTTP/1.0 client that asked is told so
    /// (`Connection: keep-alive`): for it, no header means close.
    pub fn keep_alive(mut self, requested: bool, http10: bool) -> Self {
        self.close |= !requested;
        if http10 && !self.close {
            self = self.header("Connection", "keep-alive");
        }
        self
    }

    /// Adds a header line.
    #[inline]
    pub fn header(self, name: &str, value: impl std::fmt::Display) -> Self {
        self.push_header(name, &value)
    }

    /// One copy of the formatting for every type of value (the binary stays small).
    #[inline(never)]
    fn push_header(mut self, name: &str, value: &dyn std::fmt::Display) -> Self {
        let _ = write!(self.headers, "{name}: {value}\r\n");
        self
    }

    /// Serialises into `out`: the head, then the body unless `head_only` (HEAD requests).
    pub fn write_to(self, out: &mut OutQueue, date: &str, head_only: bool) {
        let mut head = String::with_capacity(128 + self.headers.len());
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\nDate: {date}\r\n{}",
            self.status,
            reason_phrase(self.status),
            self.headers
        );
        if let Some(len) = self.body.len() {
            let _ = write!(head, "Content-Length: {len}\r\n");
        }
        if self.close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        out.push(Chunk::Owned(head.into_bytes()));
        if head_only {
            return;
        }
        match self.body {
            Body::None => {}
            Body::Static(b) => out.push(Chunk::Static(b)),
            Body::Owned(b) => out.push(Chunk::Owned(b)),
            Body::Shared(b) => out.push(Chunk::Shared(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_serialisation() {
        let mut out = OutQueue::new();
        Response::text(404, "not found").write_to(&mut out, "DATE", false);
        let bytes = out.to_vec();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "HTTP/1.1 404 Not Found\r\nDate: DATE\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n\r\nnot found\n"
        );
        let mut out = OutQueue::new();
        Response::error(HttpError {
            status: 400,
            reason: "bad",
        })
        .write_to(&mut out, "D", true);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            text.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"),
            "{text}"
        );
    }
}
