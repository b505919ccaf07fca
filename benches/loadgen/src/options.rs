//! The command line: the flags every load mode takes, their defaults, and the usage line.

use std::net::SocketAddr;
use std::time::Duration;

pub fn usage() -> String {
    "usage: loadgen idle|echo|connect|fanout|static --addr HOST:PORT --pid SERVER_PID [--connections N] \
     [--rate PER_SEC] [--alive-wait SECS] [--in-flight K] [--size BYTES] [--seconds T] [--warmup S] \
     [--label NAME] [--csv FILE] [--cdf FILE] [--max-seconds S] [--path /FILE] [--poll-ms MS]\n       \
     loadgen startup --server PATH [--runs N]"
        .to_string()
}

#[derive(Debug, Clone)]
pub struct Options {
    pub addr: SocketAddr,
    pub pid: u32,
    pub connections: usize,
    pub rate: f64,
    pub alive_wait: Duration,
    pub label: String,
    pub csv: Option<String>,
    pub cdf: Option<String>,
    pub max_time: Duration,
    pub in_flight: usize,
    pub size: usize,
    pub seconds: Duration,
    pub warmup: Duration,
    /// The file `static` asks for.
    pub path: String,
    /// `--rate` as given (idle: connections opened per second; echo: messages per second).
    pub rate_given: Option<f64>,
    /// fanout: the longest the client waits in one poll, in ms (20); 0 keeps it polling without
    /// ever sleeping, so no alive message has to wake it.
    pub poll_ms: u64,
}

impl Options {
    /// The options after the mode's name; an error names the flag that was wrong.
    pub fn parse(args: &[String]) -> Result<Options, String> {
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
            seconds: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            path: "/index.html".into(),
            rate_given: None,
            poll_ms: 20,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = || format!("bad {flag}: {value}");
            // Seconds, fractions allowed: a negative, NaN or endless value is refused here, not
            // left to panic where it becomes a Duration.
            let secs = || {
                value
                    .parse()
                    .ok()
                    .and_then(|s: f64| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(bad)
            };
            match flag.as_str() {
                "--addr" => o.addr = value.parse().map_err(|_| bad())?,
                "--pid" => o.pid = value.parse().map_err(|_| bad())?,
                "--connections" => o.connections = value.parse().map_err(|_| bad())?,
                "--rate" => {
                    o.rate = value.parse().map_err(|_| bad())?;
                    o.rate_given = Some(o.rate);
                }
                "--alive-wait" => o.alive_wait = secs()?,
                "--label" => o.label = value.clone(),
                "--csv" => o.csv = Some(value.clone()),
                "--cdf" => o.cdf = Some(value.clone()),
                "--in-flight" => o.in_flight = value.parse().map_err(|_| bad())?,
                "--size" => o.size = value.parse().map_err(|_| bad())?,
                "--seconds" => o.seconds = secs()?,
                "--warmup" => o.warmup = secs()?,
                "--path" => o.path = value.clone(),
                "--poll-ms" => o.poll_ms = value.parse().map_err(|_| bad())?,
                "--max-seconds" => {
                    o.max_time = Duration::from_secs(value.parse().map_err(|_| bad())?)
                }
                _ => return Err(format!("unknown flag {flag}\n{}", usage())),
            }
        }
        if o.pid == 0 {
            return Err("--pid is required (the server's process id, to read its memory)".into());
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> Result<Options, String> {
        let args: Vec<String> = args.split_whitespace().map(String::from).collect();
        Options::parse(&args)
    }

    #[test]
    fn flags_override_the_defaults() {
        let o = parse("--pid 42 --addr 127.0.0.1:9000 --connections 100 --rate 50000 --label uws --csv out.csv --alive-wait 1.5").unwrap();
        assert_eq!(o.pid, 42);
        assert_eq!(o.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(o.connections, 100);
        assert_eq!(o.rate_given, Some(50000.0));
        assert_eq!(o.label, "uws");
        assert_eq!(o.csv.as_deref(), Some("out.csv"));
        assert_eq!(o.alive_wait, Duration::from_millis(1500));
        assert_eq!(o.in_flight, 16, "a default left alone");
        assert_eq!(o.path, "/index.html");
    }

    #[test]
    fn the_pid_is_required() {
        assert!(parse("--connections 10").unwrap_err().contains("--pid"));
    }

    #[test]
    fn a_bad_flag_or_value_is_named() {
        assert!(
            parse("--pid 1 --bogus 3")
                .unwrap_err()
                .contains("unknown flag --bogus")
        );
        assert_eq!(parse("--pid 1 --size big").unwrap_err(), "bad --size: big");
        assert_eq!(
            parse("--pid 1 --alive-wait -1").unwrap_err(),
            "bad --alive-wait: -1"
        );
        assert_eq!(
            parse("--pid 1 --label").unwrap_err(),
            "--label needs a value"
        );
    }

    #[test]
    fn seconds_out_of_range_are_refused_not_a_panic() {
        for (flag, value) in [
            ("--seconds", "-1"),
            ("--seconds", "inf"),
            ("--seconds", "ten"),
            ("--warmup", "NaN"),
            ("--warmup", "-0.5"),
        ] {
            assert_eq!(
                parse(&format!("--pid 1 {flag} {value}")).unwrap_err(),
                format!("bad {flag}: {value}")
            );
        }
        let o = parse("--pid 1 --seconds 2.5 --warmup 0").unwrap();
        assert_eq!(o.seconds, Duration::from_millis(2500));
        assert_eq!(o.warmup, Duration::ZERO);
    }
}
