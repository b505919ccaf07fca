//! Counters kept by the loop and their Prometheus text rendering for `GET /metrics`.
//!
//! Plain integers updated in place: the loop is single-threaded, so no atomics are needed.

use std::fmt::Write as _;

use crate::lifecycle::Phase;

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// `MAX_CONNECTIONS` (or the admin cap) reached: answered 503.
    MaxConnections,
    /// The process ran out of descriptors (EMFILE/ENFILE): accepted on the spare and closed.
    FdExhausted,
}

/// Which listener a connection came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The public port.
    Public,
    /// The admin port.
    Admin,
}

impl Side {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Public => "public",
            Side::Admin => "admin",
        }
    }
}

/// Connections open right now, by kind (computed by the loop when rendering).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenConnections {
    /// Public-port connections speaking HTTP.
    pub http: usize,
    /// Admin-port connections.
    pub admin: usize,
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
}

impl Metrics {
    /// Counts an accepted connection.
    pub fn accepted(&mut self, side: Side) {
        self.accepted[side as usize] += 1;
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

    /// Requests answered in total.
    pub fn requests_total(&self) -> u64 {
        self.requests.iter().map(|(_, n)| n).sum()
    }

    /// The Prometheus text exposition.
    pub fn render(&self, phase: Phase, open: OpenConnections, uptime_secs: f64) -> String {
        let mut out = String::with_capacity(2048);
        family(
            &mut out,
            "wsdrain_phase",
            "gauge",
            "1 for the current lifecycle phase (serving, prestop, draining).",
        );
        for p in Phase::ALL {
            let _ = writeln!(
                out,
                "wsdrain_phase{{phase=\"{}\"}} {}",
                p.as_str(),
                u8::from(p == phase)
            );
        }
        family(
            &mut out,
            "wsdrain_connections_open",
            "gauge",
            "Connections open now, by kind.",
        );
        let _ = writeln!(
            out,
            "wsdrain_connections_open{{kind=\"http\"}} {}",
            open.http
        );
        let _ = writeln!(
            out,
            "wsdrain_connections_open{{kind=\"admin\"}} {}",
            open.admin
        );
        family(
            &mut out,
            "wsdrain_connections_accepted_total",
            "counter",
            "Connections accepted, by listener.",
        );
        for side in [Side::Public, Side::Admin] {
            let _ = writeln!(
                out,
                "wsdrain_connections_accepted_total{{listener=\"{}\"}} {}",
                side.as_str(),
                self.accepted[side as usize]
            );
        }
        family(
            &mut out,
            "wsdrain_connections_rejected_total",
            "counter",
            "Connections refused at accept, by reason.",
        );
        let _ = writeln!(
            out,
            "wsdrain_connections_rejected_total{{reason=\"max_connections\"}} {}",
            self.rejected_max_connections
        );
        let _ = writeln!(
            out,
            "wsdrain_connections_rejected_total{{reason=\"fd_exhausted\"}} {}",
            self.rejected_fd_exhausted
        );
        family(
            &mut out,
            "wsdrain_http_requests_total",
            "counter",
            "HTTP requests answered, by status code.",
        );
        for (status, n) in &self.requests {
            let _ = writeln!(
                out,
                "wsdrain_http_requests_total{{status=\"{status}\"}} {n}"
            );
        }
        family(
            &mut out,
            "wsdrain_received_bytes_total",
            "counter",
            "Bytes read from clients.",
        );
        let _ = writeln!(out, "wsdrain_received_bytes_total {}", self.bytes_in);
        family(
            &mut out,
            "wsdrain_sent_bytes_total",
            "counter",
            "Bytes written to clients.",
        );
        let _ = writeln!(out, "wsdrain_sent_bytes_total {}", self.bytes_out);
        family(
            &mut out,
            "wsdrain_uptime_seconds",
            "gauge",
            "Seconds since the process started.",
        );
        let _ = writeln!(out, "wsdrain_uptime_seconds {uptime_secs:.3}");
        out
    }
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
        m.accepted(Side::Public);
        m.request(200);
        m.request(404);
        m.request(200);
        m.rejected(RejectReason::MaxConnections);
        let text = m.render(Phase::PreStop, OpenConnections { http: 3, admin: 1 }, 1.5);
        for line in [
            "wsdrain_phase{phase=\"prestop\"} 1",
            "wsdrain_phase{phase=\"serving\"} 0",
            "wsdrain_connections_open{kind=\"http\"} 3",
            "wsdrain_connections_accepted_total{listener=\"public\"} 1",
            "wsdrain_connections_rejected_total{reason=\"max_connections\"} 1",
            "wsdrain_http_requests_total{status=\"200\"} 2",
            "wsdrain_http_requests_total{status=\"404\"} 1",
            "# TYPE wsdrain_sent_bytes_total counter",
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
    }
}
