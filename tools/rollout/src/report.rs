//! What the fleet saw, per kind of client (handover-aware and old), the checks on it, and the
//! table the harness prints.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use testkit::evidence::EventFields;

use crate::ending::{KindFigures, spread};
use crate::fleet::{ClientReport, Fleet};

/// The figures of one kind of client: those every ending's table shows, and the rollout's own.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Clients, messages, losses and reconnections, as the endings' table counts them.
    pub figures: KindFigures,
    pub replies: u64,
    pub gap_p50: Duration,
    pub gap_p99: Duration,
    pub gap_max: Duration,
    /// Clients that had any gap.
    pub with_gap: usize,
    pub mismatches: u64,
    pub closes: Vec<(u16, u64)>,
    /// Clients that received close 1012 from pod A (each at most once).
    pub closed_by_a: usize,
    /// Closes 1012 from pod A received in all.
    pub closes_by_a: usize,
    /// 1012 from pod A per quarter of DRAIN_WINDOW (shifted by the handover timeout when the
    /// server sends notices: the close comes that long after the notice).
    pub closes_by_a_quarters: [usize; 4],
    /// Goaway notices received from pod A.
    pub notices_a: usize,
    pub notices_a_quarters: [usize; 4],
    /// First and last notice from pod A, after SIGTERM.
    pub notices_span: Option<(Duration, Duration)>,
    pub notices_ignored: u64,
    pub notices_deferred: u64,
    pub handovers: u64,
    pub closed_by_client: u64,
    pub handover_failed: u64,
    pub handover_late: u64,
    pub close_waits_expired: u64,
    /// Handovers' lengths (notice to the client's close of the old connection): p50, p99, max.
    pub handover_took: [Duration; 3],
    /// The instances each client's connections served, in order: clients per sequence.
    pub served: BTreeMap<String, usize>,
    /// `handover_ms` of the hellos, per instance (hellos received, the value announced).
    pub hellos: BTreeMap<String, (u64, Option<u64>)>,
}

fn quarters(times: impl Iterator<Item = Duration>, window: Duration) -> [usize; 4] {
    let mut q = [0; 4];
    for t in times {
        let i = if window.is_zero() {
            3
        } else {
            ((t.as_secs_f64() / window.as_secs_f64() * 4.0) as usize).min(3)
        };
        q[i] += 1;
    }
    q
}

