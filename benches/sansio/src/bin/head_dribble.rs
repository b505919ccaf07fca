//! What a request head sent one byte at a time costs the server, against the same head in one
//! read (issue 21: an incomplete head was parsed again from its start at every read, quadratic
//! in its size). Sans-IO: the connection's own CPU, no sockets; `MAX_HEADER_BYTES=1MiB`, the
//! largest the server accepts.
//!
//! ```sh
//! cargo run --release -p sansio --bin head_dribble
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use wsdrain::app::context::Context;
use wsdrain::app::static_files::{StaticFiles, StaticLimits};
use wsdrain::base::timers::Rng;
use wsdrain::config::{Command, Config};
use wsdrain::connection::Connection;
use wsdrain::net::Listener;

/// A `GET /` head of about `size` bytes: 59 header fields of equal length.
fn head(size: usize) -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    let per = size / 60;
    let mut i = 0;
    while head.len() + per + 16 < size {
        head.extend(format!("X-H{i}: {}\r\n", "v".repeat(per)).as_bytes());
        i += 1;
    }
    head.extend(b"\r\n");
    head
}

/// Feeds `head` to a fresh connection in reads of `chunk` bytes; returns the time it took.
fn feed(config: &Config, head: &[u8], chunk: usize) -> Duration {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../static"));
    let files = StaticFiles::load(dir, StaticLimits::of(config)).expect("static files");
    let mut ctx = Context::new(
        config.clone(),
        files,
        "bench",
        Rng::seeded(1),
        std::time::SystemTime::now,
    );
    let mut conn = Connection::new(1, Listener::Public, 0);
    let mut answer = Vec::new();
    let started = Instant::now();
    for piece in head.chunks(chunk) {
        let mut piece = piece.to_vec();
        if conn.feed(&mut piece, &mut ctx, &mut answer).is_some() {
            break;
        }
    }
    let took = started.elapsed();
    assert!(
        answer.starts_with(b"HTTP/1.1 200 "),
        "the head was not served"
    );
    took
}

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../static");
    let Ok(Command::Run(config)) = Config::parse(Vec::<String>::new(), |name| match name {
        "STATIC_DIR" => Some(dir.to_string()),
        "MAX_HEADER_BYTES" => Some("1MiB".to_string()),
        _ => None,
    }) else {
        panic!("settings")
    };
    println!("| head | one read | one byte per read | ratio |");
    println!("|---|---|---|---|");
    for size in [8 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024 - 100] {
        let head = head(size);
        let whole = feed(&config, &head, head.len());
        let dribbled = feed(&config, &head, 1);
        println!(
            "| {} B | {:.1} µs | {:.1} µs | {:.0}× |",
            head.len(),
            whole.as_secs_f64() * 1e6,
            dribbled.as_secs_f64() * 1e6,
            dribbled.as_secs_f64() / whole.as_secs_f64()
        );
    }
}
