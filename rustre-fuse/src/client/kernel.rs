//! Passing other clients' changes on to whoever caches metadata above this client (the
//! kernel, through the FUSE adapter's notifications).
//!
//! The feed watchers ([`super::feed`]) hand every batch they apply to the metadata cache to
//! [`KernelHook::report`] as well. Changes this client's own requests made are left out:
//! they went through the kernel, which already knows them. A batch that does not follow on
//! from the last one (lost changes, a restarted MDS) is reported as [`Change::All`]. The
//! receiver ([`KernelCache`]) must not block: the feed task calls it. While the kernel
//! asks again for what an open or a lock grant made it drop, the receiver holds that
//! inode's invalidations back ([`super::kernel_holds`]).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustre_proto::msg::mds::{Change, ChangeBatch};
use rustre_proto::msg::Ino;

use super::kernel_holds::RefreshHolds;
use super::meta_cache::FEED_LEASE;
use super::Client;

/// Something caching names and attributes above this client, told what others changed.
pub trait KernelCache: Send + Sync {
    /// `changes`, in feed order. Must return at once (called from the feed task).
    fn changed(&self, changes: Vec<Change>);
}

/// Where the feed's changes go beyond the metadata cache (nowhere until set).
#[derive(Default)]
pub(super) struct KernelHook(OnceLock<Arc<dyn KernelCache>>);

impl KernelHook {
    /// Reports what `batch` (of a feed that did (`follows`) or did not follow on from its
    /// previous answer) holds that the client with `session` did not do itself.
    pub(super) fn report(&self, session: u64, follows: bool, batch: &ChangeBatch) {
        let Some(k) = self.0.get() else { return };
        let changes = others_changes(session, follows, batch);
        if !changes.is_empty() {
            k.changed(changes);
        }
    }

    /// Tells the receiver that what `changes` name may not be what this client's kernel
    /// was told (a change answered ahead that the MDS then refused; names kept long that
    /// no feed vouches for any more, `super::kernel_names`).
    pub(super) fn undo(&self, changes: Vec<Change>) {
        if let Some(k) = self.0.get() {
            k.changed(changes);
        }
    }
}

/// The changes of `batch` made by anyone but `session`, or [`Change::All`] when the batch
/// does not follow on from the last (some were lost).
pub(super) fn others_changes(session: u64, follows: bool, batch: &ChangeBatch) -> Vec<Change> {
    if !follows {
        return vec![Change::All];
    }
    batch
        .changes
        .iter()
        .filter(|fc| fc.request.0 != session || fc.request.1 == 0)
        .map(|fc| fc.change.clone())
        .collect()
}

impl Client {
    /// How long the kernel may keep an answer given now, for a mount whose TTL is `ttl`:
    /// `ttl` while every MDS's feed is live (its changes will be invalidated), at most
    /// [`FEED_LEASE`] otherwise, so that what nothing will invalidate is not kept longer
    /// than a feed answer vouches for.
    pub fn kernel_ttl(&self, ttl: Duration) -> Duration {
        if ttl <= FEED_LEASE || self.meta_cache.feeds_live() {
            ttl
        } else {
            FEED_LEASE
        }
    }

    /// Sends the changes other clients make (as this client's feed watchers learn them) to
    /// `k`, from now on. Only the first call counts.
    pub fn set_kernel_cache(&self, k: Arc<dyn KernelCache>) {
        let _ = self.kernel.0.set(k);
    }

    /// The holds the kernel's invalidation thread passes the feed's changes through.
    pub fn refresh_holds(&self) -> Arc<RefreshHolds> {
        self.refresh_holds.clone()
    }

    /// The kernel is about to be told to drop what it caches of `ino` (an open found it
    /// changed, a lock was granted): the feed's invalidations of it wait until the kernel
    /// asked again ([`super::kernel_holds`]).
    pub(super) fn kernel_refreshing(&self, ino: Ino) {
        self.refresh_holds.hold(ino, Instant::now());
    }

    /// The kernel read or flushed `ino` (it took the attributes it asked for): the feed's
    /// invalidation held for it, if any, goes out now.
    pub fn kernel_asked_again(&self, ino: Ino) {
        if let Some(change) = self.refresh_holds.asked_again(ino) {
            if let Some(k) = self.kernel.0.get() {
                k.changed(vec![change]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustre_proto::msg::mds::FeedChange;

    #[test]
    fn own_changes_are_left_out_and_gaps_are_everything() {
        let fc = |change, request| FeedChange { change, request };
        let batch = ChangeBatch {
            instance: 1,
            last: 4,
            lost: false,
            changes: vec![
                fc(Change::Inode(5), (7, 3)),
                fc(Change::Inode(6), (8, 1)),
                fc(Change::Inode(9), (7, 0)),
                fc(
                    Change::Entry {
                        parent: 1,
                        name: "x".into(),
                    },
                    (0, 0),
                ),
            ],
        };
        assert_eq!(
            others_changes(7, true, &batch),
            vec![
                Change::Inode(6),
                Change::Inode(9),
                Change::Entry {
                    parent: 1,
                    name: "x".into()
                }
            ]
        );
        assert_eq!(others_changes(7, false, &batch), vec![Change::All]);
    }
}
