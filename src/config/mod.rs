//! Settings: every tunable comes from a CLI flag or an environment variable (a flag wins), with a
//! default, and is validated once at start with an error that names the setting.
//!
//! One table ([`SETTINGS`]) drives parsing, `--help` and the README's config table, so the three
//! cannot drift apart.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::connection::LINGER;

/// One setting: its environment name, flag, default and help text.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Environment variable name, e.g. `PRESTOP_DELAY`.
    pub env: &'static str,
    /// Flag name without dashes, e.g. `prestop-delay`.
    pub flag: &'static str,
    /// Default value as text ("" for unset).
    pub default: &'static str,
    /// What it means and what it accepts.
    pub help: &'static str,
}

const fn setting(
    env: &'static str,
    flag: &'static str,
    default: &'static str,
    help: &'static str,
) -> Setting {
    Setting {
        env,
        flag,
        default,
        help,
    }
}

/// Every setting the server reads, in `--help` order.
pub const SETTINGS: &[Setting] = &[
    setting(
        "BIND",
        "bind",
        "0.0.0.0",
        "public listener address (IPv4 or IPv6, e.g. ::)",
    ),
    setting(
        "PORT",
        "port",
        "8080",
        "public port: static files, /healthz, /readyz, /ws (0 = any free port)",
    ),
    setting(
        "ADMIN_BIND",
        "admin-bind",
        "0.0.0.0",
        "admin listener address; never expose it through the Service",
    ),
    setting(
        "ADMIN_PORT",
        "admin-port",
        "9090",
        "admin port: /healthz, /readyz, /metrics, /prestop (0 = any free port)",
    ),
    setting(
        "STATIC_DIR",
        "static-dir",
        "static",
        "directory served on the public port, loaded into memory at start",
    ),
    setting(
        "PRESTOP_DELAY",
        "prestop-delay",
        "15s",
        "how long GET /prestop waits before answering 200",
    ),
    setting(
        "DRAIN_WINDOW",
        "drain-window",
        "10s",
        "after SIGTERM, WebSockets are closed at random times spread over this window",
    ),
    setting(
        "CLOSE_TIMEOUT",
        "close-timeout",
        "5s",
        "how long a closing WebSocket may take to answer the close frame",
    ),
    setting(
        "TERMINATION_GRACE_PERIOD",
        "termination-grace-period",
        "",
        "the pod's terminationGracePeriodSeconds; when set, start fails unless PRESTOP_DELAY + DRAIN_WINDOW + CLOSE_TIMEOUT + 2s fits in it",
    ),
    setting(
        "ALIVE_INTERVAL",
        "alive-interval",
        "5s",
        "interval of the \"alive\" message to every WebSocket client (0 = off)",
    ),
    setting(
        "PING_INTERVAL",
        "ping-interval",
        "30s",
        "ping a WebSocket client after this much silence (0 = off)",
    ),
    setting(
        "PONG_TIMEOUT",
        "pong-timeout",
        "10s",
        "close a WebSocket whose pong has not arrived after this long",
    ),
    setting(
        "HEADER_TIMEOUT",
        "header-timeout",
        "10s",
        "a request head must arrive within this time, from accept or from its first byte",
    ),
    setting(
        "IDLE_TIMEOUT",
        "idle-timeout",
        "620s",
        "close a kept-alive HTTP connection idle this long (longer than Google's LB 600s)",
    ),
    setting(
        "MAX_CONNECTIONS",
        "max-connections",
        "auto",
        "public connections served at once; more get 503 (auto = open-files limit minus a reserve)",
    ),
    setting(
        "MAX_MESSAGE_SIZE",
        "max-message-size",
        "64KiB",
        "largest WebSocket message or frame accepted (bigger: close 1009)",
    ),
    setting(
        "MAX_OUTPUT_BYTES",
        "max-output-bytes",
        "1MiB",
        "queued output per WebSocket before it is closed with 1008",
    ),
    setting(
        "MAX_HEADER_BYTES",
        "max-header-bytes",
        "8KiB",
        "largest request line plus headers (bigger: 431)",
    ),
    setting(
        "LISTEN_BACKLOG",
        "listen-backlog",
        "4096",
        "listen(2) backlog of both listeners (capped by net.core.somaxconn)",
    ),
    setting(
        "ECHO_MODE",
        "echo-mode",
        "reverse",
        "reverse: answer text reversed; echo: answer any message unchanged (for conformance suites)",
    ),
    setting(
        "MAX_CONNECTION_AGE",
        "max-connection-age",
        "0",
        "close a WebSocket with 1012 at this age minus a random 0-10% (0 = off); keep below the LB's timeoutSec",
    ),
    setting(
        "ALLOWED_ORIGINS",
        "allowed-origins",
        "",
        "comma-separated Origins allowed to open a WebSocket, e.g. https://example.com (empty = any)",
    ),
    setting(
        "INSTANCE_ID",
        "instance-id",
        "",
        "name shown to clients and in logs (default: the hostname, i.e. the pod name)",
    ),
    setting(
        "RUST_LOG",
        "log",
        "info",
        "log level: error, warn, info, debug, trace or off",
    ),
];

