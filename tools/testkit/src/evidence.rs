//! The one reader of what the server states in structured form, for the tests and the tools:
//!
//! - its lifecycle log lines, logfmt: `… [module] event key=value key="quoted value"`
//!   ([`EventFields`]), and the drain plan a `drain_schedule` line states ([`DrainPlan`]);
//! - its `/metrics` on the admin port, Prometheus text ([`Metrics`], [`metric`]).
//!
//! Nothing here reads the prose of a log line: a value is found by its key, a sample by its
//! name and labels.

use std::net::SocketAddr;
use std::time::Duration;

/// A lifecycle line read back: its `key=value` fields, in order.
///
/// The server writes a value with a space, a quote or an `=` (or an empty one) quoted, as Rust
/// writes a string literal; others bare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFields {
    fields: Vec<(String, String)>,
}

impl EventFields {
    /// Reads `line` (a whole log line, the logger's time, level and `[module]` first) if its
    /// message is the event `event`.
    pub fn of(line: &str, event: &str) -> Option<EventFields> {
        let message = line.split_once("] ").map_or(line, |(_, m)| m);
        let rest = message.strip_prefix(event)?;
        if !(rest.is_empty() || rest.starts_with(' ')) {
            return None;
        }
        let mut fields = Vec::new();
        let mut rest = rest.trim_start();
        while let Some((key, after)) = rest.split_once('=') {
            let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next().map(|(_, c)| c)),
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end..])
            } else {
                let end = after.find(' ').unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            };
            fields.push((key.to_string(), value));
            rest = next.trim_start();
        }
        Some(EventFields { fields })
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` as a number.
    pub fn number(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse().ok()
    }
}

/// The drain's planned close times as its `drain_schedule` line states them: how evenly the
/// closes are spread over `DRAIN_WINDOW`, per quarter of the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainPlan {
    /// `DRAIN_WINDOW` in milliseconds.
    pub window_ms: u64,
    /// Closes planned in each quarter of the window.
    pub per_quarter: [usize; 4],
    /// The earliest planned close, in milliseconds after the drain began (none without closes).
    pub first_ms: Option<u64>,
    /// The latest planned close.
    pub last_ms: Option<u64>,
    /// WebSockets whose notice went out before the drain (not planned again).
    pub noticed_before: usize,
}

impl DrainPlan {
    /// The plan a `drain_schedule` line's fields state: `window_ms`, `q1` … `q4`, and
    /// `first_ms`, `last_ms` when there are closes. `None` when a field is missing or the
    /// quarters do not add up to `closes`.
    pub fn from_fields(fields: &EventFields) -> Option<DrainPlan> {
        let count = |key| fields.number(key).and_then(|n| usize::try_from(n).ok());
        let plan = DrainPlan {
            window_ms: fields.number("window_ms")?,
            per_quarter: [count("q1")?, count("q2")?, count("q3")?, count("q4")?],
            first_ms: fields.number("first_ms"),
            last_ms: fields.number("last_ms"),
            noticed_before: count("noticed_before").unwrap_or(0),
        };
        (Some(plan.closes()) == count("closes")).then_some(plan)
    }

    /// Closes planned in all.
    pub fn closes(&self) -> usize {
        self.per_quarter.iter().sum()
    }
}

/// As the server's line states it.
impl std::fmt::Display for DrainPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [q1, q2, q3, q4] = self.per_quarter;
        write!(
            f,
            "drain_schedule closes={} window_ms={} q1={q1} q2={q2} q3={q3} q4={q4} \
             noticed_before={}",
            self.closes(),
            self.window_ms,
            self.noticed_before
        )?;
        if let (Some(first), Some(last)) = (self.first_ms, self.last_ms) {
            write!(f, " first_ms={first} last_ms={last}")?;
        }
        Ok(())
    }
}

/// One sample of Prometheus text: `name{label="value",…} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name.
    pub name: String,
    /// The labels, in the order written.
    pub labels: Labels,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of the label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is the series `name` with exactly `labels` (in any order).
    fn is(&self, name: &str, labels: &Labels) -> bool {
        self.name == name
            && self.labels.len() == labels.len()
            && labels
                .iter()
                .all(|(k, v)| self.label(k) == Some(v.as_str()))
    }
}

/// One scrape of `/metrics`: its samples, and the text they came from (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    samples: Vec<Sample>,
    text: String,
}

