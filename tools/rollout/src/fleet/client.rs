//! One client's state: its connections (two slots), its numbered messages, its gap.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::{Kind, SLOTS};

#[derive(Debug, Clone, Copy)]
pub(super) enum Phase {
    Connecting,
    /// Upgrade request sent, 101 awaited.
    Handshaking,
    Open,
    /// A close frame was sent (ours, or our answer to the server's); waiting for the end of
    /// TCP until the deadline.
    Closing {
        deadline: Instant,
    },
}

pub(super) struct Conn {
    /// Unique in the fleet: tells a connection from a later one in the same slot.
    pub(super) serial: u64,
    pub(super) stream: TcpStream,
    pub(super) phase: Phase,
    pub(super) inbuf: Vec<u8>,
    pub(super) outbuf: Vec<u8>,
    /// Sent on this connection, not yet answered.
    pub(super) in_flight: VecDeque<u64>,
    pub(super) instance: String,
    /// Index of this connection in the client's `served`, once it opened.
    pub(super) served_index: Option<usize>,
    /// The code of the close frame received, if one was.
    pub(super) close_code: Option<u16>,
    /// Being given up (a notice arrived): no new messages once another connection is open.
    pub(super) retiring: bool,
    /// A notice arrived while the other connection was still finishing.
    pub(super) deferred_notice: bool,
    /// When the notice that began this connection's handover arrived.
    pub(super) notice_at: Option<Instant>,
    pub(super) opened_at: Option<Instant>,
    /// When the connect began: the handshake must be done `handshake_timeout` after it.
    pub(super) started: Instant,
    /// When anything last arrived on it (the 101 to begin with): the silence watch counts
    /// from here.
    pub(super) last_rx: Instant,
    /// When the pending silence-check timer falls due (none pending: `None`).
    pub(super) watch: Option<Instant>,
}

pub(super) struct Client {
    pub(super) kind: Kind,
    pub(super) conns: [Option<Conn>; SLOTS],
    /// With no connection: when to connect.
    pub(super) waiting: Option<Instant>,
    pub(super) next_seq: u64,
    /// Not yet sent (re-sends first, in order).
    pub(super) queue: VecDeque<u64>,
    /// Replies per sequence number.
    pub(super) answered: Vec<u8>,
    pub(super) attempt: u32,
    pub(super) next_send: Instant,
    /// A send timer is pending.
    pub(super) send_armed: bool,
    pub(super) ever_opened: bool,
    /// Since when no connection has been Open (after the first open).
    pub(super) gap_since: Option<Instant>,
    pub(super) gap: Duration,
    pub(super) resent: u64,
    pub(super) served: Vec<String>,
    /// Beside `served`: when each connection opened (101) and when it stopped being Open (a
    /// close frame, its end, or given up).
    pub(super) spans: Vec<(Instant, Option<Instant>)>,
    pub(super) restarts_from: Vec<String>,
    /// The alive interval the servers last announced (`interval_ms` of a hello or alive):
    /// a connection silent for twice this long is given up.
    pub(super) interval: Option<Duration>,
}

impl Client {
    /// The connection in `slot` is no longer Open (a close frame, its end, or given up): its
    /// span ends now.
    pub(super) fn leave_open(&mut self, slot: usize, now: Instant) {
        if let Some(i) = self.conns[slot].as_ref().and_then(|k| k.served_index)
            && let Some(span) = self.spans.get_mut(i)
        {
            span.1.get_or_insert(now);
        }
    }

    pub(super) fn any_open(&self) -> bool {
        self.conns
            .iter()
            .flatten()
            .any(|c| matches!(c.phase, Phase::Open))
    }

    /// The connection new messages go on: the one not being given up when it is open, else
    /// (while the new one is still opening, or could not open) the one being given up.
    pub(super) fn send_slot(&self) -> Option<usize> {
        let open = |s: usize, retiring: bool| {
            self.conns[s]
                .as_ref()
                .is_some_and(|c| matches!(c.phase, Phase::Open) && c.retiring == retiring)
        };
        (0..SLOTS)
            .find(|&s| open(s, false))
            .or_else(|| (0..SLOTS).find(|&s| open(s, true)))
    }

    /// Starts or ends the current gap after a change of phase.
    pub(super) fn update_gap(&mut self, now: Instant) {
        let open = self.any_open();
        match self.gap_since {
            Some(since) if open => {
                self.gap += now.saturating_duration_since(since);
                self.gap_since = None;
            }
            None if !open && self.ever_opened => self.gap_since = Some(now),
            _ => {}
        }
    }

    /// Puts messages back in the queue, keeping the order of sequence numbers.
    pub(super) fn requeue(&mut self, messages: impl IntoIterator<Item = u64>) -> u64 {
        let before = self.queue.len();
        self.queue.extend(messages);
        let n = (self.queue.len() - before) as u64;
        if n > 0 {
            self.queue.make_contiguous().sort_unstable();
            self.resent += n;
        }
        n
    }

    /// Sockets past their 101 (open or closing).
    pub(super) fn held(&self) -> usize {
        self.conns
            .iter()
            .flatten()
            .filter(|k| k.opened_at.is_some())
            .count()
    }

    pub(super) fn lost(&self) -> u64 {
        (0..self.next_seq as usize)
            .filter(|&s| self.answered.get(s).copied().unwrap_or(0) == 0)
            .count() as u64
    }
}