/// Margin required between the drain budget and the pod's grace period.
pub const GRACE_MARGIN: Duration = Duration::from_secs(2);

/// Descriptors kept back from `MAX_CONNECTIONS=auto`: listeners, the poll, the signal pipe, the
/// spare descriptor, stdio, and [`MAX_ADMIN_CONNECTIONS`].
pub const FD_RESERVE: u64 = 32 + MAX_ADMIN_CONNECTIONS as u64;

/// Admin connections served at once (probes, metrics, preStop); counted apart from
/// `MAX_CONNECTIONS` so probes keep working when the public side is full.
pub const MAX_ADMIN_CONNECTIONS: usize = 64;

/// What the server answers to a WebSocket message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoMode {
    /// Text messages are answered reversed by Unicode scalar values; binary is refused.
    Reverse,
    /// Every message is echoed unchanged (for Autobahn and similar suites).
    Echo,
}

/// The validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Public listener address.
    pub public_addr: SocketAddr,
    /// Admin listener address.
    pub admin_addr: SocketAddr,
    /// Directory of static files.
    pub static_dir: PathBuf,
    /// Delay before GET /prestop answers.
    pub prestop_delay: Duration,
    /// Window over which WebSocket closes are spread during drain.
    pub drain_window: Duration,
    /// Time allowed for a close handshake.
    pub close_timeout: Duration,
    /// The pod's grace period, if known.
    pub termination_grace_period: Option<Duration>,
    /// Interval of alive messages (zero = off).
    pub alive_interval: Duration,
    /// Silence before a ping (zero = off).
    pub ping_interval: Duration,
    /// Wait for a pong.
    pub pong_timeout: Duration,
    /// Time allowed for a request head.
    pub header_timeout: Duration,
    /// Keep-alive idle time.
    pub idle_timeout: Duration,
    /// Public connections served at once; `None` = derive from the open-files limit.
    pub max_connections: Option<usize>,
    /// Largest WebSocket message or frame.
    pub max_message_size: usize,
    /// Output queued per WebSocket before it is closed.
    pub max_output_bytes: usize,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// listen(2) backlog.
    pub listen_backlog: u32,
    /// What WebSocket messages are answered with.
    pub echo_mode: EchoMode,
    /// WebSocket age at which it is closed with 1012 (zero = never).
    pub max_connection_age: Duration,
    /// Origins allowed to upgrade (empty = any).
    pub allowed_origins: Vec<String>,
    /// Instance name (empty = the hostname).
    pub instance_id: String,
    /// Log level.
    pub log_level: log::LevelFilter,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run the server.
    Run(Box<Config>),
    /// Print this text and exit 0 (`--help`, `--version`).
    Print(String),
}

/// A setting that cannot be used; the message names it and says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// The `--help` text, generated from [`SETTINGS`].
pub fn help_text() -> String {
    let mut out = format!(
        "wsdrain {} - a WebSocket server that drains cleanly when Kubernetes replaces its pod\n\n\
         Usage: wsdrain [--flag value | --flag=value]...\n\n\
         Every setting is read from its environment variable; a flag wins over the environment.\n\
         Durations: 15s, 500ms, 2m, 1h or plain seconds (15, 0.5). Sizes: bytes or KiB/MiB/GiB.\n\n",
        env!("CARGO_PKG_VERSION")
    );
    for s in SETTINGS {
        let default = if s.default.is_empty() {
            "unset"
        } else {
            s.default
        };
        out.push_str(&format!(
            "  --{:<26} {:<26} [default: {}]\n      {}\n",
            s.flag, s.env, default, s.help
        ));
    }
    out.push_str(&format!(
        "  --echo                     same as --echo-mode echo\n  \
         --help, --version\n\n\
         Budget rule (checked when TERMINATION_GRACE_PERIOD is set):\n  \
         PRESTOP_DELAY + DRAIN_WINDOW + CLOSE_TIMEOUT + {}s <= TERMINATION_GRACE_PERIOD\n  \
         ({}s for the lingering close after the last close handshake, {}s of margin)\n\n\
         Exit codes: 0 after a clean stop, 1 on a runtime failure (e.g. a port in use), 2 on a bad setting.\n",
        (LINGER + GRACE_MARGIN).as_secs(),
        LINGER.as_secs(),
        GRACE_MARGIN.as_secs(),
    ));
    out
}

