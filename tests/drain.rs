//! The drain without a load balancer: real signals to the real process, real WebSocket clients.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    ALIVE_PREFIX, DrainPlan, RawWs, TestServer, WAIT, eventually, get, metric,
    raise_open_files_limit, ws_client,
};
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

/// What one client saw during the drain.
#[derive(Debug)]
struct Seen {
    /// Time of the close frame after SIGTERM.
    closed_after: Duration,
    code: Option<CloseCode>,
    replies: usize,
    /// Replies to messages sent once the server was draining (it keeps WebSockets working).
    replies_in_drain: usize,
    saw_draining_alive: bool,
}

#[test]
fn websockets_keep_working_then_close_with_1012_spread_over_the_window() {
    // Without the handover (HANDOVER_TIMEOUT=0) the close comes at each WebSocket's drain time:
    // the spread of those times is what this checks.
    const CLIENTS: usize = 100;
    let window = Duration::from_secs(2);
    let mut server = TestServer::start(&[
        ("HANDOVER_TIMEOUT", "0"),
        ("DRAIN_WINDOW", "2s"),
        ("CLOSE_TIMEOUT", "2s"),
        ("ALIVE_INTERVAL", "500ms"),
        ("RUST_LOG", "info"),
    ]);
    let (ready, all_ready) = std::sync::mpsc::channel();
    let signalled = Arc::new(std::sync::OnceLock::<Instant>::new());
    // Set once the server has logged that it drains: replies before it prove nothing.
    let draining = Arc::new(std::sync::OnceLock::<()>::new());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let ready = ready.clone();
            let signalled = signalled.clone();
            let draining = draining.clone();
            let addr = server.public;
            std::thread::spawn(move || {
                let mut ws = ws_client(addr);
                let mut seen = Seen {
                    closed_after: Duration::ZERO,
                    code: None,
                    replies: 0,
                    replies_in_drain: 0,
                    saw_draining_alive: false,
                };
                // One exchange before the signal, so every client is known to work.
                ws.send(Message::text(format!("{i}:0"))).unwrap();
                loop {
                    match ws.read() {
                        Ok(Message::Text(t)) if t.starts_with(ALIVE_PREFIX) => {}
                        Ok(Message::Text(t)) => {
                            let expected: String = format!("{i}:0").chars().rev().collect();
                            assert_eq!(t.as_str(), expected, "client {i}");
                            break;
                        }
                        Ok(_) => {}
                        Err(e) => panic!("client {i}: {e} before the signal"),
                    }
                }
                seen.replies = 1;
                let mut sent = 1;
                ready.send(()).expect("the test is waiting");
                ws.get_mut()
                    .set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                let give_up = Instant::now() + WAIT;
                // The first message sent once the server was draining.
                let mut first_in_drain = None;
                loop {
                    assert!(Instant::now() < give_up, "client {i}: no close frame");
                    if seen.code.is_none() && sent == seen.replies {
                        if draining.get().is_some() {
                            first_in_drain.get_or_insert(sent);
                        }
                        ws.send(Message::text(format!("{i}:{sent}"))).unwrap();
                        sent += 1;
                    }
                    match ws.read() {
                        Ok(Message::Text(t)) if t.starts_with(ALIVE_PREFIX) => {
                            seen.saw_draining_alive |= t.contains("\"phase\":\"draining\"");
                        }
                        Ok(Message::Text(t)) => {
                            let expected: String =
                                format!("{i}:{}", seen.replies).chars().rev().collect();
                            assert_eq!(t.as_str(), expected, "client {i}: replies out of order");
                            let in_drain = first_in_drain.is_some_and(|f| seen.replies >= f);
                            seen.replies_in_drain += usize::from(in_drain);
                            seen.replies += 1;
                        }
                        Ok(Message::Close(frame)) => {
                            let at = signalled.get().expect("close before the signal");
                            seen.closed_after = at.elapsed();
                            seen.code = frame.map(|f| f.code);
                        }
                        Ok(_) => {}
                        Err(tungstenite::Error::Io(e))
                            if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(tungstenite::Error::ConnectionClosed) => return seen,
                        Err(e) => panic!("client {i}: {e} (a close without a close frame?)"),
                    }
                }
            })
        })
        .collect();
    for _ in 0..CLIENTS {
        // Bounded: a client that failed before it was ready fails the test, not hangs it.
        all_ready
            .recv_timeout(WAIT)
            .expect("every client connected and got its first reply");
    }
    signalled.set(Instant::now()).unwrap();
    server.signal("TERM");
    server.wait_event("draining", WAIT);
    draining.set(()).unwrap();

    // During the drain: new connections are refused, open ones keep working, probes answer.
    assert!(std::net::TcpStream::connect(server.public).is_err());
    assert_eq!(get(server.admin, "/readyz").status, 503);
    assert_eq!(get(server.admin, "/healthz").status, 200);

    let seen: Vec<Seen> = clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .collect();
    let status = server.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", server.log_text());

    let mut times: Vec<Duration> = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.code, Some(CloseCode::Restart), "client {i}");
        times.push(s.closed_after);
    }
    // Each client closes at a random point of the 2 s window: most have time for an exchange
    // during the drain first (how many is not a timing claim: half the window is 1 s).
    let working = seen.iter().filter(|s| s.replies_in_drain > 0).count();
    assert!(
        working > CLIENTS / 2,
        "only {working} clients got a reply during the drain"
    );
    assert!(seen.iter().filter(|s| s.saw_draining_alive).count() > CLIENTS / 2);
    times.sort();
    let span = times[CLIENTS - 1] - times[0];
    assert!(span >= window.mul_f64(0.8), "closes span only {span:?}");
    // Seen by busy client threads: a generous margin after the window's end. The times are
    // random, so each quarter's share is too: 5 of 100 is 4.6 standard deviations below 25 (a
    // chance under 10^-6 a run), while a drain that bunched its closes would miss it by far.
    assert!(
        times[CLIENTS - 1] < window + Duration::from_millis(1500),
        "{times:?}"
    );
    for quarter in 0..4 {
        let from = window.mul_f64(quarter as f64 / 4.0);
        let to = window.mul_f64((quarter + 1) as f64 / 4.0);
        let n = times.iter().filter(|t| **t >= from && **t < to).count();
        assert!(n >= 5, "quarter {quarter} has {n} closes: {times:?}");
    }

    // The server's own record of the schedule, and its counters, balance.
    let plan = every_close_sent_and_answered(&mut server, CLIENTS);
    // The plan, logged when the drain began, is spread the same way.
    assert_eq!(plan.window_ms, window.as_millis() as u64, "{plan:?}");
    assert!(plan.per_quarter.iter().all(|&n| n >= 5), "{plan:?}");
    let exit = server.wait_event("exit", WAIT);
    let n = |key: &str| {
        exit.number(key)
            .unwrap_or_else(|| panic!("no {key} in {exit:?}"))
    };
    assert_eq!(n("ws_clean_closes"), CLIENTS as u64, "{exit:?}");
    assert_eq!(n("ws_close_timeouts"), 0, "{exit:?}");
    let (inbound, outbound) = (n("ws_messages_in"), n("ws_messages_out"));
    assert_eq!(inbound, outbound + n("ws_messages_after_close"), "{exit:?}");
    let replies: usize = seen.iter().map(|s| s.replies).sum();
    assert_eq!(outbound as usize, replies, "{exit:?}");
}

