//! What a simulated client reads and checks: responses and frames parsed as they come, each
//! matched to the next thing owed, and, when a well-behaved client's connection ends, that nothing
//! the server read in full went unanswered.

use testkit::ws;
use wsdrain::net::Listener;

use super::{Behaviour, Client, Expect, Mode, Owed, Violation, chance, client_frame, closes};
use crate::net::World;

impl Client {
    pub(super) fn check_complete(&self, world: &World, violations: &mut Vec<Violation>) {
        let socket = &world.sockets[self.socket];
        // The exit drops admin connections (probes, the hook) after one last write: their
        // answers are best effort. Public ones the drain has closed before.
        if socket.refused || (socket.open_at_exit && self.behaviour.side() == Listener::Admin) {
            return;
        }
        // An answer still being sent at the drain deadline is cut by the exit (the contract),
        // and with it what was pipelined behind it.
        if socket.answer_cut_at_exit {
            return;
        }
        // Accepted, then closed without a word: a well-behaved client speaks within a few
        // ticks, far inside HEADER_TIMEOUT, and must be answered, in the drain too (a 503 for
        // an upgrade), not closed as if it were idle before its request arrived.
        if socket.server_written == 0 && !socket.open_at_exit {
            violations.push(format!(
                "the server closed the connection without a word; the client sent {} bytes, \
                 the server read {}",
                self.sent, socket.server_read
            ));
        }
        if !self.rx.is_empty() {
            violations.push(format!(
                "the connection ended inside an answer: {:?}",
                String::from_utf8_lossy(&self.rx)
            ));
        }
        if self.mode == Mode::WebSocket && self.server_close_code.is_none() {
            violations.push("the WebSocket ended without a close frame from the server".into());
        }
        if self.closing_seen {
            return;
        }
        if let Some(e) = self.outstanding.front()
            && e.end <= socket.server_read
        {
            violations.push(format!(
                "the server read a whole request and closed without answering it: {:?}",
                e.owed
            ));
        }
    }

    pub(super) fn parse(&mut self, world: &mut World, violations: &mut Vec<Violation>) {
        loop {
            let consumed = match self.mode {
                Mode::Http | Mode::Upgrading => self.parse_response(violations),
                Mode::WebSocket => self.parse_frame(world, violations),
                Mode::Done => None,
            };
            match consumed {
                Some(n) => {
                    self.rx.drain(..n);
                }
                None => return,
            }
        }
    }

