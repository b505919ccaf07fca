//! Time on the loop's clock: [`Millis`], and the 32-bit forms every connection stores (an idle
//! connection's state is mostly times, and each one costs 4 bytes here instead of 8).
//!
//! A stored time keeps the low 32 bits of its [`Millis`] and is read back against "now", which
//! supplies the high bits, as Linux compares jiffies (`time_before`). Two kinds, by direction:
//!
//! - [`Stamp`], a moment that has passed (last input, a ping or close sent): read as its age,
//!   exact up to 2^32 ms (49.7 days) back.
//! - [`Due`], a deadline (next alive message, the drain's close): exact within 2^31 ms
//!   (24.8 days) either side of now, so an overdue one is read as overdue.
//!
//! The settings keep every duration to 10 days (`config::parse`), so a deadline (a duration,
//! or two added) is never further ahead than that; one already passed is held as now by the
//! loop's deadlines (`Timers::set`), however old the stamp it was counted from. The loop's clock starts
//! 10 s before the low 32 bits wrap (`timers::Clock`), as Linux starts jiffies 5 minutes before
//! theirs: every run longer than 10 s crosses a wrap.

use std::time::Duration;

/// Milliseconds on the loop's clock.
pub type Millis = u64;

/// "No deadline".
pub const NEVER: Millis = Millis::MAX;

/// Adds a duration to a time, saturating at [`NEVER`].
pub fn after(now: Millis, d: Duration) -> Millis {
    now.saturating_add(d.as_millis().min(u128::from(u64::MAX)) as Millis)
}

/// A moment in the past, in 32 bits: read back as `now` minus its age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(u32);

impl Stamp {
    /// The moment `at` (not after the `now` it will be read against).
    pub fn of(at: Millis) -> Self {
        Stamp(at as u32)
    }

    /// The full time, given `now` (at or after it, by less than 49.7 days).
    pub fn at(self, now: Millis) -> Millis {
        let age = (now as u32).wrapping_sub(self.0);
        now.saturating_sub(Millis::from(age))
    }
}

/// A deadline in 32 bits: read back as the time nearest to `now` with the same low bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due(u32);

impl Due {
    /// The deadline `at` (within 24.8 days of every `now` it will be read against).
    pub const fn of(at: Millis) -> Self {
        Due(at as u32)
    }

    /// The full time, given `now`.
    pub fn at(self, now: Millis) -> Millis {
        let ahead = self.0.wrapping_sub(now as u32) as i32;
        now.saturating_add_signed(i64::from(ahead))
    }

    /// Whether `self` comes before `other` (both within 24.8 days of each other).
    pub fn is_before(self, other: Due) -> bool {
        (self.0.wrapping_sub(other.0) as i32) < 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRAP: Millis = 1 << 32;
    const DAY: Millis = 24 * 3600 * 1000;

    #[test]
    fn after_saturates() {
        assert_eq!(after(5, Duration::from_millis(10)), 15);
        assert_eq!(after(NEVER - 1, Duration::from_secs(10)), NEVER);
    }

    #[test]
    fn stamps_read_back_across_the_wrap() {
        for now in [
            0,
            5_000,
            WRAP - 10_000,
            WRAP - 1,
            WRAP,
            WRAP + 3,
            7 * WRAP + 12_345,
        ] {
            for age in [0, 1, 999, 10_000, DAY, 40 * DAY, WRAP - 1] {
                let Some(at) = now.checked_sub(age) else {
                    continue;
                };
                assert_eq!(Stamp::of(at).at(now), at, "now {now}, age {age}");
            }
        }
    }

    #[test]
    fn deadlines_read_back_across_the_wrap_ahead_and_overdue() {
        for now in [
            20 * DAY,
            WRAP - 10_000,
            WRAP - 1,
            WRAP,
            WRAP + 3,
            7 * WRAP + 12_345,
        ] {
            for offset in [
                0i64,
                1,
                -1,
                30_000,
                -30_000,
                20 * DAY as i64,
                -(20 * DAY as i64),
            ] {
                let at = now.saturating_add_signed(offset);
                assert_eq!(Due::of(at).at(now), at, "now {now}, offset {offset}");
            }
        }
    }

    #[test]
    fn deadlines_order_across_the_wrap() {
        let before = Due::of(WRAP - 5);
        let after = Due::of(WRAP + 5);
        assert!(before.is_before(after));
        assert!(!after.is_before(before));
        assert!(!before.is_before(before));
        assert!(Due::of(WRAP + 20 * DAY).is_before(Due::of(WRAP + 21 * DAY)));
    }

    #[test]
    fn early_times_do_not_underflow() {
        // A stamp from before time zero cannot exist; a wrong one reads as zero, not a panic.
        assert_eq!(Stamp::of(WRAP - 1).at(5), 0);
        assert_eq!(Due::of(WRAP - 1).at(5), 0);
    }
}
