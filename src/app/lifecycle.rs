//! The server's phases while Kubernetes replaces its pod: `Serving → PreStop → Draining → exit`.
//!
//! `GET /prestop` (the kubelet's preStop hook) moves Serving to PreStop: readiness turns 503 so
//! the load balancer stops sending new connections, but everything is still served, because
//! endpoint removal races with the hook and new connections may still arrive. The hook's answer
//! is a timer: every call answers at the same deadline, `PRESTOP_DELAY` (and the tie break) after
//! the first. Only then does the kubelet send SIGTERM, which starts Draining; SIGTERM without a
//! preStop (`kubectl delete`, Ctrl-C) goes straight there. A SIGTERM while the hook still waits
//! means the grace period is over: the drain is the short one ([`DrainPlan`]). A second signal
//! means "stop now".

use std::time::Duration;

use crate::app::drain_plan::DrainPlan;
use crate::base::time::{Millis, after};
use crate::config::Config;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Ready and serving.
    #[default]
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
    /// When the first `/prestop` came.
    prestop_called_at: Option<Millis>,
    prestop_answer_at: Option<Millis>,
    drain_started_at: Option<Millis>,
    /// The drain chosen at the signal.
    drain_plan: Option<DrainPlan>,
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
            prestop_called_at: None,
            prestop_answer_at: None,
            drain_started_at: None,
            drain_plan: None,
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
        self.prestop_called_at.get_or_insert(now);
        if self.phase == Phase::Draining {
            self.prestop_answer_at.get_or_insert(now);
            return now;
        }
        *self.prestop_answer_at.get_or_insert_with(|| {
            self.phase = Phase::PreStop;
            after(now, delay)
        })
    }

    /// When pending `/prestop` calls are answered, if any were made.
    pub fn prestop_answer_at(&self) -> Option<Millis> {
        self.prestop_answer_at
    }

    /// A termination signal arrived: the first begins the drain that fits the time left.
    pub fn on_signal(&mut self, now: Millis, config: &Config) -> SignalAction {
        if self.phase == Phase::Draining {
            return SignalAction::ExitNow;
        }
        let hook_waiting = self.prestop_answer_at.is_some_and(|at| at > now);
        self.drain_plan = Some(DrainPlan::for_signal(
            config,
            now,
            hook_waiting,
            self.prestop_called_at,
        ));
        self.phase = Phase::Draining;
        self.drain_started_at = Some(now);
        // Either preStop returned, or the grace period is over: nobody waits for the rest of
        // the delay. Answer any hook still waiting.
        if let Some(at) = self.prestop_answer_at.as_mut() {
            *at = (*at).min(now);
        }
        SignalAction::BeginDrain
    }

    /// The drain chosen at the signal (`None` before it).
    pub fn drain_plan(&self) -> Option<&DrainPlan> {
        self.drain_plan.as_ref()
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

    /// When the first `/prestop` came, if one did.
    pub fn prestop_called_at(&self) -> Option<Millis> {
        self.prestop_called_at
    }

    /// When the drain began, if it has.
    pub fn drain_started_at(&self) -> Option<Millis> {
        self.drain_started_at
    }
}

/// A lifecycle log line in logfmt: the event's name, then `key=value` fields. Tools and tests
/// read numbers by key (never from prose); a value with a space or a quote is quoted, as Rust
/// writes a string literal. One line per lifecycle event, with its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine(String);

impl EventLine {
    /// A line for `event` (a word: `draining`, `drain_end`, `exit`, …).
    pub fn new(event: &str) -> Self {
        EventLine(event.to_string())
    }

    /// Adds `key=value`.
    #[inline]
    pub fn field(self, key: &str, value: impl std::fmt::Display) -> Self {
        self.push(key, &value)
    }

    /// One copy of the formatting for every type of value (the binary stays small).
    #[inline(never)]
    fn push(mut self, key: &str, value: &dyn std::fmt::Display) -> Self {
        use std::fmt::Write;
        let value = value.to_string();
        if value.is_empty() || value.contains([' ', '"', '=']) {
            let _ = write!(self.0, " {key}={value:?}");
        } else {
            let _ = write!(self.0, " {key}={value}");
        }
        self
    }
}

