//! The drain, and the end of the process: what the loop does when SIGTERM (or SIGINT) arrives,
//! in named steps (stop accepting; finish in-flight work; disconnect WebSockets spread over
//! `DRAIN_WINDOW`), when it is finished, and the lifecycle lines it leaves behind.

use crate::app::drain_plan::DrainPlan;
use crate::app::lifecycle::{DrainSchedule, EventLine, Phase};
use crate::base::timers::Rng;
use crate::connection::{Kind, Verdict};
use crate::net::{Listener, Net, Sender};
use crate::server::{DrainProgress, Server, Wake};

impl<N: Net> Server<N> {
    /// The drain, in its named steps. Kubernetes has already stopped routing new connections
    /// here (preStop), so from now on every public connection only winds down.
    pub(super) fn begin_drain(&mut self, signal: &str) {
        let now = self.ctx.now;
        // The lifecycle chose the drain that fits the time left: the configured one, or the
        // short one when the grace period is already over (SIGTERM while /prestop waited).
        let plan = self
            .ctx
            .lifecycle
            .drain_plan()
            .copied()
            .unwrap_or_else(|| DrainPlan::full(&self.ctx.config));
        let window_ms = plan.window_ms;
        self.drain = Some(DrainProgress {
            deadline: now.saturating_add(plan.deadline_ms()),
            ws_before: self.ctx.metrics.ws.clone(),
        });

        // 1. Stop accepting: with the listener closed the kernel refuses new connections, so
        //    clients fail fast and retry on another pod. The admin port stays open for probes.
        //    Connections already in the backlog are taken first: they are answered (a WebSocket
        //    upgrade with 503) instead of being reset.
        self.accept_all(Listener::Public);
        self.net.close_listener(Listener::Public);
        self.public_open = false;
        let mut line = EventLine::new("draining")
            .field("signal", signal)
            .field("drain", plan.kind());
        if let Some(why) = plan.short {
            line = line.field("reason", why.as_str());
        }
        log::info!(
            "{}",
            line.field("websockets", self.ctx.open.websocket)
                .field("http", self.ctx.open.http)
                .field("admin", self.ctx.open.admin)
                .field("window_ms", window_ms)
                .field("handover_ms", plan.handover_ms)
                .field("deadline_ms", plan.deadline_ms())
        );

        // 2. Finish in-flight work and persist state.
        self.finish_in_flight_work();

        // 3. Disconnect WebSockets at random times spread uniformly over DRAIN_WINDOW, so their
        //    clients do not reconnect to the new pods all at once. Past 2,047 connections,
        //    neighbours in the slab share a time, in groups of up to 64 ([`DrainTimes`]).
        let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
        let mut times = DrainTimes::new(slots.len(), window_ms);
        let mut schedule = DrainSchedule::new(window_ms);
        for slot in slots {
            let offset = times.offset(slot, &mut self.ctx.rng);
            let conn = &mut self.conns[slot].conn;
            let Some(planned) = conn.schedule_drain(now + offset, plan.handover_ms, now) else {
                continue;
            };
            if planned {
                schedule.add(offset);
            } else {
                schedule.noticed_before += 1;
            }
            self.after_run(slot, Verdict::Keep);
        }
        log::info!("{}", schedule.event_line());
    }

