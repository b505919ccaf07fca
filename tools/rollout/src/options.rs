//! The command line: which endings to play, with which timings and how many clients.

use std::path::PathBuf;
use std::time::Duration;

use crate::ending::Ending;

pub const USAGE: &str = "usage: rollout [--endings LIST] [--clients N] [--old-clients N] \
[--prestop-delay SECS] [--drain-window SECS] [--handover-timeout SECS] [--close-timeout SECS] \
[--grace SECS] [--spot-grace SECS] [--eviction-grace SECS] [--detect SECS] \
[--handshake-timeout SECS] [--send-interval MS] [--alive-interval SECS] [--server PATH] \
[--keep-logs] [--prometheus] [--svg PATH] [--dashboard PATH]

Plays how a pod ends while N reconnecting clients talk to it through nginx (the load balancer),
pod B already ready beside it; the clients must end on B with no message lost and none shown
twice. Of the N clients, --old-clients (default: half, rounded down) act as today's clients
(they leave pod A on its close 1012 and re-send); the others are handover-aware (on the goaway
notice they open a new connection and close the old one themselves).

--endings, a comma-separated list (default polite; all = every one, the polite first):
  polite    a rolling update: A gets /prestop and leaves the upstream; SIGTERM when /prestop
            answers; SIGKILL at --grace (the run fails if it comes). Aware clients must see no
            gap and re-send nothing.
  spot      a Spot VM's preemption: /prestop and out of the upstream at 0 s; the kubelet's
            grace period is --spot-grace (15 s): SIGTERM when the hook returns (at H s), or at
            the grace if it has not; SIGKILL max(grace - floor(H), 2) s after the SIGTERM.
  eviction  the same with --eviction-grace (5 s; a hard eviction gives about 1 s).
  kill      SIGKILL of A in mid-traffic, no warning (an OOM kill, a crash); the load balancer
            drops A --detect seconds later (its health checks failing).
  freeze    SIGSTOP of A (a lost node, a partition: sockets open and silent); the load balancer
            drops A --detect seconds later; once every client is on B, SIGKILL.
With any ending but polite, a table of every ending played, side by side, comes last.

The pods' timings default to the server's (15 s preStop, 10 s drain, 5 s handover, 5 s close);
the grace period defaults to the budget rule's 15 + 10 + 5 + 5 + 4.5 = 39.5 s, rounded up to
40 s; --detect 10 s (a health check every 5 s, unhealthy after 2); --handshake-timeout 5 s (the
clients give up an upgrade not answered by then). --clients 1000; --send-interval 1000 ms (whole
milliseconds, at least 1: each client sends a message so often); --alive-interval 1 s, the pods'
ALIVE_INTERVAL, not the server's default of 5 s (the clients give up a connection silent for
twice it, so a frozen pod is left sooner).

