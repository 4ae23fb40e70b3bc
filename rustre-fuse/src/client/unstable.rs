//! Changes the OSTs acknowledged but have not made durable yet, and the write verifiers that
//! tell whether an OST still holds them (docs/replication.md, "Write verifiers").
//!
//! Every write, repair or truncate a copy answers carries the instance of its OST, new on every
//! start of the OST that may have lost acknowledged writes (a new boot of its host, another
//! disk; docs/replication.md). This module notes, per file and per copy (stripe, OST), the
//! instance that acknowledged the changes since the file's last good sync, and whether two
//! instances did (the OST restarted in between: the earlier changes may be gone). A sync
//! answers the instance that made the object durable; a copy whose changes came from
//! another instance lost them.
//!
//! The changes themselves are kept too, in the order they were acknowledged, so that a copy
//! that lost them can be given them again; with them, the write-back memory reservation
//! that covered their bytes, so the write-back cap bounds what is kept. They go when a sync
//! of the file succeeds, when the file's last handle is released, or when a writer finds
//! the cap reached (it syncs the file keeping the most, see `Client::reserve_write`). A
//! file whose changes went keeps only its verifiers, a few bytes a copy, until its next
//! good sync, and keeps no new change until then either: replaying part of what was lost
//! would pass for recovery. At most [`UNSTABLE_FILES_MAX`] files are followed; past that,
//! the one used least recently is forgotten (a sync of it can no longer tell a restart).

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use bytes::Bytes;
use lru::LruCache;
use rustre_proto::msg::{Ino, Layout};
use rustre_proto::sync::lock;
use tokio::sync::OwnedSemaphorePermit;

/// Most files whose unsynced changes are followed at once.
pub(super) const UNSTABLE_FILES_MAX: usize = 65_536;

/// One write to a file, as it was made: what a copy that lost it is given again. (Size
/// changes are the MDS's: it cuts the objects and syncs the cut itself.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    /// Where in the file the bytes were written.
    pub(super) offset: u64,
    pub(super) data: Bytes,
}

/// What one copy acknowledged since the file's last good sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CopyVerifier {
    /// The OST instance that acknowledged the first of those changes.
    pub(super) instance: u64,
    /// A later change was acknowledged by another instance.
    pub(super) restarted: bool,
}

impl CopyVerifier {
    /// True when a sync answered by `instance` makes every change this copy acknowledged
    /// durable.
    pub(super) fn covered_by(&self, instance: u64) -> bool {
        !self.restarted && self.instance == instance
    }
}

/// The changes kept for one file, and the memory reservations covering their bytes.
#[derive(Default)]
pub(super) struct Kept {
    pub(super) changes: Vec<Change>,
    pub(super) bytes: usize,
    permits: Vec<OwnedSemaphorePermit>,
}

/// What one file has outstanding.
pub(super) struct FileUnstable {
    /// By (stripe, OST).
    pub(super) copies: BTreeMap<(u32, u32), CopyVerifier>,
    /// Every change since the last good sync, or `None` once some were dropped.
    pub(super) kept: Option<Kept>,
    /// The layout the changes were made with (for a sync forced by memory pressure).
    pub(super) layout: Layout,
}

impl FileUnstable {
    fn new(layout: &Layout) -> FileUnstable {
        FileUnstable {
            copies: BTreeMap::new(),
            kept: Some(Kept::default()),
            layout: layout.clone(),
        }
    }

    /// Folds `later` (noted while this one was away being synced) into this one: the
    /// copies' first instances stay, the changes follow in order.
    fn absorb(&mut self, later: FileUnstable) {
        for (copy, v) in later.copies {
            self.note(copy, v.instance);
            if v.restarted {
                self.copies.entry(copy).and_modify(|c| c.restarted = true);
            }
        }
        match (&mut self.kept, later.kept) {
            (Some(k), Some(l)) => {
                k.changes.extend(l.changes);
                k.bytes += l.bytes;
                k.permits.extend(l.permits);
            }
            _ => self.kept = None,
        }
        self.layout = later.layout;
    }

