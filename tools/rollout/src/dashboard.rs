//! The Grafana dashboard against the rollout's Prometheus: every panel's query
//! (`panels[].targets[].expr`, and those of panels inside rows) is run over the rollout, with
//! Grafana's variables replaced as Grafana would for this Prometheus, and must return data.
//! A panel that shows nothing during a rollout is a panel nobody can use during one.

use serde::Deserialize;

/// What the check reads of a Grafana dashboard's JSON model: its panels.
#[derive(Debug, Deserialize)]
pub struct Dashboard {
    #[serde(default)]
    panels: Vec<Panel>,
}

/// A panel, or a row (a collapsed row holds its panels).
#[derive(Debug, Deserialize)]
struct Panel {
    title: Option<String>,
    #[serde(default)]
    targets: Vec<PanelTarget>,
    #[serde(default)]
    panels: Vec<Panel>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PanelTarget {
    ref_id: Option<String>,
    expr: Option<String>,
}

/// One query of a panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
}

/// Every non-empty `targets[].expr` of the panels, rows' panels included, in order.
pub fn queries(dashboard: &Dashboard) -> Vec<Query> {
    fn walk(panels: &[Panel], out: &mut Vec<Query>) {
        for p in panels {
            for t in &p.targets {
                let expr = t.expr.as_deref().unwrap_or("").trim();
                if !expr.is_empty() {
                    out.push(Query {
                        panel: p.title.clone().unwrap_or_else(|| "?".into()),
                        ref_id: t.ref_id.clone().unwrap_or_else(|| "?".into()),
                        expr: expr.to_string(),
                    });
                }
            }
            walk(&p.panels, out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard.panels, &mut out);
    out
}

/// The values of Grafana's built-in variables for a query of the rollout.
#[derive(Debug, Clone)]
pub struct Builtins {
    /// `$__interval`: the step (1 s, the scrape interval).
    pub interval_secs: u64,
    /// `$__rate_interval`: Grafana's max(`$__interval` + scrape interval, 4 × scrape interval),
    /// 4 s with 1 s scrapes: the shortest window a `rate()` is sure to find two samples in.
    pub rate_interval_secs: u64,
    /// `$__range`: the rollout's length.
    pub range_secs: u64,
}

impl Builtins {
    /// A built-in's value, `None` for a dashboard's own variable.
    fn value(&self, name: &str) -> Option<String> {
        Some(match name {
            "__interval" => format!("{}s", self.interval_secs),
            "__interval_ms" => (self.interval_secs * 1000).to_string(),
            "__rate_interval" => format!("{}s", self.rate_interval_secs),
            "__rate_interval_ms" => (self.rate_interval_secs * 1000).to_string(),
            "__range" => format!("{}s", self.range_secs),
            "__range_s" => self.range_secs.to_string(),
            "__range_ms" => (self.range_secs * 1000).to_string(),
            _ => return None,
        })
    }
}

/// A variable at the start of `s` (`$name`, `${name}`, `${name:format}`, `[[name]]`): its
/// name and length. A name starts with a letter or `_`, so `$1` (label_replace's group) and a
/// regex's `$` anchor are not variables.
fn variable(s: &str) -> Option<(&str, usize)> {
    let name_len = |t: &str| {
        let ok = t
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !ok {
            return 0;
        }
        t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(t.len())
    };
    let (open, close, rest) = if let Some(r) = s.strip_prefix("${") {
        ("${", "}", r)
    } else if let Some(r) = s.strip_prefix("[[") {
        ("[[", "]]", r)
    } else if let Some(r) = s.strip_prefix('$') {
        ("$", "", r)
    } else {
        return None;
    };
    let n = name_len(rest);
    if n == 0 {
        return None;
    }
    if close.is_empty() {
        return Some((&rest[..n], open.len() + n));
    }
    // `${name:format}`: the format is Grafana's business.
    let end = rest[n..].find(close)? + n;
    if end != n && !rest[n..].starts_with(':') {
        return None;
    }
    Some((&rest[..n], open.len() + end + close.len()))
}

/// The query Prometheus can run: Grafana's built-ins get their values; a dashboard variable
/// (`$pod`, `$instance`, …: "All" in Grafana) becomes `.*`, and the label matcher holding it
/// becomes a regex match (`=` → `=~`, `!=` → `!~`) so that `.*` means "any".
pub fn substitute(expr: &str, b: &Builtins) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    // Inside a string: where in `out` it began (its opening quote), and whether a dashboard
    // variable was put in it.
    let mut string: Option<(usize, bool)> = None;
    while let Some(c) = rest.chars().next() {
        if let Some((name, len)) = variable(rest) {
            match b.value(name) {
                Some(v) => out.push_str(&v),
                None => {
                    out.push_str(".*");
                    if let Some((_, any)) = string.as_mut() {
                        *any = true;
                    }
                }
            }
            rest = &rest[len..];
            continue;
        }
        match (c, string) {
            ('\\', Some(_)) => {
                // An escape: the next character is part of the string.
                let n = rest[1..].chars().next().map_or(0, char::len_utf8);
                out.push_str(&rest[..1 + n]);
                rest = &rest[1 + n..];
                continue;
            }
            ('"', None) => string = Some((out.len(), false)),
            ('"', Some((start, any))) => {
                string = None;
                if any {
                    regex_matcher(&mut out, start);
                }
            }
            _ => {}
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Turns the matcher whose value's opening quote is at `quote` in `out` into a regex match.
fn regex_matcher(out: &mut String, quote: usize) {
    let before = out[..quote].trim_end();
    if before.ends_with("=~") || before.ends_with("!~") {
        return;
    }
    if before.ends_with("!=") {
        out.replace_range(before.len() - 2..before.len(), "!~");
    } else if before.ends_with('=') {
        out.replace_range(before.len() - 1..before.len(), "=~");
    }
}

/// Metrics the server exposes only where it can: a panel on them alone may show nothing here
/// (on GKE it does show them).
pub const CONDITIONAL: [(&str, &str); 2] = [
    (
        "wsdrain_cgroup_memory_bytes",
        "the cgroup v2 memory files are unreadable here",
    ),
    (
        "wsdrain_cgroup_memory_limit_bytes",
        "the cgroup v2 memory files are unreadable here, or memory.max is \"max\"",
    ),
];

/// The `wsdrain_*` metric names in a query.
fn metric_names(expr: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("wsdrain_") {
        let prev = expr.len() - rest.len() + i;
        let starts_word = prev == 0
            || !expr[..prev]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        let len = rest[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len() - i);
        if starts_word {
            out.push(&rest[i..i + len]);
        }
        rest = &rest[i + len..];
    }
    out
}

/// What the dashboard's queries returned.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Queries run, and how many returned data.
    pub run: usize,
    pub with_data: usize,
    /// Queries with no data that may have none here, and why.
    pub notes: Vec<String>,
    pub failures: Vec<String>,
}

/// Runs every query of `dashboard` with `run` (the substituted query → the number of points it
/// returned, or Prometheus's error); `present`: the metric names Prometheus holds.
pub fn check(
    dashboard: &Dashboard,
    b: &Builtins,
    present: &[String],
    mut run: impl FnMut(&str) -> Result<usize, String>,
) -> Outcome {
    let mut o = Outcome::default();
    let all = queries(dashboard);
    if all.is_empty() {
        o.failures
            .push("the dashboard has no panel with a query".into());
    }
    for q in all {
        let expr = substitute(&q.expr, b);
        let which = format!("dashboard panel {:?} ({})", q.panel, q.ref_id);
        o.run += 1;
        match run(&expr) {
            Ok(0) => {
                let absent: Vec<&str> = metric_names(&expr)
                    .into_iter()
                    .filter(|n| !present.iter().any(|p| p == n))
                    .collect();
                let why: Vec<&str> = absent
                    .iter()
                    .filter_map(|n| CONDITIONAL.iter().find(|(c, _)| c == n).map(|(_, w)| *w))
                    .collect();
                if !absent.is_empty() && why.len() == absent.len() {
                    o.notes.push(format!(
                        "{which}: no data, as {} is not exposed here ({})",
                        absent.join(", "),
                        why[0]
                    ));
                } else {
                    o.failures.push(format!(
                        "{which}: {expr:?} returned no data over the rollout"
                    ));
                }
            }
            Ok(_) => o.with_data += 1,
            Err(e) => o.failures.push(format!("{which}: {expr:?}: {e}")),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Builtins = Builtins {
        interval_secs: 1,
        rate_interval_secs: 4,
        range_secs: 60,
    };

    #[test]
    fn builtins_get_values_and_dashboard_variables_match_anything() {
        let cases = [
            (
                "rate(wsdrain_websocket_upgrades_total[$__rate_interval])",
                "rate(wsdrain_websocket_upgrades_total[4s])",
            ),
            (
                "rate(x[${__rate_interval}]) / $__interval_ms + increase(y[$__range]) + $__range_s",
                "rate(x[4s]) / 1000 + increase(y[60s]) + 60",
            ),
            ("avg_over_time(x[$__interval])", "avg_over_time(x[1s])"),
            (
                "x{pod=\"$pod\", namespace = \"${namespace}\", kind=\"websocket\"}",
                "x{pod=~\".*\", namespace =~ \".*\", kind=\"websocket\"}",
            ),
            (
                "x{pod=~\"$pod\", instance!=\"[[instance]]\", job!~\"${job:regex}\"}",
                "x{pod=~\".*\", instance!~\".*\", job!~\".*\"}",
            ),
            ("x{pod=\"wsdrain-$pod\"}", "x{pod=~\"wsdrain-.*\"}"),
            // Not variables: a regex anchor, label_replace's group, an escaped quote.
            ("x{job=~\"wsdrain$\"}", "x{job=~\"wsdrain$\"}"),
            (
                "label_replace(x, \"p\", \"$1\", \"pod\", \"(.*)\")",
                "label_replace(x, \"p\", \"$1\", \"pod\", \"(.*)\")",
            ),
            (
                "x{a=\"q\\\"$pod\"} + y{b=\"c\"}",
                "x{a=~\"q\\\".*\"} + y{b=\"c\"}",
            ),
            ("sum(x)", "sum(x)"),
        ];
        for (expr, want) in cases {
            assert_eq!(substitute(expr, &B), want, "{expr}");
        }
    }

    /// A small dashboard: a panel, a collapsed row holding one, an empty target, a variable.
    const DASHBOARD: &str = r#"{
      "templating": {"list": [{"name": "pod", "type": "query"}]},
      "panels": [
        {"type": "timeseries", "title": "WebSockets",
         "targets": [{"refId": "A", "expr": "sum by (pod) (wsdrain_connections_open{kind=\"websocket\", pod=\"$pod\"})"},
                     {"refId": "B", "expr": ""}]},
        {"type": "row", "title": "Drain", "collapsed": true, "panels": [
          {"type": "timeseries", "title": "Upgrades/s",
           "targets": [{"refId": "A", "expr": "rate(wsdrain_websocket_upgrades_total[$__rate_interval])"}]},
          {"type": "timeseries", "title": "Memory",
           "targets": [{"refId": "A", "expr": "wsdrain_cgroup_memory_bytes"}]},
          {"type": "timeseries", "title": "Typo",
           "targets": [{"refId": "A", "expr": "wsdrain_websocket_upgrade_total"}]}
        ]}
      ]
    }"#;

    #[test]
    fn every_panel_query_is_found_and_one_without_data_fails() {
        let doc: Dashboard = serde_json::from_str(DASHBOARD).unwrap();
        let q = queries(&doc);
        let panels: Vec<&str> = q.iter().map(|q| q.panel.as_str()).collect();
        assert_eq!(panels, ["WebSockets", "Upgrades/s", "Memory", "Typo"]);
        // A Prometheus that has the server's metrics except the cgroup ones.
        let present: Vec<String> = [
            "wsdrain_connections_open",
            "wsdrain_websocket_upgrades_total",
        ]
        .map(String::from)
        .to_vec();
        let mut ran = Vec::new();
        let o = check(&doc, &B, &present, |expr| {
            ran.push(expr.to_string());
            let names = metric_names(expr);
            Ok(usize::from(
                names.iter().all(|n| present.iter().any(|p| p == n)),
            ))
        });
        assert_eq!(
            ran,
            [
                "sum by (pod) (wsdrain_connections_open{kind=\"websocket\", pod=~\".*\"})",
                "rate(wsdrain_websocket_upgrades_total[4s])",
                "wsdrain_cgroup_memory_bytes",
                "wsdrain_websocket_upgrade_total",
            ]
        );
        assert_eq!((o.run, o.with_data), (4, 2));
        assert_eq!(o.notes.len(), 1, "{o:?}");
        assert!(o.notes[0].contains("\"Memory\" (A): no data"), "{o:?}");
        assert_eq!(
            o.failures,
            [
                "dashboard panel \"Typo\" (A): \"wsdrain_websocket_upgrade_total\" returned no \
                 data over the rollout"
            ]
        );
        // Prometheus's own error is a failure too.
        let o = check(&doc, &B, &present, |_| Err("bad_data: parse error".into()));
        assert_eq!(o.failures.len(), 4);
        let empty: Dashboard = serde_json::from_str(r#"{"panels": []}"#).unwrap();
        assert_eq!(check(&empty, &B, &present, |_| Ok(1)).failures.len(), 1);
    }

    #[test]
    fn metric_names_are_whole_words() {
        assert_eq!(
            metric_names("rate(wsdrain_a_total[1m]) / x_wsdrain_b + wsdrain_c:ratio"),
            ["wsdrain_a_total", "wsdrain_c:ratio"]
        );
    }

    #[test]
    fn the_projects_dashboard_reads_with_a_titled_query_per_target() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/monitoring/grafana-dashboard.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let doc: Dashboard = serde_json::from_str(&text).unwrap();
        let q = queries(&doc);
        let targets = text.matches("\"expr\"").count();
        assert!(
            !q.is_empty() && q.len() == targets,
            "{} of {targets}",
            q.len()
        );
        assert!(q.iter().all(|q| q.panel != "?" && q.ref_id != "?"), "{q:?}");
    }
}
