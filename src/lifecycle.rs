//! The server's phases while Kubernetes replaces its pod: `Serving → PreStop → Draining → exit`.
//!
//! `GET /prestop` (the kubelet's preStop hook) moves Serving to PreStop: readiness turns 503 so
//! the load balancer stops sending new connections, but everything is still served, because
//! endpoint removal races with the hook and new connections may still arrive. The hook's answer
//! is a timer: every call answers at the same deadline, `PRESTOP_DELAY` after the first. Only then
//! does the kubelet send SIGTERM, which starts Draining; SIGTERM without a preStop (`kubectl
//! delete`, Ctrl-C) goes straight there. A second signal means "stop now".

use std::time::Duration;

use crate::timers::{Millis, after};

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Ready and serving.
    Serving,
    /// preStop called: not ready, still serving everything.
    PreStop,
    /// Signalled: public listener closed, open connections being wound down.
    Draining,
}

impl Phase {
    /// Lower-case name, as in logs, metrics and alive messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Serving => "serving",
            Phase::PreStop => "prestop",
            Phase::Draining => "draining",
        }
    }

    /// Every phase, in order.
    pub const ALL: [Phase; 3] = [Phase::Serving, Phase::PreStop, Phase::Draining];
}

/// What a signal asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalAction {
    /// First signal: begin the drain.
    BeginDrain,
    /// Signal during the drain: close everything and exit now.
    ExitNow,
}

/// Phase and lifecycle deadlines.
#[derive(Debug)]
pub struct Lifecycle {
    phase: Phase,
    prestop_answer_at: Option<Millis>,
    drain_started_at: Option<Millis>,
    /// When each drain close frame went out, in milliseconds after the drain began.
    drain_closes: Vec<Millis>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// Serving, nothing scheduled.
    pub fn new() -> Self {
        Lifecycle {
            phase: Phase::Serving,
            prestop_answer_at: None,
            drain_started_at: None,
            drain_closes: Vec::new(),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether `/readyz` says ready.
    pub fn ready(&self) -> bool {
        self.phase == Phase::Serving
    }

    /// A `GET /prestop` arrived: returns when it (and every other one) is answered, always a
    /// finite time. The first call starts the delay and the PreStop phase; once draining, it is
    /// answered at once.
    pub fn request_prestop(&mut self, now: Millis, delay: Duration) -> Millis {
        if self.phase == Phase::Draining {
            self.prestop_answer_at.get_or_insert(now);
            return now;
        }
        *self.prestop_answer_at.get_or_insert_with(|| {
            self.phase = Phase::PreStop;
            log::info!(
                "prestop: readiness now 503, still serving; answering in {:.1}s",
                delay.as_secs_f64()
            );
            after(now, delay)
        })
    }

    /// When pending `/prestop` calls are answered, if any were made.
    pub fn prestop_answer_at(&self) -> Option<Millis> {
        self.prestop_answer_at
    }

    /// A termination signal arrived.
    pub fn on_signal(&mut self, now: Millis) -> SignalAction {
        if self.phase == Phase::Draining {
            return SignalAction::ExitNow;
        }
        self.phase = Phase::Draining;
        self.drain_started_at = Some(now);
        // The kubelet only signals after preStop returned; answer any hook still waiting.
        if let Some(at) = self.prestop_answer_at.as_mut() {
            *at = (*at).min(now);
        }
        SignalAction::BeginDrain
    }

    /// A WebSocket got its drain close frame at `now`.
    pub fn record_drain_close(&mut self, now: Millis) {
        let start = self.drain_started_at.unwrap_or(now);
        self.drain_closes.push(now.saturating_sub(start));
    }

    /// When the drain's close frames went out, in milliseconds after the drain began, in order.
    pub fn drain_closes(&self) -> &[Millis] {
        &self.drain_closes
    }

    /// When the drain began, if it has.
    pub fn drain_started_at(&self) -> Option<Millis> {
        self.drain_started_at
    }
}

/// How the drain's log line of its plan starts; the rollout harness finds it in pod A's log.
pub const DRAIN_SCHEDULE_LOG: &str = "drain schedule: ";

/// The drain's planned close times, summarised for its log line: how evenly the closes are
/// spread over `DRAIN_WINDOW` is what spares the new pods a reconnect storm, so it is shown.
/// The line parses back ([`std::str::FromStr`]), so a harness can check the plan from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainSchedule {
    /// `DRAIN_WINDOW` in milliseconds.
    pub window_ms: u64,
    /// Closes planned in each quarter of the window.
    pub per_quarter: [usize; 4],
    /// The earliest planned close, in milliseconds after the drain began.
    pub first_ms: Option<u64>,
    /// The latest planned close.
    pub last_ms: Option<u64>,
}

impl DrainSchedule {
    /// An empty schedule over a window of `window_ms`.
    pub fn new(window_ms: u64) -> Self {
        DrainSchedule {
            window_ms,
            per_quarter: [0; 4],
            first_ms: None,
            last_ms: None,
        }
    }

    /// A close planned `offset_ms` after the drain began.
    pub fn add(&mut self, offset_ms: u64) {
        let quarter = (offset_ms * 4 / self.window_ms.max(1)).min(3) as usize;
        self.per_quarter[quarter] += 1;
        self.first_ms = Some(self.first_ms.map_or(offset_ms, |f| f.min(offset_ms)));
        self.last_ms = Some(self.last_ms.map_or(offset_ms, |l| l.max(offset_ms)));
    }

