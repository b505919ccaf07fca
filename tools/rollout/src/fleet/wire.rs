//! The socket side of a client: connect, the upgrade, writing its frames and reading the
//! server's (replies, close, ping).

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::Instant;

use mio::Interest;
use mio::net::TcpStream;
use testkit::ws;

use super::{ALIVE_PREFIX, Conn, Fleet, MASK, Phase, token};

impl Fleet {
    /// Opens a connection in `slot` (non-blocking; the upgrade request goes once TCP is up).
    pub(super) fn connect(&mut self, id: usize, slot: usize) {
        debug_assert!(self.clients[id].conns[slot].is_none());
        let addr = self.config.addrs[id % self.config.addrs.len()];
        let mut stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(_) => {
                self.conn_ended(id, slot);
                return;
            }
        };
        if self
            .poll
            .registry()
            .register(
                &mut stream,
                token(id, slot),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            self.conn_ended(id, slot);
            return;
        }
        let _ = stream.set_nodelay(true);
        let now = Instant::now();
        // The handshake timeout's check.
        self.timers
            .push(Reverse((now + self.config.handshake_timeout, id)));
        self.serials += 1;
        self.clients[id].conns[slot] = Some(Conn {
            serial: self.serials,
            stream,
            phase: Phase::Connecting,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            in_flight: VecDeque::new(),
            instance: String::new(),
            served_index: None,
            close_code: None,
            retiring: false,
            deferred_notice: false,
            notice_at: None,
            opened_at: None,
            started: now,
            last_rx: now,
            watch: None,
        });
    }

    pub(super) fn on_ready(&mut self, id: usize, slot: usize) {
        let Some(conn) = self.clients[id].conns[slot].as_mut() else {
            return;
        };
        if matches!(conn.phase, Phase::Connecting) {
            match conn.stream.peer_addr() {
                Ok(_) => {
                    conn.outbuf
                        .extend_from_slice(ws::UPGRADE_REQUEST.as_bytes());
                    conn.phase = Phase::Handshaking;
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    // Still connecting, or refused: take_error tells.
                    if let Ok(Some(_)) | Err(_) = conn.stream.take_error() {
                        self.conn_ended(id, slot);
                    }
                    return;
                }
                Err(_) => {
                    self.conn_ended(id, slot);
                    return;
                }
            }
        }
        self.pump(id, slot);
    }

    /// Writes what is queued on the connection, reads what arrived, handles it, and writes
    /// what that produced.
    pub(super) fn pump(&mut self, id: usize, slot: usize) {
        if !self.flush(id, slot) {
            return;
        }
        let mut chunk = [0u8; 16384];
        let mut ended = false;
        let Some(serial) = self.clients[id].conns[slot].as_ref().map(|c| c.serial) else {
            return;
        };
        loop {
            let Some(conn) = self.clients[id].conns[slot].as_mut() else {
                return;
            };
            match conn.stream.read(&mut chunk) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => {
                    conn.inbuf.extend_from_slice(&chunk[..n]);
                    conn.last_rx = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    ended = true;
                    break;
                }
            }
        }
        // What arrived before the end (a close frame, the last replies) is handled first.
        self.process_input(id, slot);
        if ended
            && self.clients[id].conns[slot]
                .as_ref()
                .is_some_and(|c| c.serial == serial)
        {
            self.conn_ended(id, slot);
        }
    }

    /// Fills the connection's output when it is the one messages go on, and writes what the
    /// socket takes. False when the connection is gone.
    pub(super) fn flush(&mut self, id: usize, slot: usize) -> bool {
        let in_flight = self.config.in_flight;
        let c = &mut self.clients[id];
        if c.send_slot() == Some(slot)
            && let Some(conn) = c.conns[slot].as_mut()
        {
            while conn.in_flight.len() < in_flight {
                let Some(seq) = c.queue.pop_front() else {
                    break;
                };
                let text = format!("c{id}:{seq}");
                ws::encode_into(
                    &mut conn.outbuf,
                    true,
                    ws::TEXT,
                    text.as_bytes(),
                    Some(MASK),
                    0,
                );
                conn.in_flight.push_back(seq);
            }
        }
        let Some(conn) = c.conns[slot].as_mut() else {
            return false;
        };
        if matches!(conn.phase, Phase::Connecting) {
            return true;
        }
        while !conn.outbuf.is_empty() {
            match conn.stream.write(&conn.outbuf) {
                Ok(n) => {
                    conn.outbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.conn_ended(id, slot);
                    return false;
                }
            }
        }
        true
    }

    pub(super) fn process_input(&mut self, id: usize, slot: usize) {
        let Some(conn) = self.clients[id].conns[slot].as_mut() else {
            return;
        };
        if matches!(conn.phase, Phase::Handshaking) {
            let end = match ws::upgrade_response(&conn.inbuf) {
                None => return,
                Some(Ok(end)) => end,
                Some(Err(_)) => {
                    self.conn_ended(id, slot);
                    return;
                }
            };
            conn.inbuf.drain(..end);
            self.opened(id, slot);
        }
        loop {
            let c = &mut self.clients[id];
            let Some(conn) = c.conns[slot].as_mut() else {
                return;
            };
            let Some((frame, used)) = ws::decode(&conn.inbuf) else {
                break;
            };
            let close_code = frame.close_code().unwrap_or(1005);
            let ws::Frame {
                opcode, payload, ..
            } = frame;
            conn.inbuf.drain(..used);
            let st = &mut self.stats[c.kind.index()];
            match opcode {
                ws::TEXT => {
                    // A text equal to the reversal of the head in flight is its reply, whatever
                    // it looks like; other texts starting as an alive message are the server's.
                    let expected = conn
                        .in_flight
                        .front()
                        .map(|seq| format!("c{id}:{seq}").chars().rev().collect::<String>());
                    if expected.as_deref().map(str::as_bytes) != Some(&payload[..])
                        && payload.starts_with(ALIVE_PREFIX)
                    {
                        self.server_message(id, slot, &payload);
                        continue;
                    }
                    let Some(seq) = conn.in_flight.pop_front() else {
                        st.mismatches += 1;
                        continue;
                    };
                    if expected.as_deref().map(str::as_bytes) != Some(&payload[..]) {
                        st.mismatches += 1;
                        continue;
                    }
                    let seq = seq as usize;
                    if c.answered.len() <= seq {
                        c.answered.resize(seq + 1, 0);
                    }
                    c.answered[seq] = c.answered[seq].saturating_add(1);
                    st.replies += 1;
                    if c.answered[seq] > 1 {
                        st.duplicates += 1;
                    }
                }
                ws::CLOSE => {
                    let code = close_code;
                    *st.closes.entry(code).or_default() += 1;
                    if code == 1012 {
                        st.restarts.push((Instant::now(), conn.instance.clone()));
                        c.restarts_from.push(conn.instance.clone());
                    }
                    conn.close_code = Some(code);
                    let now = Instant::now();
                    if matches!(conn.phase, Phase::Open) {
                        if let Some(span) = conn.served_index.and_then(|i| c.spans.get_mut(i)) {
                            span.1.get_or_insert(now);
                        }
                        ws::encode_into(
                            &mut conn.outbuf,
                            true,
                            ws::CLOSE,
                            &code.to_be_bytes(),
                            Some(MASK),
                            0,
                        );
                        conn.phase = Phase::Closing {
                            deadline: now + self.config.close_wait,
                        };
                        self.timers
                            .push(Reverse((now + self.config.close_wait, id)));
                    }
                    // What this connection can no longer answer goes to the other one (or the
                    // next one).
                    let unanswered: Vec<u64> = conn.in_flight.drain(..).collect();
                    let n = c.requeue(unanswered);
                    self.stats[c.kind.index()].resent += n;
                    c.update_gap(now);
                    self.flush(id, slot);
                    self.after_change(id);
                    return;
                }
                ws::PING => {
                    ws::encode_into(&mut conn.outbuf, true, ws::PONG, &payload, Some(MASK), 0);
                }
                _ => {}
            }
        }
        self.after_change(id);
    }
}
