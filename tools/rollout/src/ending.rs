//! The ways a pod ends, and what one ending did to each kind of client: the figures the
//! endings' table shows, measured the same way for every ending.
//!
//! **Time without a working connection**, per client, from the ending's start to the end of the
//! measurement: the time covered by none of its connections while Open (from the 101 until a
//! close frame, its end, or the client giving it up). A connection to pod A stops working
//! when pod A stops (kill, freeze) even while its client still holds it: a frozen pod's socket
//! is open and useless until the client's silence watch gives it up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::fleet::{ClientReport, Fleet, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A rolling update: preStop, SIGTERM when it returns, the whole grace period.
    Polite,
    /// A Spot VM's preemption: the pod's grace period cut to `--spot-grace`.
    Spot,
    /// An eviction with a short grace period.
    Eviction,
    /// SIGKILL with no warning (OOM kill, crash).
    Kill,
    /// SIGSTOP (a lost node, a partition), then SIGKILL once everyone moved.
    Freeze,
}

impl Ending {
    pub const ALL: [Ending; 5] = [
        Ending::Polite,
        Ending::Spot,
        Ending::Eviction,
        Ending::Kill,
        Ending::Freeze,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Ending::Polite => "polite",
            Ending::Spot => "spot",
            Ending::Eviction => "eviction",
            Ending::Kill => "kill",
            Ending::Freeze => "freeze",
        }
    }

    /// `polite,spot,…` or `all`, in the order given, each once.
    pub fn parse_list(list: &str) -> Result<Vec<Ending>, String> {
        let mut endings = Vec::new();
        for name in list.split(',').map(str::trim) {
            let more: Vec<Ending> = if name == "all" {
                Ending::ALL.to_vec()
            } else {
                let e = Ending::ALL.into_iter().find(|e| e.name() == name);
                vec![e.ok_or_else(|| {
                    format!(
                        "--endings: no ending {name:?} (polite, spot, eviction, kill, freeze, all)"
                    )
                })?]
            };
            for e in more {
                if !endings.contains(&e) {
                    endings.push(e);
                }
            }
        }
        Ok(endings)
    }
}

/// What one kind of client saw through one ending.
#[derive(Debug, Clone)]
pub struct KindFigures {
    pub kind: Kind,
    pub clients: usize,
    pub sent: u64,
    pub lost: u64,
    /// Replies that arrived for a message already answered: the client would show them twice.
    pub shown_twice: u64,
    pub resent: u64,
    pub clients_resent: usize,
    /// Time without a working connection: p50, p99, max.
    pub dead: [Duration; 3],
    /// From the ending's start until the last client of this kind had a working connection
    /// again (zero if none lost it).
    pub served_again: Duration,
    pub peak_per_second: usize,
    /// Per second from the ending's start: connections opened (101).
    pub per_second: BTreeMap<u64, usize>,
    pub notices_a: usize,
    pub closes_1012_a: usize,
    /// Connections to pod A that ended without a close frame (silent ones given up included).
    pub no_close_frame_a: u64,
    pub silent_a: u64,
    pub handshake_timeouts: u64,
    pub connect_failures: u64,
}

/// The value at fraction `p` of `sorted` (nearest rank), zero for none: the one percentile of
/// every figure the harness prints.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The p50, p99 and maximum of `times`, as the tables show a spread of times.
pub fn spread(mut times: Vec<Duration>) -> [Duration; 3] {
    times.sort();
    [
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or_default(),
    ]
}

/// How many of `times` fall in each whole second after `from` (those before it are left out).
pub fn per_second(times: &[Instant], from: Instant) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for t in times.iter().filter(|t| **t >= from) {
        *counts.entry(t.duration_since(from).as_secs()).or_default() += 1;
    }
    counts
}

