//! Deterministic simulation of the server's loop (in the spirit of FoundationDB's simulation
//! testing and TigerBeetle's VOPR). The real [`Server`] — accept, connections, timers,
//! lifecycle, drain — runs against simulated sockets ([`net`]) and a simulated clock, with
//! simulated clients ([`clients`]) of every kind: HTTP, WebSocket, slow, non-reading, dribbling,
//! abusive, vanishing, the preStop hook and probes. One seed decides everything: the settings,
//! who connects when, how bytes are split on the wire, short writes and `WouldBlock`s, resets,
//! clock jumps, when `/prestop` and SIGTERM (once or twice) come, descriptor exhaustion. After
//! every step the invariants are checked; a failure prints the one command that replays it.
//!
//! - `cargo test --test simulation`: the fixed seeds (CI).
//! - `SIM_SEED=123 cargo test --test simulation -- --ignored replay --nocapture`: one seed,
//!   with a line per step.
//! - `SIM_MINUTES=10 cargo test --release --test simulation -- --ignored soak --nocapture`:
//!   random seeds for ten minutes.

mod clients;
mod invariants;
mod net;
mod outcome;
mod scenario;

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wsdrain::app::context::Context;
use wsdrain::app::drain_plan::ShortReason;
use wsdrain::app::static_files::{StaticFiles, StaticLimits};
use wsdrain::base::memory::MemoryReading;
use wsdrain::base::time::Millis;
use wsdrain::base::timers::Rng;
use wsdrain::config::{Command, Config};
use wsdrain::connection::Kind;
use wsdrain::server::{Event, Server, Signal, Status};

use clients::Client;
use invariants::{check_drain_plan, check_server, exit_deadline, hook_waiting};
use net::{SimNet, World};
use outcome::{Fingerprint, Outcome, Reach};
use scenario::{Scenario, static_dir, wall_clock};

/// Seeds `cargo test` runs: `0..CI_SEEDS`, and the seeds that once found a defect.
const CI_SEEDS: u64 = 2_000;
/// Seeds that once found a defect. Issue 21: a 24,000-byte download in progress at SIGTERM, cut
/// at the drain deadline before the drain's contract said what happens to it (the first two).
/// Issue 23's soak: a short drain that ends with three echo clients' pipes full (a few hundred
/// bytes a tick), their replies and close frames cut at the deadline, which the exit check took
/// for the server's fault; it now tells a full pipe from a server that held back (the next two);
/// and a 1 ms alive interval that outran the step limit (the last).
const FOUND_SEEDS: [u64; 5] = [
    6_482_529_878_471_355_997,
    6_249_736_736_729_051_562,
    4_794_713_371_642_273_438,
    8_452_686_769_976_798_802,
    1_932_429_491_784_622_679,
];
/// Steps after which a run that has not exited is a failure (the drain must end). With a 1 ms
/// alive interval the loop steps every millisecond, through a SIGTERM at 15 s and a drain of
/// 8 s: 23,000 steps (issue 23's soak, seed 1932429491784622679, stopped at 20,000).
const MAX_STEPS: usize = 50_000;

thread_local! {
    /// A panic in the server (caught by its guard) is a bug the simulation reports.
    static PANICKED: Cell<bool> = const { Cell::new(false) };
}

