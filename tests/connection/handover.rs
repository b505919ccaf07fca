//! The handover, driven by hand: the hello that says how long a move may take, the goaway
//! notice at the connection's drain time, the close HANDOVER_TIMEOUT later or at once, and how a
//! short drain and the age limit bring both forward.

use wsdrain::connection::{NextIo, Verdict};

use super::{at, context, drain, masked, texts, upgraded};

#[test]
fn the_hello_comes_first_and_says_who_answers_and_how_long_a_handover_may_take() {
    let mut ctx = context(&[("HANDOVER_TIMEOUT", "3s"), ("ALIVE_INTERVAL", "2s")]);
    let (_, _, frames) = upgraded(&mut ctx);
    assert_eq!(
        texts(&frames),
        [concat!(
            r#"{"type":"alive","event":"hello","instance":"test","phase":"serving","#,
            r#""interval_ms":2000,"uptime_ms":0,"handover_ms":3000}"#
        )]
    );
    // A conformance suite expects nothing but its echoes: no hello in echo mode.
    let mut ctx = context(&[("ECHO_MODE", "echo")]);
    let (_, _, frames) = upgraded(&mut ctx);
    assert!(frames.is_empty(), "{:?}", texts(&frames));
}

#[test]
fn the_notice_comes_at_the_drain_time_and_the_close_handover_timeout_later() {
    let mut ctx = context(&[
        ("HANDOVER_TIMEOUT", "3s"),
        ("ALIVE_INTERVAL", "0"),
        ("PING_INTERVAL", "0"),
    ]);
    let (mut conn, mut client, _) = upgraded(&mut ctx);
    ctx.tick(1_000);
    assert!(drain(&mut conn, &mut ctx, 1_500));
    assert_eq!(conn.next_deadline(&ctx), 1_500);
    assert_eq!(at(1_499, &mut conn, &mut ctx, &mut client).0.len(), 0);
    let (frames, end) = at(1_500, &mut conn, &mut ctx, &mut client);
    assert_eq!(end, None);
    assert_eq!(
        texts(&frames),
        [concat!(
            r#"{"type":"alive","event":"goaway","instance":"test","phase":"draining","#,
            r#""interval_ms":0,"uptime_ms":1500,"close_in_ms":3000}"#
        )]
    );
    assert_eq!(conn.next_deadline(&ctx), 4_500);
    // Still served in the meantime.
    ctx.tick(2_000);
    assert_eq!(
        conn.on_bytes(&mut masked(0x1, b"still here"), &mut ctx),
        Verdict::Keep
    );
    let (frames, _) = at(2_000, &mut conn, &mut ctx, &mut client);
    assert_eq!(texts(&frames), ["ereh llits"]);
    // A client that does not move is closed when the handover time is up, not before.
    assert_eq!(at(4_499, &mut conn, &mut ctx, &mut client).0.len(), 0);
    let (frames, _) = at(4_500, &mut conn, &mut ctx, &mut client);
    assert_eq!(texts(&frames), ["close Some(1012)"]);
    let ws = &ctx.metrics.ws;
    assert_eq!(
        (ws.handover_notices, ws.handover_left, ws.handover_forced),
        (1, 0, 1)
    );
    assert_eq!(ctx.lifecycle.drain_closes(), [3_500]);
}

