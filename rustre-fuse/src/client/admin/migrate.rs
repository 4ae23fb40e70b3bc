//! `migrate`: a file moved to a new layout online (docs/migrate.md). The MDS records the
//! target (`MigrateBegin`); this client copies the file's bytes into the target's fresh
//! copies while the file's readers and writers go on with the old layout; passes repeat,
//! each copying only the blocks whose checksums still differ ([`super::delta`]), until one
//! copies little; then the old objects are fenced (`MigrateStep::Freeze`: every read and
//! write with the old layout waits), the last difference is copied and checked, the fresh
//! objects are cut to length and synced, and the target becomes the file's layout
//! (`MigrateStep::Commit`). On any failure the migration is given up and the file keeps its
//! layout and data.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use futures::future::try_join_all;
use rustre_proto::msg::mds::{MdsOp, MdsResponse};
use rustre_proto::msg::migrate::{MigratePlan, MigrateStep};
use rustre_proto::msg::oss::{ObjectId, OssOp, OssResponse, CHECKSUMS_MAX_BLOCKS};
use rustre_proto::msg::{Creds, Ino, Layout};
use rustre_proto::sync::lock;
use rustre_proto::Error;

pub use rustre_proto::msg::migrate::MigrateTarget;

use super::delta::{data_extent, differing_runs, ObjectSums};
use super::{unexpected, Progress};
use crate::client::stripe::extents;
use crate::client::Client;

/// Most file bytes one copy step reads and writes.
const MIGRATE_RUN_BYTES: u64 = 4 << 20;
/// Passes while writers go on, at most, before the freeze.
pub const MIGRATE_PASSES: usize = 8;
/// A pass that copied at most this much is the last before the freeze: the freeze then
/// holds readers and writers for about the time this takes to copy.
const FREEZE_BELOW_BYTES: u64 = 16 << 20;
/// A migration whose last pass before the freeze still copied more than this is given up:
/// the file changes faster than it can be copied, and the freeze would hold its readers and
/// writers too long.
const FREEZE_MAX_BYTES: u64 = 256 << 20;
/// Passes under the freeze until no block differs, at most.
const FROZEN_PASSES: usize = 3;
/// Times a migration is begun again after the file's layout changed under it.
pub const MIGRATE_ATTEMPTS: usize = 3;

/// The migrations this client has begun and not finished, by file: their tokens, so that
/// an interrupted command can give them up at once ([`Client::abort_migrations`]).
#[derive(Default)]
pub(crate) struct Migrations(Mutex<HashMap<Ino, u64>>);

impl Client {
    /// Gives up every migration this client has in progress (an interrupted `migrate` or
    /// `rebalance` whose copy was dropped): the files keep their layouts, and readers and
    /// writers held by a freeze go on at once rather than after the lease.
    pub async fn abort_migrations(&self) {
        let started: Vec<(Ino, u64)> = lock(&self.migrations.0).drain().collect();
        for (ino, token) in started {
            if let Err(e) = self.migrate_step(ino, token, MigrateStep::Abort).await {
                tracing::warn!(ino, "giving the migration up failed: {e} (its lease will)");
            }
        }
    }

    /// Moves file `ino` to the layout `target` asks for, online; returns its layout after.
    /// `progress` is told of the bytes copied.
    pub async fn migrate_file(
        &self,
        ino: Ino,
        target: &MigrateTarget,
        progress: &dyn Progress,
    ) -> Result<Layout, Error> {
        let mut last = Error::Stale;
        for _ in 0..MIGRATE_ATTEMPTS {
            match self.migrate_once(ino, target, progress).await {
                // Copies were marked stale or moved meanwhile (the MDS gave it up).
                Err(Error::Stale) => last = Error::Stale,
                r => return r,
            }
        }
        Err(Error::Io(format!(
            "inode {ino}: its layout kept changing during {MIGRATE_ATTEMPTS} migrations ({last})"
        )))
    }

