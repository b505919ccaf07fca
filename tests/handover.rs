//! The zero-gap handover over real sockets: the goaway notice at a WebSocket's drain time, a
//! client that moves by itself, and one that ignores the notice until the close 1012.

mod common;

use std::time::Instant;

use common::{RawWs, TestServer, WAIT};

/// Reads frames until the goaway notice, answering nothing; returns its text.
fn read_notice(ws: &mut RawWs) -> String {
    loop {
        let f = ws.read_frame();
        let text = f.text();
        if f.opcode == 1 && text.starts_with(r#"{"type":"alive","event":"goaway""#) {
            return text;
        }
        assert!(
            f.opcode == 1 && text.starts_with(r#"{"type":"alive""#),
            "before the notice: {f:?}"
        );
    }
}

#[test]
fn a_client_that_knows_the_handover_is_served_until_it_leaves_by_itself() {
    let mut server = TestServer::start(&[
        ("DRAIN_WINDOW", "300ms"),
        ("HANDOVER_TIMEOUT", "30s"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    let mut ws = RawWs::connect(server.public);
    server.signal("TERM");
    let notice = read_notice(&mut ws);
    for part in [
        r#""instance":"test-instance""#,
        r#""phase":"draining""#,
        r#""close_in_ms":"#,
    ] {
        assert!(notice.contains(part), "{notice}");
    }
    // The socket keeps working after the notice (the client finishes what it sent here)...
    ws.send_text("after the notice");
    assert_eq!(ws.read_reply().text(), "eciton eht retfa");
    // ...until the client closes it: a clean close, and the drain is over long before the
    // 30 s handover would have forced it.
    ws.send(true, 8, &1000u16.to_be_bytes());
    ws.expect_close(1000);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    server.wait_event("drain_complete", WAIT);
    let end = server.wait_event("drain_end", WAIT);
    let counts = ["notices", "left", "forced", "closes_sent", "clean"].map(|k| end.number(k));
    assert_eq!(counts, [1, 1, 0, 0, 1].map(Some), "{end:?}");
}

#[test]
fn a_client_that_ignores_the_notice_keeps_working_until_the_handover_timeout_closes_it() {
    let mut server = TestServer::start(&[
        ("DRAIN_WINDOW", "200ms"),
        ("HANDOVER_TIMEOUT", "1s"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    let mut ws = RawWs::connect(server.public);
    server.signal("TERM");
    read_notice(&mut ws);
    // An old client reads the notice as one more alive message and goes on until the close.
    let mut echoed = 0;
    let give_up = Instant::now() + WAIT;
    let close = loop {
        assert!(Instant::now() < give_up, "no 1012 after {echoed} echoes");
        ws.send_text("still?");
        let f = ws.read_reply();
        if f.opcode == 8 {
            break f;
        }
        assert_eq!(f.text(), "?llits");
        echoed += 1;
    };
    assert!(echoed > 0);
    assert_eq!(close.close_code(), Some(1012));
    assert!(close.close_reason().contains("restarting"));
    ws.answer_close(1012);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    let end = server.wait_event("drain_end", WAIT);
    let counts = ["notices", "left", "forced", "closes_sent", "clean"].map(|k| end.number(k));
    assert_eq!(counts, [1, 0, 1, 1, 1].map(Some), "{end:?}");
}

#[test]
fn a_websocket_noticed_for_its_age_before_the_drain_is_not_planned_again() {
    // Issue 21: the drain_schedule line counted sockets whose age handover was already under
    // way as closes it planned. Such a socket keeps its notice; only its close may come sooner.
    let mut server = TestServer::start(&[
        ("MAX_CONNECTION_AGE", "1s"),
        ("HANDOVER_TIMEOUT", "30s"),
        ("DRAIN_WINDOW", "200ms"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    let mut noticed = RawWs::connect(server.public);
    assert!(read_notice(&mut noticed).contains(r#""phase":"serving""#));
    let mut fresh = RawWs::connect(server.public);
    server.signal("TERM");
    let schedule = server.wait_event("drain_schedule", WAIT);
    assert_eq!(
        (schedule.number("closes"), schedule.number("noticed_before")),
        (Some(1), Some(1)),
        "{schedule:?}"
    );
    // The fresh one gets the drain's notice; then both clients leave by themselves.
    assert!(read_notice(&mut fresh).contains(r#""phase":"draining""#));
    for ws in [&mut noticed, &mut fresh] {
        ws.send(true, 8, &1000u16.to_be_bytes());
        ws.expect_close(1000);
    }
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
}
