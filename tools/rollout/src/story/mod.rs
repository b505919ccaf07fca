//! The story the metrics tell, checked against what the clients saw: pure functions over the
//! series fetched from Prometheus ([`Observed`], one value per pod per step of a range query)
//! and the fleet's record ([`Facts`], in the same unix seconds).
//!
//! A step's value is the pod's latest scrape at that time, so each comparison is made at the
//! scrape's own time (`timestamp()`), within [`SKEW`]: the server counts a socket a moment
//! before its client sees the 101, and stops counting it a moment before the client sees the
//! end; scrapes and the clients' loop are delayed on a loaded machine.

mod counters;
mod facts;
mod phases;
mod pod_websockets;
mod series;
mod tolerance;
mod websocket_sum;

#[cfg(test)]
mod tests;

pub use counters::check_counters;
pub use facts::Facts;
pub use phases::{check_phases, phase_runs, phases_told};
pub use pod_websockets::check_pod_websockets;
pub use series::{Observed, PodSeries, Steps};
pub use tolerance::tightest_skew;
pub use websocket_sum::check_websocket_sum;

/// How far apart in time a server's count and the clients' record of the same event may be,
/// by default ([`Facts::skew`]). Runs here needed 0-10 ms (200 clients, also beside two CPU
/// burners; 10,000 clients): 250 ms leaves room without letting through a second's worth of
/// events.
pub const SKEW: f64 = 0.25;

/// At most this many examples per failed check.
const EXAMPLES: usize = 3;

/// One failure from a list of bad steps: how many, and the first few.
fn summarize(what: &str, checked: usize, bad: &[String]) -> Vec<String> {
    if bad.is_empty() {
        return Vec::new();
    }
    let mut examples = bad[..bad.len().min(EXAMPLES)].join("; ");
    if bad.len() > EXAMPLES {
        examples.push_str("; …");
    }
    vec![format!(
        "{what} at {} of {checked} scrapes: {examples}",
        bad.len()
    )]
}

/// Every check, in the order the story goes.
pub fn check(o: &Observed, f: &Facts) -> Vec<String> {
    let mut failures = Vec::new();
    for pod in ["pod-a", "pod-b"] {
        if !o.pods.contains_key(pod) {
            failures.push(format!("no series of {pod}"));
        }
    }
    if !failures.is_empty() {
        return failures;
    }
    failures.extend(check_phases(o, f));
    failures.extend(check_websocket_sum(o, f));
    failures.extend(check_pod_websockets(o, f));
    failures.extend(check_counters(o, f));
    failures
}