impl Config {
    /// Reads the process's arguments and environment.
    pub fn from_process() -> Result<Command, ConfigError> {
        Self::parse(std::env::args().skip(1), |name| std::env::var(name).ok())
    }

    /// Parses `args` (without the program name) over the environment `env`.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Command, ConfigError> {
        let mut values: HashMap<&'static str, String> = SETTINGS
            .iter()
            .map(|s| (s.env, env(s.env).unwrap_or_else(|| s.default.to_string())))
            .collect();

        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--help" | "-h" => return Ok(Command::Print(help_text())),
                "--version" | "-V" => {
                    return Ok(Command::Print(format!(
                        "wsdrain {}\n",
                        env!("CARGO_PKG_VERSION")
                    )));
                }
                "--echo" => {
                    values.insert("ECHO_MODE", "echo".into());
                    continue;
                }
                _ => {}
            }
            let Some(flag) = arg.strip_prefix("--") else {
                return err(format!("unexpected argument {arg:?}; see --help"));
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            let Some(s) = SETTINGS.iter().find(|s| s.flag == name) else {
                return err(format!("unknown flag --{name}; see --help"));
            };
            let value = match inline {
                Some(v) => v,
                None => match args.next() {
                    Some(v) => v,
                    None => return err(format!("--{name} ({}) needs a value", s.env)),
                },
            };
            values.insert(s.env, value);
        }
        Self::from_values(&values).map(|c| Command::Run(Box::new(c)))
    }

    fn from_values(v: &HashMap<&'static str, String>) -> Result<Config, ConfigError> {
        let get = |name: &'static str| v.get(name).map(String::as_str).unwrap_or("");
        let duration = |name: &'static str| {
            parse_duration(get(name)).map_err(|why| invalid(name, get(name), why))
        };
        let positive = |name: &'static str| {
            let d = duration(name)?;
            if d.is_zero() {
                return Err(invalid(name, get(name), "must be greater than zero"));
            }
            Ok(d)
        };
        let size = |name: &'static str, min: usize, max: usize| {
            let n = parse_size(get(name)).map_err(|why| invalid(name, get(name), why))?;
            if n < min || n > max {
                return Err(invalid(
                    name,
                    get(name),
                    &format!("must be between {min} and {max} bytes"),
                ));
            }
            Ok(n)
        };
        let ip = |name: &'static str| {
            let text = get(name).trim_start_matches('[').trim_end_matches(']');
            text.parse::<IpAddr>().map_err(|_| {
                invalid(
                    name,
                    get(name),
                    "expected an IP address such as 0.0.0.0 or ::",
                )
            })
        };
        let port = |name: &'static str| {
            get(name)
                .parse::<u16>()
                .map_err(|_| invalid(name, get(name), "expected a port number 0-65535"))
        };

        let max_connections = match get("MAX_CONNECTIONS") {
            "auto" | "" => None,
            text => match text.parse::<usize>() {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    return Err(invalid(
                        "MAX_CONNECTIONS",
                        text,
                        "expected a positive whole number or auto",
                    ));
                }
            },
        };
        let listen_backlog = match get("LISTEN_BACKLOG").parse::<u32>() {
            Ok(n) if (1..=i32::MAX as u32).contains(&n) => n,
            _ => {
                return Err(invalid(
                    "LISTEN_BACKLOG",
                    get("LISTEN_BACKLOG"),
                    "expected a positive whole number",
                ));
            }
        };
        let echo_mode = match get("ECHO_MODE") {
            "reverse" => EchoMode::Reverse,
            "echo" => EchoMode::Echo,
            other => return Err(invalid("ECHO_MODE", other, "expected reverse or echo")),
        };
        let log_level = get("RUST_LOG").parse::<log::LevelFilter>().map_err(|_| {
            invalid(
                "RUST_LOG",
                get("RUST_LOG"),
                "expected error, warn, info, debug, trace or off",
            )
        })?;
        let termination_grace_period = match get("TERMINATION_GRACE_PERIOD") {
            "" => None,
            _ => Some(positive("TERMINATION_GRACE_PERIOD")?),
        };
        let mut allowed_origins = Vec::new();
        for origin in get("ALLOWED_ORIGINS")
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
        {
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.ends_with('/')
                && !origin.contains(char::is_whitespace);
            if !valid {
                return Err(invalid(
                    "ALLOWED_ORIGINS",
                    origin,
                    "each origin is scheme://host[:port], e.g. https://example.com, without a path",
                ));
            }
            allowed_origins.push(origin.to_ascii_lowercase());
        }
        let instance_id = get("INSTANCE_ID").to_string();
        if instance_id.len() > 253 || instance_id.chars().any(|c| c.is_control() || c == '"') {
            return Err(invalid(
                "INSTANCE_ID",
                &instance_id,
                "at most 253 characters, no control characters or quotes",
            ));
        }

        let config = Config {
            public_addr: SocketAddr::new(ip("BIND")?, port("PORT")?),
            admin_addr: SocketAddr::new(ip("ADMIN_BIND")?, port("ADMIN_PORT")?),
            static_dir: PathBuf::from(get("STATIC_DIR")),
            prestop_delay: duration("PRESTOP_DELAY")?,
            drain_window: duration("DRAIN_WINDOW")?,
            close_timeout: positive("CLOSE_TIMEOUT")?,
            termination_grace_period,
            alive_interval: duration("ALIVE_INTERVAL")?,
            ping_interval: duration("PING_INTERVAL")?,
            pong_timeout: positive("PONG_TIMEOUT")?,
            header_timeout: positive("HEADER_TIMEOUT")?,
            idle_timeout: positive("IDLE_TIMEOUT")?,
            max_connections,
            max_message_size: size("MAX_MESSAGE_SIZE", 125, 1 << 30)?,
            max_output_bytes: size("MAX_OUTPUT_BYTES", 4096, 1 << 30)?,
            max_header_bytes: size("MAX_HEADER_BYTES", 1024, 1 << 20)?,
            listen_backlog,
            echo_mode,
            max_connection_age: duration("MAX_CONNECTION_AGE")?,
            allowed_origins,
            instance_id,
            log_level,
        };
        config.check_rules()?;
        Ok(config)
    }

    /// Cross-setting rules.
    fn check_rules(&self) -> Result<(), ConfigError> {
        if self.public_addr.port() != 0 && self.public_addr == self.admin_addr {
            return err(format!(
                "PORT and ADMIN_PORT: both listeners are {}; the admin port must differ",
                self.public_addr
            ));
        }
        if !self.static_dir.is_dir() {
            return err(format!(
                "STATIC_DIR: {:?} is not a directory (run from the repository root, or set STATIC_DIR)",
                self.static_dir
            ));
        }
        if let Some(grace) = self.termination_grace_period {
            let needed = self.drain_budget() + GRACE_MARGIN;
            if needed > grace {
                return err(format!(
                    "TERMINATION_GRACE_PERIOD: {}s is too short: PRESTOP_DELAY {}s + DRAIN_WINDOW {}s + \
                     CLOSE_TIMEOUT {}s + linger {}s + margin {}s = {}s must fit in it",
                    secs(grace),
                    secs(self.prestop_delay),
                    secs(self.drain_window),
                    secs(self.close_timeout),
                    secs(LINGER),
                    secs(GRACE_MARGIN),
                    secs(needed)
                ));
            }
        }
        Ok(())
    }

    /// PRESTOP_DELAY + DRAIN_WINDOW + CLOSE_TIMEOUT + LINGER: from the start of preStop to the
    /// moment the last connection is gone.
    pub fn drain_budget(&self) -> Duration {
        self.prestop_delay + self.drain_deadline()
    }

    /// DRAIN_WINDOW + CLOSE_TIMEOUT + LINGER: from the signal to the exit at the latest. The last
    /// WebSocket gets its close frame at the end of the window, its client has `CLOSE_TIMEOUT` to
    /// answer, and the server then lingers up to [`LINGER`] for the client's EOF so the client
    /// reads the whole close handshake instead of a reset.
    pub fn drain_deadline(&self) -> Duration {
        self.drain_window + self.close_timeout + LINGER
    }
}

