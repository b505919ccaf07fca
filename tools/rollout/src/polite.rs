//! The polite ending: a rolling update. Pod B is started and awaited until ready; then, at the
//! same moment, pod A's `/prestop` is called and A leaves the upstream; the kubelet's timings
//! are [`kubelet`]'s: when `/prestop` answers (or at the grace period's end, if it has not), A
//! gets SIGTERM; SIGKILL when what is left of the grace period has passed (and the run fails).
//! A hook unanswered within the grace period fails the run too. With
//! `--prometheus`, a real Prometheus watches both pods and the story of its series is checked
//! against the clients'.

use std::path::Path;
use std::time::{Duration, Instant};

use testkit::evidence::DrainPlan;

use crate::cluster::{http_get, start_pod};
use crate::ending::{Ending, KindFigures, Outcome, PodEnd, slowest_turn};
use crate::fleet::Kind;
use crate::impolite::drain_told;
use crate::kubelet::{self, Hook, Termination};
use crate::metrics_check::{Clock, DashboardFile, pod_target, run_dashboard, story_facts};
use crate::options::Options;
use crate::prometheus::{self, Prometheus};
use crate::report::{Summary, check_drain_end, line_message, print_table};
use crate::schedule::check_schedule;
use crate::stage::{self, connect_all, pod_env, settle_on_b, start_nginx, start_ready};
use crate::{picture, story};

