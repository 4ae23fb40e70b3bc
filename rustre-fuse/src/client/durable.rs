//! Durability of file data: fsync's sync of every copy, checked against the write verifiers
//! (docs/replication.md, "Write verifiers"), and the syncs memory pressure forces.
//!
//! A sync succeeds for a copy only if the OST instance that made the object durable is the
//! one that acknowledged every change this client made to that copy since its last good
//! sync ([`super::unstable`]). A copy whose OST restarted in between is given those
//! changes again, if this client still keeps them, and synced again; if it does not, or
//! the copy fails again, the copy failed: it is marked stale when another copy of its
//! stripe holds the data, and the sync fails with EIO when none does. So fsync never
//! answers 0 for bytes an OST lost.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use rustre_proto::frame::MAX_PAYLOAD_BYTES;
use rustre_proto::msg::oss::{ObjectId, OneInstance, OssOp};
use rustre_proto::msg::{Ino, Layout};
use rustre_proto::Error;
use tokio::sync::OwnedSemaphorePermit;

use super::data::CopyResults;
use super::stripe::{extents, split_extents};
use super::unstable::{Change, FileUnstable};
use super::Client;

/// Most times one sync gives a copy its lost changes again before counting it failed.
pub(super) const REPLAY_ATTEMPTS: usize = 2;

impl Client {
    /// Makes every live copy of every object of the file durable on its OST (fdatasync),
    /// and checks that the copies still hold what this client wrote (see the module docs).
    /// A copy that fails may not hold the data durably: it is marked stale, and the sync
    /// succeeds when one copy of every stripe synced with everything.
    pub(crate) async fn sync_objects(&self, ino: Ino, layout: &Layout) -> Result<(), Error> {
        self.with_fresh_layout(ino, layout, |layout| async move {
            self.riding_through(|| self.sync_objects_once(ino, &layout))
                .await
        })
        .await
    }

    async fn sync_objects_once(&self, ino: Ino, layout: &Layout) -> Result<(), Error> {
        let layout = self.files.newest_layout(ino, layout);
        let unstable = self.unstable.take(ino);
        let syncs = (0..layout.stripe_count()).map(|stripe| {
            let op = OssOp::Sync {
                object: ObjectId { ino, stripe },
            };
            self.to_live_copies(&layout, stripe, op, Bytes::new(), None)
        });
        let mut outcome = join_all(syncs).await;
        if let Some(unstable) = &unstable {
            self.check_verifiers(ino, &layout, unstable, &mut outcome)
                .await;
        }
        let settled = self.settle(ino, &layout, &outcome).await;
        // Settled: every change is durable on the copies left live. A failure that waiting
        // or a fresh layout may cure leaves the changes to the next try; any other is
        // reported once, as a lost write-back is by Linux, and the changes go with it.
        if let (Err(e), Some(unstable)) = (&settled, unstable) {
            if e.worth_waiting() || *e == Error::Stale {
                self.unstable.put_back(ino, unstable);
            }
        }
        settled
    }

    /// Turns the sync answer of every copy that lost changes (its OST restarted since it
    /// acknowledged them) into the outcome of giving it those changes again, or into a
    /// failure when they are not kept.
    async fn check_verifiers(
        &self,
        ino: Ino,
        layout: &Layout,
        unstable: &FileUnstable,
        outcome: &mut [CopyResults],
    ) {
        for (stripe, copies) in outcome.iter_mut().enumerate() {
            let stripe = stripe as u32;
            for (slot, result) in copies.iter_mut() {
                let ost = layout.osts[*slot];
                let Some(verifier) = unstable.copies.get(&(stripe, ost)) else {
                    continue;
                };
                let Ok(Some(synced_by)) = result else {
                    continue;
                };
                if verifier.covered_by(*synced_by) {
                    continue;
                }
                #[cfg(feature = "sim-bug")]
                if rustre_proto::injected_bug::is_on(
                    rustre_proto::injected_bug::Bug::IgnoreVerifiers,
                ) {
                    continue;
                }
                tracing::warn!(
                    ino,
                    stripe,
                    ost,
                    "the OST restarted since it acknowledged writes not yet synced"
                );
                *result = match &unstable.kept {
                    Some(kept) => self.replay(ino, layout, stripe, ost, &kept.changes).await,
                    None => Err(Error::Io(format!(
                        "OST {ost} restarted and lost writes to inode {ino} that were not \
                         yet synced, and this client no longer holds them"
                    ))),
                };
            }
        }
    }

