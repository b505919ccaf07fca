//! The shell around the loop's logic: the one place that binds sockets, polls, reads the clock
//! and receives signals. Everything it learns becomes an [`Event`] for [`Server::step`].

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use mio::{Events, Interest, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::app::context::Context;
use crate::app::lifecycle::EventLine;
use crate::app::static_files::{StaticFiles, StaticLimits};
use crate::base::time::{Millis, NEVER};
use crate::base::timers::{Clock, Rng};
use crate::config::Config;
use crate::net::{self, ADMIN_TOKEN, FdLimits, Listener, MioNet, PUBLIC_TOKEN};
use crate::server::{Event, Server, Signal, Status, Tuning};

const SIGNALS_TOKEN: Token = Token(usize::MAX - 3);

/// Readiness events taken per poll.
const EVENTS_CAPACITY: usize = 1024;

/// Runs the server until the drain is over (or a second signal): loads the static files, raises
/// the open-files limit, binds both listeners, and polls.
pub fn run(config: Config, instance_id: &str) -> io::Result<()> {
    let clock = Clock::new();
    let limits = net::raise_fd_limit()?;
    let usable_fds = limits.soft.saturating_sub(config.fd_reserve());
    let max_public = config.max_connections.unwrap_or(usable_fds.max(1) as usize);
    let files = StaticFiles::load(&config.static_dir, StaticLimits::of(&config))?;
    let net = MioNet::bind(config.public_addr, config.admin_addr, config.listen_backlog)?;
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    net.poll
        .registry()
        .register(&mut signals, SIGNALS_TOKEN, Interest::READABLE)?;
    log_listening(&config, &files, limits, max_public, &net);
    warn_if_unreachable(max_public, limits, usable_fds);

    let mut ctx = Context::new(
        config,
        files,
        instance_id,
        Rng::from_entropy(),
        SystemTime::now,
    );
    ctx.start(clock.now());
    let mut server = Server::new(net, ctx, max_public, Tuning::default());
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    let mut wake_at = None;
    log::info!("{}", EventLine::new("ready").field("phase", "serving"));
    loop {
        let timeout =
            wake_at.map(|at: Millis| Duration::from_millis(at.saturating_sub(clock.now())));
        if let Err(e) = server.net.poll.poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let batch = events.iter().flat_map(|event| {
            let (one, signals) = match event.token() {
                PUBLIC_TOKEN => (Some(Event::Acceptable(Listener::Public)), None),
                ADMIN_TOKEN => (Some(Event::Acceptable(Listener::Admin)), None),
                // The pipe is emptied before acting, so a signal arriving meanwhile wakes the
                // poll again.
                SIGNALS_TOKEN => (None, Some(signals.pending())),
                Token(slot) => (
                    Some(Event::Ready {
                        slot,
                        peer_closed: event.is_read_closed() || event.is_error(),
                    }),
                    None,
                ),
            };
            let signals = signals.into_iter().flatten().map(|n| {
                Event::Signal(if n == SIGINT {
                    Signal::Int
                } else {
                    Signal::Term
                })
            });
            one.into_iter().chain(signals)
        });
        match server.step(clock.now(), batch) {
            Status::Exited => return Ok(()),
            Status::Running { wake_at: next } => wake_at = next.filter(|&at| at != NEVER),
        }
    }
}

/// A `MAX_CONNECTIONS` the open-files limit cannot reach: past the limit, clients are refused
/// as descriptors run out (`out_of_descriptors`), not at the cap, and the admin port's probes
/// may find none left. Allowed (a test sets it on purpose), but said at start.
fn warn_if_unreachable(max_public: usize, limits: FdLimits, usable: u64) {
    if max_public as u64 > usable {
        log::warn!(
            "{}",
            EventLine::new("max_connections_unreachable")
                .field("max_connections", max_public)
                .field("open_files_limit", limits.soft)
                .field("usable", usable)
        );
    }
}

fn log_listening(
    config: &Config,
    files: &StaticFiles,
    limits: FdLimits,
    max_public: usize,
    net: &MioNet,
) {
    let addr = |listener| {
        net.local_addr(listener)
            .map_or_else(|| "?".to_string(), |a: SocketAddr| a.to_string())
    };
    log::info!(
        "{}",
        EventLine::new("listening")
            .field("public", addr(Listener::Public))
            .field("admin", addr(Listener::Admin))
            .field("max_connections", max_public)
            .field("open_files_limit", limits.soft)
            .field("open_files_limit_was", limits.soft_before)
            .field("open_files_limit_hard", limits.hard)
            .field("backlog", config.listen_backlog)
            .field("static_files", files.len())
            .field("static_bytes", files.total_bytes())
            .field("static_dir", config.static_dir.display())
    );
}