    async fn migrate_once(
        &self,
        ino: Ino,
        target: &MigrateTarget,
        progress: &dyn Progress,
    ) -> Result<Layout, Error> {
        let op = MdsOp::MigrateBegin {
            ino,
            target: target.clone(),
        };
        let plan = match self.mds(&Creds::root(), op).await? {
            MdsResponse::Migration(p) => p,
            r => return Err(unexpected_mds(r)),
        };
        if plan.token == 0 {
            return Ok(plan.to);
        }
        lock(&self.migrations.0).insert(ino, plan.token);
        let moved = self.copy_and_commit(ino, &plan, progress).await;
        lock(&self.migrations.0).remove(&ino);
        if let Err(e) = &moved {
            if *e != Error::Stale {
                if let Err(a) = self.migrate_step(ino, plan.token, MigrateStep::Abort).await {
                    tracing::warn!(ino, "giving the migration up failed: {a} (its lease will)");
                }
            }
        }
        moved
    }

    async fn migrate_step(
        &self,
        ino: Ino,
        token: u64,
        step: MigrateStep,
    ) -> Result<MdsResponse, Error> {
        self.mds(&Creds::root(), MdsOp::MigrateStep { ino, token, step })
            .await
    }

    async fn copy_and_commit(
        &self,
        ino: Ino,
        plan: &MigratePlan,
        progress: &dyn Progress,
    ) -> Result<Layout, Error> {
        // Whatever an earlier, given-up migration left in the fresh slots goes first.
        for &slot in &plan.fresh {
            let (object, ost) = fresh_object(ino, &plan.to, slot);
            self.oss_answer(ost, OssOp::Delete { object }).await?;
        }
        let mut from = plan.from.clone();
        let mut copied = u64::MAX;
        for _ in 0..MIGRATE_PASSES {
            copied = self.copy_pass(ino, &from, plan, progress).await?;
            self.migrate_step(ino, plan.token, MigrateStep::Renew)
                .await?;
            if copied <= FREEZE_BELOW_BYTES {
                break;
            }
        }
        if copied > FREEZE_MAX_BYTES {
            return Err(Error::Io(format!(
                "inode {ino}: its last pass still copied {copied} bytes (changed meanwhile); \
                 not frozen for that long: try again when it is written less"
            )));
        }
        self.migrate_step(ino, plan.token, MigrateStep::Freeze)
            .await?;
        // The old objects now carry the fence's version: read them with it.
        from.version += 1;
        let mut settled = false;
        for _ in 0..FROZEN_PASSES {
            if self.copy_pass(ino, &from, plan, progress).await? == 0 {
                settled = true;
                break;
            }
            // Keeps the (short) frozen lease alive while a large last delta is copied.
            self.migrate_step(ino, plan.token, MigrateStep::Renew)
                .await?;
        }
        if !settled {
            return Err(Error::Io(format!(
                "inode {ino}: the copy still differs after {FROZEN_PASSES} passes under the \
                 freeze"
            )));
        }
        let extent = self.old_extent(ino, &from).await?;
        let cuts = plan.fresh.iter().map(|&slot| async move {
            let (object, ost) = fresh_object(ino, &plan.to, slot);
            let size = plan.to.object_size(object.stripe, extent);
            self.oss_answer(
                ost,
                OssOp::Truncate {
                    object,
                    size,
                    version: 0,
                },
            )
            .await?;
            self.oss_answer(ost, OssOp::Sync { object }).await
        });
        try_join_all(cuts).await?;
        match self
            .migrate_step(ino, plan.token, MigrateStep::Commit)
            .await?
        {
            MdsResponse::Attr(a) => a
                .layout
                .ok_or_else(|| Error::Protocol("a committed migration with no layout".into())),
            r => Err(unexpected_mds(r)),
        }
    }