--prometheus (polite only): a real Prometheus (Debian's /usr/bin/prometheus) scrapes both pods'
admin ports every second; after the run the harness checks the story its series tell (pod A's
phases, the WebSockets per pod and in all against the clients' sockets, close timeouts, the
message balance, the handover counters) and runs every query of the Grafana dashboard
(--dashboard, default deploy/monitoring/grafana-dashboard.json of the checkout this binary was
built in; one that cannot be read stops the run, exit 2), each of which must return data.
--svg PATH (implies --prometheus) draws the WebSockets per pod and the new ones per second from
its series.

When the run does not pass (or with --keep-logs), the pods', nginx's and Prometheus's logs are
kept, and the harness prints where.";

/// What the command line asks for.
#[derive(Debug)]
pub enum Request {
    /// Play the endings with these options (boxed: they are large, Help is empty).
    Run(Box<Options>),
    /// Print the usage (`--help`): asked for, so on stdout, exit 0.
    Help,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub endings: Vec<Ending>,
    pub clients: usize,
    pub prestop_delay: f64,
    pub drain_window: f64,
    pub handover_timeout: f64,
    pub close_timeout: f64,
    pub grace: f64,
    pub spot_grace: f64,
    pub eviction_grace: f64,
    /// How long the load balancer takes to drop a pod that died or froze.
    pub detect: f64,
    pub handshake_timeout: f64,
    /// None: half of the clients.
    pub old_clients: Option<usize>,
    pub send_interval: Duration,
    pub alive_interval: f64,
    pub server: PathBuf,
    pub keep_logs: bool,
    pub prometheus: bool,
    pub svg: Option<PathBuf>,
    pub dashboard: PathBuf,
    /// Hidden, to show the checks fail on a wrong story: when pod B joins, Prometheus labels
    /// pod A's series pod="pod-b" and pod B's pod="pod-a".
    pub swap_pod_labels: bool,
}

impl Options {
    /// The handover-unaware clients.
    pub fn old_clients(&self) -> usize {
        self.old_clients.unwrap_or(self.clients / 2)
    }
}

/// The longest time any option may give, as the server's own limit on its durations: past it a
/// deadline no longer fits in a `Duration` or an `Instant`.
const MAX_SECS: f64 = 10.0 * 24.0 * 3600.0;

/// What this process's command line asks for.
pub fn parse_options() -> Result<Request, String> {
    parse_args(std::env::args().skip(1))
}

/// What `args` (the command line without the program's name) asks for.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Request, String> {
    let server = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("wsdrain");
    let mut o = Options {
        endings: vec![Ending::Polite],
        clients: 1000,
        prestop_delay: 15.0,
        drain_window: 10.0,
        handover_timeout: 5.0,
        close_timeout: 5.0,
        grace: 40.0,
        spot_grace: 15.0,
        eviction_grace: 5.0,
        detect: 10.0,
        handshake_timeout: 5.0,
        old_clients: None,
        send_interval: Duration::from_millis(1000),
        alive_interval: 1.0,
        server,
        keep_logs: false,
        prometheus: false,
        svg: None,
        dashboard: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/monitoring/grafana-dashboard.json"
        )),
        swap_pod_labels: false,
    };
    let args: Vec<String> = args.into_iter().collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        // Flags without a value.
        let switch = match flag.as_str() {
            "--help" | "-h" => return Ok(Request::Help),
            "--keep-logs" => Some(&mut o.keep_logs),
            "--prometheus" => Some(&mut o.prometheus),
            "--swap-pod-labels" => Some(&mut o.swap_pod_labels),
            _ => None,
        };
        if let Some(on) = switch {
            *on = true;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| (0.0..=MAX_SECS).contains(v))
                .ok_or_else(|| {
                    format!("{flag}: not a number of seconds from 0 to {MAX_SECS}: {value}")
                })
        };
        match flag.as_str() {
            "--endings" => o.endings = Ending::parse_list(value)?,
            "--clients" => o.clients = value.parse().map_err(|_| format!("--clients: {value}"))?,
            "--prestop-delay" => o.prestop_delay = number()?,
            "--drain-window" => o.drain_window = number()?,
            "--handover-timeout" => o.handover_timeout = number()?,
            "--close-timeout" => o.close_timeout = number()?,
            "--old-clients" => {
                o.old_clients = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--old-clients: {value}"))?,
                )
            }
            "--grace" => o.grace = number()?,
            "--spot-grace" => o.spot_grace = number()?,
            "--eviction-grace" => o.eviction_grace = number()?,
            "--detect" => o.detect = number()?,
            "--handshake-timeout" => o.handshake_timeout = number()?,
            "--send-interval" => o.send_interval = send_interval(value)?,
            "--alive-interval" => o.alive_interval = number()?,
            "--server" => o.server = PathBuf::from(value),
            "--svg" => o.svg = Some(PathBuf::from(value)),
            "--dashboard" => o.dashboard = PathBuf::from(value),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if o.clients == 0 || o.clients > 15_000 {
        return Err("--clients must be 1..=15000 (nginx holds two sockets per client)".into());
    }
    if o.old_clients.is_some_and(|n| n > o.clients) {
        return Err("--old-clients cannot exceed --clients".into());
    }
    if o.handshake_timeout <= 0.0 {
        return Err("--handshake-timeout must be above 0".into());
    }
    o.prometheus |= o.svg.is_some() || o.swap_pod_labels;
    if o.prometheus && !o.endings.contains(&Ending::Polite) {
        return Err(
            "--prometheus, --svg and --swap-pod-labels watch the polite rollout: \
                    add polite to --endings"
                .into(),
        );
    }
    Ok(Request::Run(Box::new(o)))
}

/// `--send-interval`: whole milliseconds, at least 1. A zero interval would have every client
/// send as fast as its loop turns, and a fraction of a millisecond would be cut to zero.
fn send_interval(value: &str) -> Result<Duration, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|ms| (1..=(MAX_SECS as u64) * 1000).contains(ms))
        .map(Duration::from_millis)
        .ok_or_else(|| {
            format!(
                "--send-interval: not a whole number of milliseconds from 1 to {}: {value}",
                (MAX_SECS as u64) * 1000
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        match parse_args(args.iter().map(|a| a.to_string()))? {
            Request::Run(o) => Ok(*o),
            Request::Help => Err("help".into()),
        }
    }

    #[test]
    fn help_is_a_request_not_an_error() {
        for flag in ["--help", "-h"] {
            let asked = parse_args([flag.to_string()]);
            assert!(matches!(asked, Ok(Request::Help)), "{flag}: {asked:?}");
        }
    }

    #[test]
    fn a_send_interval_under_a_millisecond_is_refused() {
        for bad in ["0", "0.5", "1.5", "-1", "x", "864000001"] {
            let e = parse(&["--send-interval", bad]).unwrap_err();
            assert!(
                e.starts_with("--send-interval: not a whole number of milliseconds from 1 to"),
                "{bad}: {e}"
            );
        }
        let o = parse(&["--send-interval", "1"]).unwrap();
        assert_eq!(o.send_interval, Duration::from_millis(1));
        let o = parse(&[]).unwrap();
        assert_eq!(o.send_interval, Duration::from_secs(1));
    }

    #[test]
    fn a_time_past_ten_days_or_below_zero_is_refused() {
        for flag in ["--grace", "--detect", "--alive-interval", "--prestop-delay"] {
            for bad in ["-0.5", "1e20", "NaN", "inf", "864000.5"] {
                let e = parse(&[flag, bad]).unwrap_err();
                assert!(
                    e.starts_with(&format!("{flag}: not a number of seconds")),
                    "{e}"
                );
            }
            assert!(parse(&[flag, "0"]).is_ok(), "{flag} 0");
            assert!(parse(&[flag, "2.5"]).is_ok(), "{flag} 2.5");
        }
    }
}
