//! The endings side by side: one column per ending, a cell per figure (`aware / old` where the
//! two kinds differ in kind of figure, a row per kind for the times).

use std::time::Duration;

use crate::ending::{KindFigures, Outcome};
use crate::fleet::Kind;
use crate::report::ms;

fn s(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The table, to stdout.
pub fn print(outcomes: &[Outcome]) {
    let Some(first) = outcomes.first() else {
        return;
    };
    let row = |label: &str, f: &dyn Fn(&Outcome) -> String| {
        let cells: Vec<String> = outcomes.iter().map(f).collect();
        println!("| {label} | {} |", cells.join(" | "));
    };
    let kind = |o: &Outcome, k: Kind| o.kinds.iter().find(|f| f.kind == k).cloned();
    // A count per kind, `aware / old`.
    let both = |label: &str, f: &dyn Fn(&KindFigures) -> String| {
        row(label, &|o| {
            Kind::ALL
                .iter()
                .map(|k| kind(o, *k).map_or("-".into(), |x| f(&x)))
                .collect::<Vec<_>>()
                .join(" / ")
        });
    };
    let heads: Vec<&str> = outcomes.iter().map(|o| o.ending.name()).collect();
    println!(
        "| {} clients ({} aware, {} old) | {} |",
        first.clients,
        first
            .kinds
            .iter()
            .find(|k| k.kind == Kind::Aware)
            .map_or(0, |k| k.clients),
        first
            .kinds
            .iter()
            .find(|k| k.kind == Kind::Old)
            .map_or(0, |k| k.clients),
        heads.join(" | ")
    );
    println!("|---|{}", "---|".repeat(outcomes.len()));
    row("what happened to pod A", &|o| o.timeline.clone());
    row("pod A ended", &|o| o.a_end.to_string());
    row("pod A's drain (its log)", &|o| o.drain.clone());
    both("messages sent, aware / old", &|k| k.sent.to_string());
    both("messages lost", &|k| k.lost.to_string());
    both("shown twice", &|k| k.shown_twice.to_string());
    both("re-sent (clients)", &|k| {
        format!("{} ({})", k.resent, k.clients_resent)
    });
    for k in Kind::ALL {
        row(
            &format!("{}: without a working connection p50 / p99 / max", k.name()),
            &|o| {
                kind(o, k).map_or("-".into(), |x| {
                    format!("{} / {} / {}", ms(x.dead[0]), ms(x.dead[1]), ms(x.dead[2]))
                })
            },
        );
    }
    both("every client served again after", &|k| s(k.served_again));
    row("the model's bound", &|o| {
        o.bound
            .as_ref()
            .map_or("-".into(), |(b, how)| format!("{} ({how})", s(*b)))
    });
    both("peak reconnects per second", &|k| {
        k.peak_per_second.to_string()
    });
    row("peak reconnects per second, all clients", &|o| {
        o.peak_all().to_string()
    });
    both("goaway notices from pod A", &|k| k.notices_a.to_string());
    both("close 1012 from pod A", &|k| k.closes_1012_a.to_string());
    both("ended without a close frame (given up silent)", &|k| {
        format!("{} ({})", k.no_close_frame_a, k.silent_a)
    });
    row("the clients' loop: slowest turn", &|o| {
        o.slowest_turn.clone()
    });
    both("failed connects (of which handshake timeouts)", &|k| {
        format!("{} ({})", k.connect_failures, k.handshake_timeouts)
    });
}
