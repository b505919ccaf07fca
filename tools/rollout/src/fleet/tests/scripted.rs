//! The scripted server the fleet's tests play against, on loopback (threads, blocking sockets):
//! its first connection plays pod A (a goaway notice after a while, close 1012 after the
//! handover timeout unless the client closes first; or an ending without a word: EOF, reset,
//! silence, an upgrade never answered), the second pod B, the third pod C. Every connection
//! announces its alive interval in its hello and sends an alive message each interval.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use testkit::ws;

use crate::fleet::{ClientReport, Fleet, FleetConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone, Copy)]
pub struct Script {
    /// When the first connection (pod A) gets its notice.
    pub notice_after: Duration,
    /// When the second connection gets one (none: never).
    pub second_notice_after: Option<Duration>,
    /// Send each notice twice.
    pub repeat_notice: bool,
    /// After its notice, a connection holds each reply this long.
    pub slow_after_notice: Duration,
    /// The first connection holds its replies so from its start, not only after its notice,
    /// and gives its notice only once it holds one.
    pub slow_from_start: bool,
    /// The handover timeout: close 1012 this long after a notice.
    pub close_in: Duration,
    /// The second connection gets a 503 instead of a 101.
    pub refuse_second: bool,
    /// How the first connection ends, this long after its 101: it stops answering (messages
    /// are read and dropped, or with `End::Reset` not read at all), and 100 ms later ends so.
    pub first_ends: Option<(Duration, End)>,
    /// The first connection's upgrade is never answered (a frozen pod's backlog).
    pub first_mute: bool,
    /// The second connection says nothing after its 101: no hello, no replies, no alive.
    pub second_silent: bool,
    /// The alive interval every connection announces and keeps.
    pub interval: Duration,
}

/// How a connection ends without a close frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// FIN: the process died, the kernel closed the socket (nothing left unread).
    Eof,
    /// RST: closed with input still unread.
    Reset,
    /// Nothing more: the socket stays open and silent (a frozen process).
    Silent,
}

pub const SCRIPT: Script = Script {
    notice_after: Duration::from_millis(200),
    second_notice_after: None,
    repeat_notice: false,
    slow_after_notice: Duration::ZERO,
    slow_from_start: false,
    close_in: Duration::from_secs(3),
    refuse_second: false,
    first_ends: None,
    first_mute: false,
    second_silent: false,
    interval: Duration::from_secs(5),
};

/// The sockets the fleet held after each change: (open, clients with none, clients with
/// two).
pub fn held(f: &Fleet) -> Vec<(u32, u32, u32)> {
    f.sockets
        .changes
        .iter()
        .map(|(_, h)| (h.sockets, h.without, h.two))
        .collect()
}

fn text(out: &mut std::net::TcpStream, s: &str) {
    let _ = out.write_all(&ws::encode(true, ws::TEXT, s.as_bytes(), None, 0));
}