/// One client's time without a working connection in [start, end], and when its last outage
/// ended (`None`: it had none). `a_stops`: pod A stopped working then (its connections count
/// as working only until then).
pub fn outage(
    r: &ClientReport,
    start: Instant,
    end: Instant,
    a_stops: Option<Instant>,
) -> (Duration, Option<Instant>) {
    let mut spans: Vec<(Instant, Instant)> = r
        .spans
        .iter()
        .zip(&r.served)
        .filter_map(|(&(from, to), instance)| {
            let mut to = to.unwrap_or(end).min(end);
            if instance == "pod-a"
                && let Some(stop) = a_stops
            {
                to = to.min(stop);
            }
            let from = from.max(start);
            (from < to).then_some((from, to))
        })
        .collect();
    spans.sort();
    let (mut t, mut dead, mut last) = (start, Duration::ZERO, None);
    for (from, to) in spans {
        if from > t {
            dead += from - t;
            last = Some(from);
        }
        t = t.max(to);
    }
    if t < end {
        dead += end - t;
        last = Some(end);
    }
    (dead, last)
}

impl KindFigures {
    /// The figures of `kind`, from `start` (the ending began) to `end` (the measurement's end).
    pub fn of(
        fleet: &Fleet,
        reports: &[ClientReport],
        kind: Kind,
        start: Instant,
        end: Instant,
        a_stops: Option<Instant>,
    ) -> KindFigures {
        let st = fleet.stats(kind);
        let mine: Vec<&ClientReport> = reports.iter().filter(|r| r.kind == kind).collect();
        let outages: Vec<(Duration, Option<Instant>)> = mine
            .iter()
            .map(|r| outage(r, start, end, a_stops))
            .collect();
        let served_again = outages
            .iter()
            .filter_map(|o| o.1)
            .max()
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(start));
        let per_second = per_second(&st.reopened_at, start);
        let from_a = |events: &[(Instant, String)]| {
            events
                .iter()
                .filter(|(t, i)| *t >= start && i == "pod-a")
                .count()
        };
        KindFigures {
            kind,
            clients: mine.len(),
            sent: st.sent,
            lost: mine.iter().map(|r| r.lost).sum(),
            shown_twice: st.duplicates,
            resent: mine.iter().map(|r| r.resent).sum(),
            clients_resent: mine.iter().filter(|r| r.resent > 0).count(),
            dead: spread(outages.iter().map(|o| o.0).collect()),
            served_again,
            peak_per_second: per_second.values().max().copied().unwrap_or(0),
            per_second,
            notices_a: from_a(&st.notices),
            closes_1012_a: from_a(&st.restarts),
            no_close_frame_a: st.abnormal_by_instance.get("pod-a").copied().unwrap_or(0),
            silent_a: st.silent_by_instance.get("pod-a").copied().unwrap_or(0),
            handshake_timeouts: st.handshake_timeouts,
            connect_failures: st.connect_failures,
        }
    }
}

/// How pod A ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PodEnd {
    /// It exited with this code, this long after the ending's start.
    Exit(Option<i32>, Duration),
    /// SIGKILL (by the kubelet at the grace's end, or as the ending itself), at this time.
    Killed(Duration),
}

impl std::fmt::Display for PodEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PodEnd::Exit(Some(code), at) => write!(f, "exit {code} at {:.2} s", at.as_secs_f64()),
            PodEnd::Exit(None, at) => write!(f, "killed by a signal at {:.2} s", at.as_secs_f64()),
            PodEnd::Killed(at) => write!(f, "SIGKILL at {:.2} s", at.as_secs_f64()),
        }
    }
}

/// What one ending did: for the endings' table.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub ending: Ending,
    pub clients: usize,
    pub kinds: Vec<KindFigures>,
    /// What the kubelet and the load balancer did, in seconds from the ending's start.
    pub timeline: String,
    pub a_end: PodEnd,
    /// Pod A's `draining` and `drain_end` fields that tell how its drain went.
    pub drain: String,
    /// The model's bound on "every client served again" (kill and freeze), and how it is made.
    pub bound: Option<(Duration, String)>,
    /// The clients' loop's slowest turn, and when (s from the ending's start).
    pub slowest_turn: String,
}

