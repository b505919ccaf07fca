//! Test harness: runs the real `wsdrain` binary on ephemeral loopback ports, follows its log, and
//! talks to it over real sockets. Every wait is bounded, so a broken server fails a test instead
//! of hanging it.
//!
//! The launcher, the WebSocket codec and the readers of log lines and `/metrics` are the test
//! kit's (`tools/testkit`, shared with the rollout harness and the load generator); this module
//! gives them the tests' shape: test defaults, and a panic with the server's log on failure. The
//! clients are in `http` (raw HTTP/1.1) and `raw_ws` (WebSocket frames as told, and tungstenite).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use testkit::server::{Launch, Server};

mod http;
mod raw_ws;

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use http::{Client, Response, get, raw};
#[allow(unused_imports)]
pub use raw_ws::{HELLO_PREFIX, RawWs, UPGRADE, next_text, ws_client};
#[allow(unused_imports)]
pub use testkit::evidence::{DrainPlan, EventFields, Metrics};
#[allow(unused_imports)]
pub use testkit::ws::ALIVE_PREFIX;
#[allow(unused_imports)]
pub use testkit::ws::{Frame, encode as encode_frame};

/// Default bound on any single wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// The test kit's result, or a panic with its message (which carries the server's log), at
/// the test's line.
#[track_caller]
fn ok<T>(result: Result<T, String>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{e}"),
    }
}

/// A running server process.
pub struct TestServer {
    server: Server,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub static_dir: PathBuf,
    /// How many lines [`TestServer::next_log_line`] has handed out, by needle.
    handed_out: HashMap<String, usize>,
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wsdrain-test-{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A static directory with known content, including links that point out of it.
pub fn fixture_static_dir() -> PathBuf {
    let dir = temp_dir("static");
    let write = |rel: &str, body: &str| {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    write(
        "index.html",
        "<!doctype html><title>fixture</title>root index\n",
    );
    write("app.js", "console.log('app');\n");
    write("style.css", "body { color: black }\n");
    write("sub/index.html", "sub index\n");
    write("sub/page.txt", "sub page\n");
    write("space name.txt", "spaced\n");
    write(".hidden", "secret\n");
    let outside = temp_dir("outside");
    std::fs::write(outside.join("secret.txt"), "OUTSIDE-SECRET\n").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), dir.join("link-out.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("dir-out")).unwrap();
    std::os::unix::fs::symlink(dir.join("app.js"), dir.join("link-in.js")).unwrap();
    dir
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_wsdrain")
}

impl TestServer {
    /// Starts the server with test defaults (loopback, ephemeral ports, fixture files) and the
    /// given environment overrides; returns once it logged its addresses.
    #[track_caller]
    pub fn start(env: &[(&str, &str)]) -> TestServer {
        Self::start_with(Command::new(binary()), env)
    }

    /// Like [`TestServer::start`], with a prepared command (e.g. a wrapper that lowers limits).
    #[track_caller]
    pub fn start_with(command: Command, env: &[(&str, &str)]) -> TestServer {
        let static_dir = fixture_static_dir();
        let server = ok(Launch::with_command(command)
            .name("wsdrain")
            .env("STATIC_DIR", &static_dir.display().to_string())
            .env("RUST_LOG", "debug")
            .env("INSTANCE_ID", "test-instance")
            .envs(env.iter().copied())
            .start());
        TestServer {
            public: server.public(),
            admin: server.admin(),
            server,
            static_dir,
            handed_out: HashMap::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Waits for a log line containing `needle` (seen before or arriving within `timeout`).
    #[track_caller]
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> String {
        ok(self.server.wait_log(needle, timeout))
    }

    /// Waits until `count` log lines contain `needle` and returns them.
    #[track_caller]
    pub fn wait_log_lines(&mut self, needle: &str, count: usize) -> Vec<String> {
        ok(self.server.wait_log_lines(needle, count, WAIT))
    }

    /// The next log line with `needle` that no earlier call for the same needle returned: one
    /// per input of a table of alike bad inputs, whose lines differ only in the connection's
    /// number (`wait_log` would find the first one again).
    #[track_caller]
    pub fn next_log_line(&mut self, needle: &str) -> String {
        let count = self.handed_out.entry(needle.to_string()).or_default();
        *count += 1;
        let nth = *count;
        self.wait_log_lines(needle, nth).swap_remove(nth - 1)
    }

    /// Waits for the lifecycle line `event` (seen before or arriving within `timeout`) and
    /// returns its fields: tests read numbers by key, never from prose.
    #[track_caller]
    pub fn wait_event(&mut self, event: &str, timeout: Duration) -> EventFields {
        ok(self.server.wait_event(event, timeout))
    }

    /// The fields of the lifecycle line `event`, if it was logged.
    pub fn find_event(&self, event: &str) -> Option<EventFields> {
        self.server.find_event(event)
    }

    /// Every log line so far.
    pub fn log_text(&self) -> String {
        self.server.log_text()
    }

    /// Sends a signal by name (TERM, INT, KILL) with kill(1).
    #[track_caller]
    pub fn signal(&self, name: &str) {
        ok(self.server.signal(name))
    }

    /// Waits for the process to exit (its output closes) and returns its status.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        ok(self.server.wait_exit(timeout))
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.server.running()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = std::fs::remove_dir_all(&self.static_dir);
    }
}

/// Reads a file under the repository root.
pub fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// Raises this test process's open-files limit to its hard limit, and fails unless `needed`
/// descriptors fit: the common default soft limit, 1,024, is less than the largest tests open.
#[track_caller]
pub fn raise_open_files_limit(needed: u64) {
    let limit = ok(rlimit::increase_nofile_limit(u64::MAX).map_err(|e| e.to_string()));
    assert!(
        limit >= needed,
        "this test needs {needed} open files; the hard limit allows {limit} (ulimit -Hn)"
    );
}

/// Waits until `condition` holds, checking every 20 ms, for at most `timeout`; for state the
/// server reports only when asked (metrics), where no event can be awaited.
pub fn eventually(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One scrape of the admin port's `/metrics`, parsed.
#[track_caller]
pub fn metrics(admin: SocketAddr) -> Metrics {
    ok(testkit::evidence::scrape(admin))
}

/// The value of one series (`name` or `name{label="value",…}`, all its labels) in the admin
/// port's `/metrics`; `None` if the server does not expose it.
#[track_caller]
pub fn metric(admin: SocketAddr, series: &str) -> Option<f64> {
    ok(testkit::evidence::metric(admin, series))
}

/// Asserts the value of each series (as for [`metric`]) in one scrape of `/metrics`.
#[track_caller]
pub fn assert_metrics(admin: SocketAddr, expected: &[(&str, f64)]) {
    let scraped = metrics(admin);
    for &(series, value) in expected {
        assert_eq!(
            scraped.get(series),
            Some(value),
            "{series} in /metrics:\n{scraped}"
        );
    }
}
