//! Starting a server: the command, its environment and log file, the two threads that follow
//! its output, and its addresses read from its `listening` line.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::evidence::EventFields;
use crate::server::{Line, Server};

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
