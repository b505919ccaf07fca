//! Load generator for wsdrain's benchmarks. Every mode is bounded in count and time, checks
//! every reply, and prints one result line (also appended as CSV with `--csv FILE`: `report.rs`).
//!
//! `echo`: C connections × K messages in flight × S bytes for T seconds: messages per second,
//! p50/p99/p99.9 round trip, and the server's CPU time per message (from /proc/PID/stat: the
//! fair figure when client and server share the cores).
//!
//! `connect`: connections per second, each a TCP connect, an upgrade, one echo and a close,
//! with C in progress at a time, and the server's CPU time per connection.
//!
//! `fanout`: N idle connections while the server sends its alive messages: the server's CPU
//! time per alive message. `--poll-ms 0` keeps the client polling without sleeping: on loopback
//! the server's send runs the client's receive and wakes it, so this shows what those wake-ups
//! cost the server.
//!
//! `static`: C keep-alive HTTP/1.1 connections asking for one file (`--path`) again and again:
//! requests per second and the server's CPU time per request (see `files.rs`).
//!
//! `idle`: opens N WebSocket connections from source addresses 127.0.0.2, 127.0.0.3, … (10,000
//! from each: see `driver::source_address`), and reads the server's memory from /proc before, after
//! opening, after one message on each, and after one round of alive messages: bytes of server
//! RSS per connection, and the kernel's socket memory per connection, which a pod's memory limit
//! also pays (`idle.rs`).
//!
//! `startup`: spawn to listening, for the server binary given (`startup.rs`).
//!
//! The flags are in `options.rs`.

use std::time::Duration;

mod client;
mod driver;
mod files;
mod idle;
mod modes;
mod options;
mod report;
mod startup;
mod stats;

use options::{Options, usage};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("startup") => startup::run(&args[1..]),
        Some(mode @ ("idle" | "echo" | "connect" | "fanout" | "static")) => {
            Options::parse(&args[1..]).and_then(|o| run(mode, &o))
        }
        _ => Err(usage()),
    };
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(2);
    }
}

/// Runs one mode and reports it; a run with errors (a wrong or missing reply) fails after its
/// report.
fn run(mode: &str, o: &Options) -> Result<(), String> {
    // idle's own bound is --max-seconds; the timed modes' --seconds (and static's warm-up)
    // must fit in it.
    let limit = o.max_time;
    let timed = match mode {
        "idle" => Duration::ZERO,
        "static" => o.seconds + o.warmup,
        _ => o.seconds,
    };
    if timed > limit {
        return Err(format!(
            "{mode}: --seconds (static: plus --warmup) is over --max-seconds"
        ));
    }
    let load = modes::Load {
        addr: o.addr,
        pid: o.pid,
        connections: o.connections,
        in_flight: o.in_flight,
        size: o.size,
        warmup: o.warmup,
        duration: o.seconds,
        rate: if mode == "echo" {
            o.rate_given.unwrap_or(0.0)
        } else {
            0.0
        },
        poll: Duration::from_millis(o.poll_ms),
    };
    let errors = match mode {
        "idle" => {
            report::idle(o, &idle::run(o)?)?;
            0
        }
        "echo" => {
            let r = modes::echo(&load)?;
            report::echo(o, &r)?;
            r.errors
        }
        "connect" => {
            let (rate, cpu_us, errors) = modes::connect(&load)?;
            report::connect(o, rate, cpu_us, errors)?;
            errors
        }
        "fanout" => {
            let (alive, cpu_us, errors) = modes::fanout(&load)?;
            report::fanout(o, alive, cpu_us, errors)?;
            errors
        }
        _ => {
            let r = files::run(
                o.addr,
                o.pid,
                o.connections,
                &o.path,
                load.warmup,
                load.duration,
            )?;
            report::static_files(o, &r)?;
            r.errors
        }
    };
    if errors > 0 {
        return Err(format!("{errors} errors"));
    }
    Ok(())
}
