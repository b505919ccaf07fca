//! Which drain runs at the signal, and its times: the configured one, or the same shrunk to
//! the time Kubernetes actually leaves.
//!
//! The kubelet counts the grace period from the start of the preStop hook; when the hook is
//! still running as the period ends, it sends SIGTERM and kills the process
//! [`KUBELET_LAST_GRACE`](crate::config::KUBELET_LAST_GRACE) later. So a SIGTERM that finds
//! `/prestop` still waiting says the time is up (a Spot node's 15 s, an eviction,
//! `--grace-period`): the drain is shrunk to `SHORT_DRAIN`. Where the server knows the grace
//! period (`TERMINATION_GRACE_PERIOD`), it never plans a drain that ends past it, counted from
//! the first of `/prestop` or SIGTERM.
//!
//! A shrunk drain keeps the configured proportions (window : handover : close handshake), so
//! every WebSocket still gets its goaway notice and then its close frame, spread out, and it
//! does not linger: the process exits at the plan's end, before the SIGKILL.

use std::time::Duration;

use crate::base::time::Millis;
use crate::config::{Config, GRACE_MARGIN, LINGER};

/// Why the drain is shorter than configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShortReason {
    /// SIGTERM came while `/prestop` still waited: the grace period is over.
    GraceOver,
    /// The known grace period leaves less than the configured drain.
    GraceLeft,
}

impl ShortReason {
    /// The reason as the `draining` line names it.
    pub fn as_str(self) -> &'static str {
        match self {
            ShortReason::GraceOver => "grace_over",
            ShortReason::GraceLeft => "grace_left",
        }
    }
}

/// The drain's times, in milliseconds from the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainPlan {
    /// `None` for the configured drain, else why it was shrunk.
    pub short: Option<ShortReason>,
    /// Goaway notices (or closes, without a handover) fall uniformly in this window.
    pub window_ms: Millis,
    /// From a WebSocket's notice to its close 1012.
    pub handover_ms: Millis,
    /// For the client to answer the close frame.
    pub close_ms: Millis,
    /// Lingering after an answer that closes (none in a shrunk drain).
    pub linger_ms: Millis,
}

impl DrainPlan {
    /// The configured drain: `DRAIN_WINDOW`, `HANDOVER_TIMEOUT`, `CLOSE_TIMEOUT` and the linger.
    pub fn full(config: &Config) -> Self {
        DrainPlan {
            short: None,
            window_ms: ms(config.drain_window),
            handover_ms: ms(config.handover_timeout),
            close_ms: ms(config.close_timeout),
            linger_ms: ms(LINGER),
        }
    }

    /// The drain for a signal at `now`. `hook_waiting`: a `/prestop` has not been answered yet;
    /// `prestop_at`: when the first `/prestop` came, if one did.
    pub fn for_signal(
        config: &Config,
        now: Millis,
        hook_waiting: bool,
        prestop_at: Option<Millis>,
    ) -> Self {
        let full = Self::full(config);
        if hook_waiting {
            return full.shrunk_to(ms(config.short_drain), ShortReason::GraceOver);
        }
        let Some(grace) = config.termination_grace_period else {
            return full;
        };
        let began = prestop_at.map_or(now, |at| at.min(now));
        let left = (began + ms(grace))
            .saturating_sub(now)
            .saturating_sub(ms(GRACE_MARGIN))
            .max(ms(config.short_drain));
        if full.deadline_ms() <= left {
            full
        } else {
            full.shrunk_to(left, ShortReason::GraceLeft)
        }
    }

    /// This plan within `budget_ms`, without lingering: the window, handover and close
    /// handshake scaled down together when they do not fit.
    fn shrunk_to(self, budget_ms: Millis, why: ShortReason) -> Self {
        let parts = self.window_ms + self.handover_ms + self.close_ms;
        let scale = |part: Millis| {
            if parts <= budget_ms {
                part
            } else {
                (u128::from(part) * u128::from(budget_ms) / u128::from(parts)) as Millis
            }
        };
        DrainPlan {
            short: Some(why),
            window_ms: scale(self.window_ms),
            handover_ms: scale(self.handover_ms),
            close_ms: scale(self.close_ms),
            linger_ms: 0,
        }
    }

    /// From the signal to the exit at the latest.
    pub fn deadline_ms(&self) -> Millis {
        self.window_ms + self.handover_ms + self.close_ms + self.linger_ms
    }

    /// `full` or `short`, as the `draining` line and `/metrics` name it.
    pub fn kind(&self) -> &'static str {
        if self.short.is_some() {
            "short"
        } else {
            "full"
        }
    }
}

fn ms(d: Duration) -> Millis {
    d.as_millis() as Millis
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_config as config;

    #[test]
    fn a_signal_after_the_hook_runs_the_configured_drain() {
        let c = config(&[]);
        let plan = DrainPlan::for_signal(&c, 20_000, false, Some(4_500));
        assert_eq!(plan, DrainPlan::full(&c));
        assert_eq!(plan.deadline_ms(), 22_000);
        assert_eq!(plan.kind(), "full");
    }

    #[test]
    fn a_signal_while_the_hook_waits_runs_the_short_drain_in_proportion() {
        // The defaults: 10 s window, 5 s handover, 5 s close handshake, in 1.5 s.
        let plan = DrainPlan::for_signal(&config(&[]), 15_000, true, Some(0));
        assert_eq!(
            plan,
            DrainPlan {
                short: Some(ShortReason::GraceOver),
                window_ms: 750,
                handover_ms: 375,
                close_ms: 375,
                linger_ms: 0,
            }
        );
        assert_eq!(plan.deadline_ms(), 1_500);
        // A drain that already fits keeps its times, only without lingering.
        let small = config(&[
            ("DRAIN_WINDOW", "0"),
            ("HANDOVER_TIMEOUT", "0"),
            ("CLOSE_TIMEOUT", "1s"),
        ]);
        let plan = DrainPlan::for_signal(&small, 5, true, None);
        assert_eq!(
            (plan.window_ms, plan.close_ms, plan.deadline_ms()),
            (0, 1_000, 1_000)
        );
    }

    #[test]
    fn a_known_grace_period_is_never_overrun() {
        let c = config(&[("TERMINATION_GRACE_PERIOD", "40s")]);
        // /prestop at 0, answered at 15.5 s, SIGTERM at 15.6 s: the full 22 s fit in 40 - 2.
        let plan = DrainPlan::for_signal(&c, 15_600, false, Some(0));
        assert_eq!(plan.kind(), "full");
        // /prestop called by hand long before: 40 s from it, 2 s margin, 30 s gone: 8 s left.
        let plan = DrainPlan::for_signal(&c, 30_000, false, Some(0));
        assert_eq!(plan.short, Some(ShortReason::GraceLeft));
        assert_eq!(plan.deadline_ms(), 8_000);
        assert_eq!((plan.window_ms, plan.handover_ms), (4_000, 2_000));
        // Never less than SHORT_DRAIN: the kubelet grants at least 2 s after its SIGTERM.
        let plan = DrainPlan::for_signal(&c, 60_000, false, Some(0));
        assert_eq!(plan.deadline_ms(), 1_500);
        // Without a preStop the grace counts from the signal.
        let plan = DrainPlan::for_signal(&c, 60_000, false, None);
        assert_eq!(plan.kind(), "full");
    }
}
