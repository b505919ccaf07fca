//! HTTP/1.1 limits of the real binary over real loopback sockets: every bad request's status (and
//! the connection still serving others), header and idle timeouts, admission control at
//! MAX_CONNECTIONS, and the limits that are settings.

mod common;

use std::time::{Duration, Instant};

use common::{Client, TestServer, WAIT, assert_metrics, get, raw, temp_dir};

#[test]
fn every_bad_request_gets_its_status_and_others_are_still_served() {
    let mut server = TestServer::start(&[]);
    let long_header = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: t\r\n{}\r\n",
        "X-A: 1\r\n".repeat(80)
    );
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    // (request, status, connection closes afterwards, its log line after `conn #N: `)
    let cases: Vec<(&[u8], u16, bool, &str)> = vec![
        (
            b"this is not http\r\n\r\n",
            400,
            true,
            "bad request: 400 malformed request",
        ),
        (
            b"GET / HTTP/1.1\r\n\r\n",
            400,
            true,
            "bad request: 400 HTTP/1.1 needs exactly one Host header",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
            true,
            "bad request: 400 HTTP/1.1 needs exactly one Host header",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",
            400,
            true,
            "bad request: 400 invalid header name",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n folded\r\n\r\n",
            400,
            true,
            "bad request: 400 obsolete line folding is not accepted",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            true,
            "bad request: 400 both Content-Length and Transfer-Encoding",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            400,
            true,
            "bad request: 400 more than one Content-Length",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
            400,
            true,
            "bad request: 400 invalid Content-Length",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789",
            413,
            true,
            "bad request: 413 request bodies are not accepted here",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            413,
            true,
            "bad request: 413 request bodies are not accepted here",
        ),
        (
            long_header.as_bytes(),
            431,
            true,
            "bad request: 431 request head too large",
        ),
        (
            many_headers.as_bytes(),
            431,
            true,
            "bad request: 431 too many header fields",
        ),
        (
            long_target.as_bytes(),
            431,
            true,
            "bad request: 431 request head too large",
        ),
        (
            b"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n",
            501,
            true,
            "bad request: 501 method not implemented",
        ),
        (
            b"GET / HTTP/2.0\r\nHost: t\r\n\r\n",
            505,
            true,
            "bad request: 505 only HTTP/1.0 and HTTP/1.1 are supported",
        ),
        (
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            505,
            true,
            "bad request: 505 only HTTP/1.0 and HTTP/1.1 are supported",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
            200,
            false,
            "GET / -> 200",
        ),
        (
            b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n",
            404,
            false,
            "GET /nope -> 404",
        ),
        (
            b"DELETE /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
            405,
            false,
            "DELETE /healthz -> 405",
        ),
        (
            b"GET /%zz HTTP/1.1\r\nHost: t\r\n\r\n",
            400,
            true,
            "GET /%zz -> 400",
        ),
    ];
    // Each answer is logged, at debug: a line per connection is detail, not an event.
    for (request, status, closes, logged) in cases {
        let shown = String::from_utf8_lossy(&request[..request.len().min(60)]).into_owned();
        let mut c = Client::connect(server.public);
        c.send(request);
        let r = c.response();
        assert_eq!(r.status, status, "{shown:?}");
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("text/")),
            "{shown:?}"
        );
        if closes {
            assert_eq!(r.header("connection"), Some("close"), "{shown:?}");
            assert!(
                c.read_to_close(WAIT).is_ok(),
                "{shown:?}: not closed cleanly"
            );
        } else {
            assert_eq!(
                c.get("/healthz").status,
                200,
                "{shown:?}: connection not reusable"
            );
        }
        let line = server.next_log_line(&format!(": {logged}"));
        assert!(line.contains(" DEBUG "), "{shown:?}: {line}");
        // Another client is served meanwhile.
        assert_eq!(get(server.public, "/healthz").status, 200);
    }
    let r = raw(
        server.public,
        b"DELETE /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let mut c = Client::connect(server.admin);
    c.send(b"HEAD /prestop HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response(true);
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
}

#[test]
fn obs_fold_is_answered_400_saying_so() {
    let server = TestServer::start(&[]);
    for request in [
        &b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n folded\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n\tfolded\r\n\r\n",
    ] {
        let mut c = Client::connect(server.public);
        c.send(request);
        let r = c.response();
        assert_eq!(
            (r.status, r.text().as_str(), r.header("connection")),
            (
                400,
                "obsolete line folding is not accepted\n",
                Some("close")
            ),
            "{:?}",
            String::from_utf8_lossy(request)
        );
        assert!(c.read_to_close(WAIT).is_ok(), "not closed cleanly");
    }
}

#[test]
fn an_error_answer_survives_a_client_that_keeps_sending() {
    // Without a lingering close, unread input makes the kernel send a reset that can destroy
    // the 413 before the client reads it.
    let server = TestServer::start(&[]);
    let mut c = Client::connect(server.public);
    let mut request = b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'x', 200_000));
    let writer = {
        let mut stream = c.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stream.write_all(&request);
        })
    };
    let r = c.response();
    assert_eq!(r.status, 413);
    writer.join().unwrap();
    assert_eq!(get(server.public, "/healthz").status, 200);
}

