//! What the harness reads back from Prometheus through its HTTP API: the targets' health,
//! instant and range queries, the metric names. Every answer is JSON (`status`, then `data` or
//! `error`); its shapes are derived with serde.

use std::collections::BTreeMap;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Prometheus, http};

/// One series of a range query: its labels and its points (unix seconds, value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

impl Prometheus {
    /// Whether every pod in `pods` has a target whose last scrape succeeded; if not, what
    /// the targets say.
    pub fn up(&self, pods: &[&str]) -> Result<(), String> {
        let targets: Targets = self.api("/api/v1/targets")?;
        let up = |pod: &str| {
            targets
                .active
                .iter()
                .any(|t| t.pod() == pod && t.health == "up")
        };
        if pods.iter().all(|p| up(p)) {
            return Ok(());
        }
        Err(targets
            .active
            .iter()
            .map(|t| format!("{} {} {}", t.pod(), t.health, t.last_error))
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// `GET path` on the API; the answer's `data` when its status is "success".
    fn api<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let (status, body) = http(self.addr, "GET", path, Duration::from_secs(20))?;
        let answer: Answer<T> =
            serde_json::from_str(&body).map_err(|e| format!("{path}: JSON: {e} ({status})"))?;
        match answer {
            Answer {
                status: s,
                data: Some(data),
                ..
            } if s == "success" => Ok(data),
            Answer { error, .. } => Err(format!("{path}: {status} {}", error.unwrap_or_default())),
        }
    }

    /// `/api/v1/query_range` of `expr` over [start, end] (unix seconds) at `step` seconds.
    pub fn query_range(
        &self,
        expr: &str,
        start: f64,
        end: f64,
        step: u64,
    ) -> Result<Vec<Series>, String> {
        let path = format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step}",
            urlencode(expr)
        );
        let data: QueryData = self
            .api(&path)
            .map_err(|e| format!("query {expr:?}: {e}"))?;
        data.into_series()
            .map_err(|e| format!("query {expr:?}: {e}"))
    }

    /// When each pod (by its `pod` label) was last scraped, as an instant query sees it now.
    pub fn last_scrapes(&self) -> Result<BTreeMap<String, f64>, String> {
        let expr = "timestamp(wsdrain_uptime_seconds)";
        let data: QueryData = self
            .api(&format!("/api/v1/query?query={}", urlencode(expr)))
            .map_err(|e| format!("query {expr:?}: {e}"))?;
        let QueryData::Vector(samples) = data else {
            return Ok(BTreeMap::new());
        };
        Ok(samples
            .into_iter()
            .filter_map(|s| Some((s.metric.get("pod")?.clone(), s.value.1.parse().ok()?)))
            .collect())
    }

    /// The metric names Prometheus holds.
    pub fn metric_names(&self) -> Result<Vec<String>, String> {
        self.api("/api/v1/label/__name__/values")
    }
}

/// Every answer of the HTTP API: its status, and its data or its error.
#[derive(Debug, Deserialize)]
struct Answer<T> {
    status: String,
    data: Option<T>,
    error: Option<String>,
}

/// The data of `/api/v1/targets`: the targets being scraped.
#[derive(Debug, Deserialize)]
struct Targets {
    #[serde(rename = "activeTargets")]
    active: Vec<ActiveTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActiveTarget {
    labels: BTreeMap<String, String>,
    health: String,
    #[serde(default)]
    last_error: String,
}

impl ActiveTarget {
    fn pod(&self) -> &str {
        self.labels.get("pod").map_or("?", String::as_str)
    }
}

/// The data of a query, of the two types the harness asks for (a scalar or a string answer
/// does not read back). A value is a `[unix seconds, "number"]` pair: the number is a string,
/// so that `NaN` and `+Inf` fit.
#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum QueryData {
    Matrix(Vec<RangeSeries>),
    Vector(Vec<Sample>),
}

