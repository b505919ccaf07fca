//! How much of the tolerance in time ([`SKEW`](super::SKEW)) a run needed.

use super::{Facts, Observed, check};

/// The smallest tolerance in time (of a few) with which every check passes, and the first
/// failure with the next smaller one: how much of [`SKEW`](super::SKEW) a run needed, and
/// what for.
pub fn tightest_skew(o: &Observed, f: &Facts) -> (Option<f64>, Option<String>) {
    let mut tighter = None;
    for skew in [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0] {
        match check(o, &Facts { skew, ..f.clone() }).into_iter().next() {
            None => return (Some(skew), tighter),
            Some(failure) => tighter = Some(format!("with {} ms: {failure}", skew * 1000.0)),
        }
    }
    (None, tighter)
}
