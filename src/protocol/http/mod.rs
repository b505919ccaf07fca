//! HTTP/1.1 request heads, parsed with `httparse` straight from the read buffer, and responses
//! serialised into a connection's output queue.
//!
//! The server never accepts a request body (none of its endpoints takes one), so a request is
//! just its head: `Content-Length: 0` is fine, any other length or a `Transfer-Encoding` is
//! answered 413 and the connection closed (the unread body would otherwise be read as the next
//! request). Ambiguous framing (both headers, or two lengths) is 400: the classic smuggling shapes.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::base::outbuf::{Chunk, OutQueue};

/// Header slots per request; more headers are answered 431.
pub const MAX_HEADERS: usize = 64;

/// Methods this server knows; anything else is 501 Not Implemented.
const KNOWN_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// A request that cannot be served, with the status and a short reason for the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    /// Status code of the answer.
    pub status: u16,
    /// One line saying why.
    pub reason: &'static str,
}

const fn error(status: u16, reason: &'static str) -> HttpError {
    HttpError { status, reason }
}

/// The request method, as far as routing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: the GET answer without the body.
    Head,
    /// A known method that no route here serves (405).
    Other,
}

/// A parsed, validated request head; borrows the read buffer.
#[derive(Debug)]
pub struct Head<'a> {
    /// The method as routing sees it.
    pub method: Method,
    /// The method as sent (for logs).
    pub method_name: &'a str,
    /// The path of the request target, still percent-encoded, without the query.
    pub path: &'a str,
    /// The query string without the `?`, if any.
    pub query: Option<&'a str>,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    headers: &'a [httparse::Header<'a>],
}

impl<'a> Head<'a> {
    /// The first header with this name (case-insensitive), as trimmed text.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    }

    /// How many fields have this name (case-insensitive); for fields that must appear once.
    pub fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    }

    /// Whether a comma-separated header (e.g. `Connection`) contains `token`, in any of its
    /// occurrences, case-insensitively.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        has_token(self.headers, name, token)
    }
}

fn has_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The result of parsing the start of a buffer.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// The head is not complete yet: read more.
    Partial,
    /// A complete head, and how many bytes of the buffer it took.
    Complete(Head<'a>, usize),
    /// The bytes cannot be a valid request: answer with this error and close.
    Invalid(HttpError),
}

/// Parses one request head from the start of `buf` into `storage`. Heads longer than
/// `max_head_bytes` (complete or not) are 431.
pub fn parse<'a>(
    buf: &'a [u8],
    storage: &'a mut [httparse::Header<'a>; MAX_HEADERS],
    max_head_bytes: usize,
) -> Parsed<'a> {
    let mut request = httparse::Request::new(storage);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= max_head_bytes {
                return Parsed::Invalid(error(431, "request head too large"));
            }
            if looks_like_http2_preface(buf) {
                return Parsed::Invalid(error(505, "HTTP/2 is not supported here; use HTTP/1.1"));
            }
            return Parsed::Partial;
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Invalid(error(431, "too many header fields"));
        }
        Err(httparse::Error::Version) if names_an_http_version(buf) => {
            return Parsed::Invalid(error(505, "only HTTP/1.0 and HTTP/1.1 are supported"));
        }
        Err(_) if is_obs_fold(buf) => {
            return Parsed::Invalid(error(400, "obsolete line folding is not accepted"));
        }
        Err(e) => return Parsed::Invalid(error(400, bad_request_reason(e))),
    };
    if len > max_head_bytes {
        return Parsed::Invalid(error(431, "request head too large"));
    }
    if has_bare_lf(&buf[..len]) {
        // httparse accepts a bare LF as a line end; a proxy in front may not, and such a
        // disagreement is how requests are smuggled. RFC 9112 §2.2 lets a server refuse it.
        return Parsed::Invalid(error(400, "bare LF line ending; use CRLF"));
    }
    // httparse guarantees these are set on Complete.
    let (Some(method_name), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Parsed::Invalid(error(400, "incomplete request line"));
    };
    let headers: &'a [httparse::Header<'a>] = request.headers;
    match validate(method_name, target, version, headers) {
        Ok(head) => Parsed::Complete(head, len),
        Err(e) => Parsed::Invalid(e),
    }
}

fn has_bare_lf(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
}

/// Whether what httparse refused is obsolete line folding (RFC 9112 §5.2): a line starting with
/// a space or tab, and everything before it valid (so it is the first error, not a later one).
/// httparse itself only says "invalid header name"; RFC 9112 §5.2 asks for a 400 that says the
/// folding is the reason.
fn is_obs_fold(buf: &[u8]) -> bool {
    let Some(at) = buf
        .windows(2)
        .position(|w| w[0] == b'\n' && matches!(w[1], b' ' | b'\t'))
    else {
        return false;
    };
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    matches!(
        httparse::Request::new(&mut storage).parse(&buf[..=at]),
        Ok(httparse::Status::Partial)
    )
}

