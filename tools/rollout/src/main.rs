//! `rollout`: plays the ways a pod ends on GKE (a rolling update, a Spot VM's preemption, an
//! eviction, a kill, a freeze) on 127.0.0.1 with real parts, and checks that no message is lost.
//!
//! - The load balancer is nginx (its own config and prefix in a temp dir). Removing a pod from
//!   the endpoints = rewriting the upstream and reloading: old workers keep the upgraded
//!   connections to the old pod, as Google's load balancer does, until they close or
//!   `worker_shutdown_timeout` (GKE's `connectionDraining.drainingTimeoutSec`) passes.
//! - The kubelet and endpoints controller are this program: pod A serves the clients; pod B is
//!   started and awaited until `/readyz` says 200; then pod A ends, one way per `--endings`:
//!   the polite rollout ([`polite`]), or without the whole grace period ([`impolite`]); both
//!   with the kubelet's timings in [`kubelet`]. The endings' figures, side by side:
//!   [`endings_table`].
//! - The clients are a fleet of reconnecting WebSocket clients ([`fleet`]), each sending
//!   numbered messages during the whole rollout.
//!
//! - With `--prometheus`, a real Prometheus scrapes both pods each second ([`prometheus`]); after
//!   the run the harness reads the series back and checks the story they tell against what the
//!   clients saw ([`story`]), and can draw it (`--svg`).
//!
//! Exit code 0 when every check passes, 1 when one fails, 2 when the harness itself cannot run.

mod cluster;
mod dashboard;
mod ending;
mod endings_table;
mod fleet;
mod impolite;
mod kubelet;
mod metrics_check;
mod options;
mod picture;
mod polite;
mod prometheus;
mod report;
mod schedule;
mod stage;
mod story;

use std::path::Path;
use std::process::ExitCode;

use ending::{Ending, Outcome};
use options::{Options, Request, parse_options};

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(Request::Run(o)) => *o,
        Ok(Request::Help) => {
            println!("{}", options::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let dir = std::env::temp_dir().join(format!("wsdrain-rollout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("rollout: {e}");
        return ExitCode::from(2);
    }
    let outcome = run(&options, &dir);
    // A run that did not pass keeps the pods', nginx's and Prometheus's logs: they are what
    // tells why.
    let passed = matches!(&outcome, Ok(failures) if failures.is_empty());
    if options.keep_logs || !passed {
        println!("logs kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match outcome {
        Ok(failures) if failures.is_empty() => {
            println!("rollout: PASS");
            ExitCode::SUCCESS
        }
        Ok(failures) => {
            for f in &failures {
                println!("rollout: FAIL: {f}");
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("rollout: cannot run: {e}");
            ExitCode::from(2)
        }
    }
}
/// Plays each ending in turn, on a stage of its own; the failures, each named by its ending
/// when there are several.
fn run(o: &Options, dir: &Path) -> Result<Vec<String>, String> {
    let mut failures = Vec::new();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for &ending in &o.endings {
        let dir = dir.join(ending.name());
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if o.endings.len() > 1 {
            println!("\n=== {} ===", ending.name());
        }
        let (mut found, outcome) = match ending {
            Ending::Polite => polite::run(o, &dir)?,
            _ => impolite::run(o, ending, &dir)?,
        };
        if o.endings.len() > 1 {
            for f in &mut found {
                *f = format!("{}: {f}", ending.name());
            }
        }
        failures.extend(found);
        outcomes.push(outcome);
    }
    if o.endings != [Ending::Polite] {
        println!();
        endings_table::print(&outcomes);
        println!();
    }
    Ok(failures)
}
