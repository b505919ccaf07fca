//! HTTP/1.1 behaviour of the real binary over real loopback sockets: endpoints on both ports,
//! static files, path traversal, pipelining, HTTP/1.0. Bad requests, timeouts and admission
//! control are `http_limits.rs`.

mod common;

use common::{Client, TestServer, WAIT, get, metrics, raw};

#[test]
fn health_and_readiness_on_both_ports() {
    let server = TestServer::start(&[]);
    for addr in [server.public, server.admin] {
        let r = get(addr, "/healthz");
        assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(r.header("date").is_some_and(|d| d.ends_with("GMT")));
        let r = get(addr, "/readyz");
        assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
        let mut c = Client::connect(addr);
        c.send(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.read_response(true);
        assert_eq!((r.status, r.header("content-length")), (200, Some("3")));
        // The connection stays usable: the HEAD answer had no body.
        assert_eq!(c.get("/readyz").status, 200);
    }
}

#[test]
fn admin_only_endpoints_are_not_public() {
    let server = TestServer::start(&[]);
    assert_eq!(get(server.public, "/metrics").status, 404);
    assert_eq!(get(server.public, "/prestop").status, 404);
    assert_eq!(get(server.admin, "/").status, 404);
    assert_eq!(get(server.admin, "/index.html").status, 404);
    let r = get(server.admin, "/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
}

#[test]
fn metrics_count_requests_connections_and_phase() {
    let server = TestServer::start(&[]);
    assert_eq!(get(server.public, "/").status, 200);
    assert_eq!(get(server.public, "/nope").status, 404);
    let scraped = metrics(server.admin);
    for (series, value) in [
        ("wsdrain_phase{phase=\"serving\"}", 1.0),
        ("wsdrain_phase{phase=\"prestop\"}", 0.0),
        (
            "wsdrain_connections_accepted_total{listener=\"public\"}",
            2.0,
        ),
        (
            "wsdrain_connections_accepted_total{listener=\"admin\"}",
            1.0,
        ),
        ("wsdrain_connections_open{kind=\"admin\"}", 1.0),
        ("wsdrain_http_requests_total{status=\"200\"}", 1.0),
        ("wsdrain_http_requests_total{status=\"404\"}", 1.0),
        (
            "wsdrain_connections_rejected_total{reason=\"max_connections\"}",
            0.0,
        ),
    ] {
        assert_eq!(scraped.get(series), Some(value), "{series} in\n{scraped}");
    }
    let bytes_in = scraped.get("wsdrain_received_bytes_total").unwrap();
    assert!(bytes_in > 0.0);
}

#[test]
fn static_files_with_types_validators_and_directories() {
    let server = TestServer::start(&[]);
    let r = get(server.public, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.text().contains("root index"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let etag = r.header("etag").unwrap().to_string();
    let last_modified = r.header("last-modified").unwrap().to_string();

    assert_eq!(get(server.public, "/index.html").body, r.body);
    let js = get(server.public, "/app.js");
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        get(server.public, "/style.css").header("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(get(server.public, "/space%20name.txt").text(), "spaced\n");
    assert_eq!(get(server.public, "/link-in.js").body, js.body);

    let moved = get(server.public, "/sub?x=1");
    assert_eq!(
        (moved.status, moved.header("location")),
        (301, Some("/sub/?x=1"))
    );
    assert_eq!(get(server.public, "/sub/").text(), "sub index\n");
    assert_eq!(get(server.public, "/sub/page.txt").text(), "sub page\n");

    let mut c = Client::connect(server.public);
    c.send(format!("GET / HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n").as_bytes());
    let r = c.response();
    assert_eq!(
        (r.status, r.body.len(), r.header("etag")),
        (304, 0, Some(etag.as_str()))
    );
    assert_eq!(r.header("content-length"), None);
    c.send(
        format!("GET / HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {last_modified}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(c.response().status, 304);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"stale\"\r\n\r\n");
    assert_eq!(c.response().status, 200);
    c.send(b"HEAD /app.js HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.read_response(true);
    assert_eq!(
        head.header("content-length"),
        Some(js.body.len().to_string().as_str())
    );
    assert_eq!(
        c.get("/healthz").status,
        200,
        "HEAD must not have sent a body"
    );

    for missing in [
        "/nope.html",
        "/.hidden",
        "/sub/nope",
        "/link-out.txt",
        "/dir-out/secret.txt",
    ] {
        assert_eq!(get(server.public, missing).status, 404, "{missing}");
    }
    let r = raw(
        server.public,
        b"POST /app.js HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}

#[test]
fn a_directory_redirect_never_points_off_the_site() {
    let dir = common::fixture_static_dir();
    for name in ["space dir", "100%"] {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("index.html"), format!("{name} index\n")).unwrap();
    }
    let server = TestServer::start(&[("STATIC_DIR", dir.to_str().unwrap())]);
    // A browser reads `//sub/` as the host `sub`: the Location is built from the normalised
    // path, never from the request's own.
    for (target, location) in [
        ("/sub", "/sub/"),
        ("//sub", "/sub/"),
        ("///sub?x=1", "/sub/?x=1"),
        ("/space%20dir", "/space%20dir/"),
        ("//space%20dir", "/space%20dir/"),
        ("/100%25", "/100%25/"),
    ] {
        let r = get(server.public, target);
        assert_eq!(
            (r.status, r.header("location"), r.header("cache-control")),
            (301, Some(location), Some("no-cache")),
            "{target}"
        );
        // And the Location leads to the directory.
        assert_eq!(get(server.public, location).status, 200, "{location}");
    }
    assert_eq!(
        get(server.public, "/space%20dir/").text(),
        "space dir index\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_way_out_of_the_static_directory() {
    let server = TestServer::start(&[]);
    let shapes = [
        "/../../../../etc/passwd",
        "/sub/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/..%2f..%2fetc%2fpasswd",
        "/%252e%252e/etc/passwd",
        "/..\\..\\etc\\passwd",
        "/%5c..%5c..%5cetc%5cpasswd",
        "/index.html%00.txt",
        "//etc/passwd",
        "/etc/passwd",
        "/./index.html",
        "/link-out.txt",
        "/dir-out/secret.txt",
        "/sub/%2e%2e/link-out.txt",
    ];
    for shape in shapes {
        let r = raw(
            server.public,
            format!("GET {shape} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        );
        assert!(matches!(r.status, 400 | 404), "{shape}: {}", r.status);
        let text = r.text();
        assert!(
            !text.contains("root:") && !text.contains("OUTSIDE-SECRET"),
            "{shape} leaked"
        );
    }
    // The server is still fine.
    assert_eq!(get(server.public, "/").status, 200);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(&[]);
    let mut c = Client::connect(server.public);
    let mut burst = Vec::new();
    let paths = ["/healthz", "/sub/page.txt", "/nope", "/readyz", "/app.js"];
    for _ in 0..20 {
        for p in paths {
            burst.extend_from_slice(format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        }
    }
    c.send(&burst);
    for _ in 0..20 {
        let statuses: Vec<u16> = paths.iter().map(|_| c.response().status).collect();
        assert_eq!(statuses, [200, 200, 404, 200, 200]);
    }
    // A head split over several writes is also assembled.
    c.send(b"GET /hea");
    c.send(b"lthz HTTP/1.1\r\nHo");
    c.send(b"st: t\r\n\r\n");
    assert_eq!(c.response().text(), "ok\n");
}

#[test]
fn http_1_0_closes_unless_keep_alive_is_asked() {
    let server = TestServer::start(&[]);
    let mut c = Client::connect(server.public);
    c.send(b"GET /healthz HTTP/1.0\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(c.read_to_close(WAIT).is_ok_and(|rest| rest.is_empty()));

    let mut c = Client::connect(server.public);
    c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    // For HTTP/1.0 no header means close: the server says it keeps the connection.
    let r = c.response();
    assert_eq!(
        (r.status, r.header("connection")),
        (200, Some("keep-alive"))
    );
    c.send(b"GET /readyz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.response().status, 200);

    let mut c = Client::connect(server.public);
    c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(c.response().header("connection"), Some("close"));
    assert!(c.read_to_close(WAIT).is_ok());
}