/// Runs one seed; `Err` names the first invariant broken, with the step and time.
fn run(seed: u64, verbose: bool) -> Result<Outcome, String> {
    let scenario = Scenario::from_seed(seed);
    let dir = static_dir().display().to_string();
    let env = scenario.env.clone();
    let Ok(Command::Run(config)) = Config::parse(Vec::<String>::new(), |name| {
        if name == "STATIC_DIR" {
            return Some(dir.clone());
        }
        env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    }) else {
        return Err(format!(
            "the scenario's settings are invalid: {:?}",
            scenario.env
        ));
    };
    let config = *config;
    let max_public = config.max_connections.unwrap_or(1000);
    let files =
        StaticFiles::load(Path::new(&dir), StaticLimits::of(&config)).map_err(|e| e.to_string())?;
    let mut ctx = Context::new(config, files, "sim", Rng::seeded(seed ^ 0x5eed), wall_clock);
    // Fixed figures: /metrics answers must not depend on the machine, or runs would not replay.
    ctx.memory_probe = MemoryReading::default;
    ctx.start(scenario.clock_start);
    let world = Rc::new(RefCell::new(World::new(
        Rng::seeded(seed.rotate_left(17) ^ 0xabcd),
        scenario.fd_limit,
        scenario.faults,
    )));
    let mut server = Server::new(
        SimNet {
            world: world.clone(),
        },
        ctx,
        max_public,
        scenario.tuning,
    );
    let mut clients: Vec<Client> = Vec::new();
    let mut fingerprint = Fingerprint(0xcbf2_9ce4_8422_2325);
    let start = scenario.clock_start;
    let mut now: Millis = start;
    server.step(now, []);
    let mut sigterm_sent: Option<Millis> = None;
    let mut second_sent = false;
    let mut prestop_started = false;
    let strict = scenario.strict();
    let mut reached = Reach::default();
    PANICKED.with(|p| p.set(false));

    let fail = |step: usize, now: Millis, what: String| {
        Err(format!(
            "step {step}, t = {now} ms: {what}\nscenario: {scenario:?}"
        ))
    };

    for step in 0..MAX_STEPS {
        // Clients connect, act and check what they got.
        {
            let mut w = world.borrow_mut();
            if now - start < scenario.busy_until
                && clients.len() < scenario.max_clients
                && w.rng.below(100) < 15
            {
                clients.push(Client::connect(&mut w));
            }
            if !prestop_started && scenario.prestop_at.is_some_and(|at| now - start >= at) {
                prestop_started = true;
                clients.push(Client::prestop_hook(&mut w));
            }
            for client in &mut clients {
                let violations = client.tick(&mut w, strict);
                if let Some(v) = violations.into_iter().next() {
                    drop(w);
                    return fail(step, now, v);
                }
            }
            for id in 0..w.sockets.len() {
                if w.rng.below(100) < 70 {
                    w.deliver(id);
                }
            }
            if w.rng.below(100) < 50 {
                w.pay_owed_writable();
            }
        }
        let mut events = world.borrow_mut().take_events();
        let signal = if sigterm_sent.is_none() && now - start >= scenario.sigterm_at {
            sigterm_sent = Some(now);
            true
        } else if let (Some(t), Some(after_ms), false) =
            (sigterm_sent, scenario.second_sigterm_after, second_sent)
            && now >= t + after_ms
        {
            second_sent = true;
            true
        } else {
            false
        };
        // Whether the hook waits as the first signal comes: the drain must then be the short one.
        let hook_was_waiting = signal && !second_sent && hook_waiting(&server, now);
        if signal {
            // Anywhere in the poll's events: the kernel does not order them.
            let at = world.borrow_mut().rng.below(events.len() as u64 + 1) as usize;
            events.insert(at, Event::Signal(Signal::Term));
        }
        fingerprint.add(&now.to_le_bytes());
        fingerprint.add(format!("{events:?}").as_bytes());
        let status = server.step(now, events.iter().copied());
        fingerprint.add(format!("{status:?}").as_bytes());
        if signal
            && !second_sent
            && let Err(v) = check_drain_plan(&server, now, hook_was_waiting)
        {
            return fail(step, now, v);
        }
        if verbose {
            println!("step {step} t={now} events={events:?} -> {status:?}");
            let w = world.borrow();
            for view in server.connections() {
                let socket = w
                    .sockets
                    .iter()
                    .find(|s| s.slot == Some(view.slot) && !s.server_closed);
                println!(
                    "  conn #{} slot {}: {:?}, deadline {}, unread {}, rerun {}, socket {:?}",
                    view.generation,
                    view.slot,
                    view.conn.kind(),
                    view.deadline,
                    view.unread,
                    view.rerun_queued,
                    socket.map(|s| (s.c2s_buf.len(), s.fin_arrived, s.end_seen, s.s2c_buf.len())),
                );
            }
        }
        if PANICKED.with(Cell::get) {
            return fail(step, now, "the server panicked (see above)".into());
        }
        if status == Status::Exited {
            // The process is gone: its sockets close, and the clients read what is left.
            let exited_at = now;
            let m = &server.context().metrics;
            reached.requests = m.requests_total();
            reached.upgrades = m.ws.upgrades;
            reached.messages = m.ws.messages_in;
            reached.drain_closes = server.context().lifecycle.drain_closes().len() as u64;
            reached.refused_full = m.rejected_max_connections;
            reached.refused_no_descriptors = m.rejected_fd_exhausted;
            reached.refused_registrations = world.borrow().registrations_refused;
            reached.header_timeouts = m.requests_with_status(408);
            reached.ping_timeouts = m.ws.ping_timeouts;
            reached.close_timeouts = m.ws.close_timeouts;
            reached.age_closes = m.ws.age_closes;
            reached.handover_notices = m.ws.handover_notices;
            reached.handover_left = m.ws.handover_left;
            reached.handover_forced = m.ws.handover_forced;
            reached.second_signals = u64::from(second_sent);
            let plan = server.context().lifecycle.drain_plan().map(|p| p.short);
            reached.short_drains = u64::from(plan == Some(Some(ShortReason::GraceOver)));
            reached.grace_left_drains = u64::from(plan == Some(Some(ShortReason::GraceLeft)));
            if let Some(deadline) = sigterm_sent.and_then(|t| exit_deadline(&server, t))
                && !second_sent
                && exited_at > deadline
                && !scenario.clock_jumps
            {
                return fail(
                    step,
                    now,
                    format!("exited {exited_at} ms, after the drain deadline"),
                );
            }
            for socket in &mut world.borrow_mut().sockets {
                socket.open_at_exit = socket.accepted && !socket.server_closed;
            }
            // Output the exit cuts: only at the drain deadline (the contract), never when the
            // drain ended because everyone was served. An HTTP answer may be cut there; so may a
            // WebSocket's replies and close frame, but only behind a full pipe (or a write told to wait): the client took
            // less than the server had for it (a short drain and a slow reader), never because
            // the server held back what the socket had room for.
            for view in server.connections() {
                let kind = view.conn.kind();
                if !matches!(kind, Kind::Http | Kind::WebSocket) || view.conn.output_len() == 0 {
                    continue;
                }
                let at_deadline = sigterm_sent
                    .and_then(|t| exit_deadline(&server, t))
                    .is_some_and(|deadline| exited_at >= deadline);
                if !at_deadline && !second_sent {
                    return fail(
                        step,
                        now,
                        "an answer cut by an exit before the deadline".into(),
                    );
                }
                let mut w = world.borrow_mut();
                if let Some(socket) = w
                    .sockets
                    .iter_mut()
                    .find(|s| s.slot == Some(view.slot) && s.open_at_exit)
                {
                    // Full, or the server's last write was told to wait (a short or refused
                    // write leaves it waiting for the writable event that room brings).
                    let pipe_full =
                        socket.s2c_buf.len() >= socket.s2c_capacity || socket.owe_writable;
                    if kind == Kind::WebSocket && !pipe_full && !second_sent {
                        return fail(
                            step,
                            now,
                            format!(
                                "a WebSocket's output cut by the exit with room toward its \
                                 client ({} of {} bytes in the pipe, {} queued)",
                                socket.s2c_buf.len(),
                                socket.s2c_capacity,
                                view.conn.output_len()
                            ),
                        );
                    }
                    socket.answer_cut_at_exit = true;
                    reached.answers_cut += 1;
                }
            }
            drop(server);
            let mut w = world.borrow_mut();
            for _ in 0..50 {
                for client in &mut clients {
                    let violations = client.tick(&mut w, strict);
                    if let Some(v) = violations.into_iter().next() {
                        drop(w);
                        return fail(step, now, format!("after exit: {v}"));
                    }
                }
            }
            fingerprint.add(&exited_at.to_le_bytes());
            return Ok(Outcome {
                steps: step,
                exited_at,
                fingerprint: fingerprint.0,
                reached,
            });
        }
        for view in server.connections() {
            reached.reruns += u64::from(view.rerun_queued);
            reached.prestop_waits += u64::from(view.conn.prestop_answer_at().is_some());
        }
        if let Err(v) = check_server(&server, &world.borrow(), now, max_public) {
            return fail(step, now, v);
        }
        if let Some(deadline) = sigterm_sent.and_then(|t| exit_deadline(&server, t))
            && now >= deadline
        {
            return fail(step, now, "still running after the drain deadline".into());
        }

        // The clock moves to the next moment something happens, or sooner; sometimes (in
        // seeds with clock jumps) far past the next deadline, as after a stalled process.
        let Status::Running { wake_at } = status else {
            unreachable!()
        };
        let mut w = world.borrow_mut();
        let mut dt = w.rng.below(40);
        if scenario.clock_jumps && w.rng.below(100) < 2 {
            dt = 500 + w.rng.below(5_000);
        } else if let Some(at) = wake_at {
            dt = dt.min(at.saturating_sub(now));
        }
        let crossed_wrap = now >> 32 != (now + dt) >> 32;
        if crossed_wrap && server.context().open.websocket > 0 {
            reached.wraps_with_websockets += 1;
        }
        now += dt;
    }
    fail(MAX_STEPS, now, "the run did not end".into())
}

