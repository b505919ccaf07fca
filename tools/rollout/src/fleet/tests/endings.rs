//! Pods that end without a word: the client must leave them, re-send what they owed, lose
//! nothing and show nothing twice; a handover in progress re-sends on its new connection.

use std::time::Duration;

use super::scripted::{End, SCRIPT, Script, fleet, play, scripted_server};
use crate::fleet::{ClientReport, Fleet, Kind};

/// No notice from pod A within the test.
const NO_NOTICE: Script = Script {
    notice_after: Duration::from_secs(60),
    ..SCRIPT
};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// What every ending must give: nothing lost, nothing shown twice, nothing mismatched.
fn nothing_lost_or_twice(f: &Fleet, r: &ClientReport) {
    let st = f.stats(r.kind);
    assert_eq!((r.lost, st.duplicates, st.mismatches), (0, 0, 0), "{r:?}");
    assert!(st.sent > 5 && st.replies == st.sent, "{st:?}");
}

#[test]
fn a_pod_gone_without_a_close_frame_is_left_and_what_it_owed_is_resent() {
    // It stops answering, then its socket ends: FIN (the kernel closed it), or RST (closed
    // with input unread).
    for end in [End::Eof, End::Reset] {
        let addr = scripted_server(Script {
            first_ends: Some((MS(300), end)),
            ..NO_NOTICE
        });
        let mut f = fleet(addr, 1);
        let r = play(&mut f, "pod-b");
        nothing_lost_or_twice(&f, &r);
        let st = f.stats(Kind::Old);
        assert_eq!(r.served, ["pod-a", "pod-b"], "{end:?}");
        assert!(r.resent >= 1, "{end:?}: what pod A owed is re-sent: {r:?}");
        assert_eq!(st.closes.get(&1006), Some(&1), "{end:?}");
        assert_eq!(st.abnormal_by_instance.get("pod-a"), Some(&1), "{end:?}");
        assert!(st.silent_by_instance.is_empty(), "{end:?}: not a silence");
    }
}

#[test]
fn a_silent_pod_is_given_up_after_twice_its_interval() {
    // A frozen pod: the socket stays open, nothing arrives. The client gives it up after
    // 2 × 100 ms and moves, re-sending what it owed.
    let addr = scripted_server(Script {
        first_ends: Some((MS(300), End::Silent)),
        interval: MS(100),
        ..NO_NOTICE
    });
    let mut f = fleet(addr, 1);
    let r = play(&mut f, "pod-b");
    nothing_lost_or_twice(&f, &r);
    let st = f.stats(Kind::Old);
    assert_eq!(r.served, ["pod-a", "pod-b"]);
    assert_eq!(st.silent_by_instance.get("pod-a"), Some(&1));
    assert!(r.resent >= 1, "{r:?}");
    // Given up no sooner than 200 ms after the last arrival (the stop at 300 ms).
    let (open, left) = r.spans[0];
    let left = left.expect("the first connection ended");
    assert!(left - open >= MS(500), "{:?}", left - open);
    // Pod B, alive every 100 ms, is kept.
    assert_eq!(st.silent_by_instance.len(), 1);
}

#[test]
fn an_upgrade_never_answered_is_given_up_at_the_handshake_timeout() {
    // A frozen pod still takes TCP connections into its backlog; the upgrade waits forever.
    let addr = scripted_server(Script {
        first_mute: true,
        ..NO_NOTICE
    });
    let mut f = fleet(addr, 1);
    let r = play(&mut f, "pod-b");
    nothing_lost_or_twice(&f, &r);
    let st = f.stats(Kind::Old);
    assert_eq!(r.served, ["pod-b"]);
    assert_eq!((st.handshake_timeouts, st.connect_failures), (1, 1));
}

#[test]
fn the_silence_watch_starts_at_the_101_with_the_interval_last_known() {
    // Pod A announced 100 ms and closes with 1012; pod B answers the upgrade and then says
    // nothing at all (not even a hello): it is given up after 200 ms, and pod C serves.
    let addr = scripted_server(Script {
        close_in: MS(100),
        interval: MS(100),
        second_silent: true,
        ..SCRIPT
    });
    let mut f = fleet(addr, 1);
    let r = play(&mut f, "pod-c");
    nothing_lost_or_twice(&f, &r);
    let st = f.stats(Kind::Old);
    assert_eq!(r.served, ["pod-a", "", "pod-c"]);
    assert_eq!(st.silent_by_instance.get(""), Some(&1), "{st:?}");
    let (open, left) = r.spans[1];
    let held = left.expect("given up") - open;
    assert!(held >= MS(200) && held < MS(1000), "{held:?}");
}

#[test]
fn a_handover_in_progress_when_the_old_pod_dies_resends_on_the_new_connection() {
    // Pod A holds its replies; the notice at 200 ms; it dies (EOF) or freezes before giving
    // them: what the old socket owed goes on the new one, which is already open.
    for end in [End::Eof, End::Silent] {
        let addr = scripted_server(Script {
            slow_after_notice: Duration::from_secs(5),
            slow_from_start: true,
            first_ends: Some((MS(400), end)),
            // A silence is given up after 200 ms; the end of a dead pod comes 100 ms after
            // it stops answering, which must not race a 200 ms watch.
            interval: MS(if end == End::Silent { 100 } else { 1000 }),
            ..SCRIPT
        });
        let mut f = fleet(addr, 0);
        let r = play(&mut f, "pod-b");
        nothing_lost_or_twice(&f, &r);
        let st = f.stats(Kind::Aware);
        assert_eq!(r.served, ["pod-a", "pod-b"], "{end:?}");
        assert_eq!(st.handovers, 1, "{end:?}");
        assert!(r.resent >= 1, "{end:?}: {r:?}");
        assert_eq!(
            r.gap,
            Duration::ZERO,
            "{end:?}: the new connection was open"
        );
        assert_eq!(
            st.closed_by_client, 0,
            "{end:?}: it never owed nothing: {st:?} {r:?}"
        );
        let silent = st.silent_by_instance.get("pod-a").copied().unwrap_or(0);
        assert_eq!(silent, u64::from(end == End::Silent), "{end:?}");
    }
}
