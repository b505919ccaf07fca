//! The event-driven modes: `echo` (throughput, latency, server CPU per message), `connect`
//! (connections per second) and `fanout` (server CPU per alive message).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::driver::{Behaviour, Conn, Driver, Ended};
use crate::stats::{Histogram, cpu_seconds};
use testkit::ws::ALIVE_PREFIX;

/// Settings shared by the modes.
#[derive(Debug, Clone)]
pub struct Load {
    pub addr: std::net::SocketAddr,
    pub pid: u32,
    pub connections: usize,
    pub in_flight: usize,
    pub size: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Offered load in messages per second over all connections (0 = as fast as replies come).
    pub rate: f64,
    /// fanout: the longest one poll waits (zero: the client never sleeps).
    pub poll: Duration,
}

fn open_all(
    driver: &mut Driver,
    behaviour: &mut impl Behaviour,
    n: usize,
    max: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + max;
    let mut started = 0;
    while driver.open() < n {
        // Keep at most 256 handshakes in progress.
        while started < n && started - driver.open().min(started) < 256 {
            driver
                .connect(started)
                .map_err(|e| format!("connect: {e}"))?;
            started += 1;
        }
        driver
            .turn(behaviour, Duration::from_millis(10))
            .map_err(|e| e.to_string())?;
        if Instant::now() > deadline {
            return Err(format!("only {} of {n} connections opened", driver.open()));
        }
        if driver.errors > 0 {
            return Err(format!("{} connections failed to open", driver.errors));
        }
    }
    Ok(())
}

/// The payload for message `seq`: its number, then filler to `size` bytes.
fn payload(seq: u64, size: usize) -> Vec<u8> {
    let mut p = format!("{seq:016}").into_bytes();
    p.resize(size.max(16), b'x');
    p
}

struct Echo {
    size: usize,
    in_flight: usize,
    next_seq: u64,
    /// Per connection: (sequence, sent at) of messages awaiting their reply.
    waiting: Vec<VecDeque<(u64, Instant)>>,
    measuring: bool,
    histogram: Histogram,
    answered: u64,
    wrong: u64,
    closed: u64,
    /// With an offered rate: messages each connection may still send now.
    credits: Vec<f64>,
    paced: bool,
}

impl Echo {
    fn send(&mut self, id: usize, conn: &mut Conn, now: Instant) {
        if self.waiting.len() <= id {
            self.waiting.resize_with(id + 1, VecDeque::new);
            self.credits.resize(id + 1, 0.0);
        }
        while self.waiting[id].len() < self.in_flight {
            if self.paced {
                if self.credits[id] < 1.0 {
                    break;
                }
                self.credits[id] -= 1.0;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            conn.send_text(&payload(seq, self.size));
            self.waiting[id].push_back((seq, now));
        }
    }
}

impl Behaviour for Echo {
    fn on_open(&mut self, id: usize, conn: &mut Conn, now: Instant) {
        self.send(id, conn, now);
    }

    fn on_text(&mut self, id: usize, conn: &mut Conn, reply: &[u8], now: Instant) {
        if reply.starts_with(ALIVE_PREFIX.as_bytes()) {
            return;
        }
        let Some((seq, sent)) = self.waiting.get_mut(id).and_then(VecDeque::pop_front) else {
            self.wrong += 1;
            return;
        };
        let mut expected = payload(seq, self.size);
        expected.reverse(); // ASCII: bytes reverse as characters do
        if reply != expected {
            self.wrong += 1;
        }
        if self.measuring {
            self.histogram.record(now - sent);
            self.answered += 1;
        }
        self.send(id, conn, now);
    }

