//! The process as Kubernetes sees it: preStop, readiness, signals, exit codes, bad settings.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Client, TestServer, WAIT, assert_metrics, get};

/// Each `/prestop` call as the server logged it: (when it came, when it is answered), in ms of
/// the server's uptime.
fn prestop_calls(server: &mut TestServer, count: usize) -> Vec<(u64, u64)> {
    let lines = server.wait_log_lines(": GET /prestop at uptime ", count);
    let number = |text: &str| text.trim().trim_end_matches(" ms").parse::<u64>().ok();
    lines
        .iter()
        .map(|line| {
            let (_, call) = line
                .split_once(": GET /prestop at uptime ")
                .unwrap_or_default();
            let (came, answered) = call.split_once(" ms, answered at ").unwrap_or_default();
            match (number(came), number(answered)) {
                (Some(came), Some(answered)) => (came, answered),
                _ => panic!("not a /prestop line: {line}"),
            }
        })
        .collect()
}

#[test]
fn prestop_answers_after_the_delay_without_blocking_anyone() {
    let mut server = TestServer::start(&[("PRESTOP_DELAY", "2s")]);
    let started = Instant::now();
    let mut first = Client::connect(server.admin);
    first.send(b"GET /prestop HTTP/1.1\r\nHost: t\r\n\r\n");
    // PRESTOP_DELAY and the 0.5 s tie break after it (a grace period equal to the delay ends
    // while the hook still waits, so the kubelet's SIGTERM finds it waiting).
    let prestop = server.wait_event("prestop", WAIT);
    assert_eq!(prestop.number("answer_in_ms"), Some(2_500), "{prestop:?}");
    // What was open when the hook came: this one admin connection, nothing public.
    let open = ["websockets", "http", "admin"].map(|k| prestop.number(k));
    assert_eq!(open, [0, 0, 1].map(Some), "{prestop:?}");

    // While it waits: liveness answers (and the hook still has no answer: it blocks no one),
    // readiness says 503, the public side serves.
    assert_eq!(get(server.admin, "/healthz").status, 200);
    assert!(first.nothing_arrived(), "the hook was answered early");
    let ready = get(server.admin, "/readyz");
    assert_eq!(
        (ready.status, ready.text().as_str()),
        (503, "not ready: prestop\n")
    );
    assert_eq!(get(server.public, "/readyz").status, 503);
    assert_eq!(get(server.public, "/").status, 200);
    assert_metrics(server.admin, &[("wsdrain_phase{phase=\"prestop\"}", 1.0)]);

    // A second, concurrent call, made later, shares the first one's deadline (by the server's
    // own clock).
    let mut second = Client::connect(server.admin);
    second.send(b"GET /prestop HTTP/1.1\r\nHost: t\r\n\r\n");
    let r1 = first.response();
    let t1 = started.elapsed();
    let r2 = second.response();
    assert_eq!((r1.status, r2.status), (200, 200));
    assert!(t1 >= Duration::from_millis(2_400), "answered early: {t1:?}");
    let calls = prestop_calls(&mut server, 2);
    assert!(calls[1].0 > calls[0].0, "{calls:?}");
    assert_eq!(calls[1].1, calls[0].1, "not the same deadline: {calls:?}");
    assert_eq!(calls[0].1 - calls[0].0, 2_500, "{calls:?}");
    // The connection is kept alive after the answer, and a later call is answered at once.
    assert_eq!(first.get("/prestop").status, 200);
    let calls = prestop_calls(&mut server, 3);
    assert!(calls[2].1 <= calls[2].0, "{calls:?}");
    assert!(server.running());
}

#[test]
fn sigterm_closes_the_public_port_and_exits_zero() {
    let mut server = TestServer::start(&[]);
    let mut idle = Client::connect(server.public);
    assert_eq!(idle.get("/healthz").status, 200);
    server.signal("TERM");
    server.wait_event("draining", WAIT);
    let status = server.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log_text());
    assert!(idle.closed_within(WAIT));
    let exit = server.wait_event("exit", WAIT);
    assert_eq!(exit.number("accepted_public"), Some(1), "{exit:?}");
    // That the port refuses during the drain, while the process still runs, is
    // `drain_refuses_new_connections_but_finishes_requests_and_keeps_admin`.
}

