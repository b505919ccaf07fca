//! Deadlines owned by the event loop: a monotonic millisecond clock and one min-heap of
//! per-connection deadlines.
//!
//! Each connection has a single deadline: the earliest moment anything must happen to it
//! (header timeout, idle timeout, the preStop answer, a lingering close, the WebSocket timers).
//! `Timers` holds exactly one entry per connection that has one, found by its slab slot, so a
//! deadline moves in place and a closed connection's goes with it: nothing stale is left to
//! fire, and no generation is needed to tell a reused slot's entries apart.

use std::time::Instant;

use crate::base::time::{Due, Millis, NEVER};

/// A monotonic millisecond clock. It starts at [`Clock::START`], 10 s before the 32-bit times
/// of `base::time` wrap, so that every run of more than 10 s crosses a wrap (as Linux starts
/// jiffies 5 minutes before theirs) and a mistake there shows in tests, not after 49.7 days.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
}

impl Clock {
    /// The clock's reading when it starts.
    pub const START: Millis = (1 << 32) - 10_000;

    /// A clock that reads [`Clock::START`] now.
    pub fn new() -> Self {
        Clock {
            start: Instant::now(),
        }
    }

    /// The time now.
    pub fn now(&self) -> Millis {
        Self::START + self.start.elapsed().as_millis() as Millis
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// A small, fast pseudo-random generator (SplitMix64) for spreading timers: alive messages
/// over their interval, drain closes over the drain window. Not for anything secret.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and the process id, so replicas spread differently.
    pub fn from_entropy() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// A fixed seed (tests).
    pub fn seeded(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
        }
    }
}

/// No place in the heap: the slot has no deadline.
const NOWHERE: u32 = u32::MAX;

/// The loop's deadlines, one per connection: a binary min-heap of (deadline, slab slot) that
/// knows where each slot's entry is, so a deadline moves in place (earlier or later) and goes
/// with its connection. 12 bytes a connection: the 8-byte entry and its 4-byte position.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: Vec<(Due, u32)>,
    /// Each slot's index in `heap` ([`NOWHERE`]: no deadline), indexed by slot.
    position: Vec<u32>,
}

impl Timers {
    /// No deadlines, with room for `slots` connections reserved: address space only (a large
    /// allocation is mapped on first touch), and growing never leaves freed copies behind.
    pub fn with_capacity(slots: usize) -> Self {
        Timers {
            heap: Vec::with_capacity(slots),
            position: Vec::with_capacity(slots),
        }
    }

    /// Sets connection `slot`'s deadline to `at` ([`NEVER`]: none), at time `now`. A time
    /// already passed is held as `now` (it is due either way): however long ago the moment it
    /// was counted from, it stays within the range the 32-bit times read back exactly.
    pub fn set(&mut self, slot: usize, at: Millis, now: Millis) {
        if at == NEVER {
            self.remove(slot);
            return;
        }
        let at = at.max(now);
        debug_assert!(u32::try_from(slot).is_ok_and(|s| s != NOWHERE));
        if slot >= self.position.len() {
            self.position.resize(slot + 1, NOWHERE);
        }
        let due = Due::of(at);
        match self.position[slot] {
            NOWHERE => {
                self.heap.push((due, slot as u32));
                self.sift_up(self.heap.len() - 1);
            }
            i => {
                let i = i as usize;
                let earlier = due.is_before(self.heap[i].0);
                self.heap[i].0 = due;
                if earlier {
                    self.sift_up(i);
                } else {
                    self.sift_down(i);
                }
            }
        }
    }

    /// Connection `slot` has no deadline (any more).
    pub fn remove(&mut self, slot: usize) {
        let Some(&i) = self.position.get(slot) else {
            return;
        };
        if i == NOWHERE {
            return;
        }
        self.take(i as usize);
    }

    /// Connection `slot`'s deadline ([`NEVER`] for none).
    pub fn deadline(&self, slot: usize, now: Millis) -> Millis {
        match self.position.get(slot) {
            Some(&i) if i != NOWHERE => self.heap[i as usize].0.at(now),
            _ => NEVER,
        }
    }

    /// The earliest deadline.
    pub fn next(&self, now: Millis) -> Option<Millis> {
        self.heap.first().map(|(due, _)| due.at(now))
    }

    /// Takes out the connection whose deadline is earliest, if it has passed at `now`.
    pub fn pop_due(&mut self, now: Millis) -> Option<usize> {
        let &(due, slot) = self.heap.first()?;
        if Due::of(now).is_before(due) {
            return None;
        }
        self.take(0);
        Some(slot as usize)
    }

    /// Number of deadlines set.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Removes the entry at heap index `i`.
    fn take(&mut self, i: usize) {
        let slot = self.heap[i].1 as usize;
        self.position[slot] = NOWHERE;
        let last = self.heap.len() - 1;
        if i != last {
            self.heap.swap(i, last);
            self.heap.pop();
            self.position[self.heap[i].1 as usize] = i as u32;
            self.sift_up(i);
            self.sift_down(i);
        } else {
            self.heap.pop();
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.heap[i].0.is_before(self.heap[parent].0) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
        self.position[self.heap[i].1 as usize] = i as u32;
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let right = left + 1;
            let child = if right < n && self.heap[right].0.is_before(self.heap[left].0) {
                right
            } else {
                left
            };
            if !self.heap[child].0.is_before(self.heap[i].0) {
                break;
            }
            self.swap(i, child);
            i = child;
        }
        self.position[self.heap[i].1 as usize] = i as u32;
    }

    /// Swaps two entries, recording the new place of the one that moved to `a`.
    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.position[self.heap[a].1 as usize] = a as u32;
    }
}

#[cfg(test)]
mod tests {
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
    /// with times around the wrap: the heap pops exactly the due slots, earliest first.
    #[test]
    fn matches_a_model_under_random_changes() {
        let mut rng = Rng::seeded(11);
        for round in 0..200 {
            let start: Millis = if round % 2 == 0 { 0 } else { (1 << 32) - 5_000 };
            let mut timers = Timers::default();
            let mut model = std::collections::BTreeMap::new();
            let mut now = start;
            for _ in 0..300 {
                let slot = rng.below(40) as usize;
                match rng.below(4) {
                    0 => {
                        timers.remove(slot);
                        model.remove(&slot);
                    }
                    1 => {
                        now += rng.below(3_000);
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
                    _ => {
                        let at = now + rng.below(10_000);
                        timers.set(slot, at, now);
                        model.insert(slot, at);
                    }
                }
                assert_eq!(timers.next(now), model.values().min().copied());
                for (&s, &at) in &model {
                    assert_eq!(timers.deadline(s, now), at);
                }
            }
        }
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
}
