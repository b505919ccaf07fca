//! The one launcher of a `wsdrain` process, for the tests and the tools: it starts the binary
//! (whose path the caller gives: a test passes `env!("CARGO_BIN_EXE_wsdrain")`, the rollout
//! harness its `--server`) on loopback with ephemeral ports, follows its stdout and stderr
//! line by line in two threads, and reads its addresses from its `listening` line.
//!
//! Every wait is bounded and every failure is an `Err` carrying the log so far: the harness
//! reports it, a test panics with it. A [`Server`] that is dropped while running is killed.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::evidence::EventFields;

/// How long a process that has exited may take to close its output (so its log is complete).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// How to start a server: the command, its environment, where to copy its log.
#[derive(Debug)]
pub struct Launch {
    command: Command,
    name: String,
    env: Vec<(String, String)>,
    log_file: Option<PathBuf>,
    start_timeout: Duration,
}

impl Launch {
    /// The server binary at `binary`.
    pub fn new(binary: impl AsRef<OsStr>) -> Launch {
        Launch::with_command(Command::new(binary))
    }

    /// A prepared command (arguments, a wrapper that lowers limits, …); the launcher adds the
    /// environment and the pipes.
    pub fn with_command(command: Command) -> Launch {
        let name = command.get_program().to_string_lossy().into_owned();
        Launch {
            command,
            name,
            env: Vec::new(),
            log_file: None,
            start_timeout: Duration::from_secs(10),
        }
    }

    /// The name errors call it by (a pod's name; the binary's path by default).
    pub fn name(mut self, name: &str) -> Launch {
        self.name = name.to_string();
        self
    }

    /// Sets an environment variable. The launcher's own defaults come first (`BIND` and
    /// `ADMIN_BIND` 127.0.0.1, `PORT` and `ADMIN_PORT` 0), so these override them.
    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Sets several environment variables, as [`Launch::env`].
    pub fn envs<K: AsRef<str>, V: AsRef<str>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Launch {
        for (k, v) in vars {
            self = self.env(k.as_ref(), v.as_ref());
        }
        self
    }

    /// Also writes every log line to `path`.
    pub fn log_file(mut self, path: impl Into<PathBuf>) -> Launch {
        self.log_file = Some(path.into());
        self
    }

    /// How long [`Launch::start`] waits for the `listening` line (10 s by default).
    pub fn start_timeout(mut self, timeout: Duration) -> Launch {
        self.start_timeout = timeout;
        self
    }

    /// Starts the process and returns once it logged `listening` with its two addresses.
    pub fn start(mut self) -> Result<Server, String> {
        let name = self.name;
        for (key, value) in [
            ("BIND", "127.0.0.1"),
            ("ADMIN_BIND", "127.0.0.1"),
            ("PORT", "0"),
            ("ADMIN_PORT", "0"),
        ] {
            self.command.env(key, value);
        }
        self.command.envs(self.env);
        let file = match &self.log_file {
            Some(path) => Some(Arc::new(Mutex::new(
                std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
            ))),
            None => None,
        };
        // The pipes and their readers come first, so that starting the threads is not part of
        // the server's start-up (the load generator measures it with this launcher).
        let (tx, lines) = channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let follow_pipe = || {
            let (reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
            let (tx, log, file) = (tx.clone(), log.clone(), file.clone());
            std::thread::spawn(move || follow(reader, &log, file.as_deref(), &tx));
            Ok::<_, String>(writer)
        };
        let (stdout, stderr) = (follow_pipe()?, follow_pipe()?);
        let mut command = self.command;
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        let spawned_at = Instant::now();
        let spawned = command.spawn();
        // The command holds the pipes' write ends: closed here, so only the child has them and
        // the readers see the end of its output when it exits (or at once if it did not start).
        let program = command.get_program().to_string_lossy().into_owned();
        drop(command);
        let child = spawned.map_err(|e| format!("start {name} ({program}): {e}"))?;
        drop(tx); // only the readers send: the channel disconnects when both streams ended
        let mut server = Server {
            name,
            child,
            lines,
            log,
            closed: 0,
            exited: None,
            public: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listening_after: Duration::ZERO,
        };
        let (read_at, line) =
            server.wait_line("the event \"listening\"", self.start_timeout, |line| {
                EventFields::of(line, "listening").is_some()
            })?;
        server.listening_after = read_at.saturating_duration_since(spawned_at);
        let listening = EventFields::of(&line, "listening")
            .ok_or_else(|| format!("not a listening line: {line}"))?;
        let addr = |key: &str| {
            listening
                .get(key)
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| format!("{}: no {key} address in {listening:?}", server.name))
        };
        server.public = addr("public")?;
        server.admin = addr("admin")?;
        Ok(server)
    }
}