#[test]
fn sigint_also_drains() {
    let mut server = TestServer::start(&[]);
    server.signal("INT");
    assert_eq!(
        server.wait_event("draining", WAIT).get("signal"),
        Some("SIGINT")
    );
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn drain_refuses_new_connections_but_finishes_requests_and_keeps_admin() {
    // The preStop hook has returned (PRESTOP_DELAY=0): the drain is the configured one.
    let mut server = TestServer::start(&[("PRESTOP_DELAY", "0")]);
    // A request in flight (head incomplete) keeps the drain waiting for it.
    let mut slow = Client::connect(server.public);
    slow.send(b"GET /healthz HTTP/1.1\r\nHo");
    let mut hook = Client::connect(server.admin);
    hook.send(b"GET /prestop HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(hook.response().status, 200);
    server.wait_event("prestop", WAIT);

    server.signal("TERM");
    let draining = server.wait_event("draining", WAIT);
    assert_eq!(draining.get("drain"), Some("full"), "{draining:?}");
    // New public connections are refused by the kernel; admin still answers.
    assert!(std::net::TcpStream::connect(server.public).is_err());
    let ready = get(server.admin, "/readyz");
    assert_eq!(
        (ready.status, ready.text().as_str()),
        (503, "not ready: draining\n")
    );
    assert_metrics(server.admin, &[("wsdrain_phase{phase=\"draining\"}", 1.0)]);
    assert!(server.running());

    // The request in flight is finished, with Connection: close, and then the process exits.
    slow.send(b"st: t\r\n\r\n");
    let r = slow.response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    server.wait_event("drain_complete", WAIT);
}

#[test]
fn prestop_first_called_during_the_drain_answers_at_once() {
    // A WebSocket keeps the drain going well past the bound below: its close comes at a random
    // time in the 30 s window, and it never answers it (CLOSE_TIMEOUT, 5 s, follows).
    let mut server = TestServer::start(&[("DRAIN_WINDOW", "30s"), ("PRESTOP_DELAY", "30s")]);
    let _ws = common::RawWs::connect(server.public);
    server.signal("TERM");
    server.wait_event("draining", WAIT);

    let mut hook = Client::connect(server.admin);
    hook.send(b"GET /prestop HTTP/1.1\r\nHost: t\r\n\r\n");
    // The first /prestop of the run, during the drain: answered at once (by the server's
    // clock), not at exit.
    let r = hook.response();
    assert_eq!(r.status, 200, "{}", r.text());
    let call = prestop_calls(&mut server, 1)[0];
    assert!(call.1 <= call.0, "{call:?}");
    assert!(
        server.running(),
        "the drain should still be waiting for the WebSocket"
    );
}

#[test]
fn second_signal_exits_at_once() {
    let mut server = TestServer::start(&[("DRAIN_WINDOW", "60s")]);
    let mut slow = Client::connect(server.public);
    slow.send(b"GET /healthz HTTP/1.1\r\n");
    server.signal("TERM");
    server.wait_event("draining", WAIT);
    assert!(server.running());
    // At once: well before the 60 s window, which `wait_exit`'s bound could not wait out.
    server.signal("TERM");
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    assert_eq!(
        server.wait_event("stop_now", WAIT).get("signal"),
        Some("SIGTERM")
    );
    assert!(slow.closed_within(WAIT));
}

#[test]
fn drain_deadline_bounds_the_wait() {
    let mut server = TestServer::start(&[
        ("DRAIN_WINDOW", "500ms"),
        ("HANDOVER_TIMEOUT", "500ms"),
        ("CLOSE_TIMEOUT", "500ms"),
    ]);
    let mut slow = Client::connect(server.public);
    slow.send(b"GET /healthz HTTP/1.1\r\n");
    let started = Instant::now();
    server.signal("TERM");
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    // The deadline: window + handover + close timeout + 2 s linger = 3.5 s after the signal.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(3500) && took < Duration::from_secs(8),
        "{took:?}"
    );
    let passed = server.wait_event("drain_deadline_passed", WAIT);
    assert_eq!(passed.number("open_public"), Some(1), "{passed:?}");
}

fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(common::binary());
    command
        .args(args)
        .env("STATIC_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/static"));
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run wsdrain")
}

