//! The service's own tests: reversing text, the age limit's spread, the alive grid's points.

use super::*;

#[test]
fn reverse_scalars_matches_chars_rev() {
    for text in [
        "",
        "a",
        "abc",
        "héllo",
        "😀 ñ 中文",
        "a\u{301}b",
        "€€",
        "x😀",
    ] {
        let mut out = Vec::new();
        reverse_scalars(text.as_bytes(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            text.chars().rev().collect::<String>()
        );
    }
    let mut out = Vec::new();
    reverse_scalars(&[0xff, 0xe2, 0x82], &mut out); // invalid: must not panic
    assert_eq!(out.len(), 3);
}

#[test]
fn age_closes_spread_over_the_last_tenth() {
    let mut ctx = context_with("MAX_CONNECTION_AGE", "100s", 1_000);
    let mut per_tenth = [0u32; 10];
    for _ in 0..2_000 {
        let at = Service::open(&mut OutQueue::new(), &mut ctx, 0)
            .goodbye
            .at(1_000)
            - 1_000;
        assert!((90_000..=100_000).contains(&at), "{at}");
        per_tenth[((at - 90_000) / 1_000).min(9) as usize] += 1;
    }
    // Uniform over the last tenth of the age: about 200 in each hundredth.
    assert!(
        per_tenth.iter().all(|&n| (120..=280).contains(&n)),
        "{per_tenth:?}"
    );
}

/// A context with one setting (`name` = `value`), at time `now`.
fn context_with(name: &str, value: &str, now: Millis) -> Context {
    let Ok(crate::config::Command::Run(config)) =
        crate::config::Config::parse(Vec::<String>::new(), |setting| {
            (setting == name).then(|| value.to_string())
        })
    else {
        panic!("config")
    };
    let mut ctx = Context::new(
        *config,
        crate::app::static_files::StaticFiles::default(),
        "t",
        crate::base::timers::Rng::seeded(3),
        std::time::SystemTime::now,
    );
    ctx.now = now;
    ctx
}

#[test]
fn alive_points_are_taken_in_blocks_evenly() {
    // 1 s on the 100 ms grid: 10 points. 30 blocks of 64 connections opened together take
    // the points in turn, 3 blocks each; a block shares one point.
    let mut ctx = context_with("ALIVE_INTERVAL", "1s", 12_345);
    let mut per_point = [0u32; 10];
    let mut last_point = None;
    for id in 0..30 * 64 {
        let at = Service::open(&mut OutQueue::new(), &mut ctx, id)
            .next_alive
            .at(12_345);
        assert_eq!(at % 100, 0, "id {id}: {at} is off the grid");
        assert!((12_346..=13_345).contains(&at), "id {id}: {at}");
        let point = (at % 1_000 / 100) as usize;
        per_point[point] += 1;
        if id % 64 != 0 {
            assert_eq!(Some(point), last_point, "id {id} left its block's point");
        } else if let Some(last) = last_point {
            assert_eq!(point, (last + 1) % 10, "block of id {id}");
        }
        last_point = Some(point);
    }
    assert_eq!(per_point, [192; 10]);
    // An interval off the 100 ms grid: 150 ms has 3 points of 50 ms.
    let mut ctx = context_with("ALIVE_INTERVAL", "150ms", 1_000);
    let points: Vec<u64> = (0..3 * 64)
        .step_by(64)
        .map(|id| {
            Service::open(&mut OutQueue::new(), &mut ctx, id)
                .next_alive
                .at(1_000)
        })
        .collect();
    assert_eq!(points, [1_050, 1_100, 1_150]);
}

#[test]
fn a_stall_keeps_the_alive_point() {
    // The loop stalled 3.5 intervals past an alive time: the next one comes at the same
    // point of the grid, the first time it comes again, not one interval from the moment
    // the loop woke (which would move every connection the stall caught to one point).
    let mut ctx = context_with("ALIVE_INTERVAL", "1s", 1_000);
    let mut service = Service::open(&mut OutQueue::new(), &mut ctx, 64 * 3);
    let first = service.next_alive.at(1_000);
    assert_eq!(first, 1_300);
    ctx.now = first + 3_500;
    service.alive_sent(&mut ctx);
    assert_eq!(service.next_alive.at(ctx.now), first + 4_000);
    assert_eq!(ctx.metrics.ws.alive_late, 1);
    // On time: one interval after the last, not late.
    ctx.now = first + 4_000;
    service.alive_sent(&mut ctx);
    assert_eq!(service.next_alive.at(ctx.now), first + 5_000);
    assert_eq!(ctx.metrics.ws.alive_late, 1);
}
