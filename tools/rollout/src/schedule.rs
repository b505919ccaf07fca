//! The spread of pod A's planned closes over DRAIN_WINDOW, from its `drain_schedule` line.

use testkit::evidence::DrainPlan;

/// The spread checks on pod A's plan: the planned closes span at least 80 % of DRAIN_WINDOW,
/// and every quarter of the window holds at least half of an even share. The checks are
/// statistical (each close is drawn uniformly in the window), so only with 200+ clients: some
/// quarter holds fewer than half its share by chance in about one run in three with 20 clients,
/// one in 250 with 100, and one in 65,000 with 200 (the CI tier's count).
pub fn check_schedule(s: &DrainPlan, window_ms: u64, clients: usize) -> Vec<String> {
    let mut failures = Vec::new();
    if s.window_ms != window_ms {
        failures.push(format!(
            "pod A planned its closes over {} ms, but DRAIN_WINDOW is {window_ms} ms",
            s.window_ms
        ));
    }
    if clients < 200 {
        return failures;
    }
    let span = match (s.first_ms, s.last_ms) {
        (Some(first), Some(last)) => last.saturating_sub(first),
        _ => 0,
    };
    if (span as f64) < window_ms as f64 * 0.8 {
        failures.push(format!(
            "pod A planned its closes over {span} ms (first {:?} ms, last {:?} ms after \
             SIGTERM), less than 80% of DRAIN_WINDOW {window_ms} ms",
            s.first_ms, s.last_ms
        ));
    }
    // Each quarter >= (closes / 4) / 2, in integers.
    let closes = s.closes();
    if closes == 0 || s.per_quarter.iter().any(|&q| q * 8 < closes) {
        failures.push(format!(
            "pod A did not plan its closes evenly over DRAIN_WINDOW: {:?} per quarter of \
             {closes} closes (each quarter needs at least half of an even share)",
            s.per_quarter
        ));
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::evidence::EventFields;

    const SAMPLE: &str = "drain_schedule closes=200 window_ms=3000 q1=50 q2=50 q3=50 q4=50 \
                          first_ms=12 last_ms=2990";

    fn parse(line: &str) -> DrainPlan {
        EventFields::of(line, "drain_schedule")
            .as_ref()
            .and_then(DrainPlan::from_fields)
            .unwrap()
    }

    #[test]
    fn checks_span_and_evenness_from_200_clients() {
        let s = parse(SAMPLE);
        assert!(check_schedule(&s, 3000, 200).is_empty());
        assert_eq!(check_schedule(&s, 2000, 200).len(), 1, "window mismatch");
        let narrow = parse(&SAMPLE.replace("last_ms=2990", "last_ms=2000"));
        assert_eq!(
            check_schedule(&narrow, 3000, 200).len(),
            1,
            "span 1988 ms < 2400 ms"
        );
        let lopsided = parse(&SAMPLE.replace("q1=50 q2=50 q3=50 q4=50", "q1=90 q2=24 q3=36 q4=50"));
        assert_eq!(check_schedule(&lopsided, 3000, 200).len(), 1, "24 < 25");
        assert!(check_schedule(&narrow, 3000, 199).is_empty());
        assert!(check_schedule(&lopsided, 3000, 199).is_empty());
    }
}
