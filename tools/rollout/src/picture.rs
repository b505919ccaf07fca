//! The rollout as Prometheus saw it, drawn by hand as an SVG (in the style of the benchmarks'
//! plots, `benches/report.py`): the WebSockets on each pod and their sum, above the new
//! WebSockets per second (upgrades), with pod A's preStop and drain shaded; one point per step
//! of the range queries (1 s). Each pod's values are placed at the time of the scrape they come
//! from (a step shows the latest one), the sum at the later of its two scrapes, the phases from
//! the first scrape that showed them, the new WebSockets over the second before their step.
//! Steps before both pods are watched ([`Facts::watched`]) are left out: Prometheus's reload
//! for pod B may leave pod A without a sample there.

use std::fmt::Write as _;

use crate::story::{Facts, Observed, PodSeries, Steps, phase_runs};

const W: f64 = 720.0;
const H: f64 = 470.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 50.0;
/// The WebSockets' panel, then the new ones' per second, with a gap between.
const TOP_PANEL: f64 = 230.0;
const GAP: f64 = 40.0;
const BOTTOM_PANEL: f64 = 100.0;

const POD_A: &str = "#b03a2e";
const POD_B: &str = "#1b7f3b";
const SUM: &str = "#555555";
const NEW: &str = "#d68910";
const PRESTOP: &str = "#fdf0c8";
const DRAINING: &str = "#f6d5cf";

/// 12,345 (the benchmarks' number format).
pub fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A tick spacing of 1, 2, 2.5 or 5 × 10^k giving at most `most` intervals up to `max`.
fn tick(max: f64, most: f64) -> f64 {
    let raw = (max / most).max(1e-9);
    let base = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * base)
        .max(1.0)
}

/// Maps values to one panel's pixels.
struct Panel {
    top: f64,
    height: f64,
    x0: f64,
    x1: f64,
    ymax: f64,
}

impl Panel {
    fn x(&self, v: f64) -> f64 {
        LEFT + (v - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        self.top + self.height - v / self.ymax * self.height
    }

    fn axes(&self, out: &mut String, label: &str, step: f64) {
        let bottom = self.top + self.height;
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"black\"/>\n\
             <line x1=\"{LEFT}\" y1=\"{}\" x2=\"{LEFT}\" y2=\"{bottom}\" stroke=\"black\"/>\n\
             <text x=\"{LEFT}\" y=\"{}\">{label}</text>",
            W - RIGHT,
            self.top,
            self.top - 8.0
        );
        let mut v = 0.0;
        while v <= self.ymax + 1e-9 {
            let y = self.y(v);
            let _ = writeln!(
                out,
                "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{LEFT}\" y2=\"{y:.1}\" stroke=\"black\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT - 4.0,
                LEFT - 7.0,
                y + 4.0,
                thousands(v)
            );
            v += step;
        }
    }

    fn line(&self, out: &mut String, points: &[(f64, f64)], color: &str, dashed: bool) {
        if points.is_empty() {
            return;
        }
        let d: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", self.x(*x), self.y(*y)))
            .collect();
        let dash = if dashed {
            " stroke-dasharray=\"5 3\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
            d.join(" ")
        );
    }
}

/// Whether step `t` is drawn.
fn shown(t: i64, f: &Facts) -> bool {
    t as f64 / 1000.0 >= f.watched
}

/// A pod's values as (seconds after pod A's termination began, value), at their scrapes.
fn at_scrapes(p: &PodSeries, steps: &Steps, f: &Facts) -> Vec<(f64, f64)> {
    steps
        .iter()
        .filter(|(t, _)| shown(**t, f))
        .map(|(t, v)| (p.at(*t) - f.terminating, *v))
        .collect()
}

