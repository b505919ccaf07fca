//! Counters that disagree with the clients.

use super::any_contains;
use super::synthetic::rollout;
use crate::story::check_counters;

#[test]
fn counters_that_disagree_with_the_clients_fail() {
    let r = rollout(200);
    let f = r.facts();
    let mut o = r.observed();
    let a = o.pods.get_mut("pod-a").unwrap();
    let last = a.last_step().unwrap();
    a.close_timeouts.insert(last, 3.0);
    a.sent.insert(last, 980.0);
    *a.forced.get_mut(&last).unwrap() += 20.0;
    let failures = check_counters(&o, &f);
    assert!(
        any_contains(&failures, "pod-a counted 3 close timeouts"),
        "{failures:?}"
    );
    assert!(
        any_contains(&failures, "pod-a's messages do not balance"),
        "{failures:?}"
    );
    assert!(
        any_contains(
            &failures,
            "wsdrain_websocket_handover_forced_total was not what the clients saw at 1 of"
        ),
        "{failures:?}"
    );
    assert_eq!(failures.len(), 3, "{failures:?}");
}
