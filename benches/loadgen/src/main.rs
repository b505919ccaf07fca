//! Load generator for wsdrain's benchmarks. Every mode is bounded in count and time, checks
//! every reply, and prints one result line (also appended as CSV with `--csv FILE`).
//!
//! `echo`: C connections × K messages in flight × S bytes for T seconds: messages per second,
//! p50/p99/p99.9 round trip, and the server's CPU time per message (from /proc/PID/stat: the
//! fair figure when client and server share the cores).
//!
//! `connect`: connections per second, each a TCP connect, an upgrade, one echo and a close,
//! with C in progress at a time, and the server's CPU time per connection.
//!
//! `fanout`: N idle connections while the server sends its alive messages: the server's CPU
//! time per alive message.
//!
//! `static`: C keep-alive HTTP/1.1 connections asking for one file (`--path`) again and again:
//! requests per second and the server's CPU time per request (see `files.rs`).
//!
//! `idle`: opens N WebSocket connections from source addresses 127.0.0.2, 127.0.0.3, … (10,000
//! from each: see `driver::source_address`), and reads the server's memory from /proc before, after
//! opening, after one message on each, and after one round of alive messages: bytes of server
//! RSS per connection, and the kernel's socket memory per connection, which a pod's memory limit
//! also pays.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use testkit::ws;

mod driver;
mod files;
mod modes;
mod stats;

use driver::source_address;
/// Any single read or connect waits at most this long.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("idle") => idle(&Options::parse(&args[1..])),
        Some(mode @ ("echo" | "connect" | "fanout")) => run_mode(mode, &Options::parse(&args[1..])),
        Some("static") => static_files(&Options::parse(&args[1..])),
        Some("startup") => startup(&args[1..]),
        _ => Err(usage()),
    };
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(2);
    }
}

fn usage() -> String {
    "usage: loadgen idle|echo|connect|fanout|static --addr HOST:PORT --pid SERVER_PID [--connections N] \
     [--rate PER_SEC] [--alive-wait SECS] [--in-flight K] [--size BYTES] [--seconds T] [--warmup S] \
     [--label NAME] [--csv FILE] [--cdf FILE] [--max-seconds S] [--path /FILE]"
        .to_string()
}

#[derive(Debug, Clone)]
struct Options {
    addr: SocketAddr,
    pid: u32,
    connections: usize,
    rate: f64,
    alive_wait: Duration,
    label: String,
    csv: Option<String>,
    cdf: Option<String>,
    max_time: Duration,
    in_flight: usize,
    size: usize,
    seconds: f64,
    warmup: f64,
    /// The file `static` asks for.
    path: String,
    /// `--rate` as given (idle: connections opened per second; echo: messages per second).
    rate_given: Option<f64>,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let mut o = Options {
            addr: "127.0.0.1:8080".parse().unwrap(),
            pid: 0,
            connections: 1000,
            rate: 5000.0,
            alive_wait: Duration::ZERO,
            label: "wsdrain".into(),
            csv: None,
            cdf: None,
            max_time: Duration::from_secs(300),
            in_flight: 16,
            size: 32,
            seconds: 10.0,
            warmup: 2.0,
            path: "/index.html".into(),
            rate_given: None,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it
                .next()
                .unwrap_or_else(|| fail(&format!("{flag} needs a value")));
            match flag.as_str() {
                "--addr" => o.addr = value.parse().unwrap_or_else(|_| fail("bad --addr")),
                "--pid" => o.pid = value.parse().unwrap_or_else(|_| fail("bad --pid")),
                "--connections" => {
                    o.connections = value.parse().unwrap_or_else(|_| fail("bad --connections"))
                }
                "--rate" => {
                    o.rate = value.parse().unwrap_or_else(|_| fail("bad --rate"));
                    o.rate_given = Some(o.rate);
                }
                "--alive-wait" => {
                    o.alive_wait = Duration::from_secs_f64(
                        value.parse().unwrap_or_else(|_| fail("bad --alive-wait")),
                    )
                }
                "--label" => o.label = value.clone(),
                "--csv" => o.csv = Some(value.clone()),
                "--cdf" => o.cdf = Some(value.clone()),
                "--in-flight" => {
                    o.in_flight = value.parse().unwrap_or_else(|_| fail("bad --in-flight"))
                }
                "--size" => o.size = value.parse().unwrap_or_else(|_| fail("bad --size")),
                "--seconds" => o.seconds = value.parse().unwrap_or_else(|_| fail("bad --seconds")),
                "--warmup" => o.warmup = value.parse().unwrap_or_else(|_| fail("bad --warmup")),
                "--path" => o.path = value.clone(),
                "--max-seconds" => {
                    o.max_time = Duration::from_secs(
                        value.parse().unwrap_or_else(|_| fail("bad --max-seconds")),
                    )
                }
                _ => fail(&format!("unknown flag {flag}\n{}", usage())),
            }
        }
        if o.pid == 0 {
            fail("--pid is required (the server's process id, to read its memory)");
        }
        o
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    std::process::exit(2);
}