    /// The drain step where work in flight is finished before anyone is disconnected. For this
    /// server that means: answer the requests and messages already read, and hand every queued
    /// reply to the kernel (replies are queued ahead of any close frame, so none is lost); idle
    /// HTTP connections are closed, and a waiting `/prestop` is answered. An application with
    /// state (sessions, jobs, counters) would persist it here, before step 3 disconnects its
    /// clients, so that they find it on the pod they reconnect to.
    pub(super) fn finish_in_flight_work(&mut self) {
        let now = self.ctx.now;
        let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            self.conns[slot].conn.on_drain_begins(now);
            self.run_connection(slot, Wake::Recheck);
        }
    }

    /// A second signal: tell every WebSocket client (1012) as far as the socket takes it, and
    /// stop.
    pub(super) fn close_all_now(&mut self, signal: &str) {
        log::info!(
            "{}",
            EventLine::new("stop_now")
                .field("signal", signal)
                .field("open", self.conns.len())
        );
        for (_, s) in self.conns.iter_mut() {
            s.conn.close_now(&mut self.ctx);
        }
        self.exit_now = true;
    }

    /// Exiting: one last attempt to hand every connection's queued output to the kernel (a
    /// close frame, a probe's or the preStop hook's answer on the admin port).
    pub(super) fn flush_all(&mut self) {
        for (_, s) in self.conns.iter_mut() {
            if s.conn.output_len() > 0
                && let Ok(n) = s.conn.output().write_to(&mut Sender {
                    stream: &mut s.stream,
                    last: true,
                })
            {
                self.ctx.metrics.bytes_out += n as u64;
            }
        }
    }

    /// Whether the loop should stop: a second signal, or a drain with nothing left to wait for.
    pub(super) fn finished(&self) -> bool {
        if self.exit_now {
            return true;
        }
        let Some(drain) = &self.drain else {
            return false;
        };
        debug_assert_eq!(self.ctx.lifecycle.phase(), Phase::Draining);
        let public = self.ctx.open.http + self.ctx.open.websocket;
        if public == 0 {
            log::info!(
                "{}",
                EventLine::new("drain_complete").field("open_public", 0)
            );
            return true;
        }
        if self.ctx.now >= drain.deadline {
            log::warn!(
                "{}",
                EventLine::new("drain_deadline_passed").field("open_public", public)
            );
            return true;
        }
        false
    }

    /// What the exit cuts, after the last write: WebSockets without their close frame (their
    /// clients see EOF or a reset), and HTTP answers not wholly sent (a client reading slower
    /// than its download arrives, at the drain deadline). Counted in the `drain_end` line.
    fn cut_at_exit(&self) -> (usize, usize) {
        let mut cut = (0, 0);
        for (_, s) in &self.conns {
            match s.counted_as {
                Kind::WebSocket if s.conn.owes_close_frame() => cut.0 += 1,
                Kind::Http if s.conn.output_len() > 0 => cut.1 += 1,
                _ => {}
            }
        }
        cut
    }

    pub(super) fn log_exit(&self) {
        let m = &self.ctx.metrics;
        if let Some(drain) = &self.drain {
            let (ws, before) = (&m.ws, &drain.ws_before);
            let (cut_websockets, cut_answers) = self.cut_at_exit();
            let closes = self.ctx.lifecycle.drain_closes();
            let mut line = EventLine::new("drain_end")
                .field(
                    "after_ms",
                    self.ctx.now.saturating_sub(
                        self.ctx
                            .lifecycle
                            .drain_started_at()
                            .unwrap_or(self.ctx.now),
                    ),
                )
                .field("closes_sent", closes.len());
            if let (Some(first), Some(last)) = (closes.first(), closes.last()) {
                line = line.field("first_ms", first).field("last_ms", last);
            }
            log::info!(
                "{}",
                line.field("notices", ws.handover_notices - before.handover_notices)
                    .field("left", ws.handover_left - before.handover_left)
                    .field("forced", ws.handover_forced - before.handover_forced)
                    .field("clean", ws.clean_closes - before.clean_closes)
                    .field("timed_out", ws.close_timeouts - before.close_timeouts)
                    .field("cut", cut_websockets)
                    .field("cut_answers", cut_answers)
                    .field("still_open", self.ctx.open.http + self.ctx.open.websocket)
                    .field("admin_open", self.ctx.open.admin)
            );
        }
        log::info!(
            "{}",
            EventLine::new("exit")
                .field("accepted_public", m.accepted[Listener::Public as usize])
                .field("accepted_admin", m.accepted[Listener::Admin as usize])
                .field("refused_full", m.rejected_max_connections)
                .field("refused_no_descriptors", m.rejected_fd_exhausted)
                .field("requests", m.requests_total())
                .field("ws_messages_in", m.ws.messages_in)
                .field("ws_messages_out", m.ws.messages_out)
                .field("ws_messages_after_close", m.ws.messages_after_close)
                .field("ws_clean_closes", m.ws.clean_closes)
                .field("ws_close_timeouts", m.ws.close_timeouts)
                .field("bytes_in", m.bytes_in)
                .field("bytes_out", m.bytes_out)
        );
    }
}

/// The drain's times for the connections, taken in slot order: a time drawn uniformly over the
/// window for each group of neighbouring slots. Up to 2,047 connections each has its own time (a
/// small pod keeps a time per client); past that, a group is 1/1,024 of them, at most 64 (from
/// 65,536 on). A group's notices and closes then touch memory that lies together (the server's
/// slab and the kernel's sockets, allocated in accept order) instead of costing a cache miss
/// each (over simulated sockets at 1,000,000 connections, 1.0 µs per drained connection against
/// 1.4 with a time each: `benches/RESULTS.md`, issue 23), and 64 clients moving at one moment
/// are a small load for the pods they move to.
struct DrainTimes {
    group: usize,
    window_ms: u64,
    /// The last group given a time, and its time.
    last: Option<(usize, u64)>,
}

impl DrainTimes {
    fn new(open: usize, window_ms: u64) -> Self {
        DrainTimes {
            group: (open / 1024).clamp(1, 64),
            window_ms,
            last: None,
        }
    }

    /// The time of the connection in `slot`, in ms after the drain began.
    fn offset(&mut self, slot: usize, rng: &mut Rng) -> u64 {
        let group = slot / self.group;
        match self.last {
            Some((last, offset)) if last == group => offset,
            _ => {
                let offset = rng.below(self.window_ms.max(1));
                self.last = Some((group, offset));
                offset
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_times_are_drawn_per_group_of_neighbours_past_2047() {
        // A small pod: a time per connection.
        let mut rng = Rng::seeded(7);
        let mut times = DrainTimes::new(2_047, 10_000);
        let small: Vec<u64> = (0..2_047)
            .map(|slot| times.offset(slot, &mut rng))
            .collect();
        assert!(small.windows(2).filter(|w| w[0] == w[1]).count() < 10);
        // 100,000 connections: groups of 64 neighbours share a time; the groups' times are
        // spread over the whole window, about a quarter in each quarter.
        let mut times = DrainTimes::new(100_000, 10_000);
        let mut per_quarter = [0u32; 4];
        let mut group_times = Vec::new();
        for slot in 0..100_000 {
            let offset = times.offset(slot, &mut rng);
            assert!(offset < 10_000);
            if slot % 64 == 0 {
                group_times.push(offset);
                per_quarter[(offset / 2_500) as usize] += 1;
            } else {
                assert_eq!(Some(&offset), group_times.last(), "slot {slot}");
            }
        }
        assert_eq!(group_times.len(), 1_563);
        assert!(
            per_quarter.iter().all(|&n| (330..=450).contains(&n)),
            "{per_quarter:?}"
        );
        // Slots with gaps between them (closed connections): the group is the slot's, not the
        // count so far.
        let mut times = DrainTimes::new(4_096, 10_000);
        let a = times.offset(0, &mut rng);
        assert_eq!(times.offset(3, &mut rng), a);
        assert_ne!(times.offset(4, &mut rng), a);
    }
}
