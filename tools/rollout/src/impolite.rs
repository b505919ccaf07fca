//! The endings without the whole grace period, played on the same stage as the polite rollout
//! (nginx in front, pod B ready beside pod A, the fleet sending through pod A):
//!
//! - **spot** and **eviction**: the kubelet calls `/prestop` and pod A leaves the upstream at
//!   0 s, but the grace period is short ([`kubelet`]): SIGTERM at its end while the hook still
//!   waits, SIGKILL 2 s later. The server must answer the waiting hook at once, run its short
//!   drain (a goaway notice and a close frame for every WebSocket) and exit 0 before the
//!   SIGKILL.
//! - **kill**: SIGKILL in mid-traffic; the kernel closes pod A's sockets, nginx closes the
//!   clients' (no close frame). The load balancer drops pod A when its health checks fail,
//!   modelled as the upstream switched to pod B `--detect` s later; until then reconnects get
//!   502 and back off.
//! - **freeze**: SIGSTOP; pod A's sockets stay open and silent, and its listener still takes TCP
//!   connections into its backlog, where nginx waits for an answer. The load balancer drops it
//!   `--detect` s later; once every client is on pod B, SIGKILL, so nothing is left behind.
//!
//! The clients must lose nothing, show nothing twice and all end on pod B; kill and freeze
//! within the model's bound ([`bound`]).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cluster::start_pod;
use crate::ending::{Ending, KindFigures, Outcome, PodEnd, slowest_turn};
use crate::fleet::{Fleet, Kind};
use crate::kubelet::{self, Hook};
use crate::options::Options;
use crate::stage::{
    self, BACKOFF_CAP_SECS, connect_all, pod_env, settle_on_b, start_nginx, start_ready,
};

/// Room for connects and handshakes through nginx on a loaded machine, in every bound.
const SLACK: f64 = 1.0;

/// The model's bound on "every client served again", from the ending's start, and its terms.
///
/// - kill: the sockets end at once (EOF); reconnects fail fast (nginx answers 502) until the
///   load balancer drops pod A at `detect`; a client's next try after that comes within its
///   backoff, at most the cap: `detect + cap`.
/// - freeze: a client gives its socket up after twice the alive interval of silence; tries
///   before `detect` go to the frozen pod and end at the handshake timeout; the last such try
///   may begin just before `detect`: `max(2 × alive, detect) + handshake timeout + cap`.
pub fn bound(o: &Options, ending: Ending) -> Option<(f64, String)> {
    let cap = BACKOFF_CAP_SECS;
    match ending {
        Ending::Kill => Some((
            o.detect + cap + SLACK,
            format!("detect {} + backoff cap {cap} + {SLACK} s", o.detect),
        )),
        Ending::Freeze => {
            let silence = 2.0 * o.alive_interval;
            Some((
                silence.max(o.detect) + o.handshake_timeout + cap + SLACK,
                format!(
                    "max(2 × alive {}, detect {}) + handshake {} + backoff cap {cap} + {SLACK} s",
                    o.alive_interval, o.detect, o.handshake_timeout
                ),
            ))
        }
        _ => None,
    }
}

