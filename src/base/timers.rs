//! Deadlines owned by the event loop: a monotonic millisecond clock and one timing wheel of
//! per-connection deadlines.
//!
//! Each connection has a single deadline: the earliest moment anything must happen to it
//! (header timeout, idle timeout, the preStop answer, a lingering close, the WebSocket timers).
//! `Timers` holds exactly one entry per connection that has one, found by its slab slot, so a
//! deadline moves in place and a closed connection's goes with it: nothing stale is left to
//! fire, and no generation is needed to tell a reused slot's entries apart. Every operation
//! costs the same whatever the number of connections (a timing wheel, not a heap).

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

/// Bits of a time each level of the wheel tells apart: 64 slots a level.
const BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << BITS;
/// Levels: a slot of level `k` spans 64^k ms (1 ms, 64 ms, 4.1 s, 4.4 min, 4.7 h, 12.4 days),
/// and six levels reach 2^36 ms ahead (795 days), past any deadline the settings allow (two
/// durations of at most 10 days).
const LEVELS: usize = 6;
/// The end of a list, and the links of a slot that has no deadline.
const NIL: u32 = u32::MAX;

/// One connection's deadline and its links in the list it is in (a slot of the wheel, or the
/// list of deadlines that have come): 12 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    due: Due,
    /// The next entry in its (circular) list; [`NIL`]: the slot has no deadline.
    next: u32,
    /// The previous entry in its (circular) list.
    prev: u32,
}

const EMPTY: Entry = Entry {
    due: Due::of(0),
    next: NIL,
    prev: NIL,
};

/// One level of the wheel: 64 lists of entries, which of them hold any, for each a lower bound
/// of its deadlines (exact unless an entry has left it since it was last emptied), and how many
/// entries each holds (kept on the lowest level only, whose lists join the due list whole).
#[derive(Debug, Clone, Copy)]
struct Level {
    occupied: u64,
    head: [u32; SLOTS],
    earliest: [Due; SLOTS],
    len: [u32; SLOTS],
}

const EMPTY_LEVEL: Level = Level {
    occupied: 0,
    head: [NIL; SLOTS],
    earliest: [Due::of(0); SLOTS],
    len: [0; SLOTS],
};

/// Which list an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    /// Its deadline has come: it waits to be taken by [`Timers::pop_due`].
    Due,
    /// A slot of the wheel.
    Wheel { level: usize, slot: usize },
}

/// The loop's deadlines, one per connection: a hierarchical timing wheel (as Linux's timers
/// and tokio's, 6 levels of 64 slots) of per-connection entries linked by their slab slots.
/// Setting, moving or removing a deadline and taking one that has come each cost the same at
/// 1,000 connections or 1,000,000 (a binary heap's cost grows with the number of connections,
/// and at a million so do its cache misses). An entry moves down a level when the slot it waits
/// in comes (at most five times; once or twice for an alive message), and fires in the order
/// the deadlines come, those of one millisecond in the order they reached it (the alive
/// messages of a grid point, all set an interval ahead, in the order of their previous round).
/// 12 bytes a connection, as the heap took.
#[derive(Debug)]
pub(crate) struct Timers {
    /// Each slab slot's deadline and links, indexed by slot.
    entries: Vec<Entry>,
    levels: Box<[Level; LEVELS]>,
    /// The head of the list of deadlines that have come, in the order they came.
    due: u32,
    /// Entries in the due list.
    due_len: usize,
    /// Every slot of the wheel before this time has been emptied: the entries in the wheel are
    /// after it, those in the due list at or before it.
    elapsed: Millis,
    /// Deadlines set.
    count: usize,
}

