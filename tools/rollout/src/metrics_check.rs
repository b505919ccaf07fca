//! After a polite rollout watched by Prometheus: what the fleet saw, in Prometheus's unix time,
//! for the story's checks ([`story`](crate::story::check)), and the dashboard's queries run
//! over it.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::fleet::{Fleet, Kind};
use crate::options::Options;
use crate::prometheus::{Prometheus, Target};
use crate::{dashboard, prometheus, story};

/// The Grafana dashboard whose queries are run after the rollout, as read before it.
pub struct DashboardFile {
    path: PathBuf,
    text: String,
}

impl DashboardFile {
    /// Reads it before anything starts: a file that cannot be read (a typo in `--dashboard`, a
    /// binary built in a checkout that has since moved) is an error, not a check quietly skipped
    /// in a run that then passes.
    pub fn read(path: &Path) -> Result<DashboardFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "the dashboard {}: {e} (its queries must run; give its path with --dashboard)",
                path.display()
            )
        })?;
        Ok(DashboardFile {
            path: std::fs::canonicalize(path).unwrap_or(path.to_path_buf()),
            text,
        })
    }
}

/// Runs the dashboard's queries over [start, end]; prints what it did, returns the failures.
pub fn run_dashboard(
    p: &Prometheus,
    dashboard: &DashboardFile,
    start: f64,
    end: f64,
) -> Result<Vec<String>, String> {
    let path = &dashboard.path;
    let doc: dashboard::Dashboard = match serde_json::from_str(&dashboard.text) {
        Ok(doc) => doc,
        Err(e) => return Ok(vec![format!("the dashboard {}: JSON: {e}", path.display())]),
    };
    let step = prometheus::SCRAPE_INTERVAL_SECS;
    let builtins = dashboard::Builtins {
        interval_secs: step,
        // Grafana's max($__interval + scrape interval, 4 × scrape interval).
        rate_interval_secs: (2 * step).max(4 * step),
        range_secs: (end - start).ceil() as u64,
    };
    let present = p.metric_names()?;
    let outcome = dashboard::check(&doc, &builtins, &present, |expr| {
        p.query_range(expr, start, end, step)
            .map(|series| series.iter().map(|s| s.points.len()).sum())
    });
    println!(
        "dashboard: {} queries of {} run over the rollout, {} returned data",
        outcome.run,
        path.display(),
        outcome.with_data
    );
    for note in &outcome.notes {
        println!("dashboard: {note}");
    }
    Ok(outcome
        .failures
        .into_iter()
        .map(|f| format!("Prometheus: {f}"))
        .collect())
}

/// The unix time of an `Instant`, from one reading of both clocks.
pub struct Clock {
    instant: Instant,
    unix: f64,
}

impl Clock {
    pub fn now() -> Clock {
        let unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Clock {
            instant: Instant::now(),
            unix,
        }
    }

    pub fn unix(&self, at: Instant) -> f64 {
        if at >= self.instant {
            self.unix + (at - self.instant).as_secs_f64()
        } else {
            self.unix - (self.instant - at).as_secs_f64()
        }
    }
}

pub fn pod_target(pod: &str, addr: std::net::SocketAddr) -> Target {
    Target {
        pod: pod.to_string(),
        addr,
    }
}

/// What the fleet saw, in unix time, for the checks of the metrics. `times`: every client
/// connected and both pods scraped, pod A terminating, SIGTERM, the measurement's end, now.
pub fn story_facts(
    fleet: &Fleet,
    clock: &Clock,
    times: [Instant; 5],
    o: &Options,
    notices: bool,
) -> story::Facts {
    let [watched, terminating, sigterm, end, until] = times.map(|t| clock.unix(t));
    let from_a = |events: &mut dyn Iterator<Item = &(Instant, String)>| {
        let mut v: Vec<f64> = events
            .filter(|(_, i)| i == "pod-a")
            .map(|(t, _)| clock.unix(*t))
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let stats = || Kind::ALL.into_iter().map(|k| fleet.stats(k));
    let log = &fleet.sockets;
    story::Facts {
        clients: o.clients,
        watched,
        terminating,
        sigterm,
        end,
        until,
        drain_budget: o.drain_window + o.handover_timeout + o.close_timeout,
        skew: story::SKEW,
        held: log
            .changes
            .iter()
            .map(|(t, h)| (clock.unix(*t), *h))
            .collect(),
        opened: log.opened.iter().map(|t| clock.unix(*t)).collect(),
        by_instance: log
            .by_instance
            .iter()
            .map(|(t, i, open)| (clock.unix(*t), i.clone(), *open))
            .collect(),
        notices_a: from_a(&mut stats().flat_map(|s| s.notices.iter())),
        left_a: from_a(&mut stats().flat_map(|s| s.left.iter())),
        // With notices, every 1012 from pod A comes after one (the server's "forced").
        forced_a: if notices {
            from_a(&mut stats().flat_map(|s| s.restarts.iter()))
        } else {
            Vec::new()
        },
    }
}
