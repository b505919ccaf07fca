//! `LOG_FORMAT=json` on the real binary: every line is a JSON object Cloud Logging reads, with
//! its severity (DEBUG, INFO, WARNING, ERROR), and a lifecycle line's fields as JSON fields.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

/// The server with JSON logs: its lines, parsed, arrive on the receiver as it writes them.
fn start(extra: &[(&str, &str)]) -> (std::process::Child, mpsc::Receiver<Value>) {
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
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            if tx.send(value).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Lines until one with `"event": event`; returns it and everything read on the way.
fn until_event(rx: &mpsc::Receiver<Value>, event: &str, seen: &mut Vec<Value>) -> Value {
    loop {
        let line = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no {event} line; saw {seen:#?}"));
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
        let line = rx.recv_timeout(WAIT).expect("the accept's debug line");
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
        .args(["-s", "TERM", &child.id().to_string()])
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
    assert_eq!(child.wait().expect("exit").code(), Some(0));
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
    assert_eq!(child.wait().expect("exit").code(), Some(1));
}