/// One series of a matrix.
#[derive(Debug, Deserialize)]
pub struct RangeSeries {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// One series of a vector: its value now.
#[derive(Debug, Deserialize)]
pub struct Sample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

impl QueryData {
    /// The series of a matrix, their values read as numbers.
    pub fn into_series(self) -> Result<Vec<Series>, String> {
        let QueryData::Matrix(matrix) = self else {
            return Err("not a matrix".into());
        };
        matrix
            .into_iter()
            .map(|s| {
                let points = s
                    .values
                    .into_iter()
                    .map(|(t, v)| match v.parse::<f64>() {
                        Ok(v) => Ok((t, v)),
                        Err(_) => Err(format!("not a number: {v:?}")),
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Series {
                    labels: s.metric,
                    points,
                })
            })
            .collect()
    }
}

/// What a query string cannot hold as it is: everything but RFC 3986's unreserved characters.
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes everything but the unreserved characters.
pub fn urlencode(s: &str) -> String {
    utf8_percent_encode(s, RESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrices_parse_and_queries_encode() {
        let answer: Answer<QueryData> = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"pod":"pod-a"},"values":[[10,"1"],[11.5,"NaN"],[12,"+Inf"]]},
            {"metric":{},"values":[]}]}}"#,
        )
        .unwrap();
        assert_eq!(answer.status, "success");
        let m = answer.data.unwrap().into_series().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].labels["pod"], "pod-a");
        assert_eq!(m[0].points[0], (10.0, 1.0));
        assert!(m[0].points[1].1.is_nan());
        assert_eq!(m[0].points[2].1, f64::INFINITY);
        assert!(m[1].points.is_empty());
        // A vector is not a matrix, nor is a value that is not a number.
        let vector: QueryData = serde_json::from_str(
            r#"{"resultType":"vector","result":[{"metric":{"pod":"pod-b"},"value":[10,"12.5"]}]}"#,
        )
        .unwrap();
        let QueryData::Vector(ref samples) = vector else {
            panic!("{vector:?}");
        };
        assert_eq!(
            (
                samples[0].metric["pod"].as_str(),
                samples[0].value.1.as_str()
            ),
            ("pod-b", "12.5")
        );
        assert_eq!(vector.into_series().unwrap_err(), "not a matrix");
        let bad: QueryData = serde_json::from_str(
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[10,"x"]]}]}"#,
        )
        .unwrap();
        assert_eq!(bad.into_series().unwrap_err(), "not a number: \"x\"");
        let scalar =
            serde_json::from_str::<QueryData>(r#"{"resultType":"scalar","result":[1,"2"]}"#);
        assert!(scalar.is_err(), "{scalar:?}");
        assert_eq!(
            urlencode("sum(x{kind=\"ws\"}) by (pod)[1m]"),
            "sum%28x%7Bkind%3D%22ws%22%7D%29%20by%20%28pod%29%5B1m%5D"
        );
        assert_eq!(urlencode("a~b-c_d.e/é+&"), "a~b-c_d.e%2F%C3%A9%2B%26");
    }

    #[test]
    fn errors_and_targets_read_back() {
        let error: Answer<QueryData> = serde_json::from_str(
            r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
        )
        .unwrap();
        assert!(error.data.is_none());
        assert_eq!(error.error.as_deref(), Some("parse error at char 3"));
        let targets: Answer<Targets> = serde_json::from_str(
            r#"{"status":"success","data":{"activeTargets":[
              {"labels":{"pod":"pod-a","job":"wsdrain"},"health":"up","lastError":""},
              {"labels":{},"health":"down","lastError":"connection refused"}],
              "droppedTargets":[]}}"#,
        )
        .unwrap();
        let t = targets.data.unwrap().active;
        assert_eq!((t[0].pod(), t[0].health.as_str()), ("pod-a", "up"));
        assert_eq!(
            (t[1].pod(), t[1].last_error.as_str()),
            ("?", "connection refused")
        );
    }
}