#[test]
fn a_client_that_never_answers_the_close_frame_is_dropped_after_close_timeout() {
    let mut server = TestServer::start(&[
        ("HANDOVER_TIMEOUT", "0"),
        ("DRAIN_WINDOW", "200ms"),
        ("CLOSE_TIMEOUT", "700ms"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    let mut ws = RawWs::connect(server.public);
    // From before the signal: the server's close timeout starts later (when it sends the
    // 1012), so 700 ms is a bound no slow reader can miss.
    let signalled = Instant::now();
    server.signal("TERM");
    let close = ws.read_reply();
    assert_eq!(close.close_code(), Some(1012));
    assert!(close.close_reason().contains("restarting"));
    // Say nothing: the server gives up after CLOSE_TIMEOUT and the process exits 0.
    ws.expect_tcp_close();
    let waited = signalled.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    let end = server.wait_event("drain_end", WAIT);
    assert_eq!(end.number("timed_out"), Some(1), "{end:?}");
    let exit = server.wait_event("exit", WAIT);
    assert_eq!(
        (
            exit.number("ws_clean_closes"),
            exit.number("ws_close_timeouts")
        ),
        (Some(0), Some(1)),
        "{exit:?}"
    );
}

#[test]
fn messages_after_the_close_frame_are_not_answered_but_counted() {
    let mut server = TestServer::start(&[
        ("HANDOVER_TIMEOUT", "0"),
        ("DRAIN_WINDOW", "100ms"),
        ("CLOSE_TIMEOUT", "5s"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    let mut ws = RawWs::connect(server.public);
    ws.send_text("before");
    assert_eq!(ws.read_reply().text(), "erofeb");
    server.signal("TERM");
    assert_eq!(ws.read_reply().close_code(), Some(1012));
    ws.send_text("too late");
    eventually(WAIT, "the late message is counted", || {
        metric(server.admin, "wsdrain_websocket_messages_after_close_total") == Some(1.0)
    });
    assert_eq!(
        metric(server.admin, "wsdrain_drain_close_frames_sent"),
        Some(1.0)
    );
    ws.answer_close(1012);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn second_signal_sends_1012_to_everyone_and_exits_at_once() {
    let mut server = TestServer::start(&[
        ("DRAIN_WINDOW", "60s"),
        ("CLOSE_TIMEOUT", "5s"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    let mut clients: Vec<RawWs> = (0..5).map(|_| RawWs::connect(server.public)).collect();
    server.signal("TERM");
    server.wait_event("draining", WAIT);
    // At once: well before the 60 s window, which `wait_exit`'s bound could not wait out.
    server.signal("TERM");
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    for ws in &mut clients {
        assert_eq!(ws.read_reply().close_code(), Some(1012));
        ws.expect_tcp_close();
    }
}

#[test]
fn an_open_websocket_keeps_echoing_while_new_connections_are_refused() {
    let mut server = TestServer::start(&[("DRAIN_WINDOW", "3s"), ("ALIVE_INTERVAL", "0")]);
    let mut ws = RawWs::connect(server.public);
    let public = server.public;
    server.signal("TERM");
    server.wait_event("draining", WAIT);
    assert!(
        std::net::TcpStream::connect(public).is_err(),
        "the public port still accepts"
    );
    // Echo keeps working until this connection's turn comes: within the window and the
    // handover timeout (3 s + 5 s), well inside the bound.
    let mut echoed = 0;
    let give_up = Instant::now() + 2 * WAIT;
    loop {
        assert!(Instant::now() < give_up, "no 1012 after {echoed} echoes");
        ws.send_text("ping?");
        let f = ws.read_reply();
        if f.opcode == 8 {
            assert_eq!(f.close_code(), Some(1012));
            break;
        }
        assert_eq!(f.text(), "?gnip");
        echoed += 1;
    }
    assert!(echoed > 0);
    ws.answer_close(1012);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn sigterm_during_prestop_answers_the_hook_and_drains_websockets() {
    let mut server = TestServer::start(&[
        ("HANDOVER_TIMEOUT", "0"),
        ("PRESTOP_DELAY", "30s"),
        ("DRAIN_WINDOW", "300ms"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    let mut ws = RawWs::connect(server.public);
    let mut hook = common::Client::connect(server.admin);
    hook.send(b"GET /prestop HTTP/1.1\r\nHost: t\r\n\r\n");
    server.wait_event("prestop", WAIT);
    // During preStop the WebSocket is fully served.
    ws.send_text("prestop");
    assert_eq!(ws.read_reply().text(), "potserp");
    server.signal("TERM");
    // At once, not after the 30 s delay: `response` waits at most WAIT.
    assert_eq!(hook.response().status, 200);
    assert_eq!(ws.read_reply().close_code(), Some(1012));
    ws.answer_close(1012);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn the_drain_end_line_counts_only_what_happened_in_the_drain() {
    let mut server = TestServer::start(&[
        ("HANDOVER_TIMEOUT", "0"),
        ("DRAIN_WINDOW", "100ms"),
        ("CLOSE_TIMEOUT", "2s"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    // A close handshake before the drain: the client's own 1000.
    let mut early = RawWs::connect(server.public);
    early.send(true, 8, &1000u16.to_be_bytes());
    early.expect_close(1000);
    eventually(WAIT, "the early close is counted", || {
        metric(server.admin, "wsdrain_websocket_clean_closes_total") == Some(1.0)
    });
    // One in the drain.
    let mut ws = RawWs::connect(server.public);
    server.signal("TERM");
    assert_eq!(ws.read_reply().close_code(), Some(1012));
    ws.answer_close(1012);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    let end = server.wait_event("drain_end", WAIT);
    assert_eq!(
        (end.number("closes_sent"), end.number("clean")),
        (Some(1), Some(1)),
        "the drain's own counts: {end:?}"
    );
    let exit = server.wait_event("exit", WAIT);
    assert_eq!(exit.number("ws_clean_closes"), Some(2), "{exit:?}");
}

#[test]
fn the_drain_deadline_leaves_room_for_the_lingering_close() {
    let mut server = TestServer::start(&[
        ("HANDOVER_TIMEOUT", "0"),
        ("DRAIN_WINDOW", "100ms"),
        ("CLOSE_TIMEOUT", "300ms"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    let mut ws = RawWs::connect(server.public);
    server.signal("TERM");
    assert_eq!(ws.read_reply().close_code(), Some(1012));
    // Answer the close, read the server's FIN, but keep our side open: the server lingers
    // (LINGER, 2 s) for our EOF, longer than DRAIN_WINDOW + CLOSE_TIMEOUT.
    ws.answer_close(1012);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    server.wait_event("drain_complete", WAIT);
    assert!(
        server.find_event("drain_deadline_passed").is_none(),
        "{}",
        server.log_text()
    );
    drop(ws);
}

#[test]
fn metrics_report_the_limits_and_the_drain_against_its_deadline() {
    let mut server = TestServer::start(&[
        ("MAX_CONNECTIONS", "50"),
        ("DRAIN_WINDOW", "1s"),
        ("HANDOVER_TIMEOUT", "1s"),
        ("CLOSE_TIMEOUT", "1s"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    let scraped = common::metrics(server.admin);
    for (series, value) in [
        ("wsdrain_max_connections", 50.0),
        // 1 s window + 1 s handover + 1 s close timeout + 2 s linger.
        ("wsdrain_drain_deadline_seconds", 5.0),
        ("wsdrain_drain_elapsed_seconds", 0.0),
        ("wsdrain_websocket_alive_late_total", 0.0),
    ] {
        assert_eq!(scraped.get(series), Some(value), "{series} in\n{scraped}");
    }
    assert!(scraped.get("wsdrain_resident_memory_bytes").unwrap_or(0.0) > 0.0);
    // A WebSocket keeps the drain going while the clock of the drain is read.
    let mut ws = RawWs::connect(server.public);
    server.signal("TERM");
    server.wait_event("draining", WAIT);
    eventually(WAIT, "the drain's elapsed time grows", || {
        let m = common::metrics(server.admin);
        m.get("wsdrain_phase{phase=\"draining\"}") == Some(1.0)
            && m.get("wsdrain_drain_elapsed_seconds").unwrap_or(0.0) > 0.0
    });
    ws.answer_close(1012);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn a_connection_accepted_before_its_request_arrives_gets_an_answer_in_the_drain() {
    // Issue 21: a connection still in the backlog at SIGTERM (or accepted just before) was
    // closed as "idle" before its request arrived: the client read EOF, not the 503 the drain
    // promises. One WebSocket keeps the drain going; the server is stopped while the client
    // connects, so the SIGTERM and the connection reach it together.
    let mut server = TestServer::start(&[
        ("HANDOVER_TIMEOUT", "0"),
        ("DRAIN_WINDOW", "5s"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    let mut ws = RawWs::connect(server.public);
    server.signal("STOP");
    let mut late = common::Client::connect(server.public); // completed by the kernel's backlog
    server.signal("TERM");
    server.signal("CONT");
    // The client speaks only after the drain's first steps (in-flight work finished, the
    // WebSockets' times drawn) are done.
    server.wait_event("drain_schedule", WAIT);
    late.send(common::UPGRADE.as_bytes());
    let answer = late.response();
    assert_eq!(answer.status, 503, "{:?}", answer.text());
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(late.closed_within(WAIT));
    assert_eq!(ws.read_reply().close_code(), Some(1012));
    ws.answer_close(1012);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn still_open_counts_public_connections_not_a_scrapers_keep_alive() {
    // Issue 21: a scraper holding a keep-alive connection to the admin port made a clean drain
    // report still_open=1. The field counts public connections; the admin port's are apart.
    let mut server = TestServer::start(&[
        ("HANDOVER_TIMEOUT", "0"),
        ("DRAIN_WINDOW", "100ms"),
        ("ALIVE_INTERVAL", "0"),
    ]);
    let mut scraper = common::Client::connect(server.admin);
    assert_eq!(scraper.get("/metrics").status, 200);
    let mut ws = RawWs::connect(server.public);
    server.signal("TERM");
    assert_eq!(ws.read_reply().close_code(), Some(1012));
    ws.answer_close(1012);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    server.wait_event("drain_complete", WAIT);
    let end = server.wait_event("drain_end", WAIT);
    assert_eq!(
        (end.number("still_open"), end.number("admin_open")),
        (Some(0), Some(1)),
        "{end:?}"
    );
    drop(scraper);
}

#[test]
fn a_drain_of_more_than_2047_websockets_closes_each_with_its_1012_spread_over_the_window() {
    // Past 2,047 connections, neighbours in the server's slab share a drain time (in groups of
    // 1/1,024 of them): the large drain's path, end to end. Every WebSocket still gets its 1012
    // and closes cleanly, and the times still spread over the whole window.
    const CLIENTS: usize = 2_100;
    // Its clients and the other drain tests' running beside it (the server has its own limit).
    raise_open_files_limit(CLIENTS as u64 + 500);
    let mut server = TestServer::start(&[
        ("HANDOVER_TIMEOUT", "0"),
        ("DRAIN_WINDOW", "2s"),
        ("CLOSE_TIMEOUT", "10s"),
        ("ALIVE_INTERVAL", "0"),
        ("RUST_LOG", "info"),
    ]);
    let mut clients: Vec<RawWs> = (0..CLIENTS)
        .map(|_| RawWs::connect(server.public))
        .collect();
    server.signal("TERM");
    server.wait_event("draining", WAIT);
    // In accept order: a close that came while an earlier one was awaited waits in its socket,
    // and the server waits CLOSE_TIMEOUT for the answer.
    for (i, ws) in clients.iter_mut().enumerate() {
        let f = ws.read_reply();
        assert_eq!(
            (f.opcode, f.close_code()),
            (8, Some(1012)),
            "client {i}: {f:?}"
        );
        ws.answer_close(1012);
    }
    let status = server.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", server.log_text());

    let plan = every_close_sent_and_answered(&mut server, CLIENTS);
    let end = server.wait_event("drain_end", WAIT);
    assert_eq!(end.number("cut"), Some(0), "{end:?}");
    // About a quarter in each quarter: 1,050 groups of two at random times put 525 ± 28 in
    // each; 350 to 700 is over six standard deviations either way, while one bunched quarter
    // would hold most of them.
    assert!(
        plan.per_quarter.iter().all(|&q| (350..=700).contains(&q)),
        "{plan:?}"
    );
}

/// The drain's end as the server logs it when each of `clients` WebSockets was closed at its own
/// time over a 2 s window and answered: every close sent, every one clean, none timed out, the
/// times at least 1.6 s apart; and the plan logged when the drain began, with every close in it.
fn every_close_sent_and_answered(server: &mut TestServer, clients: usize) -> DrainPlan {
    let end = server.wait_event("drain_end", WAIT);
    let n = |key: &str| {
        end.number(key)
            .unwrap_or_else(|| panic!("no {key} in {end:?}"))
    };
    assert_eq!(n("closes_sent"), clients as u64, "{end:?}");
    assert_eq!(n("clean"), clients as u64, "{end:?}");
    assert_eq!(n("timed_out"), 0, "{end:?}");
    assert!(n("last_ms") - n("first_ms") >= 1600, "{end:?}");
    let plan = DrainPlan::from_fields(&server.wait_event("drain_schedule", WAIT))
        .expect("the plan reads back");
    assert_eq!(plan.closes(), clients, "{plan:?}");
    plan
}