    /// One pass: the blocks where some fresh copy differs from the old layout, copied;
    /// returns the bytes copied.
    async fn copy_pass(
        &self,
        ino: Ino,
        from: &Layout,
        plan: &MigratePlan,
        progress: &dyn Progress,
    ) -> Result<u64, Error> {
        let extent = self.old_extent(ino, from).await?;
        let mut old = Vec::new();
        for stripe in 0..from.stripe_count() {
            let sums = match from.live_copies(stripe).first() {
                Some(&(_, ost)) => self.object_sums(ObjectId { ino, stripe }, ost).await?,
                None => ObjectSums::default(),
            };
            old.push(sums);
        }
        let mut fresh = Vec::new();
        for &slot in &plan.fresh {
            let (object, ost) = fresh_object(ino, &plan.to, slot);
            fresh.push((object.stripe, self.object_sums(object, ost).await?));
        }
        let runs = differing_runs(from, &old, &plan.to, &fresh, extent, MIGRATE_RUN_BYTES);
        let total: u64 = runs.iter().map(|r| r.1).sum();
        progress.phase("copy", total);
        for (offset, len) in runs {
            let data = self
                .riding_through(|| self.read_data_once(ino, from, offset, len as usize))
                .await?;
            self.write_fresh(ino, plan, offset, data).await?;
            progress.advance(len);
        }
        Ok(total)
    }

    /// Writes `data` (file bytes at `offset`) into every fresh copy they fall in.
    async fn write_fresh(
        &self,
        ino: Ino,
        plan: &MigratePlan,
        offset: u64,
        data: Bytes,
    ) -> Result<(), Error> {
        let mut writes = Vec::new();
        for e in extents(&plan.to, offset, data.len()) {
            let payload = e.payload(&data);
            for &slot in &plan.fresh {
                let (object, ost) = fresh_object(ino, &plan.to, slot);
                if object.stripe != e.stripe {
                    continue;
                }
                let op = OssOp::write(object, e.object_offset, &payload, false, 0);
                let payload = payload.clone();
                writes
                    .push(async move { self.cluster.oss_call(ost, op, payload).await.map(|_| ()) });
            }
        }
        try_join_all(writes).await.map(|_| ())
    }

    /// How far the data of `from`'s objects reaches (the longest up-to-date copy of each
    /// stripe): what must be copied, reported in the size or not yet.
    async fn old_extent(&self, ino: Ino, from: &Layout) -> Result<u64, Error> {
        let mut sizes = Vec::new();
        for stripe in 0..from.stripe_count() {
            let mut longest = 0;
            for (_, ost) in from.live_copies(stripe) {
                let object = ObjectId { ino, stripe };
                match self.oss_answer(ost, OssOp::Size { object }).await? {
                    OssResponse::Size(s) => longest = longest.max(s.unwrap_or(0)),
                    r => return Err(unexpected(&r)),
                }
            }
            sizes.push(longest);
        }
        Ok(data_extent(from, &sizes))
    }

    /// The stored checksums of `object` on `ost`, every page.
    async fn object_sums(&self, object: ObjectId, ost: u32) -> Result<ObjectSums, Error> {
        let mut sums = ObjectSums::default();
        loop {
            let op = OssOp::Checksums {
                object,
                first: sums.crcs.len() as u64,
                count: CHECKSUMS_MAX_BLOCKS,
            };
            match self.oss_answer(ost, op).await? {
                OssResponse::Checksums { size, crcs } => {
                    sums.size = size;
                    let full = crcs.len() == CHECKSUMS_MAX_BLOCKS as usize;
                    sums.crcs.extend(crcs);
                    if !full {
                        return Ok(sums);
                    }
                }
                r => return Err(unexpected(&r)),
            }
        }
    }
}

/// The object and OST of slot `slot` of `layout`.
fn fresh_object(ino: Ino, layout: &Layout, slot: u32) -> (ObjectId, u32) {
    let stripe = layout.stripe_of_slot(slot as usize);
    (ObjectId { ino, stripe }, layout.osts[slot as usize])
}

fn unexpected_mds(r: MdsResponse) -> Error {
    Error::Protocol(format!("unexpected MDS answer {r:?}"))
}
