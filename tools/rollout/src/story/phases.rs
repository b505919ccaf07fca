//! Pod A's phases as Prometheus saw them, and their check.

use super::{Facts, Observed, summarize};

/// Pod A's phases as its scrapes saw them: runs of the same phase (phase, first scrape, last
/// scrape).
pub fn phase_runs(o: &Observed) -> Vec<(String, f64, f64)> {
    let mut runs: Vec<(String, f64, f64)> = Vec::new();
    let Some(a) = o.pods.get("pod-a") else {
        return runs;
    };
    for (&t, phase) in &a.phase {
        let at = a.at(t);
        match runs.last_mut() {
            Some((p, _, last)) if p == phase => *last = at,
            _ => runs.push((phase.clone(), at, at)),
        }
    }
    runs
}

/// Pod A's phases, e.g. `serving (-9.0 s … -0.4 s) → prestop (+0.6 s … +1.6 s) → …`.
pub fn phases_told(o: &Observed, f: &Facts) -> String {
    let told = phase_runs(o)
        .iter()
        .map(|(p, first, last)| format!("{p} ({} … {})", f.rel(*first), f.rel(*last)))
        .collect::<Vec<_>>()
        .join(" → ");
    if told.is_empty() {
        "nothing".into()
    } else {
        told
    }
}

/// Pod A's `wsdrain_phase` goes serving → prestop → draining, each seen, in that order, and
/// each change comes after its cause (the termination, SIGTERM); pod B serves throughout.
pub fn check_phases(o: &Observed, f: &Facts) -> Vec<String> {
    let mut failures = Vec::new();
    let runs = phase_runs(o);
    let names: Vec<&str> = runs.iter().map(|(p, _, _)| p.as_str()).collect();
    if names != ["serving", "prestop", "draining"] {
        failures.push(format!(
            "pod-a's wsdrain_phase told {}; expected serving → prestop → draining, each seen, \
             in that order",
            phases_told(o, f)
        ));
    } else {
        let (serving, prestop, draining) = (&runs[0], &runs[1], &runs[2]);
        if serving.2 > f.terminating + f.skew || prestop.1 < f.terminating - f.skew {
            failures.push(format!(
                "pod-a's wsdrain_phase left serving at {}, its termination began at {}",
                f.rel(prestop.1),
                f.rel(f.terminating)
            ));
        }
        if prestop.2 > f.sigterm + f.skew || draining.1 < f.sigterm - f.skew {
            failures.push(format!(
                "pod-a's wsdrain_phase said draining from {}, SIGTERM came at {}",
                f.rel(draining.1),
                f.rel(f.sigterm)
            ));
        }
    }
    let b = &o.pods["pod-b"];
    let not_serving: Vec<String> = b
        .phase
        .iter()
        .filter(|&(&t, p)| p != "serving" && b.at(t) <= f.end)
        .map(|(&t, p)| format!("{p} at {}", f.rel(b.at(t))))
        .collect();
    failures.extend(summarize(
        "pod-b's wsdrain_phase was not serving during the rollout",
        b.phase.len(),
        &not_serving,
    ));
    failures
}