impl std::fmt::Display for EventLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The drain's planned close times, summarised for its log line (`drain_schedule`): how evenly
/// the closes are spread over `DRAIN_WINDOW` is what spares the new pods a reconnect storm, so
/// it is shown, per quarter of the window.
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
    /// WebSockets whose goaway notice went out before the drain (the age limit's): not planned
    /// again, only their close may come sooner.
    pub noticed_before: usize,
}

impl DrainSchedule {
    /// An empty schedule over a window of `window_ms`.
    pub fn new(window_ms: u64) -> Self {
        DrainSchedule {
            window_ms,
            per_quarter: [0; 4],
            first_ms: None,
            last_ms: None,
            noticed_before: 0,
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

    /// Its log line.
    pub fn event_line(&self) -> EventLine {
        let [q1, q2, q3, q4] = self.per_quarter;
        let line = EventLine::new("drain_schedule")
            .field("closes", self.closes())
            .field("window_ms", self.window_ms)
            .field("q1", q1)
            .field("q2", q2)
            .field("q3", q3)
            .field("q4", q4)
            .field("noticed_before", self.noticed_before);
        match (self.first_ms, self.last_ms) {
            (Some(first), Some(last)) => line.field("first_ms", first).field("last_ms", last),
            _ => line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_config;

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
        let config = test_config(&[]);
        let mut l = Lifecycle::new();
        l.request_prestop(0, Duration::from_secs(15));
        assert_eq!(l.on_signal(3_000, &config), SignalAction::BeginDrain);
        assert_eq!(l.phase(), Phase::Draining);
        assert_eq!(l.prestop_answer_at(), Some(3_000));
        assert_eq!(l.request_prestop(4_000, Duration::from_secs(15)), 4_000);
        assert_eq!(l.on_signal(5_000, &config), SignalAction::ExitNow);
        assert_eq!(l.drain_started_at(), Some(3_000));
    }

    #[test]
    fn a_signal_while_the_hook_waits_means_the_grace_period_is_over() {
        let config = test_config(&[]);
        let mut waited = Lifecycle::new();
        waited.request_prestop(0, Duration::from_secs(15));
        waited.on_signal(14_999, &config);
        assert_eq!(waited.drain_plan().map(|p| p.kind()), Some("short"));
        assert_eq!(waited.prestop_answer_at(), Some(14_999), "answered at once");
        // The hook answered (at its time, or before): the drain is the configured one.
        let mut answered = Lifecycle::new();
        answered.request_prestop(0, Duration::from_secs(15));
        answered.on_signal(15_000, &config);
        assert_eq!(answered.drain_plan().map(|p| p.kind()), Some("full"));
        let mut no_hook = Lifecycle::new();
        assert_eq!(no_hook.drain_plan(), None);
        no_hook.on_signal(3_000, &config);
        assert_eq!(no_hook.drain_plan().map(|p| p.kind()), Some("full"));
    }

    #[test]
    fn prestop_first_called_while_draining_is_answered_at_once() {
        let mut l = Lifecycle::new();
        assert_eq!(
            l.on_signal(3_000, &test_config(&[])),
            SignalAction::BeginDrain
        );
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
            s.event_line().to_string(),
            "drain_schedule closes=0 window_ms=3000 q1=0 q2=0 q3=0 q4=0 noticed_before=0"
        );
        for offset in [2_990, 12, 749, 750, 1_600, 2_999] {
            s.add(offset);
        }
        assert_eq!(
            s.event_line().to_string(),
            "drain_schedule closes=6 window_ms=3000 q1=2 q2=1 q3=1 q4=2 noticed_before=0 first_ms=12 last_ms=2999"
        );
    }

    #[test]
    fn event_lines_quote_what_would_break_a_field() {
        let line = EventLine::new("listening")
            .field("port", 8080)
            .field("dir", "my static")
            .field("empty", "")
            .field("eq", "a=b");
        assert_eq!(
            line.to_string(),
            r#"listening port=8080 dir="my static" empty="" eq="a=b""#
        );
    }
}
