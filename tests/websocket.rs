//! WebSocket behaviour over real sockets, a standard client (tungstenite) and a raw-frame one: the
//! reply, fragments, alive messages, pings, the close handshake, upgrades. Every protocol
//! violation and limit is `websocket_limits.rs`.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{
    RawWs, TestServer, UPGRADE, WAIT, assert_metrics, encode_frame, eventually, metric, metrics,
    next_text, raw, ws_client,
};
use tungstenite::Message;

#[test]
fn text_is_answered_reversed_by_unicode_scalar_values() {
    let server = TestServer::start(&[]);
    let mut ws = ws_client(server.public);
    for (sent, expected) in [
        ("héllo", "olléh"),
        ("abc", "cba"),
        ("", ""),
        ("😀 ñ 中文", "文中 ñ 😀"),
        ("a\u{301}b", "b\u{301}a"), // scalar values, not grapheme clusters
    ] {
        ws.send(Message::text(sent)).unwrap();
        assert_eq!(next_text(&mut ws), expected, "{sent:?}");
    }
    // Replies come in order, first in first out.
    for i in 0..100 {
        ws.send(Message::text(format!("{i}-x"))).unwrap();
    }
    for i in 0..100 {
        assert_eq!(
            next_text(&mut ws),
            format!("{i}-x").chars().rev().collect::<String>()
        );
    }
    assert_metrics(
        server.admin,
        &[
            ("wsdrain_connections_open{kind=\"websocket\"}", 1.0),
            ("wsdrain_websocket_messages_received_total", 105.0),
            ("wsdrain_websocket_messages_sent_total", 105.0),
            ("wsdrain_websocket_upgrades_total", 1.0),
        ],
    );
}

#[test]
fn fragmented_message_with_a_ping_between_fragments() {
    let server = TestServer::start(&[]);
    let mut ws = RawWs::connect(server.public);
    ws.send(false, 1, "hé".as_bytes());
    ws.send(true, 9, b"ping!");
    let pong = ws.read_reply();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (10, &b"ping!"[..]));
    ws.send(false, 0, &"llo €".as_bytes()[..5]); // the € is split across fragments
    ws.send(true, 0, &"llo €".as_bytes()[5..]);
    assert_eq!(ws.read_reply().text(), "€ olléh");
}

#[test]
fn bytes_sent_with_the_upgrade_request_belong_to_the_websocket() {
    let server = TestServer::start(&[]);
    let frame = encode_frame(true, 1, b"early", Some([1, 2, 3, 4]), 0);
    let mut ws = RawWs::connect_with(server.public, &frame);
    assert_eq!(ws.read_reply().text(), "ylrae");
}

