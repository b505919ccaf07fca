//! A pod's WebSockets that are not the clients' count.

use super::any_contains;
use super::synthetic::{T0, rollout};
use crate::story::check_pod_websockets;
use crate::story::series::ms;

#[test]
fn a_pod_a_that_keeps_its_websockets_fails() {
    let r = rollout(200);
    let f = r.facts();
    let mut o = r.observed();
    let a = o.pods.get_mut("pod-a").unwrap();
    for step in -5..=11 {
        let t = T0 + step as f64;
        a.websockets.insert(ms(t), 200.0);
        a.scraped_at.insert(ms(t), t - 0.7);
    }
    let failures = check_pod_websockets(&o, &f);
    assert!(
        any_contains(
            &failures,
            "pod-a's wsdrain_connections_open{kind=\"websocket\"} was not the clients' count"
        ),
        "{failures:?}"
    );
    assert!(
        any_contains(&failures, "pod-a still had 200 WebSockets at +"),
        "{failures:?}"
    );
    // Pod B never reaching the client count.
    let mut o = r.observed();
    for v in o.pods.get_mut("pod-b").unwrap().websockets.values_mut() {
        *v = v.min(150.0);
    }
    let failures = check_pod_websockets(&o, &f);
    assert!(
        any_contains(&failures, "pod-b had 150 WebSockets at the end"),
        "{failures:?}"
    );
    // A scrape missing while clients are on the pod.
    let mut o = r.observed();
    o.pods
        .get_mut("pod-a")
        .unwrap()
        .websockets
        .remove(&ms(T0 + 1.0));
    let failures = check_pod_websockets(&o, &f);
    assert!(
        any_contains(&failures, "no sample at +1.0 s"),
        "{failures:?}"
    );
}
