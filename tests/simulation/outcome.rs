//! What a finished run leaves: the fingerprint of everything that happened (for the replay
//! check) and the paths it reached (summed over the seeds, to show the simulation's reach).

use wsdrain::base::time::Millis;

/// What a finished run leaves: a fingerprint of everything that happened, for the replay check,
/// and what it reached.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) steps: usize,
    pub(crate) exited_at: Millis,
    pub(crate) fingerprint: u64,
    pub(crate) reached: Reach,
}

/// Counts of the paths a run went through, summed over the seeds to show the simulation's
/// reach (a path no seed reaches is a path the simulation does not test).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reach {
    pub(crate) requests: u64,
    pub(crate) upgrades: u64,
    pub(crate) messages: u64,
    pub(crate) drain_closes: u64,
    pub(crate) refused_full: u64,
    pub(crate) refused_no_descriptors: u64,
    /// Accepted sockets the poll refused (answered 503).
    pub(crate) refused_registrations: u64,
    pub(crate) header_timeouts: u64,
    pub(crate) ping_timeouts: u64,
    pub(crate) close_timeouts: u64,
    pub(crate) age_closes: u64,
    pub(crate) handover_notices: u64,
    pub(crate) handover_left: u64,
    pub(crate) handover_forced: u64,
    pub(crate) reruns: u64,
    pub(crate) prestop_waits: u64,
    /// Drains shrunk because SIGTERM found /prestop waiting, or the known grace left less.
    pub(crate) short_drains: u64,
    pub(crate) grace_left_drains: u64,
    /// Output still being sent when the drain deadline ended the process: HTTP answers, and
    /// WebSockets' replies and close frames behind a full pipe.
    pub(crate) answers_cut: u64,
    pub(crate) second_signals: u64,
    /// Steps across the wrap of the low 32 bits of the clock with WebSockets open.
    pub(crate) wraps_with_websockets: u64,
}

impl Reach {
    pub(crate) fn add(&mut self, o: Reach) {
        self.requests += o.requests;
        self.upgrades += o.upgrades;
        self.messages += o.messages;
        self.drain_closes += o.drain_closes;
        self.refused_full += o.refused_full;
        self.refused_no_descriptors += o.refused_no_descriptors;
        self.refused_registrations += o.refused_registrations;
        self.header_timeouts += o.header_timeouts;
        self.ping_timeouts += o.ping_timeouts;
        self.close_timeouts += o.close_timeouts;
        self.age_closes += o.age_closes;
        self.handover_notices += o.handover_notices;
        self.handover_left += o.handover_left;
        self.handover_forced += o.handover_forced;
        self.reruns += o.reruns;
        self.prestop_waits += o.prestop_waits;
        self.short_drains += o.short_drains;
        self.grace_left_drains += o.grace_left_drains;
        self.answers_cut += o.answers_cut;
        self.second_signals += o.second_signals;
        self.wraps_with_websockets += o.wraps_with_websockets;
    }
}

pub(crate) struct Fingerprint(pub(crate) u64);

impl Fingerprint {
    pub(crate) fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