impl Metrics {
    /// Parses Prometheus text format 0.0.4: `# HELP`/`# TYPE` and blank lines are skipped, every
    /// other line is a sample (an optional timestamp after the value is ignored).
    pub fn parse(text: &str) -> Result<Metrics, String> {
        let samples = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (name, labels, rest) =
                    series(line).ok_or_else(|| format!("not a sample: {line:?}"))?;
                let value = rest
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("no numeric value: {line:?}"))?;
                Ok(Sample {
                    name,
                    labels,
                    value,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Metrics {
            samples,
            text: text.to_string(),
        })
    }

    /// The value of one series, written as in the exposition: `name` alone for a series without
    /// labels, or `name{label="value",…}` with all of its labels (their order does not matter).
    /// `None` when there is no such series (or `series` does not parse).
    pub fn get(&self, series_text: &str) -> Option<f64> {
        let (name, labels, rest) = series(series_text)?;
        if !rest.trim().is_empty() {
            return None;
        }
        self.samples
            .iter()
            .find(|s| s.is(&name, &labels))
            .map(|s| s.value)
    }

    /// Every sample, in the order of the text.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The text as scraped.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The text as scraped, for assertion messages.
impl std::fmt::Display for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A series' labels: (name, value) pairs, in the order written.
type Labels = Vec<(String, String)>;

/// The series at the start of `text`: its name, its labels, and what follows.
fn series(text: &str) -> Option<(String, Labels, &str)> {
    let text = text.trim_start();
    let name_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    let name = &text[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &text[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once('=')?;
            let quoted = after.strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            labels.push((key.trim().to_string(), value));
            rest = &quoted[end?..];
        }
    }
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some((name.to_string(), labels, rest))
}

/// One scrape of `/metrics` on the admin address (bounded: 10 s).
pub fn scrape(admin: SocketAddr) -> Result<Metrics, String> {
    let answer = crate::http::get(admin, "/metrics", Duration::from_secs(10))?;
    if answer.status != 200 {
        return Err(format!(
            "GET http://{admin}/metrics answered {}: {}",
            answer.status,
            answer.text()
        ));
    }
    Metrics::parse(&answer.text())
}

/// The value of one series (see [`Metrics::get`]) in a fresh scrape of `/metrics` on the admin
/// address: `Ok(None)` when the server does not expose it, `Err` when the scrape failed.
pub fn metric(admin: SocketAddr, series: &str) -> Result<Option<f64>, String> {
    Ok(scrape(admin)?.get(series))
}

#[cfg(test)]
mod tests {
    //! Lifecycle lines, the drain plan and Prometheus samples read back.

    use super::*;

    #[test]
    fn event_lines_read_back() {
        let logged = r#"2026-12-01T00:00:00.000Z INFO  [wsdrain::server] drain_end after_ms=1500 dir="a \"b\" c" n=3"#;
        let fields = EventFields::of(logged, "drain_end").expect("parsed");
        assert_eq!(fields.number("after_ms"), Some(1500));
        assert_eq!(fields.get("dir"), Some("a \"b\" c"));
        assert_eq!(fields.number("n"), Some(3));
        assert_eq!(fields.get("missing"), None);
        assert!(EventFields::of(logged, "drain").is_none());
        assert!(EventFields::of(logged, "exit").is_none());
    }

    #[test]
    fn quoted_values_read_back() {
        // As the server quotes what would break a field.
        let line = r#"… INFO  [wsdrain] listening port=8080 dir="my static" empty="" eq="a=b""#;
        let fields = EventFields::of(line, "listening").unwrap();
        assert_eq!(fields.number("port"), Some(8080));
        assert_eq!(fields.get("dir"), Some("my static"));
        assert_eq!(fields.get("empty"), Some(""));
        assert_eq!(fields.get("eq"), Some("a=b"));
        assert_eq!(
            EventFields::of("x INFO  [m] ready", "ready").map(|f| f.get("phase").is_none()),
            Some(true),
            "an event without fields"
        );
    }

    const PLAN: &str = "2026-12-01T00:00:00Z INFO  [wsdrain::server] drain_schedule closes=3 \
                        window_ms=3000 q1=1 q2=1 q3=0 q4=1 noticed_before=2 first_ms=12 \
                        last_ms=2990";

