//! Table tests of request parsing: what is accepted, what is refused with which status.

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