fn serve(mut s: std::net::TcpStream, index: usize, script: Script) {
    let instance = ["pod-a", "pod-b", "pod-c"][index.min(2)];
    s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) if start.elapsed() < Duration::from_secs(5) => {}
            Err(_) => return,
        }
    }
    buf.clear();
    if index == 0 && script.first_mute {
        // Read and drop whatever comes until the client goes; never answer.
        while start.elapsed() < Duration::from_secs(20) && !matches!(s.read(&mut chunk), Ok(0)) {}
        return;
    }
    if index == 1 && script.second_silent {
        let _ = write!(
            s,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            ws::ACCEPT
        );
        while start.elapsed() < Duration::from_secs(20) && !matches!(s.read(&mut chunk), Ok(0)) {}
        return;
    }
    if index == 1 && script.refuse_second {
        let _ = s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let _ = write!(
        s,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        ws::ACCEPT
    );
    let handover_ms = script.close_in.as_millis();
    let interval_ms = script.interval.as_millis();
    text(
        &mut s,
        &format!(
            "{{\"type\":\"alive\",\"event\":\"hello\",\"instance\":\"{instance}\",\
             \"phase\":\"serving\",\"interval_ms\":{interval_ms},\"uptime_ms\":1,\
             \"handover_ms\":{handover_ms}}}"
        ),
    );
    let mut next_alive = Instant::now() + script.interval;
    // When this connection stops answering, and how it then ends.
    let opened = Instant::now();
    // A connection holding its replies from the start ends that long after its notice (minus
    // the notice's own delay), so the end always finds a handover in progress.
    let ends_at = |notice_at: Option<Instant>| match script.first_ends {
        Some((after, end)) if index == 0 && script.slow_from_start => {
            notice_at.map(|t| (t + after.saturating_sub(script.notice_after), end))
        }
        Some((after, end)) if index == 0 => Some((opened + after, end)),
        _ => None,
    };
    let notice_after = match index {
        0 => Some(script.notice_after),
        1 => script.second_notice_after,
        _ => None,
    };
    let mut notice_at: Option<Instant> = None;
    let mut closed = false;
    // Replies held back: (due, text).
    let mut held: VecDeque<(Instant, String)> = VecDeque::new();
    while start.elapsed() < Duration::from_secs(20) {
        let ends = ends_at(notice_at);
        let stopped = ends.is_some_and(|(at, _)| Instant::now() >= at);
        if let Some((at, end)) = ends
            && end != End::Silent
            && at.elapsed() >= Duration::from_millis(100)
        {
            // Dropped: FIN, or RST with unread input.
            return;
        }
        if stopped {
            // Read and drop (a reset reads nothing, so its close finds input unread).
            if ends.is_some_and(|(_, end)| end == End::Reset) {
                std::thread::sleep(Duration::from_millis(5));
            } else if matches!(s.read(&mut chunk), Ok(0)) {
                return;
            }
            continue;
        }
        if Instant::now() >= next_alive {
            text(
                &mut s,
                &format!(
                    "{{\"type\":\"alive\",\"instance\":\"{instance}\",\"phase\":\"serving\",\
                     \"interval_ms\":{interval_ms},\"uptime_ms\":1}}"
                ),
            );
            next_alive += script.interval;
        }
        // A connection holding its replies from the start gives its notice only once it owes
        // one (on a slow machine the client may otherwise read the notice before it sent any).
        let owes = !(index == 0 && script.slow_from_start && held.is_empty());
        if notice_at.is_none() && owes && notice_after.is_some_and(|a| start.elapsed() >= a) {
            let notice = format!(
                "{{\"type\":\"alive\",\"event\":\"goaway\",\"instance\":\"{instance}\",\
                 \"phase\":\"draining\",\"interval_ms\":{interval_ms},\"uptime_ms\":1,\
                 \"close_in_ms\":{handover_ms}}}"
            );
            text(&mut s, &notice);
            if script.repeat_notice {
                text(&mut s, &notice);
            }
            notice_at = Some(Instant::now());
        }
        while held.front().is_some_and(|(due, _)| *due <= Instant::now()) {
            let (_, reply) = held.pop_front().unwrap();
            text(&mut s, &reply);
        }
        if !closed && notice_at.is_some_and(|t| t.elapsed() >= script.close_in) {
            // Replies already queued go out before the close frame.
            for (_, reply) in held.drain(..) {
                text(&mut s, &reply);
            }
            let close = ws::encode(true, ws::CLOSE, &1012u16.to_be_bytes(), None, 0);
            let _ = s.write_all(&close);
            closed = true;
        }
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
        while let Some((frame, used)) = ws::decode(&buf) {
            buf.drain(..used);
            match frame.opcode {
                ws::TEXT if !closed => {
                    let reply = frame.text().chars().rev().collect::<String>();
                    let slow = notice_at.is_some() || (index == 0 && script.slow_from_start);
                    if slow && !script.slow_after_notice.is_zero() {
                        held.push_back((Instant::now() + script.slow_after_notice, reply));
                    } else {
                        text(&mut s, &reply);
                    }
                }
                ws::CLOSE => {
                    if !closed {
                        let _ = s.write_all(&ws::encode(true, ws::CLOSE, &frame.payload, None, 0));
                    }
                    let _ = s.shutdown(Shutdown::Write);
                    let until = Instant::now() + Duration::from_secs(2);
                    while Instant::now() < until && !matches!(s.read(&mut chunk), Ok(0)) {}
                    return;
                }
                _ => {}
            }
        }
    }
}

pub fn scripted_server(script: Script) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let index = accepted.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || serve(s, index, script));
        }
    });
    addr
}

pub fn fleet(addr: SocketAddr, old_clients: usize) -> Fleet {
    Fleet::new(FleetConfig {
        addrs: vec![addr],
        clients: 1,
        old_clients,
        send_interval: Duration::from_millis(10),
        in_flight: 4,
        restart_delay: (Duration::from_millis(10), Duration::from_millis(20)),
        backoff_base: Duration::from_millis(10),
        backoff_cap: Duration::from_millis(100),
        stable_after: Duration::from_secs(30),
        close_wait: Duration::from_secs(2),
        handshake_timeout: Duration::from_millis(300),
    })
    .unwrap()
}

/// Runs the client through the script: until it is on pod B with the old connection gone,
/// then with sending off until every message is answered.
pub fn play(f: &mut Fleet, to: &str) -> ClientReport {
    f.run(Duration::from_secs(5), |f| {
        f.on_instance(to) == 1 && f.clients[0].conns.iter().flatten().count() == 1
    })
    .unwrap();
    f.run(Duration::from_millis(100), |_| false).unwrap();
    f.sending = false;
    f.run(Duration::from_secs(2), |f| f.unanswered() == 0)
        .unwrap();
    f.reports(Instant::now()).remove(0)
}