impl Default for Timers {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl Timers {
    /// No deadlines, with room for `slots` connections reserved: address space only (a large
    /// allocation is mapped on first touch), and growing never leaves freed copies behind.
    pub fn with_capacity(slots: usize) -> Self {
        Timers {
            entries: Vec::with_capacity(slots),
            levels: Box::new([EMPTY_LEVEL; LEVELS]),
            due: NIL,
            due_len: 0,
            elapsed: 0,
            count: 0,
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
        debug_assert!(u32::try_from(slot).is_ok_and(|s| s != NIL));
        self.advance(now);
        let at = at.max(now).max(self.elapsed);
        if slot >= self.entries.len() {
            self.entries.resize(slot + 1, EMPTY);
        }
        let due = Due::of(at);
        let entry = self.entries[slot];
        if entry.next != NIL {
            if entry.due == due {
                return;
            }
            let list = self.list_of(entry.due);
            self.unlink(list, slot as u32);
        } else {
            self.count += 1;
        }
        self.entries[slot].due = due;
        let list = self.list_of(due);
        self.link(list, slot as u32);
    }

    /// Connection `slot` has no deadline (any more).
    pub fn remove(&mut self, slot: usize) {
        let Some(entry) = self.entries.get(slot).copied() else {
            return;
        };
        if entry.next == NIL {
            return;
        }
        let list = self.list_of(entry.due);
        self.unlink(list, slot as u32);
        self.count -= 1;
    }

    /// Connection `slot`'s deadline ([`NEVER`] for none).
    pub fn deadline(&self, slot: usize, now: Millis) -> Millis {
        match self.entries.get(slot) {
            Some(entry) if entry.next != NIL => entry.due.at(now),
            _ => NEVER,
        }
    }

    /// When the loop must look next: the earliest deadline, or a moment before it when the
    /// earliest slot of the wheel has lost an entry since it was filled (the loop then wakes
    /// once more, in vain). Never later than the earliest deadline.
    pub fn next(&self, now: Millis) -> Option<Millis> {
        if self.due != NIL {
            return Some(self.entries[self.due as usize].due.at(now));
        }
        let (level, slot, start) = self.next_expiration()?;
        if level == 0 {
            return Some(start);
        }
        Some(start.max(self.levels[level].earliest[slot].at(self.elapsed)))
    }

    /// How many connections' deadlines have passed at `now`. Taking that many with
    /// [`Timers::pop_due`] takes each of them once, and none set due again meanwhile (those
    /// join the end of the list): each connection runs once per step.
    pub fn due_count(&mut self, now: Millis) -> usize {
        self.advance(now);
        self.due_len
    }

    /// Takes out a connection whose deadline has passed at `now`, if any: in the order the
    /// deadlines came.
    pub fn pop_due(&mut self, now: Millis) -> Option<usize> {
        self.advance(now);
        let first = self.due;
        if first == NIL {
            return None;
        }
        self.unlink(List::Due, first);
        self.count -= 1;
        Some(first as usize)
    }

    /// Number of deadlines set.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Moves the wheel to `now`: every slot that begins at or before it is emptied, its entries
    /// moved down a level, or to the due list when their time has come.
    fn advance(&mut self, now: Millis) {
        if now <= self.elapsed {
            return;
        }
        while let Some((level, slot, start)) = self.next_expiration() {
            if start > now {
                break;
            }
            self.elapsed = start;
            let lists = &mut self.levels[level];
            let mut taken = std::mem::replace(&mut lists.head[slot], NIL);
            lists.occupied &= !(1 << slot);
            if level == 0 {
                // A slot of the lowest level is one millisecond: all its entries are due, and
                // join the due list as they are, without a look at each.
                self.due_len += std::mem::take(&mut lists.len[slot]) as usize;
                splice(&mut self.entries, &mut self.due, taken);
                continue;
            }
            while taken != NIL {
                let i = taken;
                unlink_from(&mut self.entries, &mut taken, i);
                let due = self.entries[i as usize].due;
                let list = self.list_of(due);
                self.link(list, i);
            }
        }
        self.elapsed = now;
    }

    /// The next slot of the wheel to empty, and when it begins: the first occupied slot after
    /// `elapsed` on the lowest level that has one (a lower level's entries all come before a
    /// higher one's).
    fn next_expiration(&self) -> Option<(usize, usize, Millis)> {
        for (level, lists) in self.levels.iter().enumerate() {
            if lists.occupied == 0 {
                continue;
            }
            let shift = BITS * level as u32;
            let current = ((self.elapsed >> shift) % SLOTS as u64) as u32;
            let after = (current + 1) % SLOTS as u32;
            let slot = (after + lists.occupied.rotate_right(after).trailing_zeros()) % SLOTS as u32;
            let level_span: Millis = 1 << (shift + BITS);
            let mut start = (self.elapsed & !(level_span - 1)) + (Millis::from(slot) << shift);
            if start <= self.elapsed {
                // Only on the top level: the slot is in the next turn of the wheel.
                start += level_span;
            }
            return Some((level, slot as usize, start));
        }
        None
    }

    /// The list for a deadline, as the wheel stands.
    fn list_of(&self, due: Due) -> List {
        let at = due.at(self.elapsed);
        if at <= self.elapsed {
            return List::Due;
        }
        // The level is that of the highest 6-bit group in which `at` and `elapsed` differ.
        let differ = (self.elapsed ^ at) | (SLOTS as u64 - 1);
        let level = ((differ.ilog2() / BITS) as usize).min(LEVELS - 1);
        let slot = ((at >> (BITS * level as u32)) % SLOTS as u64) as usize;
        List::Wheel { level, slot }
    }

    /// Appends entry `i` to `list`.
    fn link(&mut self, list: List, i: u32) {
        let head = match list {
            List::Due => {
                self.due_len += 1;
                &mut self.due
            }
            List::Wheel { level, slot } => {
                let lists = &mut self.levels[level];
                if level == 0 {
                    lists.len[slot] += 1;
                }
                let due = self.entries[i as usize].due;
                if lists.occupied & (1 << slot) == 0 || due.is_before(lists.earliest[slot]) {
                    lists.earliest[slot] = due;
                }
                lists.occupied |= 1 << slot;
                &mut lists.head[slot]
            }
        };
        let entries = &mut self.entries;
        match *head {
            NIL => {
                *head = i;
                entries[i as usize].next = i;
                entries[i as usize].prev = i;
            }
            first => {
                let last = entries[first as usize].prev;
                entries[i as usize].next = first;
                entries[i as usize].prev = last;
                entries[last as usize].next = i;
                entries[first as usize].prev = i;
            }
        }
    }

    /// Takes entry `i` out of `list`.
    fn unlink(&mut self, list: List, i: u32) {
        match list {
            List::Due => {
                self.due_len -= 1;
                unlink_from(&mut self.entries, &mut self.due, i);
            }
            List::Wheel { level, slot } => {
                let lists = &mut self.levels[level];
                if level == 0 {
                    lists.len[slot] -= 1;
                }
                unlink_from(&mut self.entries, &mut lists.head[slot], i);
                if lists.head[slot] == NIL {
                    lists.occupied &= !(1 << slot);
                }
            }
        }
    }
}

/// Appends the circular list that starts at `other` to the one that starts at `head`.
fn splice(entries: &mut [Entry], head: &mut u32, other: u32) {
    if other == NIL {
        return;
    }
    if *head == NIL {
        *head = other;
        return;
    }
    let first = *head;
    let last = entries[first as usize].prev;
    let other_last = entries[other as usize].prev;
    entries[last as usize].next = other;
    entries[other as usize].prev = last;
    entries[other_last as usize].next = first;
    entries[first as usize].prev = other_last;
}

/// Takes entry `i` out of the circular list that starts at `head`, leaving it unlinked.
fn unlink_from(entries: &mut [Entry], head: &mut u32, i: u32) {
    let Entry { next, prev, .. } = entries[i as usize];
    if next == i {
        *head = NIL;
    } else {
        entries[prev as usize].next = next;
        entries[next as usize].prev = prev;
        if *head == i {
            *head = next;
        }
    }
    entries[i as usize].next = NIL;
    entries[i as usize].prev = NIL;
}

#[cfg(test)]
mod tests;
