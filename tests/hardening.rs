//! Hostile and careless clients: each test is bounded in count and time, and checks that the
//! server answers correctly and keeps serving everyone else.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{
    Client, RawWs, TestServer, UPGRADE, WAIT, assert_metrics, encode_frame, get, metric, ws_client,
};
use tungstenite::Message;

/// Resident memory of a process, bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// CPU time (user + system) of a process, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz: f64 = String::from_utf8(
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    ticks as f64 / hz
}

/// Saturated, with a steady trickle of clients (`client` runs once per `pace`) for 2 s, the
/// server must stay under 20 % of a core: a full loop must not spin.
fn assert_cpu_stays_low(pid: u32, what: &str, pace: Duration, mut client: impl FnMut()) {
    let before = cpu_seconds(pid);
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(2) {
        client();
        std::thread::sleep(pace); // the clients' pace, not a wait for an event
    }
    let cpu = (cpu_seconds(pid) - before) / window.elapsed().as_secs_f64();
    assert!(
        cpu < 0.2,
        "server used {:.0}% of a core while {what}",
        cpu * 100.0
    );
}

fn echo_once(addr: std::net::SocketAddr) -> Duration {
    let started = Instant::now();
    let mut ws = ws_client(addr);
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    ws.send(Message::text("abc")).unwrap();
    loop {
        match ws.read().expect("echo within 2 s") {
            Message::Text(t) if t.starts_with('{') => {}
            Message::Text(t) => {
                assert_eq!(t.as_str(), "cba");
                break;
            }
            _ => {}
        }
    }
    started.elapsed()
}

#[test]
fn slowloris_connections_are_closed_at_the_header_timeout_while_others_are_served() {
    const SLOW: usize = 1000;
    let timeout = Duration::from_secs(2);
    let server = TestServer::start(&[("HEADER_TIMEOUT", "2s"), ("RUST_LOG", "info")]);
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| {
            let s = TcpStream::connect(server.public).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let opened = started.elapsed();
    let request = b"GET /healthz HTTP/1.1\r\nHost: slow\r\n\r\n";
    let mut closed_at: Vec<Option<Duration>> = vec![None; SLOW];
    let mut answered_408 = vec![false; SLOW];
    let mut sent = 0;
    let mut next_byte = Instant::now();
    while closed_at.iter().any(Option::is_none)
        && started.elapsed() < timeout + Duration::from_secs(5)
    {
        if Instant::now() >= next_byte && sent < request.len() {
            for (s, closed) in slow.iter_mut().zip(&closed_at) {
                if closed.is_none() {
                    let _ = s.write(&request[sent..sent + 1]);
                }
            }
            sent += 1;
            next_byte += Duration::from_secs(1);
        }
        // Everyone else is served promptly meanwhile.
        let asked = Instant::now();
        let r = get(server.public, "/healthz");
        assert_eq!(r.status, 200);
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{:?}",
            asked.elapsed()
        );
        assert!(echo_once(server.public) < Duration::from_secs(2));
        let mut buf = [0u8; 256];
        for ((s, closed), got_408) in slow
            .iter_mut()
            .zip(closed_at.iter_mut())
            .zip(answered_408.iter_mut())
        {
            if closed.is_some() {
                continue;
            }
            match s.read(&mut buf) {
                Ok(0) => *closed = Some(started.elapsed()),
                // Each sent part of a request: it is told why before the close.
                Ok(n) => *got_408 |= buf[..n].starts_with(b"HTTP/1.1 408 "),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => *closed = Some(started.elapsed()),
            }
        }
    }
    for (i, closed) in closed_at.iter().enumerate() {
        let at = closed.unwrap_or_else(|| panic!("slow connection {i} was never closed"));
        assert!(answered_408[i], "slow connection {i} got no 408");
        assert!(
            at >= timeout - Duration::from_millis(100),
            "connection {i} closed early at {at:?}"
        );
        // Seen by this loop, which also serves a GET, an echo and 1,000 reads each pass: a
        // margin for a busy machine. A deadline that the dribble pushed on would come after the
        // whole head (37 s at a byte a second) and fail "never closed" above instead.
        assert!(
            at <= opened + timeout + Duration::from_secs(3),
            "connection {i} closed late at {at:?}"
        );
    }
}

