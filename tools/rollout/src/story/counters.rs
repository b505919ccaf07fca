//! The counters: close timeouts, the message balance, pod A's handover counters.

use super::facts::count_le;
use super::{Facts, Observed, Steps, summarize};

/// No close timeouts; every message received was sent back or came after the close; pod A's
/// handover counters at each scrape match what the clients had seen by then.
pub fn check_counters(o: &Observed, f: &Facts) -> Vec<String> {
    let mut failures = Vec::new();
    for (pod, p) in &o.pods {
        let Some(t) = p.last_step() else {
            continue;
        };
        let at = f.rel(p.at(t));
        let value = |s: &Steps| s.get(&t).copied();
        match value(&p.close_timeouts) {
            Some(0.0) => {}
            Some(n) => failures.push(format!(
                "{pod} counted {n} close timeouts (wsdrain_websocket_close_timeouts_total at \
                 its last scrape, {at})"
            )),
            None => failures.push(format!("{pod} has no close timeout count at {at}")),
        }
        match (value(&p.received), value(&p.sent), value(&p.after_close)) {
            (Some(r), Some(s), Some(c)) if r == s + c => {}
            (Some(r), Some(s), Some(c)) => failures.push(format!(
                "{pod}'s messages do not balance at its last scrape ({at}): {r} received, {s} \
                 sent + {c} after the close"
            )),
            _ => failures.push(format!("{pod} has no message counts at {at}")),
        }
    }
    let a = &o.pods["pod-a"];
    let counters = [
        ("notices", &a.notices, &f.notices_a, "goaway notices"),
        (
            "left",
            &a.left,
            &f.left_a,
            "clients leaving by themselves after one",
        ),
        ("forced", &a.forced, &f.forced_a, "1012s after a notice"),
    ];
    for (name, series, seen, what) in counters {
        let mut bad = Vec::new();
        for (&t, &v) in series {
            let at = a.at(t);
            let (lo, hi) = (count_le(seen, at - f.skew), count_le(seen, at + f.skew));
            if v < lo as f64 || v > hi as f64 {
                bad.push(format!(
                    "{v} at {} (the clients had seen {lo}–{hi} {what} by then)",
                    f.rel(at)
                ));
            }
        }
        failures.extend(summarize(
            &format!(
                "pod-a's wsdrain_websocket_handover_{name}_total was not what the clients saw"
            ),
            series.len(),
            &bad,
        ));
        if series.is_empty() {
            failures.push(format!(
                "no wsdrain_websocket_handover_{name}_total of pod-a"
            ));
        }
    }
    failures
}
