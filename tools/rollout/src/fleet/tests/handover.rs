//! Handovers: an aware client moves on the goaway notice with no gap and no re-send; an old one
//! leaves on the 1012.

use std::time::Duration;

use super::scripted::{SCRIPT, Script, fleet, held, play, scripted_server};
use crate::fleet::{Kind, is_old};

#[test]
fn an_aware_client_hands_over_with_no_gap_and_no_resend() {
    let addr = scripted_server(SCRIPT);
    let mut f = fleet(addr, 0);
    let r = play(&mut f, "pod-b");
    let st = f.stats(Kind::Aware);
    assert_eq!(r.kind, Kind::Aware);
    assert_eq!(r.served, ["pod-a", "pod-b"]);
    assert_eq!((r.gap, r.resent, r.lost), (Duration::ZERO, 0, 0), "{r:?}");
    assert!(r.restarts_from.is_empty(), "{r:?}");
    assert_eq!((st.handovers, st.closed_by_client), (1, 1));
    assert_eq!((st.handover_failed, st.handover_late), (0, 0));
    assert_eq!(
        st.closes.get(&1000),
        Some(&1),
        "the server's echo of our close"
    );
    assert_eq!(st.closes.get(&1006), None);
    assert_eq!(st.notices.len(), 1);
    assert_eq!(st.hellos["pod-a"], (1, Some(3000)));
    assert!(st.sent > 20 && st.replies == st.sent, "{st:?}");
    assert_eq!(st.reopened_at.len(), 1);
    assert_eq!(st.left.len(), 1);
    assert_eq!(st.left[0].1, "pod-a");
    // Its sockets: one, two during the handover, one; never none.
    assert_eq!(held(&f), [(1, 0, 0), (2, 0, 1), (1, 0, 0)]);
    let by_instance: Vec<(&str, bool)> = f
        .sockets
        .by_instance
        .iter()
        .map(|(_, i, open)| (i.as_str(), *open))
        .collect();
    assert_eq!(
        by_instance,
        [("pod-a", true), ("pod-b", true), ("pod-a", false)]
    );
    assert_eq!(f.sockets.opened.len(), 2);
}

#[test]
fn an_old_client_ignores_the_notice_and_leaves_on_1012() {
    let addr = scripted_server(Script {
        close_in: Duration::from_millis(300),
        ..SCRIPT
    });
    let mut f = fleet(addr, 1);
    let r = play(&mut f, "pod-b");
    let st = f.stats(Kind::Old);
    assert_eq!(r.kind, Kind::Old);
    assert_eq!(r.served, ["pod-a", "pod-b"]);
    assert_eq!(r.restarts_from, ["pod-a"]);
    assert!(r.gap >= Duration::from_millis(10), "{r:?}");
    assert_eq!(r.lost, 0);
    assert_eq!((st.notices_ignored, st.handovers), (1, 0));
    assert_eq!(st.closes.get(&1012), Some(&1));
    // Its sockets: one, none between the 1012 and the reconnect, one.
    assert_eq!(held(&f), [(1, 0, 0), (0, 1, 0), (1, 0, 0)]);
}

#[test]
fn an_aware_client_falls_back_when_the_new_connection_cannot_open() {
    let addr = scripted_server(Script {
        close_in: Duration::from_millis(300),
        refuse_second: true,
        ..SCRIPT
    });
    let mut f = fleet(addr, 0);
    let r = play(&mut f, "pod-c");
    let st = f.stats(Kind::Aware);
    assert_eq!((st.handovers, st.handover_failed), (1, 1));
    assert_eq!(st.closed_by_client, 0);
    assert_eq!(
        r.restarts_from,
        ["pod-a"],
        "it stayed on pod A until its 1012"
    );
    assert_eq!(
        r.served,
        ["pod-a", "pod-c"],
        "the second connection was refused"
    );
    assert!(r.gap > Duration::ZERO);
    assert_eq!(r.lost, 0);
    assert_eq!(st.connect_failures, 1);
}

#[test]
fn the_old_connection_delivers_its_replies_before_the_client_closes_it() {
    // After the notice pod A answers slowly: what was in flight on it still comes back
    // there, and a second notice on it changes nothing.
    let addr = scripted_server(Script {
        slow_after_notice: Duration::from_millis(150),
        repeat_notice: true,
        ..SCRIPT
    });
    let mut f = fleet(addr, 0);
    let r = play(&mut f, "pod-b");
    let st = f.stats(Kind::Aware);
    assert_eq!(r.served, ["pod-a", "pod-b"]);
    assert_eq!((r.gap, r.resent, r.lost), (Duration::ZERO, 0, 0), "{r:?}");
    assert_eq!((st.handovers, st.closed_by_client), (1, 1));
    assert_eq!((st.notices.len(), st.notices_ignored), (2, 1));
    assert_eq!(st.duplicates, 0);
}

#[test]
fn a_notice_on_the_new_connection_waits_until_the_old_one_is_gone() {
    // Pod B's connection gets a notice at once, while pod A's is still finishing (slow
    // replies): the second handover starts only when pod A's connection is gone, so the
    // client never holds three.
    let addr = scripted_server(Script {
        slow_after_notice: Duration::from_millis(200),
        second_notice_after: Some(Duration::ZERO),
        ..SCRIPT
    });
    let mut f = fleet(addr, 0);
    let r = play(&mut f, "pod-c");
    let st = f.stats(Kind::Aware);
    assert_eq!(r.served, ["pod-a", "pod-b", "pod-c"]);
    assert_eq!((r.gap, r.resent, r.lost), (Duration::ZERO, 0, 0), "{r:?}");
    assert_eq!(st.notices_deferred, 1);
    assert_eq!((st.handovers, st.closed_by_client), (2, 2));
}

#[test]
fn old_clients_are_spread_over_the_ids() {
    let old: Vec<usize> = (0..10).filter(|&i| is_old(i, 10, 5)).collect();
    assert_eq!(old, [1, 3, 5, 7, 9]);
    assert_eq!((0..1000).filter(|&i| is_old(i, 1000, 333)).count(), 333);
    assert_eq!((0..7).filter(|&i| is_old(i, 7, 7)).count(), 7);
    assert_eq!((0..7).filter(|&i| is_old(i, 7, 0)).count(), 0);
}