    /// Closes planned in all.
    pub fn closes(&self) -> usize {
        self.per_quarter.iter().sum()
    }
}

impl std::fmt::Display for DrainSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d] = self.per_quarter;
        write!(
            f,
            "{DRAIN_SCHEDULE_LOG}{} closes over DRAIN_WINDOW {} ms, per quarter [{a}, {b}, {c}, {d}]",
            self.closes(),
            self.window_ms
        )?;
        if let (Some(first), Some(last)) = (self.first_ms, self.last_ms) {
            write!(f, ", first +{first} ms, last +{last} ms")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for DrainSchedule {
    type Err = String;

    /// Reads the log line back; whatever precedes [`DRAIN_SCHEDULE_LOG`] (the logger's time
    /// and level) is skipped.
    fn from_str(line: &str) -> Result<Self, String> {
        let bad = |what: &str| format!("cannot parse the drain schedule ({what}): {line:?}");
        let number = |s: &str, what: &str| s.trim().parse::<u64>().map_err(|_| bad(what));
        let (_, rest) = line
            .split_once(DRAIN_SCHEDULE_LOG)
            .ok_or_else(|| bad("no key"))?;
        let (closes, rest) = rest
            .split_once(" closes over DRAIN_WINDOW ")
            .ok_or_else(|| bad("closes"))?;
        let (window, rest) = rest
            .split_once(" ms, per quarter [")
            .ok_or_else(|| bad("window"))?;
        let (quarters, rest) = rest.split_once(']').ok_or_else(|| bad("quarters"))?;
        let quarters = quarters
            .split(',')
            .map(|q| q.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("quarters"))?;
        let mut schedule = DrainSchedule::new(number(window, "window")?);
        schedule.per_quarter = quarters.try_into().map_err(|_| bad("not 4 quarters"))?;
        if let Some(rest) = rest.trim_end().strip_prefix(", first +") {
            let (first, last) = rest
                .strip_suffix(" ms")
                .and_then(|r| r.split_once(" ms, last +"))
                .ok_or_else(|| bad("first/last"))?;
            schedule.first_ms = Some(number(first, "first")?);
            schedule.last_ms = Some(number(last, "last")?);
        } else if !rest.trim().is_empty() {
            return Err(bad("after the quarters"));
        }
        if schedule.closes() as u64 != number(closes, "closes")? {
            return Err(bad("the quarters do not add up to the closes"));
        }
        Ok(schedule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prestop_is_idempotent_and_shares_one_deadline() {
        let mut l = Lifecycle::new();
        assert!(l.ready());
        let first = l.request_prestop(1_000, Duration::from_secs(15));
        assert_eq!(first, 16_000);
        assert_eq!(l.phase(), Phase::PreStop);
        assert!(!l.ready());
        assert_eq!(l.request_prestop(5_000, Duration::from_secs(15)), 16_000);
    }

    #[test]
    fn signal_drains_then_exits_and_answers_prestop() {
        let mut l = Lifecycle::new();
        l.request_prestop(0, Duration::from_secs(15));
        assert_eq!(l.on_signal(3_000), SignalAction::BeginDrain);
        assert_eq!(l.phase(), Phase::Draining);
        assert_eq!(l.prestop_answer_at(), Some(3_000));
        assert_eq!(l.request_prestop(4_000, Duration::from_secs(15)), 4_000);
        assert_eq!(l.on_signal(5_000), SignalAction::ExitNow);
        assert_eq!(l.drain_started_at(), Some(3_000));
    }

    #[test]
    fn prestop_first_called_while_draining_is_answered_at_once() {
        let mut l = Lifecycle::new();
        assert_eq!(l.on_signal(3_000), SignalAction::BeginDrain);
        assert_eq!(l.prestop_answer_at(), None);
        assert_eq!(l.request_prestop(4_000, Duration::from_secs(15)), 4_000);
        // The waiting connection's deadline comes from here: it must be set, and not later.
        assert_eq!(l.prestop_answer_at(), Some(4_000));
        assert_eq!(l.request_prestop(6_000, Duration::from_secs(15)), 6_000);
        assert_eq!(l.prestop_answer_at(), Some(4_000));
        assert_eq!(l.phase(), Phase::Draining);
    }

    #[test]
    fn drain_schedule_counts_closes_per_quarter_of_the_window() {
        let mut s = DrainSchedule::new(3_000);
        assert_eq!(
            s.to_string(),
            "drain schedule: 0 closes over DRAIN_WINDOW 3000 ms, per quarter [0, 0, 0, 0]"
        );
        for offset in [2_990, 12, 749, 750, 1_600, 2_999] {
            s.add(offset);
        }
        assert_eq!(
            s.to_string(),
            "drain schedule: 6 closes over DRAIN_WINDOW 3000 ms, per quarter [2, 1, 1, 2], \
             first +12 ms, last +2999 ms"
        );
    }

    #[test]
    fn drain_schedule_line_parses_back() {
        let mut s = DrainSchedule::new(3_000);
        assert_eq!(s.to_string().parse(), Ok(s.clone()));
        for offset in [12, 900, 2_990] {
            s.add(offset);
        }
        // With the logger's prefix, as it appears in a pod's output.
        let logged = format!("2026-12-01T00:00:00.000Z INFO  [wsdrain::server] {s}");
        assert_eq!(logged.parse(), Ok(s.clone()));
        let line = s.to_string();
        for broken in [
            line.replace("[1, 1, 0, 1]", "[1, 1, 0, 2]"),
            line.replace("[1, 1, 0, 1]", "[1, 1, 0]"),
            line.replace(", last +2990 ms", ""),
            line.replace("drain schedule: ", "drain: "),
            line.replace("3000 ms", "3 s"),
        ] {
            assert!(broken.parse::<DrainSchedule>().is_err(), "{broken}");
        }
    }
}