fn replay_command(seed: u64) -> String {
    format!("SIM_SEED={seed} cargo test --test simulation -- --ignored replay --nocapture")
}

fn install_panic_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.with(|p| p.set(true));
            default(info);
        }));
    });
}

#[test]
fn fixed_seeds_keep_every_invariant() {
    install_panic_hook();
    let started = Instant::now();
    let mut steps = 0;
    let mut reached = Reach::default();
    for seed in (0..CI_SEEDS).chain(FOUND_SEEDS) {
        match run(seed, false) {
            Ok(outcome) => {
                steps += outcome.steps;
                reached.add(outcome.reached);
            }
            Err(e) => panic!("seed {seed}: {e}\nreplay: {}", replay_command(seed)),
        }
    }
    println!(
        "{} seeds, {steps} steps in {:.1}s; reached: {reached:?}",
        CI_SEEDS as usize + FOUND_SEEDS.len(),
        started.elapsed().as_secs_f64()
    );
    // Every path the invariants are meant to watch was taken by some seed.
    let Reach {
        requests,
        upgrades,
        messages,
        drain_closes,
        refused_full,
        refused_no_descriptors,
        refused_registrations,
        header_timeouts,
        ping_timeouts,
        close_timeouts,
        age_closes,
        handover_notices,
        handover_left,
        handover_forced,
        reruns,
        prestop_waits,
        short_drains,
        grace_left_drains,
        answers_cut,
        second_signals,
        wraps_with_websockets,
    } = reached;
    for (what, n) in [
        ("requests", requests),
        ("upgrades", upgrades),
        ("messages", messages),
        ("drain closes", drain_closes),
        ("refusals when full", refused_full),
        ("refusals without descriptors", refused_no_descriptors),
        ("sockets the poll refused", refused_registrations),
        ("header timeouts", header_timeouts),
        ("ping timeouts", ping_timeouts),
        ("close timeouts", close_timeouts),
        ("age closes", age_closes),
        ("goaway notices", handover_notices),
        ("clients leaving after a notice", handover_left),
        ("closes forced after a notice", handover_forced),
        ("reruns", reruns),
        ("waiting /prestop", prestop_waits),
        ("short drains (SIGTERM while /prestop waited)", short_drains),
        ("drains shrunk to the grace period left", grace_left_drains),
        (
            "answers and WebSocket output cut at the drain deadline",
            answers_cut,
        ),
        ("second signals", second_signals),
        (
            "the 32-bit wrap with WebSockets open",
            wraps_with_websockets,
        ),
    ] {
        assert!(n > 0, "no seed reached {what}: {reached:?}");
    }
}