/// Memory figures read from /proc at one moment.
#[derive(Debug, Clone, Copy)]
struct Memory {
    /// Server resident set, bytes.
    rss: u64,
    /// Kernel TCP buffer memory (all sockets), bytes.
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
        tcp_mem: pages * 4096,
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

/// A blocking client WebSocket with just enough protocol for the benchmarks.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(server: SocketAddr, source: Ipv4Addr) -> Result<Client, String> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
        socket
            .bind(&SocketAddr::V4(SocketAddrV4::new(source, 0)).into())
            .map_err(|e| format!("bind {source}: {e}"))?;
        socket
            .connect_timeout(&server.into(), IO_TIMEOUT)
            .map_err(|e| format!("connect from {source}: {e}"))?;
        // An abortive close when the run ends (RST, no TIME_WAIT): back-to-back runs would
        // otherwise exhaust the source address's ephemeral ports.
        socket
            .set_linger(Some(Duration::ZERO))
            .map_err(|e| e.to_string())?;
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut client = Client {
            stream,
            buf: Vec::new(),
        };
        client
            .stream
            .write_all(ws::UPGRADE_REQUEST.as_bytes())
            .map_err(|e| e.to_string())?;
        let end = loop {
            if let Some(upgrade) = ws::upgrade_response(&client.buf) {
                break upgrade?;
            }
            client.fill()?;
        };
        client.buf.drain(..end);
        Ok(client)
    }

    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err("server closed the connection".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    fn send_text(&mut self, text: &[u8]) -> Result<(), String> {
        let frame = ws::encode(true, ws::TEXT, text, Some(driver::MASK), 0);
        self.stream.write_all(&frame).map_err(|e| e.to_string())
    }

    /// Reads one text frame; `Ok((is_alive, payload))`.
    fn read_text(&mut self) -> Result<(bool, Vec<u8>), String> {
        loop {
            while let Some((frame, used)) = ws::decode(&self.buf) {
                self.buf.drain(..used);
                let payload = frame.payload;
                match frame.opcode {
                    ws::TEXT => return Ok((payload.starts_with(b"{\"type\":\"alive\""), payload)),
                    ws::PING | ws::PONG => {}
                    ws::CLOSE => return Err("server sent close".into()),
                    other => return Err(format!("unexpected opcode {other}")),
                }
            }
            self.fill()?;
        }
    }
}

/// `startup --server PATH [--runs N]`: time from spawning the server to its "listening" log
/// line, median and worst of N runs (each server is then stopped with SIGKILL).
fn startup(args: &[String]) -> Result<(), String> {
    let mut server = None;
    let mut runs = 20usize;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--server", Some(path)) => server = Some(path.clone()),
            ("--runs", Some(n)) => runs = n.parse().map_err(|_| "bad --runs")?,
            _ => return Err(usage()),
        }
    }
    let server = server.ok_or("--server is required")?;
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        // The test kit's launcher (loopback, ephemeral ports) notes when it read the listening
        // line, so its thread hand-off is not counted.
        let mut child = testkit::server::Launch::new(&server).start()?;
        times.push(child.listening_after());
        child.kill()?;
    }
    times.sort();
    println!(
        "startup: spawn to listening: median {:.2} ms, worst {:.2} ms over {} runs",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0,
        times.len()
    );
    Ok(())
}

/// Appends one row to a CSV file, writing the header first if the file is new.
fn append_csv(path: &str, header: &str, row: &str) -> Result<(), String> {
    let new = !std::path::Path::new(path).exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    if new {
        writeln!(f, "{header}").map_err(|e| e.to_string())?;
    }
    writeln!(f, "{row}").map_err(|e| e.to_string())
}