    fn note(&mut self, copy: (u32, u32), instance: u64) {
        self.copies
            .entry(copy)
            .and_modify(|v| v.restarted |= v.instance != instance)
            .or_insert(CopyVerifier {
                instance,
                restarted: false,
            });
    }
}

/// The unsynced changes of every file this client wrote.
pub(super) struct Unstable {
    files: Mutex<LruCache<Ino, FileUnstable>>,
}

impl Default for Unstable {
    fn default() -> Self {
        Unstable::with_capacity(UNSTABLE_FILES_MAX)
    }
}

impl Unstable {
    pub(super) fn with_capacity(files: usize) -> Unstable {
        let cap = NonZeroUsize::new(files).unwrap_or(NonZeroUsize::MIN);
        Unstable {
            files: Mutex::new(LruCache::new(cap)),
        }
    }

    /// Notes a change of `ino` made with `layout` and acknowledged by the copies in
    /// `acks` ((stripe, OST), instance), and keeps the change itself if `change` is given
    /// and the file still keeps its changes. `durable` changes (synced by the OST before
    /// it answered) start no record of their own.
    pub(super) fn noted(
        &self,
        ino: Ino,
        layout: &Layout,
        acks: &[((u32, u32), u64)],
        change: Option<Change>,
        durable: bool,
    ) {
        if acks.is_empty() {
            return;
        }
        let mut files = lock(&self.files);
        if durable && !files.contains(&ino) {
            return;
        }
        let file = files.get_or_insert_mut(ino, || FileUnstable::new(layout));
        for (copy, instance) in acks {
            file.note(*copy, *instance);
        }
        if let (Some(kept), Some(change)) = (&mut file.kept, change) {
            kept.bytes += change.data.len();
            kept.changes.push(change);
        }
    }

    /// Gives `permits` (the reservation of bytes just noted for `ino`) to the changes kept
    /// for it; they are released with those changes. Dropped at once if nothing is kept.
    pub(super) fn hold(&self, ino: Ino, permits: Vec<OwnedSemaphorePermit>) {
        let mut files = lock(&self.files);
        if let Some(kept) = files.peek_mut(&ino).and_then(|f| f.kept.as_mut()) {
            kept.permits.extend(permits);
        }
    }

    /// Takes what `ino` has outstanding, for a sync to settle.
    pub(super) fn take(&self, ino: Ino) -> Option<FileUnstable> {
        lock(&self.files).pop(&ino)
    }

    /// Puts back what a failed sync took, before whatever was noted meanwhile.
    pub(super) fn put_back(&self, ino: Ino, mut taken: FileUnstable) {
        let mut files = lock(&self.files);
        if let Some(later) = files.pop(&ino) {
            taken.absorb(later);
        }
        files.put(ino, taken);
    }

    /// Drops the changes kept for `ino` (its verifiers stay); their memory is released.
    pub(super) fn drop_kept(&self, ino: Ino) {
        if let Some(f) = lock(&self.files).peek_mut(&ino) {
            f.kept = None;
        }
    }

    /// The file keeping the most bytes, with the layout its changes were made with.
    pub(super) fn largest_kept(&self) -> Option<(Ino, Layout)> {
        lock(&self.files)
            .iter()
            .filter_map(|(ino, f)| f.kept.as_ref().map(|k| (k.bytes, *ino, &f.layout)))
            .filter(|(bytes, _, _)| *bytes > 0)
            .max_by_key(|(bytes, ino, _)| (*bytes, std::cmp::Reverse(*ino)))
            .map(|(_, ino, layout)| (ino, layout.clone()))
    }

