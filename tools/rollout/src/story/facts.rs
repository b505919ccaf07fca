//! What the fleet saw, in Prometheus's unix seconds, and the questions the checks ask of it.

use crate::fleet::Held;

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
    /// The tolerance in time of every comparison ([`SKEW`](super::SKEW)).
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
    pub(super) fn held_over(&self, a: f64, b: f64) -> (Held, Held) {
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
    pub(super) fn on_pod(&self, pod: &str) -> Vec<(f64, i64)> {
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
pub(super) fn count_le(sorted: &[f64], t: f64) -> usize {
    sorted.partition_point(|x| *x <= t)
}

/// The smallest and largest value of a step function over [a, b].
pub(super) fn range_over(steps: &[(f64, i64)], a: f64, b: f64) -> (i64, i64) {
    let i = steps.partition_point(|(t, _)| *t <= a);
    let start = if i == 0 { 0 } else { steps[i - 1].1 };
    steps[i..]
        .iter()
        .take_while(|(t, _)| *t <= b)
        .fold((start, start), |(lo, hi), (_, v)| (lo.min(*v), hi.max(*v)))
}
