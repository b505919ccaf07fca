//! The rollout as Prometheus saw it, drawn with `plotters` as an SVG: the WebSockets on each
//! pod and their sum, above the new WebSockets per second (upgrades), with pod A's preStop and
//! drain shaded; one point per step of the range queries (1 s). Each pod's values are placed at
//! the time of the scrape they come from (a step shows the latest one), the sum at the later of
//! its two scrapes, the phases from the first scrape that showed them, the new WebSockets over
//! the second before their step. Steps before both pods are watched ([`Facts::watched`]) are
//! left out: Prometheus's reload for pod B may leave pod A without a sample there.

use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::story::{Facts, Observed, PodSeries, Steps, phase_runs};

const SIZE: (u32, u32) = (800, 560);
/// The left margin that holds the value axes' labels and titles, the same in both panels so
/// that their time axes line up.
const Y_LABELS: u32 = 80;

const POD_A: RGBColor = RGBColor(0xb0, 0x3a, 0x2e);
const POD_B: RGBColor = RGBColor(0x1b, 0x7f, 0x3b);
const SUM: RGBColor = RGBColor(0x55, 0x55, 0x55);
const NEW: RGBColor = RGBColor(0xd6, 0x89, 0x10);
const PRESTOP: RGBColor = RGBColor(0xfd, 0xf0, 0xc8);
const DRAINING: RGBColor = RGBColor(0xf6, 0xd5, 0xcf);
const GRID: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);

/// Fonts, in plotters' points (an SVG pixel is 1.24 of them): the title at 16 px, the axes'
/// and the legend's labels at 13 px, the ticks' at 12 px.
const TITLE: (&str, u32) = ("sans-serif", 20);
const LABELS: (&str, u32) = ("sans-serif", 16);
const TICKS: (&str, u32) = ("sans-serif", 15);

/// The shade of a phase of pod A.
fn shade(phase: &str) -> RGBColor {
    if phase == "prestop" {
        PRESTOP
    } else {
        DRAINING
    }
}

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

/// A tick's label: whole numbers with thousands separators, others with one decimal.
fn tick_label(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        thousands(*v)
    } else {
        format!("{v:.1}")
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

/// What the picture shows, in seconds after pod A's termination began.
struct Figure {
    pod_a: Vec<(f64, f64)>,
    pod_b: Vec<(f64, f64)>,
    sum: Vec<(f64, f64)>,
    /// New WebSockets over the second before each step.
    new: Vec<(f64, f64)>,
    /// Pod A's phases after serving: (phase, from, to).
    phases: Vec<(String, f64, f64)>,
}

impl Figure {
    fn of(o: &Observed, f: &Facts) -> Figure {
        let pod = |name: &str| {
            o.pods
                .get(name)
                .map(|p| at_scrapes(p, &p.websockets, f))
                .unwrap_or_default()
        };
        let (pod_a, pod_b) = (pod("pod-a"), pod("pod-b"));
        let sum = o
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
        let new = o
            .upgrades_per_step()
            .iter()
            .filter(|(t, _)| shown(**t, f))
            .map(|(t, v)| (*t as f64 / 1000.0 - 0.5 - f.terminating, *v))
            .collect();
        // From the first scrape that showed a phase to the next phase's, the last one to pod
        // A's last scrape.
        let runs: Vec<(String, f64)> = phase_runs(o)
            .into_iter()
            .map(|(phase, first, _)| (phase, first.max(f.watched) - f.terminating))
            .collect();
        let mut figure = Figure {
            pod_a,
            pod_b,
            sum,
            new,
            phases: Vec::new(),
        };
        let (_, x1) = figure.time_range();
        let a_end = figure.pod_a.last().map_or(x1, |p| p.0);
        for (i, (phase, from)) in runs.iter().enumerate() {
            if phase == "prestop" || phase == "draining" {
                let to = runs.get(i + 1).map_or(a_end, |r| r.1).max(*from);
                figure.phases.push((phase.clone(), *from, to));
            }
        }
        figure
    }

    /// The time axis: whole seconds from 0 (or the first point) to the last point.
    fn time_range(&self) -> (f64, f64) {
        let xs = || {
            [&self.pod_a, &self.pod_b, &self.sum]
                .into_iter()
                .flatten()
                .map(|p| p.0)
        };
        let x0 = xs().fold(f64::INFINITY, f64::min).min(0.0).floor();
        let x1 = xs().fold(f64::NEG_INFINITY, f64::max).max(x0 + 1.0).ceil();
        (x0, x1)
    }
}

/// The largest of `values`, at least 1, with a tenth of room above it.
fn headroom<'a>(values: impl Iterator<Item = &'a (f64, f64)>) -> f64 {
    values.map(|p| p.1).fold(1.0, f64::max) * 1.1
}

/// The picture of the rollout, titled `title`.
pub fn svg(o: &Observed, f: &Facts, title: &str) -> Result<String, String> {
    let mut out = String::new();
    draw(&Figure::of(o, f), title, &mut out).map_err(|e| format!("picture: {e}"))?;
    Ok(out)
}

/// A panel: both share the time axis, each has a value axis of its own.
type Panel<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A panel's value axis: its title, and how many labels (plotters' default when `None`).
struct ValueAxis<'s> {
    desc: &'s str,
    labels: Option<usize>,
}

