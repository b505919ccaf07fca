//! Alive messages, driven by hand: each on its connection's point of the 100 ms grid, once per
//! interval, none in echo mode, an interval off the grid kept at its length, and the loop's own
//! send the same message a run would queue.

use super::{at, context, settle, take_frames, texts, upgraded};

#[test]
fn alive_messages_fall_on_the_grid_once_per_interval_each() {
    // Connections opened at odd moments all get their alive messages on the 100 ms grid (so
    // the loop sends them in bursts), each within its first interval and then one per interval.
    let mut ctx = context(&[("ALIVE_INTERVAL", "1s"), ("PING_INTERVAL", "0")]);
    for opened_at in [13, 250, 777, 1_001, 4_321] {
        ctx.tick(opened_at);
        let (mut conn, mut client, _) = upgraded(&mut ctx);
        let first = conn.next_deadline(&ctx);
        assert_eq!(
            first % 100,
            0,
            "opened at {opened_at}: first alive at {first}"
        );
        assert!(
            (opened_at + 1..=opened_at + 1_100).contains(&first),
            "{first}"
        );
        let mut due = first;
        for _ in 0..3 {
            let (frames, _) = at(due, &mut conn, &mut ctx, &mut client);
            assert_eq!(frames.len(), 1, "one alive message at {due}");
            assert!(texts(&frames)[0].starts_with(r#"{"type":"alive","instance""#));
            assert_eq!(conn.next_deadline(&ctx), due + 1_000);
            due += 1_000;
        }
    }
}

#[test]
fn echo_mode_sends_nothing_of_its_own() {
    // Issue 21: with ECHO_MODE=echo and the default ALIVE_INTERVAL, alive messages still came
    // (the Autobahn tier passed only because it turned them off). A conformance suite expects
    // nothing but its echoes: no hello, no alive message, no notice.
    let mut ctx = context(&[("ECHO_MODE", "echo")]);
    let (mut conn, mut client, frames) = upgraded(&mut ctx);
    assert!(frames.is_empty(), "{:?}", texts(&frames));
    // Nothing is due before the ping (30 s of silence).
    assert_eq!(conn.next_deadline(&ctx), 30_000);
    for now in [5_000, 10_000, 29_999] {
        assert_eq!(
            at(now, &mut conn, &mut ctx, &mut client).0.len(),
            0,
            "at {now}"
        );
    }
    assert_eq!(ctx.metrics.ws.alive_sent, 0);
}

#[test]
fn an_interval_off_the_grid_keeps_its_length() {
    // Issue 21: the grid stretched 150 ms to 200 ms gaps, and 101 ms to 200 ms, past the page's
    // dead-link limit of twice the announced interval. The grid is then the largest step that
    // divides both the interval and 100 ms (50 ms for 150 ms; 1 ms for 101 ms), so each gap is
    // the interval announced.
    for (interval, grid) in [(150, 50), (101, 1), (250, 50), (1, 1), (300, 100)] {
        let setting = format!("{interval}ms");
        let mut ctx = context(&[("ALIVE_INTERVAL", setting.as_str()), ("PING_INTERVAL", "0")]);
        ctx.tick(7);
        let (mut conn, mut client, _) = upgraded(&mut ctx);
        let mut due = conn.next_deadline(&ctx);
        assert_eq!(due % grid, 0, "{interval} ms: first alive at {due}");
        assert!(
            (8..=7 + interval + grid).contains(&due),
            "{interval}: {due}"
        );
        for _ in 0..4 {
            let (frames, _) = at(due, &mut conn, &mut ctx, &mut client);
            assert_eq!(frames.len(), 1, "{interval} ms: one alive message at {due}");
            let next = conn.next_deadline(&ctx);
            assert_eq!(next - due, interval, "{interval} ms: the gap after {due}");
            due = next;
        }
    }
}

#[test]
fn an_alive_message_sent_by_the_loop_is_the_one_a_run_would_queue() {
    // Issue 23: when all a WebSocket has due is its alive message, the loop sends the frame it
    // made for that moment straight to the socket instead of running the connection. Two
    // connections side by side, one run at each deadline, the other given the loop's frame:
    // the same bytes, the same next deadline, the same counts, round after round; and a socket
    // that takes only part of the frame gets the rest from the connection's queue.
    let mut run_ctx = context(&[("ALIVE_INTERVAL", "1s"), ("PING_INTERVAL", "0")]);
    let mut sent_ctx = context(&[("ALIVE_INTERVAL", "1s"), ("PING_INTERVAL", "0")]);
    let (mut run, mut run_client, _) = upgraded(&mut run_ctx);
    let (mut sent, mut sent_client, _) = upgraded(&mut sent_ctx);
    assert_eq!(run.next_deadline(&run_ctx), sent.next_deadline(&sent_ctx));
    let (mut text, mut frame) = (String::new(), Vec::new());
    for round in 0..4 {
        let due = run.next_deadline(&run_ctx);
        let (frames, _) = at(due, &mut run, &mut run_ctx, &mut run_client);
        assert_eq!(frames.len(), 1, "round {round}");

        sent_ctx.tick(due);
        assert!(sent.only_alive_due(&sent_ctx), "round {round}");
        wsdrain::app::service::alive_frame(&sent_ctx, &mut text, &mut frame);
        // The socket takes 10 bytes in round 2; the rest waits in the queue.
        let written = if round == 2 { 10 } else { frame.len() };
        sent_client.received.extend_from_slice(&frame[..written]);
        sent.on_alive_sent(&frame, written, &mut sent_ctx);
        assert_eq!(sent.output_len(), frame.len() - written);
        assert_eq!(settle(&mut sent, &mut sent_ctx, &mut sent_client), None);
        assert_eq!(take_frames(&mut sent_client), frames, "round {round}");

        assert_eq!(sent.next_deadline(&sent_ctx), run.next_deadline(&run_ctx));
        assert_eq!(
            sent_ctx.metrics.ws.alive_sent,
            run_ctx.metrics.ws.alive_sent
        );
    }
    // Not while output waits (the alive message is skipped then), nor when more is due.
    let due = sent.next_deadline(&sent_ctx);
    sent_ctx.tick(due);
    sent.output()
        .extend_with(3, |v| v.extend_from_slice(b"abc"));
    assert!(!sent.only_alive_due(&sent_ctx));
}
