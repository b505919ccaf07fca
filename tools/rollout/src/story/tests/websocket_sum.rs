//! A sum of WebSockets outside the clients' sockets, and a pod gone between the scrapes.

use super::any_contains;
use super::synthetic::{T0, rollout};
use crate::story::check_websocket_sum;
use crate::story::series::ms;

#[test]
fn a_websocket_sum_below_the_reconnecting_clients_fails() {
    let r = rollout(200);
    let f = r.facts();
    let o = r.observed();
    // The deepest honest dip, and the bound it is held to.
    let (&k, &deepest) = o
        .websocket_sum
        .iter()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .unwrap();
    let mut dipped = o.clone();
    dipped.websocket_sum.insert(k, deepest - 30.0);
    let failures = check_websocket_sum(&dipped, &f);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("at 1 of "), "{failures:?}");
    assert!(
        failures[0].contains(&format!("{} at +", deepest - 30.0)),
        "{failures:?}"
    );
    // A sum above the clients' sockets plus the handovers in progress fails too.
    let mut over = o.clone();
    over.websocket_sum.insert(ms(T0 + 4.0), 260.0);
    assert_eq!(check_websocket_sum(&over, &f).len(), 1);
    // Before both pods are watched nothing is held to the bound.
    let mut early = o.clone();
    early.websocket_sum.insert(ms(T0 - 5.0), 0.0);
    let mut f2 = f.clone();
    f2.watched = T0 - 4.0;
    assert!(check_websocket_sum(&early, &f2).is_empty());
}

#[test]
fn a_pod_gone_between_the_scrapes_adds_nothing_to_the_sum() {
    // Pod A exits with its last sockets; its next scrape fails and its series ends, while
    // pod B's scrape at the same step came before that, with the clients still moving.
    let r = rollout(200);
    let f = r.facts();
    let mut o = r.observed();
    let k = ms(T0 + 6.0);
    let on_a = o.pods["pod-a"].websockets[&k];
    assert!(on_a > 0.0, "{on_a}");
    o.pods.get_mut("pod-a").unwrap().websockets.remove(&k);
    let on_b = o.pods["pod-b"].websockets[&k];
    o.websocket_sum.insert(k, on_b);
    assert_eq!(check_websocket_sum(&o, &f), Vec::<String>::new());
    // Not if the sum loses more than pod A's sockets.
    o.websocket_sum.insert(k, on_b - on_a - 20.0);
    let failures = check_websocket_sum(&o, &f);
    assert!(
        any_contains(&failures, "on pod-a, which had no sample"),
        "{failures:?}"
    );
}
