//! What a simulated client sends: requests from the public and admin tables, garbage, upgrades,
//! text messages split across frames, frames the server must refuse, and closes.

use testkit::ws;
use wsdrain::base::timers::Rng;

use super::{Behaviour, Client, Expect, Mode, Owed, chance};
use crate::net::World;

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: sim\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Public-port requests: the request line and the statuses allowed.
const PUBLIC_REQUESTS: &[(&str, &[u16])] = &[
    ("GET / HTTP/1.1", &[200]),
    ("HEAD /app.js HTTP/1.1", &[200]),
    ("GET /sub HTTP/1.1", &[301]),
    ("GET //sub HTTP/1.1", &[301]),
    ("GET ///sub?x=1 HTTP/1.1", &[301]),
    ("GET /sub/ HTTP/1.1", &[200]),
    ("GET /big.txt HTTP/1.1", &[200]),
    ("GET /nope HTTP/1.1", &[404]),
    ("GET /healthz HTTP/1.1", &[200]),
    ("GET /readyz HTTP/1.1", &[200, 503]),
    ("POST /healthz HTTP/1.1", &[405]),
    ("GET HTTP://sim/app.js HTTP/1.1", &[200]),
    ("GET /%2e%2e/x HTTP/1.1", &[400]),
];

const ADMIN_REQUESTS: &[(&str, &[u16])] = &[
    ("GET /healthz HTTP/1.1", &[200]),
    ("GET /readyz HTTP/1.1", &[200, 503]),
    ("GET /metrics HTTP/1.1", &[200]),
];

impl Client {
    pub(super) fn send_more(&mut self, world: &mut World) {
        let rng_roll = world.rng.below(100);
        match (self.behaviour, self.mode) {
            (_, Mode::Done | Mode::Upgrading) => {}
            (Behaviour::Dribbler, _) => {
                if self.dribble.is_empty() && self.sent == 0 {
                    let (line, allowed) = PUBLIC_REQUESTS[world.rng.below(4) as usize];
                    let mut allowed = allowed.to_vec();
                    allowed.push(408);
                    let request = format!("{line}\r\nHost: sim\r\n\r\n");
                    self.dribble.extend(request.as_bytes());
                    self.outstanding.push_back(Expect {
                        end: request.len(),
                        owed: Owed::Status {
                            allowed,
                            head_only: line.starts_with("HEAD"),
                        },
                    });
                }
                if rng_roll < 30
                    && let Some(b) = self.dribble.pop_front()
                {
                    self.send(world, &[b], None);
                }
            }
            (Behaviour::Http | Behaviour::Prober | Behaviour::Vanisher, Mode::Http) => {
                if self.requests_left == 0 || rng_roll >= 40 {
                    if self.requests_left == 0 && self.outstanding.is_empty() && rng_roll < 5 {
                        self.finish_sending(world);
                    }
                    return;
                }
                // Pipelined: send without waiting for the answers.
                let n = if rng_roll < 15 { self.requests_left } else { 1 };
                if rng_roll >= 15 && !self.outstanding.is_empty() {
                    return; // one at a time
                }
                for _ in 0..n {
                    self.requests_left -= 1;
                    let table = if self.behaviour == Behaviour::Prober {
                        ADMIN_REQUESTS
                    } else {
                        PUBLIC_REQUESTS
                    };
                    let request = table[world.rng.below(table.len() as u64) as usize];
                    let last = self.requests_left == 0 && chance(&mut world.rng, 30);
                    self.send_request(world, request, last);
                }
            }
            (Behaviour::HalfClose, Mode::Http) => {
                for _ in 0..self.requests_left {
                    let request =
                        PUBLIC_REQUESTS[world.rng.below(PUBLIC_REQUESTS.len() as u64) as usize];
                    self.send_request(world, request, false);
                }
                self.finish_sending(world);
            }
            (Behaviour::PreStop, Mode::Http) => {
                if self.sent == 0 {
                    let request = "GET /prestop HTTP/1.1\r\nHost: sim\r\n\r\nGET /healthz HTTP/1.1\r\nHost: sim\r\n\r\n";
                    let first = request.find("\r\n\r\n").map_or(0, |i| i + 4);
                    self.send(world, &request.as_bytes()[..first], None);
                    self.outstanding.push_back(Expect {
                        end: first,
                        owed: Owed::Status {
                            allowed: vec![200],
                            head_only: false,
                        },
                    });
                    self.send(
                        world,
                        &request.as_bytes()[first..],
                        Some(Owed::Status {
                            allowed: vec![200],
                            head_only: false,
                        }),
                    );
                } else if self.outstanding.is_empty() && rng_roll < 10 {
                    self.finish_sending(world);
                }
            }
            (_, Mode::Http) => {
                // WebSocket behaviours start with the upgrade; abusive HTTP clients send garbage.
                if self.behaviour == Behaviour::Abusive && rng_roll < 40 {
                    let garbage = garbage_request(&mut world.rng);
                    self.send(
                        world,
                        &garbage,
                        Some(Owed::Status {
                            allowed: vec![400, 405, 413, 431, 501, 505],
                            head_only: false,
                        }),
                    );
                    self.sending_done = true;
                    return;
                }
                self.send(
                    world,
                    UPGRADE.as_bytes(),
                    Some(Owed::Status {
                        allowed: vec![101],
                        head_only: false,
                    }),
                );
                self.mode = Mode::Upgrading;
                if self.behaviour == Behaviour::NonReading {
                    // Frames straight behind the upgrade: the server keeps them for the session.
                    self.mode = Mode::WebSocket;
                }
            }
            (_, Mode::WebSocket) => self.send_message(world, rng_roll),
        }
    }

