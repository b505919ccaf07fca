//! The kubelet's side of a pod's termination, as it is written (`killContainer` in the kubelet's
//! `kuberuntime_container.go`): the preStop hook runs with the grace period as its time limit;
//! then SIGTERM; then SIGKILL after what is left of the grace period, which is the grace period
//! minus the whole seconds the hook took (`gracePeriod -= int64(seconds the hook took)`), and
//! never less than 2 s (`minimumGracePeriodInSeconds`). A hook still running at the grace's end
//! is left behind: SIGTERM then, SIGKILL 2 s later.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use testkit::server::Server;

use crate::cluster::http_get;
use crate::ending::PodEnd;
use crate::fleet::Fleet;

/// The kubelet's minimum for the time between SIGTERM and SIGKILL.
pub const MINIMUM_GRACE: f64 = 2.0;

/// When the kubelet sends SIGTERM and SIGKILL, in seconds from the start of the termination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signals {
    pub sigterm: f64,
    pub sigkill: f64,
}

/// The signals' times for a grace period of `grace` seconds when the preStop hook returned
/// `hook` seconds after it was called (`None`: not within the grace period).
pub fn signals(grace: f64, hook: Option<f64>) -> Signals {
    match hook {
        Some(h) if h < grace => Signals {
            sigterm: h,
            sigkill: h + (grace - h.floor()).max(MINIMUM_GRACE),
        },
        _ => Signals {
            sigterm: grace,
            sigkill: grace + MINIMUM_GRACE,
        },
    }
}

/// A preStop hook call in flight: `GET /prestop` on its own thread, and when it answered.
pub struct Hook {
    thread: Option<JoinHandle<(Result<u16, String>, Instant)>>,
    pub answered: Option<(Result<u16, String>, Instant)>,
}

impl Hook {
    /// Calls the hook; `limit` bounds the call.
    pub fn call(admin: SocketAddr, limit: Duration) -> Hook {
        let thread = std::thread::spawn(move || {
            let status = http_get(admin, "/prestop", limit);
            (status, Instant::now())
        });
        Hook {
            thread: Some(thread),
            answered: None,
        }
    }

    /// Whether it has answered (or failed); collects the answer.
    pub fn poll(&mut self) -> bool {
        if self.thread.as_ref().is_some_and(JoinHandle::is_finished)
            && let Some(t) = self.thread.take()
        {
            self.answered = Some(
                t.join()
                    .unwrap_or((Err("the hook's thread panicked".into()), Instant::now())),
            );
        }
        self.answered.is_some()
    }
}

/// What the kubelet did to the pod and how it ended.
#[derive(Debug, Clone)]
pub struct Termination {
    /// When the hook returned, if within the grace period (s from the start).
    pub hook: Option<f64>,
    /// The planned signals, and when SIGTERM actually went.
    pub planned: Signals,
    pub sigterm_at: Duration,
    pub end: PodEnd,
}

/// Plays the kubelet on `pod` from `start` (the hook already called) with a grace period of
/// `grace` s, while the fleet runs: SIGTERM when the hook returns or at the grace's end, then
/// SIGKILL when the model says, unless the pod exited first.
pub fn terminate(
    pod: &mut Server,
    hook: &mut Hook,
    fleet: &mut Fleet,
    start: Instant,
    grace: f64,
) -> Result<Termination, String> {
    let grace_ends = start + Duration::from_secs_f64(grace);
    while !hook.poll() && Instant::now() < grace_ends {
        let left = grace_ends.saturating_duration_since(Instant::now());
        fleet.run(left.min(Duration::from_millis(10)), |_| false)?;
    }
    let hook_at = hook
        .answered
        .as_ref()
        .map(|(_, at)| at.saturating_duration_since(start).as_secs_f64());
    let planned = signals(grace, hook_at);
    pod.signal("TERM")?;
    let sigterm_at = start.elapsed();
    let kill_at = start + Duration::from_secs_f64(planned.sigkill);
    while pod.running() && Instant::now() < kill_at {
        hook.poll();
        let left = kill_at.saturating_duration_since(Instant::now());
        fleet.run(left.min(Duration::from_millis(10)), |_| false)?;
    }
    hook.poll();
    let end = if pod.running() {
        pod.kill()?;
        PodEnd::Killed(start.elapsed())
    } else {
        let at = start.elapsed();
        let status = pod.wait_exit(Duration::from_secs(5))?;
        PodEnd::Exit(status.code(), at)
    };
    hook.poll();
    Ok(Termination {
        hook: hook_at.filter(|h| *h < grace),
        planned,
        sigterm_at,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigkill_comes_after_what_is_left_of_the_grace_period_and_at_least_2_s() {
        // A polite preStop of 15 s in a 40 s grace period: 25 s left.
        assert_eq!(
            signals(40.0, Some(15.2)),
            Signals {
                sigterm: 15.2,
                sigkill: 40.2
            }
        );
        // Spot: the hook (15.5 s) outlives the 15 s grace: SIGTERM at 15 s, SIGKILL at 17 s.
        assert_eq!(
            signals(15.0, Some(15.5)),
            Signals {
                sigterm: 15.0,
                sigkill: 17.0
            }
        );
        assert_eq!(signals(15.0, None), signals(15.0, Some(15.5)));
        // A hook back at 14.9 s: 15 - 14 = 1 s left, raised to 2 s.
        assert_eq!(
            signals(15.0, Some(14.9)),
            Signals {
                sigterm: 14.9,
                sigkill: 16.9
            }
        );
        // Whole seconds only: back at 2.99 s of 5, 5 - 2 = 3 s left.
        let s = signals(5.0, Some(2.99));
        assert!((s.sigkill - 5.99).abs() < 1e-9, "{s:?}");
        // A hard eviction's 1 s: SIGTERM at 1 s, SIGKILL at 3 s.
        assert_eq!(
            signals(1.0, None),
            Signals {
                sigterm: 1.0,
                sigkill: 3.0
            }
        );
    }
}
