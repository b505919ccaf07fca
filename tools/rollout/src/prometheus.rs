//! A real Prometheus beside the rollout (`--prometheus`): Debian's `prometheus` binary with its
//! own configuration and data directory in the harness's temp dir, listening on loopback,
//! scraping every pod's admin port each second with a `pod` label, as a `PodMonitoring` would
//! on GKE. The harness reads back what it stored through the HTTP API.
//!
//! Prometheus's discovery and scrape managers apply new targets on a 5 s tick, so a target
//! added by a reload is scraped up to ~5 s (sometimes ~10 s) later: the harness waits for it
//! ([`Prometheus::up`]) rather than guessing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// How often every pod is scraped (and the step of the range queries).
pub const SCRAPE_INTERVAL_SECS: u64 = 1;

/// A pod to scrape: its name (the `pod` label) and its admin address.
#[derive(Debug, Clone)]
pub struct Target {
    pub pod: String,
    pub addr: SocketAddr,
}

/// The configuration: one job, a `pod` label per target, and the `namespace` and `container`
/// labels Google Cloud Managed Service for Prometheus adds to a `PodMonitoring`'s series (so a
/// dashboard that selects on them finds these). With `swap_pods` and two targets, each target
/// carries the other's name: the deliberately wrong story of `--swap-pod-labels`.
pub fn config(targets: &[Target], swap_pods: bool) -> String {
    let mut out = format!(
        "# Written by tools/rollout: every pod's admin port, each second.\n\
         global:\n  scrape_interval: {i}s\n  scrape_timeout: {i}s\n  evaluation_interval: {i}s\n\
         scrape_configs:\n  - job_name: wsdrain\n    static_configs:\n",
        i = SCRAPE_INTERVAL_SECS
    );
    for (i, t) in targets.iter().enumerate() {
        let pod = if swap_pods && targets.len() == 2 {
            &targets[1 - i].pod
        } else {
            &t.pod
        };
        out.push_str(&format!(
            "      - targets: [\"{}\"]\n        labels: {{pod: \"{pod}\", namespace: \"wsdrain\", \
             container: \"wsdrain\"}}\n",
            t.addr
        ));
    }
    out
}

/// One series of a range query: its labels and its points (unix seconds, value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

/// The Prometheus binary: `/usr/bin/prometheus` (Debian's package), else `prometheus` on the
/// `PATH`.
pub fn find_binary() -> Option<PathBuf> {
    let packaged = Path::new("/usr/bin/prometheus");
    if packaged.exists() {
        return Some(packaged.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("prometheus"))
            .find(|p| p.is_file())
    })
}

/// Runs Prometheus under a small shell that kills it when its standard input closes: the
/// harness holds the other end, so Prometheus goes with the harness on every exit path (a
/// return, a panic, or the harness killed by a signal: the kernel closes the pipe then too).
const KEEPER: &str = r#""$@" </dev/null >>"$PROMETHEUS_LOG" 2>&1 &
p=$!
echo "$p"
read -r _ || true
kill -TERM "$p" 2>/dev/null
wait "$p"
"#;

/// A running Prometheus; killed when dropped.
pub struct Prometheus {
    keeper: Child,
    stdin: Option<ChildStdin>,
    /// Prometheus's own process id (the keeper's child).
    pid: Option<u32>,
    pub addr: SocketAddr,
    config_path: PathBuf,
    swap_pods: bool,
    pub log: PathBuf,
}

impl Prometheus {
    /// Starts it with `targets`, its files under `dir`, and waits until it is ready.
    pub fn start(
        binary: &Path,
        dir: &Path,
        targets: &[Target],
        swap_pods: bool,
    ) -> Result<Prometheus, String> {
        std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config(targets, swap_pods)).map_err(|e| e.to_string())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], crate::cluster::free_port()?));
        let log = dir.join("prometheus.log");
        let mut keeper = Command::new("sh")
            .arg("-c")
            .arg(KEEPER)
            .arg("sh")
            .arg(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-lifecycle")
            .arg("--storage.tsdb.retention.time=1d")
            .env("PROMETHEUS_LOG", &log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {}: {e}", binary.display()))?;
        let stdin = keeper.stdin.take();
        let mut pid_line = String::new();
        if let Some(out) = keeper.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut pid_line);
        }
        let mut p = Prometheus {
            keeper,
            stdin,
            pid: pid_line.trim().parse().ok(),
            addr,
            config_path,
            swap_pods,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if matches!(
                http(addr, "GET", "/-/ready", Duration::from_secs(2)),
                Ok((200, _))
            ) {
                return Ok(p);
            }
            if Instant::now() > deadline || matches!(p.keeper.try_wait(), Ok(Some(_))) {
                return Err(format!(
                    "Prometheus did not become ready on {addr}; its log: {}",
                    tail(&p.log)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Scrapes `targets` from now on (rewrites the configuration and reloads it).
    pub fn set_targets(&mut self, targets: &[Target]) -> Result<(), String> {
        std::fs::write(&self.config_path, config(targets, self.swap_pods))
            .map_err(|e| e.to_string())?;
        match http(self.addr, "POST", "/-/reload", Duration::from_secs(10))? {
            (200, _) => Ok(()),
            (status, body) => Err(format!("Prometheus reload: {status} {body}")),
        }
    }

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

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Closing the keeper's input makes it stop Prometheus (SIGTERM) and wait for it.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.keeper.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(pid) = self.pid {
            let _ = Command::new("kill")
                .args(["-s", "KILL", &pid.to_string()])
                .status();
        }
        let _ = self.keeper.kill();
        let _ = self.keeper.wait();
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

/// One HTTP/1.0 exchange on a fresh connection (the test kit's), bounded by `timeout`; the
/// status and the body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let answer = testkit::http::request(addr, method, path, timeout)?;
    Ok((answer.status, answer.text()))
}

/// The last lines of a log file, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(pod: &str, port: u16) -> Target {
        Target {
            pod: pod.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    #[test]
    fn the_configuration_labels_each_pod_and_can_swap_them() {
        let both = [target("pod-a", 1001), target("pod-b", 1002)];
        let c = config(&both, false);
        assert!(c.contains("scrape_interval: 1s"), "{c}");
        assert!(
            c.contains(
                "- targets: [\"127.0.0.1:1001\"]\n        labels: {pod: \"pod-a\", namespace: \
                 \"wsdrain\", container: \"wsdrain\"}"
            ),
            "{c}"
        );
        assert!(c.contains("[\"127.0.0.1:1002\"]\n        labels: {pod: \"pod-b\""));
        let swapped = config(&both, true);
        assert!(swapped.contains("[\"127.0.0.1:1001\"]\n        labels: {pod: \"pod-b\""));
        assert!(swapped.contains("[\"127.0.0.1:1002\"]\n        labels: {pod: \"pod-a\""));
        // Alone, pod A keeps its name: the story goes wrong only when pod B joins.
        let alone = config(&both[..1], true);
        assert!(alone.contains("[\"127.0.0.1:1001\"]\n        labels: {pod: \"pod-a\""));
    }

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
