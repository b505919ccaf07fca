//! Reading the settings: flags over environment over defaults, each value validated with an
//! error that names it, then the rules between settings (the drain budget).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::settings::{SETTINGS, help_text};
use crate::config::{
    Command, Config, ConfigError, EchoMode, GRACE_MARGIN, KUBELET_LAST_GRACE, LINGER, LogFormat,
    PRESTOP_TIE_BREAK, err,
};

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
        let get = |name: &'static str| get(v, name);
        let duration = |name: &'static str| duration(v, name);
        let positive = |name: &'static str| positive(v, name);
        let size = |name: &'static str, min: usize, max: usize| size(v, name, min, max);
        let ip = |name: &'static str| ip(v, name);
        let port = |name: &'static str| port(v, name);

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
        let max_admin_connections = match get("MAX_ADMIN_CONNECTIONS").parse::<usize>() {
            Ok(n) if (1..=4096).contains(&n) => n,
            _ => {
                return Err(invalid(
                    "MAX_ADMIN_CONNECTIONS",
                    get("MAX_ADMIN_CONNECTIONS"),
                    "expected a whole number from 1 to 4096",
                ));
            }
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
        let log_format = match get("LOG_FORMAT") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(invalid("LOG_FORMAT", other, "expected text or json")),
        };
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
            handover_timeout: duration("HANDOVER_TIMEOUT")?,
            termination_grace_period,
            short_drain: positive("SHORT_DRAIN")?,
            alive_interval: duration("ALIVE_INTERVAL")?,
            ping_interval: duration("PING_INTERVAL")?,
            pong_timeout: positive("PONG_TIMEOUT")?,
            header_timeout: positive("HEADER_TIMEOUT")?,
            idle_timeout: positive("IDLE_TIMEOUT")?,
            max_connections,
            max_message_size: size("MAX_MESSAGE_SIZE", 125, 1 << 30)?,
            max_output_bytes: size("MAX_OUTPUT_BYTES", 4096, 1 << 30)?,
            max_header_bytes: size("MAX_HEADER_BYTES", 1024, 1 << 20)?,
            max_admin_connections,
            static_max_file_bytes: size("STATIC_MAX_FILE_BYTES", 1024, 1 << 30)?,
            static_max_total_bytes: size("STATIC_MAX_TOTAL_BYTES", 1024, 1 << 32)?,
            listen_backlog,
            echo_mode,
            max_connection_age: duration("MAX_CONNECTION_AGE")?,
            allowed_origins,
            instance_id,
            log_level,
            log_format,
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
        if self.max_output_bytes < self.max_message_size {
            return err(format!(
                "MAX_OUTPUT_BYTES: {} bytes is less than MAX_MESSAGE_SIZE ({} bytes): the reply to \
                 one large message would close even a client that reads everything (1008)",
                self.max_output_bytes, self.max_message_size
            ));
        }
        if self.short_drain > KUBELET_LAST_GRACE {
            return err(format!(
                "SHORT_DRAIN: {}s is too long: the kubelet kills the process {}s after a SIGTERM \
                 that comes at the end of the grace period",
                secs(self.short_drain),
                secs(KUBELET_LAST_GRACE)
            ));
        }
        if let Some(grace) = self.termination_grace_period {
            let needed = self.drain_budget() + GRACE_MARGIN;
            if needed > grace {
                return err(format!(
                    "TERMINATION_GRACE_PERIOD: {}s is too short: PRESTOP_DELAY {}s (answered {}s \
                     later) + DRAIN_WINDOW {}s + HANDOVER_TIMEOUT {}s + CLOSE_TIMEOUT {}s + linger \
                     {}s + margin {}s = {}s must fit in it",
                    secs(grace),
                    secs(self.prestop_delay),
                    secs(self.prestop_answer_delay() - self.prestop_delay),
                    secs(self.drain_window),
                    secs(self.handover_timeout),
                    secs(self.close_timeout),
                    secs(LINGER),
                    secs(GRACE_MARGIN),
                    secs(needed)
                ));
            }
        }
        Ok(())
    }

    /// Descriptors kept back from `MAX_CONNECTIONS=auto`: the admin port's and
    /// [`FD_RESERVE_BASE`](super::FD_RESERVE_BASE).
    pub fn fd_reserve(&self) -> u64 {
        super::FD_RESERVE_BASE + self.max_admin_connections as u64
    }

    /// The `/prestop` answer's wait + DRAIN_WINDOW + HANDOVER_TIMEOUT + CLOSE_TIMEOUT + LINGER:
    /// from the start of preStop to the moment the last connection is gone.
    pub fn drain_budget(&self) -> Duration {
        self.prestop_answer_delay() + self.drain_deadline()
    }

    /// How long `/prestop` waits before it answers: `PRESTOP_DELAY` and the
    /// [`PRESTOP_TIE_BREAK`] after it, or nothing when the delay is zero.
    pub fn prestop_answer_delay(&self) -> Duration {
        if self.prestop_delay.is_zero() {
            Duration::ZERO
        } else {
            self.prestop_delay + PRESTOP_TIE_BREAK
        }
    }

    /// DRAIN_WINDOW + HANDOVER_TIMEOUT + CLOSE_TIMEOUT + LINGER: from the signal to the exit at
    /// the latest. The last WebSocket gets its goaway notice at the end of the window, its client
    /// has `HANDOVER_TIMEOUT` to move before the close frame, then `CLOSE_TIMEOUT` to answer it,
    /// and the server then lingers up to [`LINGER`] for the client's EOF so the client reads the
    /// whole close handshake instead of a reset.
    pub fn drain_deadline(&self) -> Duration {
        self.drain_window + self.handover_timeout + self.close_timeout + LINGER
    }
}

