//! Counters kept by the loop and their Prometheus text rendering for `GET /metrics`.
//!
//! Plain integers updated in place: the loop is single-threaded, so no atomics are needed.

use std::fmt::Write as _;

use crate::app::lifecycle::Phase;
use crate::base::memory::MemoryReading;
use crate::net::Listener;
use crate::protocol::websocket::WsCounters;

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// `MAX_CONNECTIONS` (or the admin cap) reached: answered 503.
    MaxConnections,
    /// The process ran out of descriptors (EMFILE/ENFILE): accepted on the spare and closed.
    FdExhausted,
}

/// Connections open right now, by kind (computed by the loop when rendering).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenConnections {
    /// Public-port connections speaking HTTP.
    pub http: usize,
    /// Public-port connections upgraded to WebSocket.
    pub websocket: usize,
    /// Admin-port connections.
    pub admin: usize,
}

/// What `/metrics` reports besides the counters: the state of the moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// The lifecycle phase.
    pub phase: Phase,
    /// Connections open, by kind.
    pub open: OpenConnections,
    /// Public connections served at once.
    pub max_connections: usize,
    /// Drain closes (1012) sent so far.
    pub drain_closes: usize,
    /// The drain that runs (`full` or `short`), once draining.
    pub drain_plan: Option<&'static str>,
    /// The longest a drain may take, from the signal to the exit.
    pub drain_deadline_secs: f64,
    /// Time since the drain began (0 before).
    pub drain_elapsed_secs: f64,
    /// Since the process started.
    pub uptime_secs: f64,
    /// The process's and its container's memory.
    pub memory: MemoryReading,
}

/// The loop's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted, `[public, admin]`.
    pub accepted: [u64; 2],
    /// Refused because a cap was reached.
    pub rejected_max_connections: u64,
    /// Refused because descriptors ran out.
    pub rejected_fd_exhausted: u64,
    /// Requests answered, by status code (a short list, linear search is fine).
    requests: Vec<(u16, u64)>,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// The WebSocket counters (the protocol's and the service's).
    pub ws: WsCounters,
}

impl Metrics {
    /// Counts an accepted connection.
    pub fn accepted(&mut self, listener: Listener) {
        self.accepted[listener as usize] += 1;
    }

    /// Counts a refused connection.
    pub fn rejected(&mut self, reason: RejectReason) {
        match reason {
            RejectReason::MaxConnections => self.rejected_max_connections += 1,
            RejectReason::FdExhausted => self.rejected_fd_exhausted += 1,
        }
    }

