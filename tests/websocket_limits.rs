//! WebSocket limits over real sockets, with a raw-frame client: every protocol violation gets its
//! close code (1002, 1003, 1007, 1009, 1008), logged with its reason, and a client that sends but
//! never reads is throttled, then closed.

mod common;

use common::{RawWs, TestServer, assert_metrics, encode_frame, get, next_text, ws_client};
use tungstenite::Message;

/// Checks that the server's next close with `code` was logged, at debug (one connection's
/// detail), with the reason its close frame carried.
#[track_caller]
fn assert_close_logged(server: &mut TestServer, code: u16, reason: &str) {
    let line = server.next_log_line(&format!(": websocket: closing with {code}: "));
    assert!(
        line.contains(" DEBUG ") && line.ends_with(&format!(": {reason}")),
        "close {code} ({reason:?}) logged as: {line}"
    );
}

#[test]
fn message_size_limit_is_1009_and_checked_from_the_header() {
    let mut server = TestServer::start(&[("MAX_MESSAGE_SIZE", "1KiB")]);
    let mut ws = RawWs::connect(server.public);
    let at_limit = "a".repeat(1024);
    ws.send_text(&at_limit);
    assert_eq!(ws.read_reply().payload.len(), 1024);
    ws.send_text(&"a".repeat(1025));
    let reason = ws.expect_close(1009);
    assert_close_logged(&mut server, 1009, &reason);

    // A header that declares 1 MiB is refused before any payload is sent.
    let mut ws = RawWs::connect(server.public);
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 20).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    ws.send_raw(&header);
    let reason = ws.expect_close(1009);
    assert_close_logged(&mut server, 1009, &reason);

    // Fragments that add up to more than the limit.
    let mut ws = RawWs::connect(server.public);
    ws.send(false, 1, "a".repeat(600).as_bytes());
    ws.send(true, 0, "a".repeat(600).as_bytes());
    let reason = ws.expect_close(1009);
    assert_close_logged(&mut server, 1009, &reason);
    assert_eq!(get(server.public, "/healthz").status, 200);
}

#[test]
fn protocol_violations_close_with_1002() {
    let mut server = TestServer::start(&[]);
    let mask = Some([9, 8, 7, 6]);
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "unmasked frame",
            vec![encode_frame(true, 1, b"hi", None, 0)],
        ),
        ("RSV1 set", vec![encode_frame(true, 1, b"hi", mask, 4)]),
        ("RSV2 set", vec![encode_frame(true, 1, b"hi", mask, 2)]),
        ("RSV3 set", vec![encode_frame(true, 1, b"hi", mask, 1)]),
        (
            "reserved data opcode",
            vec![encode_frame(true, 3, b"", mask, 0)],
        ),
        (
            "reserved control opcode",
            vec![encode_frame(true, 0xB, b"", mask, 0)],
        ),
        (
            "fragmented ping",
            vec![encode_frame(false, 9, b"x", mask, 0)],
        ),
        (
            "ping over 125 bytes",
            vec![encode_frame(true, 9, &[0; 126], mask, 0)],
        ),
        (
            "continuation without a message",
            vec![encode_frame(true, 0, b"x", mask, 0)],
        ),
        (
            "text inside a fragmented message",
            vec![
                encode_frame(false, 1, b"a", mask, 0),
                encode_frame(true, 1, b"b", mask, 0),
            ],
        ),
        (
            "close with a 1-byte payload",
            vec![encode_frame(true, 8, &[3], mask, 0)],
        ),
        (
            "close code 1005",
            vec![encode_frame(true, 8, &1005u16.to_be_bytes(), mask, 0)],
        ),
        (
            "close code 999",
            vec![encode_frame(true, 8, &999u16.to_be_bytes(), mask, 0)],
        ),
        (
            "close code 1004",
            vec![encode_frame(true, 8, &1004u16.to_be_bytes(), mask, 0)],
        ),
        (
            "close code 5000",
            vec![encode_frame(true, 8, &5000u16.to_be_bytes(), mask, 0)],
        ),
    ];
    let violations = cases.len();
    for (name, frames) in cases {
        let mut ws = RawWs::connect(server.public);
        for f in frames {
            ws.send_raw(&f);
        }
        let reply = ws.read_reply();
        assert_eq!(
            (reply.opcode, reply.close_code()),
            (8, Some(1002)),
            "{name}: {reply:?}"
        );
        ws.expect_tcp_close();
        assert_close_logged(&mut server, 1002, &reply.close_reason());
    }
    assert_metrics(
        server.admin,
        &[(
            "wsdrain_websocket_closes_total{code=\"1002\",by=\"server\"}",
            violations as f64,
        )],
    );
}

