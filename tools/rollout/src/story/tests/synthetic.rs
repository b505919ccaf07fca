//! A synthetic rollout whose Prometheus series and fleet record agree.

use crate::fleet::Held;
use crate::story::series::ms;
use crate::story::{Facts, Observed, PodSeries, SKEW};

/// Pod A's termination begins at this unix time; SIGTERM 2 s later.
pub(super) const T0: f64 = 1000.0;
pub(super) const SIGTERM: f64 = T0 + 2.0;

/// A client's sockets: (pod, opened, ended).
type Socket = (&'static str, f64, Option<f64>);

/// `n` clients, even ones handover-aware: each gets its notice in a 3 s window after
/// SIGTERM; an aware client opens its socket on pod B 10 ms after its notice and closes pod
/// A's 10 ms later; an old one gets its 1012 2 s after its notice and reconnects 0.5 s
/// after that. Pod A is scraped 0.7 s before each whole second, pod B 0.4 s before.
pub(super) struct Rollout {
    n: usize,
    sockets: Vec<Socket>,
    notices: Vec<f64>,
    left: Vec<f64>,
    forced: Vec<f64>,
}

pub(super) fn rollout(n: usize) -> Rollout {
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

    pub(super) fn facts(&self) -> Facts {
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
    pub(super) fn observed(&self) -> Observed {
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
