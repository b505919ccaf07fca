//! A real Prometheus beside the rollout (`--prometheus`): Debian's `prometheus` binary with its
//! own configuration and data directory in the harness's temp dir, listening on loopback,
//! scraping every pod's admin port each second with a `pod` label, as a `PodMonitoring` would
//! on GKE. The harness reads back what it stored through the HTTP API ([`api`]).
//!
//! Prometheus's discovery and scrape managers apply new targets on a 5 s tick, so a target
//! added by a reload is scraped up to ~5 s (sometimes ~10 s) later: the harness waits for it
//! ([`Prometheus::up`]) rather than guessing.

mod api;

pub use api::Series;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::server::signal_pid;

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

/// The Prometheus binary: `/usr/bin/prometheus` (Debian's package), else `prometheus` on the
/// `PATH`.
pub fn find_binary() -> Option<PathBuf> {
    crate::cluster::find_program(&["/usr/bin/prometheus"], "prometheus")
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
            let _ = signal_pid(pid, "KILL");
        }
        let _ = self.keeper.kill();
        let _ = self.keeper.wait();
    }
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
}
