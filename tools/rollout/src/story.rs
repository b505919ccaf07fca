//! The story the metrics tell, checked against what the clients saw: pure functions over the
//! series fetched from Prometheus ([`Observed`], one value per pod per step of a range query)
//! and the fleet's record ([`Facts`], in the same unix seconds).
//!
//! A step's value is the pod's latest scrape at that time, so each comparison is made at the
//! scrape's own time (`timestamp()`), within [`SKEW`]: the server counts a socket a moment
//! before its client sees the 101, and stops counting it a moment before the client sees the
//! end; scrapes and the clients' loop are delayed on a loaded machine.

use std::collections::BTreeMap;

use crate::fleet::Held;
use crate::prometheus::{Prometheus, SCRAPE_INTERVAL_SECS, Series};

/// How far apart in time a server's count and the clients' record of the same event may be,
/// by default ([`Facts::skew`]). Runs here needed 0-10 ms (200 clients, also beside two CPU
/// burners; 10,000 clients): 250 ms leaves room without letting through a second's worth of
/// events.
pub const SKEW: f64 = 0.25;

/// Values per step: the step's time in milliseconds → the value.
pub type Steps = BTreeMap<i64, f64>;

/// One pod's series.
#[derive(Debug, Clone, Default)]
pub struct PodSeries {
    /// When the scrape each step shows was taken (unix seconds).
    pub scraped_at: Steps,
    /// `wsdrain_connections_open{kind="websocket"}`.
    pub websockets: Steps,
    /// The phase whose `wsdrain_phase` is 1 (several joined with `+`).
    pub phase: BTreeMap<i64, String>,
    pub upgrades: Steps,
    pub close_timeouts: Steps,
    pub received: Steps,
    pub sent: Steps,
    pub after_close: Steps,
    pub notices: Steps,
    pub left: Steps,
    pub forced: Steps,
}

impl PodSeries {
    /// The scrape time of step `t` (the step itself if unknown).
    pub fn at(&self, t: i64) -> f64 {
        self.scraped_at
            .get(&t)
            .copied()
            .unwrap_or(t as f64 / 1000.0)
    }

    /// The last step with a WebSocket count: the pod's last scrape in the range.
    fn last_step(&self) -> Option<i64> {
        self.websockets.keys().next_back().copied()
    }
}

/// What Prometheus holds of the rollout.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub pods: BTreeMap<String, PodSeries>,
    /// `sum(wsdrain_connections_open{kind="websocket"})`.
    pub websocket_sum: Steps,
}

/// Which series of a pod a query fills.
type Field = fn(&mut PodSeries) -> &mut Steps;

/// The queries of per-pod values, and which series each fills.
pub const QUERIES: [(&str, Field); 10] = [
    ("timestamp(wsdrain_uptime_seconds)", |p| &mut p.scraped_at),
    ("wsdrain_connections_open{kind=\"websocket\"}", |p| {
        &mut p.websockets
    }),
    ("wsdrain_websocket_upgrades_total", |p| &mut p.upgrades),
    ("wsdrain_websocket_close_timeouts_total", |p| {
        &mut p.close_timeouts
    }),
    ("wsdrain_websocket_messages_received_total", |p| {
        &mut p.received
    }),
    ("wsdrain_websocket_messages_sent_total", |p| &mut p.sent),
    ("wsdrain_websocket_messages_after_close_total", |p| {
        &mut p.after_close
    }),
    ("wsdrain_websocket_handover_notices_total", |p| {
        &mut p.notices
    }),
    ("wsdrain_websocket_handover_left_total", |p| &mut p.left),
    ("wsdrain_websocket_handover_forced_total", |p| &mut p.forced),
];

/// The phase each pod is in (its series carry a `phase` label).
pub const PHASE_QUERY: &str = "wsdrain_phase == 1";

/// The WebSockets over all pods, as a dashboard shows them.
pub const SUM_QUERY: &str = "sum(wsdrain_connections_open{kind=\"websocket\"})";