/// Whether an incomplete head is already recognisably the HTTP/2 preface, whose full form
/// ("PRI * HTTP/2.0") is 505 anyway: answering early matters because an HTTP/2 client waits for
/// our preface and would never finish the head.
fn looks_like_http2_preface(buf: &[u8]) -> bool {
    buf.starts_with(b"PRI * HTTP/2")
}

/// Whether the request line ends in `HTTP/…` (a version we do not speak: 505) rather than
/// something that is not HTTP at all (400).
fn names_an_http_version(buf: &[u8]) -> bool {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    line.split(|&b| b == b' ')
        .nth(2)
        .is_some_and(|version| version.starts_with(b"HTTP/"))
}

fn bad_request_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid method or token",
        _ => "malformed request",
    }
}

fn validate<'a>(
    method_name: &'a str,
    target: &'a str,
    version: u8,
    headers: &'a [httparse::Header<'a>],
) -> Result<Head<'a>, HttpError> {
    let method = match method_name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        m if KNOWN_METHODS.contains(&m) => Method::Other,
        _ => return Err(error(501, "method not implemented")),
    };

    let mut hosts = 0;
    let mut content_length: Option<&[u8]> = None;
    let mut transfer_encoding = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if h.name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Err(error(400, "more than one Content-Length"));
            }
            content_length = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
        }
    }
    if transfer_encoding && content_length.is_some() {
        return Err(error(400, "both Content-Length and Transfer-Encoding"));
    }
    if let Some(value) = content_length {
        let value = value.trim_ascii();
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(error(400, "invalid Content-Length"));
        }
        if value.iter().any(|&b| b != b'0') {
            return Err(error(413, "request bodies are not accepted here"));
        }
    }
    if transfer_encoding {
        return Err(error(413, "request bodies are not accepted here"));
    }
    if version == 1 && hosts != 1 {
        return Err(error(400, "HTTP/1.1 needs exactly one Host header"));
    }
    if hosts > 1 {
        return Err(error(400, "more than one Host header"));
    }

    let origin_form = origin_form(target).ok_or(error(400, "invalid request target"))?;
    let (path, query) = match origin_form.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (origin_form, None),
    };
    let keep_alive = if version == 1 {
        !has_token(headers, "connection", "close")
    } else {
        has_token(headers, "connection", "keep-alive")
    };
    Ok(Head {
        method,
        method_name,
        path,
        query,
        version,
        keep_alive,
        headers,
    })
}