    /// Counts an answered request.
    pub fn request(&mut self, status: u16) {
        match self.requests.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => {
                self.requests.push((status, 1));
                self.requests.sort_unstable();
            }
        }
    }

    /// Requests answered with this status.
    pub fn requests_with_status(&self, status: u16) -> u64 {
        self.requests
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    }

    /// Requests answered in total.
    pub fn requests_total(&self) -> u64 {
        self.requests.iter().map(|(_, n)| n).sum()
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: &Gauges) -> String {
        let Gauges {
            phase,
            open,
            drain_closes,
            drain_plan,
            uptime_secs,
            ..
        } = *gauges;
        let mut out = String::with_capacity(4096);
        let o = &mut out;
        family(
            o,
            "wsdrain_phase",
            "gauge",
            "1 for the current lifecycle phase (serving, prestop, draining).",
        );
        for p in Phase::ALL {
            sample(
                o,
                "wsdrain_phase",
                &format!("phase=\"{}\"", p.as_str()),
                u8::from(p == phase),
            );
        }
        family(
            o,
            "wsdrain_connections_open",
            "gauge",
            "Connections open now, by kind.",
        );
        for (kind, n) in [
            ("http", open.http),
            ("websocket", open.websocket),
            ("admin", open.admin),
        ] {
            sample(
                o,
                "wsdrain_connections_open",
                &format!("kind=\"{kind}\""),
                n,
            );
        }
        family(
            o,
            "wsdrain_connections_accepted_total",
            "counter",
            "Connections accepted, by listener.",
        );
        for listener in [Listener::Public, Listener::Admin] {
            let labels = format!("listener=\"{}\"", listener.as_str());
            sample(
                o,
                "wsdrain_connections_accepted_total",
                &labels,
                self.accepted[listener as usize],
            );
        }
        family(
            o,
            "wsdrain_connections_rejected_total",
            "counter",
            "Connections refused at accept, by reason.",
        );
        sample(
            o,
            "wsdrain_connections_rejected_total",
            "reason=\"max_connections\"",
            self.rejected_max_connections,
        );
        sample(
            o,
            "wsdrain_connections_rejected_total",
            "reason=\"fd_exhausted\"",
            self.rejected_fd_exhausted,
        );
        family(
            o,
            "wsdrain_http_requests_total",
            "counter",
            "HTTP requests answered, by status code.",
        );
        for (status, n) in &self.requests {
            sample(
                o,
                "wsdrain_http_requests_total",
                &format!("status=\"{status}\""),
                n,
            );
        }
        let counters: [(&str, &str, u64); 19] = [
            (
                "wsdrain_received_bytes_total",
                "Bytes read from clients.",
                self.bytes_in,
            ),
            (
                "wsdrain_sent_bytes_total",
                "Bytes written to clients.",
                self.bytes_out,
            ),
            (
                "wsdrain_websocket_upgrades_total",
                "WebSocket upgrades completed.",
                self.ws.upgrades,
            ),
            (
                "wsdrain_websocket_frames_received_total",
                "WebSocket frames received.",
                self.ws.frames_in,
            ),
            (
                "wsdrain_websocket_messages_received_total",
                "WebSocket messages received.",
                self.ws.messages_in,
            ),
            (
                "wsdrain_websocket_messages_sent_total",
                "WebSocket replies sent.",
                self.ws.messages_out,
            ),
            (
                "wsdrain_websocket_received_payload_bytes_total",
                "Payload bytes of WebSocket messages received.",
                self.ws.payload_bytes_in,
            ),
            (
                "wsdrain_websocket_sent_payload_bytes_total",
                "Payload bytes of WebSocket replies sent.",
                self.ws.payload_bytes_out,
            ),
            (
                "wsdrain_websocket_messages_after_close_total",
                "Messages that arrived after the server's close frame (not answered; clients re-send them).",
                self.ws.messages_after_close,
            ),
            (
                "wsdrain_websocket_alive_sent_total",
                "Alive messages sent.",
                self.ws.alive_sent,
            ),
            (
                "wsdrain_websocket_alive_late_total",
                "Alive turns that came more than one ALIVE_INTERVAL late (the message went out late, or was skipped for a client still behind): the loop is not keeping up with the fan-out.",
                self.ws.alive_late,
            ),
            (
                "wsdrain_websocket_clean_closes_total",
                "Close handshakes completed.",
                self.ws.clean_closes,
            ),
            (
                "wsdrain_websocket_close_timeouts_total",
                "Close frames the client did not answer within CLOSE_TIMEOUT.",
                self.ws.close_timeouts,
            ),
            (
                "wsdrain_websocket_ping_timeouts_total",
                "Clients dropped for not answering a ping within PONG_TIMEOUT.",
                self.ws.ping_timeouts,
            ),
            (
                "wsdrain_websocket_not_reading_drops_total",
                "WebSockets dropped because the client took nothing for PONG_TIMEOUT while output waited for it (a close 1008 is attempted on the way out, not counted in closes_total).",
                self.ws.not_reading_drops,
            ),
            (
                "wsdrain_websocket_age_closes_total",
                "WebSockets that reached MAX_CONNECTION_AGE (told to move: a goaway notice, or close 1012 when HANDOVER_TIMEOUT is 0).",
                self.ws.age_closes,
            ),
            (
                "wsdrain_websocket_handover_notices_total",
                "Goaway notices sent (at the drain time or MAX_CONNECTION_AGE): the client may move before the close.",
                self.ws.handover_notices,
            ),
            (
                "wsdrain_websocket_handover_left_total",
                "Clients that closed their WebSocket themselves after a goaway notice.",
                self.ws.handover_left,
            ),
            (
                "wsdrain_websocket_handover_forced_total",
                "WebSockets closed with 1012 because HANDOVER_TIMEOUT passed after their goaway notice.",
                self.ws.handover_forced,
            ),
        ];
        for (name, help, value) in counters {
            family(o, name, "counter", help);
            sample(o, name, "", value);
        }
        family(
            o,
            "wsdrain_websocket_closes_total",
            "counter",
            "WebSocket close frames, by code and sender: the server's counted when queued (behind any reply still queued), the client's when received.",
        );
        for (code, by_server, n) in self.ws.close_series() {
            let by = if *by_server { "server" } else { "client" };
            let code = if *code >= 3000 {
                format!("{}xxx", code / 1000)
            } else {
                code.to_string()
            };
            sample(
                o,
                "wsdrain_websocket_closes_total",
                &format!("code=\"{code}\",by=\"{by}\""),
                n,
            );
        }
        family(
            o,
            "wsdrain_drain_close_frames_sent",
            "gauge",
            "WebSockets given their drain close (1012) so far (queued behind any reply still queued); with the open WebSocket gauge it shows drain progress.",
        );
        sample(o, "wsdrain_drain_close_frames_sent", "", drain_closes);
        family(
            o,
            "wsdrain_drain_plan",
            "gauge",
            "1 for the drain that runs: full (the configured one) or short (shrunk to the grace period left: SIGTERM came while /prestop waited, or TERMINATION_GRACE_PERIOD leaves less); 0 for both before the signal.",
        );
        for plan in ["full", "short"] {
            sample(
                o,
                "wsdrain_drain_plan",
                &format!("plan=\"{plan}\""),
                u8::from(drain_plan == Some(plan)),
            );
        }
        family(
            o,
            "wsdrain_uptime_seconds",
            "gauge",
            "Seconds since the process started.",
        );
        sample(o, "wsdrain_uptime_seconds", "", format!("{uptime_secs:.3}"));
        render_limits(o, gauges);
        out
    }
}

