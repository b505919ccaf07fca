//! The series read back from Prometheus: one value per pod per step of a range query, sorted
//! into pods.

use std::collections::BTreeMap;

use crate::prometheus::{Prometheus, SCRAPE_INTERVAL_SECS, Series};

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
    pub(super) fn last_step(&self) -> Option<i64> {
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

pub(super) fn ms(t: f64) -> i64 {
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