fn ms(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

impl Observed {
    /// Runs the range queries over [start, end], one step per scrape interval.
    pub fn fetch(prom: &Prometheus, start: f64, end: f64) -> Result<Observed, String> {
        let query = |expr| prom.query_range(expr, start, end, SCRAPE_INTERVAL_SECS);
        let mut results = Vec::new();
        for (expr, _) in QUERIES {
            results.push(query(expr)?);
        }
        Ok(Observed::from_results(
            &results,
            &query(PHASE_QUERY)?,
            &query(SUM_QUERY)?,
        ))
    }

    /// Sorts the answers to [`QUERIES`] (in order), [`PHASE_QUERY`] and [`SUM_QUERY`] into
    /// series per pod.
    pub fn from_results(results: &[Vec<Series>], phases: &[Series], sum: &[Series]) -> Observed {
        let mut o = Observed::default();
        for ((_, field), series) in QUERIES.iter().zip(results) {
            for s in series {
                if let Some(pod) = s.labels.get("pod") {
                    let steps = field(o.pods.entry(pod.clone()).or_default());
                    for &(t, v) in &s.points {
                        steps.insert(ms(t), v);
                    }
                }
            }
        }
        for s in phases {
            let (Some(pod), Some(phase)) = (s.labels.get("pod"), s.labels.get("phase")) else {
                continue;
            };
            let p = o.pods.entry(pod.clone()).or_default();
            for &(t, v) in &s.points {
                if v == 1.0 {
                    p.phase
                        .entry(ms(t))
                        .and_modify(|p| *p = format!("{p}+{phase}"))
                        .or_insert_with(|| phase.clone());
                }
            }
        }
        for s in sum {
            for &(t, v) in &s.points {
                o.websocket_sum.insert(ms(t), v);
            }
        }
        o
    }

    /// New WebSockets (upgrades) per step over all pods: each pod's counter's rise since its
    /// previous step.
    pub fn upgrades_per_step(&self) -> Steps {
        let mut out = Steps::new();
        for p in self.pods.values() {
            let mut previous: Option<f64> = None;
            for (&t, &v) in &p.upgrades {
                if let Some(before) = previous {
                    *out.entry(t).or_default() += (v - before).max(0.0);
                } else {
                    out.entry(t).or_default();
                }
                previous = Some(v);
            }
        }
        out
    }
}

/// What the fleet saw, in unix seconds.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub clients: usize,
    /// From here on every client is connected (to pod A) and Prometheus scrapes both pods:
    /// each was scraped after Prometheus learnt of pod B (learning of it restarts the
    /// scraping, which may leave a pod without a sample for a moment).
    pub watched: f64,
    /// Pod A's termination began (`/prestop`, the upstream switched to pod B).
    pub terminating: f64,
    /// Pod A got SIGTERM.
    pub sigterm: f64,
    /// The measurement's end: every client on pod B, every message answered.
    pub end: f64,
    /// The fleet's record was taken (after the last scrapes of interest).
    pub until: f64,
    /// DRAIN_WINDOW + HANDOVER_TIMEOUT + CLOSE_TIMEOUT: by then every WebSocket of a draining
    /// pod has closed.
    pub drain_budget: f64,
    /// The tolerance in time of every comparison ([`SKEW`]).
    pub skew: f64,
    /// The sockets held, after each change (in time order).
    pub held: Vec<(f64, Held)>,
    /// When each socket opened (sorted).
    pub opened: Vec<f64>,
    /// Sockets per server: (when, instance, opened or ended), in time order.
    pub by_instance: Vec<(f64, String, bool)>,
    /// Goaway notices from pod A, clients that left it after one, 1012s from pod A after a
    /// notice: when each was seen (sorted).
    pub notices_a: Vec<f64>,
    pub left_a: Vec<f64>,
    pub forced_a: Vec<f64>,
}

impl Facts {
    /// A time as seconds after pod A's termination began.
    pub fn rel(&self, t: f64) -> String {
        format!("{:+.1} s", t - self.terminating)
    }

