//! The timer queue of the fleet's loop, without sockets: a turn handles only the timers due as
//! it began.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::fleet::take_due;

#[test]
fn a_timer_set_again_for_the_same_instant_waits_for_the_next_turn() {
    let now = Instant::now();
    let mut timers = BinaryHeap::new();
    for (at, id) in [
        (now + Duration::from_millis(5), 3),
        (now, 2),
        (now - Duration::from_millis(1), 1),
    ] {
        timers.push(Reverse((at, id)));
    }
    assert_eq!(
        take_due(&mut timers, now),
        [1, 2],
        "due ones, earliest first"
    );
    // What a send interval of zero does: each handler sets its next timer for the turn's
    // instant. Those are left for the next turn, so this one ends.
    for id in [1, 2] {
        timers.push(Reverse((now, id)));
    }
    assert_eq!(timers.len(), 3);
    assert_eq!(take_due(&mut timers, now), [1, 2]);
    assert_eq!(take_due(&mut timers, now), Vec::<usize>::new());
    assert_eq!(timers.len(), 1, "the timer not yet due stays");
}
