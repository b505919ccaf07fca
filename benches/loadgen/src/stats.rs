//! Measuring: a latency histogram and a process's CPU time from /proc.

use std::time::Duration;

/// Latencies in microseconds, in buckets of about 1 % width (log-linear), up to ~100 s.
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB_BUCKETS: u64 = 64;

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; (SUB_BUCKETS * 28) as usize],
            total: 0,
        }
    }

    fn index(us: u64) -> usize {
        if us < SUB_BUCKETS {
            return us as usize;
        }
        let magnitude = 63 - us.leading_zeros() as u64; // ≥ 6
        let shift = magnitude - 5;
        let sub = (us >> shift) - SUB_BUCKETS / 2; // 32..63 → 0..31 … within the power of two
        ((magnitude - 5) * SUB_BUCKETS / 2 + SUB_BUCKETS / 2 + sub) as usize
    }

    fn value(index: usize) -> u64 {
        let index = index as u64;
        if index < SUB_BUCKETS {
            return index;
        }
        let half = SUB_BUCKETS / 2;
        let magnitude = (index - half) / half + 5;
        let sub = (index - half) % half + half;
        let shift = magnitude - 5;
        (sub << shift) + (1 << shift) / 2
    }

    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(100_000_000) as u64;
        let i = Self::index(us).min(self.counts.len() - 1);
        self.counts[i] += 1;
        self.total += 1;
    }

    /// The latency at quantile `q` (0..=1), microseconds.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i);
            }
        }
        Self::value(self.counts.len() - 1)
    }

    /// (latency µs, fraction ≤) points for a CDF plot.
    pub fn cdf(&self) -> Vec<(u64, f64)> {
        let mut seen = 0;
        let mut points = Vec::new();
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                seen += c;
                points.push((Self::value(i), seen as f64 / self.total as f64));
            }
        }
        points
    }
}

/// User + system CPU seconds of a process so far: the scheduler's count of each of its threads
/// (`/proc/PID/task/*/schedstat`, in ns), or where that is missing the process's utime + stime
/// (`/proc/PID/stat`, in clock ticks of 10 ms: at a server busy 65 ms a second, as in the
/// fan-out, a tick is 1.5 % of a 10 s run).
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    if let Some(ns) = schedstat_ns(pid) {
        return Ok(ns as f64 / 1e9);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("server gone? {e}"))?;
    let rest = stat.rfind(')').map(|i| &stat[i + 2..]).ok_or("bad stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or("no utime")?
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or("no stime")?;
    Ok(ticks as f64 / clock_ticks())
}

/// The time on a core of every thread of `pid` so far, in ns; `None` without schedstats.
fn schedstat_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

fn clock_ticks() -> f64 {
    getconf("CLK_TCK").map_or(100.0, |t| t as f64)
}

/// The memory page size in bytes (the unit of /proc/net/sockstat's `mem`).
pub fn page_size() -> Result<u64, String> {
    getconf("PAGESIZE").ok_or_else(|| "getconf PAGESIZE gave no number".into())
}

/// A system setting as `getconf NAME` prints it.
fn getconf(name: &str) -> Option<u64> {
    std::process::Command::new("getconf")
        .arg(name)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_some_cpu() {
        let spent = cpu_seconds(std::process::id()).unwrap();
        assert!(spent > 0.0, "{spent}");
        assert!(schedstat_ns(std::process::id()).is_some_and(|ns| ns > 0));
    }

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut h = Histogram::new();
        for us in 1..=100_000u64 {
            h.record(Duration::from_micros(us));
        }
        for (q, exact) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - exact).abs() / exact < 0.02, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.quantile(0.0), 1);
    }
}