    /// Files followed now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        lock(&self.files).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    fn layout() -> Layout {
        Layout::striped(1 << 20, vec![3, 4])
    }

    fn write(offset: u64, data: &[u8]) -> Option<Change> {
        Some(Change {
            offset,
            data: Bytes::copy_from_slice(data),
        })
    }

    #[test]
    fn a_copy_is_covered_only_by_the_instance_that_took_all_its_changes() {
        let u = Unstable::default();
        u.noted(
            1,
            &layout(),
            &[((0, 3), 10), ((1, 4), 20)],
            write(0, b"a"),
            false,
        );
        u.noted(1, &layout(), &[((0, 3), 11)], write(1, b"b"), false);
        let f = u.take(1).unwrap();
        let first = f.copies[&(0, 3)];
        assert!(first.restarted, "two instances acknowledged stripe 0");
        assert!(!first.covered_by(11) && !first.covered_by(10));
        assert!(f.copies[&(1, 4)].covered_by(20));
        assert!(
            !f.copies[&(1, 4)].covered_by(21),
            "a sync by a new instance"
        );
        let kept = f.kept.unwrap();
        assert_eq!(
            kept.changes,
            vec![write(0, b"a").unwrap(), write(1, b"b").unwrap()]
        );
        assert_eq!(kept.bytes, 2);
        assert!(u.take(1).is_none(), "taken");
    }

    #[test]
    fn durable_changes_start_nothing_and_dropped_changes_stay_dropped() {
        let u = Unstable::default();
        u.noted(1, &layout(), &[((0, 3), 10)], write(0, b"a"), true);
        assert_eq!(u.len(), 0, "a synced write leaves nothing to verify");
        u.noted(1, &layout(), &[((0, 3), 10)], write(0, b"a"), false);
        u.drop_kept(1);
        u.noted(1, &layout(), &[((0, 3), 10)], write(1, b"b"), false);
        let f = u.take(1).unwrap();
        assert!(
            f.kept.is_none(),
            "a part of the changes must not pass for all"
        );
        assert!(f.copies[&(0, 3)].covered_by(10));
    }

    #[test]
    fn a_failed_sync_puts_its_changes_back_before_the_later_ones() {
        let u = Unstable::default();
        u.noted(1, &layout(), &[((0, 3), 10)], write(0, b"a"), false);
        let taken = u.take(1).unwrap();
        u.noted(1, &layout(), &[((0, 3), 12)], write(5, b"z"), false);
        u.put_back(1, taken);
        let f = u.take(1).unwrap();
        assert_eq!(f.copies[&(0, 3)].instance, 10);
        assert!(f.copies[&(0, 3)].restarted);
        let changes = f.kept.unwrap().changes;
        assert_eq!(
            changes,
            vec![write(0, b"a").unwrap(), write(5, b"z").unwrap()]
        );
    }

    #[test]
    fn kept_changes_hold_their_memory_until_they_go() {
        let budget = Arc::new(Semaphore::new(8));
        let u = Unstable::default();
        u.noted(1, &layout(), &[((0, 3), 10)], write(0, b"abcd"), false);
        u.hold(1, vec![budget.clone().try_acquire_many_owned(4).unwrap()]);
        u.noted(2, &layout(), &[((0, 3), 10)], write(0, b"ab"), false);
        u.hold(2, vec![budget.clone().try_acquire_many_owned(2).unwrap()]);
        assert_eq!(budget.available_permits(), 2);
        assert_eq!(u.largest_kept().map(|(ino, _)| ino), Some(1));
        u.drop_kept(1);
        assert_eq!(
            budget.available_permits(),
            6,
            "dropped changes free their memory"
        );
        assert_eq!(u.largest_kept().map(|(ino, _)| ino), Some(2));
        drop(u.take(2));
        assert_eq!(budget.available_permits(), 8);
        // Nothing kept: the reservation is not held.
        u.drop_kept(1);
        u.hold(1, vec![budget.clone().try_acquire_many_owned(8).unwrap()]);
        assert_eq!(budget.available_permits(), 8);
    }

    #[test]
    fn past_the_limit_the_file_used_least_recently_is_forgotten() {
        let u = Unstable::with_capacity(2);
        for ino in 1..=3 {
            u.noted(ino, &layout(), &[((0, 3), 10)], None, false);
        }
        assert_eq!(u.len(), 2);
        assert!(u.take(1).is_none());
        assert!(u.take(3).is_some());
    }
}