    /// Gives the copy of `stripe` on `ost` every change in `changes` again, in order, and
    /// syncs it; succeeds once one OST instance took them all and synced them.
    async fn replay(
        &self,
        ino: Ino,
        layout: &Layout,
        stripe: u32,
        ost: u32,
        changes: &[Change],
    ) -> Result<Option<u64>, Error> {
        let object = ObjectId { ino, stripe };
        let mut last = Error::Io(format!("OST {ost} lost writes to inode {ino}"));
        for _ in 0..REPLAY_ATTEMPTS {
            match self.replay_once(ost, object, layout, changes).await {
                Ok(instance) => {
                    tracing::info!(ino, stripe, ost, "lost writes sent again and synced");
                    return Ok(Some(instance));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// One try of [`Self::replay`]: every change, then a sync, all answered by one instance
    /// of the OST, which is returned.
    async fn replay_once(
        &self,
        ost: u32,
        object: ObjectId,
        layout: &Layout,
        changes: &[Change],
    ) -> Result<u64, Error> {
        let mut one = OneInstance::default();
        for (op, payload) in replay_ops(layout, object.stripe, object, changes) {
            let (resp, _) = self.cluster.oss_call(ost, op, payload).await?;
            one.check(&resp)?;
        }
        let sync = OssOp::Sync { object };
        let (resp, _) = self.cluster.oss_call(ost, sync, Bytes::new()).await?;
        one.check(&resp)
    }

    /// Makes room in the write-back budget by syncing the file that keeps the most
    /// changes, which then go. Returns false when no file keeps any.
    pub(super) async fn sync_largest_kept(&self) -> bool {
        let Some((ino, layout)) = self.unstable.largest_kept() else {
            return false;
        };
        if let Err(e) = self.sync_objects(ino, &layout).await {
            // The changes go anyway (they hold the memory a writer waits for); the error
            // waits for the file's next write, flush or fsync, as a failed send's does.
            tracing::warn!(ino, "sync forced by write-back memory failed: {e}");
            self.unstable.drop_kept(ino);
            self.writeback
                .inode(ino)
                .lock()
                .await
                .error
                .get_or_insert(e);
        }
        true
    }

    /// Reserves `kib` KiB of the write-back budget (of `total` KiB) for a write. Past half
    /// the budget, the file keeping the most changes is synced in the background (one such
    /// sync at a time), so that a long writer rarely meets a full budget; when it does, it
    /// syncs files whose kept changes hold the budget itself before waiting for sends in
    /// flight.
    pub(super) async fn reserve_write(
        self: &Arc<Self>,
        budget: &Arc<tokio::sync::Semaphore>,
        total: u32,
        kib: u32,
    ) -> Result<OwnedSemaphorePermit, Error> {
        let half_used = budget.available_permits() < (total / 2) as usize;
        if half_used && !self.writeback.syncing_kept.swap(true, Ordering::AcqRel) {
            let client = self.clone();
            tokio::spawn(async move {
                client.sync_largest_kept().await;
                client
                    .writeback
                    .syncing_kept
                    .store(false, Ordering::Release);
            });
        }
        loop {
            match budget.clone().try_acquire_many_owned(kib) {
                Ok(permit) => return Ok(permit),
                Err(tokio::sync::TryAcquireError::Closed) => {
                    return Err(Error::Io("write-back closed".into()))
                }
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    if !self.sync_largest_kept().await {
                        break;
                    }
                }
            }
        }
        let stalled = std::time::Instant::now();
        let permit = budget
            .clone()
            .acquire_many_owned(kib)
            .await
            .map_err(|_| Error::Io("write-back closed".into()));
        if let Some(m) = super::metrics::get() {
            m.stalled(stalled.elapsed());
        }
        permit
    }
}

/// The object operations that give the copy of `stripe` the changes again: each write's
/// part on that stripe, cut to frames.
fn replay_ops(
    layout: &Layout,
    stripe: u32,
    object: ObjectId,
    changes: &[Change],
) -> Vec<(OssOp, Bytes)> {
    let mut ops = Vec::new();
    for Change { offset, data } in changes {
        let pieces = split_extents(
            extents(layout, *offset, data.len()),
            MAX_PAYLOAD_BYTES as usize,
        );
        for e in pieces.into_iter().filter(|e| e.stripe == stripe) {
            ops.push(e.write(object.ino, data, false, layout.version));
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_gives_one_stripe_its_parts_of_every_change_in_order() {
        let layout = Layout::striped(4096, vec![0, 1]);
        let data = Bytes::from((0..3 * 4096).map(|i| (i / 4096) as u8).collect::<Vec<_>>());
        let changes = vec![
            Change { offset: 0, data },
            Change {
                offset: 4096 + 100,
                data: Bytes::from_static(b"later"),
            },
        ];
        let object = ObjectId { ino: 9, stripe: 1 };
        let ops = replay_ops(&layout, 1, object, &changes);
        assert_eq!(ops.len(), 2, "{ops:?}");
        let placed: Vec<(u64, Vec<u8>)> = ops
            .iter()
            .map(|(op, payload)| match op {
                OssOp::Write { offset, crc, .. } => {
                    assert_eq!(*crc, rustre_proto::checksum::crc32c(payload));
                    (*offset, payload.to_vec())
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            placed[0],
            (0, vec![1u8; 4096]),
            "file block 1 at object offset 0"
        );
        assert_eq!(placed[1], (100, b"later".to_vec()), "in order, after it");
        let stripe0 = replay_ops(&layout, 0, ObjectId { ino: 9, stripe: 0 }, &changes);
        let ends: Vec<u64> = stripe0
            .iter()
            .map(|(op, p)| match op {
                OssOp::Write { offset, .. } => *offset + p.len() as u64,
                _ => 0,
            })
            .collect();
        assert_eq!(ends, vec![4096, 8192], "blocks 0 and 2");
    }
}