#[test]
fn a_fast_sender_that_never_reads_costs_no_memory_once_gone() {
    let server = TestServer::start(&[
        ("PONG_TIMEOUT", "1s"),
        ("ALIVE_INTERVAL", "0"),
        ("RUST_LOG", "info"),
    ]);
    // Warm up: the loop's buffers and a few connections' worth of allocator state.
    for _ in 0..20 {
        echo_once(server.public);
    }
    let before = rss(server.pid());
    let mut flooder = RawWs::connect(server.public);
    let frame = encode_frame(true, 1, &[b'y'; 4000], Some([1, 2, 3, 4]), 0);
    flooder.write_until_the_server_stops_reading(&frame);
    let during = rss(server.pid());
    assert!(echo_once(server.public) < Duration::from_secs(2));
    flooder.expect_dropped_for_not_reading(server.admin);
    drop(flooder);
    common::eventually(WAIT, "the flooder is gone", || {
        metric(server.admin, "wsdrain_connections_open{kind=\"websocket\"}") == Some(0.0)
    });
    let after = rss(server.pid());
    assert!(
        after <= before + before / 10,
        "RSS before {before}, while flooding {during}, after {after}"
    );
}

#[test]
fn more_clients_than_descriptors_get_503_or_a_close_and_cpu_stays_low() {
    let mut server = TestServer::start(&[("MAX_CONNECTIONS", "100000"), ("RUST_LOG", "info")]);
    // Past the open-files limit (the server raises its soft limit to the hard one it inherits
    // from this test): said at start, before the ready line.
    server.wait_event("ready", WAIT);
    let unreachable = server.find_event("max_connections_unreachable");
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
    assert_eq!(
        unreachable.and_then(|e| e.number("max_connections")),
        (hard < 100_000 + 96).then_some(100_000),
        "hard limit {hard}"
    );
    // Lower both limits from outside: the server cannot raise them back.
    let pid = server.pid() as i32;
    rlimit::prlimit(pid, rlimit::Resource::NOFILE, Some((64, 64)), None).expect("prlimit");
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..150 {
        let mut c = Client::connect(server.public);
        c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        c.stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 64];
        match c.stream.read(&mut buf) {
            Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 200") => held.push(c),
            Ok(n) if n == 0 || buf.starts_with(b"HTTP/1.1 503") => refused += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => refused += 1,
            other => panic!("client {i} waited or got {other:?}"),
        }
    }
    assert!(
        refused > 50 && !held.is_empty(),
        "held {}, refused {refused}",
        held.len()
    );
    server.wait_event("out_of_descriptors", WAIT);
    let public = server.public;
    assert_cpu_stays_low(server.pid(), "saturated", Duration::from_millis(50), || {
        if let Ok(mut s) = TcpStream::connect(public) {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
        }
    });
    // Probes on the admin port may also be refused while descriptors are exhausted; once
    // clients leave, service resumes.
    drop(held);
    common::eventually(WAIT, "accepting resumes", || {
        let Ok(mut s) = TcpStream::connect(server.public) else {
            return false;
        };
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        matches!(s.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 200"))
    });
}

#[test]
fn a_flood_past_max_connections_gets_503_at_once_and_cpu_stays_low() {
    const HELD: usize = 50;
    const FLOOD: usize = 300;
    let server = TestServer::start(&[("MAX_CONNECTIONS", "50"), ("RUST_LOG", "info")]);
    let mut held: Vec<Client> = (0..HELD).map(|_| Client::connect(server.public)).collect();
    for c in &mut held {
        assert_eq!(c.get("/healthz").status, 200);
    }
    // A burst: every extra client is answered and closed, none is left waiting in the backlog.
    let burst_started = Instant::now();
    let flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| TcpStream::connect(server.public).unwrap())
        .collect();
    for (i, mut s) in flood.into_iter().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut answer = Vec::new();
        match s.read_to_end(&mut answer) {
            Ok(_) => assert!(
                answer.starts_with(b"HTTP/1.1 503 "),
                "client {i}: {answer:?}"
            ),
            Err(e) => panic!("client {i} waited: {e}"),
        }
    }
    assert!(burst_started.elapsed() < Duration::from_secs(5));
    let public = server.public;
    assert_cpu_stays_low(server.pid(), "full", Duration::from_millis(10), || {
        let mut s = TcpStream::connect(public).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 503 "), "{answer:?}");
    });
    // Places free up: new clients are served again.
    drop(held);
    common::eventually(WAIT, "serving resumes", || {
        get(server.public, "/healthz").status == 200
    });
}

