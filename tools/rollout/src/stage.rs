//! The stage every ending plays on: the pods' settings, nginx in front of pod A, the fleet
//! connected to it through nginx, and pod B started and ready beside it.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use testkit::server::Server;

use crate::cluster::{Nginx, http_get, start_pod};
use crate::fleet::{Fleet, FleetConfig, Kind};
use crate::options::Options;

/// The clients' reconnect backoff cap, in seconds (also a term of the endings' bounds).
pub const BACKOFF_CAP_SECS: f64 = 5.0;

pub fn secs(s: f64) -> String {
    format!("{s}s")
}

/// The environment of both pods: the timings of the options, logs at info.
pub fn pod_env(o: &Options) -> HashMap<String, String> {
    [
        ("PRESTOP_DELAY", secs(o.prestop_delay)),
        ("DRAIN_WINDOW", secs(o.drain_window)),
        ("HANDOVER_TIMEOUT", secs(o.handover_timeout)),
        ("CLOSE_TIMEOUT", secs(o.close_timeout)),
        ("TERMINATION_GRACE_PERIOD", secs(o.grace)),
        ("ALIVE_INTERVAL", secs(o.alive_interval)),
        (
            "STATIC_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../static").to_string(),
        ),
        ("RUST_LOG", "info".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// GKE's drainingTimeoutSec: the load balancer must not cut a WebSocket before the server has
/// closed it, at the latest its drain time + the handover + the close handshake.
pub fn draining_timeout(o: &Options) -> Duration {
    Duration::from_secs_f64(
        o.prestop_delay + o.drain_window + o.handover_timeout + o.close_timeout + 1.0,
    )
}

/// nginx in front of `upstream`, its files under `dir/nginx`.
pub fn start_nginx(o: &Options, upstream: &Server, dir: &Path) -> Result<Nginx, String> {
    Nginx::start(
        &dir.join("nginx"),
        upstream.public(),
        draining_timeout(o),
        o.clients,
    )
}

/// The fleet of the options, through `nginx`.
pub fn fleet(o: &Options, nginx: &Nginx) -> Result<Fleet, String> {
    Fleet::new(FleetConfig {
        addrs: nginx.listens().to_vec(),
        clients: o.clients,
        old_clients: o.old_clients(),
        send_interval: o.send_interval,
        in_flight: 4,
        restart_delay: (Duration::from_millis(200), Duration::from_millis(1000)),
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_secs_f64(BACKOFF_CAP_SECS),
        stable_after: Duration::from_secs(30),
        close_wait: Duration::from_secs_f64(o.close_timeout + 5.0),
        handshake_timeout: Duration::from_secs_f64(o.handshake_timeout),
    })
    .map_err(|e| e.to_string())
}

/// Runs the fleet until every client is on pod A (bounded); returns when they were.
pub fn connect_all(fleet: &mut Fleet, o: &Options) -> Result<Instant, String> {
    let clients = o.clients;
    let connect_by = Duration::from_secs(30) + Duration::from_millis(clients as u64 * 2);
    fleet.run(connect_by, |f| f.on_instance("pod-a") == clients)?;
    if fleet.on_instance("pod-a") != clients {
        return Err(format!(
            "only {} of {clients} clients connected to pod A",
            fleet.on_instance("pod-a")
        ));
    }
    println!(
        "{clients} clients ({} handover-aware, {} old) connected through nginx to pod A; sending \
         a message every {:?} each",
        fleet.count(Kind::Aware),
        fleet.count(Kind::Old),
        o.send_interval
    );
    Ok(Instant::now())
}

/// Starts pod B and runs the fleet until its `/readyz` says 200 (bounded).
pub fn start_ready(
    o: &Options,
    env: &HashMap<String, String>,
    dir: &Path,
    fleet: &mut Fleet,
) -> Result<Server, String> {
    let b = start_pod(&o.server, "pod-b", env, dir)?;
    let ready_by = Instant::now() + Duration::from_secs(10);
    while http_get(b.admin(), "/readyz", Duration::from_secs(2)) != Ok(200) {
        if Instant::now() > ready_by {
            return Err("pod B never became ready".into());
        }
        fleet.run(Duration::from_millis(20), |_| false)?;
    }
    Ok(b)
}

/// The end of an ending, once pod A is gone: the fleet runs until every client is on pod B (at
/// most `bound` s, the ending's own bound if it has one, + 3 alive intervals + 10 s), then
/// stops sending and runs until every message is answered (at most 10 s). Returns the end of
/// the measurement: a gap still open then counts up to it.
pub fn settle_on_b(fleet: &mut Fleet, o: &Options, bound: f64) -> Result<Instant, String> {
    let clients = o.clients;
    let settle = Duration::from_secs_f64(bound + o.alive_interval * 3.0 + 10.0);
    fleet.run(settle, |f| f.on_instance("pod-b") == clients)?;
    fleet.sending = false;
    fleet.run(Duration::from_secs(10), |f| f.unanswered() == 0)?;
    Ok(Instant::now())
}