#[test]
fn a_64_bit_length_with_its_top_bit_set_is_1002_not_1009() {
    // RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0. Such a header is
    // malformed, not a large message.
    let mut server = TestServer::start(&[]);
    for (first, length) in [
        (0x81, 1u64 << 63),
        (0x81, u64::MAX),
        (0x82, (1u64 << 63) | 5),
        (0x01, 1u64 << 63),
    ] {
        let mut ws = RawWs::connect(server.public);
        let mut header = vec![first, 0x80 | 127];
        header.extend_from_slice(&length.to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        ws.send_raw(&header);
        let reply = ws.read_reply();
        assert_eq!(
            (reply.opcode, reply.close_code()),
            (8, Some(1002)),
            "{first:#x} {length:#x}: {:?}",
            String::from_utf8_lossy(&reply.payload)
        );
        ws.expect_tcp_close();
        assert_close_logged(&mut server, 1002, &reply.close_reason());
    }
}

#[test]
fn invalid_utf8_closes_with_1007() {
    let mut server = TestServer::start(&[]);
    type Frames = Vec<(bool, u8, Vec<u8>)>;
    let cases: Vec<(&str, Frames)> = vec![
        ("one frame", vec![(true, 1, vec![b'a', 0xff, b'b'])]),
        ("surrogate", vec![(true, 1, vec![0xed, 0xa0, 0x80])]),
        (
            "split across fragments",
            vec![(false, 1, vec![b'a', 0xe2]), (true, 0, vec![0x28, 0xa1])],
        ),
        (
            "incomplete at the end",
            vec![(false, 1, b"ok".to_vec()), (true, 0, vec![0xe2, 0x82])],
        ),
        ("close reason", vec![(true, 8, vec![0x03, 0xe8, 0xff])]),
    ];
    for (name, frames) in cases {
        let mut ws = RawWs::connect(server.public);
        for (fin, opcode, payload) in frames {
            ws.send(fin, opcode, &payload);
        }
        let reply = ws.read_reply();
        assert_eq!(
            (reply.opcode, reply.close_code()),
            (8, Some(1007)),
            "{name}: {reply:?}"
        );
        ws.expect_tcp_close();
        assert_close_logged(&mut server, 1007, &reply.close_reason());
    }
    // Fail fast: a fragment that can never become valid fails before the message ends.
    let mut ws = RawWs::connect(server.public);
    ws.send(false, 1, &[b'a', 0xc0, 0x80]);
    let reason = ws.expect_close(1007);
    assert_close_logged(&mut server, 1007, &reason);
}

#[test]
fn binary_is_refused_with_1003_unless_echo_mode() {
    let mut server = TestServer::start(&[]);
    let mut ws = RawWs::connect(server.public);
    ws.send(true, 2, &[1, 2, 3]);
    let reason = ws.expect_close(1003);
    assert_close_logged(&mut server, 1003, &reason);

    let server = TestServer::start(&[("ECHO_MODE", "echo")]);
    let mut ws = RawWs::connect_echo(server.public);
    ws.send(true, 2, &[1, 2, 3]);
    let f = ws.read_reply();
    assert_eq!((f.opcode, f.payload), (2, vec![1, 2, 3]));
    ws.send_text("as is");
    assert_eq!(ws.read_reply().text(), "as is");
}

#[test]
fn a_client_that_sends_but_never_reads_is_throttled_then_closed() {
    let server = TestServer::start(&[
        ("MAX_OUTPUT_BYTES", "64KiB"),
        ("PONG_TIMEOUT", "1s"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    let mut flooder = RawWs::connect(server.public);
    // Sending stops by itself: the server stops reading once its output is backed up.
    let frame = encode_frame(true, 1, &[b'x'; 1000], Some([1, 2, 3, 4]), 0);
    flooder.write_until_the_server_stops_reading(&frame);
    // Others are answered meanwhile.
    let mut other = ws_client(server.public);
    other.send(Message::text("ok?")).unwrap();
    assert_eq!(next_text(&mut other), "?ko");
    // Without write progress for PONG_TIMEOUT, the server gives up on it.
    flooder.expect_dropped_for_not_reading(server.admin);
    assert_metrics(
        server.admin,
        &[("wsdrain_connections_open{kind=\"websocket\"}", 1.0)],
    );
}

#[test]
fn output_cap_counts_payload_and_closes_with_1008_past_it() {
    // The largest message the cap allows (start-up refuses a cap below it, so that a client
    // that reads everything is never closed for the size of one reply).
    let mut server = TestServer::start(&[
        ("MAX_MESSAGE_SIZE", "4KiB"),
        ("MAX_OUTPUT_BYTES", "4KiB"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    // A reply as large as the cap fits (its frame header is not counted).
    let mut ws = RawWs::connect(server.public);
    ws.send_text(&"a".repeat(4096));
    assert_eq!(ws.read_reply().payload.len(), 4096);
    ws.send_text("still open");
    assert_eq!(ws.read_reply().text(), "nepo llits");
    // Two messages in one write, read in one go: the second reply lands on the first, still
    // queued (below the high-water mark, 2 KiB, the server goes on reading), and takes the
    // output past the cap. It is sent, then the connection is closed with 1008.
    let mut both = encode_frame(true, 1, &[b'b'; 2000], Some([1, 2, 3, 4]), 0);
    both.extend(encode_frame(true, 1, &[b'c'; 3000], Some([1, 2, 3, 4]), 0));
    ws.send_raw(&both);
    assert_eq!(ws.read_reply().payload.len(), 2000);
    assert_eq!(ws.read_reply().payload.len(), 3000);
    let reason = ws.expect_close(1008);
    assert_close_logged(&mut server, 1008, &reason);
}

#[test]
fn invalid_utf8_fails_fast_inside_a_frame_that_is_still_arriving() {
    let server = TestServer::start(&[("ALIVE_INTERVAL", "0")]);
    // One 20-byte text frame: valid bytes, then a byte that can never start UTF-8, then the
    // rest is never sent. The close must come without waiting for the end of the frame.
    let mut payload = "κόσμε".as_bytes().to_vec();
    payload.push(0xff);
    payload.resize(20, b'a');
    let frame = encode_frame(true, 1, &payload, Some([7, 7, 7, 7]), 0);
    let mut ws = RawWs::connect(server.public);
    ws.send_raw(&frame[..2 + 4 + 5]); // header, mask and 5 valid bytes
    ws.send_raw(&frame[2 + 4 + 5..2 + 4 + 12]); // up to and past the bad byte
    ws.expect_close(1007);
    // A valid frame sent in pieces that split a character is accepted.
    let mut ws = RawWs::connect(server.public);
    let frame = encode_frame(true, 1, "a€b".as_bytes(), Some([1, 2, 3, 4]), 0);
    for byte in &frame {
        ws.send_raw(&[*byte]);
    }
    assert_eq!(ws.read_reply().text(), "b€a");
}
