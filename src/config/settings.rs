//! The table of settings: every one's environment name, flag, default and help, in `--help`
//! order; and the `--help` text made from it.

use crate::config::{GRACE_MARGIN, LINGER, PRESTOP_TIE_BREAK};

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
        "STATIC_MAX_FILE_BYTES",
        "static-max-file-bytes",
        "8MiB",
        "largest static file loaded (a larger one is not served, and a warning says so at start)",
    ),
    setting(
        "STATIC_MAX_TOTAL_BYTES",
        "static-max-total-bytes",
        "64MiB",
        "all static files together in memory (past it, files are not served; a warning says which)",
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
        "HANDOVER_TIMEOUT",
        "handover-timeout",
        "5s",
        "at its drain time a WebSocket gets a goaway notice and this long to move to another pod before close 1012 (0 = close at once)",
    ),
    setting(
        "TERMINATION_GRACE_PERIOD",
        "termination-grace-period",
        "",
        "the pod's terminationGracePeriodSeconds; when set, start fails unless the budget rule below holds, and no drain is planned to end past it",
    ),
    setting(
        "SHORT_DRAIN",
        "short-drain",
        "1500ms",
        "the whole drain when SIGTERM comes while /prestop still waits (the grace period is over: Spot, evictions; SIGKILL follows 2s later): notices and close 1012 for every WebSocket, then exit; at most 2s",
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
        "MAX_ADMIN_CONNECTIONS",
        "max-admin-connections",
        "64",
        "admin-port connections served at once (probes, metrics, preStop), apart from MAX_CONNECTIONS (more: 503)",
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
        "hand a WebSocket over (notice, then 1012 after HANDOVER_TIMEOUT) at this age minus a random 0-10% (0 = off); keep below the LB's timeoutSec",
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
    setting(
        "LOG_FORMAT",
        "log-format",
        "text",
        "text for a terminal; json for Cloud Logging: one object per line with severity, message and a lifecycle line's fields",
    ),
];

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
         PRESTOP_DELAY + DRAIN_WINDOW + HANDOVER_TIMEOUT + CLOSE_TIMEOUT + {}s <= TERMINATION_GRACE_PERIOD\n  \
         ({}s that /prestop answers after PRESTOP_DELAY, {}s for a lingering close at the end (after\n  \
         an HTTP answer or a failed WebSocket), {}s of margin)\n\n\
         Exit codes: 0 after a clean stop, 1 on a runtime failure (e.g. a port in use), 2 on a bad setting.\n",
        (PRESTOP_TIE_BREAK + LINGER + GRACE_MARGIN).as_secs_f64(),
        PRESTOP_TIE_BREAK.as_secs_f64(),
        LINGER.as_secs(),
        GRACE_MARGIN.as_secs(),
    ));
    out
}