/// Reads one output stream line by line into the shared log (and the log file), telling the
/// server handle about each line and, with `None`, about the end of the stream.
fn follow(
    stream: impl Read,
    log: &Mutex<Vec<Line>>,
    file: Option<&Mutex<std::fs::File>>,
    tx: &std::sync::mpsc::Sender<Option<()>>,
) {
    let mut reader = BufReader::new(stream);
    let mut bytes = Vec::new();
    loop {
        bytes.clear();
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let read_at = Instant::now();
        let line = String::from_utf8_lossy(&bytes)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        if let Some(file) = file
            && let Ok(mut f) = file.lock()
        {
            let _ = writeln!(f, "{line}");
        }
        if let Ok(mut log) = log.lock() {
            log.push(Line {
                read_at,
                text: line,
            });
        }
        let _ = tx.send(Some(()));
    }
    let _ = tx.send(None);
}

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
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .map_err(|e| format!("kill -s {name}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "kill -s {name} {} ({}) failed",
                self.pid(),
                self.name
            ))
        }
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
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        loop {
            {
                let log = self.log.lock().map_err(|_| "log poisoned".to_string())?;
                if let Some(line) = log[seen..].iter().find(|l| matches(&l.text)) {
                    return Ok((line.read_at, line.text.clone()));
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

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    //! The launcher against a shell script that logs as the server does.

    use super::*;

    /// A stand-in for the server: a shell script that logs as it does.
    fn fake(script: &str) -> Launch {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        Launch::with_command(command).name("fake")
    }

    const LISTENING: &str =
        "echo \"t INFO  [wsdrain] listening public=$BIND:4000 admin=$ADMIN_BIND:4001 x=$X\"";

    #[test]
    fn starts_reads_its_addresses_and_follows_its_log() {
        let mut s = fake(&format!(
            "{LISTENING}; echo 't WARN  [wsdrain] on stderr' >&2; exec sleep 30"
        ))
        .env("X", "1")
        .env("BIND", "127.0.0.2")
        .start()
        .unwrap();
        assert_eq!(
            s.public(),
            "127.0.0.2:4000".parse().unwrap(),
            "env overrides"
        );
        assert_eq!(s.admin(), "127.0.0.1:4001".parse().unwrap());
        assert!(s.listening_after() > Duration::ZERO);
        assert!(s.listening_after() < Duration::from_secs(5));
        assert!(s.wait_log("on stderr", Duration::from_secs(5)).is_ok());
        let listening = s.find_event("listening").unwrap();
        assert_eq!(listening.number("x"), Some(1));
        assert!(s.running());
        let err = s
            .wait_log("never logged", Duration::from_millis(100))
            .unwrap_err();
        assert!(
            err.contains("fake: waited") && err.contains("on stderr"),
            "{err}"
        );
        assert!(s.wait_exit(Duration::from_millis(100)).is_err());
        s.signal("TERM").unwrap();
        let status = s.wait_exit(Duration::from_secs(5)).unwrap();
        assert_eq!(status.code(), None, "killed by SIGTERM");
        assert!(!s.running());
        assert!(s.signal("TERM").is_err());
    }

    #[test]
    fn the_log_is_complete_once_it_exited() {
        let mut s = fake(&format!(
            "{LISTENING}; for i in $(seq 200); do echo \"t INFO  [wsdrain] n i=$i\"; done; \
             echo 't INFO  [wsdrain] exit clean=1'; exit 3"
        ))
        .start()
        .unwrap();
        assert_eq!(s.wait_exit(Duration::from_secs(5)).unwrap().code(), Some(3));
        assert_eq!(
            s.find_event("exit").and_then(|e| e.number("clean")),
            Some(1)
        );
        assert_eq!(s.log_text().lines().count(), 202);
        assert!(s.wait_event("exit", Duration::ZERO).is_ok(), "seen before");
        let err = s
            .wait_event("drain_end", Duration::from_secs(5))
            .unwrap_err();
        assert!(err.contains("output ended"), "{err}");
    }

    #[test]
    fn a_server_that_never_listens_is_an_error_in_time() {
        let started = Instant::now();
        let err = fake("echo 'not listening'; exec sleep 30")
            .start_timeout(Duration::from_millis(300))
            .start()
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.contains("not listening"), "{err}");
        let err = fake("exit 2").start().unwrap_err();
        assert!(err.contains("output ended"), "{err}");
        let err = Launch::new("/no/such/binary").start().unwrap_err();
        assert!(err.contains("/no/such/binary"), "{err}");
    }

    #[test]
    fn the_log_is_copied_to_a_file_and_a_kill_is_final() {
        let path = std::env::temp_dir().join(format!("testkit-log-{}", std::process::id()));
        let mut s = fake(&format!("{LISTENING}; exec sleep 30"))
            .log_file(&path)
            .start()
            .unwrap();
        let status = s.kill().unwrap();
        assert_eq!(status.code(), None);
        assert_eq!(s.kill().unwrap(), status);
        let copied = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(copied.contains("] listening public="), "{copied}");
    }
}