#[test]
fn alive_messages_carry_instance_phase_and_interval() {
    let server = TestServer::start(&[("ALIVE_INTERVAL", "1s")]);
    let mut ws = RawWs::connect(server.public);
    let started = Instant::now();
    let mut alive = Vec::new();
    while alive.len() < 2 {
        let f = ws.read_frame();
        assert_eq!(f.opcode, 1);
        alive.push((started.elapsed(), f.text()));
    }
    // The first one is within the first interval (at its block's point of the grid), then one
    // per interval.
    assert!(alive[0].0 < Duration::from_millis(1500), "{alive:?}");
    let gap = alive[1].0 - alive[0].0;
    assert!(
        gap > Duration::from_millis(700) && gap < Duration::from_millis(1500),
        "{alive:?}"
    );
    let text = &alive[0].1;
    for part in [
        "\"type\":\"alive\"",
        "\"instance\":\"test-instance\"",
        "\"phase\":\"serving\"",
        "\"interval_ms\":1000",
        "\"uptime_ms\":",
    ] {
        assert!(text.contains(part), "{text}");
    }
    // The instance is a JSON string whatever it holds (a hostname is not validated).
    let server = TestServer::start(&[("ALIVE_INTERVAL", "100ms"), ("INSTANCE_ID", r"pod\7")]);
    let text = RawWs::connect(server.public).read_frame().text();
    assert!(text.contains(r#""instance":"pod\\7""#), "{text}");
    // No alive messages when turned off: the hello (which says so), then nothing.
    let server = TestServer::start(&[("ALIVE_INTERVAL", "0")]);
    let mut ws = ws_client(server.public);
    let hello = ws.read().expect("the hello").into_text().expect("text");
    assert!(
        hello.starts_with(common::HELLO_PREFIX) && hello.contains(r#""interval_ms":0"#),
        "{hello}"
    );
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    // Nothing: the read times out (a close or an error would be something).
    match ws.read() {
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("nothing should arrive, got {other:?}"),
    }
}

#[test]
fn silent_client_is_pinged_and_dropped_without_a_pong() {
    let server = TestServer::start(&[
        ("PING_INTERVAL", "300ms"),
        ("PONG_TIMEOUT", "500ms"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    // A standard client answers pings as it reads, and stays.
    let mut polite = ws_client(server.public);
    let reader = std::thread::spawn(move || {
        polite
            .get_mut()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let until = Instant::now() + Duration::from_millis(2000);
        while Instant::now() < until {
            match polite.read() {
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("the client that answers pings was dropped: {e}"),
            }
        }
        polite
    });
    // The clock starts before the server's (at the upgrade), so the lower bound holds however
    // late this client reads.
    let started = Instant::now();
    let mut silent = RawWs::connect(server.public);
    let ping = silent.read_frame();
    assert_eq!(ping.opcode, 9);
    silent.expect_tcp_close();
    let dropped = started.elapsed();
    assert!(
        dropped >= Duration::from_millis(700) && dropped < Duration::from_secs(3),
        "{dropped:?}"
    );
    let mut polite = reader.join().expect("polite client");
    polite.get_mut().set_read_timeout(Some(WAIT)).unwrap();
    polite.send(Message::text("still here")).unwrap();
    assert_eq!(next_text(&mut polite), "ereh llits");
    assert_metrics(
        server.admin,
        &[("wsdrain_websocket_ping_timeouts_total", 1.0)],
    );
}

#[test]
fn close_handshake_initiated_by_the_client() {
    let server = TestServer::start(&[]);
    let mut ws = RawWs::connect(server.public);
    ws.send(true, 8, &[0x03, 0xe8, b'b', b'y', b'e']);
    ws.expect_close(1000);
    let mut ws = RawWs::connect(server.public);
    ws.send(true, 8, &[]);
    let f = ws.read_reply();
    assert_eq!((f.opcode, f.payload.len()), (8, 0));
    // The server closes at once (nothing can follow the client's close frame), with a FIN.
    ws.expect_tcp_eof();
    // A standard client sees a clean close.
    let mut client = ws_client(server.public);
    client.close(None).unwrap();
    loop {
        match client.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("unclean close: {e}"),
        }
    }
    assert_metrics(
        server.admin,
        &[("wsdrain_websocket_clean_closes_total", 3.0)],
    );
    drop((ws, client));
    eventually(WAIT, "closed WebSockets are no longer counted", || {
        metric(server.admin, "wsdrain_connections_open{kind=\"websocket\"}") == Some(0.0)
    });
}

#[test]
fn application_close_codes_share_one_series_per_range() {
    let server = TestServer::start(&[("ALIVE_INTERVAL", "0")]);
    for code in [3000u16, 4321, 4999] {
        let mut ws = RawWs::connect(server.public);
        ws.send(true, 8, &code.to_be_bytes());
        ws.expect_close(code);
    }
    let scraped = metrics(server.admin);
    for (series, value) in [
        (
            "wsdrain_websocket_closes_total{code=\"3xxx\",by=\"client\"}",
            1.0,
        ),
        (
            "wsdrain_websocket_closes_total{code=\"4xxx\",by=\"client\"}",
            2.0,
        ),
    ] {
        assert_eq!(scraped.get(series), Some(value), "{series} in {scraped}");
    }
    assert!(
        scraped
            .samples()
            .iter()
            .all(|s| s.label("code") != Some("4321")),
        "{scraped}"
    );
}

#[test]
fn upgrade_variants() {
    let mut server = TestServer::start(&[]);
    let good = "Host: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("GET /ws HTTP/1.1\r\n{good}\r\n"), 101, ""),
        (
            "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".into(),
            101,
            "",
        ),
        ("GET /ws HTTP/1.1\r\nHost: t\r\n\r\n".into(), 400, "expected Upgrade: websocket"),
        (format!("GET /ws HTTP/1.1\r\n{}\r\n", good.replace("Connection: Upgrade", "Connection: keep-alive")), 400, "expected Connection: Upgrade"),
        (format!("GET /ws HTTP/1.1\r\n{}\r\n", good.replace("Upgrade: websocket", "Upgrade: h2c")), 400, "expected Upgrade: websocket"),
        (format!("GET /ws HTTP/1.1\r\n{}\r\n", good.replace("Version: 13", "Version: 8")), 426, "version 13"),
        (format!("GET /ws HTTP/1.1\r\n{}\r\n", good.replace("Sec-WebSocket-Version: 13\r\n", "")), 426, "version 13"),
        (format!("GET /ws HTTP/1.1\r\n{}\r\n", good.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "")), 400, "Sec-WebSocket-Key"),
        (format!("GET /ws HTTP/1.1\r\n{}\r\n", good.replace("dGhlIHNhbXBsZSBub25jZQ==", "short")), 400, "Sec-WebSocket-Key"),
        (format!("GET /ws HTTP/1.0\r\n{good}\r\n"), 400, "HTTP/1.1"),
        (format!("POST /ws HTTP/1.1\r\n{good}\r\n"), 405, "method not allowed"),
    ];
    for (request, status, reason) in cases {
        let r = raw(server.public, request.as_bytes());
        assert_eq!(r.status, status, "{request}");
        let logged = match status {
            101 => "upgraded to WebSocket".to_string(),
            _ => format!(
                "{} /ws -> {status}",
                &request[..request.find(' ').unwrap_or(0)]
            ),
        };
        server.next_log_line(&format!(": {logged}"));
        assert!(r.text().contains(reason), "{request}: {}", r.text());
        if status == 426 {
            assert_eq!(r.header("sec-websocket-version"), Some("13"));
        }
        if status == 101 {
            assert_eq!(r.header("upgrade"), Some("websocket"));
            assert_eq!(
                r.header("sec-websocket-extensions"),
                None,
                "no extension is negotiated"
            );
        }
    }
    assert_eq!(raw(server.admin, UPGRADE.as_bytes()).status, 404);
}

#[test]
fn a_duplicate_key_or_version_is_refused_with_400() {
    // RFC 6455 §4.2.1 / §11.3.1: each is one value; a second field is not a list to pick from.
    let server = TestServer::start(&[]);
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let version = "Sec-WebSocket-Version: 13\r\n";
    for (extra, reason) in [
        (key.to_string(), "more than one Sec-WebSocket-Key"),
        (
            "sec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==\r\n".to_string(),
            "more than one Sec-WebSocket-Key",
        ),
        (version.to_string(), "more than one Sec-WebSocket-Version"),
        (
            "Sec-WebSocket-Version: 8\r\n".to_string(),
            "more than one Sec-WebSocket-Version",
        ),
    ] {
        let request = UPGRADE.replace(key, &format!("{key}{extra}"));
        assert_ne!(request, UPGRADE);
        let r = raw(server.public, request.as_bytes());
        assert_eq!((r.status, r.text().trim_end()), (400, reason), "{request}");
        assert_eq!(r.header("connection"), Some("close"));
    }
    // One of each is still fine.
    assert_eq!(raw(server.public, UPGRADE.as_bytes()).status, 101);
}

#[test]
fn many_tiny_messages_in_one_write_are_all_answered_in_order() {
    let server = TestServer::start(&[]);
    let mut ws = RawWs::connect(server.public);
    let mut burst = Vec::new();
    for i in 0..5000 {
        burst.extend(encode_frame(
            true,
            1,
            format!("{i}").as_bytes(),
            Some([1, 1, 1, 1]),
            0,
        ));
    }
    let mut writer = ws.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&burst).unwrap());
    for i in 0..5000 {
        let expected: String = format!("{i}").chars().rev().collect();
        assert_eq!(ws.read_reply().text(), expected);
    }
    sender.join().unwrap();
}