/// Plays the rolling update; returns the failures and what it did.
pub fn run(o: &Options, dir: &Path) -> Result<(Vec<String>, Outcome), String> {
    let mut failures = Vec::new();
    let env = pod_env(o);
    let clients = o.clients;
    // With HANDOVER_TIMEOUT=0 the server sends no notice, so aware clients take today's path.
    let expect_handover = o.handover_timeout > 0.0;

    // Read before anything starts: the run cannot pass without its queries.
    let dashboard = if o.prometheus {
        Some(DashboardFile::read(&o.dashboard)?)
    } else {
        None
    };
    let mut a = start_pod(&o.server, "pod-a", &env, dir)?;
    // Prometheus stamps its samples in unix time, the fleet its events with `Instant`s.
    let clock = Clock::now();
    let mut prom = if o.prometheus {
        let binary = prometheus::find_binary().ok_or(
            "--prometheus: no prometheus binary (apt-get install --no-install-recommends \
             prometheus)",
        )?;
        let target = [pod_target("pod-a", a.admin())];
        Some(Prometheus::start(
            &binary,
            &dir.join("prometheus"),
            &target,
            o.swap_pod_labels,
        )?)
    } else {
        None
    };
    let prom_start = clock.unix(Instant::now());
    let nginx = start_nginx(o, &a, dir)?;
    let mut fleet = stage::fleet(o, &nginx)?;
    let connected = connect_all(&mut fleet, o)?;
    fleet.run(Duration::from_secs(1), |_| false)?;

    // The replacement starts at once; it gets traffic only once ready.
    let b = start_ready(o, &env, dir, &mut fleet)?;
    let mut watched = connected;
    if let Some(p) = prom.as_mut() {
        // Both pods scraped before anything happens to pod A. A reload restarts the scraping
        // (a pod's series may lapse until its next scrape), and new targets are picked up on
        // a 5 s tick: wait until each pod has a sample from after the reload.
        let reloaded = clock.unix(Instant::now());
        p.set_targets(&[
            pod_target("pod-a", a.admin()),
            pod_target("pod-b", b.admin()),
        ])?;
        let by = Instant::now() + Duration::from_secs(30);
        loop {
            let last = p.last_scrapes()?;
            if ["pod-a", "pod-b"]
                .iter()
                .all(|pod| last.get(*pod).is_some_and(|t| *t > reloaded))
            {
                break;
            }
            if Instant::now() > by {
                return Err(format!(
                    "Prometheus did not scrape both pods within 30 s of its reload: {}",
                    p.up(&["pod-a", "pod-b"]).err().unwrap_or_default()
                ));
            }
            fleet.run(Duration::from_millis(200), |_| false)?;
        }
        watched = Instant::now();
        // A few scrapes of both before the termination: the story's first chapter.
        fleet.run(
            Duration::from_secs(2 * prometheus::SCRAPE_INTERVAL_SECS),
            |_| false,
        )?;
        println!("Prometheus on {} scrapes both pods each second", p.addr);
    }

    // Pod A is terminating: preStop and endpoint removal start together. The hook's call
    // outlives the grace period: the kubelet's model, not the call's limit, ends the wait.
    let terminating = Instant::now();
    let limit = Duration::from_secs_f64(o.prestop_delay + o.grace + 10.0);
    let mut hook = Hook::call(a.admin(), limit);
    nginx.switch_upstream(b.public())?;
    println!("pod A terminating: /prestop called, upstream switched to pod B");
    // Until the endpoint change reaches every load balancer, connections may still arrive at A.
    let prestop_event = a.wait_event("prestop", Duration::from_secs(5))?;
    if prestop_event.get("ready") != Some("false") {
        failures.push(format!(
            "pod A's prestop line does not say ready=false: {prestop_event:?}"
        ));
    }
    if http_get(a.public(), "/healthz", Duration::from_secs(2)) != Ok(200) {
        failures.push("a connection that reached pod A during preStop was not served".into());
    }
    if http_get(a.admin(), "/readyz", Duration::from_secs(2)) != Ok(503) {
        failures.push("pod A still reported ready during preStop".into());
    }
    // SIGTERM when the hook returns (or at the grace's end), SIGKILL when what is left of the
    // grace period has passed, unless pod A exited first.
    let t = kubelet::terminate(&mut a, &mut hook, &mut fleet, terminating, o.grace)?;
    let answer = hook.answered.as_ref().map(|(status, _)| status);
    failures.extend(check_termination(&t, answer, o.grace));
    let sigterm = terminating + t.sigterm_at;
    let a_done = match t.end {
        PodEnd::Exit(_, at) | PodEnd::Killed(at) => at,
    };
    let drain_took = a_done.saturating_sub(t.sigterm_at);
    let a_end = t.end;
    println!(
        "pod A exited {:.1}s after SIGTERM, {:.1}s into its grace period of {}s",
        drain_took.as_secs_f64(),
        a_done.as_secs_f64(),
        o.grace
    );

    // Everyone should now be on B, and every message answered.
    let end = settle_on_b(&mut fleet, o, 0.0)?;
    let reports = fleet.reports(end);

    let window = Duration::from_secs_f64(o.drain_window);
    let window_ms = window.as_millis() as u64;
    let handover_ms = (o.handover_timeout * 1000.0).round() as u64;
    let mut summaries = Vec::new();
    for kind in Kind::ALL {
        let close_offset = if expect_handover {
            Duration::from_secs_f64(o.handover_timeout)
        } else {
            Duration::ZERO
        };
        let figures = KindFigures::of(&fleet, &reports, kind, terminating, end, None);
        let s = Summary::of(figures, &fleet, &reports, sigterm, window, close_offset);
        // Aware clients are held to the handover only when the server sends notices.
        let handover = kind == Kind::Aware && expect_handover;
        failures.extend(s.check(handover, expect_handover, handover_ms));
        summaries.push(s);
    }
    let on_b = fleet.on_instance("pod-b");
    if on_b != clients {
        failures.push(format!("only {on_b} of {clients} clients ended on pod B"));
    }
    // The close schedule pod A planned at drain begin, from its own log line. The checks are
    // statistical (the server draws each close uniformly in DRAIN_WINDOW), so they need a
    // fleet of some size.
    let schedule = match a.wait_event("drain_schedule", Duration::from_secs(1)) {
        Ok(fields) => DrainPlan::from_fields(&fields).ok_or(format!(
            "pod A's drain_schedule line does not read back: {fields:?}"
        )),
        Err(_) => Err(
            "pod A logged no drain_schedule line at drain begin, so the spread of its closes \
             over DRAIN_WINDOW cannot be checked"
                .to_string(),
        ),
    };
    match &schedule {
        Ok(s) => failures.extend(check_schedule(s, window_ms, clients)),
        Err(e) => failures.push(e.clone()),
    }
    // Pod A's own books: every message it read was answered, or arrived after its close frame.
    if let Some(exit) = a.find_event("exit") {
        let number = |key: &str| exit.number(key).unwrap_or(u64::MAX);
        let (inbound, outbound, after) = (
            number("ws_messages_in"),
            number("ws_messages_out"),
            number("ws_messages_after_close"),
        );
        if inbound != outbound.saturating_add(after) {
            failures.push(format!(
                "pod A's counters do not balance: {inbound} in, {outbound} out, {after} after close"
            ));
        }
    } else {
        failures.push("pod A logged no exit line".into());
    }
    let drain_end = a.find_event("drain_end");
    if let Some(fields) = &drain_end {
        failures.extend(check_drain_end(fields, &summaries, expect_handover));
    } else {
        failures.push("pod A logged no drain_end line".into());
    }

    let mut told = None;
    if let Some(p) = &prom {
        // Pod B's next scrapes show the end.
        fleet.run(
            Duration::from_secs(2 * prometheus::SCRAPE_INTERVAL_SECS) + Duration::from_millis(500),
            |_| false,
        )?;
        let until = Instant::now();
        let observed = story::Observed::fetch(p, prom_start.floor(), clock.unix(until))?;
        let facts = story_facts(
            &fleet,
            &clock,
            [watched, terminating, sigterm, end, until],
            o,
            expect_handover,
        );
        let story_failures = story::check(&observed, &facts);
        let scrapes = |pod: &str| observed.pods.get(pod).map_or(0, |p| p.websockets.len());
        println!(
            "Prometheus: {} scrapes of pod A and {} of pod B read back; {}",
            scrapes("pod-a"),
            scrapes("pod-b"),
            match story_failures.len() {
                0 => "their story is the clients'".to_string(),
                n => format!("{n} disagreements with the clients (below)"),
            }
        );
        failures.extend(
            story_failures
                .into_iter()
                .map(|f| format!("Prometheus: {f}")),
        );
        if let Some(dashboard) = &dashboard {
            failures.extend(run_dashboard(
                p,
                dashboard,
                prom_start.floor(),
                clock.unix(until),
            )?);
        }
        if let Some(path) = &o.svg {
            let title = format!(
                "Prometheus's view: {} clients ({} handover-aware), preStop {} s, window {} s",
                picture::thousands(clients as f64),
                picture::thousands(fleet.count(Kind::Aware) as f64),
                o.prestop_delay,
                o.drain_window
            );
            let svg = picture::svg(&observed, &facts, &title)?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::write(path, &svg).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("picture: {} ({} bytes)", path.display(), svg.len());
        }
        told = Some((observed, facts));
    }

    println!();
    print_table(&summaries, clients);
    println!();
    println!("| rollout, {clients} clients | |");
    println!("|---|---|");
    match &schedule {
        Ok(s) => println!("| pod A's planned closes (its log) | {s} |"),
        Err(_) => println!("| pod A's planned closes (its log) | missing |"),
    }
    if let Some(line) = a.find_log("drain_end ") {
        println!("| pod A's drain_end | {} |", line_message(&line));
    }
    match t.hook {
        Some(h) => println!("| preStop took | {h:.2} s |"),
        None => println!("| preStop took | no answer within the grace period |"),
    }
    println!(
        "| drain (SIGTERM to exit) | {:.2} s |",
        drain_took.as_secs_f64()
    );
    println!(
        "| pod A gone after (grace {}) | {:.2} s |",
        o.grace,
        a_done.as_secs_f64()
    );
    println!("| clients on pod B at the end | {on_b} |");
    if let Some((observed, facts)) = &told {
        println!(
            "| pod A's phases (Prometheus, from its termination) | {} |",
            story::phases_told(observed, facts)
        );
        let peak = observed
            .upgrades_per_step()
            .values()
            .copied()
            .fold(0.0, f64::max);
        println!("| peak new WebSockets per second (Prometheus) | {peak} |");
        let (needed, tighter) = story::tightest_skew(observed, facts);
        println!(
            "| the metrics' story holds with a time tolerance of (allowed {} ms) | {} |",
            (facts.skew * 1000.0) as u64,
            needed.map_or("more than 2 s".into(), |s| format!("{} ms", s * 1000.0))
        );
        if let Some(t) = tighter {
            println!("| … and not {t} |");
        }
    }
    println!();

    let outcome = Outcome {
        ending: Ending::Polite,
        clients,
        kinds: summaries
            .iter()
            .map(|s| s.figures.clone())
            .filter(|k| k.clients > 0)
            .collect(),
        timeline: format!(
            "/prestop, out of the upstream at 0 s; grace {} s; {}, SIGTERM at {:.2} s",
            o.grace,
            if t.hook.is_some() {
                "/prestop answered"
            } else {
                "/prestop unanswered at the grace's end"
            },
            t.sigterm_at.as_secs_f64()
        ),
        a_end,
        drain: drain_told(&a),
        bound: None,
        slowest_turn: slowest_turn(&fleet, terminating),
    };

    b.signal("TERM")?;
    fleet.run(
        Duration::from_secs_f64(o.drain_window + o.handover_timeout + o.close_timeout + 2.0),
        |_| false,
    )?;
    Ok((failures, outcome))
}

