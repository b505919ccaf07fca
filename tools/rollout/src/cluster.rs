//! The parts of a cluster the rollout needs, as real processes on 127.0.0.1: pods (wsdrain
//! processes, started by the test kit's launcher) and a load balancer (nginx with its own prefix
//! and config in a temp dir).

use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::server::{Launch, Server, signal_pid};

/// Starts a wsdrain process playing the pod `name` (its `INSTANCE_ID`) with `env`, on loopback
/// ephemeral ports, its log copied to `log_dir/NAME.log`; returns once it listens.
pub fn start_pod(
    binary: &Path,
    name: &str,
    env: &HashMap<String, String>,
    log_dir: &Path,
) -> Result<Server, String> {
    Launch::new(binary)
        .name(name)
        .envs(env)
        .env("INSTANCE_ID", name)
        .log_file(log_dir.join(format!("{name}.log")))
        .start()
}

/// One HTTP GET on a fresh connection; returns the status (blocking, bounded).
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16, String> {
    testkit::http::get(addr, path, timeout).map(|answer| answer.status)
}

/// A program: the first of `known` that exists (where Debian's packages put it), else `name`
/// on the `PATH`.
pub fn find_program(known: &[&str], name: &str) -> Option<PathBuf> {
    known
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// nginx as the load balancer: upgraded connections stay on the worker (and so the pod) that
/// proxied them; a reload starts new workers with the new upstream while old workers keep their
/// connections until those close or `worker_shutdown_timeout` (GKE's drainingTimeoutSec) passes.
pub struct Nginx {
    child: Child,
    site: Site,
}

/// What nginx's config is written from, but the upstream, which each reload changes.
struct Site {
    dir: PathBuf,
    /// Every address nginx listens on (the same port on 127.0.0.1, .2, …), for clients to
    /// spread their connections over: see [`addresses_for`].
    listens: Vec<SocketAddr>,
    draining_timeout: Duration,
    /// nginx's workers, sized to the clients and the open-files limit.
    plan: WorkerPlan,
}

impl Nginx {
    pub fn start(
        dir: &Path,
        upstream: SocketAddr,
        draining_timeout: Duration,
        connections: usize,
    ) -> Result<Nginx, String> {
        let binary = find_program(&["/usr/sbin/nginx", "/usr/bin/nginx"], "nginx").ok_or(
            "no nginx in /usr/sbin, /usr/bin or on the PATH (apt-get install -y nginx-light or \
             nginx)",
        )?;
        let port = free_port()?;
        let listen = SocketAddr::from(([127, 0, 0, 1], port));
        let site = Site {
            dir: dir.to_path_buf(),
            listens: (0..addresses_for(connections))
                .map(|i| SocketAddr::from(([127, 0, 0, 1 + i as u8], port)))
                .collect(),
            draining_timeout,
            plan: WorkerPlan::for_clients(connections, hard_open_files_limit()?)?,
        };
        std::fs::create_dir_all(dir.join("logs")).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| e.to_string())?;
        site.write_config(upstream)?;
        let child = Command::new(binary)
            .args([
                "-p",
                &dir.display().to_string(),
                "-c",
                "nginx.conf",
                "-e",
                "logs/error.log",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start nginx: {e}"))?;
        // From here on, dropping it stops nginx, on an early return too.
        let mut nginx = Nginx { child, site };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "nginx did not listen on {listen}; see {}/logs/error.log",
                    dir.display()
                ));
            }
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = nginx.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!("nginx exited ({status}): {err}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }

    /// Every address it listens on, for the clients: see [`addresses_for`].
    pub fn listens(&self) -> &[SocketAddr] {
        &self.site.listens
    }

    /// Points the upstream at another pod and reloads, as the endpoints controller's update
    /// reaches the load balancer.
    pub fn switch_upstream(&self, upstream: SocketAddr) -> Result<(), String> {
        self.site.write_config(upstream)?;
        signal_pid(self.child.id(), "HUP").map_err(|e| format!("nginx reload: {e}"))
    }
}

impl Site {
    /// Writes `nginx.conf` with the pods' `upstream`.
    fn write_config(&self, upstream: SocketAddr) -> Result<(), String> {
        let tmp = self.dir.join("tmp");
        let t = tmp.display();
        let plan = self.plan;
        let config = format!(
            "daemon off;\nmaster_process on;\nworker_processes {workers};\nworker_rlimit_nofile {nofile};\n\
             pid {dir}/nginx.pid;\nerror_log {dir}/logs/error.log warn;\n\
             worker_shutdown_timeout {drain}s;\n\
             events {{ worker_connections {per_worker}; multi_accept on; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n\
             \x20 fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n\
             \x20 map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}\n\
             \x20 upstream pods {{ server {upstream}; }}\n\
             \x20 split_clients \"$remote_addr$remote_port\" $pod_source {{ {sources} }}\n\
             \x20 server {{\n{listens}    location / {{\n\
             \x20     proxy_pass http://pods;\n      proxy_bind $pod_source;\n      proxy_http_version 1.1;\n\
             \x20     proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection $connection_upgrade;\n\
             \x20     proxy_read_timeout 3600s;\n      proxy_send_timeout 3600s;\n      proxy_buffering off;\n    }}\n  }}\n}}\n",
            workers = plan.workers,
            per_worker = plan.worker_connections,
            nofile = plan.nofile,
            dir = self.dir.display(),
            // Rounded up: a fraction cut off would eat into the drain's margin.
            drain = (self.draining_timeout.as_secs_f64().ceil() as u64).max(1),
            listens = self
                .listens
                .iter()
                .map(|a| format!("    listen {a} backlog=4096;\n"))
                .collect::<String>(),
            sources = sources(self.listens.len()),
        );
        std::fs::write(self.dir.join("nginx.conf"), config).map_err(|e| e.to_string())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = signal_pid(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many nginx workers, and how many connections and descriptors each may have.
///
/// Each client costs nginx two descriptors (downstream and upstream socket), plus a few hundred
/// spare for HTTP probes, logs, listeners and the master's channels. nginx inherits this
/// process's hard open-files limit (`RLIMIT_NOFILE`, read at run time), which a process without
/// privileges cannot raise, so a worker's `worker_rlimit_nofile` is kept a margin under it (on
/// a box whose hard limit is 20,000: 19,000). A fixed 2 workers with `worker_connections` =
/// everything breaks at 10,000+ clients under a 20,000 limit: the kernel does not balance
/// accepts evenly (`multi_accept on` lets whichever worker wakes first take the whole backlog),
/// so one worker can need more than 19,000 descriptors and then refuses connections. So the
/// workers are chosen to give each an even share of at most [`WORKER_SHARE`] (less where the
/// limit is lower), and each is allowed twice its share: room for a lopsided balance that
/// still fits under the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerPlan {
    pub workers: usize,
    pub worker_connections: usize,
    pub nofile: usize,
}

/// Largest even share of connections per worker.
pub const WORKER_SHARE: usize = 8_000;
/// The margin between a worker's `worker_rlimit_nofile` and the hard limit, and the
/// descriptors a worker needs besides its connections (logs, listeners, channels): each this
/// many, or a twentieth of the hard limit where that is less.
const NOFILE_MARGIN: usize = 1_000;
/// The smallest even share of connections per worker a plan is made with: below it, the hard
/// limit is too low for a rollout.
const LEAST_SHARE: usize = 256;

impl WorkerPlan {
    /// The plan for `clients` under a hard open-files limit of `hard_limit` descriptors.
    pub fn for_clients(clients: usize, hard_limit: u64) -> Result<WorkerPlan, String> {
        let hard = usize::try_from(hard_limit).unwrap_or(usize::MAX);
        let margin = (hard / 20).min(NOFILE_MARGIN);
        // A worker's descriptors and, of those, its connections.
        let cap = hard - margin;
        let most = cap - margin;
        let largest_share = (most / 2).min(WORKER_SHARE);
        if largest_share < LEAST_SHARE {
            return Err(format!(
                "the hard open-files limit ({hard_limit}) is too low to give nginx's workers \
                 {LEAST_SHARE} connections each with room to spare: raise it (ulimit -Hn)"
            ));
        }
        let total = clients * 2 + 512;
        let workers = total.div_ceil(largest_share).max(2);
        let share = total.div_ceil(workers);
        let worker_connections = (share * 2).min(most);
        Ok(WorkerPlan {
            workers,
            worker_connections,
            nofile: worker_connections + margin,
        })
    }
}

/// This process's hard open-files limit (`RLIMIT_NOFILE`), which nginx inherits: `u64::MAX`
/// when unlimited.
fn hard_open_files_limit() -> Result<u64, String> {
    let (_soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map_err(|e| format!("the open-files limit: {e}"))?;
    Ok(hard)
}

/// How many loopback addresses the clients and nginx spread their connections over: one per
/// 1,000 clients, at most 16. Linux picks a connect's local port by searching the ephemeral
/// range (~28k ports) for one not yet used towards the same destination address and port; a
/// client given up leaves a TIME_WAIT on its port for a minute, so a freeze of 10,000 clients
/// (a give-up, then handshake timeouts, each a new port) filled the range towards nginx and
/// each connect searched it: one turn of the clients' loop took 6.8 s. Each address of nginx
/// (a destination) and each source address of nginx's connects to the pods has a range of its
/// own.
pub fn addresses_for(clients: usize) -> usize {
    clients.div_ceil(1000).clamp(1, 16)
}

/// nginx's `split_clients` entries: the source addresses of its connects to the pods,
/// 127.0.1.1 … 127.0.1.n, an even share each.
fn sources(n: usize) -> String {
    // nginx takes percentages with at most two decimals; the last takes the rest.
    let hundredths = 10_000 / n;
    let share = format!("{}.{:02}", hundredths / 100, hundredths % 100);
    (0..n)
        .map(|i| {
            let address = format!("127.0.1.{}", i + 1);
            if i + 1 == n {
                format!("* {address};")
            } else {
                format!("{share}% {address};")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_fits_its_descriptors_with_room_for_an_uneven_balance() {
        let plan = |clients, limit| WorkerPlan::for_clients(clients, limit).unwrap();
        // Under a hard limit of 20,000, the plan the harness was tuned with.
        assert_eq!(
            plan(200, 20_000),
            WorkerPlan {
                workers: 2,
                worker_connections: 912,
                nofile: 1_912
            }
        );
        assert_eq!(
            plan(10_000, 20_000),
            WorkerPlan {
                workers: 3,
                worker_connections: 13_676,
                nofile: 14_676
            }
        );
        assert_eq!(plan(15_000, 20_000).workers, 4);
        for limit in [1_024, 4_096, 20_000, 65_536, 1 << 20, u64::MAX] {
            for clients in [1, 200, 1_000, 5_000, 9_999, 10_000, 12_000, 15_000] {
                let p = plan(clients, limit);
                let total = clients * 2 + 512;
                let share = total.div_ceil(p.workers);
                assert!(p.workers >= 2);
                assert!(share <= WORKER_SHARE, "{limit} {clients}: {p:?}");
                // Twice the even share, and the whole load fits in the workers together twice.
                assert!(
                    p.worker_connections >= 2 * share,
                    "{limit} {clients}: {p:?}"
                );
                // Under the limit with a margin, and room besides the connections.
                let margin = (limit / 20).min(NOFILE_MARGIN as u64) as usize;
                assert!(
                    p.nofile as u64 <= limit - margin as u64,
                    "{limit} {clients}: {p:?}"
                );
                assert!(p.nofile >= p.worker_connections + margin);
                // Above 20,000 the limit does not matter: the share does.
                if limit >= 20_000 {
                    assert_eq!(p, plan(clients, 20_000), "{limit} {clients}");
                }
            }
        }
        // A lower limit: more workers, each with fewer connections.
        assert_eq!(
            plan(200, 1_024),
            WorkerPlan {
                workers: 2,
                worker_connections: 912,
                nofile: 963
            }
        );
        assert_eq!(
            plan(2_000, 4_096),
            WorkerPlan {
                workers: 3,
                worker_connections: 3_008,
                nofile: 3_212
            }
        );
        assert_eq!(plan(2_000, 20_000).workers, 2);
        assert!(WorkerPlan::for_clients(200, 256).is_err());
    }

    #[test]
    fn a_fractional_draining_timeout_is_rounded_up_not_cut() {
        let dir = std::env::temp_dir().join(format!("rollout-site-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let site = Site {
            dir: dir.clone(),
            listens: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            draining_timeout: Duration::from_secs_f64(10.5),
            plan: WorkerPlan::for_clients(1, 20_000).unwrap(),
        };
        site.write_config(SocketAddr::from(([127, 0, 0, 1], 8081)))
            .unwrap();
        let config = std::fs::read_to_string(dir.join("nginx.conf")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(config.contains("worker_shutdown_timeout 11s;"), "{config}");
    }

    #[test]
    fn connections_are_spread_over_a_loopback_address_per_1000_clients() {
        assert_eq!(addresses_for(200), 1);
        assert_eq!(addresses_for(10_000), 10);
        assert_eq!(addresses_for(15_000), 15);
        assert_eq!(sources(1), "* 127.0.1.1;");
        assert_eq!(
            sources(3),
            "33.33% 127.0.1.1; 33.33% 127.0.1.2; * 127.0.1.3;"
        );
    }
}
