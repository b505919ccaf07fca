//! The sans-IO connection driven by hand: scenarios where the clock and the client's reading
//! speed decide the outcome, played exactly, without sockets. The loop's part (write what the
//! kernel takes, report it, ask what is next, fire the deadline) is done here step by step. The
//! handover's notice and close are `handover.rs`, the alive messages' grid `alive.rs`.

use std::io::{self, Write};
use std::path::Path;

use wsdrain::app::context::Context;
use wsdrain::app::static_files::{StaticFiles, StaticLimits};
use wsdrain::base::time::Millis;
use wsdrain::base::timers::Rng;
use wsdrain::config::{Command, Config};
use wsdrain::connection::{Connection, NextIo, Verdict};
use wsdrain::net::Listener;

mod alive;
mod handover;

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
    let files = StaticFiles::load(Path::new(dir), StaticLimits::of(&config)).expect("static files");
    Context::new(
        *config,
        files,
        "test",
        Rng::seeded(1),
        std::time::SystemTime::now,
    )
}

/// The drain begins at `ctx.now` (a signal): `conn`'s turn comes at `at`, as the loop would
/// schedule it. Returns whether it was a WebSocket to schedule.
fn drain(conn: &mut Connection, ctx: &mut Context, at: Millis) -> bool {
    ctx.lifecycle.on_signal(ctx.now, &ctx.config);
    let handover_ms = ctx.lifecycle.drain_plan().map_or(0, |p| p.handover_ms);
    conn.schedule_drain(at, handover_ms, ctx.now).is_some()
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
    // A connection that never asks to wait is a bug this bound turns into a failure.
    for _ in 0..100_000 {
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
    panic!("the connection kept asking to continue")
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
    // The client's close frame was its last word: the socket closes once the close is out.
    assert_eq!(end, NextIo::Close);
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

/// The upgrade request every WebSocket test starts with.
const UPGRADE: &[u8] =
    b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A connection upgraded at time 0, with a client that reads everything; returns the frames the
/// server wrote after its 101 answer.
fn upgraded(ctx: &mut Context) -> (Connection, SlowReader, Vec<testkit::ws::Frame>) {
    let mut conn = Connection::new(1, Listener::Public, 0);
    let mut client = SlowReader {
        received: Vec::new(),
        budget: usize::MAX,
    };
    assert_eq!(conn.on_bytes(&mut UPGRADE.to_vec(), ctx), Verdict::Keep);
    assert_eq!(settle(&mut conn, ctx, &mut client), None);
    assert!(client.received.starts_with(b"HTTP/1.1 101 "));
    let head = client
        .received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the 101's head")
        + 4;
    client.received.drain(..head);
    let frames = take_frames(&mut client);
    (conn, client, frames)
}

/// The whole frames the client has received, taken out of its buffer.
fn take_frames(client: &mut SlowReader) -> Vec<testkit::ws::Frame> {
    let mut frames = Vec::new();
    while let Some((frame, used)) = testkit::ws::decode(&client.received) {
        client.received.drain(..used);
        frames.push(frame);
    }
    frames
}

/// Moves the clock to `now` and, if the connection's deadline has come, runs it as the loop
/// would; returns the frames the client then received and how the connection ended, if it did.
fn at(
    now: Millis,
    conn: &mut Connection,
    ctx: &mut Context,
    client: &mut SlowReader,
) -> (Vec<testkit::ws::Frame>, Option<NextIo>) {
    ctx.tick(now);
    if conn.next_deadline(ctx) <= now {
        assert_eq!(conn.on_timeout(ctx), Verdict::Keep, "dropped at {now} ms");
    }
    let end = settle(conn, ctx, client);
    (take_frames(client), end)
}

fn texts(frames: &[testkit::ws::Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match f.opcode {
            1 => String::from_utf8_lossy(&f.payload).into_owned(),
            8 => format!("close {:?}", f.close_code()),
            op => format!("opcode {op}"),
        })
        .collect()
}

#[test]
fn a_client_that_stopped_reading_long_ago_still_gets_pong_timeout_for_its_close_frame() {
    // Issue 21: the stall clock counted from the last write progress. A client whose socket
    // took nothing since connecting (its hello still queued), 60 s later asked to go: its close
    // frame's stall deadline was 10 s after the connect, long past, so it was dropped for "not
    // reading" at once. The wait begins when the close is queued.
    let mut ctx = context(&[
        ("HANDOVER_TIMEOUT", "0"),
        ("PONG_TIMEOUT", "10s"),
        ("ALIVE_INTERVAL", "0"),
        ("PING_INTERVAL", "0"),
    ]);
    let (mut conn, mut client, _) = upgraded(&mut ctx);
    client.budget = 0;
    ctx.tick(1_000);
    assert_eq!(
        conn.on_bytes(&mut masked(0x1, b"unread"), &mut ctx),
        Verdict::Keep
    );
    assert_eq!(settle(&mut conn, &mut ctx, &mut client), None);
    assert!(conn.output_len() > 0, "the reply waits for the client");
    ctx.tick(60_000);
    drain(&mut conn, &mut ctx, 60_000);
    assert_eq!(
        conn.on_timeout(&mut ctx),
        Verdict::Keep,
        "the close is queued"
    );
    assert_eq!(conn.next_deadline(&ctx), 70_000, "PONG_TIMEOUT from now");
    // The client reads at last: the reply, then the close frame.
    client.budget = usize::MAX;
    let (frames, _) = at(65_000, &mut conn, &mut ctx, &mut client);
    assert_eq!(texts(&frames), ["daernu", "close Some(1012)"]);
}

#[test]
fn a_finished_close_handshake_closes_at_once_and_a_failure_lingers() {
    // Our close (the drain's 1012) answered by the client: nothing more can come, close now.
    let mut ctx = context(&[("HANDOVER_TIMEOUT", "0"), ("ALIVE_INTERVAL", "0")]);
    let (mut conn, mut client, _) = upgraded(&mut ctx);
    drain(&mut conn, &mut ctx, 100);
    let (frames, end) = at(100, &mut conn, &mut ctx, &mut client);
    assert_eq!(
        (texts(&frames), end),
        (vec!["close Some(1012)".into()], None)
    );
    ctx.tick(150);
    let mut answer = masked(0x8, &1012u16.to_be_bytes());
    assert_eq!(conn.on_bytes(&mut answer, &mut ctx), Verdict::Keep);
    assert_eq!(
        at(150, &mut conn, &mut ctx, &mut client).1,
        Some(NextIo::Close)
    );

    // A protocol error: the client may still be sending, so the server shuts down its side
    // and reads until EOF rather than risk a reset that would destroy its 1002.
    let mut ctx = context(&[("ALIVE_INTERVAL", "0")]);
    let (mut conn, mut client, _) = upgraded(&mut ctx);
    let mut bad = masked(0x3, b"reserved opcode");
    assert_eq!(conn.on_bytes(&mut bad, &mut ctx), Verdict::Keep);
    let (frames, end) = at(0, &mut conn, &mut ctx, &mut client);
    assert_eq!(texts(&frames), ["close Some(1002)"]);
    assert_eq!(end, Some(NextIo::ShutdownWrite));
}

#[test]
fn an_answer_queued_long_after_the_last_progress_gets_its_idle_timeout_from_now() {
    // The 408 for a head still incomplete at the header timeout (2 s) was given IDLE_TIMEOUT
    // (1 s) from the accept to be read: a client that could not take it at once had a deadline
    // already past as it was set (the loop ran it again at once and dropped the client). The
    // simulation found it once the timer wheel changed the order of a seed's events.
    let mut ctx = context(&[("HEADER_TIMEOUT", "2s"), ("IDLE_TIMEOUT", "1s")]);
    let mut conn = Connection::new(1, Listener::Public, 0);
    assert_eq!(
        conn.on_bytes(&mut b"GET / HTTP/1.1\r\nHost".to_vec(), &mut ctx),
        Verdict::Keep
    );
    ctx.tick(2_000);
    assert_eq!(conn.next_deadline(&ctx), 2_000);
    assert_eq!(conn.on_timeout(&mut ctx), Verdict::Keep);
    assert!(conn.output_len() > 0, "the 408 is queued");
    // The client takes nothing yet: it has IDLE_TIMEOUT from now.
    assert_eq!(conn.next_deadline(&ctx), 3_000);
}

#[test]
fn a_head_sent_in_pieces_gets_the_verdict_it_would_get_whole() {
    // A read that ends no line is not parsed again (that would be quadratic in the head), but
    // a byte no head may hold, or reaching the size limit, still decides at once: a 400 or a
    // 431, not a 408 at the header timeout.
    let at_limit = [b"GET /".to_vec(), vec![b'a'; 1024 - 5]];
    let cases: [(Vec<Vec<u8>>, &str); 3] = [
        (
            vec![b"GET / HT".to_vec(), b"TP/1.1\x01 junk".to_vec()],
            "400",
        ),
        (
            vec![b"GET / HTTP/1.1\r\nX: ".to_vec(), b"a\x7fb".to_vec()],
            "400",
        ),
        (at_limit.to_vec(), "431"),
    ];
    for (pieces, status) in cases {
        let mut ctx = context(&[("HEADER_TIMEOUT", "10s"), ("MAX_HEADER_BYTES", "1KiB")]);
        let mut conn = Connection::new(1, Listener::Public, 0);
        let mut client = SlowReader {
            received: Vec::new(),
            budget: usize::MAX,
        };
        for mut piece in pieces {
            assert_eq!(conn.on_bytes(&mut piece, &mut ctx), Verdict::Keep);
            settle(&mut conn, &mut ctx, &mut client);
        }
        let answer = String::from_utf8_lossy(&client.received);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{status}: {answer:?}"
        );
    }
}
