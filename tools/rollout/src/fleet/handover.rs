//! The server's own messages (hello, alive, goaway) and the handover they start: a second
//! connection opened beside the one being given up, which is closed once it owes nothing.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use serde::Deserialize;
use testkit::ws;

use super::{Fleet, Kind, MASK, Phase, SLOTS};

/// What a client reads of the server's own messages (hello, alive, goaway); the other fields
/// are not its business.
#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
struct OwnMessage {
    /// The pod that sent it (its `INSTANCE_ID`).
    instance: Option<String>,
    /// `hello` or `goaway`; none on a plain alive message.
    event: Option<String>,
    /// The alive interval the server keeps.
    interval_ms: Option<u64>,
    /// On a hello: how long the server gives a handover.
    handover_ms: Option<u64>,
}

impl OwnMessage {
    /// A text that is not such a message (not JSON, or a field of another type) tells the
    /// client nothing, as it would tell a real client nothing.
    fn read(payload: &[u8]) -> OwnMessage {
        serde_json::from_slice(payload).unwrap_or_default()
    }
}

impl Fleet {
    /// The 101 arrived on the connection in `slot`.
    pub(super) fn opened(&mut self, id: usize, slot: usize) {
        let now = Instant::now();
        let c = &mut self.clients[id];
        let Some(conn) = c.conns[slot].as_mut() else {
            return;
        };
        conn.phase = Phase::Open;
        conn.opened_at = Some(now);
        conn.served_index = Some(c.served.len());
        conn.last_rx = now;
        c.served.push(String::new());
        c.spans.push((now, None));
        if c.ever_opened {
            self.stats[c.kind.index()].reopened_at.push(now);
        }
        let held = c.held();
        self.sockets.opened.push(now);
        self.held.sockets += 1;
        if held == 1 && c.ever_opened {
            self.held.without -= 1;
        }
        if held == 2 {
            self.held.two += 1;
        }
        self.sockets.changes.push((now, self.held));
        c.ever_opened = true;
        c.waiting = None;
        c.update_gap(now);
        if !c.send_armed {
            c.send_armed = true;
            c.next_send = c.next_send.max(now);
            self.timers.push(Reverse((c.next_send, id)));
        }
        // The silence watch starts at once, with the interval the last server announced.
        self.arm_watch(id, slot);
    }

    /// A text from the server itself: alive, hello, or a goaway notice.
    pub(super) fn server_message(&mut self, id: usize, slot: usize, payload: &[u8]) {
        let message = OwnMessage::read(payload);
        let c = &mut self.clients[id];
        let kind = c.kind;
        let Some(conn) = c.conns[slot].as_mut() else {
            return;
        };
        if let Some(instance) = message.instance {
            if let Some(i) = conn.served_index
                && c.served[i].is_empty()
            {
                c.served[i] = instance.clone();
            }
            if conn.instance.is_empty() {
                self.sockets
                    .by_instance
                    .push((Instant::now(), instance.clone(), true));
            }
            conn.instance = instance;
        }
        let announced = message
            .interval_ms
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        let st = &mut self.stats[kind.index()];
        match message.event.as_deref() {
            Some("hello") => {
                let entry = st.hellos.entry(conn.instance.clone()).or_default();
                entry.0 += 1;
                entry.1 = message.handover_ms;
            }
            Some("goaway") => {
                st.notices.push((Instant::now(), conn.instance.clone()));
                if kind == Kind::Old || conn.retiring || !matches!(conn.phase, Phase::Open) {
                    st.notices_ignored += 1;
                } else if c.conns[1 - slot].is_some() {
                    // The other connection is still finishing: hand over once it is gone.
                    let conn = c.conns[slot].as_mut().expect("checked above");
                    if conn.deferred_notice {
                        st.notices_ignored += 1;
                    } else {
                        conn.deferred_notice = true;
                        st.notices_deferred += 1;
                    }
                } else {
                    self.begin_handover(id, slot);
                }
            }
            _ => {}
        }
        if announced.is_some() && announced != self.clients[id].interval {
            self.clients[id].interval = announced;
            self.arm_watch(id, slot);
        }
    }

    /// A notice on the connection in `slot`: it is given up, and a new one opened beside it.
    pub(super) fn begin_handover(&mut self, id: usize, slot: usize) {
        let c = &mut self.clients[id];
        let Some(conn) = c.conns[slot].as_mut() else {
            return;
        };
        conn.retiring = true;
        conn.deferred_notice = false;
        conn.notice_at = Some(Instant::now());
        self.stats[c.kind.index()].handovers += 1;
        self.connect(id, 1 - slot);
    }

    /// After anything that may let a handover move on: a connection being given up whose
    /// successor is open and that has nothing in flight is closed (1000); a deferred notice is
    /// acted on once the other connection is gone; output the change made is written.
    pub(super) fn after_change(&mut self, id: usize) {
        let now = Instant::now();
        let close_wait = self.config.close_wait;
        for slot in 0..SLOTS {
            let c = &mut self.clients[id];
            let successor_open = c.conns[1 - slot]
                .as_ref()
                .is_some_and(|o| !o.retiring && matches!(o.phase, Phase::Open));
            let Some(conn) = c.conns[slot].as_mut() else {
                continue;
            };
            if conn.retiring
                && successor_open
                && matches!(conn.phase, Phase::Open)
                && conn.in_flight.is_empty()
            {
                ws::encode_into(
                    &mut conn.outbuf,
                    true,
                    ws::CLOSE,
                    &1000u16.to_be_bytes(),
                    Some(MASK),
                    0,
                );
                conn.phase = Phase::Closing {
                    deadline: now + close_wait,
                };
                if let Some(span) = conn.served_index.and_then(|i| c.spans.get_mut(i)) {
                    span.1.get_or_insert(now);
                }
                self.timers.push(Reverse((now + close_wait, id)));
                let st = &mut self.stats[c.kind.index()];
                st.closed_by_client += 1;
                st.left.push((now, conn.instance.clone()));
                if let Some(t) = conn.notice_at {
                    st.handover_took.push(now.saturating_duration_since(t));
                }
                c.update_gap(now);
                self.flush(id, slot);
            }
        }
        for slot in 0..SLOTS {
            let c = &self.clients[id];
            if c.conns[1 - slot].is_none()
                && c.conns[slot]
                    .as_ref()
                    .is_some_and(|k| k.deferred_notice && matches!(k.phase, Phase::Open))
            {
                self.begin_handover(id, slot);
            }
        }
        if let Some(slot) = self.clients[id].send_slot() {
            self.flush(id, slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OwnMessage;

    #[test]
    fn an_instance_name_with_a_comma_a_quote_and_a_brace_reads_whole() {
        let hello = br#"{"type":"alive","event":"hello","instance":"pod-a,\"x\"}","phase":"serving","interval_ms":1000,"uptime_ms":5,"handover_ms":3000}"#;
        assert_eq!(
            OwnMessage::read(hello),
            OwnMessage {
                instance: Some(r#"pod-a,"x"}"#.into()),
                event: Some("hello".into()),
                interval_ms: Some(1000),
                handover_ms: Some(3000),
            }
        );
        let alive = br#"{"type":"alive","instance":"pod-b","phase":"draining","interval_ms":5000,"uptime_ms":9}"#;
        assert_eq!(OwnMessage::read(alive).event, None);
        assert_eq!(OwnMessage::read(b"{\"type\":\"alive\"").instance, None);
    }
}
