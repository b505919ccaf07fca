//! The drain when Kubernetes leaves less time than configured, over real sockets and real
//! signals: a SIGTERM that finds `/prestop` still waiting (a Spot node's or an eviction's grace
//! period is over: the kubelet kills 2 s later), a known grace period that the configured drain
//! no longer fits, and an answer still being sent when the drain's deadline ends the process.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Client, RawWs, TestServer, WAIT, metrics, temp_dir};

/// Reads frames until the goaway notice; returns its `close_in_ms`.
fn read_notice(ws: &mut RawWs) -> u64 {
    loop {
        let f = ws.read_frame();
        let text = f.text();
        assert!(
            f.opcode == 1 && text.starts_with(r#"{"type":"alive""#),
            "before the notice: {f:?}"
        );
        if let Some(rest) = text.split(r#""close_in_ms":"#).nth(1) {
            return rest.trim_end_matches('}').parse().expect("close_in_ms");
        }
    }
}

#[test]
fn a_sigterm_while_prestop_waits_gives_every_websocket_its_notice_and_close_in_the_short_drain() {
    // The default drain (10 s window, 5 s handover, 5 s close handshake), and a preStop hook
    // still waiting when SIGTERM comes: the grace period is over.
    const CLIENTS: usize = 40;
    let mut server = TestServer::start(&[("PRESTOP_DELAY", "30s"), ("ALIVE_INTERVAL", "0")]);
    let mut clients: Vec<RawWs> = (0..CLIENTS)
        .map(|_| RawWs::connect(server.public))
        .collect();
    let mut hook = Client::connect(server.admin);
    hook.send(b"GET /prestop HTTP/1.1\r\nHost: t\r\n\r\n");
    server.wait_event("prestop", WAIT);
    server.signal("TERM");
    // The hook is answered at once: nobody waits for the rest of the 30 s.
    assert_eq!(hook.response().status, 200);
    let draining = server.wait_event("draining", WAIT);
    for (key, value) in [
        ("drain", "short"),
        ("reason", "grace_over"),
        ("window_ms", "750"),
        ("handover_ms", "375"),
        ("deadline_ms", "1500"),
    ] {
        assert_eq!(draining.get(key), Some(value), "{key} in {draining:?}");
    }
    // Every client gets its notice, then its close 1012: a close frame, never a cut. Half of
    // them answer the close; the others stay silent and are dropped when the process exits.
    for (i, ws) in clients.iter_mut().enumerate() {
        let close_in = read_notice(ws);
        assert!(close_in <= 375, "client {i}: close_in_ms {close_in}");
        let close = ws.read_reply();
        assert_eq!(close.close_code(), Some(1012), "client {i}: {close:?}");
        if i % 2 == 0 {
            ws.answer_close(1012);
        }
    }
    assert_eq!(
        server.wait_exit(WAIT).code(),
        Some(0),
        "{}",
        server.log_text()
    );
    let end = server.wait_event("drain_end", WAIT);
    let n = |key: &str| end.number(key).unwrap_or_else(|| panic!("{key}: {end:?}"));
    assert_eq!(
        [n("notices"), n("forced"), n("closes_sent"), n("cut")],
        [CLIENTS as u64, CLIENTS as u64, CLIENTS as u64, 0],
        "{end:?}"
    );
    // By the server's own clock: the exit came at the short drain's end (1.5 s, when the
    // loop next woke), before the kubelet's SIGKILL 2 s after the signal.
    assert!(n("after_ms") < 2_000, "{end:?}");
    for ws in &mut clients {
        ws.expect_tcp_close();
    }
}

#[test]
fn a_known_grace_period_shrinks_a_drain_that_no_longer_fits() {
    // The budget rule holds: 0.1 + 0.5 + 2 + 0 + 1 + 2 + 2 = 7.6 s. But SIGTERM comes 1.5 s
    // after /prestop (the hook was called by hand, or the kubelet was slow): 7.6 - 1.5 - 2 s of
    // margin leave about 4.1 s, less than the configured 5 s drain.
    let mut server = TestServer::start(&[
        ("PRESTOP_DELAY", "100ms"),
        ("DRAIN_WINDOW", "2s"),
        ("HANDOVER_TIMEOUT", "0"),
        ("CLOSE_TIMEOUT", "1s"),
        ("ALIVE_INTERVAL", "0"),
        ("TERMINATION_GRACE_PERIOD", "7.6s"),
    ]);
    let mut ws = RawWs::connect(server.public);
    let hook_called = std::time::Instant::now();
    assert_eq!(common::get(server.admin, "/prestop").status, 200);
    // The scenario itself: time passes between the hook and the signal.
    std::thread::sleep(Duration::from_millis(1_500).saturating_sub(hook_called.elapsed()));
    server.signal("TERM");
    let draining = server.wait_event("draining", WAIT);
    assert_eq!(
        (draining.get("drain"), draining.get("reason")),
        (Some("short"), Some("grace_left")),
        "{draining:?}"
    );
    let deadline = draining.number("deadline_ms").expect("deadline_ms");
    assert!(deadline < 4_200, "{draining:?}");
    // The metrics say which drain runs, while this WebSocket holds it open.
    let scraped = metrics(server.admin);
    assert_eq!(scraped.get("wsdrain_drain_plan{plan=\"short\"}"), Some(1.0));
    assert_eq!(scraped.get("wsdrain_drain_plan{plan=\"full\"}"), Some(0.0));
    assert_eq!(
        scraped.get("wsdrain_drain_deadline_seconds"),
        Some(deadline as f64 / 1000.0)
    );
    assert_eq!(ws.read_reply().close_code(), Some(1012));
    ws.answer_close(1012);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn an_answer_still_being_sent_at_the_drain_deadline_is_cut_and_counted() {
    // A client that stops reading in the middle of an 8 MB download (a small receive buffer,
    // so the kernel's buffers cannot take it all): the drain's deadline (0 + 0 + 300 ms + 2 s
    // of linger) ends the process with the answer unsent; the drain_end line says so. (The
    // server's send buffer grows with the congestion window, which the 4 KiB receive window
    // keeps small: it passed as well with tcp_wmem's maximum raised from 4 to 16 MiB.)
    let dir = temp_dir("big-static");
    std::fs::write(dir.join("big.bin"), vec![b'x'; 8_000_000]).expect("write the big file");
    let dir = dir.display().to_string();
    let mut server = TestServer::start(&[
        ("STATIC_DIR", dir.as_str()),
        ("DRAIN_WINDOW", "0"),
        ("HANDOVER_TIMEOUT", "0"),
        ("CLOSE_TIMEOUT", "300ms"),
    ]);
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .connect_timeout(&server.public.into(), WAIT)
        .expect("connect");
    let mut slow = std::net::TcpStream::from(socket);
    slow.set_read_timeout(Some(WAIT)).expect("timeout");
    slow.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let mut first = [0u8; 4096];
    let n = slow.read(&mut first).expect("the answer begins");
    assert!(first[..n].starts_with(b"HTTP/1.1 200 "));
    server.signal("TERM");
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    server.wait_event("drain_deadline_passed", WAIT);
    let end = server.wait_event("drain_end", WAIT);
    assert_eq!(
        (end.number("cut_answers"), end.number("still_open")),
        (Some(1), Some(1)),
        "{end:?}"
    );
}
