//! What the fleet records: per kind of client, the sockets over time, and per client.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Kind;

#[derive(Debug, Default)]
pub struct Stats {
    pub sent: u64,
    /// Messages sent on a connection that ended (or was closed) before their reply arrived, and
    /// so queued to be sent again on the next one. A message is answered twice only if it was
    /// sent twice, so `duplicates` can never exceed this.
    pub resent: u64,
    pub replies: u64,
    pub duplicates: u64,
    pub mismatches: u64,
    /// Close codes received in close frames; 1006 counts closes without one.
    pub closes: HashMap<u16, u64>,
    /// Closes without a close frame while the given instance was serving the client.
    pub abnormal_by_instance: HashMap<String, u64>,
    /// Times 1012 arrived, and from which instance.
    pub restarts: Vec<(Instant, String)>,
    /// When connections opened (101), after each client's first.
    pub reopened_at: Vec<Instant>,
    pub connect_failures: u64,
    /// Hello messages received, per instance, and the `handover_ms` they announced (the last).
    pub hellos: HashMap<String, (u64, Option<u64>)>,
    /// Goaway notices received: when, and from which instance.
    pub notices: Vec<(Instant, String)>,
    /// Notices not acted on (old clients: all of them; aware: a second notice, or one on a
    /// connection being given up).
    pub notices_ignored: u64,
    /// Notices on the new connection while the old one was still finishing: acted on later.
    pub notices_deferred: u64,
    /// Handovers begun (a second connection opened on a notice).
    pub handovers: u64,
    /// Old connections closed by the client (close 1000) once the new one was open and nothing
    /// was in flight on the old one.
    pub closed_by_client: u64,
    /// Handovers where the new connection failed before it opened while the old one was still
    /// there (the client then stays on the old one: today's path).
    pub handover_failed: u64,
    /// Handovers where the old connection ended before the new one was open.
    pub handover_late: u64,
    /// From a notice to the client's close of that connection (its handover's length).
    pub handover_took: Vec<Duration>,
    /// Closing connections dropped because TCP did not end within `close_wait`.
    pub close_waits_expired: u64,
    /// When a client closed its connection after the handover (each of `closed_by_client`),
    /// and the instance that connection served.
    pub left: Vec<(Instant, String)>,
    /// Open connections given up because nothing arrived for twice the announced alive
    /// interval (a frozen pod, a lost node), per instance. They count among the closes without
    /// a close frame (1006) too.
    pub silent_by_instance: HashMap<String, u64>,
    /// Connections whose upgrade was not answered within the handshake timeout (a frozen pod
    /// accepts TCP into its backlog; the load balancer waits for it). They count among the
    /// connect failures too.
    pub handshake_timeouts: u64,
}

/// The sockets the clients hold over time (from the 101 to the end of TCP, as a server counts
/// its open WebSockets), for comparing with what the servers report in their metrics.
#[derive(Debug, Default)]
pub struct SocketLog {
    /// After each change: when, and the counts then.
    pub changes: Vec<(Instant, Held)>,
    /// When each socket opened (its 101).
    pub opened: Vec<Instant>,
    /// Sockets per server: when a socket learned its server's name (its first message from the
    /// server, the hello, right after the 101), `true`; when such a socket ended, `false`.
    pub by_instance: Vec<(Instant, String, bool)>,
}

/// Sockets held by the fleet at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Sockets open (101 received, TCP not yet ended).
    pub sockets: u32,
    /// Clients that had a socket before and hold none now (between a close and a reconnect).
    pub without: u32,
    /// Clients holding two sockets (a handover in progress).
    pub two: u32,
}

/// What one client saw, for the per-client figures.
#[derive(Debug, Clone)]
pub struct ClientReport {
    pub kind: Kind,
    /// Time with no connection in the Open state, from its first open until the report.
    pub gap: Duration,
    /// Messages it re-sent.
    pub resent: u64,
    /// Messages it numbered that were never answered.
    pub lost: u64,
    /// The instance each of its connections served, in the order they opened (empty while the
    /// connection had said nothing yet).
    pub served: Vec<String>,
    /// Beside `served`: when each connection opened (101) and stopped being Open (`None`:
    /// still open).
    pub spans: Vec<(Instant, Option<Instant>)>,
    /// The instances it received close 1012 from.
    pub restarts_from: Vec<String>,
}
