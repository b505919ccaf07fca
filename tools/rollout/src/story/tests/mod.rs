//! The checks on a synthetic rollout whose series and fleet record agree ([`synthetic`]), then
//! on the same rollout with the metrics telling a wrong story.

mod counters;
mod phases;
mod pod_websockets;
mod series;
mod synthetic;
mod websocket_sum;

use synthetic::rollout;

use super::{check, phases_told, tightest_skew};

fn any_contains(failures: &[String], needle: &str) -> bool {
    failures.iter().any(|f| f.contains(needle))
}

#[test]
fn a_true_story_passes() {
    let r = rollout(200);
    let (o, f) = (r.observed(), r.facts());
    assert_eq!(check(&o, &f), Vec::<String>::new());
    // The series are made from the record itself: no tolerance needed.
    assert_eq!(tightest_skew(&o, &f), (Some(0.0), None));
    assert_eq!(
        phases_told(&o, &f),
        "serving (-5.7 s … -0.7 s) → prestop (+0.3 s … +1.3 s) → draining (+2.3 s … +6.3 s)"
    );
    // The old clients' reconnects make the sum dip, within what the clients saw.
    let dip = o.websocket_sum.values().copied().fold(f64::MAX, f64::min);
    assert!(dip < 200.0, "{dip}");
    assert_eq!(o.upgrades_per_step().values().sum::<f64>(), 200.0);
}

#[test]
fn swapped_pod_labels_fail_every_way() {
    let r = rollout(200);
    let f = r.facts();
    let mut o = r.observed();
    let a = o.pods.remove("pod-a").unwrap();
    let b = o.pods.remove("pod-b").unwrap();
    o.pods.insert("pod-a".into(), b);
    o.pods.insert("pod-b".into(), a);
    let failures = check(&o, &f);
    assert!(
        any_contains(&failures, "pod-a's wsdrain_phase told serving"),
        "{failures:?}"
    );
    assert!(
        any_contains(&failures, "pod-b's wsdrain_phase was not serving"),
        "{failures:?}"
    );
    assert!(
        any_contains(
            &failures,
            "handover_notices_total was not what the clients saw"
        ),
        "{failures:?}"
    );
}