/// The raw value of a setting.
fn get<'a>(v: &'a HashMap<&'static str, String>, name: &'static str) -> &'a str {
    v.get(name).map(String::as_str).unwrap_or("")
}

// One copy of each reader (they are not inlined at every setting: start-up code, kept small).

#[inline(never)]
fn duration(
    v: &HashMap<&'static str, String>,
    name: &'static str,
) -> Result<Duration, ConfigError> {
    parse_duration(get(v, name)).map_err(|why| invalid(name, get(v, name), why))
}

#[inline(never)]
fn positive(
    v: &HashMap<&'static str, String>,
    name: &'static str,
) -> Result<Duration, ConfigError> {
    let d = duration(v, name)?;
    if d.is_zero() {
        return Err(invalid(name, get(v, name), "must be greater than zero"));
    }
    Ok(d)
}

#[inline(never)]
fn size(
    v: &HashMap<&'static str, String>,
    name: &'static str,
    min: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    let n = parse_size(get(v, name)).map_err(|why| invalid(name, get(v, name), why))?;
    if n < min || n > max {
        return Err(invalid(
            name,
            get(v, name),
            &format!("must be between {min} and {max} bytes"),
        ));
    }
    Ok(n)
}

#[inline(never)]
fn ip(v: &HashMap<&'static str, String>, name: &'static str) -> Result<IpAddr, ConfigError> {
    let text = get(v, name).trim_start_matches('[').trim_end_matches(']');
    text.parse::<IpAddr>().map_err(|_| {
        invalid(
            name,
            get(v, name),
            "expected an IP address such as 0.0.0.0 or ::",
        )
    })
}

#[inline(never)]
fn port(v: &HashMap<&'static str, String>, name: &'static str) -> Result<u16, ConfigError> {
    get(v, name)
        .parse::<u16>()
        .map_err(|_| invalid(name, get(v, name), "expected a port number 0-65535"))
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

/// Longest duration accepted anywhere (10 days): larger values are surely a mistake, and a
/// connection's deadlines (a duration, or two added) must stay within the 24.8 days that its
/// 32-bit times reach (`base::time`).
const MAX_DURATION: Duration = Duration::from_secs(10 * 24 * 3600);

/// Parses `15s`, `500ms`, `2m`, `1h`, or plain seconds (`15`, `0.5`), to whole milliseconds:
/// the loop's clock counts milliseconds, so a finer value (`0.5ms`) is refused rather than read
/// as 0, which would mean "off" where zero turns a timer off, and a deadline always due where
/// it does not.
pub fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    const WHY: &str = "expected a duration such as 15s, 500ms, 2m, 1h or plain seconds";
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let ms_per_unit: u128 = match unit {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(WHY),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) || fraction.len() > 9 {
        return Err(WHY);
    }
    // Exact decimal arithmetic: `whole.fraction` units in milliseconds.
    let digits = |s: &str| -> Result<u128, &'static str> {
        if s.is_empty() {
            return Ok(0);
        }
        s.parse::<u128>().map_err(|_| WHY)
    };
    let scale = 10u128.pow(fraction.len() as u32);
    let nanounits = digits(whole)?
        .checked_mul(scale)
        .and_then(|w| w.checked_add(digits(fraction).ok()?))
        .ok_or("too long: at most 10 days")?;
    let scaled = nanounits
        .checked_mul(ms_per_unit)
        .ok_or("too long: at most 10 days")?;
    if scaled % scale != 0 {
        return Err("finer than a millisecond: the server's clock counts whole milliseconds");
    }
    let ms = scaled / scale;
    if ms > MAX_DURATION.as_millis() {
        return Err("too long: at most 10 days");
    }
    Ok(Duration::from_millis(ms as u64))
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