/// What the kubelet's termination of pod A says about the server: `/prestop` answered 200
/// within the grace period of `grace` s (`answer`: the hook's answer, if any, whenever it
/// came), and pod A exited 0 before the SIGKILL.
fn check_termination(
    t: &Termination,
    answer: Option<&Result<u16, String>>,
    grace: f64,
) -> Vec<String> {
    let mut failures = Vec::new();
    match (t.hook, answer) {
        (Some(_), Some(Ok(200))) => {}
        (Some(h), Some(status)) => {
            failures.push(format!("/prestop answered {status:?} at {h:.2} s"));
        }
        (_, answer) => failures.push(format!(
            "/prestop did not answer within the grace period of {grace} s: the kubelet sent \
             SIGTERM at {:.2} s while it waited ({})",
            t.sigterm_at.as_secs_f64(),
            match answer {
                Some(status) => format!("it answered {status:?} after"),
                None => "no answer".to_string(),
            }
        )),
    }
    match t.end {
        PodEnd::Exit(Some(0), _) => {}
        PodEnd::Exit(..) => failures.push(format!("pod A did not exit 0: {}", t.end)),
        PodEnd::Killed(at) => failures.push(format!(
            "pod A was still running when the kubelet's SIGKILL came at {:.2} s (the grace \
             period of {grace} s, less the whole seconds of preStop, at least {} s after \
             SIGTERM)",
            at.as_secs_f64(),
            kubelet::MINIMUM_GRACE
        )),
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::signals;

    fn termination(grace: f64, hook: Option<f64>, end: PodEnd) -> Termination {
        let planned = signals(grace, hook);
        Termination {
            hook: hook.filter(|h| *h < grace),
            planned,
            sigterm_at: Duration::from_secs_f64(planned.sigterm),
            end,
        }
    }

    #[test]
    fn a_hook_answered_and_an_exit_0_pass() {
        // The rollout tier's polite run: preStop 2 s of a 14 s grace period.
        let t = termination(
            14.0,
            Some(2.03),
            PodEnd::Exit(Some(0), Duration::from_secs(7)),
        );
        assert_eq!(
            check_termination(&t, Some(&Ok(200)), 14.0),
            Vec::<String>::new()
        );
        // SIGTERM as the hook answers, SIGKILL after what is left of the grace period: 14 - 2 s.
        assert!((t.planned.sigkill - 14.03).abs() < 1e-9, "{t:?}");
    }

    #[test]
    fn a_hook_unanswered_within_the_grace_period_is_a_failure_of_the_run() {
        // The kubelet carries on: SIGTERM at the grace's end, SIGKILL 2 s later.
        let t = termination(14.0, None, PodEnd::Exit(Some(0), Duration::from_secs(15)));
        assert_eq!(t.planned.sigterm, 14.0);
        assert_eq!(t.planned.sigkill, 16.0);
        let failures = check_termination(&t, None, 14.0);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].starts_with("/prestop did not answer within the grace period of 14 s"),
            "{failures:?}"
        );
        assert!(failures[0].contains("SIGTERM at 14.00 s"), "{failures:?}");
        // Answered, but only after the grace's end (released by the SIGTERM): still a failure.
        let late = termination(
            14.0,
            Some(14.2),
            PodEnd::Exit(Some(0), Duration::from_secs(15)),
        );
        let failures = check_termination(&late, Some(&Ok(200)), 14.0);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].contains("it answered Ok(200) after"),
            "{failures:?}"
        );
    }

    #[test]
    fn a_bad_answer_a_bad_exit_and_the_kubelets_sigkill_are_failures() {
        let t = termination(
            14.0,
            Some(2.0),
            PodEnd::Exit(Some(1), Duration::from_secs(5)),
        );
        assert_eq!(
            check_termination(&t, Some(&Ok(500)), 14.0),
            [
                "/prestop answered Ok(500) at 2.00 s".to_string(),
                "pod A did not exit 0: exit 1 at 5.00 s".to_string()
            ]
        );
        let t = termination(14.0, Some(2.0), PodEnd::Killed(Duration::from_secs(14)));
        let failures = check_termination(&t, Some(&Ok(200)), 14.0);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0]
                .starts_with("pod A was still running when the kubelet's SIGKILL came at 14.00 s"),
            "{failures:?}"
        );
    }
}