#[test]
fn bad_settings_exit_2_with_one_clear_line() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&[], &[("PORT", "eighty")], "PORT: invalid value \"eighty\""),
        (
            &["--prestop-delay", "soon"],
            &[],
            "PRESTOP_DELAY: invalid value \"soon\"",
        ),
        (
            &[],
            &[("TERMINATION_GRACE_PERIOD", "20s")],
            "TERMINATION_GRACE_PERIOD: 20s is too short",
        ),
        (&[], &[("STATIC_DIR", "/no/such/dir")], "STATIC_DIR"),
        (&["--bogus"], &[], "unknown flag --bogus"),
    ];
    for (args, env, expected) in cases {
        let out = run(args, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[test]
fn help_lists_every_setting_and_version_prints() {
    let out = run(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for name in [
        "PORT",
        "BIND",
        "ADMIN_PORT",
        "ADMIN_BIND",
        "STATIC_DIR",
        "PRESTOP_DELAY",
        "DRAIN_WINDOW",
        "CLOSE_TIMEOUT",
        "HANDOVER_TIMEOUT",
        "TERMINATION_GRACE_PERIOD",
        "ALIVE_INTERVAL",
        "PING_INTERVAL",
        "PONG_TIMEOUT",
        "HEADER_TIMEOUT",
        "IDLE_TIMEOUT",
        "MAX_CONNECTIONS",
        "MAX_MESSAGE_SIZE",
        "MAX_HEADER_BYTES",
        "LISTEN_BACKLOG",
        "INSTANCE_ID",
        "RUST_LOG",
    ] {
        assert!(help.contains(name), "--help lacks {name}");
    }
    assert!(help.contains("[default: 8080]") && help.contains("[default: 620s]"));
    assert!(
        help.contains(
            "PRESTOP_DELAY + DRAIN_WINDOW + HANDOVER_TIMEOUT + CLOSE_TIMEOUT + 4.5s <= TERMINATION_GRACE_PERIOD"
        )
    );
    let out = run(&["--version"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("wsdrain 0."));
}

#[test]
fn a_port_in_use_exits_1_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run(
        &[],
        &[("BIND", "127.0.0.1"), ("PORT", &port), ("ADMIN_PORT", "0")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stopped = stdout
        .lines()
        .find_map(|line| common::EventFields::of(line, "stopped"))
        .unwrap_or_else(|| panic!("no stopped line: {stdout}"));
    // The error is the explanation a person reads: it names the address and the setting.
    let error = stopped.get("error").unwrap_or_default();
    assert!(
        error.contains(&format!("127.0.0.1:{port}")) && error.contains("(PORT)"),
        "{stopped:?}"
    );
}

#[test]
fn ipv6_addresses_are_served() {
    // Loopback only, as every network test here: that `::` (every interface) is a valid
    // setting is the config's unit test. A host with IPv6 turned off cannot run this one.
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    }
    let server = TestServer::start(&[("BIND", "::1"), ("ADMIN_BIND", "[::1]")]);
    let v6 = std::net::SocketAddr::new("::1".parse().unwrap(), server.public.port());
    assert_eq!(get(v6, "/healthz").status, 200);
    let admin = std::net::SocketAddr::new("::1".parse().unwrap(), server.admin.port());
    assert_eq!(get(admin, "/readyz").status, 200);
}
