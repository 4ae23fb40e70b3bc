//! Which key prefixes were written, so that a background worker can skip a scan of a queue
//! no transaction added to since its last scan found it empty.
//!
//! Why: an LSM store (the embedded one) keeps a tombstone for every removed key until a
//! compaction drops it, and a range read walks them all. A queue the MDS fills and drains
//! (objects to delete, truncates to replay, stale copies) is scanned every fraction of a
//! second; after an `rm -rf` of 80,000 files each empty scan of the destroy queue walked
//! 80,000 tombstones (about 30 ms of a runtime worker, twice a second, while idle).
//!
//! A prefix is a key's first byte (`crate::schema`). Every prefix starts out written, so
//! the first scan after a start always runs. Only a store that this process alone writes
//! (embedded, memory) can say a prefix was *not* written; for FoundationDB, which other
//! processes write too, [`crate::meta::Kv::take_written`] always answers "maybe".

use std::sync::atomic::{AtomicU64, Ordering};

/// A set of key prefixes (first bytes of keys).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixSet([u64; 4]);

impl PrefixSet {
    /// Adds the prefix of `key` (nothing for an empty key).
    pub fn add_key(&mut self, key: &[u8]) {
        if let Some(&p) = key.first() {
            self.0[usize::from(p >> 6)] |= 1 << (p & 63);
        }
    }

    /// Whether `prefix` is in the set.
    pub fn contains(&self, prefix: u8) -> bool {
        self.0[usize::from(prefix >> 6)] & (1 << (prefix & 63)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }
}

/// The prefixes written since each was last taken, shared by every clone of a store handle.
#[derive(Debug)]
pub(super) struct Written([AtomicU64; 4]);

impl Written {
    /// Every prefix written (nothing is known yet).
    pub(super) fn all() -> Written {
        Written(std::array::from_fn(|_| AtomicU64::new(u64::MAX)))
    }

    /// Notes that `set`'s prefixes were written (after the transaction committed).
    pub(super) fn note(&self, set: &PrefixSet) {
        for (word, bits) in self.0.iter().zip(set.0) {
            if bits != 0 {
                word.fetch_or(bits, Ordering::AcqRel);
            }
        }
    }

    /// Whether `prefix` was written since the last take.
    pub(super) fn peek(&self, prefix: u8) -> bool {
        self.0[usize::from(prefix >> 6)].load(Ordering::Acquire) & (1 << (prefix & 63)) != 0
    }

    /// Whether `prefix` was written since the last take (and forgets that it was).
    pub(super) fn take(&self, prefix: u8) -> bool {
        let bit = 1u64 << (prefix & 63);
        self.0[usize::from(prefix >> 6)].fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_written_until_taken_and_again_once_noted() {
        let w = Written::all();
        assert!(w.peek(0x08) && w.take(0x08), "nothing is known at first");
        assert!(
            !w.peek(0x08) && !w.take(0x08),
            "taken, and not written since"
        );
        assert!(w.take(0x0d), "taking one prefix leaves the others");
        let mut set = PrefixSet::default();
        set.add_key(&[0x08, 1, 2]);
        set.add_key(&[0xff]);
        set.add_key(&[]);
        assert!(set.contains(0x08) && set.contains(0xff) && !set.contains(0x0d));
        w.note(&set);
        assert!(w.peek(0x08), "a peek takes nothing");
        assert!(w.take(0x08));
        assert!(w.take(0xff));
        assert!(!w.take(0x0d));
        assert!(!w.take(0x08));
        assert!(PrefixSet::default().is_empty() && !set.is_empty());
    }
}