/// Plays `ending` (not polite); returns the failures and what it did.
pub fn run(o: &Options, ending: Ending, dir: &Path) -> Result<(Vec<String>, Outcome), String> {
    let clients = o.clients;
    let env = pod_env(o);
    let mut a = start_pod(&o.server, "pod-a", &env, dir)?;
    let nginx = start_nginx(o, &a, dir)?;
    let mut fleet = stage::fleet(o, &nginx)?;
    connect_all(&mut fleet, o)?;
    fleet.run(Duration::from_secs(1), |_| false)?;
    let mut b = start_ready(o, &env, dir, &mut fleet)?;
    let mut failures = Vec::new();
    let bound = bound(o, ending);
    let start = Instant::now();
    let at = |t: Instant| t.saturating_duration_since(start).as_secs_f64();
    let (timeline, a_end, a_stops) = match ending {
        Ending::Spot | Ending::Eviction => {
            let grace = if ending == Ending::Spot {
                o.spot_grace
            } else {
                o.eviction_grace
            };
            let limit = Duration::from_secs_f64(o.prestop_delay + grace + 10.0);
            let mut hook = Hook::call(a.admin(), limit);
            nginx.switch_upstream(b.public())?;
            println!(
                "pod A {}: /prestop called, upstream switched to pod B",
                ending.name()
            );
            let t = kubelet::terminate(&mut a, &mut hook, &mut fleet, start, grace)?;
            let hook_told = match &hook.answered {
                Some((status, when)) => {
                    format!("/prestop answered {status:?} at {:.2} s", at(*when))
                }
                None => "/prestop unanswered".to_string(),
            };
            if t.hook.is_none() {
                // The grace ended while the hook waited: SIGTERM must release it at once.
                match &hook.answered {
                    Some((Ok(200), when)) if at(*when) <= t.sigterm_at.as_secs_f64() + 0.5 => {}
                    _ => failures.push(format!(
                        "the grace period ended while /prestop waited, and pod A did not answer \
                         it within 0.5 s of the SIGTERM at {:.2} s ({hook_told})",
                        t.sigterm_at.as_secs_f64()
                    )),
                }
            }
            match t.end {
                PodEnd::Exit(Some(0), _) => {}
                other => failures.push(format!(
                    "pod A did not exit 0 before the kubelet's SIGKILL (due at {:.2} s): {other}",
                    t.planned.sigkill
                )),
            }
            let hook_state = match t.hook {
                Some(h) => format!("the hook returned at {h:.2} s"),
                None => "the hook still waiting at the grace's end".to_string(),
            };
            let timeline = format!(
                "/prestop, out of the upstream at 0 s; grace {grace} s, {hook_state}; SIGTERM at \
                 {:.2} s; {hook_told}; SIGKILL due at {:.2} s",
                t.sigterm_at.as_secs_f64(),
                t.planned.sigkill
            );
            (timeline, t.end, None)
        }
        Ending::Kill | Ending::Freeze => {
            let signal = if ending == Ending::Kill {
                "KILL"
            } else {
                "STOP"
            };
            a.signal(signal)?;
            println!("pod A: SIG{signal} in mid-traffic");
            let detect_at = start + Duration::from_secs_f64(o.detect);
            if ending == Ending::Kill {
                let by = Instant::now() + Duration::from_secs(5);
                while a.running() && Instant::now() < by {
                    fleet.run(Duration::from_millis(10), |_| false)?;
                }
                a.wait_exit(Duration::from_secs(2))?;
            }
            fleet.run(detect_at.saturating_duration_since(Instant::now()), |_| {
                false
            })?;
            nginx.switch_upstream(b.public())?;
            let switched = at(Instant::now());
            println!(
                "the load balancer dropped pod A: upstream switched to pod B at {switched:.2} s"
            );
            let mut timeline =
                format!("SIG{signal} at 0 s; out of the upstream at {switched:.2} s");
            let end = if ending == Ending::Kill {
                PodEnd::Killed(Duration::ZERO)
            } else {
                let limit = bound.as_ref().map_or(30.0, |b| b.0) + 10.0;
                let until = start + Duration::from_secs_f64(limit);
                fleet.run(until.saturating_duration_since(Instant::now()), |f| {
                    f.on_instance("pod-b") == clients
                })?;
                let moved = fleet.on_instance("pod-b") == clients;
                a.kill()?;
                let killed = start.elapsed();
                timeline.push_str(&format!(
                    "; SIGKILL at {:.2} s ({})",
                    killed.as_secs_f64(),
                    if moved {
                        "every client on pod B"
                    } else {
                        "the bound passed"
                    }
                ));
                PodEnd::Killed(killed)
            };
            (timeline, end, Some(start))
        }
        Ending::Polite => return Err("the polite rollout is not played here".into()),
    };

    // Everyone on pod B, every message answered (bounded).
    let end = settle_on_b(&mut fleet, o, bound.as_ref().map_or(0.0, |b| b.0))?;
    let reports = fleet.reports(end);
    let kinds: Vec<KindFigures> = Kind::ALL
        .into_iter()
        .map(|k| KindFigures::of(&fleet, &reports, k, start, end, a_stops))
        .filter(|k| k.clients > 0)
        .collect();
    let on_b = fleet.on_instance("pod-b");
    if on_b != clients {
        failures.push(format!("only {on_b} of {clients} clients ended on pod B"));
    }
    failures.extend(check(o, ending, &fleet, &kinds, bound.as_ref()));
    let drain = drain_told(&a);
    if matches!(ending, Ending::Spot | Ending::Eviction) {
        failures.extend(check_drain(&a));
    }
    let outcome = Outcome {
        ending,
        clients,
        kinds,
        timeline,
        a_end,
        drain,
        bound: bound.map(|(b, how)| (Duration::from_secs_f64(b), how)),
        slowest_turn: slowest_turn(&fleet, start),
    };
    // Pod B's turn to go: no client left, so its drain ends at once.
    drop(fleet);
    b.signal("TERM")?;
    let budget = o.drain_window + o.handover_timeout + o.close_timeout + 5.0;
    if let Err(e) = b.wait_exit(Duration::from_secs_f64(budget)) {
        failures.push(format!("pod B did not exit after the run: {e}"));
    }
    Ok((failures, outcome))
}

