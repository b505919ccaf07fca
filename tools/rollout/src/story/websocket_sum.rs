//! The WebSockets over both pods against the sockets the clients held.

use super::facts::{count_le, range_over};
use super::{Facts, Observed, summarize};

/// `sum(wsdrain_connections_open{kind="websocket"})` stays at the sockets the clients hold:
/// below the client count by no more than the clients between a close and their reconnect,
/// above it by no more than the handovers in progress (two sockets each).
///
/// The sum adds pod A's scrape at `a` and pod B's at `b`: the sockets held at `a`, plus pod
/// B's change from `a` to `b`. Pod B only gains sockets during the rollout, so when it is
/// scraped after pod A the sum may exceed the sockets held at `a` by the sockets opened in
/// between (clients counted on both pods), and when before, fall short by them (counted on
/// neither). A pod with no sample at a step (not yet started, or gone: its last scrape failed)
/// adds nothing, though the clients may still have held sockets on it since the other pod's
/// scrape: those widen the lower bound.
pub fn check_websocket_sum(o: &Observed, f: &Facts) -> Vec<String> {
    let mut bad = Vec::new();
    let mut checked = 0;
    let on = [f.on_pod("pod-a"), f.on_pod("pod-b")];
    let scrape = |pod: &str, t: i64| {
        let p = o.pods.get(pod)?;
        p.websockets.contains_key(&t).then(|| p.at(t))
    };
    for (&t, &sum) in &o.websocket_sum {
        let (a, b) = (scrape("pod-a", t), scrape("pod-b", t));
        let Some(first) = a.or(b) else {
            continue;
        };
        // From the moment both pods are watched to the measurement's end.
        if (t as f64 / 1000.0) < f.watched || t as f64 / 1000.0 > f.end {
            continue;
        }
        checked += 1;
        let (lo, hi) = f.held_over(first - f.skew, first + f.skew);
        let opened = |from: f64, to: f64| {
            (count_le(&f.opened, to + f.skew) - count_le(&f.opened, from - f.skew)) as f64
        };
        let (mut lower, mut upper) = (lo.sockets as f64, hi.sockets as f64);
        let mut between = String::new();
        match (a, b) {
            (Some(a), Some(b)) => {
                let moved = opened(a.min(b), a.max(b));
                if b < a {
                    lower -= moved;
                    between = format!("; {moved} opened between pod B's scrape and pod A's");
                } else {
                    upper += moved;
                    between = format!("; {moved} opened between pod A's scrape and pod B's");
                }
            }
            (a, _) => {
                let (absent, on) = if a.is_none() {
                    ("pod-a", &on[0])
                } else {
                    ("pod-b", &on[1])
                };
                let (_, held) = range_over(on, first - f.skew, t as f64 / 1000.0 + f.skew);
                if held > 0 {
                    lower -= held as f64;
                    between = format!("; up to {held} on {absent}, which had no sample");
                }
            }
        }
        if sum < lower || sum > upper {
            bad.push(format!(
                "{sum} at {} (the {} clients held {}–{} sockets then: up to {} of them without \
                 one, up to {} with two{between}; allowed {lower}–{upper})",
                f.rel(first),
                f.clients,
                lo.sockets,
                hi.sockets,
                hi.without,
                hi.two
            ));
        }
    }
    let mut failures = summarize(
        "sum(wsdrain_connections_open{kind=\"websocket\"}) left the sockets the clients held",
        checked,
        &bad,
    );
    if checked == 0 {
        failures.push(
            "no sum(wsdrain_connections_open{kind=\"websocket\"}) between the clients' connect \
             and the rollout's end"
                .into(),
        );
    }
    failures
}
