//! How a connection ends, and when its client connects again.

use std::cmp::Reverse;
use std::time::Instant;

use super::{Fleet, Phase};

impl Fleet {
    /// The connection in `slot` is gone (or never came to be): cleanly if a close frame was
    /// sent on it (phase `Closing`), abnormally otherwise (reset, EOF without a close frame,
    /// refused connect, a refused upgrade).
    pub(super) fn conn_ended(&mut self, id: usize, slot: usize) {
        let now = Instant::now();
        let r = self.random();
        let (base, cap) = (self.config.backoff_base, self.config.backoff_cap);
        let restart = self.config.restart_delay;
        let stable = self.config.stable_after;
        let c = &mut self.clients[id];
        let st = &mut self.stats[c.kind.index()];
        let mut close_code = None;
        let mut was_retiring = false;
        let mut never_opened = true;
        c.leave_open(slot, now);
        if let Some(mut conn) = c.conns[slot].take() {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if conn.opened_at.is_some() {
                let held = c.held();
                self.held.sockets -= 1;
                if held == 0 {
                    self.held.without += 1;
                }
                if held == 1 {
                    self.held.two -= 1;
                }
                self.sockets.changes.push((now, self.held));
            }
            if !conn.instance.is_empty() {
                self.sockets
                    .by_instance
                    .push((now, conn.instance.clone(), false));
            }
            if matches!(conn.phase, Phase::Open) {
                *st.closes.entry(1006).or_default() += 1;
                *st.abnormal_by_instance
                    .entry(conn.instance.clone())
                    .or_default() += 1;
            }
            let unanswered: Vec<u64> = conn.in_flight.drain(..).collect();
            st.resent += c.requeue(unanswered);
            if conn.opened_at.is_some_and(|t| now - t >= stable) {
                c.attempt = 0;
            }
            close_code = conn.close_code;
            was_retiring = conn.retiring;
            never_opened = conn.opened_at.is_none();
        }
        if never_opened {
            // Refused, reset, or an upgrade answered with something else than 101.
            st.connect_failures += 1;
        }
        c.update_gap(now);
        if let Some(other) = c.conns[1 - slot].as_ref() {
            // The other connection carries on: no reconnect.
            if was_retiring && !matches!(other.phase, Phase::Open) {
                st.handover_late += 1;
            }
            if never_opened && other.retiring {
                st.handover_failed += 1;
            }
            self.after_change(id);
            return;
        }
        // No connection left: today's path. Only a server that said it is restarting (1012) or
        // going away (1001) gets the short delay: the client's next connect goes to another
        // pod. Any other close (1000, 1008, 1011, ...) or an abnormal end may recur on
        // reconnect, so it backs off as usual.
        let delay = if matches!(close_code, Some(1001 | 1012)) {
            restart.0 + (restart.1 - restart.0).mul_f64(r)
        } else {
            let exp = base.saturating_mul(1u32 << c.attempt.min(20));
            c.attempt = c.attempt.saturating_add(1);
            exp.min(cap).mul_f64(r)
        };
        let at = now + delay;
        c.waiting = Some(at);
        self.timers.push(Reverse((at, id)));
    }
}