    #[test]
    fn a_drain_plan_reads_back_from_its_line() {
        let fields = EventFields::of(PLAN, "drain_schedule").expect("a drain_schedule line");
        let plan = DrainPlan::from_fields(&fields).expect("a plan");
        assert_eq!(
            plan,
            DrainPlan {
                window_ms: 3000,
                per_quarter: [1, 1, 0, 1],
                first_ms: Some(12),
                last_ms: Some(2990),
                noticed_before: 2,
            }
        );
        assert_eq!(plan.closes(), 3);
        assert_eq!(PLAN.split("] ").nth(1), Some(plan.to_string().as_str()));
        let broken = PLAN.replace("closes=3", "closes=4");
        let fields = EventFields::of(&broken, "drain_schedule").expect("still a line");
        assert_eq!(
            DrainPlan::from_fields(&fields),
            None,
            "quarters must add up"
        );
        let missing = PLAN.replace(" q4=1", "");
        let fields = EventFields::of(&missing, "drain_schedule").unwrap();
        assert_eq!(
            DrainPlan::from_fields(&fields),
            None,
            "a quarter is missing"
        );
    }

    #[test]
    fn an_empty_drain_plan_has_no_first_or_last() {
        let line = "t INFO  [s] drain_schedule closes=0 window_ms=3000 q1=0 q2=0 q3=0 q4=0 noticed_before=0";
        let plan = DrainPlan::from_fields(&EventFields::of(line, "drain_schedule").unwrap());
        let plan = plan.expect("a plan");
        assert_eq!(
            (plan.closes(), plan.first_ms, plan.last_ms),
            (0, None, None)
        );
        assert_eq!(line.split("] ").nth(1), Some(plan.to_string().as_str()));
    }

    const METRICS: &str = "# HELP wsdrain_phase Current phase.\n\
        # TYPE wsdrain_phase gauge\n\
        wsdrain_phase{phase=\"serving\"} 1\n\
        wsdrain_phase{phase=\"prestop\"} 0\n\
        wsdrain_websocket_closes_total{code=\"1008\",by=\"server\"} 2\n\
        wsdrain_websocket_closes_total{code=\"1008\",by=\"client\"} 10\n\
        wsdrain_received_bytes_total 12345\n\
        wsdrain_odd{why=\"a \\\"quoted\\\" } value\"} 0.5 1700000000\n\
        \n";

    #[test]
    fn samples_are_found_by_name_and_labels() {
        let m = Metrics::parse(METRICS).unwrap();
        assert_eq!(m.samples().len(), 6);
        assert_eq!(m.get("wsdrain_phase{phase=\"serving\"}"), Some(1.0));
        assert_eq!(m.get("wsdrain_phase{phase=\"prestop\"}"), Some(0.0));
        assert_eq!(
            m.get("wsdrain_websocket_closes_total{code=\"1008\",by=\"server\"}"),
            Some(2.0)
        );
        assert_eq!(
            m.get("wsdrain_websocket_closes_total{by=\"client\", code=\"1008\"}"),
            Some(10.0),
            "label order does not matter"
        );
        assert_eq!(m.get("wsdrain_received_bytes_total"), Some(12345.0));
        assert_eq!(
            m.get("wsdrain_odd{why=\"a \\\"quoted\\\" } value\"}"),
            Some(0.5)
        );
        // A series is named whole: no prefix matches, no missing or extra labels.
        assert_eq!(m.get("wsdrain_received_bytes"), None);
        assert_eq!(m.get("wsdrain_phase"), None);
        assert_eq!(m.get("wsdrain_websocket_closes_total{code=\"1008\"}"), None);
        assert_eq!(m.get("wsdrain_phase{phase=\"draining\"}"), None);
        let closes: Vec<&str> = m.samples().iter().filter_map(|s| s.label("by")).collect();
        assert_eq!(closes, ["server", "client"]);
        assert_eq!(m.to_string(), METRICS);
    }

    #[test]
    fn text_that_is_not_prometheus_is_an_error() {
        assert!(Metrics::parse("wsdrain_x one\n").is_err());
        assert!(Metrics::parse("wsdrain_x{a=\"1\" 2\n").is_err());
        assert!(Metrics::parse("{a=\"1\"} 2\n").is_err());
        assert!(Metrics::parse("").unwrap().samples().is_empty());
    }
}