    fn parse_response(&mut self, violations: &mut Vec<Violation>) -> Option<usize> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(&self.rx) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return None,
            Err(e) => {
                violations.push(format!(
                    "unparsable response ({e}): {:?}",
                    String::from_utf8_lossy(&self.rx)
                ));
                return Some(self.rx.len());
            }
        };
        let status = response.code.unwrap_or(0);
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).to_string())
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let connection_close =
            header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let location = header("location");
        let first = self.outstanding.front().map(|e| e.owed.clone());
        let head_only = matches!(
            first,
            Some(Owed::Status {
                head_only: true,
                ..
            })
        );
        // An answer that closes for a request the server could not read (the refusal at accept,
        // a head that timed out or did not parse) has its body even for a HEAD: the server did
        // not know the method (harmless: the connection closes behind it).
        let unread = connection_close && status >= 400;
        let body = if (head_only && !unread) || status == 101 || status == 304 {
            0
        } else {
            length
        };
        if self.rx.len() < head_len + body {
            return None;
        }
        if let Some(location) = &location
            && (location.starts_with("//") || location.starts_with("/\\"))
        {
            violations.push(format!("a redirect off the site: Location {location:?}"));
        }
        match first {
            // Refused at accept, before any request was sent.
            None if status == 503 && connection_close && self.answers == 0 => self.answers += 1,
            None => violations.push(format!("an answer ({status}) to no request")),
            Some(Owed::Status { allowed, .. }) => {
                self.outstanding.pop_front();
                // 503 with close: refused at accept (full, or out of descriptors), before any
                // other answer; or an upgrade refused during the drain.
                let refused = status == 503
                    && connection_close
                    && (self.answers == 0 || allowed.contains(&101));
                self.answers += 1;
                // After a clock jump, the header timeout may pass while a request travels.
                let late = status == 408 && !self.strict;
                if !allowed.contains(&status) && !refused && !late {
                    violations.push(format!("status {status}, expected one of {allowed:?}"));
                }
                if status == 101 {
                    self.mode = Mode::WebSocket;
                }
            }
            Some(other) => violations.push(format!("status {status} where {other:?} was owed")),
        }
        if connection_close || closes(status) {
            self.closing_seen = true;
        }
        Some(head_len + body)
    }

    fn parse_frame(&mut self, world: &mut World, violations: &mut Vec<Violation>) -> Option<usize> {
        let head = ws::frame_at(&self.rx)?;
        if head.mask.is_some() {
            violations.push("the server masked a frame".into());
        }
        let ws::Frame {
            fin,
            opcode,
            payload,
        } = ws::Frame::at(&self.rx, &head);
        let len = head.frame_len();
        if !fin {
            violations.push("the server fragmented a frame".into());
        }
        match opcode {
            0x1 => {
                let text = String::from_utf8(payload.clone()).unwrap_or_default();
                let hello = text.starts_with("{\"type\":\"alive\",\"event\":\"hello\"");
                if hello == self.hello_seen {
                    violations.push(format!(
                        "{text:?} as frame {} (the hello must be the first, and only once)",
                        self.frames_seen
                    ));
                }
                self.hello_seen |= hello;
                self.frames_seen += 1;
                if text.starts_with("{\"type\":\"alive\",\"event\":\"goaway\"")
                    && self.behaviour == Behaviour::WebSocket
                    && !self.sending_done
                    && chance(&mut world.rng, 70)
                {
                    // A client that knows the handover leaves at once (its replies still come
                    // first); the others wait for the close 1012.
                    let frame = client_frame(&mut world.rng, 0x8, true, &1000u16.to_be_bytes());
                    self.send(world, &frame, None);
                    self.sending_done = true;
                }
                if text.starts_with("{\"type\":\"alive\"") {
                    return Some(len);
                }
                match self.outstanding.pop_front() {
                    Some(Expect {
                        owed: Owed::Reply(expected),
                        ..
                    }) => {
                        if text != expected {
                            violations.push(format!("reply {text:?}, expected {expected:?}"));
                        }
                    }
                    other => violations.push(format!("reply {text:?} where {other:?} was owed")),
                }
            }
            0x9 => {
                if !self.sending_done
                    && !matches!(self.behaviour, Behaviour::NonReading | Behaviour::Mute)
                {
                    let pong = client_frame(&mut world.rng, 0xA, true, &payload);
                    self.send(world, &pong, None);
                }
            }
            0xA => {}
            0x8 => {
                let code =
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                if self.server_close_code.is_some() {
                    violations.push("a second close frame".into());
                }
                self.server_close_code = Some(code.unwrap_or(1005));
                self.closing_seen = true;
                if let Some(Expect {
                    owed: Owed::Close(codes),
                    ..
                }) = self.outstanding.front()
                {
                    let code = code.unwrap_or(1005);
                    // The drain's (or the age limit's) close may come first.
                    if !codes.contains(&code) && code != 1012 {
                        violations.push(format!("close {code}, expected one of {codes:?}"));
                    }
                }
                if !self.sending_done && self.behaviour != Behaviour::Mute {
                    // Echo the close, then wait for the server's FIN.
                    let echo =
                        client_frame(&mut world.rng, 0x8, true, &payload[..payload.len().min(2)]);
                    self.send(world, &echo, None);
                    self.sending_done = true;
                }
            }
            other => violations.push(format!("a frame with opcode {other}")),
        }
        Some(len)
    }
}
