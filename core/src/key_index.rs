//! The store's hash index: slot numbers found by a key's 32-bit hash, each lookup
//! reading one cache line.
//!
//! The store's keys are never removed (a delete is a tombstone), so the index is
//! insert-only, and that allows a simpler table than a general hash map: linear
//! probing over lines of eight `(slot, hash)` pairs, 64 bytes each and aligned to a
//! cache line. A key is looked for from the line its hash picks, entry by entry, until
//! its hash (and then its key) matches or an empty entry shows it is not there
//! (entries are filled in probe order and never emptied, so the first empty one ends
//! every search). A general table (`hashbrown`, used before) keeps its control bytes
//! and its entries apart, so that a lookup in a large store missed the cache twice;
//! this one misses it once. Profiled on 1M keys overwritten in key order (2 cores),
//! the lookup's share of a write fell from 48% to 38% (a write 322-372 ns before,
//! 288-365 ns after, in runs minutes apart; in `bench-durable` the two builds run
//! side by side on a slower machine could not be told apart).
//!
//! Growth rehashes from the kept hashes, never touching the keys. The table is at most
//! three quarters full, so that a search for a missing key (every new key) rarely reads
//! a second line.

/// The slot number of an empty entry. (A store holds fewer than `u32::MAX` keys.)
const EMPTY: u32 = u32::MAX;

/// Entries per line: eight `(slot, hash)` pairs fill a 64-byte cache line.
const PER_LINE: usize = 8;

/// The most entries per line, on average, before the table grows (3/4 full).
const LOAD: usize = 6;

/// A slot and its key's hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    slot: u32,
    hash: u32,
}

/// One cache line of entries.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([Entry; PER_LINE]);

const EMPTY_LINE: Line = Line(
    [Entry {
        slot: EMPTY,
        hash: 0,
    }; PER_LINE],
);

/// The index (see the module docs).
#[derive(Clone, Default)]
pub(crate) struct KeyIndex {
    /// A power of two of lines, or none.
    lines: Vec<Line>,
    len: usize,
}

impl std::fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyIndex")
            .field("len", &self.len)
            .field("lines", &self.lines.len())
            .finish()
    }
}

impl KeyIndex {
    /// How many slots the index holds before it grows.
    pub(crate) fn capacity(&self) -> usize {
        self.lines.len() * LOAD
    }

    /// The line a hash starts its search at (its top bits: the table is a power of two).
    fn home(&self, hash: u32) -> usize {
        ((u64::from(hash) * self.lines.len() as u64) >> 32) as usize
    }

    /// The slot of the key hashed to `hash` for which `is_key(slot)` holds, if any.
    #[inline]
    pub(crate) fn find(&self, hash: u32, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.lines.is_empty() {
            return None;
        }
        let mask = self.lines.len() - 1;
        let mut at = self.home(hash);
        loop {
            for e in &self.lines[at].0 {
                if e.slot == EMPTY {
                    return None;
                }
                if e.hash == hash && is_key(e.slot) {
                    return Some(e.slot);
                }
            }
            at = (at + 1) & mask;
        }
    }

    /// Adds `slot`, for a key hashed to `hash` that is not in the index.
    pub(crate) fn insert(&mut self, hash: u32, slot: u32) {
        debug_assert_ne!(slot, EMPTY, "a store holds fewer than u32::MAX keys");
        if self.len + 1 > self.capacity() {
            self.grow_to(self.len + 1);
        }
        self.place(Entry { slot, hash });
        self.len += 1;
    }

    /// Room for `additional` more slots without growing.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let want = self.len.saturating_add(additional);
        if want > self.capacity() {
            self.grow_to(want);
        }
    }

    /// Puts `e` in the first empty entry of its probe sequence (there is one: the table
    /// is never full).
    fn place(&mut self, e: Entry) {
        let mask = self.lines.len() - 1;
        let mut at = self.home(e.hash);
        loop {
            if let Some(free) = self.lines[at].0.iter_mut().find(|x| x.slot == EMPTY) {
                *free = e;
                return;
            }
            at = (at + 1) & mask;
        }
    }

    /// A table of the least power of two of lines that holds `want` slots, at least
    /// twice the lines of the one before, with every entry placed again by its hash.
    fn grow_to(&mut self, want: usize) {
        let lines = want
            .div_ceil(LOAD)
            .max(self.lines.len() * 2)
            .max(1)
            .next_power_of_two();
        let old = std::mem::replace(&mut self.lines, vec![EMPTY_LINE; lines]);
        for e in old.iter().flat_map(|l| l.0.iter()) {
            if e.slot != EMPTY {
                self.place(*e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_line_is_a_cache_line() {
        assert_eq!(std::mem::size_of::<Line>(), 64);
        assert_eq!(std::mem::align_of::<Line>(), 64);
    }

    #[test]
    fn empty_finds_nothing() {
        let ix = KeyIndex::default();
        assert_eq!(ix.find(7, |_| true), None);
        assert_eq!(ix.capacity(), 0);
    }

    #[test]
    fn colliding_hashes_are_told_apart_by_key() {
        let mut ix = KeyIndex::default();
        // Twenty slots, all with one hash: they overflow the first line into the next.
        for s in 0..20 {
            ix.insert(42, s);
        }
        for s in 0..20 {
            assert_eq!(ix.find(42, |x| x == s), Some(s));
        }
        assert_eq!(ix.find(42, |_| false), None);
        assert_eq!(ix.find(43, |_| true), None);
    }

    #[test]
    fn reserve_makes_room_without_growing_later() {
        let mut ix = KeyIndex::default();
        ix.reserve(1000);
        let lines = ix.lines.len();
        assert!(ix.capacity() >= 1000);
        for s in 0..1000u32 {
            ix.insert(s.wrapping_mul(2_654_435_761), s);
        }
        assert_eq!(ix.lines.len(), lines);
        assert!(ix.len <= ix.capacity());
    }

    proptest! {
        /// Against a model: every slot inserted is found by its hash and no other slot;
        /// hashes never inserted find nothing, whatever the hashes (colliding ones
        /// included: the top bits pick the line, so small ranges crowd one line, and
        /// the largest ones wrap around from the last line to the first).
        #[test]
        fn finds_what_was_inserted(
            hashes in prop::collection::vec(
                prop_oneof![0u32..64, (u32::MAX - 64)..=u32::MAX, any::<u32>()],
                0..600,
            ),
            probes in prop::collection::vec(any::<u32>(), 0..50),
        ) {
            let mut ix = KeyIndex::default();
            for (slot, &h) in hashes.iter().enumerate() {
                ix.insert(h, slot as u32);
                prop_assert!(ix.len <= ix.capacity());
            }
            for (slot, &h) in hashes.iter().enumerate() {
                prop_assert_eq!(ix.find(h, |s| s == slot as u32), Some(slot as u32));
            }
            for p in probes {
                let found = ix.find(p, |s| hashes[s as usize] == p);
                prop_assert_eq!(found.is_some(), hashes.contains(&p));
                prop_assert!(found.is_none_or(|s| hashes[s as usize] == p));
            }
        }
    }
}
