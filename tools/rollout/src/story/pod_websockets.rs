//! Each pod's WebSockets against the clients' sockets on it.

use super::facts::range_over;
use super::{Facts, Observed, summarize};
use crate::prometheus::SCRAPE_INTERVAL_SECS;

/// Each pod's `wsdrain_connections_open{kind="websocket"}` at each scrape is the number of
/// the clients' sockets on it then; so pod A's falls from the client count at SIGTERM to 0 by
/// DRAIN_WINDOW + HANDOVER_TIMEOUT + CLOSE_TIMEOUT, and pod B's rises to the client count.
pub fn check_pod_websockets(o: &Observed, f: &Facts) -> Vec<String> {
    let mut failures = Vec::new();
    let n = f.clients as f64;
    for pod in ["pod-a", "pod-b"] {
        let p = &o.pods[pod];
        let on = f.on_pod(pod);
        let mut bad = Vec::new();
        let mut checked = 0;
        for (&t, &v) in &p.websockets {
            let at = p.at(t);
            if (t as f64 / 1000.0) < f.watched || at > f.until {
                continue;
            }
            checked += 1;
            let (lo, hi) = range_over(&on, at - f.skew, at + f.skew);
            if v < lo as f64 || v > hi as f64 {
                bad.push(format!(
                    "{v} at {} (the clients had {lo}–{hi} sockets on {pod} then)",
                    f.rel(at)
                ));
            }
        }
        // A scrape missing while the clients had sockets on the pod the whole time.
        let steps: Vec<i64> = o.websocket_sum.keys().copied().collect();
        for &t in &steps {
            let at = t as f64 / 1000.0;
            if at < f.watched || at > f.end || p.websockets.contains_key(&t) {
                continue;
            }
            // A step looked at for a sample that is not there: checked too, so that "at N of M
            // scrapes" never has N over M.
            checked += 1;
            let (lo, _) = range_over(&on, at - 2.0 * SCRAPE_INTERVAL_SECS as f64, at);
            if lo > 0 {
                bad.push(format!(
                    "no sample at {} while the clients had {lo}+ sockets on {pod}",
                    f.rel(at)
                ));
            }
        }
        failures.extend(summarize(
            &format!(
                "{pod}'s wsdrain_connections_open{{kind=\"websocket\"}} was not the clients' count"
            ),
            checked,
            &bad,
        ));
    }
    let a = &o.pods["pod-a"];
    match a
        .websockets
        .iter()
        .rev()
        .find(|&(&t, _)| a.at(t) <= f.sigterm)
    {
        Some((&t, &v)) if v != n => failures.push(format!(
            "pod-a had {v} WebSockets at its last scrape before SIGTERM ({}), not the {n} clients",
            f.rel(a.at(t))
        )),
        Some(_) => {}
        None => failures.push("no WebSocket count of pod-a before SIGTERM".into()),
    }
    let deadline = f.sigterm + f.drain_budget + f.skew;
    if let Some((&t, &v)) = a
        .websockets
        .iter()
        .find(|&(&t, &v)| a.at(t) > deadline && v > 0.0)
    {
        failures.push(format!(
            "pod-a still had {v} WebSockets at {}, after SIGTERM + DRAIN_WINDOW + \
             HANDOVER_TIMEOUT + CLOSE_TIMEOUT ({})",
            f.rel(a.at(t)),
            f.rel(f.sigterm + f.drain_budget)
        ));
    }
    let b = &o.pods["pod-b"];
    match b.websockets.iter().find(|&(&t, _)| b.at(t) >= f.end) {
        Some((&t, &v)) if v != n => failures.push(format!(
            "pod-b had {v} WebSockets at the end ({}), not the {n} clients",
            f.rel(b.at(t))
        )),
        Some(_) => {}
        None => failures.push("no WebSocket count of pod-b after the end".into()),
    }
    failures
}