/// The origin-form (`/path?query`) of a request target; absolute-form (`http://host/path`,
/// the scheme in any case: RFC 9110 §4.2.3) is reduced to it, as RFC 9112 §3.2.2 requires
/// servers to accept.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    let (scheme, rest) = target.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => Some(&rest[i..]),
        Some(_) => None, // a query with no path: rare enough to refuse
        None => Some("/"),
    }
}

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
    pub fn text(status: u16, text: &str) -> Self {
        Self::new(
            status,
            "text/plain; charset=utf-8",
            Body::Owned(format!("{text}\n").into_bytes()),
        )
    }

    /// The answer to a request that cannot be served; 4xx/5xx other than 404/405 close the
    /// connection, since the rest of the stream cannot be trusted.
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
    pub fn header(mut self, name: &str, value: impl std::fmt::Display) -> Self {
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

    /// method, path, query, version, keep-alive, length
    type Summary = (Method, String, Option<String>, u8, bool, usize);

    fn parse_str(text: &str) -> Result<Summary, HttpError> {
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse(text.as_bytes(), &mut storage, 8192) {
            Parsed::Complete(h, n) => Ok((
                h.method,
                h.path.to_string(),
                h.query.map(str::to_string),
                h.version,
                h.keep_alive,
                n,
            )),
            Parsed::Partial => Err(error(0, "partial")),
            Parsed::Invalid(e) => Err(e),
        }
    }

    #[test]
    fn valid_requests() {
        type Case<'a> = (&'a str, Method, &'a str, Option<&'a str>, u8, bool);
        let cases: &[Case] = &[
            (
                "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                Method::Get,
                "/",
                None,
                1,
                true,
            ),
            (
                "HEAD /x?y=1 HTTP/1.1\r\nHost: a\r\n\r\n",
                Method::Head,
                "/x",
                Some("y=1"),
                1,
                true,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                Method::Get,
                "/",
                None,
                1,
                false,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n",
                Method::Get,
                "/",
                None,
                1,
                false,
            ),
            ("GET / HTTP/1.0\r\n\r\n", Method::Get, "/", None, 0, false),
            (
                "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                Method::Get,
                "/",
                None,
                0,
                true,
            ),
            (
                "POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                Method::Other,
                "/healthz",
                None,
                1,
                true,
            ),
            (
                "GET http://example.com/a/b?c HTTP/1.1\r\nHost: a\r\n\r\n",
                Method::Get,
                "/a/b",
                Some("c"),
                1,
                true,
            ),
            (
                "GET http://example.com HTTP/1.1\r\nHost: a\r\n\r\n",
                Method::Get,
                "/",
                None,
                1,
                true,
            ),
            // The scheme is case-insensitive (RFC 9110 §4.2.3).
            (
                "GET HTTP://host/a HTTP/1.1\r\nHost: a\r\n\r\n",
                Method::Get,
                "/a",
                None,
                1,
                true,
            ),
            (
                "GET Https://h HTTP/1.1\r\nHost: a\r\n\r\n",
                Method::Get,
                "/",
                None,
                1,
                true,
            ),
            (
                "HEAD hTTpS://h/x?y HTTP/1.1\r\nHost: a\r\n\r\n",
                Method::Head,
                "/x",
                Some("y"),
                1,
                true,
            ),
        ];
        for (text, method, path, query, version, keep_alive) in cases {
            let (m, p, q, v, k, n) = parse_str(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
            assert_eq!(
                (m, p.as_str(), q.as_deref(), v, k, n),
                (*method, *path, *query, *version, *keep_alive, text.len()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn invalid_requests() {
        let cases: &[(&str, u16)] = &[
            ("BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
                413,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                413,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
                400,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
                400,
            ),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            ("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
            ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
            ("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET ftp://x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET FTP://x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET HTTP:/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET httpx://x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET HTTP://x?y HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHo st: a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", 400),
            ("G\0T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("this is not http\r\n\r\n", 400),
            ("GET / HTTP/1.1\nHost: a\n\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
            ("GET / FTP/1.1\r\n\r\n", 400),
        ];
        for (text, status) in cases {
            match parse_str(text) {
                Err(e) => assert_eq!(e.status, *status, "{text:?}: {e:?}"),
                Ok(r) => panic!("{text:?} parsed: {r:?}"),
            }
        }
    }

    #[test]
    fn obs_fold_is_refused_by_name() {
        const OBS_FOLD: &str = "obsolete line folding is not accepted";
        let cases: &[(&str, &str)] = &[
            (
                "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n",
                OBS_FOLD,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\tfolded\r\n\r\n",
                OBS_FOLD,
            ),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n   \r\n\r\n", OBS_FOLD),
            // Whitespace before the first field (RFC 9112 §2.2): the same shape.
            ("GET / HTTP/1.1\r\n Host: a\r\n\r\n", OBS_FOLD),
            // Not complete yet, but already refused.
            ("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\tf", OBS_FOLD),
            // Another error comes first: that one is named.
            (
                "GET / HTTP/1.1\r\nHo st: a\r\nX: 1\r\n folded\r\n\r\n",
                "invalid header name",
            ),
            ("GET / HTTP/1.1\r\nHo st: a\r\n\r\n", "invalid header name"),
            (
                "GET / HTTP/2.0\r\nHost: a\r\n folded\r\n\r\n",
                "only HTTP/1.0 and HTTP/1.1 are supported",
            ),
        ];
        for (text, reason) in cases {
            match parse_str(text) {
                Err(e) => assert_eq!(e.reason, *reason, "{text:?}: {e:?}"),
                Ok(r) => panic!("{text:?} parsed: {r:?}"),
            }
        }
        // Whitespace inside a field value, or after a complete head, is not folding.
        assert!(parse_str("GET / HTTP/1.1\r\nHost: a\r\nX: 1 \t 2\r\n\r\n").is_ok());
        assert!(parse_str("GET / HTTP/1.1\r\nHost: a\r\n\r\n folded").is_ok());
    }

    #[test]
    fn header_lookup_and_count() {
        let text = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a:  2 \r\nX-B: 3\r\n\r\n";
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Parsed::Complete(head, _) = parse(text.as_bytes(), &mut storage, 8192) else {
            panic!("{text:?} did not parse");
        };
        assert_eq!(head.header("x-a"), Some("1"));
        assert_eq!(
            (head.count("X-A"), head.count("x-b"), head.count("x-c")),
            (2, 1, 0)
        );
    }

    #[test]
    fn partial_and_size_limits() {
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost", &mut storage, 8192),
            Parsed::Partial
        ));
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(matches!(
            parse(b"PRI * HTTP/2", &mut storage, 8192),
            Parsed::Invalid(HttpError { status: 505, .. })
        ));
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(matches!(
            parse(b"PRI /x HTTP/1", &mut storage, 8192),
            Parsed::Partial
        ));
        let long = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "a".repeat(9000)
        );
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(matches!(
            parse(long.as_bytes(), &mut storage, 8192),
            Parsed::Invalid(HttpError { status: 431, .. })
        ));
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(matches!(
            parse(&long.as_bytes()[..8500], &mut storage, 8192),
            Parsed::Invalid(HttpError { status: 431, .. })
        ));
        let many = format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
            "X: 1\r\n".repeat(MAX_HEADERS)
        );
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(matches!(
            parse(many.as_bytes(), &mut storage, 8192),
            Parsed::Invalid(HttpError { status: 431, .. })
        ));
    }

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
        Response::error(error(400, "bad")).write_to(&mut out, "D", true);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            text.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"),
            "{text}"
        );
    }
}