    fn on_closed(&mut self, _: usize, _: Ended, _: Instant) {
        self.closed += 1;
    }
}

/// Results of an echo run.
pub struct EchoResult {
    pub messages_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub server_cpu_us_per_message: f64,
    pub errors: u64,
    pub histogram: Histogram,
}

pub fn echo(load: &Load) -> Result<EchoResult, String> {
    let mut driver = Driver::new(load.addr).map_err(|e| e.to_string())?;
    let mut echo = Echo {
        size: load.size,
        in_flight: load.in_flight,
        next_seq: 0,
        waiting: Vec::new(),
        measuring: false,
        histogram: Histogram::new(),
        answered: 0,
        wrong: 0,
        closed: 0,
        credits: Vec::new(),
        paced: load.rate > 0.0,
    };
    open_all(
        &mut driver,
        &mut echo,
        load.connections,
        Duration::from_secs(30),
    )?;
    // With an offered rate, every connection earns credits at rate / connections per second,
    // topped up every millisecond; latency then includes no queueing in the generator.
    let per_conn_per_ms = load.rate / load.connections.max(1) as f64 / 1000.0;
    let mut last_tick = Instant::now();
    let mut step = |driver: &mut Driver, echo: &mut Echo| -> Result<(), String> {
        if echo.paced {
            let now = Instant::now();
            let ms = (now - last_tick).as_secs_f64() * 1000.0;
            if ms >= 1.0 {
                last_tick = now;
                for id in 0..driver.conns.len() {
                    if let Some(conn) = driver.conns[id].as_mut() {
                        if id < echo.credits.len() {
                            echo.credits[id] = (echo.credits[id] + per_conn_per_ms * ms)
                                .min(echo.in_flight as f64);
                        }
                        echo.send(id, conn, now);
                    }
                    driver.service(id, echo);
                }
            }
        }
        driver
            .turn(echo, Duration::from_millis(1))
            .map_err(|e| e.to_string())
    };
    let warm_until = Instant::now() + load.warmup;
    while Instant::now() < warm_until {
        step(&mut driver, &mut echo)?;
    }
    echo.measuring = true;
    let cpu_before = cpu_seconds(load.pid)?;
    let started = Instant::now();
    while started.elapsed() < load.duration {
        step(&mut driver, &mut echo)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(load.pid)? - cpu_before;
    echo.measuring = false;
    let errors = echo.wrong + echo.closed + driver.errors;
    if echo.answered == 0 {
        return Err("no replies".into());
    }
    Ok(EchoResult {
        messages_per_sec: echo.answered as f64 / elapsed,
        p50_us: echo.histogram.quantile(0.5),
        p99_us: echo.histogram.quantile(0.99),
        p999_us: echo.histogram.quantile(0.999),
        server_cpu_us_per_message: cpu * 1e6 / echo.answered as f64,
        errors,
        histogram: echo.histogram,
    })
}

#[derive(Default)]
struct Connect {
    done: u64,
    /// Wrong replies, and connections that ended before their reply (not by the driver's own
    /// error, which `Driver::errors` counts).
    failed: u64,
    /// The connections answered since the last turn, to replace at once.
    finished: Vec<usize>,
    /// Per connection slot: its reply came and loadgen sent the close, so its end is expected.
    answered: Vec<bool>,
}

impl Connect {
    /// Takes a text message on connection `id`; true when it was the echo, which ends the
    /// connection (the caller sends the close).
    fn reply(&mut self, id: usize, reply: &[u8]) -> bool {
        if reply.starts_with(ALIVE_PREFIX.as_bytes()) {
            return false;
        }
        if reply == b"olleh" {
            self.done += 1;
        } else {
            self.failed += 1;
        }
        if self.answered.len() <= id {
            self.answered.resize(id + 1, false);
        }
        self.answered[id] = true;
        self.finished.push(id);
        true
    }

    /// Connection `id` ended: a failure unless its reply came first (loadgen closed it) or the
    /// driver counted it already. The slot is free again for the next connection.
    fn closed(&mut self, id: usize, how: Ended) {
        let answered = self
            .answered
            .get_mut(id)
            .map(std::mem::take)
            .unwrap_or(false);
        if !answered && how != Ended::Error {
            self.failed += 1;
        }
    }
}

impl Behaviour for Connect {
    fn on_open(&mut self, _: usize, conn: &mut Conn, _: Instant) {
        conn.send_text(b"hello");
    }

    fn on_text(&mut self, id: usize, conn: &mut Conn, reply: &[u8], _: Instant) {
        if self.reply(id, reply) {
            conn.send_close();
        }
    }

    fn on_closed(&mut self, id: usize, how: Ended, _: Instant) {
        self.closed(id, how);
    }
}

/// Connections per second: TCP connect, upgrade, one echo, close; `load.connections` at a time.
/// Returns (connections per second, server CPU µs per connection, errors).
pub fn connect(load: &Load) -> Result<(f64, f64, u64), String> {
    let mut driver = Driver::new(load.addr).map_err(|e| e.to_string())?;
    let mut c = Connect::default();
    let cpu_before = cpu_seconds(load.pid)?;
    let started = Instant::now();
    let mut index = 0usize;
    for _ in 0..load.connections {
        driver.connect(index).map_err(|e| e.to_string())?;
        index += 1;
    }
    while started.elapsed() < load.duration {
        driver
            .turn(&mut c, Duration::from_millis(5))
            .map_err(|e| e.to_string())?;
        // Each finished connection is replaced by a new one (its close completes in the background).
        for _ in c.finished.drain(..) {
            driver.connect(index % 400_000).map_err(|e| e.to_string())?;
            index += 1;
        }
        let live = driver.conns.iter().flatten().count();
        for _ in live..load.connections {
            driver.connect(index % 400_000).map_err(|e| e.to_string())?;
            index += 1;
        }
    }
    let rate = c.done as f64 / started.elapsed().as_secs_f64();
    // Includes the closes still completing and the connections left open at the end: a few
    // dozen against thousands done.
    let cpu = cpu_seconds(load.pid)? - cpu_before;
    let cpu_us = cpu * 1e6 / c.done.max(1) as f64;
    Ok((rate, cpu_us, c.failed + driver.errors))
}

struct Fanout {
    alive: u64,
    closed: u64,
}

impl Behaviour for Fanout {
    fn on_open(&mut self, _: usize, _: &mut Conn, _: Instant) {}
    fn on_text(&mut self, _: usize, _: &mut Conn, text: &[u8], _: Instant) {
        if text.starts_with(ALIVE_PREFIX.as_bytes()) {
            self.alive += 1;
        }
    }
    fn on_closed(&mut self, _: usize, _: Ended, _: Instant) {
        self.closed += 1;
    }
}

/// Server CPU per alive message: `load.connections` idle connections, the server sending alive
/// messages at its own interval, counted for `load.duration`.
pub fn fanout(load: &Load) -> Result<(u64, f64, u64), String> {
    let mut driver = Driver::new(load.addr).map_err(|e| e.to_string())?;
    let mut f = Fanout {
        alive: 0,
        closed: 0,
    };
    open_all(
        &mut driver,
        &mut f,
        load.connections,
        Duration::from_secs(60),
    )?;
    let warm_until = Instant::now() + load.warmup;
    while Instant::now() < warm_until {
        driver.turn(&mut f, load.poll).map_err(|e| e.to_string())?;
    }
    f.alive = 0;
    let cpu_before = cpu_seconds(load.pid)?;
    let started = Instant::now();
    while started.elapsed() < load.duration {
        driver.turn(&mut f, load.poll).map_err(|e| e.to_string())?;
    }
    let cpu = cpu_seconds(load.pid)? - cpu_before;
    if f.alive == 0 {
        return Err("no alive messages arrived (is ALIVE_INTERVAL set on the server?)".into());
    }
    Ok((
        f.alive,
        cpu * 1e6 / f.alive as f64,
        f.closed + driver.errors,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_counts_a_connection_closed_before_its_reply() {
        let mut c = Connect::default();
        // Answered, then closed by loadgen's close (either way the server ends it): no failure.
        assert!(c.reply(0, b"olleh"));
        c.closed(0, Ended::Close);
        assert!(c.reply(1, b"olleh"));
        c.closed(1, Ended::Eof);
        assert_eq!((c.done, c.failed), (2, 0));
        assert_eq!(c.finished, [0, 1]);
        // Slot 0 again, a new connection: the server closes it, or resets it, before the echo.
        c.closed(0, Ended::Close);
        c.closed(1, Ended::Eof);
        assert_eq!(c.failed, 2, "a missing reply is a failure");
        // The driver's own failures are in Driver::errors, not counted twice.
        c.closed(2, Ended::Error);
        assert_eq!(c.failed, 2);
        // Alive messages are not the reply; a wrong reply is a failure, and its close is not.
        assert!(!c.reply(3, b"{\"type\":\"alive\",\"n\":1}"));
        assert!(c.reply(3, b"hello"));
        c.closed(3, Ended::Close);
        assert_eq!((c.done, c.failed), (2, 3));
    }
}