/// The gauges an operator compares with limits: connections against `MAX_CONNECTIONS`, the
/// drain against its deadline, memory against the container's limit, and whether alive
/// messages keep their interval.
fn render_limits(o: &mut String, g: &Gauges) {
    let seconds = |s: f64| format!("{s:.3}");
    let mut gauges = vec![
        (
            "wsdrain_max_connections",
            "Public connections served at once (MAX_CONNECTIONS); more are refused with 503.",
            g.max_connections.to_string(),
        ),
        (
            "wsdrain_drain_deadline_seconds",
            "The longest a drain may take, from the signal to the exit: DRAIN_WINDOW + HANDOVER_TIMEOUT + CLOSE_TIMEOUT + 2 s, or the short drain's length once one runs.",
            seconds(g.drain_deadline_secs),
        ),
        (
            "wsdrain_drain_elapsed_seconds",
            "Seconds since the drain began (0 before the signal).",
            seconds(g.drain_elapsed_secs),
        ),
    ];
    let memory = [
        (
            "wsdrain_resident_memory_bytes",
            "The process's resident memory (VmRSS).",
            g.memory.resident_bytes,
        ),
        (
            "wsdrain_cgroup_memory_bytes",
            "The container's memory use (cgroup memory.current: what the OOM killer compares with the limit; includes socket buffers charged to it).",
            g.memory.cgroup_bytes,
        ),
        (
            "wsdrain_cgroup_memory_limit_bytes",
            "The container's memory limit (cgroup memory.max); absent when unlimited.",
            g.memory.cgroup_limit_bytes,
        ),
    ];
    for (name, help, value) in memory {
        if let Some(bytes) = value {
            gauges.push((name, help, bytes.to_string()));
        }
    }
    for (name, help, value) in gauges {
        family(o, name, "gauge", help);
        sample(o, name, "", value);
    }
}

/// Writes one sample line.
fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    write_sample(out, name, labels, &value);
}

/// One copy of the formatting for every type of value (the binary stays small).
#[inline(never)]
fn write_sample(out: &mut String, name: &str, labels: &str, value: &dyn std::fmt::Display) {
    let _ = if labels.is_empty() {
        writeln!(out, "{name} {value}")
    } else {
        writeln!(out, "{name}{{{labels}}} {value}")
    };
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let mut m = Metrics::default();
        m.accepted(Listener::Public);
        m.request(200);
        m.request(404);
        m.request(200);
        m.rejected(RejectReason::MaxConnections);
        m.ws.alive_late = 2;
        let text = m.render(&Gauges {
            phase: Phase::PreStop,
            open: OpenConnections {
                http: 3,
                websocket: 2,
                admin: 1,
            },
            max_connections: 10_000,
            drain_closes: 4,
            drain_plan: Some("short"),
            drain_deadline_secs: 22.0,
            drain_elapsed_secs: 0.0,
            uptime_secs: 1.5,
            memory: MemoryReading {
                resident_bytes: Some(4096),
                cgroup_bytes: Some(8192),
                cgroup_limit_bytes: None,
            },
        });
        for line in [
            "wsdrain_phase{phase=\"prestop\"} 1",
            "wsdrain_phase{phase=\"serving\"} 0",
            "wsdrain_connections_open{kind=\"http\"} 3",
            "wsdrain_connections_accepted_total{listener=\"public\"} 1",
            "wsdrain_connections_rejected_total{reason=\"max_connections\"} 1",
            "wsdrain_http_requests_total{status=\"200\"} 2",
            "wsdrain_http_requests_total{status=\"404\"} 1",
            "# TYPE wsdrain_sent_bytes_total counter",
            "wsdrain_drain_close_frames_sent 4",
            "wsdrain_drain_plan{plan=\"short\"} 1",
            "wsdrain_drain_plan{plan=\"full\"} 0",
            "wsdrain_max_connections 10000",
            "wsdrain_drain_deadline_seconds 22.000",
            "wsdrain_drain_elapsed_seconds 0.000",
            "wsdrain_resident_memory_bytes 4096",
            "wsdrain_cgroup_memory_bytes 8192",
            "wsdrain_websocket_alive_late_total 2",
            "wsdrain_connections_open{kind=\"websocket\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample belongs to a family announced with HELP and TYPE.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
        assert_eq!(m.requests_total(), 3);
        // An unlimited container has no limit series (a 0 would read as "over the limit").
        assert!(
            !text.contains("wsdrain_cgroup_memory_limit_bytes "),
            "{text}"
        );
    }
}