    fn send_message(&mut self, world: &mut World, roll: u64) {
        match self.behaviour {
            Behaviour::Abusive if self.messages >= 2 && roll < 30 => {
                let (frame, codes) = bad_frame(&mut world.rng);
                self.send(world, &frame, Some(Owed::Close(codes)));
                self.sending_done = true;
            }
            Behaviour::Mute if self.messages >= 2 => {}
            _ if self.messages >= 12 && roll < 10 => {
                // The client closes: 1000, echoed by the server.
                let frame = client_frame(&mut world.rng, 0x8, true, &1000u16.to_be_bytes());
                self.send(world, &frame, None);
                self.sending_done = true;
            }
            _ if roll < 35 => {
                self.messages += 1;
                let text = message_text(&mut world.rng, self.socket, self.messages);
                let reply: String = text.chars().rev().collect();
                let fragments = if roll < 5 { 3 } else { 1 };
                let bytes = text.as_bytes();
                let mut frames = Vec::new();
                let step = bytes.len().div_ceil(fragments).max(1);
                let pieces: Vec<&[u8]> = bytes.chunks(step).collect();
                let pieces: Vec<&[u8]> = if pieces.is_empty() { vec![&[]] } else { pieces };
                for (i, piece) in pieces.iter().enumerate() {
                    let opcode = if i == 0 { 0x1 } else { 0x0 };
                    frames.extend(client_frame(
                        &mut world.rng,
                        opcode,
                        i + 1 == pieces.len(),
                        piece,
                    ));
                }
                self.send(world, &frames, Some(Owed::Reply(reply)));
            }
            _ => {}
        }
    }
}

/// A masked client frame (the test kit's codec), its masking key drawn from the seed.
pub fn client_frame(rng: &mut Rng, opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mask = (rng.next_u64() as u32).to_be_bytes();
    ws::encode(fin, opcode, payload, Some(mask), 0)
}

fn message_text(rng: &mut Rng, socket: usize, n: u32) -> String {
    const PIECES: &[&str] = &["a", "bc", "é", "😀", "中文", " ", "xyz", "ñ"];
    let mut text = format!("m{socket}-{n}-");
    let len = match rng.below(10) {
        0 => 200 + rng.below(1500),
        _ => rng.below(40),
    };
    for _ in 0..len {
        text.push_str(PIECES[rng.below(PIECES.len() as u64) as usize]);
    }
    text
}

/// A frame the server must refuse, with the close codes it may answer.
fn bad_frame(rng: &mut Rng) -> (Vec<u8>, Vec<u16>) {
    match rng.below(5) {
        0 => (vec![0x81, 0x03, b'a', b'b', b'c'], vec![1002]), // unmasked
        1 => (client_frame(rng, 0x3, true, b"x"), vec![1002]), // reserved opcode
        2 => (client_frame(rng, 0x1, true, &[0xff, 0xfe]), vec![1007]),
        3 => {
            // Longer than MAX_MESSAGE_SIZE, announced in the header.
            let mut f = vec![0x82, 0x80 | 127];
            f.extend_from_slice(&(1u64 << 40).to_be_bytes());
            f.extend_from_slice(&[1, 2, 3, 4]);
            (f, vec![1009])
        }
        _ => {
            // A 64-bit length with its top bit set.
            let mut f = vec![0x82, 0x80 | 127];
            f.extend_from_slice(&(1u64 << 63).to_be_bytes());
            f.extend_from_slice(&[1, 2, 3, 4]);
            (f, vec![1002])
        }
    }
}

fn garbage_request(rng: &mut Rng) -> Vec<u8> {
    match rng.below(5) {
        0 => b"this is not http\r\n\r\n".to_vec(),
        1 => b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n".to_vec(),
        2 => b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n".to_vec(),
        3 => format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(2000)).into_bytes(),
        _ => b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
    }
}
