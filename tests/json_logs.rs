//! `LOG_FORMAT=json` on the real binary: every line is a JSON object Cloud Logging reads, with
//! its severity (DEBUG, INFO, WARNING, ERROR), and a lifecycle line's fields as JSON fields.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

/// A line of the server's output: a JSON line, parsed; or what must not be there (a line that
/// is not JSON, anything at all on stderr, where a panic would write), said in words.
type Line = Result<Value, String>;

/// The server process, killed if the test fails while it runs.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server with JSON logs: its lines arrive on the receiver as it writes them.
fn start(extra: &[(&str, &str)]) -> (Running, mpsc::Receiver<Line>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsdrain"))
        .envs([
            ("BIND", "127.0.0.1"),
            ("ADMIN_BIND", "127.0.0.1"),
            ("PORT", "0"),
            ("ADMIN_PORT", "0"),
            ("STATIC_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/static")),
            ("LOG_FORMAT", "json"),
            ("RUST_LOG", "debug"),
        ])
        .envs(extra.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let to_stderr = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let parsed =
                serde_json::from_str(&line).map_err(|e| format!("not a JSON line ({e}): {line}"));
            if tx.send(parsed).is_err() {
                return;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if to_stderr.send(Err(format!("on stderr: {line}"))).is_err() {
                return;
            }
        }
    });
    (Running(child), rx)
}

/// The next line, within `WAIT`; `what` names it in the failure.
fn next_line(rx: &mpsc::Receiver<Line>, what: &str, seen: &[Value]) -> Value {
    match rx.recv_timeout(WAIT) {
        Ok(Ok(line)) => line,
        Ok(Err(wrong)) => panic!("{wrong}"),
        Err(_) => panic!("no {what}; saw {seen:#?}"),
    }
}

/// Waits for the process's output to end (it has exited), and checks that every line left
/// was JSON and nothing came on stderr.
fn rest_is_clean(rx: &mpsc::Receiver<Line>) {
    loop {
        match rx.recv_timeout(WAIT) {
            Ok(Ok(_)) => {}
            Ok(Err(wrong)) => panic!("{wrong}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the output did not end"),
        }
    }
}

/// Lines until one with `"event": event`; returns it and everything read on the way.
fn until_event(rx: &mpsc::Receiver<Line>, event: &str, seen: &mut Vec<Value>) -> Value {
    loop {
        let line = next_line(rx, &format!("{event} line"), seen);
        seen.push(line.clone());
        if line["event"] == event {
            return line;
        }
    }
}

#[test]
fn each_level_is_a_cloud_logging_severity_and_lifecycle_fields_are_json_fields() {
    // A drain that ends at its deadline (a request head never finished holds it): warnings too.
    let (mut child, rx) = start(&[
        ("DRAIN_WINDOW", "0"),
        ("HANDOVER_TIMEOUT", "0"),
        ("CLOSE_TIMEOUT", "100ms"),
    ]);
    let mut seen = Vec::new();
    let listening = until_event(&rx, "listening", &mut seen);
    assert_eq!(listening["severity"], "INFO", "{listening}");
    assert!(listening["max_connections"].is_u64(), "{listening}");
    let public: std::net::SocketAddr = listening["public"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{listening}"));
    let mut slow = std::net::TcpStream::connect_timeout(&public, WAIT).expect("connect");
    slow.write_all(b"GET / HT").expect("send");
    // The debug line of its accept is prose: the message alone, no event.
    loop {
        let line = next_line(&rx, "debug line of the accept", &seen);
        seen.push(line.clone());
        if line["message"]
            .as_str()
            .is_some_and(|m| m.contains("accepted"))
        {
            assert_eq!(line["severity"], "DEBUG", "{line}");
            assert!(line.get("event").is_none(), "{line}");
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-s", "TERM", &child.0.id().to_string()])
        .status()
        .expect("kill(1)");
    assert!(killed.success());
    let draining = until_event(&rx, "draining", &mut seen);
    assert_eq!(
        (
            &draining["severity"],
            &draining["signal"],
            &draining["drain"]
        ),
        (
            &Value::from("INFO"),
            &Value::from("SIGTERM"),
            &Value::from("full")
        )
    );
    assert_eq!(draining["http"], 1, "{draining}");
    let passed = until_event(&rx, "drain_deadline_passed", &mut seen);
    assert_eq!(passed["severity"], "WARNING", "{passed}");
    assert_eq!(passed["open_public"], 1, "{passed}");
    let end = until_event(&rx, "drain_end", &mut seen);
    assert_eq!(end["still_open"], 1, "{end}");
    assert!(
        end["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{end}"
    );
    until_event(&rx, "exit", &mut seen);
    assert_eq!(child.0.wait().expect("exit").code(), Some(0));
    rest_is_clean(&rx);
    drop(slow);
}

#[test]
fn a_server_that_cannot_run_logs_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let (mut child, rx) = start(&[("PORT", port.as_str())]);
    let mut seen = Vec::new();
    let stopped = until_event(&rx, "stopped", &mut seen);
    assert_eq!(stopped["severity"], "ERROR", "{stopped}");
    assert!(
        stopped["error"]
            .as_str()
            .is_some_and(|e| e.contains("PORT")),
        "{stopped}"
    );
    assert_eq!(child.0.wait().expect("exit").code(), Some(1));
    rest_is_clean(&rx);
}
