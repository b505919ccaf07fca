//! `idle`: opens N WebSocket connections and reads the server's memory from /proc before, after
//! opening, after one message on each, and after one round of alive messages.

use std::time::{Duration, Instant};

use crate::client::Client;
use crate::driver::source_address;
use crate::options::Options;
use crate::stats::page_size;

/// Memory figures read from /proc at one moment.
#[derive(Debug, Clone, Copy)]
struct Memory {
    /// Server resident set, bytes.
    rss: u64,
    /// Kernel TCP buffer memory (all sockets), bytes: sockstat counts it in pages.
    tcp_mem: u64,
    /// Kernel slab memory (all caches), bytes.
    slab: u64,
}

fn memory(pid: u32) -> Result<Memory, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("server gone? {e}"))?;
    let rss = kib_field(&status, "VmRSS:")? * 1024;
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").map_err(|e| e.to_string())?;
    let tcp = sockstat
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .ok_or("no TCP line in sockstat")?;
    let pages: u64 = tcp
        .split_whitespace()
        .skip_while(|w| *w != "mem")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or("no mem in sockstat")?;
    let meminfo = std::fs::read_to_string("/proc/meminfo").map_err(|e| e.to_string())?;
    let slab = kib_field(&meminfo, "Slab:")? * 1024;
    Ok(Memory {
        rss,
        tcp_mem: pages * page_size()?,
        slab,
    })
}

fn kib_field(text: &str, name: &str) -> Result<u64, String> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {name}"))
}

/// What one `idle` run measured; the per-connection figures are bytes.
pub struct IdleResult {
    pub open_secs: f64,
    /// Server RSS before the first connection.
    pub rss_before: u64,
    /// Server RSS growth per connection: open and idle, after one message each, and after one
    /// round of alive messages (when `--alive-wait` asked for one).
    pub rss_per_idle: f64,
    pub rss_per_after_message: f64,
    pub rss_per_after_alive: Option<f64>,
    /// The kernel's TCP buffers and (estimated) slab per connection, server side.
    pub kernel_tcp_per: f64,
    pub kernel_slab_per: f64,
}

pub fn run(o: &Options) -> Result<IdleResult, String> {
    let started = Instant::now();
    let check_time = || {
        if started.elapsed() > o.max_time {
            Err(format!("over --max-seconds {}", o.max_time.as_secs()))
        } else {
            Ok(())
        }
    };
    let before = memory(o.pid)?;
    let mut clients = Vec::with_capacity(o.connections);
    let pace = Duration::from_secs_f64(1.0 / o.rate.max(1.0));
    for i in 0..o.connections {
        let due = started + pace.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait); // pacing the open rate, not synchronisation
        }
        clients.push(Client::connect(o.addr, source_address(i))?);
        if i % 1000 == 0 {
            check_time()?;
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    let opened = memory(o.pid)?;

    for (i, c) in clients.iter_mut().enumerate() {
        c.send_text(format!("message {i}").as_bytes())?;
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let expected: String = format!("message {i}").chars().rev().collect();
        loop {
            let (alive, payload) = c.read_text()?;
            if alive {
                continue;
            }
            if payload != expected.as_bytes() {
                return Err(format!(
                    "connection {i}: wrong reply {:?}",
                    String::from_utf8_lossy(&payload)
                ));
            }
            break;
        }
        if i % 1000 == 0 {
            check_time()?;
        }
    }
    let messaged = memory(o.pid)?;

    let alive_memory = if o.alive_wait.is_zero() {
        None
    } else {
        // Every connection must receive an alive message within the wait.
        let deadline = Instant::now() + o.alive_wait;
        for (i, c) in clients.iter_mut().enumerate() {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            c.set_read_timeout(left)?;
            loop {
                let (alive, _) = c
                    .read_text()
                    .map_err(|e| format!("connection {i}: no alive message: {e}"))?;
                if alive {
                    break;
                }
            }
        }
        Some(memory(o.pid)?)
    };

    let n = o.connections as f64;
    let per = |m: Memory| (m.rss.saturating_sub(before.rss)) as f64 / n;
    Ok(IdleResult {
        open_secs,
        rss_before: before.rss,
        rss_per_idle: per(opened),
        rss_per_after_message: per(messaged),
        rss_per_after_alive: alive_memory.map(per),
        kernel_tcp_per: (opened.tcp_mem.saturating_sub(before.tcp_mem)) as f64 / n,
        // Both ends of every connection live on this machine: half the slab growth is the
        // server's.
        kernel_slab_per: (opened.slab.saturating_sub(before.slab)) as f64 / n / 2.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kib_field_is_read_by_its_name() {
        let status = "Name:\twsdrain\nVmRSS:\t    2416 kB\nThreads:\t1\n";
        assert_eq!(kib_field(status, "VmRSS:"), Ok(2416));
        assert_eq!(kib_field(status, "Slab:"), Err("no Slab:".to_string()));
    }
}