/// The picture of the rollout.
pub fn svg(o: &Observed, f: &Facts, title: &str) -> String {
    let pods: Vec<(Vec<(f64, f64)>, &str)> = [("pod-a", POD_A), ("pod-b", POD_B)]
        .into_iter()
        .map(|(pod, color)| {
            let p = o.pods.get(pod).map(|p| at_scrapes(p, &p.websockets, f));
            (p.unwrap_or_default(), color)
        })
        .collect();
    let sum: Vec<(f64, f64)> = o
        .websocket_sum
        .iter()
        .filter(|(t, _)| shown(**t, f))
        .map(|(t, v)| {
            let last = o
                .pods
                .values()
                .filter(|p| p.websockets.contains_key(t))
                .map(|p| p.at(*t))
                .fold(f64::NEG_INFINITY, f64::max);
            let at = if last.is_finite() {
                last
            } else {
                *t as f64 / 1000.0
            };
            (at - f.terminating, *v)
        })
        .collect();
    let new: Vec<(f64, f64)> = o
        .upgrades_per_step()
        .iter()
        .filter(|(t, _)| shown(**t, f))
        .map(|(t, v)| (*t as f64 / 1000.0 - 0.5 - f.terminating, *v))
        .collect();
    let xs = || {
        pods.iter()
            .flat_map(|p| p.0.iter())
            .chain(&sum)
            .map(|p| p.0)
    };
    let x0 = xs().fold(f64::INFINITY, f64::min).min(0.0).floor();
    let x1 = xs().fold(f64::NEG_INFINITY, f64::max).max(x0 + 1.0).ceil();
    let top_max = sum
        .iter()
        .chain(pods.iter().flat_map(|p| p.0.iter()))
        .map(|p| p.1)
        .fold(1.0, f64::max);
    let top_step = tick(top_max * 1.1, 5.0);
    let sockets = Panel {
        top: TOP,
        height: TOP_PANEL,
        x0,
        x1,
        ymax: (top_max * 1.1 / top_step).ceil() * top_step,
    };
    // The first step of each pod has no rise to show: the counter's start, not a second's.
    let new_max = new.iter().map(|p| p.1).fold(1.0, f64::max);
    let new_step = tick(new_max * 1.1, 3.0);
    let per_second = Panel {
        top: TOP + TOP_PANEL + GAP,
        height: BOTTOM_PANEL,
        x0,
        x1,
        ymax: (new_max * 1.1 / new_step).ceil() * new_step,
    };

    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"22\" font-size=\"14\">{title}</text>"
    );
    // Pod A's preStop and drain over both panels: from the first scrape that showed the
    // phase to the next phase's, the last one to pod A's last scrape.
    let runs: Vec<(String, f64)> = phase_runs(o)
        .into_iter()
        .map(|(phase, first, _)| (phase, first.max(f.watched) - f.terminating))
        .collect();
    let a_end = pods[0].0.last().map_or(x1, |p| p.0);
    let shade_top = TOP;
    let shade_bottom = per_second.top + per_second.height;
    let mut labels = 0.0;
    for (i, (phase, from)) in runs.iter().enumerate() {
        let color = match phase.as_str() {
            "prestop" => PRESTOP,
            "draining" => DRAINING,
            _ => continue,
        };
        let to = runs.get(i + 1).map_or(a_end, |r| r.1);
        let (px0, px1) = (sockets.x(*from), sockets.x(to.max(*from)));
        // Each label a line lower than the one before, so that short phases do not overlap.
        labels += 1.0;
        let _ = writeln!(
            out,
            "<rect x=\"{px0:.1}\" y=\"{shade_top}\" width=\"{:.1}\" height=\"{:.1}\" \
             fill=\"{color}\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#333\">pod A {phase}</text>",
            px1 - px0,
            shade_bottom - shade_top,
            px0 + 3.0,
            shade_top + 14.0 * labels
        );
    }
    sockets.axes(&mut out, "WebSockets open", top_step);
    per_second.axes(&mut out, "new WebSockets per second", new_step);
    // The time axis, under the lower panel.
    let bottom = per_second.top + per_second.height;
    let x_step = tick(x1 - x0, 8.0);
    let mut v = (x0 / x_step).ceil() * x_step;
    while v <= x1 + 1e-9 {
        let x = sockets.x(v);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{bottom}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"black\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            bottom + 4.0,
            bottom + 17.0,
            thousands(v)
        );
        v += x_step;
    }
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"{}\">seconds after pod A's termination began (its preStop)</text>",
        bottom + 36.0
    );
    // The series, then their legend.
    for (p, color) in &pods {
        sockets.line(&mut out, p, color, false);
    }
    sockets.line(&mut out, &sum, SUM, true);
    let width = (per_second.x(1.0) - per_second.x(0.0)) * 0.7;
    for (x, v) in new.iter().filter(|p| p.1 > 0.0) {
        let y = per_second.y(*v);
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{:.1}\" fill=\"{NEW}\"/>",
            per_second.x(*x) - width / 2.0,
            per_second.y(0.0) - y
        );
    }
    let legend = [
        ("pod-a", POD_A),
        ("pod-b", POD_B),
        ("both pods", SUM),
        ("new per second", NEW),
    ];
    for (k, (name, color)) in legend.iter().enumerate() {
        let y = TOP + 20.0 * k as f64;
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"{}\">{name}</text>",
            W - RIGHT + 10.0,
            W - RIGHT + 28.0,
            y + 11.0
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::story::PodSeries;

    #[test]
    fn numbers_and_ticks() {
        assert_eq!(thousands(10000.0), "10,000");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1234.0), "-1,234");
        assert_eq!(tick(11000.0, 5.0), 2500.0);
        assert_eq!(tick(220.0, 5.0), 50.0);
        assert_eq!(tick(3.0, 3.0), 1.0);
        assert_eq!(tick(45.0, 8.0), 10.0);
    }

    #[test]
    fn draws_both_pods_their_sum_the_new_ones_and_the_phases() {
        let f = Facts {
            terminating: 100.0,
            ..Facts::default()
        };
        let mut o = Observed::default();
        let mut a = PodSeries::default();
        let mut b = PodSeries::default();
        for s in 0..10 {
            let t = (97 + s) * 1000;
            let on_a = if s < 5 {
                200.0
            } else {
                200.0 - 50.0 * (s - 4) as f64
            };
            a.websockets.insert(t, on_a.max(0.0));
            a.upgrades.insert(t, 200.0);
            a.phase.insert(
                t,
                match s {
                    0..=2 => "serving",
                    3..=4 => "prestop",
                    _ => "draining",
                }
                .into(),
            );
            b.websockets.insert(t, 200.0 - on_a.max(0.0));
            b.upgrades.insert(t, 200.0 - on_a.max(0.0));
            o.websocket_sum.insert(t, 200.0);
        }
        o.pods.insert("pod-a".into(), a);
        o.pods.insert("pod-b".into(), b);
        let svg = svg(&o, &f, "A rollout");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("stroke-dasharray"), "the sum is dashed");
        assert!(svg.contains(">pod A prestop</text>") && svg.contains(">pod A draining</text>"));
        assert!(svg.contains(">A rollout</text>"));
        // Ticks: 0 to 250 WebSockets by 50, seconds from -3 to 6.
        assert!(svg.contains(">250</text>") && svg.contains(">-2</text>"));
        // A bar per step with a rise (pod B's 50 a second, 4 of them), and the legend's.
        assert_eq!(svg.matches(&format!("fill=\"{NEW}\"/>")).count(), 5);
        assert!(svg.len() < 10_000, "{}", svg.len());
    }
}
