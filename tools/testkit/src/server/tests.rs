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
