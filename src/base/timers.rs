//! Deadlines owned by the event loop: a monotonic millisecond clock and one min-heap of
//! per-connection deadlines.
//!
//! Each connection has a single [`Deadline`]: the earliest moment anything must happen to it
//! (header timeout, idle timeout, the preStop answer, a lingering close, later the WebSocket
//! timers). The heap holds at most one live entry per connection in the common case: moving a
//! deadline *later* pushes nothing (the old entry fires early, sees the later time and re-arms);
//! only moving it *earlier* pushes. Entries carry the slab slot and the connection's generation,
//! so an entry for a connection that is gone, or whose slot was reused, is ignored.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Milliseconds since the loop's clock started.
pub type Millis = u64;

/// "No deadline".
pub const NEVER: Millis = Millis::MAX;

/// A monotonic clock counting milliseconds from the start of the process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Clock {
            start: Instant::now(),
        }
    }

    /// Milliseconds since the clock started.
    pub fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds a duration to a time, saturating at [`NEVER`].
pub fn after(now: Millis, d: Duration) -> Millis {
    now.saturating_add(d.as_millis().min(u128::from(u64::MAX)) as Millis)
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

/// One connection's deadline, plus the bookkeeping that keeps the heap small.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// When the connection next needs attention ([`NEVER`] for not at all).
    at: Millis,
    /// The time of this connection's live heap entry, or [`NEVER`] if it has none.
    armed: Millis,
}

impl Deadline {
    /// No deadline and no heap entry.
    pub const fn none() -> Self {
        Deadline {
            at: NEVER,
            armed: NEVER,
        }
    }

    /// The current deadline.
    pub fn at(&self) -> Millis {
        self.at
    }
}

/// A popped heap entry: the connection it was for and the time it was set to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The time the entry was pushed for.
    pub at: Millis,
    /// The connection's slab slot.
    pub slot: usize,
    /// The connection's generation when the entry was pushed.
    pub generation: u32,
}

/// The loop's heap of connection deadlines.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// (time, slot, generation): 16 bytes an entry; slots are slab indices, far below 2^32.
    heap: BinaryHeap<Reverse<(Millis, u32, u32)>>,
}

impl Timers {
    /// An empty heap.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `deadline` (belonging to connection `slot`/`generation`) to `at`.
    pub fn set(&mut self, deadline: &mut Deadline, slot: usize, generation: u32, at: Millis) {
        deadline.at = at;
        debug_assert!(
            u32::try_from(slot).is_ok(),
            "slab slot {slot} does not fit a heap entry"
        );
        if at < deadline.armed {
            deadline.armed = at;
            self.heap.push(Reverse((at, slot as u32, generation)));
        }
    }

    /// The time of the earliest entry, which may be stale (then the loop wakes early and
    /// finds nothing due, which is harmless).
    pub fn next(&self) -> Option<Millis> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Pops the earliest entry if it is due at `now`. The caller looks up the connection it
    /// names (skipping it if gone or of another generation) and passes it to [`Timers::fire`].
    pub fn pop_due(&mut self, now: Millis) -> Option<Entry> {
        let &Reverse((at, slot, generation)) = self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        Some(Entry {
            at,
            slot: slot as usize,
            generation,
        })
    }

    /// Settles a popped entry against its connection's deadline: true if the deadline has
    /// really passed; otherwise re-arms it if it was moved later, or drops a stale entry.
    pub fn fire(&mut self, entry: Entry, deadline: &mut Deadline, now: Millis) -> bool {
        if deadline.armed != entry.at {
            return false; // superseded by an earlier entry
        }
        deadline.armed = NEVER;
        if deadline.at <= now {
            return true;
        }
        if deadline.at != NEVER {
            // Moved later since this entry was pushed: re-arm at the new time.
            deadline.armed = deadline.at;
            self.heap
                .push(Reverse((deadline.at, entry.slot as u32, entry.generation)));
        }
        false
    }

    /// Number of heap entries, live and stale (for the tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the heap has no entries (for the tests).
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expire(timers: &mut Timers, conns: &mut [(u32, Deadline)], now: Millis) -> Vec<usize> {
        let mut due = Vec::new();
        while let Some(entry) = timers.pop_due(now) {
            let Some((generation, deadline)) = conns.get_mut(entry.slot) else {
                continue;
            };
            if *generation == entry.generation && timers.fire(entry, deadline, now) {
                due.push(entry.slot);
            }
        }
        due
    }

    #[test]
    fn fires_in_order_and_only_when_due() {
        let mut timers = Timers::new();
        let mut conns = vec![(0, Deadline::none()), (0, Deadline::none())];
        timers.set(&mut conns[0].1, 0, 0, 100);
        timers.set(&mut conns[1].1, 1, 0, 50);
        assert_eq!(timers.next(), Some(50));
        assert!(expire(&mut timers, &mut conns, 49).is_empty());
        assert_eq!(expire(&mut timers, &mut conns, 50), vec![1]);
        assert_eq!(expire(&mut timers, &mut conns, 1000), vec![0]);
        assert!(timers.is_empty());
    }

    #[test]
    fn moving_later_rearms_without_pushing() {
        let mut timers = Timers::new();
        let mut conns = vec![(0, Deadline::none())];
        timers.set(&mut conns[0].1, 0, 0, 100);
        timers.set(&mut conns[0].1, 0, 0, 300);
        assert_eq!(timers.len(), 1);
        assert!(expire(&mut timers, &mut conns, 150).is_empty());
        assert_eq!(timers.next(), Some(300));
        assert_eq!(expire(&mut timers, &mut conns, 300), vec![0]);
    }

    #[test]
    fn moving_earlier_pushes_and_old_entry_is_ignored() {
        let mut timers = Timers::new();
        let mut conns = vec![(0, Deadline::none())];
        timers.set(&mut conns[0].1, 0, 0, 300);
        timers.set(&mut conns[0].1, 0, 0, 100);
        assert_eq!(expire(&mut timers, &mut conns, 100), vec![0]);
        // The stale entry at 300 must not fire a second time.
        assert!(expire(&mut timers, &mut conns, 400).is_empty());
    }

    #[test]
    fn cleared_deadline_never_fires() {
        let mut timers = Timers::new();
        let mut conns = vec![(0, Deadline::none())];
        timers.set(&mut conns[0].1, 0, 0, 100);
        timers.set(&mut conns[0].1, 0, 0, NEVER);
        assert!(expire(&mut timers, &mut conns, 1000).is_empty());
        assert!(timers.is_empty());
    }

    #[test]
    fn reused_slot_ignores_old_generation() {
        let mut timers = Timers::new();
        let mut conns = vec![(0, Deadline::none())];
        timers.set(&mut conns[0].1, 0, 0, 100);
        // The connection is replaced by a new one (generation 1) in the same slot.
        conns[0] = (1, Deadline::none());
        timers.set(&mut conns[0].1, 0, 1, 500);
        assert!(expire(&mut timers, &mut conns, 200).is_empty());
        assert_eq!(expire(&mut timers, &mut conns, 500), vec![0]);
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

    #[test]
    fn after_saturates() {
        assert_eq!(after(5, Duration::from_millis(10)), 15);
        assert_eq!(after(NEVER - 1, Duration::from_secs(10)), NEVER);
    }
}
