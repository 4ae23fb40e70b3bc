//! The MDS operations of project quotas: `QuotaSet`, `QuotaGet`, `QuotaList` and
//! `QuotaReserve`, each one transaction of [`super`].

use std::sync::Arc;

use rustre_proto::msg::mds::{MdsResponse, QUOTA_LIST_MAX};
use rustre_proto::msg::quota::QuotaLimits;
use rustre_proto::msg::Ino;

use crate::mds::dispatch::Call;
use crate::mds::error::MdsError;
use crate::mds::txn::Mutation;
use crate::mds::Mds;

type Answer = Result<MdsResponse, MdsError>;

impl Mds {
    /// Sets the quota of directory `ino` (an administrator's operation).
    pub(in crate::mds) async fn quota_set(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        limits: QuotaLimits,
    ) -> Answer {
        // An administrator's operation (docs/operations.md, "Root squash and the admin
        // credential"): the admin credential, or root when the MDS holds no admin secret.
        call.require_admin("setting a quota (rustre quota set)")?;
        let creds = call.creds.clone();
        let walk = self
            .txn(creds.clone(), vec![], Mutation::WRITE, move |tx, c| {
                super::begin_set(tx, c.now, ino, limits)
            })
            .await?;
        if walk {
            // Each step one transaction; a retry of the call (or a set after an MDS crash
            // cut this walk short) walks again, skipping what is labelled already.
            let mut pending = vec![(ino, None)];
            while !pending.is_empty() {
                let todo = pending.clone();
                pending = self
                    .txn(creds.clone(), vec![], Mutation::WRITE, move |tx, _| {
                        super::walk_step(tx, ino, todo.clone())
                    })
                    .await?;
            }
        }
        let change = call.change();
        self.txn(call.creds, vec![], change, move |tx, c| {
            super::finish_set(tx, c.now, ino)
        })
        .await
        .map(|q| MdsResponse::Quota(Some(q)))
    }

    /// The quota of the project `ino` belongs to, if any.
    pub(in crate::mds) async fn quota_get(self: &Arc<Self>, call: Call, ino: Ino) -> Answer {
        self.txn(call.creds, vec![], Mutation::ReadOnly, move |tx, _| {
            super::of_inode(tx, ino)
        })
        .await
        .map(MdsResponse::Quota)
    }

    /// Quotas of projects numbered above `after`.
    pub(in crate::mds) async fn quota_list(self: &Arc<Self>, call: Call, after: Ino) -> Answer {
        self.txn(call.creds, vec![], Mutation::ReadOnly, move |tx, _| {
            super::list(tx, after, QUOTA_LIST_MAX)
        })
        .await
        .map(MdsResponse::Quotas)
    }

    /// A writer's reservation of room to grow `ino` to `end` (`want` if possible).
    /// Bookkeeping, as a size report: durable by the next sync (a reservation lost in an
    /// MDS crash lost nothing but room, and the writer's size report counts its bytes).
    pub(in crate::mds) async fn quota_reserve(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        end: u64,
        want: u64,
    ) -> Answer {
        let (change, session) = (call.bookkeeping(), call.session);
        self.txn(call.creds, vec![], change, move |tx, c| {
            super::reserve(tx, c.now, session, ino, end, want)
        })
        .await
        .map(MdsResponse::QuotaRoom)
    }
}