/// The instance name: `INSTANCE_ID` if set, else the hostname (the pod name on Kubernetes).
pub fn instance_id(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "wsdrain".to_string())
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

fn invalid(name: &str, value: &str, why: &str) -> ConfigError {
    ConfigError(format!("{name}: invalid value {value:?}: {why}"))
}

/// Longest duration accepted anywhere (30 days): larger values are surely a mistake.
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses `15s`, `500ms`, `2m`, `1h`, or plain seconds (`15`, `0.5`).
pub fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    const WHY: &str = "expected a duration such as 15s, 500ms, 2m, 1h or plain seconds";
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(WHY);
    }
    let value: f64 = number.parse().map_err(|_| WHY)?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(WHY),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > MAX_DURATION.as_secs_f64() {
        return Err("too long: at most 30 days");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a byte size: `65536`, `64KiB`, `1MiB`, `1GiB`.
pub fn parse_size(text: &str) -> Result<usize, &'static str> {
    const WHY: &str = "expected a size such as 65536, 64KiB or 1MiB";
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: usize = number.parse().map_err(|_| WHY)?;
    let scale: usize = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(WHY),
    };
    value.checked_mul(scale).ok_or("too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = env!("CARGO_MANIFEST_DIR").to_string() + "/static";
        Config::parse(args.iter().map(|s| s.to_string()), move |name| {
            env.get(name)
                .cloned()
                .or_else(|| (name == "STATIC_DIR").then(|| dir.clone()))
        })
    }

    fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
        match parse(args, env) {
            Ok(Command::Run(c)) => *c,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    fn error(args: &[&str], env: &[(&str, &str)]) -> String {
        match parse(args, env) {
            Err(e) => e.0,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = config(&[], &[]);
        assert_eq!(c.public_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.admin_addr, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(c.prestop_delay, Duration::from_secs(15));
        assert_eq!(c.drain_window, Duration::from_secs(10));
        assert_eq!(c.close_timeout, Duration::from_secs(5));
        assert_eq!(c.alive_interval, Duration::from_secs(5));
        assert_eq!(c.ping_interval, Duration::from_secs(30));
        assert_eq!(c.pong_timeout, Duration::from_secs(10));
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Duration::from_secs(620));
        assert_eq!(c.max_connections, None);
        assert_eq!(c.max_message_size, 64 * 1024);
        assert_eq!(c.max_output_bytes, 1 << 20);
        assert_eq!(c.max_header_bytes, 8 * 1024);
        assert_eq!(c.listen_backlog, 4096);
        assert_eq!(c.echo_mode, EchoMode::Reverse);
        assert_eq!(c.termination_grace_period, None);
        assert_eq!(c.log_level, log::LevelFilter::Info);
        assert_eq!(c.max_connection_age, Duration::ZERO);
        assert!(c.allowed_origins.is_empty());
    }

    #[test]
    fn origins_and_connection_age() {
        let c = config(
            &[
                "--allowed-origins",
                "https://Example.com, http://localhost:8080",
            ],
            &[("MAX_CONNECTION_AGE", "3470s")],
        );
        assert_eq!(
            c.allowed_origins,
            ["https://example.com", "http://localhost:8080"]
        );
        assert_eq!(c.max_connection_age, Duration::from_secs(3470));
    }

    #[test]
    fn flag_wins_over_env_and_both_forms_work() {
        let c = config(
            &["--port", "81", "--admin-port=91"],
            &[("PORT", "80"), ("ADMIN_PORT", "90")],
        );
        assert_eq!(c.public_addr.port(), 81);
        assert_eq!(c.admin_addr.port(), 91);
        let c = config(
            &[],
            &[("PORT", "80"), ("BIND", "::"), ("ADMIN_BIND", "[::1]")],
        );
        assert_eq!(c.public_addr, "[::]:80".parse().unwrap());
        assert_eq!(c.admin_addr.ip(), "::1".parse::<IpAddr>().unwrap());
        assert_eq!(config(&["--echo"], &[]).echo_mode, EchoMode::Echo);
        assert_eq!(
            config(&[], &[("MAX_CONNECTIONS", "100")]).max_connections,
            Some(100)
        );
    }

    #[test]
    fn bad_values_name_the_setting() {
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (&[], &[("PORT", "http")], "PORT: invalid value \"http\""),
            (&[], &[("PORT", "70000")], "PORT"),
            (&[], &[("BIND", "localhost")], "BIND"),
            (&[], &[("PRESTOP_DELAY", "15 seconds")], "PRESTOP_DELAY"),
            (&[], &[("PRESTOP_DELAY", "-1")], "PRESTOP_DELAY"),
            (
                &[],
                &[("CLOSE_TIMEOUT", "0")],
                "CLOSE_TIMEOUT: invalid value \"0\": must be greater than zero",
            ),
            (&[], &[("HEADER_TIMEOUT", "0s")], "HEADER_TIMEOUT"),
            (&[], &[("MAX_CONNECTIONS", "0")], "MAX_CONNECTIONS"),
            (&[], &[("MAX_HEADER_BYTES", "10")], "MAX_HEADER_BYTES"),
            (&[], &[("MAX_MESSAGE_SIZE", "64kb")], "MAX_MESSAGE_SIZE"),
            (&[], &[("LISTEN_BACKLOG", "0")], "LISTEN_BACKLOG"),
            (&[], &[("ECHO_MODE", "mirror")], "ECHO_MODE"),
            (&[], &[("RUST_LOG", "loud")], "RUST_LOG"),
            (&[], &[("STATIC_DIR", "/nonexistent/dir")], "STATIC_DIR"),
            (&[], &[("INSTANCE_ID", "a\"b")], "INSTANCE_ID"),
            (
                &[],
                &[("ALLOWED_ORIGINS", "example.com")],
                "ALLOWED_ORIGINS",
            ),
            (
                &[],
                &[("ALLOWED_ORIGINS", "https://a.com/")],
                "ALLOWED_ORIGINS",
            ),
            (&[], &[("MAX_CONNECTION_AGE", "soon")], "MAX_CONNECTION_AGE"),
            (
                &[],
                &[("PORT", "8080"), ("ADMIN_PORT", "8080")],
                "admin port must differ",
            ),
            (&["--nope", "1"], &[], "unknown flag --nope"),
            (&["--port"], &[], "--port (PORT) needs a value"),
            (&["stray"], &[], "unexpected argument"),
        ];
        for (args, env, expected) in cases {
            let message = error(args, env);
            assert!(message.contains(expected), "{args:?} {env:?}: {message}");
        }
    }

    #[test]
    fn budget_rule() {
        // 15 + 10 + 5 + 2 (linger) + 2 (margin) = 34 s.
        let c = config(&[], &[("TERMINATION_GRACE_PERIOD", "34")]);
        assert_eq!(c.termination_grace_period, Some(Duration::from_secs(34)));
        let message = error(&[], &[("TERMINATION_GRACE_PERIOD", "33s")]);
        assert!(
            message.contains("TERMINATION_GRACE_PERIOD: 33s is too short"),
            "{message}"
        );
        assert!(message.contains("linger 2s"), "{message}");
        assert!(message.contains("= 34s"), "{message}");
        config(
            &["--prestop-delay", "1s"],
            &[("TERMINATION_GRACE_PERIOD", "20")],
        );
    }

    #[test]
    fn help_and_version() {
        let Ok(Command::Print(help)) = parse(&["--help"], &[]) else {
            panic!("no help")
        };
        for s in SETTINGS {
            assert!(
                help.contains(s.env) && help.contains(s.flag),
                "{} missing",
                s.env
            );
        }
        assert!(help.contains("[default: 15s]"));
        let Ok(Command::Print(version)) = parse(&["--version"], &[]) else {
            panic!("no version")
        };
        assert!(version.starts_with("wsdrain "));
    }

    #[test]
    fn durations() {
        let ok = [
            ("15s", 15_000),
            ("500ms", 500),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("15", 15_000),
            ("0.5", 500),
            ("0", 0),
            ("1.5s", 1_500),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text).map(|d| d.as_millis()),
                Ok(ms),
                "{text}"
            );
        }
        for bad in [
            "",
            "s",
            "1x",
            "-1",
            ".5",
            "5.",
            "1e3",
            "15 s",
            "31d",
            "99999999h",
            "NaN",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        for bad in ["", "KiB", "1kb", "1.5MiB", "-1", "99999999999999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
