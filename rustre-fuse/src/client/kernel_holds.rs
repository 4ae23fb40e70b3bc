//! Feed invalidations held back while the kernel asks again for what it was made to drop.
//!
//! When an open finds a file changed, or a lock is granted, the kernel is made to drop its
//! cached attributes of the file, and the process's next read past the size it held asks
//! for them again (GETATTR). An invalidation of the same inode that reaches the kernel while
//! that GETATTR is on its way makes the kernel throw the answer away (FUSE's
//! `attr_version`: the answer may predate the invalidation) and serve the read with the
//! size it held before, so the read stops short of bytes written before the open or under
//! the previous lock holder. The change feed is asynchronous, so such invalidations come
//! all the time: the writer's own change (its report reaches this client's feed after the
//! open that already saw it), or an unrelated one (an atime moved by a reader elsewhere).
//! A file grown under fcntl locks from two mounts lost 1 to 7 of 1,200 bytes to it
//! (tests/locks.rs; its counter test failed in CI once), and an open after another mount's
//! close up to 12 of 1,000 (tests/coherence.rs).
//!
//! So such a refresh holds the feed's invalidations of the inode until the kernel shows it
//! asked again: its next READ or FLUSH of the inode (a process sends those only after it
//! took the GETATTR's answer), or [`HOLD_MAX`] at most. Held invalidations then go out;
//! none is dropped (all of one inode's are the same, so one stands for many). The
//! invalidation thread checks and notifies under this structure's lock
//! ([`RefreshHolds::pass_on`]), so a notification is either written before a hold begins
//! (before the refresh's own invalidation) or held.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustre_proto::msg::mds::Change;
use rustre_proto::msg::Ino;
use rustre_proto::sync::lock;

/// Longest the feed's invalidations of an inode are held after its refresh.
pub(super) const HOLD_MAX: Duration = Duration::from_millis(100);
/// Most inodes held at once; a refresh beyond that holds nothing.
pub(super) const HOLDS_MAX: usize = 4096;

/// One held inode.
struct Hold {
    until: Instant,
    /// An invalidation of it waits (one stands for any number: they are all the same).
    waiting: bool,
}

/// The inodes whose feed invalidations wait for the kernel to ask again.
#[derive(Default)]
pub struct RefreshHolds {
    holds: Mutex<HashMap<Ino, Hold>>,
    /// How many inodes are held: reads look no further when none is.
    count: AtomicUsize,
}

impl RefreshHolds {
    /// The kernel is about to drop what it holds of `ino`: its feed invalidations wait
    /// for its next read or flush of it, until `now` + [`HOLD_MAX`] at most.
    pub(super) fn hold(&self, ino: Ino, now: Instant) {
        let mut holds = lock(&self.holds);
        if holds.len() >= HOLDS_MAX && !holds.contains_key(&ino) {
            return;
        }
        let until = now + HOLD_MAX;
        holds
            .entry(ino)
            .and_modify(|h| h.until = until)
            .or_insert(Hold {
                until,
                waiting: false,
            });
        self.count.store(holds.len(), Ordering::SeqCst);
    }

    /// The kernel read or flushed `ino`: its hold ends, and the invalidation it held, if
    /// any, is to go out now.
    pub(super) fn asked_again(&self, ino: Ino) -> Option<Change> {
        if self.count.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let mut holds = lock(&self.holds);
        let released = holds.remove(&ino).filter(|h| h.waiting);
        self.count.store(holds.len(), Ordering::SeqCst);
        released.map(|_| Change::Inode(ino))
    }

    /// Passes `change` to `notify` unless it names a held inode, which keeps it. Checked
    /// and notified in one step against [`RefreshHolds::hold`] (an inode invalidation
    /// takes no lock the kernel could be waiting on).
    pub fn pass_on(&self, change: Change, notify: impl FnOnce(&Change)) {
        let Change::Inode(ino) = change else {
            // Entries (and everything) leave the inode's cached attributes alone.
            return notify(&change);
        };
        match lock(&self.holds).get_mut(&ino) {
            Some(h) => h.waiting = true,
            None => notify(&change),
        }
    }

    /// Whether any inode is held (one may run out without a change coming).
    pub fn any(&self) -> bool {
        self.count.load(Ordering::SeqCst) > 0
    }

    /// Ends the holds that ran out by `now` and passes what they held to `notify`, under
    /// the same lock as [`RefreshHolds::pass_on`] (a hold begun meanwhile is not raced).
    pub fn expire(&self, now: Instant, mut notify: impl FnMut(&Change)) {
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut holds = lock(&self.holds);
        holds.retain(|ino, h| {
            let keep = h.until > now;
            if !keep && h.waiting {
                notify(&Change::Inode(*ino));
            }
            keep
        });
        self.count.store(holds.len(), Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed(holds: &RefreshHolds, change: Change) -> bool {
        let mut notified = false;
        holds.pass_on(change, |_| notified = true);
        notified
    }

    #[test]
    fn a_held_inode_keeps_its_invalidations_until_asked_again() {
        let holds = RefreshHolds::default();
        let now = Instant::now();
        assert!(passed(&holds, Change::Inode(5)), "nothing held yet");
        holds.hold(5, now);
        assert!(!passed(&holds, Change::Inode(5)));
        assert!(!passed(&holds, Change::Inode(5)), "kept once");
        assert!(passed(&holds, Change::Inode(6)), "another inode");
        let entry = Change::Entry {
            parent: 1,
            name: "f".into(),
        };
        assert!(passed(&holds, entry), "entries are not held");
        assert_eq!(holds.asked_again(5), Some(Change::Inode(5)));
        assert_eq!(holds.asked_again(5), None, "released once");
        holds.hold(5, now);
        assert_eq!(holds.asked_again(5), None, "nothing waited");
        assert!(passed(&holds, Change::Inode(5)), "no longer held");
    }

    #[test]
    fn holds_run_out_and_are_bounded() {
        let holds = RefreshHolds::default();
        let now = Instant::now();
        holds.hold(5, now);
        assert!(!passed(&holds, Change::Inode(5)));
        let expired = |at| {
            let mut out = Vec::new();
            holds.expire(at, |c| out.push(c.clone()));
            out
        };
        assert!(expired(now + HOLD_MAX / 2).is_empty());
        assert_eq!(expired(now + HOLD_MAX), vec![Change::Inode(5)]);
        assert!(passed(&holds, Change::Inode(5)));
        // At most HOLDS_MAX inodes are held.
        for ino in 0..HOLDS_MAX as Ino {
            holds.hold(ino + 100, now);
        }
        holds.hold(7, now);
        assert!(passed(&holds, Change::Inode(7)), "beyond the bound");
        assert!(!passed(&holds, Change::Inode(100)));
    }
}
