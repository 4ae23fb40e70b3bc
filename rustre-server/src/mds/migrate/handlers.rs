//! The MDS operations of online migration: `MigrateBegin` and `MigrateStep`, each one
//! transaction of [`super`], with the freeze's fence raised at the OSTs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustre_proto::host::now_ms;
use rustre_proto::msg::mds::MdsResponse;
use rustre_proto::msg::migrate::{MigrateStep, MigrateTarget};
use rustre_proto::msg::Ino;
use rustre_proto::Error;

use super::plan::Osts;
use super::Stepped;
use crate::mds::dispatch::Call;
use crate::mds::error::MdsError;
use crate::mds::layout::{is_full, up_osts};
use crate::mds::txn::Mutation;
use crate::mds::{versions, Mds};

type Answer = Result<MdsResponse, MdsError>;

/// Tells migrations begun in one millisecond apart.
static TOKENS: AtomicU64 = AtomicU64::new(0);

fn new_token() -> u64 {
    (now_ms() << 16) | (TOKENS.fetch_add(1, Ordering::Relaxed) & 0xffff) | 1
}

impl Mds {
    /// Begins migrating `ino` to `target` (an administrator's operation).
    pub(in crate::mds) async fn migrate_begin(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        target: MigrateTarget,
    ) -> Answer {
        call.require_admin("migrating a file (rustre migrate, rustre rebalance)")?;
        // Data on the MDS moves to the objects first: a migration moves objects.
        self.spill(ino).await?;
        // About where data goes: worth a fresh map.
        let map = self
            .cluster
            .refresh()
            .await
            .unwrap_or_else(|_| self.cluster.map());
        let up = up_osts(&map);
        let roomy: Vec<u32> = up
            .iter()
            .copied()
            .filter(|i| map.ost(*i).is_some_and(|o| !is_full(&o.capacity)))
            .collect();
        let start = self.picker.turn();
        let token = new_token();
        let change = call.on_disk();
        self.txn(call.creds, vec![], change, move |tx, _| {
            let osts = Osts {
                up: &up,
                roomy: &roomy,
                start,
            };
            super::begin(tx, ino, &target, &osts, now_ms(), token)
        })
        .await
        .map(MdsResponse::Migration)
    }

    /// One step of migration `token` of `ino`.
    pub(in crate::mds) async fn migrate_step(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        token: u64,
        step: MigrateStep,
    ) -> Answer {
        call.require_admin("migrating a file (rustre migrate, rustre rebalance)")?;
        let kind = match step {
            MigrateStep::Renew => call.bookkeeping(),
            _ => call.on_disk(),
        };
        let creds = call.creds.clone();
        let stepped = self
            .txn(creds.clone(), vec![], kind, move |tx, _| {
                super::step(tx, ino, token, step, now_ms())
            })
            .await?;
        match stepped {
            Stepped::Done => Ok(MdsResponse::Done),
            // Copies were marked stale, resynced or moved meanwhile: the migrator begins again.
            Stepped::GaveUp => Err(Error::Stale.into()),
            Stepped::Committed(attr) => Ok(MdsResponse::Attr(attr)),
            Stepped::Fence(fence) => {
                let copies: usize = (0..fence.stripe_count())
                    .map(|s| fence.live_copies(s).len())
                    .sum();
                let taken = versions::announce(&self.cluster, ino, &fence).await;
                if taken == copies {
                    return Ok(MdsResponse::Done);
                }
                // A copy that did not take the fence could still take writes the last delta
                // would miss: no commit. Give the migration up (lifting the fence).
                self.txn(creds, vec![], Mutation::WRITE, move |tx, _| {
                    super::step(tx, ino, token, MigrateStep::Abort, now_ms())
                })
                .await?;
                Err(Error::Unavailable(format!(
                    "inode {ino}: {} of {copies} copies took the migration's fence; given up",
                    taken
                ))
                .into())
            }
        }
    }
}