    /// The smallest and largest counts held at any moment in [a, b].
    fn held_over(&self, a: f64, b: f64) -> (Held, Held) {
        let i = self.held.partition_point(|(t, _)| *t <= a);
        let start = if i == 0 {
            Held::default()
        } else {
            self.held[i - 1].1
        };
        let (mut lo, mut hi) = (start, start);
        for (_, h) in self.held[i..].iter().take_while(|(t, _)| *t <= b) {
            lo.sockets = lo.sockets.min(h.sockets);
            lo.without = lo.without.min(h.without);
            lo.two = lo.two.min(h.two);
            hi.sockets = hi.sockets.max(h.sockets);
            hi.without = hi.without.max(h.without);
            hi.two = hi.two.max(h.two);
        }
        (lo, hi)
    }

    /// The sockets on `pod` over time: (when, count after the change).
    fn on_pod(&self, pod: &str) -> Vec<(f64, i64)> {
        let mut n = 0;
        self.by_instance
            .iter()
            .filter(|(_, i, _)| i == pod)
            .map(|(t, _, open)| {
                n += if *open { 1 } else { -1 };
                (*t, n)
            })
            .collect()
    }
}

/// Events in `sorted` at or before `t`.
fn count_le(sorted: &[f64], t: f64) -> usize {
    sorted.partition_point(|x| *x <= t)
}

/// The smallest and largest value of a step function over [a, b].
fn range_over(steps: &[(f64, i64)], a: f64, b: f64) -> (i64, i64) {
    let i = steps.partition_point(|(t, _)| *t <= a);
    let start = if i == 0 { 0 } else { steps[i - 1].1 };
    steps[i..]
        .iter()
        .take_while(|(t, _)| *t <= b)
        .fold((start, start), |(lo, hi), (_, v)| (lo.min(*v), hi.max(*v)))
}

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

/// The smallest tolerance in time (of a few) with which every check passes, and the first
/// failure with the next smaller one: how much of [`SKEW`] a run needed, and what for.
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

#[cfg(test)]
mod tests {
    //! The checks on a synthetic rollout whose series and fleet record agree, then on the
    //! same rollout with the metrics telling a wrong story.

    use super::*;

    /// Pod A's termination begins at this unix time; SIGTERM 2 s later.
    const T0: f64 = 1000.0;
    const SIGTERM: f64 = T0 + 2.0;