#[test]
fn a_client_that_moves_after_the_notice_closes_cleanly_and_is_counted() {
    let mut ctx = context(&[("HANDOVER_TIMEOUT", "3s"), ("ALIVE_INTERVAL", "0")]);
    let (mut conn, mut client, _) = upgraded(&mut ctx);
    drain(&mut conn, &mut ctx, 100);
    let (frames, _) = at(100, &mut conn, &mut ctx, &mut client);
    assert!(texts(&frames)[0].contains(r#""event":"goaway""#));
    // Its last message and its close in one read: the reply goes out before the close.
    ctx.tick(600);
    let mut input = masked(0x1, b"last");
    input.extend(masked(0x8, &1000u16.to_be_bytes()));
    assert_eq!(conn.on_bytes(&mut input, &mut ctx), Verdict::Keep);
    let (frames, end) = at(600, &mut conn, &mut ctx, &mut client);
    assert_eq!(texts(&frames), ["tsal", "close Some(1000)"]);
    assert_eq!(end, Some(NextIo::Close));
    let ws = &ctx.metrics.ws;
    assert_eq!(
        (ws.handover_notices, ws.handover_left, ws.handover_forced),
        (1, 1, 0)
    );
    assert!(ctx.lifecycle.drain_closes().is_empty(), "no 1012 was sent");
}

#[test]
fn without_a_handover_or_with_its_time_gone_the_close_comes_at_once() {
    // HANDOVER_TIMEOUT=0: the close 1012 at the drain time, as before the handover existed.
    // Echo mode: the same (no notice). A loop that stalled past the handover's end: the close,
    // with no notice that would promise time that is gone.
    for (settings, run_at) in [
        (&[("HANDOVER_TIMEOUT", "0")][..], 1_500),
        (&[("ECHO_MODE", "echo")][..], 1_500),
        (&[("HANDOVER_TIMEOUT", "3s")][..], 4_500),
    ] {
        let mut ctx = context(settings);
        let (mut conn, mut client, _) = upgraded(&mut ctx);
        ctx.tick(1_000);
        drain(&mut conn, &mut ctx, 1_500);
        let (frames, _) = at(run_at, &mut conn, &mut ctx, &mut client);
        assert_eq!(texts(&frames), ["close Some(1012)"], "{settings:?}");
        assert_eq!(ctx.metrics.ws.handover_notices, 0, "{settings:?}");
    }
    // A stalled loop that wakes inside the handover: the notice gives the time that is left.
    let mut ctx = context(&[("HANDOVER_TIMEOUT", "3s"), ("ALIVE_INTERVAL", "0")]);
    let (mut conn, mut client, _) = upgraded(&mut ctx);
    ctx.tick(1_000);
    drain(&mut conn, &mut ctx, 1_500);
    let (frames, _) = at(4_000, &mut conn, &mut ctx, &mut client);
    assert!(
        texts(&frames)[0].ends_with(r#""close_in_ms":500}"#),
        "{:?}",
        texts(&frames)
    );
    assert_eq!(conn.next_deadline(&ctx), 4_500);
}

#[test]
fn a_signal_while_prestop_waits_gives_notice_and_close_within_the_short_drain() {
    // The defaults: /prestop at 0 is answered at 15.5 s. A SIGTERM at 15 s (a Spot node's grace
    // period is over) finds it waiting: the 10 s + 5 s + 5 s drain shrinks to SHORT_DRAIN 1.5 s.
    let mut ctx = context(&[("ALIVE_INTERVAL", "0"), ("PING_INTERVAL", "0")]);
    let (mut conn, mut client, _) = upgraded(&mut ctx);
    let answer_delay = ctx.config.prestop_answer_delay();
    assert_eq!(ctx.lifecycle.request_prestop(0, answer_delay), 15_500);
    ctx.tick(15_000);
    // Its turn at 0.7 s of the 0.75 s window.
    assert!(drain(&mut conn, &mut ctx, 15_700));
    let plan = *ctx.lifecycle.drain_plan().expect("draining");
    assert_eq!(
        (
            plan.kind(),
            plan.window_ms,
            plan.handover_ms,
            plan.deadline_ms()
        ),
        ("short", 750, 375, 1_500)
    );
    assert_eq!(
        ctx.lifecycle.prestop_answer_at(),
        Some(15_000),
        "answered now"
    );
    let (frames, _) = at(15_700, &mut conn, &mut ctx, &mut client);
    assert!(
        texts(&frames)[0].ends_with(r#""close_in_ms":375}"#),
        "{:?}",
        texts(&frames)
    );
    assert_eq!(at(16_074, &mut conn, &mut ctx, &mut client).0.len(), 0);
    let (frames, _) = at(16_075, &mut conn, &mut ctx, &mut client);
    assert_eq!(texts(&frames), ["close Some(1012)"]);
    assert!(!conn.owes_close_frame(), "the close frame is out");
}

#[test]
fn a_short_drain_brings_an_age_limit_handover_forward() {
    // The age limit's notice went out with 5 s to move; a short drain then begins: its close
    // comes at the short drain's time, not 5 s after the notice.
    let mut ctx = context(&[
        ("MAX_CONNECTION_AGE", "10s"),
        ("ALIVE_INTERVAL", "0"),
        ("PING_INTERVAL", "0"),
    ]);
    let (mut conn, mut client, _) = upgraded(&mut ctx);
    let notice_at = conn.next_deadline(&ctx);
    let (frames, _) = at(notice_at, &mut conn, &mut ctx, &mut client);
    assert!(texts(&frames)[0].ends_with(r#""close_in_ms":5000}"#));
    ctx.lifecycle
        .request_prestop(notice_at, ctx.config.prestop_answer_delay());
    ctx.tick(notice_at + 100);
    drain(&mut conn, &mut ctx, notice_at + 200);
    assert_eq!(conn.next_deadline(&ctx), notice_at + 200 + 375);
    let (frames, _) = at(notice_at + 575, &mut conn, &mut ctx, &mut client);
    assert_eq!(texts(&frames), ["close Some(1012)"]);
}

#[test]
fn the_age_limit_hands_over_too() {
    // Not draining: the age limit's notice, then its close 1012 with the age's reason.
    let mut ctx = context(&[
        ("HANDOVER_TIMEOUT", "2s"),
        ("MAX_CONNECTION_AGE", "10s"),
        ("ALIVE_INTERVAL", "0"),
        ("PING_INTERVAL", "0"),
    ]);
    let (mut conn, mut client, _) = upgraded(&mut ctx);
    let notice_at = conn.next_deadline(&ctx);
    assert!((9_000..=10_000).contains(&notice_at), "{notice_at}");
    let (frames, _) = at(notice_at, &mut conn, &mut ctx, &mut client);
    assert!(
        texts(&frames)[0].contains(r#""event":"goaway","instance":"test","phase":"serving""#),
        "{:?}",
        texts(&frames)
    );
    let (frames, _) = at(notice_at + 2_000, &mut conn, &mut ctx, &mut client);
    assert_eq!(frames.len(), 1);
    assert!(String::from_utf8_lossy(&frames[0].payload).contains("age limit"));
    let ws = &ctx.metrics.ws;
    assert_eq!(
        (ws.age_closes, ws.handover_notices, ws.handover_forced),
        (1, 1, 1)
    );
}
