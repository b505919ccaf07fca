//! Request heads: parse, validate, and answer what cannot be served with the right status (400,
//! 413, 431, 501, 505) and a reason.

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

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