/// What lies under a panel's series, the same in both panels: pod A's phases shaded from 0 to
/// `y_max`, then the grid and the axes. The time axis is labelled, with `time_desc` as its
/// title, only when given one (the bottom panel's); above, its ticks are left blank.
fn underlay(
    panel: &mut Panel,
    phases: &[(String, f64, f64)],
    y_max: f64,
    value: ValueAxis,
    time_desc: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    // The phases first, under the grid and the lines.
    for (phase, from, to) in phases {
        panel.draw_series([Rectangle::new(
            [(*from, 0.0), (*to, y_max)],
            shade(phase).filled(),
        )])?;
    }
    let blank = |_: &f64| String::new();
    let mut mesh = panel.configure_mesh();
    mesh.disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .y_label_formatter(&tick_label)
        .y_desc(value.desc)
        .label_style(TICKS)
        .axis_desc_style(LABELS);
    if let Some(n) = value.labels {
        mesh.y_labels(n);
    }
    match time_desc {
        Some(desc) => mesh.x_label_formatter(&tick_label).x_desc(desc),
        None => mesh.x_label_formatter(&blank),
    };
    mesh.draw()?;
    Ok(())
}

fn draw(figure: &Figure, title: &str, out: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(out, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.margin(10, 4, 8, 8).titled(title, TITLE)?;
    let (top, bottom) = root.split_vertically(SIZE.1 * 58 / 100);
    let (x0, x1) = figure.time_range();

    // The WebSockets open, per pod and over both.
    let top_max = headroom(figure.pod_a.iter().chain(&figure.pod_b).chain(&figure.sum));
    let mut sockets = ChartBuilder::on(&top)
        .margin_top(8)
        .margin_right(24)
        .y_label_area_size(Y_LABELS)
        .x_label_area_size(12)
        .build_cartesian_2d(x0..x1, 0.0..top_max)?;
    underlay(
        &mut sockets,
        &figure.phases,
        top_max,
        ValueAxis {
            desc: "WebSockets open",
            labels: None,
        },
        None,
    )?;
    for (points, name, color) in [
        (&figure.pod_a, "pod-a", POD_A),
        (&figure.pod_b, "pod-b", POD_B),
    ] {
        sockets
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    let dashed = SUM.stroke_width(2);
    sockets
        .draw_series(DashedLineSeries::new(
            figure.sum.iter().copied(),
            6,
            4,
            dashed,
        ))?
        .label("both pods")
        .legend(move |(x, y)| DashedPathElement::new([(x, y), (x + 18, y)], 6, 4, dashed));
    // The phases' entries in the legend, after the lines'.
    for phase in ["prestop", "draining"] {
        if figure.phases.iter().any(|(p, _, _)| p == phase) {
            let color = shade(phase);
            sockets
                .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
                .label(format!("pod A {phase}"))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 7), (x + 18, y + 7)], color.filled())
                });
        }
    }
    sockets
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleLeft)
        .margin(10)
        .label_font(LABELS)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()?;

    // The new WebSockets per second, on the same time axis.
    let new_max = headroom(figure.new.iter());
    let mut per_second = ChartBuilder::on(&bottom)
        .margin_top(12)
        .margin_right(24)
        .margin_bottom(6)
        .y_label_area_size(Y_LABELS)
        .x_label_area_size(46)
        .build_cartesian_2d(x0..x1, 0.0..new_max)?;
    underlay(
        &mut per_second,
        &figure.phases,
        new_max,
        ValueAxis {
            desc: "new WebSockets / s",
            labels: Some(4),
        },
        Some("time since pod A's termination began (s)"),
    )?;
    // A bar per step with a rise: the first step of each pod has none to show (its counter's
    // start, not a second's).
    per_second.draw_series(
        figure
            .new
            .iter()
            .filter(|p| p.1 > 0.0)
            .map(|&(x, v)| Rectangle::new([(x - 0.35, 0.0), (x + 0.35, v)], NEW.filled())),
    )?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(thousands(10000.0), "10,000");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1234.0), "-1,234");
        assert_eq!(tick_label(&2500.0), "2,500");
        assert_eq!(tick_label(&-2.5), "-2.5");
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
        let figure = Figure::of(&o, &f);
        assert_eq!(figure.time_range(), (-3.0, 6.0));
        assert_eq!(
            figure.phases,
            [
                ("prestop".to_string(), 0.0, 2.0),
                ("draining".to_string(), 2.0, 6.0)
            ]
        );
        // Pod B's 50 a second, 4 of them, each over the second before its step.
        let bars: Vec<(f64, f64)> = figure.new.iter().copied().filter(|p| p.1 > 0.0).collect();
        assert_eq!(bars, [(1.5, 50.0), (2.5, 50.0), (3.5, 50.0), (4.5, 50.0)]);

        let svg = svg(&o, &f, "A rollout").unwrap();
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        // The texts drawn, each without the newlines plotters puts around it.
        let texts: Vec<&str> = svg
            .split("</text>")
            .filter_map(|t| Some(t.rsplit_once('>')?.1.trim()))
            .collect();
        for text in [
            "A rollout",
            "pod A prestop",
            "pod A draining",
            "pod-a",
            "pod-b",
            "both pods",
            "WebSockets open",
            "new WebSockets / s",
            "time since pod A&apos;s termination began (s)",
            // Ticks: round numbers of WebSockets, whole seconds from -3 to 6.
            "200",
            "-2",
            "6",
        ] {
            assert!(texts.contains(&text), "{text}: {texts:?}");
        }
        // The two pods' lines (and their legend marks) in their colours, and a bar per rise.
        for color in ["#B03A2E", "#1B7F3B"] {
            assert!(svg.contains(&format!("stroke=\"{color}\"")), "{color}");
        }
        assert_eq!(svg.matches("fill=\"#D68910\"").count(), 4);
    }
}