#[test]
fn ten_thousand_tiny_fragments_make_one_message() {
    let server = TestServer::start(&[]);
    let mut ws = RawWs::connect(server.public);
    let mut burst = encode_frame(false, 1, b"a", Some([1, 2, 3, 4]), 0);
    for i in 1..10_000 {
        let byte = [b'a' + (i % 26) as u8];
        burst.extend(encode_frame(i == 9_999, 0, &byte, Some([4, 3, 2, 1]), 0));
    }
    ws.send_raw(&burst);
    let reply = ws.read_reply();
    assert_eq!(reply.payload.len(), 10_000);
    assert_eq!(reply.payload[0], b'a' + (9_999 % 26) as u8);
    assert_eq!(*reply.payload.last().unwrap(), b'a');
}

#[test]
fn a_ping_flood_is_answered_with_bounded_memory() {
    let server = TestServer::start(&[("ALIVE_INTERVAL", "0")]);
    let mut ws = RawWs::connect(server.public);
    let mut burst = Vec::new();
    for i in 0..10_000u32 {
        burst.extend(encode_frame(
            true,
            9,
            &i.to_be_bytes(),
            Some([9, 9, 9, 9]),
            0,
        ));
    }
    let mut writer = ws.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&burst).unwrap());
    for i in 0..10_000u32 {
        let pong = ws.read_frame();
        assert_eq!((pong.opcode, pong.payload), (10, i.to_be_bytes().to_vec()));
    }
    sender.join().unwrap();
    ws.send_text("still fine");
    assert_eq!(ws.read_reply().text(), "enif llits");

    // Bounded: pongs nobody reads back up like any output, and the server stops reading pings.
    let server = TestServer::start(&[("ALIVE_INTERVAL", "0"), ("PONG_TIMEOUT", "1s")]);
    let mut flooder = RawWs::connect(server.public);
    let ping = encode_frame(true, 9, &[7; 125], Some([9, 9, 9, 9]), 0);
    flooder.write_until_the_server_stops_reading(&ping);
    assert!(echo_once(server.public) < Duration::from_secs(2));
    flooder.expect_dropped_for_not_reading(server.admin);
}

