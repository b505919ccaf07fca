//! What the server's own code costs per operation as the number of connections grows past what
//! this machine's descriptors allow (issue 23): the very `Server` of the binary, over simulated
//! sockets (a minimal in-memory `Net`: no kernel, no syscalls), at N = 10,000, 100,000 and
//! 1,000,000 open WebSockets. Per N:
//!
//! - memory: the process's RSS growth per connection, from the server built (its slab and
//!   deadlines reserved, untouched) to N upgraded WebSockets after a round of alive messages
//!   (what a real server adds per idle connection, less the kernel's socket);
//! - CPU per alive message: the loop's steps over 3 s of alive messages every 1 s (the clock
//!   jumps to each deadline the loop asks for, as `shell::run` sleeps until it);
//! - CPU per echoed message: 1,000 connections spread over the slab, 16 text frames of 32 B each
//!   per read, 100 rounds;
//! - CPU per connection: 20,000 more connections, each accepted, upgraded (the hello), one echo,
//!   the client's close answered and the socket closed, beside the N open ones;
//! - CPU per `/metrics` scrape: 2,000 scrapes on one admin connection (the memory figures from a
//!   fixed probe: the server's own code, not its reads of `/proc`);
//! - the drain: SIGTERM, every WebSocket's goaway notice spread over `DRAIN_WINDOW` (10 s), each
//!   client answering it with its close frame at once, to the exit: CPU per connection.
//!
//! CPU is the time the one thread takes (a monotonic clock: it makes no syscall while measured,
//! so on a quiet core that is its CPU time; the kernel's own count, `schedstat`, moves only at
//! the scheduler's tick, 4 ms here): the server's own code and the simulated sockets' few
//! instructions, no kernel. A cost that grows with N is a data structure (the deadlines) or a
//! walk over every connection. Run it pinned to a core nothing else uses:
//!
//! ```sh
//! cargo build --release -p sansio
//! taskset -c 1 target/release/scale               # N = 10,000, 100,000, 1,000,000
//! taskset -c 1 target/release/scale 10000 50000
//! ```

use std::path::Path;

use testkit::ws;
use wsdrain::app::context::Context;
use wsdrain::app::static_files::{StaticFiles, StaticLimits};
use wsdrain::base::memory::MemoryReading;
use wsdrain::base::time::{Millis, NEVER};
use wsdrain::base::timers::Rng;
use wsdrain::config::{Command, Config};
use wsdrain::net::Listener;
use wsdrain::server::{Event, Server, Signal, Status, Tuning};

/// The loop clock's start, as `timers::Clock` starts it: 10 s before the 32-bit times wrap.
const START: Millis = (1 << 32) - 10_000;

mod sim_net;

use sim_net::{MASK, SimNet, client_close, index, world};

/// The server under test and its clock.
struct Bench {
    server: Server<SimNet>,
    now: Millis,
    exited: bool,
}

impl Bench {
    fn new(n: usize) -> Bench {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../static");
        let max = n + 20_000;
        let Ok(Command::Run(config)) = Config::parse(Vec::<String>::new(), |name| match name {
            "STATIC_DIR" => Some(dir.to_string()),
            "ALIVE_INTERVAL" => Some("1s".into()),
            // No pings: the clients here do not answer them (a bench of any length stays
            // within the 30 s of silence before the first anyway).
            "PING_INTERVAL" => Some("0".into()),
            "MAX_CONNECTIONS" => Some(max.to_string()),
            _ => None,
        }) else {
            panic!("settings")
        };
        let files =
            StaticFiles::load(Path::new(dir), StaticLimits::of(&config)).expect("static files");
        let mut ctx = Context::new(
            *config,
            files,
            "sansio",
            Rng::seeded(23),
            std::time::SystemTime::now,
        );
        ctx.memory_probe = MemoryReading::default;
        ctx.start(START);
        let server = Server::new(SimNet, ctx, max, Tuning::default());
        // The world's own buffers at their working size before any measurement: what grows
        // afterwards is the server's.
        world(|w| {
            w.input.reserve(2_000);
            w.registered.reserve(2_000);
            w.answer.reserve(2_000);
        });
        let mut bench = Bench {
            server,
            now: START,
            exited: false,
        };
        bench.step(Vec::new());
        bench
    }