#[test]
fn a_seed_replays_exactly() {
    install_panic_hook();
    for seed in [7, 1_234_567] {
        let first = run(seed, false).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let second = run(seed, false).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(first, second, "seed {seed} ran differently twice");
    }
    assert_ne!(
        run(7, false).map(|o| o.fingerprint),
        run(8, false).map(|o| o.fingerprint),
        "two seeds ran the same"
    );
}

/// `SIM_SEED=… cargo test --test simulation -- --ignored replay --nocapture`
#[test]
#[ignore = "replays SIM_SEED with a line per step"]
fn replay() {
    install_panic_hook();
    let seed: u64 = std::env::var("SIM_SEED")
        .expect("set SIM_SEED")
        .parse()
        .expect("SIM_SEED is a number");
    let _ = simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Debug)
        .without_timestamps()
        .init();
    println!("{:#?}", Scenario::from_seed(seed));
    match run(seed, true) {
        Ok(outcome) => println!("seed {seed}: {outcome:?}"),
        Err(e) => panic!("seed {seed}: {e}"),
    }
}

/// `SIM_MINUTES=10 cargo test --release --test simulation -- --ignored soak --nocapture`
#[test]
#[ignore = "runs random seeds for SIM_MINUTES (default 10)"]
fn soak() {
    install_panic_hook();
    let minutes: f64 = std::env::var("SIM_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10.0);
    let until = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let mut rng = Rng::from_entropy();
    let mut seeds = 0u64;
    while Instant::now() < until {
        let seed = rng.next_u64() >> 1;
        if let Err(e) = run(seed, false) {
            panic!("seed {seed}: {e}\nreplay: {}", replay_command(seed));
        }
        seeds += 1;
    }
    println!("{seeds} seeds in {minutes} minutes, every invariant kept");
}