/// The fleet's slowest turn, told from `start`.
pub fn slowest_turn(fleet: &Fleet, start: Instant) -> String {
    let (took, at) = fleet.slowest_turn;
    let when = at.map_or(String::new(), |t| {
        if t >= start {
            format!(" at {:.2} s", (t - start).as_secs_f64())
        } else {
            format!(" {:.2} s before the start", (start - t).as_secs_f64())
        }
    });
    format!("{} ms{when}", took.as_millis())
}

impl Outcome {
    /// Connections opened per second over both kinds, at the busiest second.
    pub fn peak_all(&self) -> usize {
        let mut all: BTreeMap<u64, usize> = BTreeMap::new();
        for k in &self.kinds {
            for (s, n) in &k.per_second {
                *all.entry(*s).or_default() += n;
            }
        }
        all.values().max().copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(spans: &[(u64, Option<u64>, &str)], t0: Instant) -> ClientReport {
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        ClientReport {
            kind: Kind::Old,
            gap: Duration::ZERO,
            resent: 0,
            lost: 0,
            served: spans.iter().map(|s| s.2.to_string()).collect(),
            spans: spans.iter().map(|s| (at(s.0), s.1.map(at))).collect(),
            restarts_from: Vec::new(),
        }
    }

    #[test]
    fn an_outage_is_the_time_no_connection_works() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let (start, end) = (t0 + ms(1000), t0 + ms(5000));
        // A 1012 at 2 s, B open at 2.5 s: half a second.
        let r = report(&[(0, Some(2000), "pod-a"), (2500, None, "pod-b")], t0);
        assert_eq!(outage(&r, start, end, None), (ms(500), Some(t0 + ms(2500))));
        // A handover: B open before A closed, no outage.
        let r = report(&[(0, Some(2000), "pod-a"), (1900, None, "pod-b")], t0);
        assert_eq!(outage(&r, start, end, None), (ms(0), None));
        // Frozen at 1 s, given up at 3 s, B at 3.2 s: the outage counts from the freeze.
        let r = report(&[(0, Some(3000), "pod-a"), (3200, None, "pod-b")], t0);
        assert_eq!(
            outage(&r, start, end, Some(start)),
            (ms(2200), Some(t0 + ms(3200)))
        );
        // Still without a connection at the end.
        let r = report(&[(0, Some(2000), "pod-a")], t0);
        assert_eq!(outage(&r, start, end, None), (ms(3000), Some(end)));
    }

    #[test]
    fn endings_are_read_from_a_list() {
        assert_eq!(Ending::parse_list("polite").unwrap(), [Ending::Polite]);
        assert_eq!(
            Ending::parse_list("kill, spot,kill").unwrap(),
            [Ending::Kill, Ending::Spot]
        );
        assert_eq!(Ending::parse_list("all").unwrap(), Ending::ALL);
        assert!(Ending::parse_list("crash").is_err());
    }

    #[test]
    fn a_spread_and_counts_per_second() {
        let ms = |n: u64| Duration::from_millis(n);
        assert_eq!(spread(vec![ms(3), ms(1), ms(2)]), [ms(2), ms(3), ms(3)]);
        assert_eq!(spread(Vec::new()), [Duration::ZERO; 3]);
        let from = Instant::now();
        let times = [from + ms(100), from + ms(999), from + ms(2500)];
        assert_eq!(
            per_second(&times, from + ms(50)),
            BTreeMap::from([(0, 2), (2, 1)])
        );
        assert_eq!(
            per_second(&times, from + ms(1000)),
            BTreeMap::from([(1, 1)])
        );
    }

    #[test]
    fn percentiles_are_nearest_ranks() {
        let ms = |n: u64| Duration::from_millis(n);
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 0.5), ms(51));
        assert_eq!(percentile(&sorted, 0.99), ms(99));
        assert_eq!(percentile(&sorted, 1.0), ms(100));
        assert_eq!(percentile(&[ms(7)], 0.99), ms(7));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