    /// One step of the loop at the bench's time: when it next needs to run.
    fn step(&mut self, events: Vec<Event>) -> Option<Millis> {
        match self.server.step(self.now, events) {
            Status::Running { wake_at } => wake_at.filter(|&at| at != NEVER),
            Status::Exited => {
                self.exited = true;
                None
            }
        }
    }

    /// Steps with the events the world owes (input arrived), until none is owed.
    fn settle(&mut self) {
        loop {
            let ready: Vec<u32> = world(|w| std::mem::take(&mut w.answer));
            if ready.is_empty() || self.exited {
                return;
            }
            let events = ready
                .into_iter()
                .map(|slot| Event::Ready {
                    slot: slot as usize,
                    peer_closed: false,
                })
                .collect();
            self.step(events);
        }
    }

    /// Accepts `count` connections on `listener`: their slots.
    fn accept(&mut self, listener: Listener, count: usize) -> Vec<u32> {
        world(|w| w.backlog[index(listener)] += count);
        self.step(vec![Event::Acceptable(listener)]);
        world(|w| std::mem::take(&mut w.registered))
    }

    /// Gives each slot `bytes` to read and runs them.
    fn send(&mut self, slots: &[u32], bytes: &[u8]) {
        world(|w| {
            for &slot in slots {
                w.input.entry(slot).or_default().extend_from_slice(bytes);
            }
        });
        let events = slots
            .iter()
            .map(|&slot| Event::Ready {
                slot: slot as usize,
                peer_closed: false,
            })
            .collect();
        self.step(events);
    }

    /// Opens `n` WebSockets, 1,000 at a time (a fresh server gives them slots 0..n).
    fn open(&mut self, n: usize) {
        let mut opened = 0;
        while opened < n {
            let batch = self.accept(Listener::Public, (n - opened).min(1000));
            self.send(&batch, ws::UPGRADE_REQUEST.as_bytes());
            opened += batch.len();
        }
    }

    /// Runs the loop as the shell does, sleeping until each deadline it asks for, for `ms`.
    fn run_for(&mut self, ms: Millis) {
        let end = self.now + ms;
        while let Some(at) = self.step(Vec::new()) {
            if at > end {
                break;
            }
            self.now = at.max(self.now);
        }
        self.now = end;
        self.step(Vec::new());
    }
}

/// Time on the bench's clock, in ns (see the top: the thread's CPU time while it runs alone).
fn cpu_ns() -> u64 {
    thread_local! {
        static ORIGIN: std::time::Instant = std::time::Instant::now();
    }
    ORIGIN.with(|origin| origin.elapsed().as_nanos() as u64)
}

/// The process's resident memory, in bytes.
fn rss() -> u64 {
    let text = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("statm");
    pages * 4096
}

/// `f`'s CPU time in µs per `ops` operations.
fn per_op(ops: u64, f: impl FnOnce()) -> f64 {
    let before = cpu_ns();
    f();
    (cpu_ns() - before) as f64 / 1e3 / ops as f64
}

fn masked_text(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    ws::encode_into(&mut frame, true, ws::TEXT, payload, Some(MASK), 0);
    frame
}

struct Row {
    n: usize,
    memory: f64,
    alive: f64,
    echo: f64,
    connection: f64,
    scrape: f64,
    drain: f64,
    drain_ms: f64,
}