/// The checks every impolite ending shares, and kill's and freeze's bound.
fn check(
    o: &Options,
    ending: Ending,
    fleet: &Fleet,
    kinds: &[KindFigures],
    bound: Option<&(f64, String)>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for k in kinds {
        let name = k.kind.name();
        if k.lost > 0 {
            failures.push(format!(
                "{name} clients: {} messages never answered",
                k.lost
            ));
        }
        if k.shown_twice > 0 {
            failures.push(format!(
                "{name} clients: {} replies arrived for messages already answered (shown twice)",
                k.shown_twice
            ));
        }
        let mismatches = fleet.stats(k.kind).mismatches;
        if mismatches > 0 {
            failures.push(format!(
                "{name} clients: {mismatches} replies did not match the message sent"
            ));
        }
        if let Some((limit, how)) = bound
            && k.served_again.as_secs_f64() > *limit
        {
            failures.push(format!(
                "{name} clients: the last was served again {:.2} s after the {} began, beyond \
                 the model's {limit:.1} s ({how})",
                k.served_again.as_secs_f64(),
                ending.name()
            ));
        }
        if matches!(ending, Ending::Spot | Ending::Eviction) {
            // Every WebSocket of pod A: a goaway notice (an old client reads it as an alive
            // message), and a close frame before the end.
            if o.handover_timeout > 0.0 && k.notices_a != k.clients {
                failures.push(format!(
                    "{name} clients: {} goaway notices from pod A for {} clients",
                    k.notices_a, k.clients
                ));
            }
            if k.no_close_frame_a > 0 {
                failures.push(format!(
                    "{name} clients: {} connections to pod A ended without a close frame",
                    k.no_close_frame_a
                ));
            }
        }
    }
    failures
}

/// Pod A's own account of a short drain: it knew the grace period was over (`drain=short`)
/// and cut no WebSocket (`cut=0`).
fn check_drain(a: &testkit::server::Server) -> Vec<String> {
    let mut failures = Vec::new();
    match a.find_event("draining") {
        Some(f) => match f.get("drain") {
            Some("short") => {}
            Some(other) => failures.push(format!(
                "pod A's draining line says drain={other}: the grace period was over (SIGTERM \
                 while /prestop waited), so the drain must be the short one"
            )),
            None => failures.push(
                "pod A's draining line has no drain= field: this server has no short drain".into(),
            ),
        },
        None => failures.push("pod A logged no draining line".into()),
    }
    match a.find_event("drain_end").map(|f| f.number("cut")) {
        Some(Some(0)) => {}
        Some(Some(n)) => failures.push(format!(
            "pod A's drain_end says cut={n}: WebSockets closed by its exit without a close frame"
        )),
        Some(None) => failures.push("pod A's drain_end line has no cut= field".into()),
        None => failures.push("pod A logged no drain_end line".into()),
    }
    failures
}

/// How pod A's drain went, as its log says: `draining`'s `drain` and `reason`, `drain_end`'s
/// `after_ms`, `notices`, `closes_sent` and `cut`.
pub fn drain_told(a: &testkit::server::Server) -> String {
    let mut told = Vec::new();
    if let Some(f) = a.find_event("draining") {
        for key in ["drain", "reason"] {
            told.push(format!("{key}={}", f.get(key).unwrap_or("-")));
        }
    }
    if let Some(f) = a.find_event("drain_end") {
        for key in ["after_ms", "notices", "closes_sent", "cut"] {
            told.push(format!("{key}={}", f.get(key).unwrap_or("-")));
        }
    }
    if told.is_empty() {
        "no drain".into()
    } else {
        told.join(" ")
    }
}
