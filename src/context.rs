//! The state every connection handler may read or update: settings, static files, lifecycle,
//! metrics and the loop's notion of "now". Owned by the loop, lent to one handler at a time.

use std::time::SystemTime;

use crate::config::Config;
use crate::lifecycle::Lifecycle;
use crate::metrics::{Metrics, OpenConnections};
use crate::static_files::StaticFiles;
use crate::timers::{Millis, Rng};

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
    /// Connections open now, kept by the loop.
    pub open: OpenConnections,
    /// The name clients see, as a JSON string literal (quoted and escaped once, at start:
    /// the hostname fallback is not validated and may hold anything).
    pub instance_json: String,
    /// Jitter for spreading timers.
    pub rng: Rng,
    /// Loop time of the current iteration.
    pub now: Millis,
    /// `Date` header value, refreshed once a second.
    pub date: String,
    date_second: Millis,
    /// Debug builds only: input equal to `WSDRAIN_TEST_PANIC_ON` panics, so the tests can check
    /// that a bug costs one connection, not the pod (see [`Context::inject_fault`]).
    #[cfg(debug_assertions)]
    test_panic_on: Option<Vec<u8>>,
}

impl Context {
    /// A context at time zero.
    pub fn new(config: Config, files: StaticFiles, instance_id: String) -> Self {
        Context {
            config,
            files,
            lifecycle: Lifecycle::new(),
            metrics: Metrics::default(),
            open: OpenConnections::default(),
            instance_json: json_string(&instance_id),
            rng: Rng::from_entropy(),
            now: 0,
            date: httpdate::fmt_http_date(SystemTime::now()),
            date_second: 0,
            #[cfg(debug_assertions)]
            test_panic_on: std::env::var_os("WSDRAIN_TEST_PANIC_ON")
                .map(|v| v.into_encoded_bytes()),
        }
    }

    /// Panics when `input` (a message or request path) is the test trigger. Release builds have
    /// no trigger: there is no way to make them panic on purpose.
    #[inline]
    pub fn inject_fault(&self, input: &[u8]) {
        #[cfg(debug_assertions)]
        if self.test_panic_on.as_deref() == Some(input) {
            panic!("WSDRAIN_TEST_PANIC_ON: fault injected for a test");
        }
        let _ = input;
    }

    /// Advances the loop time, refreshing the `Date` header when a second has passed.
    pub fn tick(&mut self, now: Millis) {
        self.now = now;
        if now / 1000 != self.date_second {
            self.date_second = now / 1000;
            self.date = httpdate::fmt_http_date(SystemTime::now());
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