#[test]
fn smuggling_shapes_and_odd_requests_get_a_clear_answer_and_close() {
    let mut server = TestServer::start(&[]);
    let cases: &[(&[u8], u16)] = &[
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 1\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n\tfolded\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/1.1\nHost: t\n\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n", 400),
        (b"GET /\0 HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"XYZZY / HTTP/1.1\r\nHost: t\r\n\r\n", 501),
        (b"G-E-T / HTTP/1.1\r\nHost: t\r\n\r\n", 501),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        (b"GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505),
    ];
    for (request, status) in cases {
        let shown = String::from_utf8_lossy(request).into_owned();
        let mut c = Client::connect(server.public);
        c.send(request);
        let r = c.response();
        assert_eq!(r.status, *status, "{shown:?}");
        assert_eq!(r.header("connection"), Some("close"), "{shown:?}");
        assert!(c.read_to_close(WAIT).is_ok(), "{shown:?}");
        // Refused before any route saw it, and logged with its status and reason.
        let line = server.next_log_line(&format!(": bad request: {status} "));
        assert!(line.contains(" DEBUG "), "{shown:?}: {line}");
    }
    assert_eq!(get(server.public, "/healthz").status, 200);
}

#[test]
fn allowed_origins_refuse_other_sites_with_403() {
    let mut server = TestServer::start(&[(
        "ALLOWED_ORIGINS",
        "https://good.example,http://localhost:8080",
    )]);
    let upgrade = |origin: Option<&str>| {
        let mut request = UPGRADE.trim_end_matches("\r\n").to_string();
        if let Some(o) = origin {
            request.push_str(&format!("\r\nOrigin: {o}"));
        }
        request.push_str("\r\n\r\n");
        let mut c = Client::connect(server.public);
        c.send(request.as_bytes());
        c.read_response(true)
    };
    assert_eq!(upgrade(Some("https://good.example")).status, 101);
    assert_eq!(upgrade(Some("HTTP://LOCALHOST:8080")).status, 101);
    assert_eq!(
        upgrade(None).status,
        101,
        "non-browser clients send no Origin"
    );
    let refused = upgrade(Some("https://evil.example"));
    assert_eq!(refused.status, 403);
    server.wait_log(": GET /ws -> 403", WAIT);
    // Off by default: any Origin may connect.
    let open = TestServer::start(&[]);
    let mut request = UPGRADE.trim_end_matches("\r\n").to_string();
    request.push_str("\r\nOrigin: https://anything.example\r\n\r\n");
    let mut c = Client::connect(open.public);
    c.send(request.as_bytes());
    assert_eq!(c.read_response(true).status, 101);
    assert_metrics(
        server.admin,
        &[("wsdrain_http_requests_total{status=\"403\"}", 1.0)],
    );
}

#[test]
fn websockets_are_closed_with_1012_before_max_connection_age() {
    const CLIENTS: usize = 10;
    let age = Duration::from_secs(2);
    let server = TestServer::start(&[("MAX_CONNECTION_AGE", "2s"), ("ALIVE_INTERVAL", "0")]);
    // Each clock starts before its connection, so the server's starts later: a lower bound
    // taken from it cannot be missed by a slow client.
    let clients: Vec<(RawWs, Instant)> = (0..CLIENTS)
        .map(|_| {
            let opened = Instant::now();
            (RawWs::connect(server.public), opened)
        })
        .collect();
    // Each client waits for its own close in its own thread: read one after another, a late
    // close would hide the earlier ones behind it.
    let waiting: Vec<_> = clients
        .into_iter()
        .map(|(mut ws, opened)| {
            std::thread::spawn(move || {
                ws.send_text("young");
                assert_eq!(ws.read_reply().text(), "gnuoy");
                let close = ws.read_reply();
                let at = opened.elapsed();
                assert_eq!(close.close_code(), Some(1012));
                assert!(close.close_reason().contains("age"));
                ws.answer_close(1012);
                at
            })
        })
        .collect();
    let ages: Vec<Duration> = waiting.into_iter().map(|t| t.join().unwrap()).collect();
    // Each at its age minus a random 0-10 %: never earlier (the client's clock starts before
    // the server's). How the times spread over that tenth is checked without a clock, in
    // `websocket::tests::age_closes_spread_over_the_last_tenth`.
    for at in &ages {
        assert!(
            *at >= age.mul_f64(0.9) - Duration::from_millis(50),
            "{ages:?}"
        );
        assert!(*at <= age + WAIT, "{ages:?}");
    }
    assert_eq!(
        metric(server.admin, "wsdrain_websocket_age_closes_total"),
        Some(CLIENTS as f64)
    );
}

#[test]
#[cfg_attr(
    not(feature = "test-faults"),
    ignore = "needs the test-faults feature: cargo test --features test-faults"
)]
fn a_panic_while_serving_one_connection_costs_that_connection_only() {
    let mut server =
        TestServer::start(&[("WSDRAIN_TEST_PANIC_ON", "/boom"), ("ALIVE_INTERVAL", "0")]);
    let mut bystander = RawWs::connect(server.public);
    let mut victim = RawWs::connect(server.public);
    victim.send_text("/boom");
    victim.expect_close(1011);
    server.wait_event("internal_error", WAIT);
    let r = get(server.public, "/boom");
    assert_eq!(r.status, 500);
    // Everyone else is still served.
    bystander.send_text("still here?");
    assert_eq!(bystander.read_reply().text(), "?ereh llits");
    assert_eq!(get(server.public, "/healthz").status, 200);
    assert_metrics(
        server.admin,
        &[
            (
                "wsdrain_websocket_closes_total{code=\"1011\",by=\"server\"}",
                1.0,
            ),
            ("wsdrain_connections_open{kind=\"websocket\"}", 1.0),
        ],
    );
}