#[test]
fn header_timeout_closes_dribbling_and_silent_clients_while_others_are_served() {
    let server = TestServer::start(&[("HEADER_TIMEOUT", "1s")]);
    let start = Instant::now();
    let mut silent = Client::connect(server.public);
    let mut dribbler = Client::connect(server.public);
    let request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    // Dribble one byte every 100 ms, until the answer comes: progress must not extend the
    // deadline, so the 408 comes while bytes still flow, long before the head is complete
    // (3.4 s at this pace). Another client is served between the bytes.
    let mut sent = 0;
    while dribbler.nothing_arrived() {
        assert!(sent < request.len(), "no 408 while the head dribbled in");
        dribbler.send(&request[sent..sent + 1]);
        sent += 1;
        assert_eq!(get(server.public, "/healthz").status, 200);
        std::thread::sleep(Duration::from_millis(100)); // the client's pace, not a synchronisation
    }
    let r = dribbler.response();
    let elapsed = start.elapsed();
    assert_eq!(r.status, 408, "after {sent} bytes");
    // The client's clock started before the server's, so this bound holds however slow it is.
    assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
    assert!(dribbler.read_to_close(WAIT).is_ok());
    // The silent client gets no answer, just a close.
    assert_eq!(silent.read_to_close(WAIT).expect("closed").len(), 0);
}

#[test]
fn on_a_kept_alive_connection_the_header_timeout_runs_from_the_next_requests_first_byte() {
    // Between requests the connection is idle, bounded by IDLE_TIMEOUT; once the next request
    // starts, its head has HEADER_TIMEOUT.
    let server = TestServer::start(&[("HEADER_TIMEOUT", "1s"), ("IDLE_TIMEOUT", "30s")]);
    let mut c = Client::connect(server.public);
    assert_eq!(c.get("/healthz").status, 200);
    std::thread::sleep(Duration::from_millis(1500)); // idle longer than HEADER_TIMEOUT: the stimulus
    assert_eq!(c.get("/healthz").status, 200, "closed while idle");
    // The clock starts before the server's (at its first read), so the lower bound holds.
    let first_byte = Instant::now();
    c.send(b"GET /healthz HTTP/1.1\r\nHo");
    let r = c.response();
    let waited = first_byte.elapsed();
    assert_eq!(r.status, 408);
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[test]
fn kept_alive_connection_closes_after_idle_timeout() {
    let server = TestServer::start(&[("IDLE_TIMEOUT", "1s"), ("HEADER_TIMEOUT", "5s")]);
    let mut c = Client::connect(server.public);
    // From before the request: the server's idle time starts after its answer, later.
    let idle_from = Instant::now();
    assert_eq!(c.get("/healthz").status, 200);
    assert!(c.closed_within(WAIT));
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(4),
        "{idle:?}"
    );
}

