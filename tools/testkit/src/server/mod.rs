//! The one launcher of a `wsdrain` process, for the tests and the tools: it starts the binary
//! (whose path the caller gives: a test passes `env!("CARGO_BIN_EXE_wsdrain")`, the rollout
//! harness its `--server`) on loopback with ephemeral ports, follows its stdout and stderr
//! line by line in two threads, and reads its addresses from its `listening` line.
//!
//! Every wait is bounded and every failure is an `Err` carrying the log so far: the harness
//! reports it, a test panics with it. A [`Server`] that is dropped while running is killed.
//! Starting one is [`Launch`] (`launch.rs`); this file is the running server's handle.

use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::evidence::EventFields;

/// How long a process that has exited may take to close its output (so its log is complete).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

mod launch;

pub use launch::Launch;

/// One line of the server's output, and when it was read.
#[derive(Debug)]
struct Line {
    read_at: Instant,
    text: String,
}

/// A running (or exited) server process and its log.
#[derive(Debug)]
pub struct Server {
    name: String,
    child: Child,
    /// A message per line read (`Some`) and per output stream that ended (`None`).
    lines: Receiver<Option<()>>,
    log: Arc<Mutex<Vec<Line>>>,
    /// Output streams (stdout, stderr) that have ended.
    closed: usize,
    exited: Option<ExitStatus>,
    public: SocketAddr,
    admin: SocketAddr,
    listening_after: Duration,
}

impl Server {
    /// The public listener's address.
    pub fn public(&self) -> SocketAddr {
        self.public
    }

    /// The admin listener's address (probes, `/metrics`, `/prestop`).
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// From just before the spawn to the moment its `listening` line was read from its
    /// output: its start-up time, without the hand-off from the reading thread.
    pub fn listening_after(&self) -> Duration {
        self.listening_after
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name errors call it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for a log line containing `needle` (logged before, or within `timeout`).
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        self.wait_line(&format!("a log line with {needle:?}"), timeout, |line| {
            line.contains(needle)
        })
        .map(|(_, line)| line)
    }

    /// Waits until `count` log lines contain `needle` (logged before, or within `timeout`) and
    /// returns them: for checks that each of several alike inputs was logged, where
    /// [`Server::wait_log`] would find the first one again.
    pub fn wait_log_lines(
        &mut self,
        needle: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<String>, String> {
        let what = format!("{count} log lines with {needle:?}");
        let mut lines = Vec::new();
        self.wait_for(&what, timeout, |new| {
            let matching = new.iter().filter(|l| l.text.contains(needle));
            lines.extend(matching.map(|l| l.text.clone()));
            (lines.len() >= count).then(|| lines.clone())
        })
    }

    /// Waits for the lifecycle line `event` (logged before, or within `timeout`) and returns
    /// its fields.
    pub fn wait_event(&mut self, event: &str, timeout: Duration) -> Result<EventFields, String> {
        let (_, line) = self.wait_line(&format!("the event {event:?}"), timeout, |line| {
            EventFields::of(line, event).is_some()
        })?;
        EventFields::of(&line, event).ok_or_else(|| format!("not a {event} line: {line}"))
    }

    /// The first log line so far that contains `needle`.
    pub fn find_log(&self, needle: &str) -> Option<String> {
        self.first_line(|line| line.contains(needle))
    }

    /// The fields of the first lifecycle line `event` logged so far.
    pub fn find_event(&self, event: &str) -> Option<EventFields> {
        self.first_line(|line| EventFields::of(line, event).is_some())
            .and_then(|line| EventFields::of(&line, event))
    }

    /// Every log line so far, one per line.
    pub fn log_text(&self) -> String {
        let log = self.log.lock();
        let lines = log.iter().flat_map(|l| l.iter()).map(|l| l.text.as_str());
        lines.collect::<Vec<_>>().join("\n")
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`, …) with kill(1).
    pub fn signal(&self, name: &str) -> Result<(), String> {
        if self.exited.is_some() {
            return Err(format!("{}: signal {name} after it exited", self.name));
        }
        signal_pid(self.pid(), name).map_err(|e| format!("{}: {e}", self.name))
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.exited.is_none() && matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the process to exit, then (bounded) for its output to close,
    /// so that the log is complete; returns its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        let mut deadline = Instant::now() + timeout;
        let mut gone = false;
        while self.closed < 2 {
            if !gone && matches!(self.child.try_wait(), Ok(Some(_))) {
                gone = true;
                deadline = deadline.max(Instant::now() + OUTPUT_GRACE);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if gone {
                    break; // something else holds its output open; the status is known
                }
                return Err(format!(
                    "{} still running after {timeout:?}; log:\n{}",
                    self.name,
                    self.log_text()
                ));
            }
            match self.lines.recv_timeout(left.min(Duration::from_millis(20))) {
                Ok(Some(())) | Err(RecvTimeoutError::Timeout) => {}
                Ok(None) => self.closed += 1,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = self
            .child
            .wait()
            .map_err(|e| format!("wait for {}: {e}", self.name))?;
        self.exited = Some(status);
        Ok(status)
    }

    /// Kills the process (SIGKILL) unless it has exited, and returns its exit status.
    pub fn kill(&mut self) -> Result<ExitStatus, String> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        let _ = self.child.kill();
        self.wait_exit(OUTPUT_GRACE)
    }

    fn first_line(&self, matches: impl Fn(&str) -> bool) -> Option<String> {
        let log = self.log.lock().ok()?;
        log.iter()
            .find(|l| matches(&l.text))
            .map(|l| l.text.clone())
    }

    /// Waits for the first line for which `matches` holds, logged before or within `timeout`;
    /// returns it and when it was read.
    fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<(Instant, String), String> {
        self.wait_for(what, timeout, |new| {
            new.iter()
                .find(|l| matches(&l.text))
                .map(|l| (l.read_at, l.text.clone()))
        })
    }

    /// Waits until `found` finds what it looks for, for at most `timeout`: it is given the
    /// whole log first, then each time lines arrive, the lines it has not seen yet (so a long
    /// log is read once, not again at every line).
    fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut found: impl FnMut(&[Line]) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        loop {
            {
                let log = self.log.lock().map_err(|_| "log poisoned".to_string())?;
                if let Some(it) = found(&log[seen..]) {
                    return Ok(it);
                }
                seen = log.len();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Some(())) => {}
                Ok(None) => self.closed += 1,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{}: waited {timeout:?} for {what}; log:\n{}",
                        self.name,
                        self.log_text()
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "{}: its output ended before {what}; log:\n{}",
                        self.name,
                        self.log_text()
                    ));
                }
            }
        }
    }
}

/// Sends signal `name` (`TERM`, `HUP`, `KILL`, …) to process `pid` with kill(1): the one way the
/// tests and the tools signal a process (the kit forbids `unsafe`, so not libc's kill).
pub fn signal_pid(pid: u32, name: &str) -> Result<(), String> {
    let status = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .map_err(|e| format!("kill -s {name} {pid}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -s {name} {pid} failed"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests;
