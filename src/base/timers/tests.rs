//! The timing wheel against a model (a map of deadlines), and its order and edge cases.

use super::*;

fn expire(timers: &mut Timers, now: Millis) -> Vec<usize> {
    std::iter::from_fn(|| timers.pop_due(now)).collect()
}

#[test]
fn fires_in_order_and_only_when_due() {
    let mut timers = Timers::default();
    timers.set(0, 100, 0);
    timers.set(1, 50, 0);
    assert_eq!(timers.next(0), Some(50));
    assert!(expire(&mut timers, 49).is_empty());
    assert_eq!(expire(&mut timers, 50), vec![1]);
    assert_eq!(expire(&mut timers, 1000), vec![0]);
    assert_eq!(timers.len(), 0);
}

#[test]
fn a_deadline_moves_in_place_either_way() {
    let mut timers = Timers::default();
    timers.set(0, 100, 0);
    timers.set(0, 300, 0);
    assert_eq!(timers.len(), 1);
    assert!(expire(&mut timers, 150).is_empty());
    assert_eq!(timers.next(150), Some(300));
    timers.set(0, 120, 0);
    assert_eq!(timers.len(), 1);
    assert_eq!(expire(&mut timers, 150), vec![0]);
    assert!(expire(&mut timers, 400).is_empty());
}

#[test]
fn a_cleared_or_removed_deadline_never_fires() {
    let mut timers = Timers::default();
    timers.set(0, 100, 0);
    timers.set(1, 200, 0);
    timers.set(0, NEVER, 0);
    timers.remove(1);
    timers.remove(7); // never had one
    assert!(expire(&mut timers, 1000).is_empty());
    assert_eq!(timers.deadline(0, 1000), NEVER);
}

#[test]
fn a_deadline_long_passed_is_due_now() {
    // Counted from a moment over 24.8 days back (a stamp read as its age), the deadline is
    // further in the past than a 32-bit time reads back: it is held as now.
    const DAY: Millis = 24 * 3600 * 1000;
    let now = 30 * DAY;
    let mut timers = Timers::default();
    timers.set(0, 5_000, now);
    assert_eq!(timers.next(now), Some(now));
    assert_eq!(expire(&mut timers, now), vec![0]);
}

#[test]
fn order_holds_across_the_32_bit_wrap() {
    const WRAP: Millis = 1 << 32;
    let mut timers = Timers::default();
    let now = WRAP - 1_000;
    timers.set(0, WRAP + 500, now);
    timers.set(1, WRAP - 500, now);
    timers.set(2, WRAP + 10, now);
    assert_eq!(timers.next(now), Some(WRAP - 500));
    assert_eq!(timers.deadline(0, now), WRAP + 500);
    assert_eq!(expire(&mut timers, WRAP + 10), vec![1, 2]);
    assert_eq!(expire(&mut timers, WRAP + 600), vec![0]);
}

/// Against a plain model (a map of slot to deadline), over random sets, moves and removals
/// with times around the 32-bit wrap and the top level's turn, near deadlines and far ones
/// (up to 20 days, two of the longest durations the settings allow): the wheel pops exactly
/// the due slots, earliest first, and never asks the loop to wake after the earliest.
#[test]
fn matches_a_model_under_random_changes() {
    const DAY: Millis = 24 * 3600 * 1000;
    let mut rng = Rng::seeded(11);
    for round in 0..300 {
        let start: Millis = match round % 3 {
            0 => 0,
            1 => (1 << 32) - 5_000,
            _ => (1 << 36) - 5_000,
        };
        let mut timers = Timers::default();
        let mut model = std::collections::BTreeMap::new();
        let mut now = start;
        for _ in 0..300 {
            let slot = rng.below(40) as usize;
            match rng.below(5) {
                0 => {
                    timers.remove(slot);
                    model.remove(&slot);
                }
                1 => {
                    now += match rng.below(10) {
                        0 => rng.below(20 * DAY),
                        _ => rng.below(3_000),
                    };
                    let mut due: Vec<(Millis, usize)> = model
                        .iter()
                        .filter(|&(_, &at)| at <= now)
                        .map(|(&s, &at)| (at, s))
                        .collect();
                    due.sort();
                    let fired = expire(&mut timers, now);
                    let expected: Vec<usize> = due.iter().map(|&(_, s)| s).collect();
                    let mut sorted = fired.clone();
                    sorted.sort();
                    let mut expected_sorted = expected.clone();
                    expected_sorted.sort();
                    assert_eq!(sorted, expected_sorted, "round {round}");
                    let times: Vec<Millis> = fired.iter().map(|s| model[s]).collect();
                    assert!(times.is_sorted(), "round {round}: {times:?}");
                    for s in fired {
                        model.remove(&s);
                    }
                }
                2 => {
                    let at = now + rng.below(20 * DAY);
                    timers.set(slot, at, now);
                    model.insert(slot, at);
                }
                _ => {
                    let at = now + rng.below(10_000);
                    timers.set(slot, at, now);
                    model.insert(slot, at);
                }
            }
            let due_now = model.values().filter(|&&at| at <= now).count();
            assert_eq!(timers.due_count(now), due_now, "round {round}");
            let earliest = model.values().min().copied();
            match (timers.next(now), earliest) {
                (Some(next), Some(earliest)) => {
                    assert!(next <= earliest, "round {round}: {next} > {earliest}")
                }
                (next, earliest) => assert_eq!(next, earliest, "round {round}"),
            }
            assert_eq!(timers.len(), model.len());
            for (&s, &at) in &model {
                assert_eq!(timers.deadline(s, now), at);
            }
        }
    }
}

/// Deadlines only ever set and taken, an interval ahead on a grid (as alive messages are):
/// the loop is asked to wake at the earliest one exactly, never before (a wake-up in vain per
/// cascade would double the loop's wake-ups), and the entries of one moment come out in the
/// order of their previous round.
#[test]
fn wakes_exactly_at_the_earliest_and_keeps_the_order_set() {
    let mut timers = Timers::default();
    let mut rng = Rng::seeded(5);
    let start: Millis = (1 << 32) - 10_000;
    let mut now = start;
    for slot in 0..1_000 {
        timers.set(slot, start + 100 * (1 + rng.below(10)), now);
    }
    let mut rounds = 0;
    while let Some(next) = timers.next(now) {
        assert!(next > now, "a deadline at {next} left behind at {now}");
        let earliest = (0..1_000)
            .map(|slot| timers.deadline(slot, now))
            .min()
            .unwrap();
        assert_eq!(next, earliest);
        now = next;
        let fired = expire(&mut timers, now);
        assert!(!fired.is_empty(), "woken at {now} for nothing");
        assert!(fired.is_sorted(), "{fired:?}");
        if now < start + 20_000 {
            for slot in fired {
                timers.set(slot, now + 1_000, now);
            }
        }
        rounds += 1;
    }
    // One wake-up per grid point, from 100 ms to 20.9 s: none in vain, none missed.
    assert_eq!(rounds, 209);
}

#[test]
fn an_entry_is_twelve_bytes() {
    assert_eq!(std::mem::size_of::<Entry>(), 12);
}

#[test]
fn rng_stays_in_range_and_spreads() {
    let mut rng = Rng::seeded(7);
    let mut buckets = [0u32; 10];
    for _ in 0..10_000 {
        let x = rng.below(1000);
        assert!(x < 1000);
        buckets[(x / 100) as usize] += 1;
    }
    assert!(
        buckets.iter().all(|&b| (800..1200).contains(&b)),
        "{buckets:?}"
    );
    assert_eq!(rng.below(0), 0);
}
