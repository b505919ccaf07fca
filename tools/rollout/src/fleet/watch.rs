//! The client's watch on its connections, for pods that end without a word: a handshake that is
//! not answered in time, and an Open connection gone silent.
//!
//! - **Handshake**: a connect whose upgrade has had no answer (101 or another status)
//!   `handshake_timeout` after it began is given up, as a failed connect (backoff). A frozen pod
//!   still completes TCP handshakes into its listen backlog, and the load balancer in front
//!   waits for its answer far longer than a user would.
//! - **Silence**: the servers announce their alive interval (`interval_ms` of the hello and of
//!   every alive message); an Open connection on which nothing has arrived for twice that is
//!   given up: the client drops it (no close handshake: nobody would answer), what was in flight
//!   on it goes to the other connection or the next one, and it reconnects (backoff). The watch
//!   starts at the 101 with the interval last announced (by any server), so a connection whose
//!   server falls silent before its hello is caught too; with no interval known yet, it starts
//!   at the first announcement.
//!
//! Timers are never cancelled: each connection has at most one silence check pending
//! (`Conn::watch`); when it falls due and something arrived meanwhile, it is set again for the
//! new deadline.

use std::cmp::Reverse;
use std::time::Instant;

use super::{Fleet, Phase, SLOTS};

impl Fleet {
    /// Sets the silence check of the connection in `slot` for its deadline (the last arrival
    /// plus twice the interval), unless one is pending for no later.
    pub(super) fn arm_watch(&mut self, id: usize, slot: usize) {
        let c = &mut self.clients[id];
        let Some(interval) = c.interval else {
            return;
        };
        let Some(conn) = c.conns[slot].as_mut() else {
            return;
        };
        if !matches!(conn.phase, Phase::Open) {
            return;
        }
        let deadline = conn.last_rx + interval * 2;
        if conn.watch.is_none_or(|pending| pending > deadline) {
            conn.watch = Some(deadline);
            self.timers.push(Reverse((deadline, id)));
        }
    }

    /// A timer of client `id` fell due: gives up a connection whose handshake or silence
    /// deadline has passed, and sets the silence check again where something arrived.
    pub(super) fn check_watch(&mut self, id: usize, now: Instant) {
        let handshake_timeout = self.config.handshake_timeout;
        for slot in 0..SLOTS {
            let c = &mut self.clients[id];
            let (kind, interval) = (c.kind, c.interval);
            let Some(conn) = c.conns[slot].as_mut() else {
                continue;
            };
            match conn.phase {
                Phase::Connecting | Phase::Handshaking
                    if now >= conn.started + handshake_timeout =>
                {
                    self.stats[kind.index()].handshake_timeouts += 1;
                    self.conn_ended(id, slot);
                }
                Phase::Open => {
                    if conn.watch.is_some_and(|due| due <= now) {
                        conn.watch = None;
                    }
                    let Some(interval) = interval else {
                        continue;
                    };
                    if now >= conn.last_rx + interval * 2 {
                        let st = &mut self.stats[kind.index()];
                        *st.silent_by_instance
                            .entry(conn.instance.clone())
                            .or_default() += 1;
                        self.conn_ended(id, slot);
                    } else {
                        self.arm_watch(id, slot);
                    }
                }
                _ => {}
            }
        }
    }
}