    /// A client's sockets: (pod, opened, ended).
    type Socket = (&'static str, f64, Option<f64>);

    /// `n` clients, even ones handover-aware: each gets its notice in a 3 s window after
    /// SIGTERM; an aware client opens its socket on pod B 10 ms after its notice and closes pod
    /// A's 10 ms later; an old one gets its 1012 2 s after its notice and reconnects 0.5 s
    /// after that. Pod A is scraped 0.7 s before each whole second, pod B 0.4 s before.
    struct Rollout {
        n: usize,
        sockets: Vec<Socket>,
        notices: Vec<f64>,
        left: Vec<f64>,
        forced: Vec<f64>,
    }

    fn rollout(n: usize) -> Rollout {
        let mut r = Rollout {
            n,
            sockets: Vec::new(),
            notices: Vec::new(),
            left: Vec::new(),
            forced: Vec::new(),
        };
        for i in 0..n {
            let notice = SIGTERM + 3.0 * (i as f64 + 0.5) / n as f64;
            r.notices.push(notice);
            if i % 2 == 0 {
                r.sockets.push(("pod-a", T0 - 20.0, Some(notice + 0.02)));
                r.sockets.push(("pod-b", notice + 0.01, None));
                r.left.push(notice + 0.02);
            } else {
                r.sockets.push(("pod-a", T0 - 20.0, Some(notice + 2.01)));
                r.sockets.push(("pod-b", notice + 2.5, None));
                r.forced.push(notice + 2.0);
            }
        }
        r
    }

    impl Rollout {
        fn on(&self, pod: &str, at: f64) -> f64 {
            self.sockets
                .iter()
                .filter(|(p, open, end)| *p == pod && *open <= at && end.is_none_or(|e| e > at))
                .count() as f64
        }

        fn last_close_on_a(&self) -> f64 {
            self.sockets
                .iter()
                .filter_map(|(p, _, end)| (*p == "pod-a").then_some((*end)?))
                .fold(0.0, f64::max)
        }

        fn facts(&self) -> Facts {
            // Every change of a client's sockets, in time order.
            let mut changes: Vec<(f64, usize, i32)> = Vec::new();
            for (i, (_, open, end)) in self.sockets.iter().enumerate() {
                let client = i / 2;
                changes.push((*open, client, 1));
                if let Some(e) = end {
                    changes.push((*e, client, -1));
                }
            }
            changes.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut per_client = vec![0; self.n];
            let mut held = Held::default();
            let mut log = Vec::new();
            for (t, c, d) in &changes {
                let before = per_client[*c];
                per_client[*c] += d;
                let after = per_client[*c];
                held.sockets = (held.sockets as i32 + d) as u32;
                if before == 0 && after == 1 && *t > T0 - 20.0 {
                    held.without -= 1;
                }
                if after == 0 {
                    held.without += 1;
                }
                if after == 2 {
                    held.two += 1;
                }
                if before == 2 {
                    held.two -= 1;
                }
                log.push((*t, held));
            }
            let mut by_instance = Vec::new();
            for (pod, open, end) in &self.sockets {
                by_instance.push((*open, pod.to_string(), true));
                if let Some(e) = end {
                    by_instance.push((*e, pod.to_string(), false));
                }
            }
            by_instance.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut opened: Vec<f64> = self.sockets.iter().map(|s| s.1).collect();
            opened.sort_by(f64::total_cmp);
            let sorted = |v: &Vec<f64>| {
                let mut v = v.clone();
                v.sort_by(f64::total_cmp);
                v
            };
            Facts {
                clients: self.n,
                watched: T0 - 19.0,
                terminating: T0,
                sigterm: SIGTERM,
                end: T0 + 9.0,
                until: T0 + 11.0,
                drain_budget: 3.0 + 2.0 + 2.0,
                skew: SKEW,
                held: log,
                opened,
                by_instance,
                notices_a: sorted(&self.notices),
                left_a: sorted(&self.left),
                forced_a: sorted(&self.forced),
            }
        }

        /// What Prometheus would hold: steps each second from T0 - 5 s to T0 + 11 s.
        fn observed(&self) -> Observed {
            let mut o = Observed::default();
            let a_exit = self.last_close_on_a() + 0.05;
            for (pod, offset) in [("pod-a", 0.7), ("pod-b", 0.4)] {
                let mut p = PodSeries::default();
                for step in -5..=11 {
                    let t = T0 + step as f64;
                    let at = t - offset;
                    if pod == "pod-a" && at > a_exit {
                        continue;
                    }
                    let k = ms(t);
                    let count = |v: &Vec<f64>| v.iter().filter(|e| **e <= at).count() as f64;
                    p.scraped_at.insert(k, at);
                    p.websockets.insert(k, self.on(pod, at));
                    let phase = match (pod, at) {
                        ("pod-a", at) if at >= SIGTERM => "draining",
                        ("pod-a", at) if at >= T0 => "prestop",
                        _ => "serving",
                    };
                    p.phase.insert(k, phase.into());
                    let a = pod == "pod-a";
                    p.notices
                        .insert(k, if a { count(&self.notices) } else { 0.0 });
                    p.left.insert(k, if a { count(&self.left) } else { 0.0 });
                    p.forced
                        .insert(k, if a { count(&self.forced) } else { 0.0 });
                    p.close_timeouts.insert(k, 0.0);
                    p.received.insert(k, 1000.0);
                    p.sent.insert(k, 990.0);
                    p.after_close.insert(k, 10.0);
                    let opened = self
                        .sockets
                        .iter()
                        .filter(|(q, open, _)| *q == pod && *open <= at)
                        .count();
                    p.upgrades.insert(k, opened as f64);
                }
                o.pods.insert(pod.into(), p);
            }
            let steps: Vec<i64> = o.pods["pod-b"].websockets.keys().copied().collect();
            for k in steps {
                let sum = o.pods.values().filter_map(|p| p.websockets.get(&k)).sum();
                o.websocket_sum.insert(k, sum);
            }
            o
        }
    }

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

    #[test]
    fn a_websocket_sum_below_the_reconnecting_clients_fails() {
        let r = rollout(200);
        let f = r.facts();
        let o = r.observed();
        // The deepest honest dip, and the bound it is held to.
        let (&k, &deepest) = o
            .websocket_sum
            .iter()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        let mut dipped = o.clone();
        dipped.websocket_sum.insert(k, deepest - 30.0);
        let failures = check_websocket_sum(&dipped, &f);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].contains("at 1 of "), "{failures:?}");
        assert!(
            failures[0].contains(&format!("{} at +", deepest - 30.0)),
            "{failures:?}"
        );
        // A sum above the clients' sockets plus the handovers in progress fails too.
        let mut over = o.clone();
        over.websocket_sum.insert(ms(T0 + 4.0), 260.0);
        assert_eq!(check_websocket_sum(&over, &f).len(), 1);
        // Before both pods are watched nothing is held to the bound.
        let mut early = o.clone();
        early.websocket_sum.insert(ms(T0 - 5.0), 0.0);
        let mut f2 = f.clone();
        f2.watched = T0 - 4.0;
        assert!(check_websocket_sum(&early, &f2).is_empty());
    }

    #[test]
    fn a_pod_gone_between_the_scrapes_adds_nothing_to_the_sum() {
        // Pod A exits with its last sockets; its next scrape fails and its series ends, while
        // pod B's scrape at the same step came before that, with the clients still moving.
        let r = rollout(200);
        let f = r.facts();
        let mut o = r.observed();
        let k = ms(T0 + 6.0);
        let on_a = o.pods["pod-a"].websockets[&k];
        assert!(on_a > 0.0, "{on_a}");
        o.pods.get_mut("pod-a").unwrap().websockets.remove(&k);
        let on_b = o.pods["pod-b"].websockets[&k];
        o.websocket_sum.insert(k, on_b);
        assert_eq!(check_websocket_sum(&o, &f), Vec::<String>::new());
        // Not if the sum loses more than pod A's sockets.
        o.websocket_sum.insert(k, on_b - on_a - 20.0);
        let failures = check_websocket_sum(&o, &f);
        assert!(
            any_contains(&failures, "on pod-a, which had no sample"),
            "{failures:?}"
        );
    }

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

    #[test]
    fn series_sort_into_pods() {
        let series = |pod: &str, extra: Option<(&str, &str)>, points: Vec<(f64, f64)>| {
            let mut labels = BTreeMap::from([("pod".to_string(), pod.to_string())]);
            if let Some((k, v)) = extra {
                labels.insert(k.into(), v.into());
            }
            Series { labels, points }
        };
        let mut results = vec![Vec::new(); QUERIES.len()];
        results[1] = vec![series("pod-a", None, vec![(T0, 5.0), (T0 + 1.0, 4.0)])];
        let phases = vec![
            series(
                "pod-a",
                Some(("phase", "serving")),
                vec![(T0, 1.0), (T0 + 1.0, 0.0)],
            ),
            series(
                "pod-a",
                Some(("phase", "prestop")),
                vec![(T0, 0.0), (T0 + 1.0, 1.0)],
            ),
            series("pod-a", Some(("phase", "draining")), vec![(T0 + 1.0, 1.0)]),
        ];
        let sum = vec![Series {
            labels: BTreeMap::new(),
            points: vec![(T0, 5.0)],
        }];
        let o = Observed::from_results(&results, &phases, &sum);
        let a = &o.pods["pod-a"];
        assert_eq!(a.websockets[&ms(T0 + 1.0)], 4.0);
        assert_eq!(a.phase[&ms(T0)], "serving");
        assert_eq!(a.phase[&ms(T0 + 1.0)], "prestop+draining");
        assert_eq!(o.websocket_sum[&ms(T0)], 5.0);
        assert_eq!(a.at(ms(T0)), T0, "no timestamp(): the step's time");
    }
}
