//! Layer 0, the settings; uses nothing else of this crate. Every tunable comes from a CLI flag
//! or an environment variable (a flag wins), with a default, and is validated once at start
//! with an error that names the setting.
//!
//! One table ([`SETTINGS`]) drives parsing, `--help` and the settings table of `docs/operations.md` (checked), so the three
//! cannot drift apart.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod parse;
mod settings;

pub use parse::{instance_id, parse_duration, parse_size};
pub use settings::{SETTINGS, Setting, help_text};

/// After an answer that closes a connection, how long the server reads and discards what the
/// client still sends, so that it reads the answer rather than a reset; part of the drain's
/// budget.
pub const LINGER: Duration = Duration::from_secs(2);

/// Margin required between the drain budget and the pod's grace period.
pub const GRACE_MARGIN: Duration = Duration::from_secs(2);

/// The `/prestop` answer comes this long after `PRESTOP_DELAY` (when the delay is not zero). A
/// grace period equal to `PRESTOP_DELAY` (a Spot node's 15 s against the default 15 s, or
/// `--grace-period` set to it) then ends while the hook still waits: the kubelet's SIGTERM finds
/// the hook waiting and the server knows its time is up, instead of a race between the answer
/// and the signal, which come within milliseconds of each other. Part of the budget rule.
pub const PRESTOP_TIE_BREAK: Duration = Duration::from_millis(500);

/// When the grace period ends while the preStop hook still runs, the kubelet sends SIGTERM and
/// kills the process this long after (a one-off extension; also its minimum grace after a hook
/// that used up the grace period). `SHORT_DRAIN` must fit in it.
pub const KUBELET_LAST_GRACE: Duration = Duration::from_secs(2);

/// Descriptors kept back from `MAX_CONNECTIONS=auto` besides the admin port's
/// (`MAX_ADMIN_CONNECTIONS`): listeners, the poll, the signal pipe, the spare descriptor, stdio.
pub const FD_RESERVE_BASE: u64 = 32;

/// What the server answers to a WebSocket message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoMode {
    /// Text messages are answered reversed by Unicode scalar values; binary is refused.
    Reverse,
    /// Every message is echoed unchanged (for Autobahn and similar suites).
    Echo,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-… INFO  [target] message`: for a terminal.
    Text,
    /// One JSON object per line with `severity`: for Cloud Logging (GKE).
    Json,
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
    /// Time a WebSocket has after its goaway notice before it is closed (zero = no notice).
    pub handover_timeout: Duration,
    /// The pod's grace period, if known.
    pub termination_grace_period: Option<Duration>,
    /// The whole drain when the grace period is already over at SIGTERM (it came while the
    /// preStop hook waited): at most [`KUBELET_LAST_GRACE`].
    pub short_drain: Duration,
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
    /// Admin connections served at once (probes, metrics, preStop); counted apart from
    /// `MAX_CONNECTIONS` so probes keep working when the public side is full.
    pub max_admin_connections: usize,
    /// Largest static file loaded.
    pub static_max_file_bytes: usize,
    /// All static files together, in memory.
    pub static_max_total_bytes: usize,
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
    /// Log line format.
    pub log_format: LogFormat,
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

/// Settings for unit tests elsewhere in the crate: the defaults under `env`, serving the
/// repository's `static/`.
#[cfg(test)]
pub(crate) fn test_config(env: &[(&str, &str)]) -> Config {
    let dir = env!("CARGO_MANIFEST_DIR").to_string() + "/static";
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let parsed = Config::parse(Vec::<String>::new(), |name| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| (name == "STATIC_DIR").then(|| dir.clone()))
    });
    match parsed {
        Ok(Command::Run(c)) => *c,
        other => panic!("test settings {env:?}: {other:?}"),
    }
}

#[cfg(test)]
mod tests;
