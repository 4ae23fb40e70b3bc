//! Stale marks the MDS has not taken yet (docs/replication.md, write rule).
//!
//! When a copy of a replicated file misses a write that another copy took, the writer must
//! have the MDS mark it stale (`MarkStale`) before the write counts. If that call fails (the
//! MDS unreachable longer than a call rides through), the write fails, but the copies now
//! differ and nothing at the MDS says so. The mark is then kept here and sent again: every
//! session renewal tries all of them, and the release of the file's open waits for its
//! marks, so the MDS drops a writer's open record (which would otherwise make it distrust
//! the copies when the session ends, see "A writer's intent") only once it knows which
//! copies missed writes. Nothing here knows [`super::Client`].

use std::collections::BTreeMap;
use std::sync::Mutex;

use rustre_proto::msg::Ino;
use rustre_proto::sync::lock;

/// Most inodes with marks kept at once. Past it the oldest inode's marks are dropped (with
/// an error logged): its copies are then made equal only when this client's session ends
/// with the file open, or never if it was closed. Reaching it needs that many files to lose
/// a copy while the MDS is away.
pub(super) const MAX_PENDING_MARK_INODES: usize = 4096;

/// A `MarkStale` to send again: the slots that missed a write, and the layout version the
/// writer held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingMark {
    pub(super) slots: Vec<u32>,
    pub(super) version: u64,
}

/// The marks kept, by inode (sent in inode order).
#[derive(Default)]
pub(super) struct PendingMarks {
    inner: Mutex<BTreeMap<Ino, Vec<PendingMark>>>,
}

impl PendingMarks {
    /// Keeps a mark the MDS did not take.
    pub(super) fn keep(&self, ino: Ino, mark: PendingMark) {
        let mut marks = lock(&self.inner);
        if !marks.contains_key(&ino) && marks.len() >= MAX_PENDING_MARK_INODES {
            if let Some((dropped, _)) = marks.pop_first() {
                tracing::error!(
                    ino = dropped,
                    "too many files wait for stale marks: forgetting this one's"
                );
            }
        }
        let kept = marks.entry(ino).or_default();
        if !kept.contains(&mark) {
            kept.push(mark);
        }
    }

    /// Takes the marks kept for `ino` (the caller keeps again those that fail).
    pub(super) fn take(&self, ino: Ino) -> Vec<PendingMark> {
        lock(&self.inner).remove(&ino).unwrap_or_default()
    }

    /// The inodes with marks kept.
    pub(super) fn inodes(&self) -> Vec<Ino> {
        lock(&self.inner).keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(slot: u32, version: u64) -> PendingMark {
        PendingMark {
            slots: vec![slot],
            version,
        }
    }

    #[test]
    fn marks_are_kept_once_and_taken_by_inode() {
        let p = PendingMarks::default();
        p.keep(7, mark(1, 3));
        p.keep(7, mark(1, 3));
        p.keep(7, mark(2, 4));
        p.keep(5, mark(0, 1));
        assert_eq!(p.inodes(), vec![5, 7]);
        assert_eq!(p.take(7), vec![mark(1, 3), mark(2, 4)]);
        assert_eq!(p.inodes(), vec![5]);
        assert!(p.take(7).is_empty());
    }

    #[test]
    fn the_oldest_inode_goes_past_the_limit() {
        let p = PendingMarks::default();
        for ino in 0..MAX_PENDING_MARK_INODES as Ino {
            p.keep(ino + 1, mark(0, 1));
        }
        p.keep(1, mark(1, 2));
        assert!(
            p.inodes().contains(&1),
            "an inode already kept takes more marks"
        );
        p.keep(MAX_PENDING_MARK_INODES as Ino + 1, mark(0, 1));
        assert!(!p.inodes().contains(&1));
        assert_eq!(p.inodes().len(), MAX_PENDING_MARK_INODES);
    }
}
