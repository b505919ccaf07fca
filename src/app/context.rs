//! The state every connection handler may read or update: settings, static files, lifecycle,
//! metrics and the loop's notion of "now". Owned by the loop, lent to one handler at a time.
//!
//! Nothing here reads a clock: the loop passes "now" to [`Context::tick`], and the wall clock
//! behind the `Date` header is a function the loop chooses (a fixed one in the simulation), so
//! the same inputs give the same outputs. A WebSocket session gets a narrower view,
//! [`SessionEnv`]: no static files, no connection counts, no lifecycle.

use std::time::SystemTime;

use crate::app::lifecycle::Lifecycle;
use crate::app::metrics::{Metrics, OpenConnections};
use crate::app::static_files::StaticFiles;
use crate::base::memory::{self, MemoryReading};
use crate::base::time::Millis;
use crate::base::timers::Rng;
use crate::config::Config;
use crate::protocol::websocket::SessionEnv;

/// Shared loop state.
#[derive(Debug)]
pub struct Context {
    /// Validated settings.
    pub config: Config,
    /// The static file cache.
    pub files: StaticFiles,
    /// Phase and lifecycle deadlines.
    pub lifecycle: Lifecycle,
    /// Counters.
    pub metrics: Metrics,
    /// Connections open now, kept by the loop (connections never change it themselves).
    pub open: OpenConnections,
    /// Public connections served at once (`MAX_CONNECTIONS`, or what the open-files limit
    /// allows): the loop refuses more.
    pub max_public: usize,
    /// Reads the memory figures for `/metrics` (a fixed one in the simulation, so its runs
    /// replay exactly).
    pub memory_probe: fn() -> MemoryReading,
    /// The name clients see, as a JSON string literal (quoted and escaped once, at start:
    /// the hostname fallback is not validated and may hold anything).
    pub instance_json: String,
    /// Jitter for spreading timers.
    pub rng: Rng,
    /// Loop time of the current iteration.
    pub now: Millis,
    /// The loop time when the server started (uptime counts from it).
    pub started: Millis,
    /// `Date` header value, refreshed once a second.
    pub date: String,
    date_second: Millis,
    wall_clock: fn() -> SystemTime,
    /// The test trigger for a panic (see [`FaultTrigger`]).
    pub fault: FaultTrigger,
}

/// With the `test-faults` feature only (the test command enables it; release builds and the
/// image never do): input equal to `WSDRAIN_TEST_PANIC_ON` panics, so the tests can check that a
/// bug costs one connection, not the pod. Without the feature there is no trigger at all.
#[derive(Debug, Default)]
pub struct FaultTrigger {
    #[cfg(feature = "test-faults")]
    panic_on: Option<Vec<u8>>,
}

impl FaultTrigger {
    /// The trigger named by `WSDRAIN_TEST_PANIC_ON`, if any.
    pub fn from_env() -> Self {
        FaultTrigger {
            #[cfg(feature = "test-faults")]
            panic_on: std::env::var_os("WSDRAIN_TEST_PANIC_ON").map(|v| v.into_encoded_bytes()),
        }
    }

    /// Panics when `input` (a message or request path) is the test trigger.
    #[inline]
    pub fn check(&self, input: &[u8]) {
        #[cfg(feature = "test-faults")]
        if self.panic_on.as_deref() == Some(input) {
            panic!("WSDRAIN_TEST_PANIC_ON: fault injected for a test");
        }
        let _ = input;
    }
}

impl Context {
    /// A context at time zero. `rng` spreads timers; `wall_clock` dates the responses.
    pub fn new(
        config: Config,
        files: StaticFiles,
        instance_id: &str,
        rng: Rng,
        wall_clock: fn() -> SystemTime,
    ) -> Self {
        Context {
            config,
            files,
            lifecycle: Lifecycle::new(),
            metrics: Metrics::default(),
            open: OpenConnections::default(),
            max_public: usize::MAX,
            memory_probe: memory::read,
            instance_json: json_string(instance_id),
            rng,
            now: 0,
            started: 0,
            date: httpdate::fmt_http_date(wall_clock()),
            date_second: 0,
            wall_clock,
            fault: FaultTrigger::from_env(),
        }
    }

    /// The loop starts at `now`.
    pub fn start(&mut self, now: Millis) {
        self.started = now;
        self.tick(now);
    }

    /// Milliseconds since the loop started.
    pub fn uptime_ms(&self) -> Millis {
        self.uptime_at(self.now)
    }

    /// Loop time `at` as time since start, as logs and messages give it.
    pub fn uptime_at(&self, at: Millis) -> Millis {
        at.saturating_sub(self.started)
    }

    /// Advances the loop time, refreshing the `Date` header when a second has passed.
    pub fn tick(&mut self, now: Millis) {
        self.now = now;
        if now / 1000 != self.date_second {
            self.date_second = now / 1000;
            self.date = httpdate::fmt_http_date((self.wall_clock)());
        }
    }

    /// What the WebSocket session of connection `conn` works with: "now", the settings and its
    /// counters; no static files, no connection counts, no lifecycle.
    pub fn session_env(&mut self, conn: u32) -> SessionEnv<'_> {
        SessionEnv {
            conn,
            now: self.now,
            config: &self.config,
            counters: &mut self.metrics.ws,
        }
    }
}

/// `s` as a JSON string literal (RFC 8259 §7): quotes, backslashes and control characters escaped.
pub fn json_string(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::json_string;

    #[test]
    fn json_string_escapes_what_json_requires() {
        assert_eq!(json_string("pod-7f9c"), r#""pod-7f9c""#);
        assert_eq!(json_string(r#"a\b"c"#), r#""a\\b\"c""#);
        assert_eq!(json_string("t\u{1}\n\u{7f}é"), r#""t\u0001\u000a\u007fé""#);
    }
}