#[test]
fn max_connections_answers_503_at_once_and_recovers() {
    let mut server = TestServer::start(&[("MAX_CONNECTIONS", "3")]);
    let mut held: Vec<Client> = (0..3).map(|_| Client::connect(server.public)).collect();
    for c in &mut held {
        assert_eq!(c.get("/healthz").status, 200);
    }
    for _ in 0..5 {
        let mut extra = Client::connect(server.public);
        let started = Instant::now();
        let r = extra.response();
        assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(extra.read_to_close(WAIT).is_ok());
    }
    // Probes keep working while the public side is full.
    assert_eq!(get(server.admin, "/healthz").status, 200);
    assert_metrics(
        server.admin,
        &[(
            "wsdrain_connections_rejected_total{reason=\"max_connections\"}",
            5.0,
        )],
    );
    // An operator sees it at warn: the first refusal at once, then at most a line a second.
    let full = server.wait_event("connections_full", WAIT);
    let fields = ["cap", "http", "websockets", "refused"].map(|k| full.number(k));
    assert_eq!(fields, [3, 3, 0, 1].map(Some), "{full:?}");
    assert_eq!(full.get("port"), Some("public"), "{full:?}");
    let line = server.next_log_line("connections_full");
    assert!(line.contains(" WARN "), "{line}");
    // Free one place: a new client is served.
    let mut closed = held.pop().unwrap();
    closed.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    closed.response();
    assert!(closed.read_to_close(WAIT).is_ok());
    drop(closed);
    let deadline = Instant::now() + WAIT;
    loop {
        // The server sees the close a moment after we do: retry until it has.
        let r = get(server.public, "/healthz");
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(Instant::now() < deadline, "never recovered");
    }
}

// Running out of file descriptors (EMFILE) is tested in tests/hardening.rs, where the server's
// limit is lowered from outside with prlimit and its CPU use is checked while saturated.

#[test]
fn the_admin_cap_and_the_static_limits_are_settings() {
    let dir = temp_dir("static-limits");
    for (name, bytes) in [
        ("a-big.txt", 3_000),
        ("b-first.txt", 1_500),
        ("c-second.txt", 1_500),
    ] {
        std::fs::write(dir.join(name), vec![b'x'; bytes]).expect("write a fixture");
    }
    let dir = dir.display().to_string();
    let mut server = TestServer::start(&[
        ("STATIC_DIR", dir.as_str()),
        ("STATIC_MAX_FILE_BYTES", "2KiB"),
        ("STATIC_MAX_TOTAL_BYTES", "2KiB"),
        ("MAX_ADMIN_CONNECTIONS", "2"),
    ]);
    // Files are loaded in name order: one too large, one that fits, one past the total.
    assert_eq!(get(server.public, "/b-first.txt").status, 200);
    assert_eq!(get(server.public, "/a-big.txt").status, 404);
    assert_eq!(get(server.public, "/c-second.txt").status, 404);
    for said in [
        "static: not serving a-big.txt: 3000 bytes is over STATIC_MAX_FILE_BYTES (2048)",
        "static: not serving c-second.txt: the cache is full (STATIC_MAX_TOTAL_BYTES, 2048 bytes)",
    ] {
        let line = server.wait_log(said, WAIT);
        assert!(line.contains(" WARN "), "{line}");
    }
    // Two admin connections at most: a third is answered 503, and the port-full line says so.
    let mut held: Vec<Client> = (0..2).map(|_| Client::connect(server.admin)).collect();
    for c in &mut held {
        assert_eq!(c.get("/healthz").status, 200);
    }
    let mut third = Client::connect(server.admin);
    assert_eq!(third.response().status, 503);
    let full = server.wait_event("connections_full", WAIT);
    assert_eq!(
        (full.get("port"), full.number("cap"), full.number("admin")),
        (Some("admin"), Some(2), Some(2)),
        "{full:?}"
    );
}