impl Summary {
    /// The figures of `figures.kind` from the fleet's counters and the clients' reports.
    /// `figures`: counted from the start of pod A's termination; `sigterm`: its drain began;
    /// `close_offset`: how long after its notice pod A closes a connection (the handover
    /// timeout, or 0).
    pub fn of(
        figures: KindFigures,
        fleet: &Fleet,
        reports: &[ClientReport],
        sigterm: Instant,
        window: Duration,
        close_offset: Duration,
    ) -> Summary {
        let kind = figures.kind;
        let st = fleet.stats(kind);
        let mine: Vec<&ClientReport> = reports.iter().filter(|r| r.kind == kind).collect();
        let gaps: Vec<Duration> = mine.iter().map(|r| r.gap).collect();
        let with_gap = gaps.iter().filter(|g| !g.is_zero()).count();
        let [gap_p50, gap_p99, gap_max] = spread(gaps);
        let mut closes: Vec<(u16, u64)> = st.closes.iter().map(|(k, v)| (*k, *v)).collect();
        closes.sort();
        let mut served = BTreeMap::new();
        for r in &mine {
            let path: Vec<&str> = r
                .served
                .iter()
                .map(|s| if s.is_empty() { "?" } else { s.as_str() })
                .collect();
            *served.entry(path.join(" → ")).or_default() += 1;
        }
        let from_a = |instance: &String| instance == "pod-a";
        let closes_a: Vec<Duration> = st
            .restarts
            .iter()
            .filter(|(_, i)| from_a(i))
            .map(|(t, _)| {
                t.saturating_duration_since(sigterm)
                    .saturating_sub(close_offset)
            })
            .collect();
        let notices_a: Vec<Duration> = st
            .notices
            .iter()
            .filter(|(_, i)| from_a(i))
            .map(|(t, _)| t.saturating_duration_since(sigterm))
            .collect();
        Summary {
            figures,
            replies: st.replies,
            gap_p50,
            gap_p99,
            gap_max,
            with_gap,
            mismatches: st.mismatches,
            closes,
            closed_by_a: mine
                .iter()
                .filter(|r| r.restarts_from.iter().any(from_a))
                .count(),
            closes_by_a: closes_a.len(),
            closes_by_a_quarters: quarters(closes_a.iter().copied(), window),
            notices_a: notices_a.len(),
            notices_a_quarters: quarters(notices_a.iter().copied(), window),
            notices_span: notices_a
                .iter()
                .min()
                .copied()
                .zip(notices_a.iter().max().copied()),
            notices_ignored: st.notices_ignored,
            notices_deferred: st.notices_deferred,
            handovers: st.handovers,
            closed_by_client: st.closed_by_client,
            handover_failed: st.handover_failed,
            handover_late: st.handover_late,
            close_waits_expired: st.close_waits_expired,
            handover_took: spread(st.handover_took.clone()),
            served,
            hellos: st.hellos.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    fn name(&self) -> &'static str {
        self.figures.kind.name()
    }

    /// The checks on one kind. `handover`: these clients must have handed over (aware clients
    /// while the server sends notices); `notices`: the server sends notices (HANDOVER_TIMEOUT >
    /// 0), announced as `handover_ms` in its hellos.
    pub fn check(&self, handover: bool, notices: bool, handover_ms: u64) -> Vec<String> {
        let mut failures = Vec::new();
        let (kind, n) = (self.name(), self.figures.clients);
        if n == 0 {
            return failures;
        }
        let f = &self.figures;
        if f.lost > 0 {
            failures.push(format!(
                "{kind} clients: {} messages never answered",
                f.lost
            ));
        }
        if self.mismatches > 0 {
            failures.push(format!(
                "{kind} clients: {} replies did not match the message sent",
                self.mismatches
            ));
        }
        // A message is answered twice only if it was sent twice, i.e. re-sent after its
        // connection ended unanswered; more duplicates than re-sends means something answered
        // a message twice.
        if f.shown_twice > f.resent {
            failures.push(format!(
                "{kind} clients: {} duplicate replies but only {} messages were re-sent: a \
                 duplicate can only come from a re-send, so a message was answered twice",
                f.shown_twice, f.resent
            ));
        }
        if f.no_close_frame_a > 0 {
            failures.push(format!(
                "{kind} clients: {} connections to pod A ended without a close frame (1006)",
                f.no_close_frame_a
            ));
        }
        if handover {
            if self.with_gap > 0 {
                failures.push(format!(
                    "{} of {n} aware clients had no open connection for a while (p99 {} ms, \
                     max {} ms): a handover opens the new connection before the old one closes",
                    self.with_gap,
                    self.gap_p99.as_millis(),
                    self.gap_max.as_millis()
                ));
            }
            if f.resent > 0 {
                failures.push(format!(
                    "aware clients re-sent {} messages: the old connection should have answered \
                     everything sent on it before the client closed it",
                    f.resent
                ));
            }
            // Strict: on loopback the new connection opens in milliseconds and the old one's
            // replies come at once, so a 1012 from pod A means the client could not leave
            // within HANDOVER_TIMEOUT, which only a broken handover (client, nginx or server)
            // explains. A run with a HANDOVER_TIMEOUT too short to open a connection through
            // nginx would fail here too, rightly: that setting is too short.
            if self.closed_by_a > 0 {
                failures.push(format!(
                    "{} of {n} aware clients were closed by pod A with 1012 instead of leaving \
                     it by themselves after the notice",
                    self.closed_by_a
                ));
            }
            if self.closed_by_client as usize != n {
                failures.push(format!(
                    "{} of {n} aware clients closed their connection to pod A themselves (1000) \
                     after the handover ({} handovers begun, {} new connections failed, {} \
                     old connections gone before the new one opened)",
                    self.closed_by_client, self.handovers, self.handover_failed, self.handover_late
                ));
            }
        } else if self.closed_by_a != n {
            failures.push(format!(
                "{} of {n} {kind} clients got close 1012 from pod A",
                self.closed_by_a
            ));
        }
        if notices {
            // Each client's connection to pod A gets exactly one notice.
            if self.notices_a != n {
                failures.push(format!(
                    "{kind} clients received {} goaway notices from pod A, expected one per \
                     client ({n})",
                    self.notices_a
                ));
            }
            if self.hellos.is_empty() {
                failures.push(format!(
                    "{kind} clients received no hello message: the server does not announce \
                     the handover"
                ));
            }
            for (instance, (count, announced)) in &self.hellos {
                if *announced != Some(handover_ms) {
                    failures.push(format!(
                        "{kind} clients: {count} hellos from {instance} announced handover_ms \
                         {announced:?}, HANDOVER_TIMEOUT is {handover_ms} ms"
                    ));
                }
            }
        } else if self.notices_a > 0 {
            failures.push(format!(
                "{kind} clients received {} goaway notices from pod A with HANDOVER_TIMEOUT=0",
                self.notices_a
            ));
        }
        failures
    }
}

/// Pod A's `drain_end` fields against what the clients saw: `notices` (goaway notices sent),
/// `left` (clients that closed by themselves after their notice), `forced` (closed with 1012 at
/// HANDOVER_TIMEOUT) and `closes_sent` (all the drain's 1012s). The clients' counts are the
/// truth the server's must match.
pub fn check_drain_end(fields: &EventFields, summaries: &[Summary], notices: bool) -> Vec<String> {
    let mut failures = Vec::new();
    let total = |f: fn(&Summary) -> u64| summaries.iter().map(f).sum::<u64>();
    let seen = [
        (
            "notices",
            total(|s| s.notices_a as u64),
            "goaway notices received",
        ),
        (
            "left",
            total(|s| s.closed_by_client),
            "connections to pod A closed by their client after the notice",
        ),
        (
            "forced",
            if notices {
                total(|s| s.closes_by_a as u64)
            } else {
                0
            },
            "closes 1012 received after a notice",
        ),
        (
            "closes_sent",
            total(|s| s.closes_by_a as u64),
            "closes 1012 received",
        ),
    ];
    for (key, clients, what) in seen {
        match fields.number(key) {
            Some(server) if server == clients => {}
            Some(server) => failures.push(format!(
                "pod A's drain_end says {key}={server}, the clients saw {clients} {what}"
            )),
            None => failures.push(format!("pod A's drain_end line has no {key} field")),
        }
    }
    failures
}

/// The message of a log line, without the logger's prefix.
pub fn line_message(line: &str) -> &str {
    line.split_once("] ").map_or(line, |(_, m)| m).trim_end()
}

/// A time in whole milliseconds, as the tables show it.
pub fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// The table, aware and old side by side.
pub fn print_table(summaries: &[Summary], clients: usize) {
    let mut combined: HashMap<u64, usize> = HashMap::new();
    for s in summaries {
        for (sec, n) in &s.figures.per_second {
            *combined.entry(*sec).or_default() += n;
        }
    }
    let peak_all = combined.values().max().copied().unwrap_or(0);
    let row = |label: &str, f: &dyn Fn(&Summary) -> String| {
        let cells: Vec<String> = summaries.iter().map(f).collect();
        println!("| {label} | {} |", cells.join(" | "));
    };
    let heads: Vec<String> = summaries
        .iter()
        .map(|s| format!("{} ({})", s.name(), s.figures.clients))
        .collect();
    println!("| rollout, {clients} clients | {} |", heads.join(" | "));
    println!("|---|{}", "---|".repeat(summaries.len()));
    row("messages sent (unique)", &|s| s.figures.sent.to_string());
    row("replies received", &|s| s.replies.to_string());
    row("gap p50 / p99 / max", &|s| {
        format!("{} / {} / {}", ms(s.gap_p50), ms(s.gap_p99), ms(s.gap_max))
    });
    row("clients with any gap", &|s| s.with_gap.to_string());
    row("messages re-sent (by clients)", &|s| {
        format!("{} ({})", s.figures.resent, s.figures.clients_resent)
    });
    row("lost", &|s| s.figures.lost.to_string());
    row("duplicates", &|s| s.figures.shown_twice.to_string());
    row("close codes seen", &|s| format!("{:?}", s.closes));
    row("closes without a close frame from pod A", &|s| {
        s.figures.no_close_frame_a.to_string()
    });
    row("clients closed by pod A with 1012", &|s| {
        s.closed_by_a.to_string()
    });
    row("goaway notices from pod A (ignored / deferred)", &|s| {
        format!(
            "{} ({} / {})",
            s.notices_a, s.notices_ignored, s.notices_deferred
        )
    });
    row("notices from pod A per quarter of DRAIN_WINDOW", &|s| {
        format!("{:?}", s.notices_a_quarters)
    });
    row("notices: first / last after SIGTERM", &|s| {
        s.notices_span
            .map_or("-".into(), |(a, b)| format!("{} / {}", ms(a), ms(b)))
    });
    row(
        "1012 from pod A per quarter (after SIGTERM + handover)",
        &|s| format!("{:?}", s.closes_by_a_quarters),
    );
    row(
        "handovers begun / old closed by client / new failed / old gone first",
        &|s| {
            format!(
                "{} / {} / {} / {}",
                s.handovers, s.closed_by_client, s.handover_failed, s.handover_late
            )
        },
    );
    row(
        "handover took (notice to old closed) p50 / p99 / max",
        &|s| {
            let [p50, p99, max] = s.handover_took.map(|d| d.as_secs_f64() * 1000.0);
            format!("{p50:.1} ms / {p99:.1} ms / {max:.1} ms")
        },
    );
    row("reconnects (new connections during the rollout)", &|s| {
        s.figures.per_second.values().sum::<usize>().to_string()
    });
    row("peak new connections per second", &|s| {
        s.figures.peak_per_second.to_string()
    });
    row("connections served (clients)", &|s| {
        s.served
            .iter()
            .map(|(path, n)| format!("{path}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    row("connect failures / close waits expired", &|s| {
        format!("{} / {}", s.figures.connect_failures, s.close_waits_expired)
    });
    println!("| peak new connections per second, all clients | {peak_all} |");
}