fn measure(n: usize) -> Row {
    let mut bench = Bench::new(n);
    let before = rss();
    bench.open(n);
    assert_eq!(
        bench.server.context().open.websocket,
        n,
        "every upgrade took"
    );
    // Each WebSocket's first alive message falls in its first interval: after 1.1 s every one
    // has had one, and the next round is under way.
    bench.run_for(1_100);
    let memory = rss().saturating_sub(before) as f64 / n as f64;

    // SCALE_ALIVE_SECONDS: a longer alive phase, for a profile of it (`perf record`).
    let seconds: u64 = std::env::var("SCALE_ALIVE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let sent = |b: &Bench| b.server.context().metrics.ws.alive_sent;
    let alive_before = sent(&bench);
    let cpu_before = cpu_ns();
    bench.run_for(seconds * 1_000);
    let alive_count = sent(&bench) - alive_before;
    let alive = (cpu_ns() - cpu_before) as f64 / 1e3 / alive_count as f64;
    assert!(
        alive_count >= seconds * n as u64 - n as u64 / 10,
        "{alive_count} alive messages to {n} connections in {seconds} s"
    );

    // Echo: 1,000 connections spread over the slab (slots of the first n are 0..n here).
    let chosen: Vec<u32> = (0..1000).map(|i| (i * n / 1000) as u32).collect();
    let frames: Vec<u8> = (0..16)
        .flat_map(|i| masked_text(format!("{i:016}xxxxxxxxxxxxxxxx").as_bytes()))
        .collect();
    let out_before = bench.server.context().metrics.ws.messages_out;
    let echo = per_op(1000 * 16 * 100, || {
        for _ in 0..100 {
            bench.send(&chosen, &frames);
        }
    });
    assert_eq!(
        bench.server.context().metrics.ws.messages_out - out_before,
        1000 * 16 * 100,
        "every message answered"
    );

    // Connections: accept, upgrade, one echo, the client's close; 20,000, 100 at a time.
    let closed_before = world(|w| w.closed);
    let hello = masked_text(b"hello");
    let close = client_close();
    let connection = per_op(20_000, || {
        for _ in 0..200 {
            let batch = bench.accept(Listener::Public, 100);
            bench.send(&batch, ws::UPGRADE_REQUEST.as_bytes());
            bench.send(&batch, &hello);
            bench.send(&batch, &close);
        }
    });
    assert_eq!(
        world(|w| w.closed) - closed_before,
        20_000,
        "every one closed"
    );
    assert_eq!(bench.server.context().open.websocket, n);

    // /metrics: 2,000 scrapes, one connection kept alive.
    let admin = bench.accept(Listener::Admin, 1);
    let request = b"GET /metrics HTTP/1.1\r\nHost: sansio\r\n\r\n";
    let bytes_before = world(|w| w.bytes_out);
    let scrape = per_op(2000, || {
        for _ in 0..2000 {
            bench.send(&admin, request);
        }
    });
    assert!(
        world(|w| w.bytes_out) - bytes_before > 2000 * 1000,
        "scrapes answered"
    );

    // The drain: SIGTERM, then the loop runs as the shell does; each client closes at its goaway.
    world(|w| w.parse_output = true);
    let started = bench.now;
    let drain = per_op(n as u64, || {
        bench.step(vec![Event::Signal(Signal::Term)]);
        while !bench.exited {
            bench.settle();
            let wake_at = bench.step(Vec::new());
            if bench.exited {
                break;
            }
            bench.settle();
            bench.now = wake_at.expect("the drain has a deadline").max(bench.now);
        }
    });
    world(|w| w.parse_output = false);
    let m = &bench.server.context().metrics;
    assert_eq!(
        m.ws.handover_left, n as u64,
        "every client left at its notice"
    );
    Row {
        n,
        memory,
        alive,
        echo,
        connection,
        scrape,
        drain,
        drain_ms: (bench.now - started) as f64,
    }
}

fn main() {
    let counts: Vec<usize> = {
        let args: Vec<usize> = std::env::args()
            .skip(1)
            .map(|a| a.parse().expect("N: a number of connections"))
            .collect();
        if args.is_empty() {
            vec![10_000, 100_000, 1_000_000]
        } else {
            args
        }
    };
    println!(
        "| N | memory per connection | CPU per alive message | per echoed message | per connection | per /metrics scrape | drain, per connection (simulated time) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for n in counts {
        let r = measure(n);
        println!(
            "| {} | {:.1} B | {:.3} µs | {:.3} µs | {:.2} µs | {:.1} µs | {:.2} µs ({:.1} s) |",
            r.n,
            r.memory,
            r.alive,
            r.echo,
            r.connection,
            r.scrape,
            r.drain,
            r.drain_ms / 1000.0
        );
    }
}
