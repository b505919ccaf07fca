//! The server writes its lifecycle lines (`EventLine`, `DrainSchedule`) and the test kit reads
//! them back (`testkit::evidence`) for the tests and the tools: two sides of one format, kept in
//! two crates, so this checks that they agree.

use testkit::evidence::{DrainPlan, EventFields};
use wsdrain::app::lifecycle::{DrainSchedule, EventLine};

/// A line as the logger prints it: time, level, module, then the event.
fn logged(line: impl std::fmt::Display) -> String {
    format!("2026-12-01T00:00:00.000Z INFO  [wsdrain::server] {line}")
}

#[test]
fn every_field_the_server_writes_reads_back() {
    let line = EventLine::new("listening")
        .field("public", "127.0.0.1:8080")
        .field("n", 3)
        .field("dir", "my \"static\" dir")
        .field("empty", "")
        .field("eq", "a=b")
        .field("slash", "a\\b");
    let fields = EventFields::of(&logged(&line), "listening").expect("a listening line");
    assert_eq!(fields.get("public"), Some("127.0.0.1:8080"));
    assert_eq!(fields.number("n"), Some(3));
    assert_eq!(fields.get("dir"), Some("my \"static\" dir"));
    assert_eq!(fields.get("empty"), Some(""));
    assert_eq!(fields.get("eq"), Some("a=b"));
    assert_eq!(fields.get("slash"), Some("a\\b"));
    assert_eq!(fields.get("missing"), None);
    assert!(EventFields::of(&logged(&line), "listen").is_none());
}

#[test]
fn the_drain_schedule_reads_back_as_the_plan() {
    let mut schedule = DrainSchedule::new(3_000);
    let empty = logged(schedule.event_line());
    for offset in [12, 749, 750, 1_600, 2_990, 2_999] {
        schedule.add(offset);
    }
    schedule.noticed_before = 1;
    let line = logged(schedule.event_line());
    let fields = EventFields::of(&line, "drain_schedule").expect("a drain_schedule line");
    let plan = DrainPlan::from_fields(&fields).expect("the plan reads back");
    assert_eq!(
        (
            plan.window_ms,
            plan.per_quarter,
            plan.first_ms,
            plan.last_ms,
            plan.noticed_before
        ),
        (
            schedule.window_ms,
            schedule.per_quarter,
            schedule.first_ms,
            schedule.last_ms,
            schedule.noticed_before
        )
    );
    assert_eq!(plan.closes(), schedule.closes());
    assert_eq!(plan.to_string(), schedule.event_line().to_string());

    let fields = EventFields::of(&empty, "drain_schedule").unwrap();
    let plan = DrainPlan::from_fields(&fields).expect("an empty plan reads back");
    assert_eq!(
        (plan.closes(), plan.first_ms, plan.last_ms),
        (0, None, None)
    );
}