fn run_mode(mode: &str, o: &Options) -> Result<(), String> {
    if o.seconds > o.max_time.as_secs_f64() {
        return Err("--seconds is over --max-seconds".into());
    }
    let load = modes::Load {
        addr: o.addr,
        pid: o.pid,
        connections: o.connections,
        in_flight: o.in_flight,
        size: o.size,
        warmup: Duration::from_secs_f64(o.warmup),
        duration: Duration::from_secs_f64(o.seconds),
        rate: if mode == "echo" {
            o.rate_given.unwrap_or(0.0)
        } else {
            0.0
        },
    };
    match mode {
        "echo" => {
            let r = modes::echo(&load)?;
            // One list of columns for both the printed line and the CSV row.
            let columns = [
                ("connections", o.connections.to_string()),
                ("in_flight", o.in_flight.to_string()),
                ("size", o.size.to_string()),
                ("msgs_per_sec", format!("{:.0}", r.messages_per_sec)),
                ("p50_us", r.p50_us.to_string()),
                ("p99_us", r.p99_us.to_string()),
                ("p999_us", r.p999_us.to_string()),
                (
                    "server_cpu_us_per_msg",
                    format!("{:.4}", r.server_cpu_us_per_message),
                ),
                ("errors", r.errors.to_string()),
            ];
            let printed: Vec<String> = columns.iter().map(|(k, v)| format!("{k} {v}")).collect();
            println!("{}: echo: {}", o.label, printed.join(", "));
            if let Some(path) = &o.csv {
                let names: Vec<&str> = columns.iter().map(|(k, _)| *k).collect();
                let values: Vec<&str> = columns.iter().map(|(_, v)| v.as_str()).collect();
                append_csv(
                    path,
                    &format!("label,{}", names.join(",")),
                    &format!("{},{}", o.label, values.join(",")),
                )?;
            }
            if let Some(path) = &o.cdf {
                for (us, fraction) in r.histogram.cdf() {
                    append_csv(
                        path,
                        "label,latency_us,fraction",
                        &format!("{},{us},{fraction:.6}", o.label),
                    )?;
                }
            }
            if r.errors > 0 {
                return Err(format!("{} errors", r.errors));
            }
        }
        "connect" => {
            let (rate, cpu_us, errors) = modes::connect(&load)?;
            println!(
                "{}: connect with {} in progress: {rate:.0} connections/s, server CPU {cpu_us:.2} us per connection, errors {errors}",
                o.label, o.connections
            );
            if let Some(path) = &o.csv {
                append_csv(
                    path,
                    "label,concurrency,connections_per_sec,server_cpu_us_per_conn,errors",
                    &format!(
                        "{},{},{rate:.0},{cpu_us:.3},{errors}",
                        o.label, o.connections
                    ),
                )?;
            }
            if errors > 0 {
                return Err(format!("{errors} errors"));
            }
        }
        _ => {
            let (alive, cpu_us, errors) = modes::fanout(&load)?;
            println!(
                "{}: fanout {} idle conns: {alive} alive messages in {:.0}s, server CPU {cpu_us:.3} us per alive message, errors {errors}",
                o.label, o.connections, o.seconds
            );
            if let Some(path) = &o.csv {
                append_csv(
                    path,
                    "label,connections,alive_messages,server_cpu_us_per_alive,errors",
                    &format!("{},{},{alive},{cpu_us:.4},{errors}", o.label, o.connections),
                )?;
            }
            if errors > 0 {
                return Err(format!("{errors} errors"));
            }
        }
    }
    Ok(())
}

fn static_files(o: &Options) -> Result<(), String> {
    if o.seconds + o.warmup > o.max_time.as_secs_f64() {
        return Err("--seconds plus --warmup is over --max-seconds".into());
    }
    let r = files::run(
        o.addr,
        o.pid,
        o.connections,
        &o.path,
        Duration::from_secs_f64(o.warmup),
        Duration::from_secs_f64(o.seconds),
    )?;
    println!(
        "{}: static {} ({} B) over {} keep-alive connections: {:.0} requests/s, server CPU {:.3} us per request, errors {}",
        o.label,
        o.path,
        r.body_bytes,
        o.connections,
        r.requests_per_sec,
        r.server_cpu_us_per_request,
        r.errors
    );
    if let Some(path) = &o.csv {
        append_csv(
            path,
            "label,connections,path,body_bytes,requests_per_sec,server_cpu_us_per_req,errors",
            &format!(
                "{},{},{},{},{:.0},{:.4},{}",
                o.label,
                o.connections,
                o.path,
                r.body_bytes,
                r.requests_per_sec,
                r.server_cpu_us_per_request,
                r.errors
            ),
        )?;
    }
    if r.errors > 0 {
        return Err(format!("{} errors", r.errors));
    }
    Ok(())
}

fn idle(o: &Options) -> Result<(), String> {
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
            c.stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
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
    let kernel_tcp = (opened.tcp_mem.saturating_sub(before.tcp_mem)) as f64 / n;
    // Both ends of every connection live on this machine: half the slab growth is the server's.
    let kernel_slab = (opened.slab.saturating_sub(before.slab)) as f64 / n / 2.0;
    let alive_per = alive_memory.map(per);
    println!(
        "{label}: {n} idle WebSockets opened in {open_secs:.1}s; server RSS {base:.1} MiB before; per connection: \
         {idle:.0} B idle, {msg:.0} B after one message each, {alive} after one alive round; \
         kernel per connection: {kernel_tcp:.0} B TCP buffers, ~{kernel_slab:.0} B slab (server side)",
        label = o.label,
        n = o.connections,
        base = before.rss as f64 / 1048576.0,
        idle = per(opened),
        msg = per(messaged),
        alive = alive_per.map_or("n/a".into(), |v| format!("{v:.0} B")),
    );
    if let Some(path) = &o.csv {
        append_csv(
            path,
            "label,connections,rss_before,rss_per_idle,rss_per_after_message,rss_per_after_alive,kernel_tcp_per,kernel_slab_per",
            &format!(
                "{},{},{},{:.1},{:.1},{},{:.1},{:.1}",
                o.label,
                o.connections,
                before.rss,
                per(opened),
                per(messaged),
                alive_per.map_or(String::new(), |v| format!("{v:.1}")),
                kernel_tcp,
                kernel_slab
            ),
        )?;
    }
    Ok(())
}
