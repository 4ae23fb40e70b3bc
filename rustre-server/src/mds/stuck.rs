//! The stale copies the resync worker failed to refill, kept for `rustre status` so a copy
//! that cannot be resynced (its OST full or failing) shows instead of being retried
//! silently forever. In memory: after a restart of the MDS the worker finds them again on
//! its first pass. At most [`STUCK_COPIES_MAX`] are kept.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rustre_proto::msg::mds::{StuckCopy, STUCK_COPIES_MAX};
use rustre_proto::msg::Ino;
use rustre_proto::sync::lock;

/// Stuck copies by (inode, slot).
#[derive(Default)]
pub(super) struct StuckCopies {
    copies: Mutex<BTreeMap<(Ino, u32), StuckCopy>>,
}

impl StuckCopies {
    /// Notes that refilling copy `slot` (on `ost`) of `ino` failed with `error`.
    pub(super) fn failed(&self, ino: Ino, slot: u32, ost: u32, error: String) {
        let mut copies = lock(&self.copies);
        if let Some(c) = copies.get_mut(&(ino, slot)) {
            c.attempts = c.attempts.saturating_add(1);
            c.ost = ost;
            c.error = error;
        } else if copies.len() < STUCK_COPIES_MAX {
            let copy = StuckCopy {
                ino,
                slot,
                ost,
                error,
                attempts: 1,
            };
            copies.insert((ino, slot), copy);
        }
    }

    /// Copy `slot` of `ino` was refilled (or is no longer stale).
    pub(super) fn refilled(&self, ino: Ino, slot: u32) {
        lock(&self.copies).remove(&(ino, slot));
    }

    /// Every copy of `ino` is up to date (or the file is gone).
    pub(super) fn file_done(&self, ino: Ino) {
        lock(&self.copies).retain(|(i, _), _| *i != ino);
    }

    /// The stuck copies, by inode and slot.
    pub(super) fn list(&self) -> Vec<StuckCopy> {
        lock(&self.copies).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_stays_listed_until_it_is_refilled() {
        let s = StuckCopies::default();
        s.failed(7, 1, 3, "no space left on the OST".into());
        s.failed(7, 1, 3, "no space left on the OST".into());
        s.failed(9, 0, 2, "down".into());
        let listed = s.list();
        assert_eq!(listed.len(), 2);
        assert_eq!((listed[0].ino, listed[0].attempts), (7, 2));
        s.refilled(7, 1);
        assert_eq!(s.list().len(), 1);
        s.file_done(9);
        assert!(s.list().is_empty());
        for ino in 0..(STUCK_COPIES_MAX as u64 + 5) {
            s.failed(ino, 0, 0, "full".into());
        }
        assert_eq!(s.list().len(), STUCK_COPIES_MAX, "bounded");
    }
}
