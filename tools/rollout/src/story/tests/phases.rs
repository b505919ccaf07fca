//! Pod A's phases out of order, late, or pod B leaving serving.

use super::any_contains;
use super::synthetic::{T0, rollout};
use crate::story::check_phases;
use crate::story::series::ms;

#[test]
fn a_pod_that_never_drains_or_drains_before_its_prestop_fails() {
    let r = rollout(200);
    let f = r.facts();
    let mut o = r.observed();
    let a = o.pods.get_mut("pod-a").unwrap();
    for phase in a.phase.values_mut() {
        if phase == "draining" {
            *phase = "prestop".into();
        }
    }
    let failures = check_phases(&o, &f);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0]
            .contains("told serving (-5.7 s … -0.7 s) → prestop (+0.3 s … +6.3 s); expected"),
        "{failures:?}"
    );

    let mut o = r.observed();
    let a = o.pods.get_mut("pod-a").unwrap();
    for phase in a.phase.values_mut() {
        *phase = match phase.as_str() {
            "prestop" => "draining".into(),
            "draining" => "prestop".into(),
            p => p.into(),
        };
    }
    let failures = check_phases(&o, &f);
    assert!(
        any_contains(
            &failures,
            "told serving (-5.7 s … -0.7 s) → draining (+0.3 s … +1.3 s) → prestop"
        ),
        "{failures:?}"
    );

    // The right order, but draining a scrape before SIGTERM.
    let mut o = r.observed();
    let k = ms(T0 + 2.0);
    o.pods
        .get_mut("pod-a")
        .unwrap()
        .phase
        .insert(k, "draining".into());
    let failures = check_phases(&o, &f);
    assert!(
        any_contains(
            &failures,
            "said draining from +1.3 s, SIGTERM came at +2.0 s"
        ),
        "{failures:?}"
    );

    // Pod B leaving serving during the rollout.
    let mut o = r.observed();
    o.pods
        .get_mut("pod-b")
        .unwrap()
        .phase
        .insert(k, "prestop".into());
    let failures = check_phases(&o, &f);
    assert!(
        any_contains(&failures, "pod-b's wsdrain_phase was not serving"),
        "{failures:?}"
    );
}
