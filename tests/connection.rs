//! The sans-IO connection driven by hand: scenarios where the clock and the client's reading
//! speed decide the outcome, played exactly, without sockets. The loop's part (write what the
//! kernel takes, report it, ask what is next, fire the deadline) is done here step by step.

use std::io::{self, Write};
use std::path::Path;

use wsdrain::app::context::Context;
use wsdrain::app::static_files::StaticFiles;
use wsdrain::base::timers::{Millis, Rng};
use wsdrain::config::{Command, Config};
use wsdrain::connection::{Connection, NextIo, Verdict};
use wsdrain::net::Listener;

fn context(settings: &[(&str, &str)]) -> Context {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/static");
    let Ok(Command::Run(config)) = Config::parse(Vec::<String>::new(), |name| {
        if name == "STATIC_DIR" {
            return Some(dir.to_string());
        }
        settings
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }) else {
        panic!("settings")
    };
    let files = StaticFiles::load(Path::new(dir)).expect("static files");
    Context::new(
        *config,
        files,
        "test",
        Rng::seeded(1),
        std::time::SystemTime::now,
    )
}

/// A client that takes at most `budget` bytes, then would block.
struct SlowReader {
    received: Vec<u8>,
    budget: usize,
}

impl Write for SlowReader {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.budget == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.budget);
        self.budget -= n;
        self.received.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A masked, final client frame (the test kit's codec).
fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    testkit::ws::encode(true, opcode, payload, Some([7, 1, 2, 9]), 0)
}

/// What the loop does after bytes or a deadline: write what the client takes, then let the
/// connection serve its buffered input, until it wants to read or must wait. Returns whether
/// the connection ended (and how).
fn settle(conn: &mut Connection, ctx: &mut Context, client: &mut SlowReader) -> Option<NextIo> {
    loop {
        if conn.output_len() > 0 {
            let n = conn.output().write_to(client).expect("write");
            conn.on_written(n, ctx.now);
        }
        match conn.next_io(ctx) {
            NextIo::Continue => {}
            NextIo::Read | NextIo::Paused | NextIo::InputClosed => return None,
            end @ (NextIo::ShutdownWrite | NextIo::Close) => return Some(end),
        }
    }
}

#[test]
fn a_slow_reader_gets_every_reply_before_the_close_timeout_counts() {
    // The client sends a 100 KiB message and its close right behind it, then reads 8 KiB every
    // half second: 6 s for the reply, far over CLOSE_TIMEOUT (1 s) but never a stall as long
    // as PONG_TIMEOUT (10 s). The close handshake's clock starts when the server's close frame
    // is written, not when it is queued behind the reply: the client gets the whole reply and
    // the close, and the server ends the connection itself (shutdown), not for a timeout.
    let mut ctx = context(&[
        ("CLOSE_TIMEOUT", "1s"),
        ("PONG_TIMEOUT", "10s"),
        ("PING_INTERVAL", "0"),
        ("ALIVE_INTERVAL", "0"),
        ("MAX_MESSAGE_SIZE", "1MiB"),
        ("MAX_OUTPUT_BYTES", "4MiB"),
    ]);
    let mut conn = Connection::new(1, Listener::Public, 0);
    let mut client = SlowReader {
        received: Vec::new(),
        budget: usize::MAX,
    };
    let mut upgrade =
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            .to_vec();
    assert_eq!(conn.on_bytes(&mut upgrade, &mut ctx), Verdict::Keep);
    assert_eq!(settle(&mut conn, &mut ctx, &mut client), None);
    assert!(client.received.starts_with(b"HTTP/1.1 101 "));
    client.received.clear();

    let message = "ab".repeat(50 * 1024);
    let mut input = masked(0x1, message.as_bytes());
    input.extend(masked(0x8, &1000u16.to_be_bytes()));
    client.budget = 0;
    assert_eq!(conn.on_bytes(&mut input, &mut ctx), Verdict::Keep);
    let mut now: Millis = 0;
    let end = loop {
        now += 500;
        assert!(now < 60_000, "the connection never ended");
        ctx.tick(now);
        client.budget = 8 * 1024;
        if let Some(end) = settle(&mut conn, &mut ctx, &mut client) {
            break end;
        }
        if conn.next_deadline(&ctx) <= now {
            assert_eq!(
                conn.on_timeout(&mut ctx),
                Verdict::Keep,
                "dropped at {now} ms with {} bytes still queued",
                conn.output_len()
            );
        }
    };
    assert_eq!(end, NextIo::ShutdownWrite);
    let reply_frame_len = 10 + message.len(); // a 64-bit length: 2 + 8 header bytes
    assert_eq!(
        client.received.len(),
        reply_frame_len + 4,
        "the reply, then the close"
    );
    assert_eq!(
        &client.received[reply_frame_len..],
        &[0x88, 0x02, 0x03, 0xe8]
    );
    assert_eq!(ctx.metrics.ws.close_timeouts, 0);
    assert!(
        now > 1_000,
        "the test must outlast CLOSE_TIMEOUT ({now} ms)"
    );
}
