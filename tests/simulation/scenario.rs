//! What a seed decides about its run: the server's settings, its tuning and descriptor limit,
//! the faults of the simulated network, how many clients come and until when, when /prestop and
//! SIGTERM come, clock jumps and the clock's start. One seed, one scenario, always the same.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wsdrain::base::time::Millis;
use wsdrain::base::timers::Rng;
use wsdrain::server::Tuning;

use crate::net::Faults;

/// What a seed decided about its run.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    pub(crate) env: Vec<(&'static str, String)>,
    pub(crate) tuning: Tuning,
    pub(crate) fd_limit: usize,
    pub(crate) faults: Faults,
    /// Clients connect until then.
    pub(crate) busy_until: Millis,
    pub(crate) max_clients: usize,
    pub(crate) prestop_at: Option<Millis>,
    pub(crate) sigterm_at: Millis,
    pub(crate) second_sigterm_after: Option<Millis>,
    /// Chance per step of a jump of the clock past the next deadline.
    pub(crate) clock_jumps: bool,
    /// The server's clock at the start: 0, or just before the low 32 bits of its times wrap,
    /// so that the wrap falls inside the run (the connections keep 32-bit times). The times
    /// above count from it.
    pub(crate) clock_start: Millis,
}

impl Scenario {
    pub(crate) fn from_seed(seed: u64) -> Self {
        let mut rng = Rng::seeded(seed);
        let mut pick =
            |choices: &[&str]| choices[rng.below(choices.len() as u64) as usize].to_string();
        let mut env = vec![
            ("PRESTOP_DELAY", pick(&["0s", "1s", "3s"])),
            ("DRAIN_WINDOW", pick(&["0s", "500ms", "2s", "4s"])),
            ("CLOSE_TIMEOUT", pick(&["300ms", "1s"])),
            ("HANDOVER_TIMEOUT", pick(&["0s", "400ms", "1500ms"])),
            ("ALIVE_INTERVAL", pick(&["0", "700ms", "2s"])),
            ("PING_INTERVAL", pick(&["0", "1s", "3s"])),
            ("PONG_TIMEOUT", pick(&["1s", "2s"])),
            ("HEADER_TIMEOUT", pick(&["2s", "5s"])),
            ("IDLE_TIMEOUT", pick(&["1s", "6s"])),
            ("MAX_CONNECTIONS", pick(&["3", "12", "40"])),
            ("MAX_MESSAGE_SIZE", "16KiB".to_string()),
            ("MAX_OUTPUT_BYTES", "64KiB".to_string()),
            ("MAX_HEADER_BYTES", "1KiB".to_string()),
            ("MAX_CONNECTION_AGE", pick(&["0", "0", "5s"])),
        ];
        let tuning = Tuning {
            scratch_bytes: [7, 64, 512, 4096][rng.below(4) as usize],
            reads_per_event: 1 + rng.below(4) as usize,
        };
        let fd_limit = if rng.below(4) == 0 {
            12 + rng.below(8) as usize
        } else {
            10_000
        };
        let faults = Faults {
            short_write: [0.0, 0.3][rng.below(2) as usize],
            spurious_would_block: [0.0, 0.1][rng.below(2) as usize],
            refused_registration: 0.0, // drawn below, from the later choices' stream
        };
        // Choices added later draw from a stream of their own, so that every earlier seed still
        // plays the scenario it always did (the seeds quoted in issues stay meaningful).
        let mut later = Rng::seeded(seed ^ 0x2026_1206);
        let short_drain = ["300ms", "1500ms", "2s"][later.below(3) as usize];
        env.push(("SHORT_DRAIN", short_drain.to_string()));
        // Intervals at the clock's finest step, and off the alive grid's 100 ms.
        if later.below(4) == 0 {
            let alive = ["1ms", "101ms", "150ms", "250ms"][later.below(4) as usize];
            if let Some(setting) = env.iter_mut().find(|(k, _)| *k == "ALIVE_INTERVAL") {
                setting.1 = alive.to_string();
            }
        }
        // The pod's grace period, in a third of the seeds: the budget rule's minimum, or a few
        // seconds more (the grace left then decides the drain when /prestop came early).
        if later.below(3) == 0 {
            let setting = |name: &str| {
                let value = &env.iter().find(|(k, _)| *k == name).expect("picked").1;
                wsdrain::config::parse_duration(value).map_or(0, |d| d.as_millis())
            };
            let budget_ms: u128 = ["PRESTOP_DELAY", "DRAIN_WINDOW", "CLOSE_TIMEOUT"]
                .into_iter()
                .chain(["HANDOVER_TIMEOUT"])
                .map(setting)
                .sum();
            let grace_ms = budget_ms + 4_500 + u128::from(later.below(4)) * 1_000;
            env.push(("TERMINATION_GRACE_PERIOD", format!("{grace_ms}ms")));
        }
        let busy_until = 2_000 + rng.below(10_000);
        let prestop_at = (rng.below(2) == 0).then(|| rng.below(busy_until));
        let mut sigterm_at = busy_until / 2 + rng.below(busy_until / 2 + 4_000);
        let second_sigterm_after = (rng.below(8) == 0).then(|| rng.below(3_000));
        // In a quarter of the seeds with a preStop, SIGTERM comes at any moment of its wait
        // (a grace period shorter than the hook: Spot, evictions), or just after its answer.
        if let Some(at) = prestop_at
            && later.below(4) == 0
        {
            sigterm_at = at + later.below(3_800);
        }
        // In a sixth of the seeds the poll refuses a tenth of the accepted sockets.
        let mut faults = faults;
        if later.below(6) == 0 {
            faults.refused_registration = 0.1;
        }
        Scenario {
            env,
            tuning,
            fd_limit,
            faults,
            busy_until,
            max_clients: 4 + rng.below(30) as usize,
            prestop_at,
            sigterm_at,
            second_sigterm_after,
            clock_jumps: rng.below(5) == 0,
            clock_start: match rng.below(2) {
                0 => 0,
                _ => (1 << 32) - rng.below(sigterm_at + 5_000),
            },
        }
    }

    /// Whether well-behaved clients may be asked for completeness: no clock jump can make them
    /// miss a pong deadline, and no second signal stops the server mid-answer.
    pub(crate) fn strict(&self) -> bool {
        !self.clock_jumps && self.second_sigterm_after.is_none()
    }
}

/// A static directory with a subdirectory (for redirects) and a file larger than the send
/// buffers.
pub(crate) fn static_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sim-static");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(
            dir.join("index.html"),
            "<!doctype html><title>sim</title>\n",
        )
        .unwrap();
        std::fs::write(dir.join("app.js"), "console.log('sim');\n").unwrap();
        std::fs::write(dir.join("sub/index.html"), "sub\n").unwrap();
        std::fs::write(dir.join("big.txt"), "0123456789abcdef".repeat(1_500)).unwrap();
        dir
    })
}

pub(crate) fn wall_clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}
